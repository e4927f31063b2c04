"""Losses of one SinGAN scale for ``groups`` models side by side: WGAN critic terms, a per-sample gradient penalty,
and reconstruction. Every loss returns one value per model, shape ``(groups,)``: their sum trains every model on its
own loss, since no parameter is shared between models."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["gradient_penalty", "per_model_mean", "reconstruction_loss"]


def per_model_mean(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Mean of ``x`` ``(N, groups * c, *spatial)`` over everything but the model axis: ``(groups,)``."""
    return x.reshape(x.shape[0], groups, -1).mean(dim=(0, 2))


def gradient_penalty(
    critic: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generators: Sequence[torch.Generator | None] = (None,),
) -> torch.Tensor:
    """WGAN-GP penalty for a (grouped) patch critic, computed per sample and per model.

    Each sample gets its own interpolation weight between ``real`` and ``fake`` and its own penalty, the mean over
    its positions of ``(||grad_x S(x)||_2 - 1)^2`` where ``S`` is the sum of the critic's score map and the norm runs
    over the model's channels at each position. That is the reference's local (per-receptive-field) Lipschitz
    constraint, which does not change with the image size.

    Args:
        critic: maps ``(N, groups * C, *spatial)`` to score maps ``(N, groups, *spatial')``.
        real: ``(1 or N, groups * C, *spatial)``. fake: ``(N, groups * C, *spatial)``, detached from the generator.
        generators: one random generator per model for its interpolation weights (its length is ``groups``).

    Returns:
        ``(groups,)``: each model's penalty, the mean over its samples.
    """
    groups, num = len(generators), fake.shape[0]
    channels = fake.shape[1] // groups
    spatial = (1,) * (fake.ndim - 2)
    weight = torch.cat([torch.rand((num, 1, *spatial), generator=g, device=fake.device) for g in generators], 1)
    weight = weight.repeat_interleave(channels, dim=1)
    mixed = (weight * real + (1.0 - weight) * fake).requires_grad_(True)
    (grads,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    norms = grads.reshape(num, groups, channels, *grads.shape[2:]).norm(dim=2)
    return ((norms - 1.0) ** 2).reshape(num, groups, -1).mean(dim=(0, 2))


def reconstruction_loss(reconstruction: torch.Tensor, real: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Mean squared error of the reconstruction path's output against the real image, per model: ``(groups,)``."""
    return per_model_mean((reconstruction - real) ** 2, groups)
