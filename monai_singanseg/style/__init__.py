"""Style refinement of synthetic images towards the real training image (the image channels only; labels never change).

- :func:`refine` — one entry point: ``"none"``, ``"histogram"`` (weight-free) or ``"vgg"`` (Gatys style transfer).
- :func:`match_histograms` — exact per-channel histogram matching, any dimension.
- :func:`style_transfer` — Gatys content + Gram-matrix style optimisation on VGG features.
- :func:`vgg_features` / :func:`load_vgg_features` — torchvision-layout VGG16/VGG19 features from local weights.
"""

from __future__ import annotations

from monai_singanseg.style.gatys import CONTENT_LAYER, STYLE_LAYERS, VGGLayers, gram_matrix, style_transfer
from monai_singanseg.style.histogram import match_histograms
from monai_singanseg.style.refine import STYLE_METHODS, parse_content_style, refine, refine_samples, style_reference
from monai_singanseg.style.vgg import (
    WEIGHTS_ENV,
    VGGWeightsNotFoundError,
    find_vgg_weights,
    layer_indices,
    load_vgg_features,
    vgg_features,
)

__all__ = [
    "CONTENT_LAYER",
    "STYLE_LAYERS",
    "STYLE_METHODS",
    "WEIGHTS_ENV",
    "VGGLayers",
    "VGGWeightsNotFoundError",
    "find_vgg_weights",
    "gram_matrix",
    "layer_indices",
    "load_vgg_features",
    "match_histograms",
    "parse_content_style",
    "refine",
    "refine_samples",
    "style_reference",
    "style_transfer",
    "vgg_features",
]
