"""Neural style transfer (Gatys et al.) from the real image to a sample, on the image channels only.

Gatys, Ecker and Bethge, "Image Style Transfer Using Convolutional Neural Networks", CVPR 2016: starting from the
sample, optimise its pixels so that its VGG response at ``conv4_2`` stays close to the sample's own (content) while
the Gram matrices of its responses at ``conv1_1 .. conv5_1`` approach the real image's (style).

    L = alpha * 1/2 sum (F - P)^2  +  beta * sum_l w_l / (4 N_l^2) sum (G_l - A_l)^2,   G_l = F_l F_l^T / M_l

with ``alpha : beta = 1 : 1000`` (the paper's ratio) and ``w_l = 1/5``; ``N_l`` feature maps of ``M_l`` pixels.
The paper's balance is in the units of its Caffe VGG (inputs 0-255): other weights (torchvision's were trained on
inputs scaled by 1/255 and normalised) change the activation scale and so the effective ratio; tune it with
``content_style``.

Channels: 3 image channels are RGB; any other count is refined channel by channel, each one as a grey image
repeated to RGB (the gradient of the three copies is summed back into the one channel). Images are 2D only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.utils import look_up_option
from torch import nn

from monai_singanseg.config import STYLE_CONTENT_STYLE, STYLE_STEPS
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.style.vgg import VGG_CONFIGS, layer_indices

__all__ = [
    "CONTENT_LAYER",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "STYLE_LAYERS",
    "VGGLayers",
    "gram_matrix",
    "style_transfer",
    "to_vgg_input",
]

CONTENT_LAYER = "conv4_2"
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _arch_of(features: nn.Sequential) -> str:
    convs = sum(isinstance(m, nn.Conv2d) for m in features)
    for arch, config in VGG_CONFIGS.items():
        if convs == sum(v != "M" for v in config):
            return arch
    raise ValueError(f"features hold {convs} convolutions; expected VGG16 (13) or VGG19 (16).")


class VGGLayers(nn.Module):
    """Responses of named VGG layers (after their ReLU), stopping at the deepest one needed.

    Args:
        features: :func:`~monai_singanseg.style.vgg.vgg_features` (pretrained or not).
        layers: names such as ``"conv4_2"``.

    Example:
        >>> from monai_singanseg.style.vgg import vgg_features
        >>> out = VGGLayers(vgg_features("vgg16"), ["conv1_1", "conv4_2"])(torch.zeros(1, 3, 32, 32))
        >>> out["conv1_1"].shape, out["conv4_2"].shape
        (torch.Size([1, 64, 32, 32]), torch.Size([1, 512, 4, 4]))
    """

    def __init__(self, features: nn.Sequential, layers: Sequence[str]) -> None:
        super().__init__()
        names = layer_indices(_arch_of(features))
        self.wanted = {look_up_option(name, names): name for name in layers}
        self.body = features[: max(self.wanted) + 1]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for index, module in enumerate(self.body):
            x = module(x)
            if index in self.wanted:
                out[self.wanted[index]] = x
        return out


def gram_matrix(feature: torch.Tensor) -> torch.Tensor:
    """``(B, N, *spatial)`` → ``(B, N, N)``: ``F F^T / M`` with ``M`` the number of positions."""
    flat = feature.reshape(feature.shape[0], feature.shape[1], -1)
    return flat @ flat.transpose(1, 2) / flat.shape[-1]


def to_vgg_input(x: torch.Tensor) -> torch.Tensor:
    """``(B, 1 or 3, H, W)`` in ``[-1, 1]`` → ``(B, 3, H, W)`` RGB normalised with the ImageNet mean and std."""
    x = (x + 1.0) / 2.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    return (x - mean) / std


def _as_rgb_batch(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` → ``(N, 3, H, W)`` when ``C == 3``, else ``(N * C, 1, H, W)`` (one grey image per channel)."""
    return x if x.shape[1] == 3 else x.reshape(-1, 1, *x.shape[2:])


