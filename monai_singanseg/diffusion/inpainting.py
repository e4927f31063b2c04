"""Inpainting a real pair at any size: the region to redraw from a label, and padding to the UNet's multiple.

The diffusion model trains on crops of the training pairs at their own resolution, so a real pair is inpainted at its
own resolution too (no resize that would change the scale of the structures): the region's bounding box widened by
``context_margin`` is cut out, padded up to the next multiple of the UNet's downsampling, inpainted, and put back, so
the cost follows the size of the region, not of the image.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from monai.transforms.utils import generate_spatial_bounding_box
from monai.transforms.utils_morphological_ops import dilate

from monai_singanseg.diffusion.config import DiffusionSampling
from monai_singanseg.diffusion.model import PairDiffusion

__all__ = ["inpaint_pair", "label_region"]


def label_region(index: torch.Tensor, dilation: int) -> torch.Tensor:
    """Where to redraw: the foreground of ``index`` ``(1, *spatial)`` (class indices, 0 = background) dilated by
    ``dilation`` pixels with MONAI's binary dilation (a cubic box); boolean ``(1, *spatial)``."""
    region = index != 0
    if dilation > 0 and bool(region.any()):
        region = dilate(region[None].float(), filter_size=2 * dilation + 1)[0] > 0.5
    return region


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, list[int]]:
    """``x`` ``(N, C, *spatial)`` padded at the far end of each axis (edge values repeated) to multiples of
    ``multiple``; returns the padded tensor and the original spatial shape."""
    spatial = list(x.shape[2:])
    pad: list[int] = []
    for side in reversed(spatial):  # F.pad lists the last axis first
        pad += [0, (-side) % multiple]
    if any(pad):
        x = F.pad(x, pad, mode="replicate")
    return x, spatial


@torch.no_grad()
def inpaint_pair(
    model: PairDiffusion,
    pair: torch.Tensor,
    region: torch.Tensor,
    sampling: DiffusionSampling | None = None,
    num: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``num`` redraws of ``region`` of the real ``pair`` ``(C, *spatial)`` in ``[-1, 1]``, any spatial size.

    Args:
        model: the diffusion model.
        pair: the stacked real pair (image channels, then mask channels), e.g. ``model.join(image, label)``.
        region: ``(1, *spatial)`` or ``(*spatial)``, nonzero where to redraw (:func:`label_region`).
        sampling: steps, jump length and resampling (the defaults of :class:`DiffusionSampling` when ``None``).
        num: redraws.
        generator: the random generator on the model's device.

    Returns:
        ``(num, C, *spatial)`` in ``[-1, 1]``, equal to ``pair`` outside ``region``.
    """
    sampling = DiffusionSampling.of(sampling)
    device = model.device
    pair = torch.as_tensor(pair, dtype=torch.float32, device=device)
    region = torch.as_tensor(region, device=device).reshape(1, 1, *pair.shape[1:]).float()
    box = _context_box(region[0, 0], sampling.context_margin)
    part, part_region = pair[(slice(None), *box)], region[(slice(None), slice(None), *box)]
    padded, spatial = _pad_to_multiple(part[None].expand(num, -1, *part.shape[1:]), model.config.size_multiple)
    padded_region, _ = _pad_to_multiple(part_region, model.config.size_multiple)
    redrawn = model.inpaint(padded, padded_region, steps=sampling.steps, jump_length=sampling.jump_length,
                            resample=sampling.resample, generator=generator)
    redrawn = redrawn[(slice(None), slice(None), *(slice(0, s) for s in spatial))]
    if sampling.style != "none":  # the styling pass: the box towards the real box, kept inside the region below
        from monai_singanseg.style import refine

        n = model.config.image_channels
        features = _vgg(sampling.style_weights, str(device)) if sampling.style == "vgg" else None
        redrawn = redrawn.clone()
        redrawn[:, :n] = refine(redrawn[:, :n], part[None, :n], sampling.style, weights=sampling.style_weights,
                                features=features)
    out = pair[None].repeat(num, *[1] * pair.ndim)
    out[(slice(None), slice(None), *box)] = redrawn
    return torch.where(region == 0, pair[None], out)  # the kept region bit for bit, not through the last noising step


@functools.lru_cache(maxsize=2)
def _vgg(weights: str | None, device: str) -> torch.nn.Module:
    """VGG features for the styling pass, loaded once per weights file and device (a transform styles every draw)."""
    from monai_singanseg.style.vgg import load_vgg_features

    return load_vgg_features(weights, pooling="avg", device=device)[0]


def _context_box(region: torch.Tensor, margin: int | None) -> tuple[slice, ...]:
    """The bounding box of ``region`` ``(*spatial)`` widened by ``margin`` on every side, within the image (the whole
    image for ``None`` or an empty region); MONAI's ``generate_spatial_bounding_box`` finds and clips it."""
    if margin is None or not bool(region.any()):
        return tuple(slice(0, s) for s in region.shape)
    low, high = generate_spatial_bounding_box(region[None], margin=margin, allow_smaller=True)
    return tuple(slice(lo, hi) for lo, hi in zip(low, high))
