"""How each kind of pair generator makes the transform's samples: one sampler per registered kind.

:data:`SAMPLERS` maps a generator's ``kind`` (:mod:`monai_singanseg.generators`) to its sampler class; the transform
builds one sampler of each and picks by ``model.kind`` (:func:`sampler_for`) instead of asking which class a model is. A sampler checks the options
against the model, names the pool a sample comes from, and generates (or, for diffusion, inpaints) from a draw.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from monai_singanseg.diffusion.config import DiffusionSampling
from monai_singanseg.diffusion.inpainting import inpaint_pair
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generator_protocol import PairGenerator
from monai_singanseg.transforms.draw import AugmentDraw

__all__ = ["SAMPLERS", "DiffusionSampler", "PairSampler", "SamplingOptions", "SinGANSegSampler", "StyleGANSampler",
           "sampler_for"]


def _start_range(start_scale: Any) -> tuple[int, int]:
    """``(low, high)`` of ``start_scale``: an int, or an inclusive range of two ints, ``0 <= low <= high``.

    Raises:
        ValueError: naming the value, for a float (``1.5`` said "'float' object is not iterable") or a bad range.
    """
    def whole(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if whole(start_scale):
        low = high = start_scale
    elif isinstance(start_scale, Sequence) and len(start_scale) == 2 and all(whole(v) for v in start_scale):
        low, high = start_scale
    else:
        low, high = -1, -1  # refused below, with the value as given
    if not 0 <= low <= high:
        raise ValueError(f"start_scale must be an int >= 0 or a (low, high) range of ints, got {start_scale!r}.")
    return int(low), int(high)


def _diversity_range(diversity: float | Sequence[float]) -> tuple[float, float]:
    """``(low, high)`` of ``diversity``: a number in ``[0, 1]`` or a range in it."""
    low, high = (diversity, diversity) if np.isscalar(diversity) else tuple(diversity)
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"diversity must be a number in [0, 1] or a (low, high) range in it, got {diversity}.")
    return float(low), float(high)


@dataclass(frozen=True)
class SamplingOptions:
    """The transform's sampling options, each kind reading its own.

    Attributes:
        start_range: SinGAN-Seg's inclusive ``(low, high)`` start scales.
        diversity_range: SinGAN-Seg's ``(low, high)`` diversity.
        diffusion: how diffusion models make pairs.
    """

    start_range: tuple[int, int]
    diversity_range: tuple[float, float]
    diffusion: DiffusionSampling

    @classmethod
    def of(cls, start_scale: int | Sequence[int], diversity: float | Sequence[float],
           diffusion: DiffusionSampling | dict[str, Any] | None) -> SamplingOptions:
        """The options from the transform's arguments, checked.

        Raises:
            ValueError: a start scale or diversity out of range (naming the value).
        """
        return cls(_start_range(start_scale), _diversity_range(diversity), DiffusionSampling.of(diffusion))


def seeded(model: PairGenerator, draw: AugmentDraw) -> torch.Generator:
    """The generator of a call's noise, on the model's device, seeded by the draw."""
    return torch.Generator(device=model.device).manual_seed(draw.seed)


class PairSampler:
    """Makes new pairs ``(num, C, *spatial)`` in ``[-1, 1]`` from one kind of model (a subclass per kind).

    Args:
        options: the transform's sampling options.

    Attributes:
        kind: the generator kind served (``PairGenerator.kind``).
    """

    kind: ClassVar[str]

    def __init__(self, options: SamplingOptions) -> None:
        self.options = options

    @property
    def inpaints(self) -> bool:
        """The pair is made by redrawing the incoming label's region (:meth:`inpaint`) instead of anew."""
        return False

    def check(self, model: PairGenerator, where: Any) -> None:
        """Refuse options the model cannot follow (``where``: the model's path or name, for the message)."""

    def pool_key(self, model: PairGenerator, draw: AugmentDraw, spatial: tuple[int, ...]) -> Any:
        """What a pooled sample depends on besides the model: samples drawn at the output's size need one pool per
        size; samples resized to it, one per start scale."""
        return spatial if model.draws_at_any_size else self.start_scale(model, draw)

    def start_scale(self, model: PairGenerator, draw: AugmentDraw) -> int:
        """The scale generation starts at (0 for a model without a pyramid)."""
        return 0

    def generate(self, model: PairGenerator, num: int, draw: AugmentDraw, spatial: tuple[int, ...]) -> torch.Tensor:
        """``num`` new pairs ``(num, C, *shape)`` in ``[-1, 1]``, from the noise seeded by ``draw.seed`` (``shape``:
        ``spatial`` for a model that draws at any size, else its training size)."""
        raise NotImplementedError

    def inpaint(self, model: PairGenerator, pair: torch.Tensor, region: torch.Tensor, num: int,
                draw: AugmentDraw) -> torch.Tensor:
        """``num`` redraws ``(num, C, *spatial)`` of ``region`` inside ``pair`` ``(C, *spatial)``."""
        raise NotImplementedError(f"{self.kind} models do not inpaint.")


