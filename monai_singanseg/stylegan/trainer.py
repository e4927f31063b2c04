"""Training a :class:`~monai_singanseg.stylegan.model.PairStyleGAN` on a small dataset of image + mask pairs.

One ignite :class:`~ignite.engine.Engine` runs the training, one iteration per optimisation step
(:class:`StyleGANStep`): for each generator of the design, a critic update (non-saturating logistic loss, every pair
the critic sees passed through DiffAugment, and every ``r1_interval`` steps the R1 penalty on the real pairs, scaled
by the interval: StyleGAN2's lazy regularisation), then a generator update, then the moving average of the
generator's weights. In ``mask_then_image`` the image generator is trained on the real masks (its fakes are paired
with the masks they were drawn for), the mask generator on its own.

Every random draw of step ``k`` comes from one generator seeded with ``(seed, k)``
(:func:`stylegan_step_seed`, on :func:`~monai_singanseg.training.seeds.stream_seed`), so the same seed gives the
same weights and a run resumed from any checkpoint continues as if never interrupted, with no generator state to
store. The trainer derives from the trainers' base (:class:`~monai_singanseg.training.base.GeneratorTrainer`:
device, progress bar, ``stop_after``, handler objects, TensorBoard, the options a resumed checkpoint keeps) and
writes its checkpoints through :class:`StyleGANCheckpoint`, a handler object (the losses between checkpoints
collected by :class:`LossRecords`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from torch import nn

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.intensity import IntensityMapping, LabelEncoding
from monai_singanseg.io import TrainingPair
from monai_singanseg.stylegan.checkpoint_format import StyleGANTrainingState
from monai_singanseg.stylegan.config import StyleGANConfig
from monai_singanseg.stylegan.model import PairStyleGAN, build_critics
from monai_singanseg.training.augment import diff_augment
from monai_singanseg.training.average import WeightAverage
from monai_singanseg.training.base import GeneratorTrainer
from monai_singanseg.training.handlers import StepCheckpoint
from monai_singanseg.training.pairs import resize_pair, stack_training_pairs
from monai_singanseg.training.resume import fingerprint
from monai_singanseg.training.seeds import stream_seed

__all__ = ["STYLEGAN_SALT", "GeneratorAverage", "LossRecords", "StyleGANCheckpoint", "StyleGANData", "StyleGANStep",
           "StyleGANTrainer", "build_optimizers", "draw_batch", "stack_pairs", "stylegan_step_seed"]

logger = logging.getLogger(__name__)

STYLEGAN_SALT = "monai-singanseg-stylegan"
"""Salt of the StyleGAN trainer's per-step streams, apart from the other trainers' (changing it changes every run)."""


def stylegan_step_seed(seed: int, step: int) -> int:
    """Seed of the random stream of optimisation step ``step`` (0-based) of a StyleGAN run seeded ``seed``."""
    return stream_seed(STYLEGAN_SALT, seed, step)


@dataclass
class StyleGANData:
    """The training pairs as one tensor, with the maps back to their units.

    Attributes:
        real: ``(P, C, *resolution)`` in ``[-1, 1]``, all pairs in one intensity mapping.
        classes: ``(P,)`` class indices, or ``None`` for a model without classes.
        intensity: the common map of the image channels. labels: the common map of the label.
        source: the first pair's affine, shape and contrast names.
    """

    real: torch.Tensor
    classes: torch.Tensor | None
    intensity: IntensityMapping
    labels: LabelEncoding
    source: dict[str, Any]

    def fingerprint(self) -> str:
        """SHA-256 of the pairs (and their classes): identifies the data in a checkpoint without storing it."""
        if self.classes is None:
            return fingerprint(self.real)
        return fingerprint(torch.cat([self.real.flatten(), self.classes.float()]))


def stack_pairs(
    pairs: TrainingPair | torch.Tensor | Sequence[TrainingPair | torch.Tensor],
    config: StyleGANConfig,
    intensity: IntensityMapping | None = None,
    labels: LabelEncoding | None = None,
    classes: Sequence[int] | None = None,
) -> StyleGANData:
    """Check the training pairs against ``config``, bring them to its ``resolution`` and stack them.

    Pairs of another size are resized (the image smoothly, antialiased when shrinking; the mask smoothly, then made
    hard again). Pairs whose image intensity maps differ are re-expressed in one common map (per channel, the lowest
    ``lower`` and the highest ``upper``), which loses nothing; their label encodings must be equal.

    Args:
        pairs: :class:`~monai_singanseg.io.TrainingPair` objects, or tensors ``(C, *spatial)`` in ``[-1, 1]``
            (image channels then mask channels), or one of either.
        config: the model's configuration (channels, spatial dims, resolution, classes).
        intensity: the map of bare tensors' image channels (default: identity on ``[-1, 1]``).
        labels: the encoding of bare tensors' mask channels (default: binary 0/1, or K class indices).
        classes: a class index per pair, for a config with ``num_classes`` > 0.

    Raises:
        SinGANSegInputError: no pair, a wrong rank or channel count, values outside ``[-1, 1]``, differing label
            encodings, or missing / out-of-range classes; each naming the pair's file.
    """
    def fit(pair: TrainingPair, _name: str, _stacked: list[torch.Tensor]) -> torch.Tensor:
        return resize_pair(pair, config.resolution).real

    real, common, encoding, source = stack_training_pairs(pairs, config, intensity, labels, fit)
    return StyleGANData(real, _check_classes(classes, real.shape[0], config), common, encoding, source)


def _check_classes(classes: Sequence[int] | None, count: int, config: StyleGANConfig) -> torch.Tensor | None:
    """``classes`` as a ``(count,)`` tensor, checked against ``config.num_classes``."""
    k = config.num_classes
    if k == 0:
        if classes is not None:
            raise SinGANSegInputError("classes given, but the config has num_classes=0.")
        return None
    if classes is None or len(classes) != count:
        raise SinGANSegInputError(f"a model of {k} classes needs one class index per pair ({count} pairs), got "
                                  f"{'none' if classes is None else len(classes)}.")
    out = torch.as_tensor(list(classes), dtype=torch.long)
    bad = [i for i, c in enumerate(out.tolist()) if not 0 <= c < k]
    if bad:
        raise SinGANSegInputError(f"pair {bad[0]}: class {int(out[bad[0]])} is outside 0..{k - 1}.")
    return out


def draw_batch(data: StyleGANData, config: StyleGANConfig, rng: torch.Generator,
               real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``batch_size`` pairs of ``real`` ``(P, C, *resolution)`` (``data.real`` on the training device), drawn with
    replacement, each flipped along the first spatial axis with probability 1/2 when ``config.flips``; their
    classes. Every draw comes from ``rng``."""
    count, device = config.batch_size, real.device
    which = torch.randint(real.shape[0], (count,), generator=rng, device=device)
    batch = real[which]
    if config.flips:
        flip = torch.rand((count,), generator=rng, device=device) < 0.5
        batch = torch.where(flip.reshape(-1, *(1,) * (batch.ndim - 1)), batch.flip(2), batch)
    classes = None if data.classes is None else data.classes.to(device)[which]
    return batch, classes


