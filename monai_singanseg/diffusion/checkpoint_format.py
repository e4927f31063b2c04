"""The diffusion model's checkpoint format: its marker and version, its resume state, and its weights inside the
shared envelope (:mod:`monai_singanseg.checkpoint_envelope`).

Body of the envelope::

    unet                        the UNet's state dict: the weights that sample (the moving average of the
                                training weights when ``ema_decay`` > 0)

and ``training`` holds a :class:`DiffusionTrainingState`. There is no random-generator state: the random draws of
step ``k`` come from a stream seeded with ``(seed, k)`` (:func:`~monai_singanseg.diffusion.trainer.step_seed`), so a
run resumes at any saved step on any device. The marker differs from SinGAN-Seg's, so neither loader mistakes the
other's file for its own.

The functions here import no model module, so :class:`~monai_singanseg.diffusion.PairDiffusion` imports this module
to save and load itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from monai_singanseg.checkpoint_envelope import CheckpointFormat, StepResumeState
from monai_singanseg.diffusion.config import DiffusionConfig
from monai_singanseg.networks.checkpoint_format import SINGANSEG_CHECKPOINT

__all__ = ["DIFFUSION_CHECKPOINT", "DiffusionTrainingState", "stored_config"]

DIFFUSION_CHECKPOINT = CheckpointFormat(
    marker="monai-singanseg-diffusion", version=1, readable=(1,), config_cls=DiffusionConfig,
    name="monai-singanseg diffusion", version_name="diffusion checkpoint",
    foreign={SINGANSEG_CHECKPOINT.marker: "{path}: a SinGAN-Seg checkpoint, not a diffusion one; load it with "
                                          "SinGANSeg.load."},
)


@dataclass
class DiffusionTrainingState(StepResumeState):
    """What a diffusion checkpoint keeps to resume training, beside the UNet's weights.

    Attributes:
        fingerprint: SHA-256 of the stacked training tensor (resuming on other data is refused).
        step: optimisation steps done.
        complete: ``step`` reached the configured ``train_steps``.
        optimizer: the Adam state dict (``None`` before the first step).
        log: one record per checkpoint written (step, mean loss since the previous record, seconds of training
            so far, resumed runs included).
        online: the UNet's training weights when the checkpoint's ``unet`` holds their moving average (``None``
            without an average: then ``unet`` holds the training weights themselves).
    """

    TRAINING_NAME: ClassVar[str] = "diffusion"

    optimizer: dict[str, Any] | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    online: dict[str, Any] | None = None


def stored_config(payload: dict[str, Any]) -> DiffusionConfig:
    """The config of a checkpoint's contents. A config without ``ema_decay`` was written before the moving average
    existed: its ``unet`` holds the training weights, so it reads as ``ema_decay=0`` (not the current default)."""
    data = json.loads(payload["config"])
    data.setdefault("ema_decay", 0.0)
    return DiffusionConfig.from_dict(data)
