"""Scale-by-scale SinGAN-Seg training of one model, or of several models side by side as one grouped network.

Each scale runs as an ignite :class:`~ignite.engine.Engine` (one engine iteration = ``critic_steps`` critic updates
and ``generator_steps`` generator updates, see :class:`ScaleStep`) built by the trainers' base
(:class:`~monai_singanseg.training.base.GeneratorTrainer`), so users can attach their own handlers
(``Events.ITERATION_COMPLETED``) through ``handlers``; the progress bar is ignite's tqdm ``ProgressBar``.

Training K models whose pyramids have the same shapes (slices of a series, tiles) as one network with grouped
convolutions costs one set of kernel launches instead of K, which is what fills a GPU: the maths stays per model
(no parameter is shared, Adam is elementwise, norms are per channel, every loss is a sum of per-model losses) and
every model draws its noise from its own random stream, so a model trained in a group equals the same model trained
alone up to floating-point rounding (``tests/test_grouped_training.py``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from ignite.engine import Engine, Events
from monai.utils import deprecated_arg
from torch.profiler import record_function

from monai_singanseg import __version__
from monai_singanseg.checkpoint import TrainingState, load_model, save_model
from monai_singanseg.config import OptimConfig, SinGANSegConfig
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.intensity import IntensityMapping, LabelEncoding
from monai_singanseg.networks import (
    ScaleCritic,
    ScaleGenerator,
    SinGANSeg,
    draw_noise,
    drop_norm_biases,
    init_weights,
    split_state,
    stack_states,
)
from monai_singanseg.networks.scale_networks import Window, crop_windows
from monai_singanseg.pyramid import build_pyramid, resize, scale_shapes
from monai_singanseg.training.augment import diff_augment
from monai_singanseg.training.base import GeneratorTrainer
from monai_singanseg.training.concurrent import TrainedAlong, along_reconstruction, keep_trained_along, trained_along
from monai_singanseg.training.handlers import Handler
from monai_singanseg.training.losses import gradient_penalty, per_model_mean, reconstruction_loss
from monai_singanseg.training.resume import config_differences, fingerprint  # also importable from here, as before
from monai_singanseg.training.seeds import scale_seed
from monai_singanseg.training.widening import embed_previous

__all__ = ["ScaleStep", "SinGANSegTrainer", "TrainingItem", "check_mask_survives", "check_trainable",
           "config_differences", "fingerprint", "scale_seed", "verify_checkpoint_data"]

if TYPE_CHECKING:
    from monai_singanseg.training.tensorboard import TensorBoardLog

logger = logging.getLogger(__name__)


def verify_checkpoint_data(path: str | os.PathLike, real: torch.Tensor) -> SinGANSegConfig:
    """Refuse a checkpoint trained on other data than ``real`` ``(C, *spatial)``; return its config.

    Raises:
        SinGANSegInputError: the checkpoint holds no training state, or its data fingerprint differs.
    """
    from monai_singanseg.checkpoint import read_checkpoint, training_state

    payload = read_checkpoint(path)
    state = training_state(payload)
    if state is None or state.fingerprint != fingerprint(real.unsqueeze(0)):
        raise SinGANSegInputError(f"{path}: was trained on other data (or holds no training state).")
    return SinGANSegConfig.from_json(payload["config"])


def check_trainable(spatial_shape: Sequence[int], config: SinGANSegConfig, name: str = "training image") -> None:
    """Refuse an image whose pyramid has a side thinner than the critic's receptive field.

    The critic's ``num_layers`` unpadded convolutions need at least ``num_layers * (kernel_size - 1) + 1`` pixels
    per side (11 with the defaults) at every scale.
    """
    need = config.network.num_layers * (config.network.kernel_size - 1) + 1
    shapes = scale_shapes(spatial_shape, config.pyramid)
    if min(shapes[0]) < need:
        raise SinGANSegInputError(
            f"{name}: shape {tuple(spatial_shape)} is too thin: its pyramid starts at {shapes[0]}, and the critic's "
            f"{config.network.num_layers} convolutions need at least {need} pixels on every side."
        )


def check_mask_survives(real: torch.Tensor, config: SinGANSegConfig, labels: LabelEncoding,
                        name: str = "the mask") -> list[int]:
    """Foreground pixels of the mask at every scale of the pyramid (coarsest first), refusing a mask that vanishes.

    A lesion of a few pixels in a large image is averaged away when the image is shrunk to ``max_size``: a model
    trained on it makes empty masks only, while training ends without a word. No foreground at the finest scale is
    refused; a mask lost at coarse scales only is a warning (those scales learn the layout without it).

    Args:
        real: ``(C, *spatial)`` or ``(1, C, *spatial)`` in ``[-1, 1]``, image channels then mask channels.
        config: the model's configuration (its pyramid and image channels).
        labels: map of the label to the mask channels.
        name: the mask's file (or key), for the messages.

    Raises:
        SinGANSegInputError: the finest scale holds no foreground pixel.
    """
    real = real if real.ndim == config.spatial_dims + 2 else real.unsqueeze(0)
    mask = real[:, config.image_channels:].float()
    full = int((labels.indices(mask, channel_dim=1) != 0).sum())
    shapes = scale_shapes(real.shape[2:], config.pyramid)
    left = [int((labels.indices(level, channel_dim=1) != 0).sum()) for level in build_pyramid(mask, shapes)]
    if all(left):
        return left
    per_scale = ", ".join(f"{'x'.join(map(str, s))}: {n}" for s, n in zip(shapes, left))
    lost = "every scale" if not left[-1] else f"{left.count(0)} of {len(left)} scales"
    what = (f"{name}: the mask's {full} foreground pixel(s) shrink to nothing at {lost} (max size "
            f"{config.pyramid.max_size}; foreground pixels per scale, coarsest first: {per_scale})")
    if not left[-1]:
        raise SinGANSegInputError(f"{what}; the model would make empty masks only: raise --max-size (max_size) or "
                                  "crop the image around the lesion.")
    logger.warning("%s; those scales learn the layout without the lesion.", what)
    return left


@dataclass
class TrainingItem:
    """One model to train: its stacked training tensor, the maps back to its units, and its checkpoint.

    Attributes:
        real: ``(C, *spatial)`` in ``[-1, 1]``, image channels then mask channels.
        intensity: map of the image channels to ``[-1, 1]``. labels: map of the label to the mask channels.
        checkpoint: file written after every scale (atomically).
        source: affine, shape and contrast names of the training image, stored to write outputs alike.
        config: the model's configuration; ``None`` takes the trainer's.
        name: the label file (or key) the mask came from, for messages; ``None`` names the checkpoint.
    """

    real: torch.Tensor
    intensity: IntensityMapping
    labels: LabelEncoding
    checkpoint: str | os.PathLike
    source: dict[str, Any] | None = None
    config: SinGANSegConfig | None = None
    name: str | None = None


@dataclass
class _Member:
    """A model of the group being trained, with its data and resume state."""

    model: SinGANSeg
    pyramid: list[torch.Tensor]
    checkpoint: Path
    state: TrainingState
    critic: dict[str, torch.Tensor] | None = field(default=None, repr=False)


def _draw(rngs: Sequence[torch.Generator], channels: int, shape: Sequence[int], coarsest: bool, device) -> torch.Tensor:
    """Noise ``(1, K * channels, *shape)``: model ``k``'s block drawn from its own stream ``rngs[k]``."""
    parts = [draw_noise(1, channels, shape, coarsest, g, device) for g in rngs]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _per_channel(values: Sequence[float], channels: int, spatial_dims: int, device) -> torch.Tensor:
    """``(1, K * channels, 1, ...)``: model ``k``'s value on each of its channels."""
    column = torch.tensor([float(v) for v in values for _ in range(channels)], device=device)
    return column.reshape(1, -1, *([1] * spatial_dims))


