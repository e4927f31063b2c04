"""Noise schedules for training and sampling, and RePaint's resampling schedule: pure functions of the config.

MONAI's ``DDPMScheduler.step`` takes the previous timestep to be ``t - 1`` and ``DDIMScheduler.step`` takes it to be
``t - T // steps`` while their ``set_timesteps`` space the steps by ``(T - 1) / (steps - 1)``; so sampling with fewer
steps than the ``T`` of training is wrong with the first (samples stay noisy) and slightly off with the second.
Here the chosen timesteps are *respaced* (Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models",
ICML 2021): a MONAI scheduler of ``steps`` timesteps gets the cumulative alphas of the chosen training timesteps, so
its own ``step`` (``t -> t - 1``) is exact, and the network is asked at the training timestep each index stands for.
With ``steps == T`` the respaced schedule is the training schedule itself.
"""

from __future__ import annotations

import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, Scheduler

from monai_singanseg.diffusion.config import SAMPLERS, DiffusionConfig

__all__ = ["noise_scheduler", "repaint_levels", "respaced_scheduler", "sampling_timesteps"]


def noise_scheduler(config: DiffusionConfig) -> DDPMScheduler:
    """The training schedule: MONAI's DDPM scheduler over all ``num_train_timesteps`` (its ``add_noise`` noises)."""
    betas = {} if config.schedule == "cosine" else {"beta_start": config.beta_start, "beta_end": config.beta_end}
    return DDPMScheduler(num_train_timesteps=config.num_train_timesteps, schedule=config.schedule, **betas)


def sampling_timesteps(num_train_timesteps: int, steps: int) -> torch.Tensor:
    """``steps`` training timesteps evenly spread over ``[0, T - 1]``, ascending (MONAI's spacing, both ends kept)."""
    if not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"steps must lie in [1, {num_train_timesteps}] (num_train_timesteps), got {steps}.")
    return torch.linspace(num_train_timesteps - 1, 0, steps).round().long().flip(0)


def respaced_scheduler(config: DiffusionConfig, steps: int, sampler: str = "ddpm") -> tuple[Scheduler, torch.Tensor]:
    """A MONAI scheduler that samples in ``steps`` exact steps, and the training timestep of each of its indices.

    Args:
        config: the model's configuration (noise schedule, ``T``).
        steps: sampling steps, ``1 <= steps <= num_train_timesteps``.
        sampler: ``"ddpm"`` (ancestral, Ho et al. 2020) or ``"ddim"`` (Song et al. 2021).

    Returns:
        ``(scheduler, timesteps)``: ``scheduler.step(eps, i, x)`` goes from index ``i`` to ``i - 1`` (index ``-1``:
        noise-free), ``scheduler.timesteps`` lists the indices from ``steps - 1`` down to 0, and ``timesteps[i]`` is
        the training timestep to give the network at index ``i``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}.")
    timesteps = sampling_timesteps(config.num_train_timesteps, steps)
    alphas_cumprod = noise_scheduler(config).alphas_cumprod[timesteps]
    alphas = alphas_cumprod / torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    # MONAI's shell scheduler of `steps` timesteps, its schedule replaced by the respaced one (its attributes betas,
    # alphas and alphas_cumprod are what every step reads)
    shell = DDPMScheduler if sampler == "ddpm" else DDIMScheduler
    scheduler = shell(num_train_timesteps=steps)
    scheduler.betas, scheduler.alphas, scheduler.alphas_cumprod = 1.0 - alphas, alphas, alphas_cumprod
    scheduler.set_timesteps(steps)
    return scheduler, timesteps


def repaint_levels(steps: int, jump_length: int, resample: int) -> list[int]:
    """The noise levels RePaint visits (Lugmayr et al., "RePaint", CVPR 2022, its ``get_schedule_jump``).

    Level ``k`` is the sample noised to respaced index ``k - 1``; level ``steps`` is pure noise, level 0 noise-free.
    Going down one level is a denoising step; going up ``jump_length`` levels at once re-noises the sample
    (resampling), so each stretch of ``jump_length`` steps below the top one is denoised ``resample`` times in all.

    Args:
        steps: sampling steps.
        jump_length: levels per jump back up (RePaint's j).
        resample: how many times each stretch is denoised (RePaint's r; 1 = no resampling).

    Returns:
        The levels in visiting order, from ``steps`` down to 0.

    Example:
        >>> repaint_levels(4, jump_length=2, resample=2)
        [4, 3, 2, 1, 0, 2, 1, 0]
    """
    if min(steps, jump_length, resample) < 1:
        raise ValueError(f"steps, jump_length and resample must be >= 1, got {steps}, {jump_length}, {resample}.")
    jumps = {level: resample - 1 for level in range(0, steps - jump_length, jump_length)}
    level, levels = steps, [steps]
    while level > 0:
        level -= 1
        levels.append(level)
        if jumps.get(level, 0) > 0:
            jumps[level] -= 1
            level += jump_length
            levels.append(level)
    return levels
