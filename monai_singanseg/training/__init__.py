"""Training: losses of one scale, the scale-by-scale trainer (one model or a group), and train_many."""

from __future__ import annotations

from monai_singanseg.training.losses import gradient_penalty, per_model_mean, reconstruction_loss
from monai_singanseg.training.trainer import (
    ScaleStep,
    SinGANSegTrainer,
    TrainingItem,
    check_mask_survives,
    check_trainable,
    config_differences,
    fingerprint,
    scale_seed,
    verify_checkpoint_data,
)

__all__ = [
    "ScaleStep",
    "SinGANSegTrainer",
    "TrainingItem",
    "check_mask_survives",
    "check_trainable",
    "config_differences",
    "fingerprint",
    "gradient_penalty",
    "per_model_mean",
    "reconstruction_loss",
    "scale_seed",
    "verify_checkpoint_data",
]
