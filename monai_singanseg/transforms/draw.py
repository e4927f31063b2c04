"""The random parameters of one call of a random transform, drawn in one place and recorded in one object.

TorchIO's habit: a random transform draws its parameters, then applies them deterministically, so an augmented
sample can be reproduced and explained. :func:`draw_parameters` is the only reader of the augment transform's random
state, :class:`AugmentDraw` what it drew; :func:`draw_harmonization` and :class:`HarmonizeDraw` are the same for the
harmonize transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from monai.utils import MAX_SEED

__all__ = ["AugmentDraw", "HarmonizeDraw", "draw_harmonization", "draw_parameters"]


@dataclass(frozen=True)
class AugmentDraw:
    """What :meth:`SinGANSegAugment.randomize` drew for one call (``transform.last_draw``).

    Applying the same draw to the same input with the same models gives the same pair (with ``pool_size > 0`` the
    pool's contents decide which sample is served too; see :class:`~monai_singanseg.transforms.sample_pool.SamplePool`).

    Attributes:
        apply: whether the sample is replaced (the ``prob`` coin).
        seed: seeds the ``torch.Generator`` of the generation (or of the pool's top-up batch).
        start_scale: SinGAN-Seg's start scale, before clipping to a model's last scale; ignored by diffusion models.
        diversity: SinGAN-Seg's diversity in ``[0, 1]``; ignored by diffusion models.
        pool_position: in ``[0, 1)``: where in the pool the served sample sits (its index is
            ``int(pool_position * len(pool))``).
        drop_served: whether the served sample leaves the pool (drawn with probability ``pool_refresh``).
        random_model: the bank's model used with ``model_choice="random"`` (drawn whatever the choice, so both
            choices read the random state alike).
    """

    apply: bool
    seed: int
    start_scale: int
    diversity: float
    pool_position: float
    drop_served: bool
    random_model: str


def draw_parameters(
    R: np.random.RandomState,
    apply: bool,
    start_range: tuple[int, int],
    diversity_range: tuple[float, float],
    pool_refresh: float,
    names: Sequence[str],
    previous: AugmentDraw,
) -> AugmentDraw:
    """One call's parameters from ``R``, after the ``prob`` coin ``apply`` (MONAI's ``RandomizableTransform``).

    The order of the draws is the transform's random stream: changing it changes every seeded result.

    Args:
        R: the transform's random state.
        apply: the coin's outcome; a skipped call draws nothing more (the other fields are ``previous``'s).
        start_range: inclusive ``(low, high)`` start scales.
        diversity_range: ``(low, high)``; a fixed diversity (``low == high``) draws nothing.
        pool_refresh: probability that the served sample leaves the pool.
        names: the bank's model names, sorted.
        previous: the last draw.

    Returns:
        The draw.
    """
    if not apply:
        return AugmentDraw(False, previous.seed, previous.start_scale, previous.diversity, previous.pool_position,
                           previous.drop_served, previous.random_model)
    seed = int(R.randint(0, MAX_SEED))
    start = int(R.randint(start_range[0], start_range[1] + 1))
    low, high = diversity_range
    # drawn only for a range, so a fixed diversity leaves the random stream of earlier versions unchanged
    diversity = float(R.uniform(low, high)) if high > low else high
    position = float(R.rand())
    drop = bool(R.rand() < pool_refresh)
    random_model = names[int(R.randint(len(names)))]
    return AugmentDraw(True, seed, start, diversity, position, drop, random_model)


@dataclass(frozen=True)
class HarmonizeDraw:
    """What :meth:`SinGANSegHarmonize.randomize` drew for one call (``transform.last_draw``).

    Applying the same draw to the same image, region and model gives the same image and lesion. The lesion's place
    is not a field: :func:`~monai_singanseg.harmonization.harmonize` draws it from ``seed`` inside the region, so it
    follows from the draw and the call's ``region``.

    Attributes:
        apply: whether a lesion is inserted (the ``prob`` coin).
        at_scale: the scale of injection, before clipping to the model's last scale.
        donor: index of the donor pair in the transform's ``donors``.
        seed: seeds the lesion's place and the model's noise.
    """

    apply: bool
    at_scale: int
    donor: int
    seed: int


def draw_harmonization(
    R: np.random.RandomState, apply: bool, scale_range: tuple[int, int], num_donors: int, previous: HarmonizeDraw
) -> HarmonizeDraw:
    """One harmonization call's parameters from ``R``, after the ``prob`` coin ``apply``.

    The order (scale, donor, seed) is the first version's: changing it changes every seeded result.

    Args:
        R: the transform's random state.
        apply: the coin's outcome; a skipped call draws nothing more (the other fields are ``previous``'s).
        scale_range: inclusive ``(low, high)`` scales of injection.
        num_donors: how many donor pairs there are to draw from.
        previous: the last draw.

    Returns:
        The draw.
    """
    if not apply:
        return HarmonizeDraw(False, previous.at_scale, previous.donor, previous.seed)
    at_scale = int(R.randint(scale_range[0], scale_range[1] + 1))
    donor = int(R.randint(num_donors))
    # the seed spans MONAI's MAX_SEED (the first version stopped at 2**31 - 1)
    seed = int(R.randint(0, MAX_SEED))
    return HarmonizeDraw(True, at_scale, donor, seed)
