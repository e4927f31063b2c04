"""Diffusion checkpoints: one file of tensors, numbers and strings, written atomically, read without unpickling code.

Layout (a plain dict, readable with ``torch.load(path, weights_only=True)``)::

    format, format_version      "monai-singanseg-diffusion", 1
    config                      the DiffusionConfig as JSON text
    unet                        the UNet's state dict: the weights that sample (the moving average of the
                                training weights when ``ema_decay`` > 0)
    intensity, labels           maps back to the image's units and the label's values (IntensityMapping /
                                LabelEncoding as plain dicts, as in SinGAN-Seg checkpoints)
    source                      the first training image's affine, shape and contrast names (no pixel data)
    training                    a DiffusionTrainingState as a dict: data fingerprint, steps done, whether training
                                is finished, the Adam state (plain tensors and numbers), the training weights
                                themselves when ``unet`` holds their average, a log per checkpoint

Every tensor is stored on the CPU, so a checkpoint written on a GPU loads anywhere. There is no random-generator
state: the random draws of step ``k`` come from a stream seeded with ``(seed, k)``
(:func:`~monai_singanseg.diffusion.trainer.step_seed`), so a run resumes at any saved step on any device. The format
marker differs from SinGAN-Seg's, so neither loader mistakes the other's file for its own.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from monai_singanseg.checkpoint import FORMAT as SINGANSEG_FORMAT
from monai_singanseg.checkpoint import (
    check_finite,
    check_format_version,
    check_known_fields,
    load_weights_only,
    save_payload,
)
from monai_singanseg.diffusion.config import DiffusionConfig
from monai_singanseg.diffusion.model import PairDiffusion
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.intensity import IntensityMapping, LabelEncoding

__all__ = [
    "DIFFUSION_FORMAT",
    "DIFFUSION_FORMAT_VERSION",
    "DiffusionTrainingState",
    "load_diffusion",
    "read_diffusion_checkpoint",
    "save_diffusion",
    "stored_config",
]

DIFFUSION_FORMAT = "monai-singanseg-diffusion"
DIFFUSION_FORMAT_VERSION = 1


def _to_cpu(value: Any) -> Any:
    """``value`` with every tensor detached and moved to the CPU (dicts, lists and tuples walked)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


@dataclass
class DiffusionTrainingState:
    """What a checkpoint keeps to resume training, beside the UNet's weights.

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

    fingerprint: str
    step: int = 0
    complete: bool = False
    optimizer: dict[str, Any] | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    online: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "step": int(self.step), "complete": bool(self.complete),
                "optimizer": _to_cpu(self.optimizer), "log": list(self.log), "online": _to_cpu(self.online)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffusionTrainingState:
        return cls(str(data["fingerprint"]), int(data["step"]), bool(data["complete"]), data.get("optimizer"),
                   list(data.get("log", [])), data.get("online"))


def save_diffusion(model: PairDiffusion, path: str | os.PathLike,
                   training: DiffusionTrainingState | None = None, weights: dict[str, Any] | None = None) -> None:
    """Write ``model`` and optional resume state to ``path`` atomically (CPU tensors, no pickled code);
    ``weights``: the UNet state dict to store as the sampling weights instead of the model's own (the moving
    average during training)."""
    payload = {
        "format": DIFFUSION_FORMAT,
        "format_version": DIFFUSION_FORMAT_VERSION,
        "config": model.config.to_json(),
        "unet": _to_cpu(model.unet.state_dict() if weights is None else weights),
        "intensity": model.intensity.to_dict(),
        "labels": model.labels.to_dict(),
        "source": model.source,
        "training": None if training is None else training.to_dict(),
    }
    save_payload(path, payload)


def read_diffusion_checkpoint(path: str | os.PathLike, payload: Any = None) -> dict[str, Any]:
    """Load the raw checkpoint dict (``weights_only=True``), with a clear error when ``path`` is not one of ours
    (``payload``: the file's contents already read, checked without reading it again)."""
    path = Path(path)
    payload = load_weights_only(path, "monai-singanseg diffusion") if payload is None else payload
    marker = payload.get("format") if isinstance(payload, dict) else None
    if marker == SINGANSEG_FORMAT:
        raise SinGANSegInputError(f"{path}: a SinGAN-Seg checkpoint, not a diffusion one; load it with SinGANSeg.load.")
    if marker != DIFFUSION_FORMAT:
        raise SinGANSegInputError(f"{path}: not a monai-singanseg diffusion checkpoint (no '{DIFFUSION_FORMAT}' "
                                  "format marker).")
    check_format_version(path, "diffusion checkpoint", payload.get("format_version"), (DIFFUSION_FORMAT_VERSION,))
    check_known_fields(path, payload.get("config"), DiffusionConfig)
    return payload


def stored_config(payload: dict[str, Any]) -> DiffusionConfig:
    """The config of a checkpoint's contents. A config without ``ema_decay`` was written before the moving average
    existed: its ``unet`` holds the training weights, so it reads as ``ema_decay=0`` (not the current default)."""
    data = json.loads(payload["config"])
    data.setdefault("ema_decay", 0.0)
    return DiffusionConfig.from_dict(data)


def load_diffusion(
    path: str | os.PathLike, device: str | torch.device = "cpu", payload: dict[str, Any] | None = None
) -> tuple[PairDiffusion, DiffusionTrainingState | None]:
    """Rebuild the model stored at ``path`` (``payload``: its contents when already read, not read twice).

    Returns:
        ``(model, training)``: the model in eval mode on ``device`` and its resume state (``None`` when the file
        holds none).

    Raises:
        SinGANSegInputError: the file is missing, foreign, of another version, or damaged.
    """
    payload = read_diffusion_checkpoint(path, payload)
    try:
        model = PairDiffusion(stored_config(payload), IntensityMapping(**payload["intensity"]),
                              LabelEncoding(**payload["labels"]), payload.get("source"))
        check_finite({f"unet {name}": value for name, value in payload["unet"].items()})
        model.unet.load_state_dict(payload["unet"])
        state = None if payload.get("training") is None else DiffusionTrainingState.from_dict(payload["training"])
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise SinGANSegInputError(f"{path}: damaged monai-singanseg diffusion checkpoint ({err}).") from err
    return model.to(device).eval(), state
