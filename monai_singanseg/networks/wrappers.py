"""Small ``nn.Module`` adapters that give bundles one tensor in and one tensor out."""

from __future__ import annotations

import torch
from torch import nn

from monai_singanseg.networks.singanseg import SinGANSeg

__all__ = ["FinalOutput", "SinGANSegInjector"]


class FinalOutput(nn.Module):
    """Return the last output of a network that returns a list (MONAI's ``BasicUNetPlusPlus``).

    ``SupervisedTrainer``, inferers and ``verify_net_in_out`` expect one tensor; UNet++ returns ``[x_0_4]``, or with
    deep supervision ``[x_0_1, x_0_2, x_0_3, x_0_4]``: the last is the head through the whole nested path.

    Args:
        network: the wrapped network.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        return out[-1] if isinstance(out, (list, tuple)) else out


class SinGANSegInjector(nn.Module):
    """A trained SinGAN-Seg model as a network ``(N, C, *spatial) -> (N, C, *spatial)``, both in ``[-1, 1]``.

    The input (image channels then mask channels, normalised like the training data) is injected at
    ``start_scale`` and the finer scales add their detail: the operation behind harmonization and editing, and the
    network a generation bundle describes in its metadata. The output has the input's spatial shape.

    Args:
        model: a trained :class:`SinGANSeg`.
        start_scale: scale of the injection (2-3 suit harmonization; higher keeps more of the input).
        seed: seed of the noise, so a forward pass is repeatable.
    """

    def __init__(self, model: SinGANSeg, start_scale: int = 1, seed: int = 0) -> None:
        super().__init__()
        if not 0 <= start_scale < model.num_scales:
            raise ValueError(f"start_scale must lie in [0, {model.num_scales - 1}], got {start_scale}.")
        self.model = model
        self.start_scale = start_scale
        self.seed = seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        model = self.model
        if x.shape[1] != model.config.channels:
            raise ValueError(f"the model takes {model.config.channels} channels, the input has {x.shape[1]}.")
        ratio = [s / t for s, t in zip(x.shape[2:], model.shapes[-1])]
        generator = torch.Generator(device=model.device).manual_seed(self.seed)
        out = model.generate(x.shape[0], self.start_scale, scale_ratio=ratio, initial=x, generator=generator)
        # scale rounding can leave the output a voxel off the input's size
        return out if out.shape[2:] == x.shape[2:] else torch.nn.functional.interpolate(out, size=x.shape[2:])
