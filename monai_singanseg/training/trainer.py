"""Scale-by-scale SinGAN-Seg training on one image + mask tensor, seeded and resumable.

Each scale runs as an ignite :class:`~ignite.engine.Engine` (one engine iteration = ``critic_steps`` critic updates
and ``generator_steps`` generator updates), so users can attach their own handlers (``Events.ITERATION_COMPLETED``)
through ``handlers``; the progress bar is ignite's tqdm ``ProgressBar``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from ignite.engine import Engine
from ignite.handlers import ProgressBar

from monai_singanseg.checkpoint import load_model, save_model
from monai_singanseg.config import SinGANSegConfig
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.intensity import IntensityMapping, LabelEncoding
from monai_singanseg.networks import ScaleCritic, SinGANSeg, draw_noise, init_weights
from monai_singanseg.pyramid import build_pyramid, resize, scale_shapes
from monai_singanseg.training.losses import gradient_penalty, reconstruction_loss

__all__ = ["SinGANSegTrainer", "fingerprint"]

if TYPE_CHECKING:
    from monai_singanseg.training.tensorboard import TensorBoardLog

logger = logging.getLogger(__name__)


def fingerprint(real: torch.Tensor) -> str:
    """SHA-256 of the training tensor: identifies the data in a checkpoint without storing it."""
    return hashlib.sha256(real.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()


class SinGANSegTrainer:
    """Train a :class:`SinGANSeg` model scale by scale, writing a checkpoint after every finished scale.

    Args:
        config: model and training configuration (ignored when resuming: the checkpoint's own is used).
        device: where the networks run.
        progress: show a progress bar per scale.
        handlers: callables ``handler(engine, scale)`` called once per scale to attach ignite handlers.
        stop_after_scales: stop (as an interruption would) once this many scales are finished; for tests and for
            splitting a long run.
        log_dir: write TensorBoard logs here (per-scale losses, a sample after every scale); needs the optional
            ``tensorboard`` package. ``None``: no logging.

    Example:
        >>> trainer = SinGANSegTrainer(SinGANSegConfig(image_channels=1))           # doctest: +SKIP
        >>> model = trainer.fit(real, intensity, labels, "model.pt")
    """

    def __init__(
        self,
        config: SinGANSegConfig,
        device: str | torch.device = "cpu",
        progress: bool = True,
        handlers: list[Callable[[Engine, int], None]] | None = None,
        stop_after_scales: int | None = None,
        log_dir: str | os.PathLike | None = None,
    ) -> None:
        self.config = config.validate()
        self.device = torch.device(device)
        self.progress = progress
        self.handlers = handlers or []
        self.stop_after_scales = stop_after_scales
        self.log_dir = log_dir
        if log_dir is not None:
            from monai_singanseg.training.tensorboard import require_tensorboard

            require_tensorboard(log_dir)  # fail before any training, not after the first scale

    def fit(
        self,
        real: torch.Tensor,
        intensity: IntensityMapping,
        labels: LabelEncoding,
        checkpoint: str | os.PathLike,
        resume: bool = False,
        source: dict[str, Any] | None = None,
    ) -> SinGANSeg:
        """Train on ``real`` ``(C, *spatial)`` in ``[-1, 1]`` (image channels, then mask channels).

        Args:
            real: the stacked training tensor.
            intensity: map of the image channels to ``[-1, 1]``, stored in the checkpoint.
            labels: map of the label to the mask channels, stored in the checkpoint.
            checkpoint: file written after every scale (atomically) and at the end.
            resume: continue from ``checkpoint``; the result equals an uninterrupted run's.
            source: affine, shape and contrast names of the training image, stored to write outputs alike.

        Returns:
            The model (eval mode) with every scale trained (or ``stop_after_scales`` of them).
        """
        real = real.to(self.device, torch.float32).unsqueeze(0)
        data_id = fingerprint(real)
        if resume:
            model, state = load_model(checkpoint, device=self.device, for_training=True)
            if state is None or state.get("fingerprint") != data_id:
                raise SinGANSegInputError(
                    f"{checkpoint}: cannot resume: it was trained on other data (or holds no training state)."
                )
            config = model.config
            rng = torch.Generator(device=self.device)
            rng.set_state(state["rng_state"])
            critic_state, log = state["critic"], list(state["log"])
        else:
            config = self.config
            if real.shape[1] != config.channels:
                raise SinGANSegInputError(
                    f"training tensor has {real.shape[1]} channels, the config expects {config.channels} "
                    f"({config.image_channels} image + {config.mask_channels} mask)."
                )
            shapes = scale_shapes(real.shape[2:], config.pyramid)
            model = SinGANSeg(config, shapes, intensity, labels, source).to(self.device)
            rng = torch.Generator(device=self.device).manual_seed(config.seed)
            critic_state, log = None, []
        reals = build_pyramid(real, model.shapes)
        last = model.num_scales if self.stop_after_scales is None else min(self.stop_after_scales, model.num_scales)
        board = None
        if self.log_dir is not None:
            from monai_singanseg.training.tensorboard import TensorBoardLog

            board = TensorBoardLog(self.log_dir, seed=config.seed)
        try:  # an interrupted run still flushes and closes its TensorBoard log
            for scale in range(model.trained_scales, last):
                critic_state, record = self._train_scale(model, reals[scale], scale, critic_state, rng, board)
                log.append(record)
                if board is not None:
                    board.end_scale(model, reals[scale], record)
                logger.info(
                    "scale %d/%d %s done: %.1f s (%.3f s/iter), reconstruction MSE %.4f, noise amplitude %.4f",
                    scale + 1, model.num_scales, model.shapes[scale], record["seconds"], record["seconds_per_iter"],
                    record["rec"], record["noise_amp"],
                )
                training = {
                    "fingerprint": data_id,
                    "rng_state": rng.get_state(),
                    "critic": critic_state,
                    "log": log,
                    "complete": model.trained_scales == model.num_scales,
                }
                save_model(model, checkpoint, training=training)
        finally:
            if board is not None:
                board.close()
        return model.eval()

    def _train_scale(
        self,
        model: SinGANSeg,
        real: torch.Tensor,
        scale: int,
        critic_state: dict[str, torch.Tensor] | None,
        rng: torch.Generator,
        board: TensorBoardLog | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        cfg, opt = model.config, model.config.optim
        width = cfg.network.channels_at(scale)
        generator = model.new_generator(scale).to(self.device)
        critic = ScaleCritic(cfg.spatial_dims, cfg.channels, width, cfg.network).to(self.device)
        if scale > 0 and cfg.network.channels_at(scale - 1) == width:
            # the reference starts a scale from the previous one when the width is unchanged
            generator.load_state_dict(model.generators[scale - 1].state_dict())
            critic.load_state_dict(critic_state)
        else:
            init_weights(generator, rng)
            init_weights(critic, rng)
        shape = real.shape[2:]
        channels = cfg.channels
        coarsest = scale == 0
        if coarsest:
            model.fixed_noise.copy_(draw_noise(1, channels, shape, True, rng, self.device))
            rec_previous = torch.zeros_like(real)
            noise_amp = 1.0
            rec_noise = model.fixed_noise.clone()
        else:
            rec_previous = resize(model.reconstruct(scale), shape)
            noise_amp = opt.noise_amp_init * math.sqrt(F.mse_loss(rec_previous, real).item())
            rec_noise = torch.zeros_like(real)

        def random_previous() -> torch.Tensor:
            if coarsest:
                return torch.zeros_like(real)
            return resize(model.generate(1, stop_scale=scale, generator=rng), shape)

        opt_g = torch.optim.Adam(generator.parameters(), lr=opt.lr_g, betas=opt.betas)
        opt_d = torch.optim.Adam(critic.parameters(), lr=opt.lr_d, betas=opt.betas)
        milestone = [max(1, int(opt.lr_decay_at * opt.iters_per_scale))]
        sched_g = torch.optim.lr_scheduler.MultiStepLR(opt_g, milestone, gamma=opt.lr_gamma)
        sched_d = torch.optim.lr_scheduler.MultiStepLR(opt_d, milestone, gamma=opt.lr_gamma)

        def iteration(engine: Engine, _: Any) -> dict[str, float]:
            noise = noise_amp * draw_noise(1, channels, shape, coarsest, rng, self.device)
            generator.train()
            critic.train()
            for _ in range(opt.critic_steps):
                previous = random_previous()
                with torch.no_grad():
                    fake = generator(noise, previous)
                opt_d.zero_grad(set_to_none=True)
                loss_real = -critic(real).mean()
                loss_fake = critic(fake).mean()
                penalty = gradient_penalty(critic, real, fake, rng)
                (loss_real + loss_fake + opt.gp_weight * penalty).backward()
                opt_d.step()
            for _ in range(opt.generator_steps):
                opt_g.zero_grad(set_to_none=True)
                # recomputing the fake each step gives every generator step its own gradient (reference pitfall)
                loss_adv = -critic(generator(noise, previous)).mean()
                loss_rec = reconstruction_loss(generator(rec_noise, rec_previous), real)
                (loss_adv + opt.rec_weight * loss_rec).backward()
                opt_g.step()
            sched_g.step()
            sched_d.step()
            return {
                "critic": (loss_real + loss_fake).item(),
                "gen": loss_adv.item(),
                "rec": loss_rec.item(),
                "gp": penalty.item(),
            }

        engine = Engine(iteration)
        if self.progress:
            bar = ProgressBar(persist=True, desc=f"scale {scale + 1}/{model.num_scales} {tuple(shape)}")
            bar.attach(engine, output_transform=lambda out: out)
        for attach in self.handlers:
            attach(engine, scale)
        if board is not None:
            board.attach(engine, scale)
        start = time.perf_counter()
        engine.run(range(opt.iters_per_scale), max_epochs=1)
        seconds = time.perf_counter() - start

        generator.eval()
        for p in generator.parameters():
            p.requires_grad_(False)
        model.generators.append(generator)
        model.noise_amps.append(noise_amp)
        losses = engine.state.output
        record = {
            "scale": scale,
            "shape": list(shape),
            "width": width,
            "noise_amp": noise_amp,
            "seconds": seconds,
            "seconds_per_iter": seconds / opt.iters_per_scale,
            **{k: float(v) for k, v in losses.items()},
        }
        return {k: v.detach().clone() for k, v in critic.state_dict().items()}, record
