"""The registry of pair generators: each kind's class, checkpoint format marker and loader, behind one call.

Transforms, the CLI and the report take either kind; :func:`load_generator` reads a checkpoint of any registered kind
(its format marker says which), :func:`checkpoint_kind` names the kind without building the model. What the rest of
the package may ask of a loaded model is :class:`~monai_singanseg.generator_protocol.PairGenerator` (``kind``,
``config``, ``intensity``, ``labels``, ``source``, ``device``, ``split``, ``join`` and the methods that differ
between kinds).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from monai_singanseg.checkpoint import FORMAT as SINGANSEG_FORMAT
from monai_singanseg.checkpoint import load_model, load_weights_only
from monai_singanseg.diffusion.checkpoint import DIFFUSION_FORMAT, load_diffusion
from monai_singanseg.diffusion.model import PairDiffusion
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generator_protocol import PairGenerator
from monai_singanseg.networks import SinGANSeg

__all__ = ["GENERATORS", "GENERATOR_KINDS", "GeneratorKind", "PairGenerator", "checkpoint_kind", "is_diffusion",
           "load_generator"]

Loader = Callable[[str | os.PathLike, "str | torch.device", dict[str, Any], bool], PairGenerator]


@dataclass(frozen=True)
class GeneratorKind:
    """One registered kind of pair generator.

    Attributes:
        name: the kind's name, also the class's ``kind``.
        cls: the model class.
        marker: the ``format`` value its checkpoints carry.
        load: ``load(path, device, payload, require_complete)``: the model of a checkpoint already read as
            ``payload``, in eval mode on ``device``.
    """

    name: str
    cls: type[PairGenerator]
    marker: str
    load: Loader


def _load_singanseg(path, device, payload: dict[str, Any], require_complete: bool) -> SinGANSeg:
    return load_model(path, device=device, require_complete=require_complete, payload=payload)[0]


def _load_diffusion(path, device, payload: dict[str, Any], require_complete: bool) -> PairDiffusion:
    model, state = load_diffusion(path, device=device, payload=payload)
    if require_complete and state is not None and not state.complete:
        raise SinGANSegInputError(
            f"{path}: diffusion training stopped at step {state.step} of {model.config.train_steps}; finish it "
            "(train again with --resume) before sampling from it."
        )
    return model


GENERATORS: dict[str, GeneratorKind] = {
    kind.name: kind for kind in (
        GeneratorKind(SinGANSeg.kind, SinGANSeg, SINGANSEG_FORMAT, _load_singanseg),
        GeneratorKind(PairDiffusion.kind, PairDiffusion, DIFFUSION_FORMAT, _load_diffusion),
    )
}
GENERATOR_KINDS = {kind.marker: name for name, kind in GENERATORS.items()}
"""Kind name by checkpoint format marker."""


def _read(path: str | os.PathLike) -> tuple[GeneratorKind, dict]:
    """The kind and the contents of the checkpoint at ``path``, read once."""
    payload = load_weights_only(path)
    marker = payload.get("format") if isinstance(payload, dict) else None
    if marker not in GENERATOR_KINDS:
        raise SinGANSegInputError(
            f"{path}: not a monai-singanseg checkpoint (format marker {marker!r}; expected one of "
            f"{', '.join(repr(k) for k in GENERATOR_KINDS)})."
        )
    return GENERATORS[GENERATOR_KINDS[marker]], payload


def checkpoint_kind(path: str | os.PathLike) -> str:
    """The kind (``"singanseg"``, ``"diffusion"``) of model the checkpoint at ``path`` holds.

    Raises:
        SinGANSegInputError: the file is missing, unreadable as weights only, or of no registered kind.
    """
    return _read(path)[0].name


def load_generator(
    path: str | os.PathLike, device: str | torch.device = "cpu", require_complete: bool = True
) -> PairGenerator:
    """The model stored at ``path``, of any registered kind, in eval mode on ``device`` (the file is read once).

    Args:
        path: a checkpoint written by SinGAN-Seg or diffusion training.
        device: where the model runs.
        require_complete: refuse a checkpoint whose training has not finished (a half-trained model makes poor
            pairs without saying so).

    Raises:
        SinGANSegInputError: the file is missing, foreign, damaged, or unfinished with ``require_complete``.
    """
    kind, payload = _read(path)
    return kind.load(path, device, payload, require_complete)


def is_diffusion(model: PairGenerator) -> bool:
    """Whether ``model`` is the diffusion kind (kept for callers of earlier versions; ``model.kind`` says it)."""
    return model.kind == PairDiffusion.kind
