"""Diffusion checkpoints by function: :func:`save_diffusion`, :func:`load_diffusion`, :func:`read_diffusion_checkpoint`.

The file is the shared envelope (:mod:`monai_singanseg.checkpoint_envelope`: marker, version, config JSON, intensity,
labels, source, resume state; weights only, CPU tensors, written atomically) around the UNet's state dict
(:mod:`monai_singanseg.diffusion.checkpoint_format`). :class:`~monai_singanseg.diffusion.PairDiffusion` saves and
loads itself the same way; this module keeps the functions for their callers.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from monai_singanseg.checkpoint_envelope import read_envelope
from monai_singanseg.diffusion.checkpoint_format import DIFFUSION_CHECKPOINT, DiffusionTrainingState, stored_config
from monai_singanseg.diffusion.model import PairDiffusion

__all__ = [
    "DIFFUSION_FORMAT",
    "DIFFUSION_FORMAT_VERSION",
    "DiffusionTrainingState",
    "load_diffusion",
    "read_diffusion_checkpoint",
    "save_diffusion",
    "stored_config",
]

DIFFUSION_FORMAT = DIFFUSION_CHECKPOINT.marker
DIFFUSION_FORMAT_VERSION = DIFFUSION_CHECKPOINT.version


def save_diffusion(model: PairDiffusion, path: str | os.PathLike,
                   training: DiffusionTrainingState | None = None, weights: dict[str, Any] | None = None) -> None:
    """Write ``model`` and optional resume state to ``path`` (:meth:`PairDiffusion.save`; ``weights``: the UNet state
    dict to store as the sampling weights instead of the model's own, the moving average during training)."""
    model.save(path, training, weights)


def read_diffusion_checkpoint(path: str | os.PathLike, payload: Any = None) -> dict[str, Any]:
    """Load the raw checkpoint dict (``weights_only=True``), with a clear error when ``path`` is not one of ours
    (``payload``: the file's contents already read, checked without reading it again)."""
    return read_envelope(path, DIFFUSION_CHECKPOINT, payload)


def load_diffusion(
    path: str | os.PathLike, device: str | torch.device = "cpu", payload: dict[str, Any] | None = None
) -> tuple[PairDiffusion, DiffusionTrainingState | None]:
    """``(model, training)`` stored at ``path``: :meth:`PairDiffusion.from_checkpoint`."""
    return PairDiffusion.from_checkpoint(path, device, payload=payload)
