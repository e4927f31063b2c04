"""Pyramid maths: the size of every scale and resizing between scales, in torch on the tensor's device."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from monai_singanseg.config import PyramidConfig

__all__ = ["build_pyramid", "resize", "scale_shapes"]


def scale_shapes(shape: Sequence[int], config: PyramidConfig) -> list[tuple[int, ...]]:
    """Spatial shape of every scale, coarsest first.

    The finest scale is ``shape`` shrunk so that its longest side is at most ``max_size``. The ratio between scales
    is then recomputed from ``scale_factor`` so that the coarsest shortest side is ``min_size`` exactly, as the
    SinGAN reference does. An input already smaller than ``min_size`` gives a single scale.

    Example:
        >>> scale_shapes((256, 256), PyramidConfig(min_size=25, max_size=128))[::3]
        [(25, 25), (57, 57), (128, 128)]
    """
    config.validate()
    shrink = min(config.max_size / max(shape), 1.0)
    finest = tuple(max(1, round(s * shrink)) for s in shape)
    short = min(finest)
    if short <= config.min_size:
        return [finest]
    steps = math.ceil(math.log(config.min_size / short) / math.log(config.scale_factor))
    ratio = (config.min_size / short) ** (1.0 / steps)
    return [tuple(max(1, round(s * ratio ** (steps - i))) for s in finest) for i in range(steps + 1)]


def resize(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Resize ``x`` of shape ``(N, C, *spatial)`` to ``shape``.

    Downsizing is antialiased (bicubic with antialias in 2D, area averaging in 3D, where torch has no antialiased
    trilinear); upsizing is bicubic in 2D and trilinear in 3D.
    """
    shape = tuple(int(s) for s in shape)
    if tuple(x.shape[2:]) == shape:
        return x
    spatial_dims = x.ndim - 2
    shrinking = any(t < s for t, s in zip(shape, x.shape[2:]))
    if spatial_dims == 2:
        return F.interpolate(x, size=shape, mode="bicubic", align_corners=False, antialias=shrinking)
    if shrinking and all(t <= s for t, s in zip(shape, x.shape[2:])):
        return F.interpolate(x, size=shape, mode="area")
    return F.interpolate(x, size=shape, mode="trilinear", align_corners=False)


def build_pyramid(real: torch.Tensor, shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Downsized copies of ``real`` ``(1, C, *spatial)`` in ``[-1, 1]``, one per shape, coarsest first."""
    return [resize(real, s).clamp(-1.0, 1.0) for s in shapes]
