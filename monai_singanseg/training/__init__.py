"""Training: losses of one scale and the scale-by-scale trainer."""

from __future__ import annotations

from monai_singanseg.training.losses import gradient_penalty, reconstruction_loss
from monai_singanseg.training.trainer import SinGANSegTrainer, fingerprint

__all__ = ["SinGANSegTrainer", "fingerprint", "gradient_penalty", "reconstruction_loss"]
