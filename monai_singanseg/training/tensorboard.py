"""Optional TensorBoard logging of a training run: per-scale losses every iteration and a sample after every scale.

The losses go through MONAI's :class:`~monai.handlers.TensorBoardStatsHandler`, attached to each scale's ignite
engine (:func:`loss_handler`); the per-scale summary and sample are this module's own. TensorBoard is not a
dependency: ``torch.utils.tensorboard`` is imported through ``monai.utils.optional_import`` only when logging is asked
for, and a clear error says ``pip install tensorboard`` when it is missing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine
from monai.handlers import TensorBoardStatsHandler
from monai.utils import optional_import

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.visualize import display_slice

SummaryWriter, has_tensorboard = optional_import("torch.utils.tensorboard", name="SummaryWriter")

__all__ = ["TensorBoardLog", "has_tensorboard", "loss_handler", "loss_writer", "require_tensorboard"]


def require_tensorboard(log_dir: str | os.PathLike) -> None:
    """Raise :class:`SinGANSegInputError` saying ``pip install tensorboard`` when TensorBoard is not installed, or
    naming ``log_dir`` when it (or a folder above it) is a file: the writer would fail with a traceback after the
    first scale had trained."""
    if not has_tensorboard:
        raise SinGANSegInputError(
            f"TensorBoard logging to {log_dir} needs the tensorboard package: pip install tensorboard "
            "(or train without --tensorboard / log_dir)."
        )
    path = Path(log_dir)
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "is a file" if folder == path else f"is inside {folder}, a file"
                raise SinGANSegInputError(f"{log_dir}: {what}; --tensorboard (log_dir) takes a folder for the "
                                          "event files.")
            break


class _LossHandler(TensorBoardStatsHandler):
    """MONAI's stats handler with its steps counted from ``first_step`` (a resumed run's steps go on from the
    checkpoint's, not from 1 again)."""

    def __init__(self, first_step: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.first_step = first_step

    def _write_scalar(self, _engine: Engine, writer: Any, tag: str, value: Any, step: int) -> None:
        writer.add_scalar(tag, value, self.first_step + step)


def loss_handler(writer: SummaryWriter, prefix: str, first_step: int = 0) -> TensorBoardStatsHandler:
    """MONAI's handler writing an engine's scalar losses as ``<prefix>/<name>`` after every iteration (step =
    ``first_step`` + the engine's iteration); the per-model values of a group (not scalars) are left out: their means
    are logged.

    Args:
        writer: the run's writer (the handler neither owns nor closes it).
        prefix: the tag folder, e.g. ``scale_03``.
        first_step: steps done before the engine's first iteration (a resumed diffusion run's).
    """

    def scalars(output: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {f"{prefix}/{name}": value for name, value in output.items()
                if not (torch.is_tensor(value) and value.ndim > 0)}

    return _LossHandler(first_step, summary_writer=writer, iteration_log=True, epoch_log=False,
                        output_transform=scalars)


def loss_writer(log_dir: str | os.PathLike) -> SummaryWriter:
    """A TensorBoard writer of ``log_dir`` (created), refusing a missing tensorboard or a file in the way first."""
    require_tensorboard(log_dir)
    return SummaryWriter(log_dir=str(log_dir))


class TensorBoardLog:
    """Writes a training run to ``log_dir`` for ``tensorboard --logdir``.

    Scalars ``scale_<k>/{critic,gen,rec,gp}`` (step = iteration in the scale; the diffusion trainer's
    ``diffusion/loss``, step = steps done), ``summary/{rec,noise_amp,seconds}``
    (step = scale) and an image ``samples/scale_<k>``: a row of [real image | sample image | real mask | sample
    mask] at that scale, in ``[0, 1]`` (3D: middle slice along the last axis; the first image channel unless there
    are 3). Samples are drawn with their own seeded generator, so logging never changes the training's random
    stream (a logged run equals an unlogged one).

    Args:
        log_dir: the event-file folder (created).
        seed: seed of the sample noise.

    Raises:
        SinGANSegInputError: TensorBoard is not installed (the message says ``pip install tensorboard``).
    """

    def __init__(self, log_dir: str | os.PathLike, seed: int = 0) -> None:
        self.writer = loss_writer(log_dir)
        self.seed = seed

    def loss_handler(self, prefix: str, first_step: int = 0) -> TensorBoardStatsHandler:
        """The handler object logging an engine's losses as ``<prefix>/<name>`` to this log (:func:`loss_handler`),
        for :meth:`~monai_singanseg.training.base.GeneratorTrainer.engine`."""
        return loss_handler(self.writer, prefix, first_step)

    def attach(self, engine: Engine, scale: int) -> None:
        """Log the losses of every iteration of ``scale``'s engine (:func:`loss_handler`)."""
        self.loss_handler(f"scale_{scale:02d}").attach(engine)

    @torch.no_grad()
    def end_scale(self, model, real: torch.Tensor, record: dict[str, Any]) -> None:
        """Log the summary of a finished scale and a sample of the model up to it next to ``real`` ``(1, C, *s)``."""
        scale = int(record["scale"])
        for name in ("rec", "noise_amp", "seconds"):
            self.writer.add_scalar(f"summary/{name}", float(record[name]), scale)
        generator = torch.Generator(device=model.device).manual_seed(self.seed + scale)
        fake = model.generate(1, generator=generator, stop_scale=scale + 1)
        n_img = model.config.image_channels
        panels = [real[0, :n_img], fake[0, :n_img], real[0, n_img:n_img + 1], fake[0, n_img:n_img + 1]]
        shown = [display_slice(p, [-1.0] * p.shape[0], [1.0] * p.shape[0]) for p in panels]
        shown = [s if s.ndim == 3 else np.repeat(s[..., None], 3, axis=-1) for s in shown]
        self.writer.add_image(f"samples/scale_{scale:02d}", np.concatenate(shown, axis=1), scale, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
