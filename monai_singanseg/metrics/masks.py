"""Statistics of generated masks: foreground fraction per sample, its histogram, and pixel-wise mean and std.

As in SinGAN-Seg (Thambawita et al., PLOS ONE 2022): figures 3 and 6 compare the distribution of the foreground
fraction of real and synthetic masks; figure 5 shows the pixel-wise mean and standard deviation of generated masks.
"""

from __future__ import annotations

import numpy as np
import torch

from monai_singanseg.intensity import LabelEncoding

__all__ = ["foreground", "foreground_fraction", "fraction_histogram", "mask_mean_std"]


def foreground(mask_channels: torch.Tensor, labels: LabelEncoding) -> torch.Tensor:
    """Foreground (any class but the background) ``(N, 1, *spatial)`` as 0/1 floats, from mask channels
    ``(N, K, *spatial)`` in ``[-1, 1]`` encoded by ``labels``."""
    return (labels.indices(mask_channels, channel_dim=1) > 0).float()


def foreground_fraction(masks: torch.Tensor) -> torch.Tensor:
    """Share of foreground pixels of every mask ``(N, 1, *spatial)`` (0/1 or boolean): ``(N,)`` in ``[0, 1]``."""
    return masks.float().reshape(masks.shape[0], -1).mean(dim=1)


def mask_mean_std(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-wise mean and (population) standard deviation over ``N`` masks ``(N, 1, *spatial)`` of 0/1 values.

    Returns:
        ``mean``, ``std``, each ``(1, *spatial)``: the mean in ``[0, 1]`` is how often a pixel is foreground; the
        std in ``[0, 0.5]`` is 0 where all masks agree.
    """
    masks = masks.float()
    return masks.mean(dim=0), masks.std(dim=0, correction=0)


def fraction_histogram(
    real: float, fractions: torch.Tensor, bins: int = 10, value_range: tuple[float, float] | None = None
) -> dict:
    """Histogram (numpy) of the synthetic foreground fractions on ``bins`` equal bins over ``value_range``
    (default: 0 to the largest fraction seen, real included), with the real fraction beside it.

    Returns:
        ``{"real": float, "edges": list of bins + 1 floats, "counts": list of bins ints}``.
    """
    values = fractions.detach().cpu().double().numpy()
    value_range = value_range or (0.0, max(float(values.max()), float(real), 1e-6))
    counts, edges = np.histogram(values, bins=bins, range=value_range)
    return {"real": float(real), "edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}
