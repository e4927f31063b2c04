"""Coarser scales trained along with the current one (ConSinGAN's concurrent stages, ``OptimConfig.concurrent_scales``).

ConSinGAN (Hinz et al., WACV 2021) trains the last stages of its generator at once, each stage below at a fraction of
the learning rate of the one above. Here the last ``concurrent_scales`` frozen generators join the generator's
optimiser, one parameter group each at ``concurrent_lr_scale ** d`` of its rate, and the generator's losses reach them
through the coarser path, recomputed with gradients from the noise the critic's sample was drawn with, and through the
reconstruction path from the first scale trained along.

An experiment: at 96 px it measured no gain (docs/benchmarks.md, "What was tried on the fine scales"), and both
schedules leave it off. It stays so that the configs and checkpoints that name it still train and load alike; the
trainer's default path (``concurrent_scales=0``) builds no :class:`TrainedAlong` and never enters this module's
code but for :func:`trained_along`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from monai_singanseg.config import OptimConfig
from monai_singanseg.networks import ScaleGenerator, SinGANSeg
from monai_singanseg.pyramid import resize

__all__ = ["TrainedAlong", "along_reconstruction", "keep_trained_along", "trained_along"]


def trained_along(optim: OptimConfig, scale: int) -> range:
    """The coarser scales that train along with ``scale`` (the last ``optim.concurrent_scales`` of them); empty by
    default."""
    return range(scale - min(optim.concurrent_scales, scale), scale)


class TrainedAlong:
    """The coarser grouped generators that train along with a scale, and the two paths through them.

    Args:
        generators: the generators of the scales trained along (coarsest first); made trainable here.
        first: the pyramid level of the first of them.
        rec_start: the reconstruction path's input at scale ``first``, ``(1, K * C, *shape)``.
        rec_noise: the reconstruction noise of each of them (the fixed noise at the coarsest scale, zeros above).
        shape: the spatial shape of the scale being trained, which both paths are upsampled to.

    Raises:
        ValueError: not one reconstruction noise per generator.
    """

    def __init__(self, generators: Sequence[ScaleGenerator], first: int, rec_start: torch.Tensor,
                 rec_noise: Sequence[torch.Tensor], shape: Sequence[int]) -> None:
        if len(rec_noise) != len(generators):
            raise ValueError(f"coarser_rec_noise needs one tensor per trained coarser scale ({len(generators)}), "
                             f"got {len(rec_noise)}.")
        self.generators = [g.requires_grad_(True) for g in generators]
        self.first = first
        self.rec_start, self.rec_noise = rec_start, list(rec_noise)
        self.shape = tuple(shape)
        self.inputs: tuple[torch.Tensor, list[torch.Tensor]] | None = None  # of the last random sample

    def param_groups(self, optim: OptimConfig) -> list[dict]:
        """The generator optimiser's extra parameter groups: the scale ``d`` below the trained one at
        ``concurrent_lr_scale ** d`` times its learning rate (``lr_scale``, which the step multiplies in)."""
        count = len(self.generators)
        return [{"params": list(g.parameters()), "lr_scale": optim.concurrent_lr_scale ** (count - i)}
                for i, g in enumerate(self.generators)]

    def remember(self, scale: int, x: torch.Tensor, noise: torch.Tensor) -> None:
        """Keep what a random sample fed coarser scale ``scale`` (its input ``x`` before upsampling, its ``noise``)
        when that scale trains along, so :meth:`paths` can recompute the sample with gradients."""
        if scale == self.first:
            self.inputs = (x, [noise])
        elif scale > self.first:
            self.inputs[1].append(noise)

    def through(self, start: torch.Tensor, noises: Sequence[torch.Tensor]) -> torch.Tensor:
        """The output of the scales trained along from their input ``start`` and ``noises``, upsampled to the
        trained scale (with gradients)."""
        x = start
        for generator, noise in zip(self.generators, noises):
            x = generator(noise, resize(x, tuple(noise.shape[2:])))
        return resize(x, self.shape)

    def paths(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The last random sample and the reconstruction, recomputed through the scales trained along."""
        return self.through(*self.inputs), self.through(self.rec_start, self.rec_noise)


def along_reconstruction(models: Sequence[SinGANSeg], first: int, scale: int, device: torch.device
                         ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The reconstruction path of a group from scale ``first`` (the first trained along) below ``scale``.

    Returns:
        Each scale's reconstruction noise (the fixed noise at the coarsest, zeros above), grouped along the
        channels, and the path's input at scale ``first`` (zeros at the coarsest, else the reconstruction upsampled).
    """
    noises = []
    for k in range(first, scale):
        noises.append(torch.cat([m.fixed_noise.clone() if k == 0 else
                                 torch.zeros(1, m.config.channels, *m.shapes[k], device=device) for m in models], 1))
    inputs = [torch.zeros(1, m.config.channels, *m.shapes[0], device=device) if first == 0 else
              resize(m.reconstruct(first), m.shapes[first]) for m in models]
    return noises, torch.cat(inputs, 1)


def keep_trained_along(model: SinGANSeg, first: int, states: Sequence[dict[str, torch.Tensor]]) -> None:
    """Give ``model``'s generators from scale ``first`` on the weights they trained to along with the next scale
    (reconstructions cached with the old ones are not served again: the cache keys on the weights' versions)."""
    for state, generator in zip(states, model.generators[first:]):
        generator.load_state_dict(state)
