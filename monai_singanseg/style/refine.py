"""One entry point for style refinement of samples, and the real image it takes its style from."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from monai.utils import look_up_option
from torch import nn
from tqdm.auto import tqdm

from monai_singanseg.config import STYLE_CONTENT_STYLE, STYLE_METHODS, STYLE_STEPS
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.pyramid import resize
from monai_singanseg.style.gatys import style_transfer
from monai_singanseg.style.histogram import match_histograms
from monai_singanseg.style.vgg import load_vgg_features

__all__ = ["STYLE_METHODS", "parse_content_style", "refine", "refine_samples", "style_reference"]



def parse_content_style(text: str | Sequence[float]) -> tuple[float, float]:
    """``"1:1000"`` (or a pair of numbers) → ``(1.0, 1000.0)``: the content and style weights, both >= 0."""
    try:
        parts = [float(v) for v in (text.split(":") if isinstance(text, str) else text)]
    except ValueError as err:
        raise SinGANSegInputError(f"content:style ratio '{text}': expected two numbers like 1:1000.") from err
    if len(parts) != 2 or min(parts) < 0 or max(parts) == 0:
        raise SinGANSegInputError(f"content:style ratio '{text}': expected two non-negative numbers like 1:1000.")
    return parts[0], parts[1]


def refine(
    image: torch.Tensor,
    real_image: torch.Tensor,
    method: str = "histogram",
    weights: str | os.PathLike | None = None,
    features: nn.Sequential | None = None,
    content_style: str | Sequence[float] = STYLE_CONTENT_STYLE,
    steps: int = STYLE_STEPS,
    progress: bool = False,
) -> torch.Tensor:
    """Refine the image channels of samples towards the real image's style.

    Args:
        image: the samples' image channels ``(N, C_img, *spatial)`` in ``[-1, 1]`` (never the mask channels).
        real_image: the training image ``(1, C_img, *spatial')`` in ``[-1, 1]``, e.g. from :func:`style_reference`.
        method: ``"none"``; ``"histogram"`` (per-channel histogram matching, any dimension, no weights);
            ``"vgg"`` (Gatys neural style transfer on pretrained VGG features, 2D only).
        weights: VGG weights file (``"vgg"``; default: ``$SINGANSEG_VGG_WEIGHTS``, then the torch hub cache).
        features: already loaded VGG features, used instead of ``weights`` (to load once for many calls).
        content_style: ``"alpha:beta"`` or ``(alpha, beta)``, the content and style weights (paper: ``1:1000``).
        steps: optimisation iterations per sample (``"vgg"``).
        progress: a progress bar over the samples (``"vgg"``).

    Returns:
        ``(N, C_img, *spatial)`` in ``[-1, 1]``.

    Raises:
        VGGWeightsNotFoundError: ``"vgg"`` without weights; the message says how to provide them.

    Example:
        >>> refined = refine(torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(1, 1, 40, 40) * 2 - 1, "histogram")
    """
    method = look_up_option(method, STYLE_METHODS)
    if real_image.ndim == image.ndim - 1:
        real_image = real_image.unsqueeze(0)
    if real_image.shape[1] != image.shape[1]:
        raise SinGANSegInputError(f"the style reference has {real_image.shape[1]} channels, the samples' image "
                                  f"{image.shape[1]}.")
    real_image = real_image.to(image.device, image.dtype)
    if method == "none":
        return image
    if method == "histogram":
        return match_histograms(image, real_image).clamp(-1.0, 1.0)
    if image.ndim != 4:
        raise SinGANSegInputError(f"VGG style refinement works on 2D images; these samples are {image.ndim - 2}D. "
                                  "Use --style histogram (method='histogram') for volumes.")
    if features is None:
        features = load_vgg_features(weights, pooling="avg", device=image.device)[0]
    alpha_beta = parse_content_style(content_style)
    out = []
    for i in tqdm(range(image.shape[0]), desc="VGG style", disable=not progress):
        out.append(style_transfer(image[i : i + 1], real_image, features, alpha_beta, steps)[0])
    return torch.cat(out)


def refine_samples(x: torch.Tensor, image_channels: int, real_image: torch.Tensor, method: str, **options):
    """Refine the image channels of model outputs ``(N, C, *spatial)``; the mask channels are returned unchanged.

    ``options`` go to :func:`refine`.
    """
    if look_up_option(method, STYLE_METHODS) == "none":
        return x
    refined = refine(x[:, :image_channels], real_image, method, **options)
    return torch.cat([refined, x[:, image_channels:]], dim=1)


def style_reference(model, images: Sequence[str | os.PathLike] | None = None) -> torch.Tensor:
    """The real image ``(1, image_channels, *finest shape)`` in ``[-1, 1]`` to take the style from.

    Checkpoints hold no pixel of the training image, so either pass the training image file(s) (``images``, stacked
    as channels like ``singanseg train --image``; mapped with the model's own intensity map and resized to the
    finest scale), or get the model's reconstruction of its training image (the fixed-noise path through every
    scale, which training fits to the image by its reconstruction loss: a close stand-in, no file needed).

    Args:
        model: a trained :class:`~monai_singanseg.networks.SinGANSeg`.
        images: the training image file(s), or ``None`` for the reconstruction.
    """
    n_img = model.config.image_channels
    finest = model.shapes[-1]
    if not images:
        return model.reconstruct()[:, :n_img].detach()
    from monai_singanseg.io import read_stacked_images

    stacked = read_stacked_images(images).as_tensor().float()
    if stacked.shape[0] != n_img or stacked.ndim - 1 != model.config.spatial_dims:
        raise SinGANSegInputError(
            f"{images[0]}: the style image has {stacked.shape[0]} channel(s) in {stacked.ndim - 1}D; the model makes "
            f"{n_img} image channel(s) in {model.config.spatial_dims}D (pass the image(s) it was trained on)."
        )
    real = model.intensity.normalize(stacked, channel_dim=0).unsqueeze(0).to(model.device)
    return resize(real, finest)
