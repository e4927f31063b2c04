"""Where a synthetic pair lies in space: the orientation and the field of view of the incoming image against the
model's training image (the checkpoint keeps the training image's affine and shape, never its pixels).

Orientation codes come from nibabel (``io_orientation`` / ``ornt_transform``), spacings from MONAI
(``affine_to_spacing``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data.utils import affine_to_spacing
from nibabel import orientations

__all__ = ["field_of_view", "orientation_change", "reorient"]


def orientation_change(source_affine: Sequence, affine: Sequence, spatial_dims: int) -> np.ndarray | None:
    """How the model's voxel axes map onto the incoming image's (nibabel's ``(axis, flip)`` rows, one per model
    axis), or ``None`` when both are oriented alike. Volumes only: a 2D image's affine does not say which plane
    it is in the same way."""
    if spatial_dims != 3:
        return None
    source = np.asarray(source_affine, dtype=np.float64)
    target = np.asarray(affine, dtype=np.float64)
    if source.shape != (4, 4) or target.shape != (4, 4):
        return None
    change = orientations.ornt_transform(orientations.io_orientation(source), orientations.io_orientation(target))
    return None if np.array_equal(change, [[0, 1], [1, 1], [2, 1]]) else change


def reorient(x: torch.Tensor, change: np.ndarray) -> torch.Tensor:
    """Apply :func:`orientation_change` to a channel-first ``(C, *spatial)`` tensor (what nibabel's
    ``apply_orientation`` does to an array): flips first, then the axes in their new order."""
    flips = [axis + 1 for axis, (_, flip) in enumerate(change) if flip < 0]
    if flips:
        x = x.flip(flips)
    return x.permute(0, *(1 + int(a) for a in np.argsort(change[:, 0])))


def field_of_view(affine: Sequence, shape: Sequence[int]) -> np.ndarray:
    """Extent of an image along each spatial axis, in the affine's units (mm for medical files, pixels for PNG)."""
    spacing = affine_to_spacing(np.asarray(affine, dtype=np.float64), r=len(shape))
    return np.asarray(shape, dtype=np.float64) * np.asarray(spacing, dtype=np.float64)
