"""Losses of one SinGAN scale: WGAN critic terms, a per-sample gradient penalty, and reconstruction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["gradient_penalty", "reconstruction_loss"]


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """WGAN-GP penalty for a patch critic, computed per sample.

    Each sample gets its own interpolation weight between ``real`` and ``fake`` and its own penalty, the mean over
    its positions of ``(||grad_x S(x)||_2 - 1)^2`` where ``S`` is the sum of the critic's score map and the norm runs
    over channels at each position. That is the reference's local (per-receptive-field) Lipschitz constraint, which
    does not change with the image size; the batch mean of the per-sample penalties is returned.

    Args:
        critic: maps ``(N, C, *spatial)`` to a score map ``(N, 1, *spatial')``.
        real: ``(1 or N, C, *spatial)``. fake: ``(N, C, *spatial)``, detached from the generator.
        generator: random generator of the interpolation weights.
    """
    num = fake.shape[0]
    weight = torch.rand((num,) + (1,) * (fake.ndim - 1), generator=generator, device=fake.device)
    mixed = (weight * real + (1.0 - weight) * fake).requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    per_position = ((grads.norm(dim=1) - 1.0) ** 2).flatten(1)
    return per_position.mean(dim=1).mean()


def reconstruction_loss(reconstruction: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the reconstruction path's output and the real image at this scale."""
    return F.mse_loss(reconstruction, real)
