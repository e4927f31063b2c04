"""Training: the trainers' base and handler objects, losses of one scale, the scale-by-scale trainer (one model or a
group), and train_many."""

from __future__ import annotations

from monai_singanseg.training.augment import diff_augment
from monai_singanseg.training.base import GeneratorTrainer
from monai_singanseg.training.handlers import CallHandler, CheckpointWriter, Handler, Progress, as_handlers
from monai_singanseg.training.losses import gradient_penalty, per_model_mean, reconstruction_loss
from monai_singanseg.training.resume import UNSET, ConfigDifference, config_differences, fingerprint
from monai_singanseg.training.trainer import (
    ScaleStep,
    SinGANSegTrainer,
    TrainingItem,
    check_mask_survives,
    check_trainable,
    scale_seed,
    verify_checkpoint_data,
)

__all__ = [
    "UNSET",
    "CallHandler",
    "CheckpointWriter",
    "ConfigDifference",
    "GeneratorTrainer",
    "Handler",
    "Progress",
    "ScaleStep",
    "SinGANSegTrainer",
    "TrainingItem",
    "as_handlers",
    "check_mask_survives",
    "check_trainable",
    "config_differences",
    "diff_augment",
    "fingerprint",
    "gradient_penalty",
    "per_model_mean",
    "reconstruction_loss",
    "scale_seed",
    "verify_checkpoint_data",
]
