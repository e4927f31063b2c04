"""Diversity among synthetic samples: the mean of ``1 - MS-SSIM`` over all pairs (MONAI's MultiScaleSSIMMetric)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from monai.metrics import MultiScaleSSIMMetric

__all__ = ["MS_SSIM_WEIGHTS", "ms_ssim_diversity", "ms_ssim_settings"]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Wang et al.'s five scale weights (MONAI's default), finest first."""


def ms_ssim_settings(spatial_shape: Sequence[int]) -> dict:
    """Kernel and scale weights of MS-SSIM that fit images of ``spatial_shape``.

    MONAI's defaults (5 scales, 11-pixel Gaussian kernel) need images of at least 176 pixels per side. For smaller
    images this takes the most scales that fit with a kernel of 7 or more pixels (then smaller kernels), the first
    of Wang et al.'s weights renormalised to sum 1, and a kernel sigma of ``1.5 * kernel_size / 11``. For example
    250 px: 5 scales, kernel 11; 64 px: 4 scales, kernel 7; 32 px: 3 scales, kernel 7; 16 px: 2 scales, kernel 7.

    Returns:
        ``{"kernel_size", "kernel_sigma", "weights"}`` for :class:`monai.metrics.MultiScaleSSIMMetric`.

    Raises:
        ValueError: the image is smaller than 4 pixels along some axis.
    """
    smallest = min(int(s) for s in spatial_shape)
    for min_kernel in (7, 3):
        for scales in range(len(MS_SSIM_WEIGHTS), 0, -1):
            for kernel in (11, 9, 7, 5, 3):
                # MONAI's own size check, and the coarsest scale (after scales - 1 halvings) must hold the kernel
                fits = smallest // max(1, scales - 1) ** 2 > kernel - 1 and smallest // 2 ** (scales - 1) >= kernel
                if kernel >= min_kernel and fits:
                    weights = MS_SSIM_WEIGHTS[:scales]
                    return {"kernel_size": kernel, "kernel_sigma": 1.5 * kernel / 11,
                            "weights": tuple(w / sum(weights) for w in weights)}
    raise ValueError(f"MS-SSIM needs images of at least 4 pixels per axis, got {tuple(spatial_shape)}.")


def ms_ssim_diversity(samples: torch.Tensor, data_range: float = 2.0, batch_size: int = 64) -> float:
    """Mean ``1 - MS-SSIM`` over all ``N (N - 1) / 2`` pairs of samples: 0 when they are identical, larger the more
    they differ (at most 1 in practice, MONAI clips negative contrast terms).

    Kernel and scales are picked from the image size by :func:`ms_ssim_settings`, so 32-64 px samples work.

    Args:
        samples: ``(N, C, *spatial)``, 2D or 3D, ``N >= 2``; by default in ``[-1, 1]``.
        data_range: the value range of ``samples`` (2 for ``[-1, 1]``).
        batch_size: pairs per MS-SSIM call.
    """
    if samples.shape[0] < 2:
        raise ValueError(f"diversity needs at least 2 samples, got {samples.shape[0]}.")
    spatial_dims = samples.ndim - 2
    metric = MultiScaleSSIMMetric(spatial_dims, data_range=data_range, reduction="none",
                                  **ms_ssim_settings(samples.shape[2:]))
    pairs = torch.tensor(list(itertools.combinations(range(samples.shape[0]), 2)))
    x = samples.detach().float()
    values = [metric(x[p[:, 0]], x[p[:, 1]]) for p in pairs.split(batch_size)]
    return float(1.0 - torch.cat(values).mean())
