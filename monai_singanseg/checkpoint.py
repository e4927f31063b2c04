"""Checkpoints: one file of tensors, numbers and strings, written atomically and read without unpickling code.

Layout (a plain dict, readable with ``torch.load(path, weights_only=True)``)::

    format, format_version      "monai-singanseg", 2 (version 1 is read too)
    config                      the SinGANSegConfig as JSON text
    shapes, noise_amps          scale shapes (coarsest first) and noise amplitudes of the trained scales
    fixed_noise                 the reconstruction noise of the coarsest scale
    generators                  one state dict per trained scale
    intensity, labels           maps back to the image's units and the label's values
    source                      the training image's affine, shape and contrast names (no pixel data)
    training                    a TrainingState as a dict: data fingerprint, the last critic, the per-scale
                                log, and whether every scale is trained

Every tensor is stored on the CPU, so a checkpoint written on a GPU loads anywhere. There is no random-generator
state to store: each scale's random stream is seeded from the model seed and the scale number
(:func:`~monai_singanseg.training.trainer.scale_seed`), so a run resumes at a scale boundary on any device. The
training image itself is never stored: only a SHA-256 fingerprint used to refuse resuming on other data.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from monai_singanseg.config import SinGANSegConfig
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.files import atomic_write, is_disk_full
from monai_singanseg.intensity import IntensityMapping, LabelEncoding
from monai_singanseg.networks.scale_networks import ScaleCritic, drop_norm_biases
from monai_singanseg.networks.singanseg import SinGANSeg

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "TrainingState",
    "check_format_version",
    "check_known_fields",
    "load_model",
    "read_checkpoint",
    "save_model",
    "training_state",
]

FORMAT = "monai-singanseg"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 also stored a device-specific random state, ignored now


@dataclass
class TrainingState:
    """What a checkpoint keeps to resume training, beside the trained generators.

    Attributes:
        fingerprint: SHA-256 of the training tensor (resuming on other data is refused).
        complete: every scale is trained.
        critic: the last trained scale's critic weights (a finer scale of the same width starts from them).
        log: one record per trained scale (shape, width, noise amplitude, iterations, seconds, last losses).
    """

    fingerprint: str
    complete: bool
    critic: dict[str, torch.Tensor] | None = None
    log: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        critic = None if self.critic is None else {k: v.detach().cpu() for k, v in self.critic.items()}
        return {"fingerprint": self.fingerprint, "complete": self.complete, "critic": critic, "log": list(self.log)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingState:
        return cls(str(data["fingerprint"]), bool(data.get("complete", True)), data.get("critic"),
                   list(data.get("log", [])))


def save_model(model, path: str | os.PathLike, training: TrainingState | None = None) -> None:
    """Write ``model`` (a :class:`~monai_singanseg.networks.SinGANSeg`) and optional resume state to ``path``.

    Tensors are moved to the CPU first, so the file loads on a machine without the training device.
    """
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_json(),
        "shapes": [list(s) for s in model.shapes],
        "noise_amps": [float(a) for a in model.noise_amps],
        "fixed_noise": model.fixed_noise.detach().cpu(),
        "generators": [{k: v.detach().cpu() for k, v in g.state_dict().items()} for g in model.generators],
        "intensity": model.intensity.to_dict(),
        "labels": model.labels.to_dict(),
        "source": model.source,
        "training": None if training is None else training.to_dict(),
    }
    save_payload(path, payload)


def save_payload(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """``torch.save(payload)`` to ``path`` atomically; a full disk is one line, saying what survives.

    Raises:
        SinGANSegInputError: the disk (or quota) is full: the checkpoint already at ``path`` (the last good one) is
            intact, since the new one went to a temporary file that is removed.
    """
    existed = Path(path).is_file()
    try:
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
    except (OSError, RuntimeError) as err:
        if not is_disk_full(err):
            raise
        detail = err.strerror if isinstance(err, OSError) and err.strerror else str(err).strip().splitlines()[-1]
        kept = (f"the last good checkpoint {path} is intact (checkpoints are written atomically): free space and "
                "run again to continue from it (--resume)" if existed else "nothing was saved yet: free space and run again")
        raise SinGANSegInputError(f"{path}: cannot write the checkpoint, the disk is full ({detail}); {kept}.") from err


def load_weights_only(path: str | os.PathLike, kind: str = "monai-singanseg") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with one clear line when the file is missing or is not a
    plain-data file (``kind`` names what was expected in the message)."""
    path = Path(path)
    if path.is_dir():
        raise SinGANSegInputError(f"{path}: a folder; give the checkpoint file (*.pt).")
    if not path.is_file():
        raise SinGANSegInputError(f"{path}: checkpoint file not found.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or damaged files
        raise SinGANSegInputError(
            f"{path}: not a {kind} checkpoint, or one cut short (it cannot be read as weights only: "
            f"{type(err).__name__})."
        ) from err


def read_checkpoint(path: str | os.PathLike, payload: Any = None) -> dict[str, Any]:
    """Load the raw checkpoint dict, with a clear error when ``path`` is not one of ours (``payload``: the file's
    contents already read with :func:`load_weights_only`, checked without reading it again)."""
    path = Path(path)
    payload = load_weights_only(path) if payload is None else payload
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SinGANSegInputError(f"{path}: not a monai-singanseg checkpoint (no '{FORMAT}' format marker).")
    check_format_version(path, "checkpoint", payload.get("format_version"), READABLE_VERSIONS)
    check_known_fields(path, payload.get("config"), SinGANSegConfig)
    return payload


def _unknown_fields(data: Any, cls: type, prefix: str = "") -> list[str]:
    """Keys of ``data`` that ``cls`` (a config dataclass) has no field for, nested configs included
    (``optim.new_option``)."""
    if not isinstance(data, dict):
        return []
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [f"{prefix}{key}" for key in data if key not in fields]
    for name, f in fields.items():
        nested = f.default_factory
        if nested is not dataclasses.MISSING and dataclasses.is_dataclass(nested) and name in data:
            unknown += _unknown_fields(data[name], nested, f"{prefix}{name}.")
    return sorted(unknown)


def check_known_fields(path: str | os.PathLike, config_json: Any, cls: type) -> None:
    """Refuse a checkpoint whose stored config (JSON text) has fields ``cls`` does not know: a newer release wrote
    it, and loading it failed as a "damaged checkpoint" (a TypeError on the unknown keyword). Text that is no JSON
    object is left to the loader, which calls it damaged.

    Raises:
        SinGANSegInputError: naming ``path`` and the unknown field(s), and asking to upgrade.
    """
    try:
        data = json.loads(config_json)
    except (TypeError, ValueError):
        return
    unknown = _unknown_fields(data, cls)
    if unknown:
        raise SinGANSegInputError(f"{path}: written by a newer version of monai-singanseg (unknown field "
                                  f"{', '.join(unknown)}); upgrade (pip install -U monai-singanseg).")


def check_format_version(path: str | os.PathLike, kind: str, version: Any, readable: tuple[int, ...]) -> None:
    """Refuse a ``format_version`` not in ``readable``, showing it as stored: a string ``"2"`` printed as ``2`` read
    "version 2 is not supported (this version reads 1, 2)".

    Raises:
        SinGANSegInputError: naming ``path``, the version as stored and the versions this release reads.
    """
    if isinstance(version, int) and not isinstance(version, bool) and version in readable:
        return
    stored = "" if isinstance(version, int) and not isinstance(version, bool) else (
        f" (a {type(version).__name__}, where versions are whole numbers: the file was edited or written by another "
        "tool)")
    raise SinGANSegInputError(f"{path}: {kind} format version {version!r}{stored} is not supported (this version "
                              f"reads {', '.join(map(str, readable))}).")


def check_finite(tensors: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first tensor (or number) that holds NaN or infinity: a damaged or diverged
    checkpoint would otherwise sample blank images without a word."""
    for name, value in tensors.items():
        value = torch.as_tensor(value)
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"non-finite values in {name}")


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
):
    """Rebuild the model stored at ``path``.

    Args:
        path: the checkpoint.
        device: where the model runs.
        for_training: keep the layout training used (a resumed run must repeat its arithmetic exactly).
        require_complete: refuse (with a clear error) a checkpoint whose training is not finished.
        payload: the file's contents when already read (:func:`load_weights_only`), so it is not read twice.

    Returns:
        ``(model, training)``: the model in eval mode on ``device`` and its :class:`TrainingState` (``None`` when the
        file holds none).
    """
    payload = read_checkpoint(path, payload)
    try:
        model = SinGANSeg(
            SinGANSegConfig.from_json(payload["config"]),
            payload["shapes"],
            IntensityMapping(**payload["intensity"]),
            LabelEncoding(**payload["labels"]),
            payload.get("source"),
        )
        shapes, generators, amps = payload["shapes"], payload["generators"], payload["noise_amps"]
        state = training_state(payload)
        if len(generators) != len(amps) or len(generators) > len(shapes) or (
                (state is None or state.complete) and len(generators) != len(shapes)):
            raise ValueError(f"{len(generators)} generators and {len(amps)} noise amplitudes for {len(shapes)} "
                             "scales")
        check_finite({"noise_amps": amps, "fixed_noise": payload["fixed_noise"],
                      **{f"generator {scale} {name}": v for scale, g in enumerate(generators) for name, v in g.items()}})
        for scale, state_dict in enumerate(generators):
            generator = model.new_generator(scale)
            generator.load_state_dict(drop_norm_biases(state_dict))
            # sampling only: oneDNN's channels-last kernels are ~25 % faster for these batch-1 forward passes
            # (training stays NCHW, where channels-last was slower at 128 feature maps)
            if model.config.spatial_dims == 2 and not for_training:
                generator = generator.to(memory_format=torch.channels_last)
            model.generators.append(generator)
        model.noise_amps = list(payload["noise_amps"])
        model.fixed_noise.copy_(payload["fixed_noise"])
        if for_training and state is not None and state.critic is not None and generators:
            # checked here, where the file is named: a critic of another scale failed at the next scale's
            # load_state_dict, after the resumed run had started, with a traceback
            _check_critic(model.config, len(generators) - 1, state.critic)
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise SinGANSegInputError(f"{path}: damaged monai-singanseg checkpoint ({err}).") from err
    if require_complete and state is not None and not state.complete:
        raise SinGANSegInputError(
            f"{path}: training is not finished ({model.trained_scales}/{model.num_scales} scales); "
            "resume it first (singanseg train ... --resume)."
        )
    return model.to(device).eval(), state


def _check_critic(config: SinGANSegConfig, scale: int, critic: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless ``critic`` (a stored state dict) fits the critic of pyramid level ``scale``: the
    one a resumed run continues from."""
    expected = ScaleCritic(config.spatial_dims, config.channels, config.network.channels_at(scale),
                           config.network).state_dict()
    stored = drop_norm_biases(critic)
    if set(stored) != set(expected):
        raise ValueError(f"the stored critic's weights {sorted(set(stored) ^ set(expected))[:3]} do not belong to the "
                         f"critic of scale {scale}")
    for name, value in expected.items():
        if tuple(stored[name].shape) != tuple(value.shape):
            raise ValueError(f"the stored critic's {name} is {tuple(stored[name].shape)}, the critic of scale {scale} "
                             f"(the last trained) has {tuple(value.shape)}: it belongs to another scale")
