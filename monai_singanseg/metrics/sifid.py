"""SIFID: the Fréchet distance between the Inception feature statistics of one real and one synthetic image.

Shaham et al., "SinGAN: Learning a Generative Model from a Single Natural Image", ICCV 2019, section 4.2. Each
image gives a feature map ``(64, h, w)`` from the Inception-v3 stem (:mod:`.features`); its ``h * w`` positions are
the samples whose mean and covariance enter the Fréchet distance (scipy's ``sqrtm``). Lower is closer; identical
images give 0.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import scipy.linalg
import torch

from monai_singanseg.metrics.features import FeatureExtractor, extract, load_inception_stem, to_three_channels

__all__ = ["feature_statistics", "frechet_distance", "sifid"]


def feature_statistics(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(C,)`` and covariance ``(C, C)`` over the positions of one feature map ``(C, *spatial)``."""
    flat = features.detach().cpu().double().reshape(features.shape[0], -1).numpy()
    return flat.mean(axis=1), np.cov(flat)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between the Gaussians ``N(mu1, cov1)`` and ``N(mu2, cov2)``:
    ``|mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2))``, at least 0.

    The same formula and rule as MONAI's ``monai.metrics.fid.compute_frechet_distance`` and the SIFID/FID reference
    code (tested equal): only when the matrix square root is not finite is ``eps`` added to the covariances'
    diagonals. A rank-deficient product (fewer positions than channels, the usual case for SIFID) is not
    regularised: scipy warns that it is singular, yet its square root is accurate (it agrees with an eigenvalue
    computation to 1e-9), while adding ``eps`` would bias the distance by about ``channels * eps``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # "Matrix is singular": accurate all the same
        covmean = scipy.linalg.sqrtm(cov1 @ cov2)
        if not np.isfinite(covmean).all():
            offset = np.eye(cov1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    diff = mu1 - mu2
    value = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(np.real(covmean))
    return max(float(value), 0.0)


def sifid(
    real: torch.Tensor,
    fake: torch.Tensor,
    extractor: FeatureExtractor | None = None,
    weights: str | os.PathLike | None = None,
    batch_size: int = 16,
) -> torch.Tensor:
    """SIFID of every synthetic image against the real one.

    Images are fed at their own size in ``[-1, 1]`` (no resizing, as SinGAN's SIFID). Three channels are read as
    RGB; any other count as one grey image per channel (repeated to RGB), whose SIFIDs are averaged.

    Args:
        real: the training image ``(1, C, H, W)`` (or one real image per fake, ``(N, C, H, W)``) in ``[-1, 1]``,
            image channels only.
        fake: synthetic images ``(N, C, H, W)`` in ``[-1, 1]``.
        extractor: any callable ``(N, 3, H, W) -> (N, F, h, w)``; by default the Inception-v3 stem with weights
            from ``weights`` (see :func:`~monai_singanseg.metrics.features.find_inception_weights`).
        weights: the Inception weight file, when ``extractor`` is not given.
        batch_size: images per forward pass.

    Returns:
        ``(N,)`` SIFID per synthetic image, at least 0.

    Raises:
        ValueError: the inputs are not 2D images of the same channel count.
        SinGANSegInputError: no ``extractor`` and no Inception weight file found.
    """
    if real.ndim != 4 or fake.ndim != 4 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"SIFID needs 2D images (N, C, H, W) of equal channels, got {tuple(real.shape)} and "
                         f"{tuple(fake.shape)}.")
    if real.shape[0] not in (1, fake.shape[0]):
        raise ValueError(f"real holds {real.shape[0]} images for {fake.shape[0]} fakes; give 1 or {fake.shape[0]}.")
    if extractor is None:
        extractor = load_inception_stem(weights, device=fake.device)
    scores = torch.zeros(fake.shape[0], dtype=torch.float64)
    groups = list(zip(to_three_channels(real), to_three_channels(fake)))
    for real_rgb, fake_rgb in groups:
        real_stats = [feature_statistics(f) for f in extract(extractor, real_rgb, batch_size)]
        fake_features = extract(extractor, fake_rgb, batch_size)
        for i, features in enumerate(fake_features):
            mu, cov = real_stats[i if len(real_stats) > 1 else 0]
            scores[i] += frechet_distance(mu, cov, *feature_statistics(features))
    return (scores / len(groups)).float()
