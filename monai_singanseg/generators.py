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

from monai_singanseg.checkpoint_envelope import load_weights_only
from monai_singanseg.diffusion.model import PairDiffusion
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generator_protocol import PairGenerator
from monai_singanseg.networks import SinGANSeg
from monai_singanseg.stylegan.model import PairStyleGAN

__all__ = ["GENERATORS", "GENERATOR_KINDS", "GeneratorKind", "PairGenerator", "checkpoint_kind", "is_diffusion",
           "load_generator"]


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
    load: Callable[[Any, Any, dict[str, Any], bool], PairGenerator]

    @classmethod
    def of(cls, model_cls: type[PairGenerator]) -> GeneratorKind:
        """The entry of a :class:`PairGenerator` subclass: its ``kind``, marker and ``from_checkpoint``."""

        def load(path, device, payload: dict[str, Any], require_complete: bool) -> PairGenerator:
            return model_cls.from_checkpoint(path, device, require_complete=require_complete, payload=payload)[0]

        return cls(model_cls.kind, model_cls, model_cls.checkpoint_format.marker, load)


GENERATORS: dict[str, GeneratorKind] = {kind.name: kind for kind in map(GeneratorKind.of, (SinGANSeg, PairDiffusion,
                                                                                        PairStyleGAN))}
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
