"""SinGAN-Seg checkpoints by function: :func:`save_model`, :func:`load_model`, :func:`read_checkpoint`.

The file is the shared envelope (:mod:`monai_singanseg.checkpoint_envelope`: marker, version, config JSON, intensity,
labels, source, resume state; weights only, CPU tensors, written atomically) around SinGAN-Seg's body
(:mod:`monai_singanseg.networks.checkpoint_format`: scale shapes, noise amplitudes, fixed noise, one state dict per
trained scale). :class:`~monai_singanseg.networks.SinGANSeg` saves and loads itself the same way; this module keeps
the functions (and the envelope's checks under their earlier names) for their callers.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from monai_singanseg.checkpoint_envelope import (
    check_finite,
    check_format_version,
    check_known_fields,
    load_weights_only,
    read_envelope,
    save_payload,
)
from monai_singanseg.networks.checkpoint_format import SINGANSEG_CHECKPOINT, TrainingState
from monai_singanseg.networks.singanseg import SinGANSeg

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "TrainingState",
    "check_finite",
    "check_format_version",
    "check_known_fields",
    "load_model",
    "load_weights_only",
    "read_checkpoint",
    "save_model",
    "save_payload",
    "training_state",
]

FORMAT = SINGANSEG_CHECKPOINT.marker
FORMAT_VERSION = SINGANSEG_CHECKPOINT.version
READABLE_VERSIONS = SINGANSEG_CHECKPOINT.readable


def save_model(model: SinGANSeg, path: str | os.PathLike, training: TrainingState | None = None) -> None:
    """Write ``model`` and optional resume state to ``path`` (:meth:`SinGANSeg.save`)."""
    model.save(path, training)


def read_checkpoint(path: str | os.PathLike, payload: Any = None) -> dict[str, Any]:
    """Load the raw checkpoint dict, with a clear error when ``path`` is not one of ours (``payload``: the file's
    contents already read with :func:`load_weights_only`, checked without reading it again)."""
    return read_envelope(path, SINGANSEG_CHECKPOINT, payload)


def training_state(payload: dict[str, Any]) -> TrainingState | None:
    """The resume state of a checkpoint read by :func:`read_checkpoint` (``None`` when it holds none)."""
    data = payload.get("training")
    return None if data is None else TrainingState.from_dict(data)


def load_model(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    for_training: bool = False,
    require_complete: bool = False,
    payload: dict[str, Any] | None = None,
) -> tuple[SinGANSeg, TrainingState | None]:
    """``(model, training)`` stored at ``path``: :meth:`SinGANSeg.from_checkpoint`."""
    return SinGANSeg.from_checkpoint(path, device, for_training, require_complete, payload)
