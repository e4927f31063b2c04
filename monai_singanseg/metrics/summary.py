"""All metrics of one batch of synthetic pairs against the training pair, as one JSON-ready dict."""

from __future__ import annotations

import torch

from monai_singanseg.intensity import LabelEncoding
from monai_singanseg.metrics.artifacts import frame_score, max_rings, pinned_content, sharpness_ratio
from monai_singanseg.metrics.diversity import ms_ssim_diversity
from monai_singanseg.metrics.features import FeatureExtractor
from monai_singanseg.metrics.masks import foreground, foreground_fraction
from monai_singanseg.metrics.memorisation import memorisation_check
from monai_singanseg.metrics.sifid import sifid
from monai_singanseg.metrics.swd import sliced_wasserstein

__all__ = ["quality_metrics"]


def _mean_std(values: torch.Tensor) -> dict:
    return {"mean": round(float(values.mean()), 6), "std": round(float(values.std(correction=0)), 6)}


def quality_metrics(
    real: torch.Tensor,
    samples: torch.Tensor,
    image_channels: int,
    labels: LabelEncoding,
    extractor: FeatureExtractor | None = None,
    swd_options: dict | None = None,
    memorisation_fraction: float = 0.5,
    real_image_full: torch.Tensor | None = None,
) -> dict:
    """SIFID, SWD, diversity, foreground fraction, memorisation and artifacts of ``samples`` against the training pair.

    Image metrics read the image channels only; mask metrics the mask channels, decoded by ``labels``.

    Args:
        real: the training pair ``(1, C, *spatial)`` in ``[-1, 1]``, image channels first, then mask channels.
        samples: synthetic pairs ``(N, C, *spatial)`` in ``[-1, 1]``, the same layout and shape, ``N >= 2``.
        image_channels: how many of the ``C`` channels are image channels.
        labels: the encoding of the mask channels.
        extractor: the SIFID feature extractor; ``None`` leaves SIFID out (``"sifid": None``). 2D only.
        swd_options: keyword arguments of :func:`~monai_singanseg.metrics.swd.sliced_wasserstein`.
        memorisation_fraction: threshold of :func:`~monai_singanseg.metrics.memorisation.memorisation_check`.
        real_image_full: the real image's channels ``(1, image_channels, *own size)`` in ``[-1, 1]`` at its own size,
            for the sharpness figure (default: ``real``'s, at the model's size).

    Returns:
        ``{"sifid": {"mean", "std"} or None, "swd": {"mean", "std"}, "ms_ssim_diversity": float,
        "foreground_fraction": {"real", "mean", "std"}, "memorisation": {...}, "artifacts": {"frame": {...} or
        None (images too small), "pinned": {...}, "sharpness": {...}}}`` (:mod:`~monai_singanseg.metrics.artifacts`).
    """
    real_image, fake_image = real[:, :image_channels], samples[:, :image_channels]
    use_sifid = extractor is not None and samples.ndim == 4
    real_fg, sample_fg = foreground(real[:, image_channels:], labels), foreground(samples[:, image_channels:], labels)
    real_fraction, fractions = foreground_fraction(real_fg), foreground_fraction(sample_fg)
    depth = min(6, max_rings(samples.shape[2:]) - 2)  # small test volumes have few rings
    full = real_image if real_image_full is None else real_image_full
    return {
        "sifid": _mean_std(sifid(real_image, fake_image, extractor)) if use_sifid else None,
        "swd": _mean_std(sliced_wasserstein(real_image, fake_image, **(swd_options or {}))),
        "ms_ssim_diversity": round(ms_ssim_diversity(fake_image), 6),
        "foreground_fraction": {"real": round(float(real_fraction[0]), 6), **_mean_std(fractions)},
        "memorisation": memorisation_check(real_image, fake_image, memorisation_fraction).to_dict(),
        "artifacts": {
            "frame": frame_score(real, samples, image_channels, depth, (real_fg, sample_fg)) if depth >= 1 else None,
            "pinned": pinned_content(real, samples, image_channels, sample_fg, real_fg),
            "sharpness": sharpness_ratio(full.to(fake_image.device), fake_image),
        },
    }
