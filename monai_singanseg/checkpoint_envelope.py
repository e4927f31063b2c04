"""The envelope every checkpoint shares, whatever kind of model it holds: one file of tensors, numbers and strings,
written atomically and read without unpickling code.

Layout (a plain dict, readable with ``torch.load(path, weights_only=True)``)::

    format, format_version      the kind's marker and the version of its layout (:class:`CheckpointFormat`)
    config                      the model's config as JSON text
    ...                         the kind's own weights (its body: :func:`write_checkpoint`'s ``body``)
    intensity, labels           maps back to the image's units and the label's values (plain dicts)
    source                      the training image's affine, shape and contrast names (no pixel data)
    training                    the kind's :class:`ResumeState` as a dict, or ``None``

Every tensor is stored on the CPU, so a checkpoint written on a GPU loads anywhere. No random-generator state is
stored (each kind seeds its random streams from numbers in its config), and no training image: only a SHA-256
fingerprint used to refuse resuming on other data. This module knows no model: each model module describes its
format and body and imports this one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.files import atomic_write, is_disk_full
from monai_singanseg.intensity import IntensityMapping, LabelEncoding

__all__ = [
    "CheckpointFormat",
    "ResumeState",
    "StepResumeState",
    "check_complete",
    "check_finite",
    "check_format_version",
    "check_known_fields",
    "damaged",
    "load_checkpoint",
    "load_weights_only",
    "read_envelope",
    "save_payload",
    "stored_maps",
    "to_cpu",
    "write_checkpoint",
]

# errors a loader meets in a file whose envelope is right but whose contents are not (missing keys, wrong shapes)
DAMAGE_ERRORS = (KeyError, TypeError, RuntimeError, ValueError)


@dataclass(frozen=True)
class CheckpointFormat:
    """One kind's checkpoint format.

    Attributes:
        marker: the ``format`` value (distinct per kind, so no loader mistakes another kind's file for its own).
        version: the ``format_version`` written.
        readable: the versions read.
        config_cls: the config dataclass (unknown fields in a stored config mean a newer release wrote it).
        name: the kind's checkpoints in messages (``"monai-singanseg"``, ``"monai-singanseg diffusion"``).
        version_name: what the version is of, in messages (``"checkpoint"``, ``"diffusion checkpoint"``).
        foreign: a message per marker of another kind that needs its own words (``{path}`` is filled in).
    """

    marker: str
    version: int
    readable: tuple[int, ...]
    config_cls: type
    name: str
    version_name: str = "checkpoint"
    foreign: Mapping[str, str] = dataclasses.field(default_factory=dict)


def to_cpu(value: Any) -> Any:
    """``value`` with every tensor detached and moved to the CPU (dicts, lists and tuples walked)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value


@dataclass
class ResumeState:
    """Base of each kind's resume state: what a checkpoint keeps to continue training, beside the weights.

    A subclass declares ``complete: bool`` and ``log: list`` beside its own fields; its dict form holds every field
    with tensors on the CPU. ``READ_DEFAULTS`` fills fields missing from files of earlier versions; ``READ_TYPES``
    casts numbers and strings both ways.

    Attributes:
        fingerprint: SHA-256 of the training tensor (resuming on other data is refused).
    """

    READ_DEFAULTS: ClassVar[dict[str, Any]] = {}
    READ_TYPES: ClassVar[dict[str, type]] = {"fingerprint": str, "complete": bool, "log": list}

    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        """Every field, tensors on the CPU and ``READ_TYPES`` cast (a numpy integer would not load as weights only)."""
        values = {f.name: to_cpu(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {name: self.READ_TYPES[name](v) if name in self.READ_TYPES else v for name, v in values.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResumeState:
        """The state stored as ``data``, its numbers and strings cast by ``READ_TYPES``.

        Raises:
            KeyError: a field without a default (nor a ``READ_DEFAULTS`` entry) is missing: a damaged file.
        """
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                value = data[f.name]
                values[f.name] = cls.READ_TYPES[f.name](value) if f.name in cls.READ_TYPES else value
            elif f.name in cls.READ_DEFAULTS:
                values[f.name] = cls.READ_DEFAULTS[f.name]
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise KeyError(f.name)
        return cls(**values)

    def unfinished(self, path: str | os.PathLike, model: Any) -> str:
        """The message refusing to sample from ``model`` at ``path``, whose training this state says is unfinished."""
        return f"{path}: training is not finished; resume it first."


@dataclass
class StepResumeState(ResumeState):
    """Base of the resume states of runs trained step by step (the diffusion and StyleGAN generators).

    Attributes:
        step: optimisation steps done.
        complete: ``step`` reached the configured ``train_steps``.
    """

    READ_TYPES: ClassVar[dict[str, type]] = {**ResumeState.READ_TYPES, "step": int}
    TRAINING_NAME: ClassVar[str] = "the"
    """What messages call this kind's training (``"diffusion"``: "diffusion training stopped at ...")."""

    step: int = 0
    complete: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepResumeState:
        """The state stored as ``data``; ``step`` and ``complete`` are required (``KeyError``: a damaged file)."""
        missing = [name for name in ("step", "complete") if name not in data]
        if missing:
            raise KeyError(missing[0])
        return super().from_dict(data)

    def unfinished(self, path: str | os.PathLike, model: Any) -> str:
        return (f"{path}: {self.TRAINING_NAME} training stopped at step {self.step} of {model.config.train_steps}; "
                "finish it (train again with --resume) before sampling from it.")


def check_complete(path: str | os.PathLike, model: Any, state: ResumeState | None) -> None:
    """Refuse a checkpoint whose training has not finished (a half-trained model makes poor pairs without saying
    so); one without resume state counts as finished.

    Raises:
        SinGANSegInputError: the state's own message (:meth:`ResumeState.unfinished`).
    """
    if state is not None and not getattr(state, "complete", True):
        raise SinGANSegInputError(state.unfinished(path, model))


def write_checkpoint(path: str | os.PathLike, fmt: CheckpointFormat, model: Any, body: dict[str, Any],
                     training: ResumeState | None = None) -> None:
    """Write ``model``'s envelope around ``body`` (its weights, tensors moved to the CPU here) to ``path`` atomically.

    Args:
        path: the checkpoint file.
        fmt: the model kind's format.
        model: anything with ``config`` (``to_json()``), ``intensity``, ``labels`` (``to_dict()``) and ``source``.
        body: the kind's own entries, written between ``config`` and ``intensity``.
        training: the resume state, or ``None``.
    """
    payload = {"format": fmt.marker, "format_version": fmt.version, "config": model.config.to_json(),
               **to_cpu(body), "intensity": model.intensity.to_dict(), "labels": model.labels.to_dict(),
               "source": model.source, "training": None if training is None else training.to_dict()}
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


def read_envelope(path: str | os.PathLike, fmt: CheckpointFormat, payload: Any = None) -> dict[str, Any]:
    """The raw checkpoint dict at ``path`` with its envelope checked: marker, version, config fields (``payload``:
    the file's contents already read with :func:`load_weights_only`, checked without reading it again).

    Raises:
        SinGANSegInputError: the file is missing, no plain-data file, of another kind, of a version not read, or
            written by a newer release (unknown config fields).
    """
    path = Path(path)
    payload = load_weights_only(path, fmt.name) if payload is None else payload
    marker = payload.get("format") if isinstance(payload, dict) else None
    if marker in fmt.foreign:
        raise SinGANSegInputError(fmt.foreign[marker].format(path=path))
    if marker != fmt.marker:
        raise SinGANSegInputError(f"{path}: not a {fmt.name} checkpoint (no '{fmt.marker}' format marker).")
    check_format_version(path, fmt.version_name, payload.get("format_version"), fmt.readable)
    check_known_fields(path, payload.get("config"), fmt.config_cls)
    return payload


def stored_maps(payload: dict[str, Any]) -> tuple[IntensityMapping, LabelEncoding]:
    """The intensity map and label encoding of a checkpoint's contents."""
    return IntensityMapping(**payload["intensity"]), LabelEncoding(**payload["labels"])


@contextlib.contextmanager
def damaged(path: str | os.PathLike, fmt: CheckpointFormat) -> Iterator[None]:
    """Turn the errors of rebuilding a model from a checked envelope (missing keys, wrong shapes, non-finite
    weights) into one line naming the file."""
    try:
        yield
    except DAMAGE_ERRORS as err:
        raise SinGANSegInputError(f"{path}: damaged {fmt.name} checkpoint ({err}).") from err


def load_checkpoint(
    cls: type,
    path: str | os.PathLike,
    fmt: CheckpointFormat,
    state_cls: type[ResumeState],
    load_body: Callable[[Any, dict[str, Any]], None],
    device: str | torch.device = "cpu",
    require_complete: bool = False,
    payload: dict[str, Any] | None = None,
    read_config: Callable[[dict[str, Any]], Any] | None = None,
) -> tuple[Any, ResumeState | None]:
    """Rebuild the model of class ``cls`` stored at ``path`` in ``fmt`` (``payload``: its contents when already
    read, not read twice): the envelope checked, ``cls(config, intensity, labels, source)`` built, its weights put in
    by ``load_body(model, payload)``, the resume state read as ``state_cls``.

    Args:
        read_config: the config of the checkpoint's contents (default: ``fmt.config_cls.from_json`` of its
            ``config``).

    Returns:
        ``(model, training)``: the model in eval mode on ``device`` and its resume state (``None`` when the file
        holds none).

    Raises:
        SinGANSegInputError: the file is missing, foreign, of another version, damaged, or unfinished with
            ``require_complete``.
    """
    payload = read_envelope(path, fmt, payload)
    with damaged(path, fmt):
        config = fmt.config_cls.from_json(payload["config"]) if read_config is None else read_config(payload)
        model = cls(config, *stored_maps(payload), payload.get("source"))
        load_body(model, payload)
        training = payload.get("training")
        state = None if training is None else state_cls.from_dict(training)
    if require_complete:
        check_complete(path, model, state)
    return model.to(device).eval(), state


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
