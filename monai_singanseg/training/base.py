"""The base of every generator's trainer: :class:`GeneratorTrainer`.

A trainer turns training data into a model and a checkpoint. What the generators' trainers do alike lives here: the
device, the progress bar, the ``stop_after`` option, the handler objects attached to each ignite engine (the
trainer's own, then the user's, then TensorBoard's), the optional TensorBoard log, and the bookkeeping of a resumed
run (the options a checkpoint keeps). What differs (the model, its training step, how many engines a run takes, what a
checkpoint holds) is the subclass's.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from ignite.engine import Engine

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.training.handlers import Handler, Progress, as_handlers
from monai_singanseg.training.resume import ConfigDifference, config_differences

if TYPE_CHECKING:
    from monai_singanseg.training.tensorboard import TensorBoardLog

__all__ = ["RESUMABLE_CHANGES", "GeneratorTrainer"]

# options that may change when a step-trained run is resumed: how long to train and how often to save
RESUMABLE_CHANGES = ("train_steps", "checkpoint_every")


class GeneratorTrainer:
    """Base class of the generators' trainers, on pytorch-ignite.

    A run is one or more ignite :class:`~ignite.engine.Engine` (SinGAN-Seg: one per scale; the diffusion model and
    StyleGAN2: one for all steps), each running the subclass's process function (one training step) with handler
    objects attached in this order by :meth:`engine`: the trainer's own (a
    :class:`~monai_singanseg.training.handlers.CheckpointWriter`, SinGAN-Seg's plateau stop), the progress bar, the
    user's ``handlers``, and the TensorBoard loss handler (MONAI's ``TensorBoardStatsHandler``, :meth:`open_log`).

    A generator's trainer derives from this class; the conditional StyleGAN2's, in outline::

        class StyleGANTrainer(GeneratorTrainer):
            def fit(self, pairs, checkpoint, resume=False) -> PairStyleGAN:
                model, state = ...            # a new model, or the checkpoint's (check fingerprint(data) against
                                              # state.fingerprint, then self.warn_kept_options(...))
                last = self.last_unit(self.config.train_steps)  # honours stop_after
                with self.open_log(self.config.seed) as board:
                    write = lambda engine: model.save(checkpoint, ...)  # StyleGANCheckpoint.write
                    engine = self.engine(StyleGANStep(model, ...), "stylegan",
                                         own=[CheckpointWriter(write, every=..., first_step=state.step)],
                                         board=board and board.loss_handler("stylegan", first_step=state.step))
                    self.run(engine, range(state.step, last), lambda engine, seconds: write(engine))
                return model.eval()

    Every random draw of a step should come from a generator seeded by
    :func:`~monai_singanseg.training.seeds.stream_seed` (one salt per kind), so a resumed run equals an uninterrupted
    one with no generator state in the checkpoint; the data is recognised by
    :func:`~monai_singanseg.training.resume.fingerprint`.

    Args:
        config: the model and training configuration (its ``validate()`` is called here).
        device: where the networks train.
        progress: show a progress bar.
        handlers: handler objects (``attach(engine)``: ignite's, MONAI's, or
            :class:`~monai_singanseg.training.handlers.CallHandler`), or functions ``handler(engine, *context)``
            as the subclass documents them; attached to every engine of the run.
        stop_after: stop (as an interruption would, after writing the checkpoint) once this many units are done
            (the subclass says which: SinGAN-Seg's scales, the diffusion model's steps).
        log_dir: write TensorBoard logs here; needs the optional ``tensorboard`` package (checked here, before any
            training). ``None``: no logging.
    """

    def __init__(
        self,
        config: Any,
        device: str | torch.device = "cpu",
        progress: bool = True,
        handlers: Sequence[Handler | Callable[..., Any]] | None = None,
        stop_after: int | None = None,
        log_dir: str | os.PathLike | None = None,
    ) -> None:
        self.config = config.validate()
        self.device = torch.device(device)
        self.progress = progress
        self.handlers = list(handlers or [])
        self.stop_after = stop_after
        self.log_dir = log_dir
        if log_dir is not None:
            from monai_singanseg.training.tensorboard import require_tensorboard

            require_tensorboard(log_dir)  # fail before any training, not after the first unit

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        """Train and return the model in eval mode. Each subclass gives its own data arguments, then
        ``checkpoint`` (the file written at engine events) and ``resume`` (continue from it)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement fit().")

    def last_unit(self, total: int) -> int:
        """The units (scales, steps) done when this run stops: ``total``, or ``stop_after`` when it comes first."""
        return total if self.stop_after is None else min(self.stop_after, total)

    def run(self, engine: Engine, data: Sequence[Any], end: Callable[[Engine, float], None]) -> None:
        """Run ``engine`` once over ``data`` (one item per step), then ``end(engine, seconds)``: the end-of-run
        work (the checkpoint, whose write failing then is the trainer's one-line error, the log line). ``seconds``:
        the engine's run time. Not reached when the run is interrupted (an exception): the last checkpoint stands."""
        start = time.perf_counter()
        engine.run(data, max_epochs=1)
        end(engine, time.perf_counter() - start)

    def engine(
        self,
        step: Callable[[Engine, Any], Any],
        desc: str,
        own: Sequence[Handler] = (),
        context: tuple[Any, ...] = (),
        board: Handler | None = None,
        output_transform: Callable[[Any], Any] = lambda out: out,
        terminal_only: bool = False,
        state: dict[str, Any] | None = None,
    ) -> Engine:
        """An ignite engine running ``step`` with the run's handlers attached, in a fixed order: ``own`` (the
        trainer's), the progress bar (``desc``, ``output_transform``, ``terminal_only``: see
        :class:`~monai_singanseg.training.handlers.Progress`), the user's ``handlers`` (functions get ``context``
        after the engine), and ``board`` (the TensorBoard loss handler, or ``None``). ``state``: attributes set on
        ``engine.state`` before any handler is attached (ignite keeps them: handlers reach the step's objects
        there)."""
        engine = Engine(step)
        for name, value in (state or {}).items():
            setattr(engine.state, name, value)
        handlers: list[Handler] = list(own)
        if self.progress:
            handlers.append(Progress(desc, output_transform, terminal_only))
        handlers += as_handlers(self.handlers, *context)
        if board is not None:
            handlers.append(board)
        for handler in handlers:
            handler.attach(engine)
        return engine

    @contextmanager
    def open_log(self, seed: int = 0) -> Iterator[TensorBoardLog | None]:
        """The run's TensorBoard log (``log_dir``; samples seeded ``seed``), closed (flushed) when the run ends,
        also when it is interrupted; ``None`` without ``log_dir``."""
        if self.log_dir is None:
            yield None
            return
        from monai_singanseg.training.tensorboard import TensorBoardLog

        board = TensorBoardLog(self.log_dir, seed=seed)
        try:
            yield board
        finally:
            board.close()

    def resume_from(self, checkpoint: str | os.PathLike, load: Callable[..., tuple[Any, Any]],
                    stack: Callable[[Any], Any], data_fingerprint: Callable[[Any], str],
                    resumable: Sequence[str] = RESUMABLE_CHANGES) -> tuple[Any, Any, Any]:
        """``(model, state, data)`` of a run resumed from ``checkpoint``: the model and resume state read by
        ``load(checkpoint, device=...)``, its config taking the ``resumable`` fields from this trainer's (the others
        kept, with a warning for each that differs: :meth:`warn_kept_options`), and the training data stacked for
        that config by ``stack(config)``, whose ``data_fingerprint(data)`` must be the state's.

        Raises:
            SinGANSegInputError: the checkpoint holds no training state, or was trained on other data.
        """
        model, state = load(checkpoint, device=self.device)
        if state is None:
            raise SinGANSegInputError(f"{checkpoint}: cannot resume: the checkpoint holds no training state.")
        stored = model.config
        self.warn_kept_options(checkpoint, stored, self.config, resumable)
        for name in resumable:
            setattr(stored, name, getattr(self.config, name))
        data = stack(stored)
        if data_fingerprint(data) != state.fingerprint:
            raise SinGANSegInputError(f"{checkpoint}: cannot resume: it was trained on other data.")
        return model, state, data

    def warn_kept_options(self, checkpoint: str | os.PathLike, stored: Any, asked: Any,
                          resumable: Sequence[str] = ()) -> list[ConfigDifference]:
        """Warn about every option of ``asked`` that the resumed checkpoint's config ``stored`` keeps otherwise,
        except the ``resumable`` fields (which the subclass takes from ``asked``); return the warned differences."""
        kept = [d for d in config_differences(stored, asked) if d.field not in resumable]
        log = logging.getLogger(type(self).__module__)  # the subclass's module logs its warnings, as it always has
        for difference in kept:
            log.warning("%s: resuming with the checkpoint's options: %s", checkpoint, difference)
        return kept
