"""The two generators behind one surface: a SinGAN-Seg model or a pair-diffusion model, told apart by checkpoint.

Transforms, the CLI and the report take either; :func:`load_generator` reads a checkpoint of either kind (its format
marker says which), :func:`is_diffusion` tells a loaded model's kind. Both kinds share what the rest of the package
needs: ``config.image_channels``, ``config.mask_channels``, ``config.spatial_dims``, ``intensity`` (the map back
to the training image's units), ``labels`` (the label encoding), ``device`` and ``split``.
"""

from __future__ import annotations

import os
from typing import Union

import torch

from monai_singanseg.checkpoint import FORMAT as SINGANSEG_FORMAT
from monai_singanseg.checkpoint import load_model, load_weights_only
from monai_singanseg.diffusion.checkpoint import DIFFUSION_FORMAT, load_diffusion
from monai_singanseg.diffusion.model import PairDiffusion
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.networks import SinGANSeg

__all__ = ["GENERATOR_KINDS", "PairGenerator", "checkpoint_kind", "is_diffusion", "load_generator"]

PairGenerator = Union[SinGANSeg, PairDiffusion]
GENERATOR_KINDS = {SINGANSEG_FORMAT: "singanseg", DIFFUSION_FORMAT: "diffusion"}


def _read(path: str | os.PathLike) -> tuple[str, dict]:
    """The kind and the contents of the checkpoint at ``path``, read once."""
    payload = load_weights_only(path)
    marker = payload.get("format") if isinstance(payload, dict) else None
    if marker not in GENERATOR_KINDS:
        raise SinGANSegInputError(
            f"{path}: not a monai-singanseg checkpoint (format marker {marker!r}; expected one of "
            f"{', '.join(repr(k) for k in GENERATOR_KINDS)})."
        )
    return GENERATOR_KINDS[marker], payload


def checkpoint_kind(path: str | os.PathLike) -> str:
    """``"singanseg"`` or ``"diffusion"``: the kind of model the checkpoint at ``path`` holds.

    Raises:
        SinGANSegInputError: the file is missing, unreadable as weights only, or of neither kind.
    """
    return _read(path)[0]


def load_generator(
    path: str | os.PathLike, device: str | torch.device = "cpu", require_complete: bool = True
) -> PairGenerator:
    """The model stored at ``path``, of either kind, in eval mode on ``device`` (the file is read once).

    Args:
        path: a checkpoint written by SinGAN-Seg or diffusion training.
        device: where the model runs.
        require_complete: refuse a checkpoint whose training has not finished (a half-trained model makes poor
            pairs without saying so).

    Raises:
        SinGANSegInputError: the file is missing, foreign, damaged, or unfinished with ``require_complete``.
    """
    kind, payload = _read(path)
    if kind == "singanseg":
        return load_model(path, device=device, require_complete=require_complete, payload=payload)[0]
    model, state = load_diffusion(path, device=device, payload=payload)
    if require_complete and state is not None and not state.complete:
        raise SinGANSegInputError(
            f"{path}: diffusion training stopped at step {state.step} of {model.config.train_steps}; finish it "
            "(train again with --resume) before sampling from it."
        )
    return model


def is_diffusion(model: PairGenerator) -> bool:
    """Whether ``model`` is the diffusion kind."""
    return isinstance(model, PairDiffusion)
