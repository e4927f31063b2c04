"""Training a :class:`~monai_singanseg.diffusion.PairDiffusion` on one or more image + mask pairs.

One ignite :class:`~ignite.engine.Engine` runs the whole training, one engine iteration per optimisation step
(:class:`DiffusionStep`): random crops (and flips) of the training pairs, noised by MONAI's ``DiffusionInferer`` at
uniformly drawn timesteps, epsilon-prediction MSE, one Adam step. Every random draw of step ``k`` comes from a
generator seeded with ``(seed, k)`` (:func:`~monai_singanseg.training.seeds.step_seed`, the stream the
SinGAN-Seg trainer seeds its scales from, with another salt), so the same seed gives the same weights, and a run resumed
from any checkpoint (written every ``checkpoint_every`` steps and at the end) continues exactly as if never
interrupted, with no generator state to store. The trainer derives from the trainers' base
(:class:`~monai_singanseg.training.base.GeneratorTrainer`: device, progress bar, ``stop_after``, handler objects,
TensorBoard) and writes its checkpoints through :class:`DiffusionCheckpoint`, a handler object.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from monai.inferers import DiffusionInferer

from monai_singanseg.diffusion.checkpoint import DiffusionTrainingState, load_diffusion, save_diffusion
from monai_singanseg.diffusion.config import DiffusionConfig
from monai_singanseg.diffusion.model import PairDiffusion
from monai_singanseg.diffusion.schedule import noise_scheduler
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.intensity import IntensityMapping, LabelEncoding
from monai_singanseg.io import TrainingPair
from monai_singanseg.training.average import WeightAverage
from monai_singanseg.training.base import GeneratorTrainer
from monai_singanseg.training.handlers import StepCheckpoint
from monai_singanseg.training.pairs import stack_training_pairs
from monai_singanseg.training.resume import fingerprint
from monai_singanseg.training.seeds import step_seed

__all__ = ["DiffusionCheckpoint", "DiffusionStep", "DiffusionTrainer", "TrainingData", "WeightAverage",
           "available_memory", "check_training_memory", "draw_batch", "stack_pairs", "step_seed", "training_memory"]

logger = logging.getLogger(__name__)


# floats kept for the backward pass per UNet feature map and position, per residual block: measured 35-42 MB per
# 64x64 crop of 2 channels with the default UNet on the CPU, where this gives 42 MB (an upper bound, as meant)
ACTIVATIONS_PER_BLOCK = 16


def training_memory(config: DiffusionConfig, parameters: int, batch_size: int | None = None) -> int:
    """A rough upper bound, in bytes, of the memory one training step of ``config`` takes.

    Per crop: the activations kept for the backward pass (every residual block of every UNet level: the down path's
    ``num_res_blocks`` and the up path's ``num_res_blocks + 1`` at twice the width, ~16 floats per feature map and
    position each) and the attention matrices (heads x positions^2, with their gradients). Beside them: the weights,
    their gradients, Adam's two moments and the moving average, five copies of ``parameters`` floats.

    Args:
        config: the model and its crop size.
        parameters: number of UNet parameters.
        batch_size: crops per step (default: ``config.batch_size``).
    """
    batch = config.batch_size if batch_size is None else batch_size
    pixels, shrink, deepest = math.prod(config.image_size), 2 ** config.spatial_dims, len(config.unet_channels) - 1
    floats = 0.0
    for level, (width, attends) in enumerate(zip(config.unet_channels, config.attention_levels)):
        positions = pixels / shrink ** level
        floats += ACTIVATIONS_PER_BLOCK * (2 * config.num_res_blocks + 1) * width * positions
        if attends or level == deepest:  # MONAI's middle block always attends, at the deepest level
            floats += 4 * max(1, width // config.num_head_channels) * positions ** 2
    return int(4 * (batch * floats + 5 * parameters))


def available_memory(device: str | torch.device) -> int | None:
    """Bytes free for training on ``device``: the GPU's free memory, or the machine's available memory (Linux's
    MemAvailable, which counts the page cache the kernel can drop; else free pages), capped by a cgroup v2 limit
    (a container's). ``None`` where it cannot be told."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    available = None
    try:
        with open("/proc/meminfo") as info:
            kib = next(int(line.split()[1]) for line in info if line.startswith("MemAvailable:"))
        available = kib * 1024
    except (OSError, StopIteration, ValueError):
        try:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def check_training_memory(config: DiffusionConfig, parameters: int, device: str | torch.device) -> None:
    """Refuse a batch that cannot fit in ``device``'s available memory (:func:`training_memory` against
    :func:`available_memory`), before training: ``--batch-size 100000`` on one small pair grew to 23 GB and was
    killed by the system, without a word.

    Raises:
        SinGANSegInputError: with the estimate, the memory available and the largest batch that fits.
    """
    available = available_memory(device)
    need = training_memory(config, parameters)
    if available is None or need <= available:
        return
    per_crop = training_memory(config, parameters, 1) - training_memory(config, parameters, 0)
    fits = (available - training_memory(config, parameters, 0)) // per_crop
    size = "x".join(map(str, config.image_size))
    advice = (f"the largest batch that fits is {fits}" if fits >= 1 else
              "not even one crop fits: lower --image-size or --unet-channels")
    raise SinGANSegInputError(
        f"batch size {config.batch_size} (--batch-size): training {size} crops with UNet widths "
        f"{'-'.join(map(str, config.unet_channels))} needs about {need / 2**30:.1f} GiB, and {torch.device(device)} "
        f"has {available / 2**30:.1f} GiB available; {advice}."
    )


@dataclass
class TrainingData:
    """The training pairs as one tensor, with the maps back to their units.

    Attributes:
        real: ``(P, C, *spatial)`` in ``[-1, 1]``, all pairs in one intensity mapping.
        intensity: the common map of the image channels. labels: the common map of the label.
        source: the first pair's affine, shape and contrast names.
    """

    real: torch.Tensor
    intensity: IntensityMapping
    labels: LabelEncoding
    source: dict[str, Any]


def stack_pairs(
    pairs: TrainingPair | torch.Tensor | Sequence[TrainingPair | torch.Tensor],
    config: DiffusionConfig,
    intensity: IntensityMapping | None = None,
    labels: LabelEncoding | None = None,
) -> TrainingData:
    """Check the training pairs against ``config`` and stack them.

    Pairs whose image intensity maps differ are re-expressed in one common map (per channel, the lowest ``lower`` and
    the highest ``upper``), which loses nothing; their label encodings must be equal.

    Args:
        pairs: :class:`~monai_singanseg.io.TrainingPair` objects, or tensors ``(C, *spatial)`` in ``[-1, 1]`` (image
            channels then mask channels), or one of either.
        config: the model's configuration (channels, spatial dims, crop size).
        intensity: the map of bare tensors' image channels (default: identity on ``[-1, 1]``).
        labels: the encoding of bare tensors' mask channels (default: binary 0/1, or K class indices).

    Raises:
        SinGANSegInputError: no pair, a wrong rank or channel count, values outside ``[-1, 1]``, pairs of different
            shapes or label encodings, or pairs smaller than the training crop ``image_size``.
    """
    def fit(pair: TrainingPair, name: str, stacked: list[torch.Tensor]) -> torch.Tensor:
        if stacked and pair.real.shape[1:] != stacked[0].shape[1:]:
            raise SinGANSegInputError(
                f"{name}: spatial shape {tuple(pair.real.shape[1:])} differs from pair 0's "
                f"{tuple(stacked[0].shape[1:])}; all training pairs must have one shape (crop or resize them first)."
            )
        return pair.real

    real, common, encoding, source = stack_training_pairs(pairs, config, intensity, labels, fit)
    shape, cfg = tuple(real.shape[2:]), config
    if any(s < c for s, c in zip(shape, cfg.image_size)):
        raise SinGANSegInputError(
            f"training pairs of spatial shape {shape} are smaller than the training crop image_size "
            f"{cfg.image_size}; lower image_size (each side a multiple of {cfg.size_multiple}, which the UNet's "
            f"{len(cfg.unet_channels) - 1} downsamplings need)."
        )
    return TrainingData(real, common, encoding, source)


def draw_batch(real: torch.Tensor, config: DiffusionConfig, rng: torch.Generator) -> torch.Tensor:
    """``batch_size`` random crops of size ``image_size`` of random pairs of ``real`` ``(P, C, *spatial)``, each
    flipped along every spatial axis with probability 1/2 when ``config.flips``; every draw comes from ``rng``."""
    count, size = config.batch_size, config.image_size
    device = real.device
    which = torch.randint(real.shape[0], (count,), generator=rng, device=device).tolist()
    starts = [torch.randint(s - c + 1, (count,), generator=rng, device=device).tolist()
              for s, c in zip(real.shape[2:], size)]
    flips = (torch.rand((count, config.spatial_dims), generator=rng, device=device) < 0.5).tolist()
    crops = []
    for b in range(count):
        crop = real[which[b]][(slice(None), *(slice(st[b], st[b] + c) for st, c in zip(starts, size)))]
        axes = [d + 1 for d in range(config.spatial_dims) if config.flips and flips[b][d]]
        crops.append(crop.flip(axes) if axes else crop)
    return torch.stack(crops)


class DiffusionStep:
    """One optimisation step (ignite's process function): a batch of crops, noise at uniform random timesteps,
    the MSE between the UNet's noise prediction and the noise, one Adam step. ``DiffusionStep(engine, step)``
    returns ``{"loss": ...}``; ``step`` is the 0-based global step, which seeds every draw. ``average``: the
    moving average updated after each step."""

    def __init__(self, model: PairDiffusion, optimizer: torch.optim.Optimizer, real: torch.Tensor,
                 average: WeightAverage | None = None) -> None:
        self.model, self.optimizer, self.real, self.average = model, optimizer, real, average
        self.config = model.config
        self.inferer = DiffusionInferer(noise_scheduler(model.config))

    def __call__(self, engine: Engine, step: int) -> dict[str, torch.Tensor]:
        cfg, device = self.config, self.real.device
        rng = torch.Generator(device=device).manual_seed(step_seed(cfg.seed, step))
        batch = draw_batch(self.real, cfg, rng)
        noise = torch.randn(batch.shape, generator=rng, device=device)
        timesteps = torch.randint(cfg.num_train_timesteps, (batch.shape[0],), generator=rng, device=device)
        self.model.unet.train()
        self.optimizer.zero_grad(set_to_none=True)
        prediction = self.inferer(inputs=batch, diffusion_model=self.model.unet, noise=noise, timesteps=timesteps)
        loss = F.mse_loss(prediction.float(), noise)
        loss.backward()
        self.optimizer.step()
        if self.average is not None:
            self.average.update(self.model.unet, step)
        return {"loss": loss.detach()}


class DiffusionCheckpoint(StepCheckpoint):
    """Writes a diffusion run's checkpoint (a handler object): the sampling weights (the moving average's, when
    kept, with the training weights beside them), the optimizer's state and the log, one entry per checkpoint with
    the mean loss since the previous one and the seconds of the whole training (across resumed runs).

    When and how it writes is :class:`~monai_singanseg.training.handlers.StepCheckpoint`'s (the step's loss is
    ``engine.state.output["loss"]``).

    Args:
        model, path, state: as :class:`~monai_singanseg.training.handlers.StepCheckpoint` takes them.
        optimizer: the UNet's optimizer.
        average: the moving average of the weights, or ``None``.
    """

    def __init__(self, model: PairDiffusion, path: Path, state: DiffusionTrainingState,
                 optimizer: torch.optim.Optimizer, average: WeightAverage | None) -> None:
        super().__init__(model, path, state)
        self.optimizer, self.average = optimizer, average
        self.losses: list[float] = []

    def attach_losses(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.record)

    def record(self, engine: Engine) -> None:
        self.losses.append(float(engine.state.output["loss"]))

    def take_losses(self) -> dict[str, float]:
        mean = sum(self.losses) / max(len(self.losses), 1)
        self.losses.clear()
        return {"loss": mean}

    def save(self, step: int) -> None:
        state, model = self.state, self.model
        online = None if self.average is None else model.unet.state_dict()
        done = DiffusionTrainingState(state.fingerprint, step, step >= model.config.train_steps,
                                      self.optimizer.state_dict(), state.log, online)
        save_diffusion(model, self.path, done, weights=None if self.average is None else self.average.weights)


class DiffusionTrainer(GeneratorTrainer):
    """Train a :class:`PairDiffusion` model, writing its checkpoint every ``checkpoint_every`` steps and at the end.

    Args:
        config, device, progress: as :class:`~monai_singanseg.training.base.GeneratorTrainer` takes them; a resumed
            run keeps the checkpoint's config but for ``train_steps`` and ``checkpoint_every``, taken from here so
            that a finished run can be extended (:meth:`~monai_singanseg.training.base.GeneratorTrainer.resume_from`).
        handlers: attached once to the training engine: handler objects (``attach(engine)``), or callables
            ``handler(engine)`` (``engine.state.output["loss"]`` after each step).
        stop_after: stop (as an interruption would, after writing the checkpoint) once this many steps in all are
            done; for tests and for splitting a long run (the SinGAN-Seg trainer's ``stop_after`` counts scales).
        log_dir: write the loss of every step to TensorBoard here (tag ``diffusion/loss``, step = steps done, going
            on across resumed runs), through MONAI's ``TensorBoardStatsHandler``; needs the optional
            ``tensorboard`` package. ``None``: no logging.

    Example:
        >>> pair = load_training_pair(["image.png"], "label.png")                   # doctest: +SKIP
        >>> config = DiffusionConfig(image_channels=1, image_size=64, train_steps=20000)
        >>> model = DiffusionTrainer(config).fit([pair], "diffusion.pt")
    """

    config: DiffusionConfig

    def fit(
        self,
        pairs: TrainingPair | torch.Tensor | Sequence[TrainingPair | torch.Tensor],
        checkpoint: str | os.PathLike,
        resume: bool = False,
        intensity: IntensityMapping | None = None,
        labels: LabelEncoding | None = None,
    ) -> PairDiffusion:
        """Train on ``pairs`` (see :func:`stack_pairs`) and return the model in eval mode.

        Args:
            pairs: training pairs (``TrainingPair`` or ``(C, *spatial)`` tensors in ``[-1, 1]``), all of one shape,
                at least ``image_size`` on every side.
            checkpoint: file written every ``checkpoint_every`` steps and at the end (atomically).
            resume: continue from ``checkpoint`` (on the same kind of device the weights equal an uninterrupted
                run's); a finished checkpoint with as many ``train_steps`` is returned as is.
            intensity, labels: the maps of bare tensors' channels
                (:func:`~monai_singanseg.training.pairs.stack_training_pairs`; ignored for ``TrainingPair``).

        Raises:
            SinGANSegInputError: bad pairs (:func:`stack_pairs`), or resuming from a checkpoint of other data.
        """
        checkpoint = Path(checkpoint)
        model, state, data = self._start(pairs, checkpoint, resume, intensity, labels)
        cfg = model.config
        check_training_memory(cfg, sum(p.numel() for p in model.unet.parameters()), self.device)
        real = data.real.to(self.device)
        optimizer = torch.optim.Adam(model.unet.parameters(), lr=cfg.lr)
        if state.optimizer is not None:
            optimizer.load_state_dict(state.optimizer)
        last = self.last_unit(cfg.train_steps)
        if state.step >= last:
            return model.eval()
        average = None
        if cfg.ema_decay > 0:
            # the model holds the checkpoint's sampling weights: the average, with the training weights beside it
            average = WeightAverage(model.unet, cfg.ema_decay)
            if state.online is not None:
                model.unet.load_state_dict(state.online)
        writer = DiffusionCheckpoint(model, checkpoint, state, optimizer, average)
        with self.open_log() as board:  # an interrupted run still flushes and closes its TensorBoard log
            engine = self.engine(DiffusionStep(model, optimizer, real, average), "diffusion", own=[writer],
                                 board=None if board is None else board.loss_handler("diffusion", state.step))
            self.run(engine, range(state.step, last), lambda engine, _seconds: writer.write(engine))
        logger.info("diffusion training: step %d/%d, %.1f s, last loss %.4f", state.step + engine.state.iteration,
                    cfg.train_steps, time.perf_counter() - writer.start, float(engine.state.output["loss"]))
        if average is not None:
            model.unet.load_state_dict(average.weights)  # the average samples
        return model.eval()

    def _start(
        self, pairs, checkpoint: Path, resume: bool, intensity: IntensityMapping | None, labels: LabelEncoding | None
    ) -> tuple[PairDiffusion, DiffusionTrainingState, TrainingData]:
        """A new model, or the checkpoint's (refusing other data), with its state and the stacked training data."""
        if not resume:
            data = stack_pairs(pairs, self.config, intensity, labels)
            model = PairDiffusion(self.config, data.intensity, data.labels, data.source).to(self.device)
            return model, DiffusionTrainingState(fingerprint(data.real)), data
        return self.resume_from(checkpoint, load_diffusion, lambda stored: stack_pairs(pairs, stored, intensity, labels),
                                lambda data: fingerprint(data.real))
