"""Quality metrics of synthetic image + mask pairs: SIFID, sliced Wasserstein distance, MS-SSIM diversity, mask
statistics, a memorisation check and tell-tale artifacts (frame, pinned content, sharpness). See docs/metrics.md
and docs/quality.md."""

from __future__ import annotations

from monai_singanseg.metrics.artifacts import (
    border_distance,
    frame_score,
    pinned_content,
    pinned_maps,
    ring_means,
    sharpness,
    sharpness_ratio,
)
from monai_singanseg.metrics.diversity import ms_ssim_diversity, ms_ssim_settings
from monai_singanseg.metrics.features import (
    INCEPTION_WEIGHT_FILES,
    INCEPTION_WEIGHTS_ENV,
    FeatureExtractor,
    InceptionStem,
    find_inception_weights,
    load_inception_stem,
)
from monai_singanseg.metrics.masks import foreground, foreground_fraction, fraction_histogram, mask_mean_std
from monai_singanseg.metrics.memorisation import MemorisationResult, memorisation_check
from monai_singanseg.metrics.sifid import feature_statistics, frechet_distance, sifid
from monai_singanseg.metrics.summary import quality_metrics
from monai_singanseg.metrics.swd import extract_patches, sliced_wasserstein

__all__ = [
    "INCEPTION_WEIGHTS_ENV",
    "INCEPTION_WEIGHT_FILES",
    "FeatureExtractor",
    "InceptionStem",
    "MemorisationResult",
    "border_distance",
    "extract_patches",
    "feature_statistics",
    "find_inception_weights",
    "foreground",
    "foreground_fraction",
    "fraction_histogram",
    "frame_score",
    "frechet_distance",
    "load_inception_stem",
    "mask_mean_std",
    "memorisation_check",
    "ms_ssim_diversity",
    "ms_ssim_settings",
    "pinned_content",
    "pinned_maps",
    "quality_metrics",
    "ring_means",
    "sharpness",
    "sharpness_ratio",
    "sifid",
    "sliced_wasserstein",
]
