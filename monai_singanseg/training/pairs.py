"""The training pairs of a learned generator (diffusion, StyleGAN2) checked against its config and stacked into one
tensor, in one intensity mapping: the part of ``stack_pairs`` the kinds share. What each kind does besides (the
diffusion trainer's equal shapes and crop size, StyleGAN's resizing and classes) is a ``fit`` callback and its own
code around :func:`stack_training_pairs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generator_protocol import check_pair_values, default_labels
from monai_singanseg.intensity import IntensityMapping, LabelEncoding
from monai_singanseg.io import TrainingPair
from monai_singanseg.pyramid import resize

__all__ = ["pair_name", "resize_pair", "stack_training_pairs"]


def pair_name(pair: Any, index: int) -> str:
    """The file a pair was read from (its image's), or ``pair <index>`` for a bare tensor."""
    meta = getattr(pair, "meta", None) or {}
    name = meta.get("filename_or_obj")
    return str(name) if name else f"pair {index}"


def stack_training_pairs(
    pairs: TrainingPair | torch.Tensor | Sequence[TrainingPair | torch.Tensor],
    config: Any,
    intensity: IntensityMapping | None = None,
    labels: LabelEncoding | None = None,
    fit: Callable[[TrainingPair, str, list[torch.Tensor]], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, IntensityMapping, LabelEncoding, dict[str, Any]]:
    """Check the training pairs against ``config`` and stack them.

    Pairs whose image intensity maps differ are re-expressed in one common map (per channel, the lowest ``lower`` and
    the highest ``upper``), which loses nothing; their label encodings must be equal.

    Args:
        pairs: :class:`~monai_singanseg.io.TrainingPair` objects, or tensors ``(C, *spatial)`` in ``[-1, 1]`` (image
            channels then mask channels), or one of either.
        config: the model's configuration (``spatial_dims``, ``image_channels``, ``mask_channels``, ``channels``).
        intensity: the map of bare tensors' image channels (default: identity on ``[-1, 1]``).
        labels: the encoding of bare tensors' mask channels (default: binary 0/1, or K class indices).
        fit: ``fit(pair, name, stacked so far)``: the tensor ``(C, *spatial)`` to stack for a checked pair (clamped
            to ``[-1, 1]``), or an error naming ``name``; default: the pair's own tensor.

    Returns:
        ``(real, intensity, labels, source)``: the pairs ``(P, C, *spatial)`` in ``[-1, 1]`` in the common map, that
        map, the common label encoding and the first pair's ``source`` (``{}`` for a bare tensor).

    Raises:
        SinGANSegInputError: no pair, a wrong rank or channel count, values outside ``[-1, 1]`` or differing label
            encodings; each naming the pair's file (``pair <i>`` for a bare tensor).
    """
    if isinstance(pairs, (TrainingPair, torch.Tensor)):
        pairs = [pairs]
    if len(pairs) == 0:
        raise SinGANSegInputError("no training pair given.")
    cfg = config
    bare_intensity = intensity or IntensityMapping([-1.0] * cfg.image_channels, [1.0] * cfg.image_channels)
    bare_labels = labels or default_labels(cfg.mask_channels)
    reals, maps, encodings = [], [], []
    for i, pair in enumerate(pairs):
        name = pair_name(pair, i)
        if not isinstance(pair, TrainingPair):
            pair = TrainingPair(torch.as_tensor(pair), bare_intensity, bare_labels)
        real = pair.real.detach().to("cpu", torch.float32)
        if real.ndim != cfg.spatial_dims + 1:
            raise SinGANSegInputError(f"{name}: shape {tuple(real.shape)}; a {cfg.spatial_dims}D model trains on "
                                      f"(C, *spatial) pairs with {cfg.spatial_dims} spatial axes.")
        n_img = len(pair.intensity.lower)
        if real.shape[0] != cfg.channels or n_img != cfg.image_channels:
            raise SinGANSegInputError(
                f"{name}: {real.shape[0]} channels ({n_img} image + {real.shape[0] - n_img} mask); the model "
                f"expects {cfg.channels} ({cfg.image_channels} image + {cfg.mask_channels} mask)."
            )
        check_pair_values(real, name, "give the stacked pair from load_training_pair or prepare_training_pair.")
        if encodings and pair.labels != encodings[0]:
            raise SinGANSegInputError(f"{name}: label encoding {pair.labels.to_dict()} differs from the first pair's "
                                      f"{encodings[0].to_dict()}; the mask channels would mean different things.")
        pair = TrainingPair(real.clamp(-1.0, 1.0), pair.intensity, pair.labels, dict(pair.meta))
        reals.append(pair.real if fit is None else fit(pair, name, reals))
        maps.append(pair.intensity)
        encodings.append(pair.labels)
    common = IntensityMapping([min(m.lower[c] for m in maps) for c in range(cfg.image_channels)],
                              [max(m.upper[c] for m in maps) for c in range(cfg.image_channels)])
    n = cfg.image_channels
    for i, pair_map in enumerate(maps):
        if pair_map != common:  # into the common units: the common range holds this one's, so nothing is clipped
            reals[i] = torch.cat([common.normalize(pair_map.denormalize(reals[i][:n])), reals[i][n:]], dim=0)
    first = pairs[0]
    source = first.source if isinstance(first, TrainingPair) else {}
    return torch.stack(reals), common, encodings[0], source


def resize_pair(pair: TrainingPair, shape: Sequence[int]) -> TrainingPair:
    """``pair`` resized to the spatial ``shape`` (one size for every axis, or one per axis): image channels smoothly
    (antialiased when shrinking), the mask channels smoothly too and then re-binarised (re-one-hot), so outlines stay
    as smooth as the image's."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        shape = shape * pair.spatial_dims
    if len(shape) != pair.spatial_dims:
        raise SinGANSegInputError(f"resize to {shape}: the pair is {pair.spatial_dims}D.")
    if min(shape) < 1:
        raise SinGANSegInputError(f"resize to {shape}: every size must be >= 1 pixel.")
    if tuple(pair.real.shape[1:]) == shape:
        return pair
    n_img = pair.real.shape[0] - pair.labels.channels
    resized = resize(pair.real[None].float(), shape)[0]
    mask = pair.labels.encode_indices(pair.labels.indices(resized[n_img:]))
    real = torch.cat([resized[:n_img].clamp(-1.0, 1.0), mask])
    return TrainingPair(real, pair.intensity, pair.labels, dict(pair.meta))
