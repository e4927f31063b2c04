"""Losses of one SinGAN scale: WGAN critic terms, a per-sample gradient penalty, and reconstruction."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["gradient_penalty", "reconstruction_loss"]


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad_x D(x)||_2 - 1)^2]`` with one interpolation weight and one norm per sample.

    ``D(x)`` is the critic's mean score of a sample, the quantity its loss uses; the gradient norm is taken over all
    of a sample's channels and positions (the SinGAN reference took it per pixel, over channels only).

    Args:
        critic: maps ``(N, C, *spatial)`` to a score map ``(N, 1, *spatial')``.
        real: ``(1 or N, C, *spatial)``. fake: ``(N, C, *spatial)``, detached from the generator.
        generator: random generator of the interpolation weights.
    """
    num = fake.shape[0]
    weight = torch.rand((num,) + (1,) * (fake.ndim - 1), generator=generator, device=fake.device)
    mixed = (weight * real + (1.0 - weight) * fake).requires_grad_(True)
    scores = critic(mixed).flatten(1).mean(dim=1)
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grads.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def reconstruction_loss(reconstruction: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the reconstruction path's output and the real image at this scale."""
    return F.mse_loss(reconstruction, real)