class GeneratorAverage:
    """Exponential moving average of the generators' weights (and buffers copied), warmed up by the global step:
    step ``k`` uses ``min(decay, (1 + k) / (10 + k))``, so a resumed run averages exactly as an uninterrupted one
    (one :class:`~monai_singanseg.training.average.WeightAverage` per generator; the running mean of ``w`` is
    itself an average, so it is copied).

    Args:
        generators: the generators (a ``ModuleDict``). decay: the long-run decay, in ``(0, 1)``.
    """

    def __init__(self, generators: nn.ModuleDict, decay: float) -> None:
        self.decay = decay
        self.averages = {name: WeightAverage(g, decay, copied=("mapping.w_avg",)) for name, g in generators.items()}

    @property
    def weights(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{generator name: averaged state dict}``."""
        return {name: average.weights for name, average in self.averages.items()}

    def update(self, generators: nn.ModuleDict, step: int) -> None:
        """Move the average towards the generators' weights after optimisation step ``step`` (0-based)."""
        for name, g in generators.items():
            self.averages[name].update(g, step)


def _nonsaturating(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """The logistic GAN loss of critic scores: ``softplus(-s)`` for pairs that should look real, ``softplus(s)``
    for those that should look generated."""
    return F.softplus(-scores if real else scores).mean()


class StyleGANStep:
    """One optimisation step (ignite's process function): for each generator of the design, a critic update (with
    the lazy R1 penalty every ``r1_interval`` steps) and a generator update, then the moving average.
    ``StyleGANStep(engine, step)`` returns ``{"<name>/critic": ..., "<name>/generator": ..., "<name>/r1": ...}``
    (floats); ``step`` is the 0-based global step, which seeds every draw."""

    def __init__(self, model: PairStyleGAN, critics: nn.ModuleDict, optimizers: dict[str, torch.optim.Optimizer],
                 data: StyleGANData, real: torch.Tensor, average: GeneratorAverage | None = None) -> None:
        self.model, self.critics, self.optimizers, self.data, self.real = model, critics, optimizers, data, real
        self.average = average
        self.config = model.config

    def _view(self, name: str, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The real tensor critic ``name`` judges and its image-channel count (for the colour augmentation)."""
        n = self.config.image_channels
        return (batch[:, n:], 0) if name == "mask" else (batch, n)

    def _fake(self, name: str, batch: torch.Tensor, classes: torch.Tensor | None,
              rng: torch.Generator) -> torch.Tensor:
        """Generator ``name``'s fakes for this batch; the image generator's are joined to the real masks they were
        drawn for."""
        cfg = self.config
        z = torch.randn((batch.shape[0], cfg.latent_dim), generator=rng, device=batch.device)
        g = self.model.generators[name]
        if name != "image":
            return g(z, classes, generator=rng, update_avg=True)
        mask = batch[:, cfg.image_channels:]
        return torch.cat([g(z, classes, condition=mask, generator=rng, update_avg=True), mask], dim=1)

    def _judge(self, name: str, x: torch.Tensor, n_img: int, classes: torch.Tensor | None,
               rng: torch.Generator) -> torch.Tensor:
        """Critic ``name``'s scores ``(N,)`` of ``x`` seen through DiffAugment."""
        augment = self.config.augment
        return self.critics[name](diff_augment(x, n_img, augment, rng) if augment else x, classes)

    def _update(self, name: str, batch: torch.Tensor, classes: torch.Tensor | None, rng: torch.Generator,
                step: int) -> dict[str, float]:
        """One critic and one generator update of network ``name``; their losses (and R1 when taken)."""
        cfg, critic, out = self.config, self.critics[name], {}
        real, n_img = self._view(name, batch)
        # critic: generated pairs down, real pairs up, and every r1_interval steps the R1 penalty on the real ones
        critic.requires_grad_(True)
        opt = self.optimizers[f"critic:{name}"]
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake = self._fake(name, batch, classes, rng)
        loss = _nonsaturating(self._judge(name, fake, n_img, classes, rng), real=False)
        regularize = cfg.r1_gamma > 0 and step % cfg.r1_interval == 0
        real_in = real.detach().requires_grad_(regularize)
        scores = self._judge(name, real_in, n_img, classes, rng)
        loss = loss + _nonsaturating(scores, real=True)
        if regularize:
            (grad,) = torch.autograd.grad(scores.sum(), real_in, create_graph=True)
            r1 = grad.square().sum(dim=tuple(range(1, grad.ndim))).mean()
            loss = loss + r1 * (cfg.r1_gamma / 2 * cfg.r1_interval)
            out[f"{name}/r1"] = float(r1.detach())
        loss.backward()
        opt.step()
        out[f"{name}/critic"] = float(loss.detach())
        # generator: its fakes judged real, the critic fixed (no gradient kept for its weights)
        critic.requires_grad_(False)
        opt = self.optimizers[f"generator:{name}"]
        opt.zero_grad(set_to_none=True)
        loss = _nonsaturating(self._judge(name, self._fake(name, batch, classes, rng), n_img, classes, rng), real=True)
        loss.backward()
        opt.step()
        out[f"{name}/generator"] = float(loss.detach())
        return out

    def __call__(self, engine: Engine, step: int) -> dict[str, float]:
        cfg = self.config
        rng = torch.Generator(device=self.real.device).manual_seed(stylegan_step_seed(cfg.seed, step))
        batch, classes = draw_batch(self.data, cfg, rng, self.real)
        self.model.generators.train()
        out: dict[str, float] = {}
        for name in self.critics:
            out.update(self._update(name, batch, classes, rng, step))
        if self.average is not None:
            self.average.update(self.model.generators, step)
        return out


def build_optimizers(model: PairStyleGAN, critics: nn.ModuleDict) -> dict[str, torch.optim.Optimizer]:
    """Adam per network: betas ``(0, 0.99)`` (StyleGAN2); the critics' rate and betas adjusted for lazy R1 by
    ``c = r1_interval / (r1_interval + 1)`` (rate ``lr * c``, betas ``** c``), as StyleGAN2 does, so the
    regularised steps do not change the critics' effective optimisation."""
    cfg = model.config
    c = cfg.r1_interval / (cfg.r1_interval + 1) if cfg.r1_gamma > 0 else 1.0
    out: dict[str, torch.optim.Optimizer] = {}
    for name, g in model.generators.items():
        out[f"generator:{name}"] = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=(0.0, 0.99), eps=1e-8)
    for name, critic in critics.items():
        out[f"critic:{name}"] = torch.optim.Adam(critic.parameters(), lr=cfg.lr * c, betas=(0.0, 0.99 ** c),
                                                 eps=1e-8)
    return out


class LossRecords:
    """Mean losses between checkpoints: collects every step's output (``attach(engine)``) and hands the means out
    (:meth:`take`), each loss over the steps that reported it (R1 is taken every ``r1_interval`` steps only)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)

    def _collect(self, engine: Engine) -> None:
        for key, value in engine.state.output.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
            self.counts[key] = self.counts.get(key, 0) + 1

    def take(self) -> dict[str, float]:
        """The means since the last call (empty when no step ran)."""
        means = {k: v / self.counts[k] for k, v in self.sums.items()}
        self.sums, self.counts = {}, {}
        return means


class StyleGANCheckpoint(StepCheckpoint):
    """Writes a StyleGAN run's checkpoint (a handler object): the sampling weights (the moving average's, when kept,
    with the training weights beside them), the critics, the optimizers and the log, one entry per checkpoint with
    the mean losses since the previous one (:class:`LossRecords`) and the seconds of the whole training (across
    resumed runs).

    When and how it writes is :class:`~monai_singanseg.training.handlers.StepCheckpoint`'s.

    Args:
        model, path, state: as :class:`~monai_singanseg.training.handlers.StepCheckpoint` takes them.
        critics: the critics. optimizers: every network's optimizer (:func:`build_optimizers`).
        average: the moving average of the generators' weights, or ``None``.
    """

    def __init__(self, model: PairStyleGAN, path: Path, state: StyleGANTrainingState, critics: nn.ModuleDict,
                 optimizers: dict[str, torch.optim.Optimizer], average: GeneratorAverage | None) -> None:
        super().__init__(model, path, state)
        self.critics, self.optimizers, self.average = critics, optimizers, average
        self.records = LossRecords()

    def attach_losses(self, engine: Engine) -> None:
        self.records.attach(engine)

    def take_losses(self) -> dict[str, float]:
        return self.records.take()

    def save(self, step: int) -> None:
        state, model, average = self.state, self.model, self.average
        online = None if average is None else {n: g.state_dict() for n, g in model.generators.items()}
        done = StyleGANTrainingState(
            state.fingerprint, step, step >= model.config.train_steps, online,
            {n: c.state_dict() for n, c in self.critics.items()},
            {k: o.state_dict() for k, o in self.optimizers.items()}, state.log)
        model.save(self.path, done, weights=None if average is None else average.weights)


class StyleGANTrainer(GeneratorTrainer):
    """Train a :class:`PairStyleGAN`, writing its checkpoint every ``checkpoint_every`` steps and at the end.

    Args:
        config, device, progress: as :class:`~monai_singanseg.training.base.GeneratorTrainer` takes them; a resumed
            run keeps the checkpoint's config but for ``train_steps`` and ``checkpoint_every``, taken from here so
            that a finished run can be extended (:meth:`~monai_singanseg.training.base.GeneratorTrainer.resume_from`).
        handlers: attached once to the training engine: handler objects (``attach(engine)``), or callables
            ``handler(engine)`` (``engine.state.output`` holds the step's losses).
        stop_after: stop (as an interruption would, after writing the checkpoint) once this many steps in all are
            done; for tests and for splitting a long run.
        log_dir: write every step's losses to TensorBoard here (tags ``stylegan/<network>/<loss>``, step = steps
            done, going on across resumed runs); needs the optional ``tensorboard`` package.

    Example:
        >>> pairs = [load_training_pair([image], label) for image, label in files]   # doctest: +SKIP
        >>> config = StyleGANConfig.for_pair(pairs[0], resolution=64, train_steps=5000)
        >>> model = StyleGANTrainer(config).fit(pairs, "stylegan.pt")
    """

    config: StyleGANConfig

    def fit(
        self,
        pairs: TrainingPair | torch.Tensor | Sequence[TrainingPair | torch.Tensor],
        checkpoint: str | os.PathLike,
        resume: bool = False,
        intensity: IntensityMapping | None = None,
        labels: LabelEncoding | None = None,
        classes: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> PairStyleGAN:
        """Train on ``pairs`` (see :func:`stack_pairs`) and return the model (its averaged weights) in eval mode.

        Args:
            pairs: training pairs (``TrainingPair`` or ``(C, *spatial)`` tensors in ``[-1, 1]``), resized to the
                config's ``resolution`` when of another size.
            checkpoint: file written every ``checkpoint_every`` steps and at the end (atomically).
            resume: continue from ``checkpoint`` (on the same kind of device the weights equal an uninterrupted
                run's); a finished checkpoint with as many ``train_steps`` is returned as is.
            intensity, labels: the maps of bare tensors' channels
                (:func:`~monai_singanseg.training.pairs.stack_training_pairs`; ignored for ``TrainingPair``).
            classes: a class index per pair, for a config with ``num_classes`` > 0.
            class_names: what each class index means (a contrast, a protocol), stored as the model's
                ``source["classes"]`` so that samples can be asked for by name.

        Raises:
            SinGANSegInputError: bad pairs or classes (:func:`stack_pairs`), or resuming from a checkpoint of other
                data.
        """
        checkpoint = Path(checkpoint)
        model, state, data = self._start(pairs, checkpoint, resume, intensity, labels, classes)
        _name_classes(model, class_names)
        cfg = model.config
        critics, optimizers = self._critics(model, state)
        last = self.last_unit(cfg.train_steps)
        if state.step >= last:
            return model.eval()
        average = None
        if cfg.ema_decay > 0:
            # the model holds the checkpoint's sampling weights (the average), the training weights beside them
            average = GeneratorAverage(model.generators, cfg.ema_decay)
            if state.online is not None:
                for name, weights in state.online.items():
                    model.generators[name].load_state_dict(weights)
        real = data.real.to(self.device)
        writer = StyleGANCheckpoint(model, checkpoint, state, critics, optimizers, average)
        with self.open_log(cfg.seed) as board:  # an interrupted run still flushes and closes its TensorBoard log
            engine = self.engine(StyleGANStep(model, critics, optimizers, data, real, average), "stylegan",
                                 own=[writer], board=None if board is None else board.loss_handler("stylegan",
                                                                                                    state.step))
            self.run(engine, range(state.step, last), lambda engine, _seconds: writer.write(engine))
        logger.info("StyleGAN training: step %d/%d, %.1f s", state.step + engine.state.iteration, cfg.train_steps,
                    time.perf_counter() - writer.start)
        if average is not None:
            for name, weights in average.weights.items():  # the average samples
                model.generators[name].load_state_dict(weights)
        return model.eval()

    def _critics(self, model: PairStyleGAN, state: StyleGANTrainingState,
                 ) -> tuple[nn.ModuleDict, dict[str, torch.optim.Optimizer]]:
        """The critics and every network's optimizer: new (the critics seeded apart from the generators), or with the
        checkpoint's weights and optimizer states."""
        cfg = model.config
        critics = build_critics(cfg, seed=stream_seed(STYLEGAN_SALT, cfg.seed, -1)).to(self.device)
        for name, weights in (state.critics or {}).items():
            critics[name].load_state_dict(weights)
        optimizers = build_optimizers(model, critics)
        for key, opt_state in state.optimizers.items():
            optimizers[key].load_state_dict(opt_state)
        return critics, optimizers

    def _start(self, pairs, checkpoint: Path, resume: bool, intensity: IntensityMapping | None,
               labels: LabelEncoding | None, classes: Sequence[int] | None,
               ) -> tuple[PairStyleGAN, StyleGANTrainingState, StyleGANData]:
        """A new model, or the checkpoint's (refusing other data), with its state and the stacked training data."""
        if not resume:
            data = stack_pairs(pairs, self.config, intensity, labels, classes)
            model = PairStyleGAN(self.config, data.intensity, data.labels, data.source).to(self.device)
            return model, StyleGANTrainingState(data.fingerprint()), data
        return self.resume_from(checkpoint, PairStyleGAN.from_checkpoint,
                                lambda stored: stack_pairs(pairs, stored, intensity, labels, classes),
                                StyleGANData.fingerprint)


def _name_classes(model: PairStyleGAN, class_names: Sequence[str] | None) -> None:
    """Store what each class index means as ``model.source["classes"]`` (nothing when ``class_names`` is None)."""
    if class_names is None:
        return
    if len(class_names) != model.config.num_classes:
        raise SinGANSegInputError(f"{len(class_names)} class names for a model of {model.config.num_classes} "
                                  "classes.")
    model.source["classes"] = [str(name) for name in class_names]
