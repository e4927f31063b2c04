"""Differentiable augmentation of stacked image + mask pairs for a critic (DiffAugment, Zhao et al., "Differentiable
Augmentation for Data-Efficient GAN Training", NeurIPS 2020), written from the paper, in 2D and 3D: the StyleGAN
critics' (``StyleGANConfig.augment``) and SinGAN-Seg's coarsest critics' (``NetworkConfig.critic_augment``).

The critic sees every pair, real and generated, through the same random operations, so it cannot tell them apart
by memorising the few real pairs, and the generator's gradient flows through the operations. Colour operations
change the image channels only; geometric operations (translation, cutout) move or blank the image and the mask
channels identically, so an augmented pair is still a consistent pair. What moves in from outside, or is cut out,
is grey (0) in the image channels and background (-1) in the mask channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from monai_singanseg.config import AUGMENT_OPS

__all__ = ["AUGMENT_OPS", "CUTOUT_RATIO", "TRANSLATION_RATIO", "cutout", "diff_augment", "random_color", "translate"]

TRANSLATION_RATIO = 0.125
"""Largest shift per axis, as a fraction of the side (DiffAugment's 1/8)."""

CUTOUT_RATIO = 0.5
"""Side of the cut-out box, as a fraction of the image's side (DiffAugment's 1/2)."""

MASK_FILL = -1.0  # background in the mask channels' [-1, 1] encoding (binary and one-hot alike)


def _uniform(n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``(n, 1, 1, ...)`` uniform draws in ``[0, 1)``, broadcastable over ``x``'s channels and positions."""
    return torch.rand((n,) + (1,) * (x.ndim - 1), generator=generator, device=x.device, dtype=x.dtype)


def random_color(x: torch.Tensor, image_channels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness (shift in ``[-0.5, 0.5)``), saturation (scale of the deviation from the channel mean in
    ``[0, 2)``; nothing for one channel) and contrast (scale in ``[0.5, 1.5)``) of the first ``image_channels`` of
    ``x`` ``(N, C, *spatial)``; the mask channels are returned unchanged."""
    image, mask = x[:, :image_channels], x[:, image_channels:]
    if image_channels == 0:
        return x
    n = x.shape[0]
    image = image + (_uniform(n, image, generator) - 0.5)
    mean = image.mean(dim=1, keepdim=True)
    image = (image - mean) * (_uniform(n, image, generator) * 2.0) + mean
    mean = image.mean(dim=tuple(range(1, image.ndim)), keepdim=True)
    image = (image - mean) * (_uniform(n, image, generator) + 0.5) + mean
    return torch.cat([image, mask], dim=1)


def _fill(x: torch.Tensor, image_channels: int) -> torch.Tensor:
    """``(1, C, 1, ...)``: 0 for the image channels, background for the mask channels."""
    fill = torch.full((1, x.shape[1]) + (1,) * (x.ndim - 2), MASK_FILL, device=x.device, dtype=x.dtype)
    fill[:, :image_channels] = 0.0
    return fill


def translate(x: torch.Tensor, image_channels: int, shifts: torch.Tensor) -> torch.Tensor:
    """Shift each sample of ``x`` ``(N, C, *spatial)`` by ``shifts`` ``(N, spatial_dims)`` whole pixels (positive:
    towards higher indices), all channels alike; what moves in is the fill (grey image, background mask)."""
    fill = _fill(x, image_channels)
    out = []
    for sample, shift in zip(x, shifts.tolist()):
        s = sample[None]
        pads: list[int] = []
        for d in reversed(range(len(shift))):  # F.pad lists the last axis first
            pads += [max(shift[d], 0), max(-shift[d], 0)]
        # pad with a marker, then replace it by each channel's fill (F.pad takes one value for all channels)
        padded = F.pad(s - fill, pads, value=0.0) + fill
        index = [slice(None), slice(None)]
        for d, size in enumerate(s.shape[2:]):
            start = max(-shift[d], 0)
            index.append(slice(start, start + size))
        out.append(padded[tuple(index)])
    return torch.cat(out, dim=0)


def cutout(x: torch.Tensor, image_channels: int, centres: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Blank a box of ``size`` around ``centres`` ``(N, spatial_dims)`` in each sample of ``x`` ``(N, C, *spatial)``,
    all channels alike: grey image, background mask (the box may reach past the border)."""
    keep = torch.ones((x.shape[0], 1, *x.shape[2:]), device=x.device, dtype=x.dtype)
    for i, centre in enumerate(centres.tolist()):
        box = [slice(i, i + 1), slice(None)]
        for c, s, side in zip(centre, size, x.shape[2:]):
            box.append(slice(max(c - s // 2, 0), min(c - s // 2 + s, side)))
        keep[tuple(box)] = 0.0
    return x * keep + _fill(x, image_channels) * (1.0 - keep)


def diff_augment(x: torch.Tensor, image_channels: int, ops: Sequence[str],
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """DiffAugment of a batch of stacked pairs, differentiable in ``x``.

    Args:
        x: ``(N, C, *spatial)`` in ``[-1, 1]``: ``image_channels`` image channels, then mask channels.
        image_channels: how many leading channels are image (colour operations touch only these).
        ops: operations of :data:`AUGMENT_OPS`, applied in that order: ``"color"``, ``"translation"`` (up to
            :data:`TRANSLATION_RATIO` of each side), ``"cutout"`` (a box of :data:`CUTOUT_RATIO` of each side).
        generator: the random generator (on ``x``'s device) of every draw.

    Returns:
        ``(N, C, *spatial)``; colour may take the image channels past ``[-1, 1]``, the mask channels stay in it.

    Example:
        >>> pairs = torch.rand(4, 2, 32, 32) * 2 - 1
        >>> diff_augment(pairs, 1, ("color", "translation", "cutout")).shape
        torch.Size([4, 2, 32, 32])
    """
    unknown = [op for op in ops if op not in AUGMENT_OPS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; known: {AUGMENT_OPS}.")
    n, spatial = x.shape[0], x.shape[2:]
    if "color" in ops:
        x = random_color(x, image_channels, generator)
    if "translation" in ops:
        limits = torch.tensor([int(s * TRANSLATION_RATIO + 0.5) for s in spatial], device=x.device)
        draw = torch.rand((n, len(spatial)), generator=generator, device=x.device)
        shifts = (draw * (2 * limits + 1)).long() - limits  # uniform in [-limit, limit]
        x = translate(x, image_channels, shifts)
    if "cutout" in ops:
        size = [int(s * CUTOUT_RATIO + 0.5) for s in spatial]
        draw = torch.rand((n, len(spatial)), generator=generator, device=x.device)
        centres = (draw * torch.tensor(spatial, device=x.device)).long()
        x = cutout(x, image_channels, centres, size)
    return x
