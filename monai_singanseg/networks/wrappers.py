"""Small ``nn.Module`` adapters that give bundles one tensor in and one tensor out."""

from __future__ import annotations

import torch
from torch import nn

from monai_singanseg.networks.singanseg import SinGANSeg
from monai_singanseg.pyramid import resize

__all__ = ["FinalOutput", "SinGANSegInjector", "inject"]


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


def inject(model: SinGANSeg, x: torch.Tensor, at_scale: int, seed: int = 0) -> torch.Tensor:
    """Inject ``x`` at scale ``at_scale`` of ``model`` and let the finer scales redraw it.

    The pyramid is scaled to ``x``'s size (``scale_ratio``), ``x`` is resized to the injection scale and the scales
    from ``at_scale`` up add their detail with noise seeded by ``seed``: the step behind harmonization, editing and
    :class:`SinGANSegInjector`.

    Args:
        model: a trained :class:`SinGANSeg`.
        x: ``(N, C, *spatial)`` in ``[-1, 1]``: the model's image channels then its mask channels, normalised like
            the training data.
        at_scale: scale of the injection, in ``[0, model.trained_scales - 1]``; higher keeps more of ``x``.
        seed: seed of the noise, so the result is repeatable.

    Returns:
        ``(N, C, *spatial)`` in ``[-1, 1]``, ``x``'s spatial shape, on the model's device.
    """
    ratio = [s / t for s, t in zip(x.shape[2:], model.shapes[-1])]
    generator = torch.Generator(device=model.device).manual_seed(seed)
    out = model.generate(x.shape[0], at_scale, scale_ratio=ratio, initial=x, generator=generator)
    # The output has x's size unless the model is partly trained (its last trained scale is coarser) or rounding
    # leaves it a voxel off. Resample then as the pyramid does (bicubic 2D, trilinear 3D), not by nearest neighbour,
    # which upsamples in blocks and drops or repeats whole rows, shifting content by up to a voxel: every channel,
    # the mask's too, is still continuous here (masks are thresholded later), so outlines stay smooth. The clamp
    # removes bicubic overshoot, keeping the promised [-1, 1].
    return out if out.shape[2:] == x.shape[2:] else resize(out, x.shape[2:]).clamp(-1.0, 1.0)


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
        return inject(model, x, self.start_scale, self.seed)
