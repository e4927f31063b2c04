"""Widening from the previous scale (``OptimConfig.widen_from_previous``), an experiment off in both schedules.

Where the networks' width doubles, the reference starts the new scale from scratch; the option embeds the previous
scale's narrower networks in the first channels of the freshly initialised wider ones (:func:`~monai_singanseg.
networks.widen_state`), so the first step computes the previous scale's function, as Net2Net widens a network. At
96 px it measured worse (docs/benchmarks.md, "What was tried on the fine scales"); it stays so that the configs and
checkpoints that name it still train and load alike, out of the trainer's default path.
"""

from __future__ import annotations

import torch

from monai_singanseg.networks import ScaleCritic, ScaleGenerator, widen_state

__all__ = ["embed_previous"]


def embed_previous(generator: ScaleGenerator, critic: ScaleCritic, previous_generator: dict[str, torch.Tensor],
                   previous_critic: dict[str, torch.Tensor]) -> None:
    """Embed the previous scale's (narrower) generator and critic states in the new, freshly initialised
    ``generator`` and ``critic``, in place."""
    generator.load_state_dict(widen_state(generator.state_dict(), previous_generator))
    critic.load_state_dict(widen_state(critic.state_dict(), previous_critic))
