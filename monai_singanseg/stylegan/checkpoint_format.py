"""The StyleGAN generator's checkpoint format: its marker and version, its resume state, and its weights inside the
shared envelope (:mod:`monai_singanseg.checkpoint_envelope`).

Body of the envelope::

    generators                  {name: state dict}: "pair" (design ``joint``), or "mask" and "image" (design
                                ``mask_then_image``); the weights that sample (the moving average of the training
                                weights when ``ema_decay`` > 0)

and ``training`` holds a :class:`StyleGANTrainingState`: the critics, the training weights beside their average, the
optimisers. There is no random-generator state: the draws of step ``k`` come from a stream seeded with
``(seed, k)`` (:func:`monai_singanseg.training.seeds.stream_seed`), so a run resumes at any saved step.

This module imports no model module, so :class:`~monai_singanseg.stylegan.model.PairStyleGAN` imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from monai_singanseg.checkpoint_envelope import CheckpointFormat, StepResumeState
from monai_singanseg.diffusion.checkpoint_format import DIFFUSION_CHECKPOINT
from monai_singanseg.networks.checkpoint_format import SINGANSEG_CHECKPOINT
from monai_singanseg.stylegan.config import StyleGANConfig

__all__ = ["STYLEGAN_CHECKPOINT", "StyleGANTrainingState"]

STYLEGAN_CHECKPOINT = CheckpointFormat(
    marker="monai-singanseg-stylegan", version=1, readable=(1,), config_cls=StyleGANConfig,
    name="monai-singanseg StyleGAN", version_name="StyleGAN checkpoint",
    foreign={
        SINGANSEG_CHECKPOINT.marker: "{path}: a SinGAN-Seg checkpoint, not a StyleGAN one; load it with "
                                     "SinGANSeg.load (or load_generator for any kind).",
        DIFFUSION_CHECKPOINT.marker: "{path}: a diffusion checkpoint, not a StyleGAN one; load it with "
                                     "PairDiffusion.load (or load_generator for any kind).",
    },
)


@dataclass
class StyleGANTrainingState(StepResumeState):
    """What a StyleGAN checkpoint keeps to resume training, beside the sampling weights.

    Attributes:
        fingerprint: SHA-256 of the stacked training tensor and its classes (resuming on other data is refused).
        step: optimisation steps done.
        complete: ``step`` reached the configured ``train_steps``.
        online: the generators' training weights, ``{name: state dict}`` (``None`` without a moving average: then
            the body's ``generators`` are the training weights).
        critics: the critics' weights, ``{name: state dict}``.
        optimizers: the Adam state dicts, ``{"generator:<name>" | "critic:<name>": state dict}``.
        log: one record per checkpoint written (step, mean losses since the previous record, seconds of training so
            far, resumed runs included).
    """

    TRAINING_NAME: ClassVar[str] = "StyleGAN"

    online: dict[str, Any] | None = None
    critics: dict[str, Any] = field(default_factory=dict)
    optimizers: dict[str, Any] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
