"""The moving average of a network's weights that the step-trained generators (diffusion, StyleGAN2) sample from."""

from __future__ import annotations

from collections.abc import Collection

import torch

__all__ = ["WeightAverage"]


class WeightAverage:
    """Exponential moving average of a network's weights (Ho et al. 2020 sample from such an average), with a
    warm-up that depends on the global step only: step ``k`` uses ``min(decay, (1 + k) / (10 + k))``. The step, not
    a count of updates held in memory (as ``torch.optim.swa_utils.AveragedModel`` keeps), sets the decay, so a run
    resumed from a checkpoint averages exactly as an uninterrupted one.

    Args:
        network: the network whose weights are averaged.
        decay: the long-run decay, in ``(0, 1)``.
        weights: the average to start from (default: a copy of the network's weights).
        copied: state-dict keys copied, not averaged (besides the integer buffers, always copied): buffers that are
            averages already, such as StyleGAN's running mean of ``w``.
    """

    def __init__(self, network: torch.nn.Module, decay: float, weights: dict[str, torch.Tensor] | None = None,
                 copied: Collection[str] = ()) -> None:
        self.decay = decay
        self.copied = frozenset(copied)
        source = network.state_dict() if weights is None else weights
        self.weights = {name: value.detach().clone() for name, value in source.items()}

    @torch.no_grad()
    def update(self, network: torch.nn.Module, step: int) -> None:
        """Move the average towards the network's weights after optimisation step ``step`` (0-based)."""
        decay = min(self.decay, (1 + step) / (10 + step))
        for name, value in network.state_dict().items():
            average = self.weights[name]
            if average.is_floating_point() and name not in self.copied:
                average.lerp_(value, 1.0 - decay)
            else:
                average.copy_(value)
