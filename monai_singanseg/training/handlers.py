"""Handler objects of the generators' trainers: each ``attach(engine)`` registers itself on an ignite engine, as
ignite's and MONAI's handlers do (``ProgressBar``, ``TensorBoardStatsHandler``), so a trainer's run is the engine
plus a list of handlers, and a user's own handler is one more of them.

- :class:`CallHandler` wraps a plain function ``handler(engine, *context)``, the form the trainers' ``handlers``
  argument took before handler objects (still accepted: see :func:`as_handlers`).
- :class:`Progress` is ignite's tqdm progress bar, optionally on a terminal only.
- :class:`CheckpointWriter` writes the checkpoint every ``every`` steps of a run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from ignite.engine import Engine, Events
from ignite.handlers import ProgressBar

__all__ = ["CallHandler", "CheckpointWriter", "Handler", "Progress", "StepCheckpoint", "as_handlers"]


@runtime_checkable
class Handler(Protocol):
    """Anything that registers its event handlers on an ignite engine: this package's handlers, ignite's and
    MONAI's (``TensorBoardStatsHandler``, ``EarlyStopHandler`` ...)."""

    def attach(self, engine: Engine) -> None: ...


class CallHandler:
    """A function ``function(engine, *context)`` as a handler object: ``attach(engine)`` calls it once, and the
    function adds its own event handlers (``engine.add_event_handler(Events.ITERATION_COMPLETED, ...)``).

    Args:
        function: the user's function.
        context: what the trainer passes after the engine (SinGAN-Seg: the scale; the diffusion trainer: nothing).
    """

    def __init__(self, function: Callable[..., Any], *context: Any) -> None:
        self.function, self.context = function, context

    def attach(self, engine: Engine) -> None:
        self.function(engine, *self.context)


def as_handlers(handlers: Iterable[Handler | Callable[..., Any]], *context: Any) -> list[Handler]:
    """``handlers`` as handler objects: an object with ``attach`` stays as it is, a plain function is wrapped in a
    :class:`CallHandler` with ``context`` (so handlers users wrote as functions keep working)."""
    return [h if isinstance(h, Handler) else CallHandler(h, *context) for h in handlers]


class Progress:
    """ignite's tqdm ``ProgressBar`` (kept on screen when done) showing ``output_transform(engine.state.output)``.

    Args:
        desc: the bar's label.
        output_transform: the step output's entries to show.
        terminal_only: attach nothing when standard error is not a terminal: a log file or a cluster job's output
            then gets the trainer's summary lines, not thousands of bar refreshes.
    """

    def __init__(self, desc: str, output_transform: Callable[[Any], Any] = lambda out: out,
                 terminal_only: bool = False) -> None:
        self.desc, self.output_transform, self.terminal_only = desc, output_transform, terminal_only

    def attach(self, engine: Engine) -> None:
        if self.terminal_only and not sys.stderr.isatty():
            return
        ProgressBar(persist=True, desc=self.desc).attach(engine, output_transform=self.output_transform)


class CheckpointWriter:
    """Calls ``write(engine)`` after each step whose number ``first_step + iteration`` is a multiple of ``every``
    (``write`` does the writing, atomically under the model's save, so one handler serves any model kind). An
    interrupted run (an exception) writes nothing more: its last checkpoint stands.

    The end-of-run checkpoint is not this handler's: :meth:`~monai_singanseg.training.base.GeneratorTrainer.run`
    writes it once ``engine.run`` has returned, so a failed write there (a full disk) reaches the user as the
    trainer's one-line error, not as an exception ignite logs while it stops the engine.

    Args:
        write: writes the checkpoint of the run's current state.
        every: steps between checkpoints; 0: none during the run.
        first_step: steps done before the engine's first iteration (a resumed run's), so that checkpoints fall on
            the same steps as in an uninterrupted run.
    """

    def __init__(self, write: Callable[[Engine], None], every: int = 0, first_step: int = 0) -> None:
        self.write, self.every, self.first_step = write, every, first_step

    def _due(self, _engine: Engine, iteration: int) -> bool:
        return (self.first_step + iteration) % self.every == 0

    def attach(self, engine: Engine) -> None:
        if self.every:
            engine.add_event_handler(Events.ITERATION_COMPLETED(event_filter=self._due), self.write)


class StepCheckpoint:
    """Base of the handler objects that write the checkpoint of a run trained step by step (the diffusion and
    StyleGAN trainers): one log entry per checkpoint, with the losses since the previous one and the seconds of the
    whole training (across resumed runs), then the kind's own save.

    ``attach(engine)`` records every step's losses (:meth:`attach_losses`) and writes every ``checkpoint_every``
    steps (:class:`CheckpointWriter`); the trainer calls :meth:`write` once more at the end of the run
    (:meth:`~monai_singanseg.training.base.GeneratorTrainer.run`). A subclass defines :meth:`attach_losses`,
    :meth:`take_losses` and :meth:`save`.

    Args:
        model: the model being trained (its ``config`` has ``checkpoint_every`` and ``train_steps``).
        path: the checkpoint file (written atomically).
        state: the run's resume state so far (a new run's or the checkpoint's: ``step``, ``fingerprint``, ``log``);
            its log grows here.
    """

    def __init__(self, model: Any, path: Any, state: Any) -> None:
        self.model, self.path, self.state = model, path, state
        # the log's seconds count the whole training, across resumed runs
        self.start = time.perf_counter() - (state.log[-1]["seconds"] if state.log else 0.0)

    def attach(self, engine: Engine) -> None:
        self.attach_losses(engine)  # before the write of the same step
        CheckpointWriter(self.write, self.model.config.checkpoint_every, self.state.step).attach(engine)

    def attach_losses(self, engine: Engine) -> None:
        """Collect every step's losses from ``engine``."""
        raise NotImplementedError

    def take_losses(self) -> dict[str, float]:
        """The mean losses since the previous call, for the log entry."""
        raise NotImplementedError

    def save(self, step: int) -> None:
        """Write the checkpoint of ``step`` steps done (the log already holds its entry)."""
        raise NotImplementedError

    def write(self, engine: Engine | None = None) -> None:
        """Write the checkpoint of the steps done (none of this run's without ``engine``), once per step."""
        state = self.state
        step = state.step + (0 if engine is None else engine.state.iteration)
        if state.log and state.log[-1]["step"] == step:
            return  # already written at this step
        state.log.append({"step": step, **self.take_losses(), "seconds": time.perf_counter() - self.start})
        self.save(step)