LOSSES = ("critic", "gen", "rec", "gp")
"""Losses a training step reports, per model (``<name>_per_model``) and as the group's mean (``<name>``)."""


def member_losses(output: dict[str, torch.Tensor], k: int) -> dict[str, float]:
    """Model ``k``'s own losses in a step's ``output`` (a group's mean would mix its members')."""
    return {name: float(output[f"{name}_per_model"][k]) for name in LOSSES}


@dataclass(frozen=True)
class _RateWeights:
    """What a group step at per-model learning rates needs, kept per optimiser until a model's rate changes."""

    factors: tuple[float, ...]  # each model's learning-rate factor
    params: list[torch.Tensor]  # the optimiser's parameters
    weights: list[torch.Tensor]  # per parameter: each model's block filled with its factor
    before: list[torch.Tensor]  # per parameter: a buffer for the weights before the step


class ScaleStep:
    """One training iteration of a scale for a group of K models (K = 1 for a single model).

    Holds what the iteration needs (grouped generator and critic, their optimisers, the real pyramid level, the
    noise amplitudes, the reconstruction inputs and the coarser scales) and runs ``critic_steps`` WGAN-GP critic
    updates and ``generator_steps`` generator updates (adversarial + ``rec_weight`` x reconstruction).
    ``ScaleStep(engine, batch)`` is ignite's process function; it returns the group-mean losses.

    With ``optim.concurrent_scales`` (an experiment, off by default) the last coarser generators train along
    (:class:`~monai_singanseg.training.concurrent.TrainedAlong`, ``along``): their reconstruction path starts from
    ``reconstruction_inputs[1]`` at the first of them, with ``coarser_rec_noise`` (one tensor each) as their
    reconstruction noise.

    With ``augment`` (DiffAugment operations, ``NetworkConfig.critic_augment`` at the coarsest scales) the critic sees
    every input through them, real, generated and the penalty's mixtures alike, each model with draws from its own
    stream (:meth:`judge`); ``image_channels`` tells the colour operation which channels are image.
    """

    def __init__(
        self,
        generator: ScaleGenerator,
        critic: ScaleCritic,
        real: torch.Tensor,
        noise_amp: torch.Tensor,
        reconstruction_inputs: tuple[torch.Tensor, torch.Tensor],
        coarser: list[tuple[ScaleGenerator, torch.Tensor, tuple[int, ...]]],
        rngs: list[torch.Generator],
        optim: OptimConfig,
        coarser_rec_noise: Sequence[torch.Tensor] = (),
        augment: Sequence[str] = (),
        image_channels: int = 0,
    ) -> None:
        self.generator, self.critic, self.real = generator, critic, real
        self.augment, self.image_channels = tuple(augment), image_channels
        self.noise_amp = noise_amp
        self.rec_noise, self.rec_previous = reconstruction_inputs
        self.coarser = coarser
        self.rngs = rngs
        self.optim = optim
        self.groups = len(rngs)
        self.channels = real.shape[1] // self.groups
        self.shape = tuple(real.shape[2:])
        self.first_trained = trained_along(optim, len(coarser)).start
        self.along = None  # the coarser scales trained along, an experiment (training/concurrent.py)
        if self.first_trained < len(coarser) or coarser_rec_noise:
            self.along = TrainedAlong([g for g, _, _ in coarser[self.first_trained:]], self.first_trained,
                                      self.rec_previous, coarser_rec_noise, self.shape)
        # lr_scale: this group's share of the base learning rate (_step multiplies it in)
        groups = [{"params": list(generator.parameters()), "lr_scale": 1.0}]
        if self.along is not None:
            groups += self.along.param_groups(optim)
        for group in groups:
            group["lr"] = optim.lr_g * group["lr_scale"]
        self.opt_generator = torch.optim.Adam(groups, lr=optim.lr_g, betas=optim.betas)
        self.opt_critic = torch.optim.Adam([{"params": list(critic.parameters()), "lr_scale": 1.0}], lr=optim.lr_d,
                                           betas=optim.betas)
        self.critic_updates = 0
        self.decayed = [False] * self.groups
        self.stopped: dict[int, dict[str, Any]] = {}
        self._rates: dict[int, _RateWeights] = {}  # by id of the optimiser
        self.last_penalty = torch.zeros(self.groups, device=real.device)
        crop = optim.crop_size
        self.crop = crop if crop and any(s > crop for s in self.shape) else 0

    def windows(self) -> list[Window] | None:
        """Random training windows of this scale, one per model from its own stream (so a model of a group sees the
        windows it would see alone); ``None``: whole images."""
        if not self.crop:
            return None
        out = []
        for rng in self.rngs:
            starts = [int(torch.randint(0, s - self.crop + 1, (1,), generator=rng, device=rng.device))
                      if s > self.crop else 0 for s in self.shape]
            out.append(tuple(slice(a, a + min(self.crop, s)) for a, s in zip(starts, self.shape)))
        return out

    def judge(self, x: torch.Tensor) -> torch.Tensor:
        """The critic's score map of ``x`` ``(N, groups * C, *spatial)``, through the augmentation when there is one:
        model ``k``'s channels with draws from its own stream, so a model of a group sees what it would see alone."""
        if not self.augment:
            return self.critic(x)
        c = self.channels
        return self.critic(torch.cat([diff_augment(x[:, k * c:(k + 1) * c], self.image_channels, self.augment, rng)
                                      for k, rng in enumerate(self.rngs)], 1))

    def real_in(self, windows: Sequence[Window] | None) -> torch.Tensor:
        """The real images, or each model's window of its own."""
        return self.real if windows is None else crop_windows(self.real, windows)

    def decay_learning_rates(self, models: Sequence[int] | None = None) -> None:
        """From the next step on, ``models`` (default: all) step at ``lr_gamma`` times the learning rates (once per
        model and scale; :meth:`_step` applies it)."""
        for k in range(self.groups) if models is None else models:
            self.decayed[k] = True

    def stop(self, k: int, iteration: int, output: dict[str, torch.Tensor]) -> None:
        """End model ``k``'s scale here: keep a copy of its weights and norm statistics now, and its losses of this
        iteration (``output`` of :meth:`__call__`), as training alone would end; the group's later steps still
        compute its block (the others need the launch) but it is ignored."""
        if k not in self.stopped:
            self.stopped[k] = {"generator": split_state(self.generator.state_dict(), self.groups)[k],
                               "critic": split_state(self.critic.state_dict(), self.groups)[k],
                               "coarser": [split_state(g.state_dict(), self.groups)[k] for g in self.trained],
                               "iterations": iteration, "losses": member_losses(output, k)}

    @property
    def trained(self) -> list[ScaleGenerator]:
        """The coarser generators trained along with this scale (none by default)."""
        return [] if self.along is None else self.along.generators

    @property
    def running(self) -> list[int]:
        """Models of the group whose scale has not ended."""
        return [k for k in range(self.groups) if k not in self.stopped]

    def _step(self, optimizer: torch.optim.Optimizer, base_lr: float) -> None:
        """``optimizer.step()`` at each model's own learning rate.

        While every running model has the same rate it is the optimizer's. Otherwise the step runs at ``base_lr`` and
        each model's block of the update is scaled by its factor: an Adam update is proportional to the learning rate,
        so this is the step that model would take alone (up to rounding). Fused ``_foreach`` ops and weights cached
        until a rate changes keep the extra cost to a few launches and no host-device sync per step.
        """
        factors = tuple(self.optim.lr_gamma if self.decayed[k] else 1.0 for k in range(self.groups))
        rates = {factors[k] for k in self.running}
        uniform = len(rates) <= 1
        factor = rates.pop() if len(rates) == 1 else 1.0
        for group in optimizer.param_groups:  # a coarser scale trained along has its share of the rate
            group["lr"] = base_lr * group["lr_scale"] * factor
        if uniform:
            optimizer.step()
            return
        cached = self._rates.get(id(optimizer))
        if cached is None or cached.factors != factors:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            column = torch.tensor(factors)
            weights = [column.to(p.device, p.dtype).repeat_interleave(p.shape[0] // self.groups)
                       .reshape(-1, *([1] * (p.ndim - 1))).expand_as(p).contiguous() for p in params]
            cached = self._rates[id(optimizer)] = _RateWeights(factors, params, weights,
                                                               [torch.empty_like(p) for p in params])
        with torch.no_grad():
            torch._foreach_copy_(cached.before, cached.params)
            optimizer.step()
            torch._foreach_lerp_(cached.before, cached.params, cached.weights)
            torch._foreach_copy_(cached.params, cached.before)

    @torch.no_grad()
    @record_function("singanseg.random_previous")
    def random_previous(self) -> torch.Tensor:
        """A random sample of the coarser scales, upsampled to this scale (zeros at the coarsest). The scales
        trained along (``along``) remember what they were fed, to recompute it with gradients."""
        if not self.coarser:
            return torch.zeros_like(self.real)
        x = torch.zeros(1, self.real.shape[1], *self.coarser[0][2], device=self.real.device)
        for k, (generator, amp, shape) in enumerate(self.coarser):
            noise = amp * _draw(self.rngs, self.channels, shape, k == 0, x.device)
            if self.along is not None:
                self.along.remember(k, x, noise)
            x = generator(noise, resize(x, shape))
        return resize(x, self.shape)

    @record_function("singanseg.critic_update")
    def critic_update(self, fake: torch.Tensor, windows: Sequence[Window] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One critic step on ``fake`` against the real images (their ``windows`` when the fake is cut so); returns
        the per-model Wasserstein estimate and penalty (``None`` on a lazy step).

        Each loss term is backpropagated as soon as it is computed (the gradients add up), so only one term's
        graph is alive at a time: the same update at a fraction of the peak memory.
        """
        optim, groups = self.optim, self.groups
        real = self.real_in(windows)
        self.opt_critic.zero_grad(set_to_none=True)
        score_real = per_model_mean(self.judge(real), groups)
        (-score_real.sum()).backward()
        score_fake = per_model_mean(self.judge(fake), groups)
        score_fake.sum().backward()
        penalty = None
        if self.critic_updates % optim.gp_every == 0:
            with record_function("singanseg.gradient_penalty"):
                penalty = gradient_penalty(self.judge, real, fake, self.rngs)
                (optim.gp_weight * optim.gp_every * penalty.sum()).backward()
        self._step(self.opt_critic, self.optim.lr_d)
        self.critic_updates += 1
        return (score_real - score_fake).detach(), None if penalty is None else penalty.detach()

    @record_function("singanseg.generator_update")
    def generator_update(self, noise: torch.Tensor, previous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One generator step; returns the per-model adversarial and reconstruction losses.

        The critic's weights need no gradient here (the next critic step zeroes them anyway), and the two loss
        terms are backpropagated one after the other, so one graph is alive at a time.
        """
        groups = self.groups
        self.opt_generator.zero_grad(set_to_none=True)
        self.critic.requires_grad_(False)
        rec_previous = self.rec_previous
        if self.along is not None:  # the same coarser sample and reconstruction, now through the scales trained along
            previous, rec_previous = self.along.paths()
        # the fake is recomputed for every step, so each generator step has its own gradient (a reference pitfall)
        adversarial = -per_model_mean(self.judge(self.generator(noise, previous, self.windows())), groups)
        adversarial.sum().backward()
        self.critic.requires_grad_(True)
        windows = self.windows()
        rec = reconstruction_loss(self.generator(self.rec_noise, rec_previous, windows), self.real_in(windows), groups)
        (self.optim.rec_weight * rec.sum()).backward()
        self._step(self.opt_generator, self.optim.lr_g)
        return adversarial.detach(), rec.detach()

    def __call__(self, engine: Engine, _: Any) -> dict[str, torch.Tensor]:
        noise = self.noise_amp * _draw(self.rngs, self.channels, self.shape, not self.coarser, self.real.device)
        self.generator.train()
        self.critic.train()
        for _ in range(self.optim.critic_steps):
            previous = self.random_previous()
            windows = self.windows()
            with torch.no_grad(), record_function("singanseg.fake"):
                fake = self.generator(noise, previous, windows)
            distance, penalty = self.critic_update(fake, windows)
            if penalty is not None:
                self.last_penalty = penalty
        for _ in range(self.optim.generator_steps):
            adversarial, rec = self.generator_update(noise, previous)
        per_model = {"critic": -distance, "gen": adversarial, "rec": rec, "gp": self.last_penalty}
        return {**{name: value.mean() for name, value in per_model.items()},
                **{f"{name}_per_model": value for name, value in per_model.items()}}


class _PlateauStop:
    """Per-scale schedule: decay the learning rates at ``lr_decay_at`` (or at the first plateau of the
    reconstruction loss, when ``plateau_window`` > 0), and end the scale at the next plateau.

    A window is a plateau for a model when its mean reconstruction loss fell by less than ``plateau_tolerance``
    (relative) against the previous window. In a group every model follows its own plateaus, as it would alone: its
    learning rates decay at its first, its scale ends at its second (:meth:`ScaleStep.stop`), and the group moves on
    when every model has ended.
    """

    def __init__(self, step: ScaleStep, optim: OptimConfig) -> None:
        self.step, self.optim = step, optim
        self.milestone = max(1, int(optim.lr_decay_at * optim.iters_per_scale))
        self.window: list[torch.Tensor] = []
        self.previous: torch.Tensor | None = None

    def attach(self, engine: Engine) -> None:
        """Check the schedule after every iteration of ``engine`` (a handler object, like ignite's)."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if engine.state.iteration == self.milestone:
            self.step.decay_learning_rates()
        if self.optim.plateau_window == 0:
            return
        rec = engine.state.output["rec_per_model"]
        self.window.append(rec)
        if len(self.window) < self.optim.plateau_window:
            return
        current = torch.stack(self.window).mean(0)
        self.window = []
        previous, self.previous = self.previous, current
        if previous is None:
            return
        on_plateau = ((previous - current) / previous.clamp_min(1e-12) < self.optim.plateau_tolerance).tolist()
        for k in self.step.running:
            if not on_plateau[k]:
                continue
            if self.step.decayed[k]:
                self.step.stop(k, engine.state.iteration, engine.state.output)
            else:
                self.step.decay_learning_rates([k])
        if not self.step.running:
            engine.terminate()


class SinGANSegTrainer(GeneratorTrainer):
    """Train :class:`SinGANSeg` models scale by scale, writing each checkpoint after every finished scale.

    :meth:`fit` trains one model; :meth:`fit_group` trains several models with equal pyramid shapes as one grouped
    network (the result equals training each alone, up to rounding). Each scale is one ignite engine (made by
    :meth:`~monai_singanseg.training.base.GeneratorTrainer.engine`) with the plateau stop, the progress bar (on a
    terminal only), the user's handlers and the TensorBoard loss handler attached.

    Args:
        config: model and training configuration (ignored when resuming: the checkpoint's own is used).
        device: where the networks run.
        progress: show a progress bar per scale.
        handlers: attached to every scale's engine: handler objects (``attach(engine)``), or callables
            ``handler(engine, scale)``; the scale's :class:`ScaleStep` (networks, optimizers, the real pair) is
            ``engine.state.scale_step``.
        stop_after: stop (as an interruption would, after writing the checkpoint) once this many scales are
            finished; for tests and for splitting a long run (:class:`~monai_singanseg.diffusion.DiffusionTrainer`'s
            ``stop_after`` counts its steps alike).
        log_dir: write TensorBoard logs here (per-scale losses, a sample after every scale, of the first model of a
            group); needs the optional ``tensorboard`` package. ``None``: no logging.
        stop_after_scales: deprecated name of ``stop_after`` (a ``DeprecationWarning``).

    Example:
        >>> trainer = SinGANSegTrainer(SinGANSegConfig(image_channels=1))           # doctest: +SKIP
        >>> model = trainer.fit(real, intensity, labels, "model.pt")
    """

    config: SinGANSegConfig

    @deprecated_arg("stop_after_scales", since="0.1.0", msg_suffix="Use stop_after, which counts scales.",
                    version_val=__version__, new_name="stop_after", warning_category=DeprecationWarning)
    def __init__(
        self,
        config: SinGANSegConfig,
        device: str | torch.device = "cpu",
        progress: bool = True,
        handlers: list[Handler | Callable[[Engine, int], None]] | None = None,
        stop_after: int | None = None,
        log_dir: str | os.PathLike | None = None,
        stop_after_scales: int | None = None,
    ) -> None:
        del stop_after_scales  # deprecated_arg has passed its value on as stop_after
        super().__init__(config, device, progress, handlers, stop_after, log_dir)

    def fit(
        self,
        real: torch.Tensor,
        intensity: IntensityMapping,
        labels: LabelEncoding,
        checkpoint: str | os.PathLike,
        resume: bool = False,
        source: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> SinGANSeg:
        """Train on ``real`` ``(C, *spatial)`` in ``[-1, 1]`` (image channels, then mask channels).

        Args:
            real: the stacked training tensor.
            intensity: map of the image channels to ``[-1, 1]``, stored in the checkpoint.
            labels: map of the label to the mask channels, stored in the checkpoint.
            checkpoint: file written after every scale (atomically) and at the end.
            resume: continue from ``checkpoint``; on the same device the result equals an uninterrupted run's.
            source: affine, shape and contrast names of the training image, stored to write outputs alike.
            name: the label file the mask came from, named by the messages about it (default: the checkpoint).

        Returns:
            The model (eval mode) with every scale trained (or ``stop_after`` of them).
        """
        return self.fit_group([TrainingItem(real, intensity, labels, checkpoint, source, name=name)], resume=resume)[0]

    def fit_group(self, items: Sequence[TrainingItem], resume: bool = False) -> list[SinGANSeg]:
        """Train the models of ``items`` side by side as one grouped network.

        The items must give pyramids of the same shapes and configs that differ in the seed at most; when resuming,
        their checkpoints must have the same number of trained scales.

        Returns:
            The models (eval mode), in the order of ``items``.
        """
        if not items:
            return []
        members = [self._member(item, resume) for item in items]
        _check_group(items, members)
        first = members[0].model
        with self.open_log(seed=first.config.seed) as board:  # an interrupted run still flushes and closes its log
            for scale in range(first.trained_scales, self.last_unit(first.num_scales)):
                self._train_scale(members, scale, board)
        return [m.model.eval() for m in members]

    def _member(self, item: TrainingItem, resume: bool) -> _Member:
        """Build (or load, when resuming) the model of ``item``, checking its data against the config/checkpoint."""
        real = item.real.to(self.device, torch.float32).unsqueeze(0)
        data_id = fingerprint(real)
        checkpoint = Path(item.checkpoint)
        if resume:
            model, state = load_model(checkpoint, device=self.device, for_training=True)
            if state is None or state.fingerprint != data_id:
                raise SinGANSegInputError(
                    f"{checkpoint}: cannot resume: it was trained on other data (or holds no training state)."
                )
            if item.config is not None:
                self.warn_kept_options(checkpoint, model.config, item.config)
            critic = None if state.critic is None else drop_norm_biases(state.critic)
        else:
            config = (item.config or self.config).validate()
            if real.shape[1] != config.channels:
                raise SinGANSegInputError(
                    f"training tensor has {real.shape[1]} channels, the config expects {config.channels} "
                    f"({config.image_channels} image + {config.mask_channels} mask)."
                )
            check_trainable(real.shape[2:], config, str(checkpoint))
            check_mask_survives(real, config, item.labels, item.name or str(checkpoint))
            shapes = scale_shapes(real.shape[2:], config.pyramid)
            model = SinGANSeg(config, shapes, item.intensity, item.labels, item.source).to(self.device)
            state, critic = TrainingState(data_id, complete=False), None
        return _Member(model, build_pyramid(real, model.shapes), checkpoint, state, critic)

    def _networks(
        self, members: list[_Member], scale: int, rngs: list[torch.Generator], optim: OptimConfig
    ) -> tuple[ScaleGenerator, ScaleCritic]:
        """This scale's grouped generator and critic: a copy of the previous scale's when the width is unchanged
        (as the reference does), else newly initialised from each model's random stream (with the previous scale's
        networks embedded when ``widen_from_previous``, an experiment: training/widening.py)."""
        cfg = members[0].model.config
        width = cfg.network.channels_at(scale)
        widen = scale > 0 and optim.widen_from_previous
        generators, critics = [], []
        for member, rng in zip(members, rngs):
            # on the training device before initialising: each model's random stream lives there
            generator = member.model.new_generator(scale).to(self.device)
            critic = ScaleCritic(cfg.spatial_dims, cfg.channels, width, cfg.network, scale=scale).to(self.device)
            same_width = scale > 0 and cfg.network.channels_at(scale - 1) == width
            if (same_width or widen) and member.critic is None:
                raise SinGANSegInputError(f"{member.checkpoint}: holds no critic of scale {scale - 1}, which scale "
                                          f"{scale} starts from; train the model again without --resume.")
            if same_width:
                generator.load_state_dict(member.model.generators[scale - 1].state_dict())
                critic.load_state_dict(member.critic)
            else:
                init_weights(generator, rng)
                init_weights(critic, rng)
                if widen:
                    embed_previous(generator, critic, member.model.generators[scale - 1].state_dict(), member.critic)
            generators.append(generator.state_dict())
            critics.append(critic.state_dict())
        groups = len(members)
        grouped_generator = ScaleGenerator(cfg.spatial_dims, cfg.channels, width, cfg.network, groups)
        grouped_critic = ScaleCritic(cfg.spatial_dims, cfg.channels, width, cfg.network, groups, scale)
        grouped_generator.load_state_dict(stack_states(generators))
        grouped_critic.load_state_dict(stack_states(critics))
        return grouped_generator.to(self.device), grouped_critic.to(self.device)

    def _reconstruction_inputs(
        self, members: list[_Member], scale: int, rngs: list[torch.Generator]
    ) -> tuple[list[float], torch.Tensor, torch.Tensor]:
        """This scale's noise amplitudes and reconstruction inputs, for each model (grouped along the channels).

        The coarsest scale draws each model's fixed reconstruction noise (amplitude 1); finer scales take
        ``noise_amp_init`` x RMSE between the real level and the upsampled reconstruction of the coarser scales.

        Returns:
            The amplitudes, this scale's reconstruction noise (the fixed noise at the coarsest, zeros above) and its
            input (zeros at the coarsest, else the upsampled reconstruction of the coarser scales).
        """
        cfg = members[0].model.config
        amps, noises, inputs = [], [], []
        for member, rng in zip(members, rngs):
            model, real = member.model, member.pyramid[scale]
            if scale == 0:
                model.fixed_noise.copy_(draw_noise(1, cfg.channels, real.shape[2:], True, rng, self.device))
                amps.append(1.0)
                noises.append(model.fixed_noise.clone())
                inputs.append(torch.zeros_like(real))
            else:
                rec = resize(model.reconstruct(scale), real.shape[2:])
                amps.append(cfg.optim.noise_amp_init * math.sqrt(torch.mean((rec - real) ** 2).item()))
                noises.append(torch.zeros_like(real))
                inputs.append(rec)
        return amps, torch.cat(noises, 1), torch.cat(inputs, 1)

    def _coarser(self, members: list[_Member], scale: int) -> list[tuple[ScaleGenerator, torch.Tensor, tuple]]:
        """The trained coarser scales as frozen grouped generators, with their noise amplitudes and shapes."""
        cfg = members[0].model.config
        coarser = []
        for k in range(scale):
            generator = ScaleGenerator(cfg.spatial_dims, cfg.channels, cfg.network.channels_at(k), cfg.network,
                                       len(members))
            generator.load_state_dict(stack_states([m.model.generators[k].state_dict() for m in members]))
            generator.to(self.device).eval().requires_grad_(False)
            amp = _per_channel([m.model.noise_amps[k] for m in members], cfg.channels, cfg.spatial_dims, self.device)
            coarser.append((generator, amp, members[0].model.shapes[k]))
        return coarser

    def _train_scale(self, members: list[_Member], scale: int, board: TensorBoardLog | None) -> None:
        """Train pyramid level ``scale`` of every model of the group, append the trained generators to the models and
        write their checkpoints (:meth:`_end_scale`)."""
        first = members[0].model
        cfg = first.config
        rngs = [torch.Generator(device=self.device).manual_seed(scale_seed(m.model.config.seed, scale))
                for m in members]
        optim = cfg.optim.at_scale(scale, first.num_scales)
        generator, critic = self._networks(members, scale, rngs, optim)
        amps, rec_noise, rec_input = self._reconstruction_inputs(members, scale, rngs)
        along_noise: list[torch.Tensor] = []
        along = trained_along(optim, scale)
        if along:  # coarser scales trained along: the reconstruction path starts at the first of them
            along_noise, rec_input = along_reconstruction([m.model for m in members], along.start, scale, self.device)
        real = torch.cat([m.pyramid[scale] for m in members], 1)
        # the coarsest critics judge the whole image: there an augmentation keeps them from learning it by heart
        augment = cfg.network.critic_augment if scale < cfg.network.critic_scales else ()
        step = ScaleStep(generator, critic, real, _per_channel(amps, cfg.channels, cfg.spatial_dims, self.device),
                         (rec_noise, rec_input), self._coarser(members, scale), rngs, optim, along_noise,
                         augment, cfg.image_channels)
        group = f" x{len(members)}" if len(members) > 1 else ""
        engine = self.engine(
            step, f"scale {scale + 1}/{first.num_scales} {first.shapes[scale]}{group}",
            own=[_PlateauStop(step, optim)], context=(scale,),
            board=None if board is None else board.loss_handler(f"scale_{scale:02d}"),
            # the bar shows the group's means (the per-model values are vectors); a log file or a cluster job's
            # output gets the one "done" line per scale of _end_scale, not thousands of bar refreshes
            output_transform=lambda out: {k: v for k, v in out.items() if v.ndim == 0}, terminal_only=True,
            state={"scale_step": step},  # ignite keeps user attributes on its state: handlers reach the step here
        )
        self.run(engine, range(optim.iters_per_scale),
                 lambda engine, seconds: self._end_scale(members, scale, step, amps, engine, seconds, board))

    def _end_scale(self, members: list[_Member], scale: int, step: ScaleStep, amps: list[float], engine: Engine,
                   seconds: float, board: TensorBoardLog | None) -> None:
        """After a scale's engine has run: keep its networks (:meth:`_freeze`), write every model's checkpoint, log
        the scale (TensorBoard's summary and sample, one line)."""
        records = self._freeze(members, scale, step, amps, engine, seconds)
        for member, record in zip(members, records):
            member.state.log.append(record)
            member.state.critic = member.critic
            member.state.complete = member.model.trained_scales == member.model.num_scales
            save_model(member.model, member.checkpoint, training=member.state)
        first = members[0].model
        if board is not None:
            board.end_scale(first, members[0].pyramid[scale], records[0])
        logger.info(
            "scale %d/%d %s done (%d model%s): %.1f s (%.3f s/iter, %d iterations), reconstruction MSE %.4f",
            scale + 1, first.num_scales, first.shapes[scale], len(members), "s" if len(members) > 1 else "",
            records[0]["seconds"], records[0]["seconds_per_iter"], records[0]["group_iterations"],
            sum(r["rec"] for r in records) / len(records),
        )

    def _freeze(self, members: list[_Member], scale: int, step: ScaleStep, amps: list[float], engine: Engine,
                seconds: float) -> list[dict[str, Any]]:
        """Split the trained grouped networks back into one generator (frozen, appended) and critic per model; a
        model whose scale ended before the group's takes the weights it had then."""
        groups = len(members)
        out = engine.state.output
        records = []
        generators = split_state(step.generator.state_dict(), groups)
        critics = split_state(step.critic.state_dict(), groups)
        coarser = [split_state(g.state_dict(), groups) for g in step.trained]
        for k, member in enumerate(members):
            ended = step.stopped.get(k) or {"generator": generators[k], "critic": critics[k],
                                            "coarser": [states[k] for states in coarser],
                                            "iterations": engine.state.iteration, "losses": member_losses(out, k)}
            if ended["coarser"]:  # a coarser scale trained along keeps its new weights
                keep_trained_along(member.model, step.first_trained, ended["coarser"])
            g_state, c_state = ended["generator"], ended["critic"]
            trained = member.model.new_generator(scale).to(self.device)
            trained.load_state_dict(g_state)
            trained.eval().requires_grad_(False)
            member.model.generators.append(trained)
            member.model.noise_amps.append(amps[k])
            member.critic = c_state
            records.append({
                "scale": scale,
                "shape": list(member.model.shapes[scale]),
                "width": member.model.config.network.channels_at(scale),
                "noise_amp": amps[k],
                "iterations": ended["iterations"],
                "group_iterations": engine.state.iteration,
                "group_size": groups,
                "trained_along": list(range(step.first_trained, scale)),
                "seconds": seconds,
                "seconds_per_iter": seconds / max(engine.state.iteration, 1),
                **ended["losses"],
            })
        return records


def _check_group(items: Sequence[TrainingItem], members: list[_Member]) -> None:
    """Refuse a group whose members cannot train as one network.

    Raises:
        SinGANSegInputError: a member's pyramid shapes, configuration (other than the seed) or trained scales differ
            from the first's.
    """
    first = members[0].model
    for item, member in zip(items, members):
        if member.model.shapes != first.shapes or _without_seed(member.model.config) != _without_seed(
                first.config) or member.model.trained_scales != first.trained_scales:
            raise SinGANSegInputError(
                f"{item.checkpoint}: cannot train in one group with {items[0].checkpoint}: pyramid shapes, "
                "configuration (other than the seed) and trained scales must be equal."
            )


def _without_seed(config: SinGANSegConfig) -> dict[str, Any]:
    data = config.to_dict()
    data.pop("seed")
    return data