def style_transfer(
    image: torch.Tensor,
    reference: torch.Tensor,
    features: nn.Sequential,
    content_style: Sequence[float] = STYLE_CONTENT_STYLE,
    steps: int = STYLE_STEPS,
    lr: float = 1.0,
    content_layer: str = CONTENT_LAYER,
    style_layers: Sequence[str] = STYLE_LAYERS,
) -> tuple[torch.Tensor, list[float]]:
    """Restyle ``image`` with the style (Gram matrices) of ``reference``, keeping its content.

    All samples of the batch are optimised together; their losses are independent sums, so each sample's optimum is
    the one it would have alone.

    Args:
        image: samples' image channels ``(N, C, H, W)`` in ``[-1, 1]``; the starting point.
        reference: the real image ``(1, C, H', W')`` in ``[-1, 1]`` (any size).
        features: VGG features from :func:`~monai_singanseg.style.vgg.load_vgg_features` (or random, for tests).
        content_style: ``(alpha, beta)``, weights of the content and style losses (paper: ``1 : 1000``).
        steps: L-BFGS iterations (the paper's optimiser, with a strong-Wolfe line search; an Adam alternative, used
            nowhere, was removed in issue 29).
        lr: L-BFGS step size.
        content_layer: layer whose response is kept.
        style_layers: layers whose Gram matrices are matched, weighted equally.

    Returns:
        ``(refined, losses)``: ``(N, C, H, W)`` clipped to ``[-1, 1]``, and the total loss at every evaluation:
        ``losses[0]`` at the sample, ``losses[-1]`` at the result (before clipping).
    """
    if image.ndim != 4:
        raise SinGANSegInputError(
            f"VGG style refinement works on 2D images (N, C, H, W); got {image.ndim - 2}D samples. "
            "Use --style histogram for volumes."
        )
    if reference.ndim == 3:
        reference = reference.unsqueeze(0)
    if reference.shape[:2] != (1, image.shape[1]):
        raise ValueError(f"reference must be (1, {image.shape[1]}, H, W), got {tuple(reference.shape)}.")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    net = VGGLayers(features, [content_layer, *style_layers]).to(image.device)
    for p in net.parameters():
        p.requires_grad_(False)
    loss_fn = _gatys_loss(net, image, reference, content_style, content_layer, style_layers)
    x = image.detach().float().clone().requires_grad_(True)
    losses: list[float] = []
    opt = torch.optim.LBFGS([x], lr=lr, max_iter=steps, history_size=50, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        losses.append(float(loss.detach()))
        return loss

    opt.step(closure)
    with torch.no_grad():
        losses.append(float(loss_fn(x)))
    return x.detach().clamp(-1.0, 1.0).to(image.dtype), losses


def _gatys_loss(
    net: VGGLayers, image: torch.Tensor, reference: torch.Tensor, content_style: Sequence[float], content_layer: str,
    style_layers: Sequence[str],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Gatys et al.'s loss of a batch ``x`` shaped like ``image``: ``alpha`` times the content loss against
    ``image``'s response at ``content_layer`` plus ``beta`` times the style loss against ``reference``'s Gram
    matrices at ``style_layers`` (``(alpha, beta) = content_style``), each sample's terms summed independently."""
    alpha, beta = (float(v) for v in content_style)
    with torch.no_grad():
        target = net(to_vgg_input(_as_rgb_batch(image.float())))[content_layer]
        ref_out = net(to_vgg_input(_as_rgb_batch(reference.float())))
        # one Gram target per reference channel (or one for RGB), repeated for every sample
        grams = {name: gram_matrix(ref_out[name]).repeat(image.shape[0], 1, 1) for name in style_layers}

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        out = net(to_vgg_input(_as_rgb_batch(x)))
        content = 0.5 * (out[content_layer] - target).pow(2).sum()
        style = x.new_zeros(())
        for name in style_layers:
            channels = out[name].shape[1]
            style = style + (gram_matrix(out[name]) - grams[name]).pow(2).sum() / (4 * channels**2 * len(style_layers))
        return alpha * content + beta * style

    return loss_fn