class SinGANSegSampler(PairSampler):
    """SinGAN-Seg: a start scale of its pyramid, and a diversity per sample."""

    kind = "singanseg"

    def check(self, model: PairGenerator, where: Any) -> None:
        last = model.num_scales - 1
        if self.options.start_range[0] > last:  # every draw would be clipped: the range asked for does not exist here
            raise SinGANSegInputError(
                f"{where}: start_scale {self.options.start_range[0]} is beyond the model's last scale {last} "
                f"({model.num_scales} scales); ask for at most {last}."
            )

    def start_scale(self, model: PairGenerator, draw: AugmentDraw) -> int:
        # a range reaching past a smaller model of the bank ends at its last scale
        return min(draw.start_scale, model.num_scales - 1)

    def generate(self, model: PairGenerator, num: int, draw: AugmentDraw, spatial: tuple[int, ...]) -> torch.Tensor:
        # a pooled batch draws each sample's diversity from the call's seed too
        generator = seeded(model, draw)
        low, high = self.options.diversity_range
        diversity: float | torch.Tensor = draw.diversity
        if num > 1 and high > low:
            diversity = low + (high - low) * torch.rand(num, generator=generator, device=model.device)
        return model.generate(num, start_scale=self.start_scale(model, draw), generator=generator,
                              diversity=diversity)


class DiffusionSampler(PairSampler):
    """A pair-diffusion model: its own sampling options (no start scale or diversity); RePaint inpainting by
    default."""

    kind = "diffusion"

    @property
    def inpaints(self) -> bool:
        return self.options.diffusion.mode == "inpaint"

    def check(self, model: PairGenerator, where: Any) -> None:
        self.options.diffusion.check_model(model.config, str(where))

    def generate(self, model: PairGenerator, num: int, draw: AugmentDraw, spatial: tuple[int, ...]) -> torch.Tensor:
        # drawn at the output's size (rounded up to the UNet's multiple, then cropped), at the training resolution
        d = self.options.diffusion
        return model.generate_at(num, spatial, d.steps, d.sampler, generator=seeded(model, draw), eta=d.eta)

    def inpaint(self, model: PairGenerator, pair: torch.Tensor, region: torch.Tensor, num: int,
                draw: AugmentDraw) -> torch.Tensor:
        return inpaint_pair(model, pair, region, self.options.diffusion, num, seeded(model, draw)).cpu()


class StyleGANSampler(PairSampler):
    """A StyleGAN model: new pairs at its resolution from the seeded draw (resized to the output by the transform)."""

    kind = "stylegan"

    def generate(self, model: PairGenerator, num: int, draw: AugmentDraw, spatial: tuple[int, ...]) -> torch.Tensor:
        return model.generate(num, generator=seeded(model, draw))


SAMPLERS: dict[str, type[PairSampler]] = {cls.kind: cls for cls in (SinGANSegSampler, DiffusionSampler,
                                                                     StyleGANSampler)}
"""Sampler class by generator kind; a new kind of :mod:`monai_singanseg.generators` adds its sampler here."""


def sampler_for(model: PairGenerator, samplers: dict[str, PairSampler]) -> PairSampler:
    """The sampler of ``model``'s kind among ``samplers`` (built from :data:`SAMPLERS`)."""
    if model.kind not in samplers:
        raise SinGANSegInputError(f"no transform sampler for generator kind {model.kind!r} "
                                  f"(known: {', '.join(sorted(samplers))}).")
    return samplers[model.kind]
