"""The per-scale generator and critic of SinGAN, built from MONAI blocks for 2D and 3D."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.utils import look_up_option
from torch import nn

from monai_singanseg.config import ACTS, NORMS, NetworkConfig

__all__ = ["ScaleCritic", "ScaleGenerator", "init_weights"]

_ACT_ARGS = {"leakyrelu": ("leakyrelu", {"negative_slope": 0.2}), "elu": "elu", "relu": "relu"}
_NORM_ARGS = {"batch": "batch", "instance": ("instance", {"affine": True}), "none": None}


def _conv_stack(spatial_dims: int, in_channels: int, width: int, config: NetworkConfig) -> nn.Sequential:
    """Head and body: ``num_layers - 1`` unpadded conv → norm → act blocks of constant width."""
    act = _ACT_ARGS[look_up_option(config.act, ACTS)]
    norm = _NORM_ARGS[look_up_option(config.norm, NORMS)]
    layers = []
    for i in range(config.num_layers - 1):
        layers.append(
            Convolution(
                spatial_dims,
                in_channels if i == 0 else width,
                width,
                kernel_size=config.kernel_size,
                padding=0,
                act=act,
                norm=norm,
            )
        )
    return nn.Sequential(*layers)


class ScaleGenerator(nn.Module):
    """Generator of one scale: adds a residual learnt from noise to the upsampled coarser output.

    ``forward(noise, previous)`` zero-pads ``noise + previous`` by ``config.receptive_pad`` per side, runs
    ``num_layers`` unpadded convolutions (the last one with tanh) and adds ``previous``, so the output has the
    input's shape.

    Args:
        spatial_dims: 2 or 3.
        channels: channels of the image + mask tensor.
        width: feature maps of the hidden layers.
        config: architecture options.

    Example:
        >>> g = ScaleGenerator(2, channels=4, width=32, config=NetworkConfig())
        >>> g(torch.zeros(1, 4, 25, 25), torch.zeros(1, 4, 25, 25)).shape
        torch.Size([1, 4, 25, 25])
    """

    def __init__(self, spatial_dims: int, channels: int, width: int, config: NetworkConfig) -> None:
        super().__init__()
        self.pad = config.receptive_pad
        self.features = _conv_stack(spatial_dims, channels, width, config)
        self.tail = Convolution(
            spatial_dims, width, channels, kernel_size=config.kernel_size, padding=0, conv_only=True
        )
        self.out_act = nn.Tanh()

    def forward(self, noise: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        x = F.pad(noise + previous, [self.pad] * (2 * (noise.ndim - 2)))
        return self.out_act(self.tail(self.features(x))) + previous


class ScaleCritic(nn.Module):
    """Markovian (patch) critic of one scale: a map of scores, one per receptive field.

    Args:
        spatial_dims: 2 or 3.
        channels: channels of the image + mask tensor.
        width: feature maps of the hidden layers.
        config: architecture options.

    Example:
        >>> ScaleCritic(2, 4, 32, NetworkConfig())(torch.zeros(2, 4, 25, 25)).shape
        torch.Size([2, 1, 15, 15])
    """

    def __init__(self, spatial_dims: int, channels: int, width: int, config: NetworkConfig) -> None:
        super().__init__()
        self.features = _conv_stack(spatial_dims, channels, width, config)
        self.tail = Convolution(spatial_dims, width, 1, kernel_size=config.kernel_size, padding=0, conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.features(x))


def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Reference initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d, nn.InstanceNorm3d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
            nn.init.zeros_(m.bias)
