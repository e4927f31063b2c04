"""A second generator: a denoising diffusion model of image + mask pairs (2D or 3D), with RePaint inpainting.

Built on MONAI's generative parts (``DiffusionModelUNet``, ``DDPMScheduler`` / ``DDIMScheduler``,
``DiffusionInferer``); the same stacked ``[-1, 1]`` tensors, intensity maps and label encodings as SinGAN-Seg.
See ``docs/diffusion.md``.
"""

from __future__ import annotations

from monai_singanseg.diffusion.checkpoint import (
    DIFFUSION_FORMAT,
    DIFFUSION_FORMAT_VERSION,
    DiffusionTrainingState,
    load_diffusion,
    read_diffusion_checkpoint,
    save_diffusion,
)
from monai_singanseg.diffusion.config import NOISE_SCHEDULES, SAMPLERS, DiffusionConfig
from monai_singanseg.diffusion.model import PairDiffusion, build_unet, default_labels
from monai_singanseg.diffusion.schedule import (
    noise_scheduler,
    repaint_levels,
    respaced_scheduler,
    sampling_timesteps,
)
from monai_singanseg.diffusion.trainer import (
    DiffusionStep,
    DiffusionTrainer,
    TrainingData,
    draw_batch,
    stack_pairs,
    step_seed,
)

__all__ = [
    "DIFFUSION_FORMAT",
    "DIFFUSION_FORMAT_VERSION",
    "NOISE_SCHEDULES",
    "SAMPLERS",
    "DiffusionConfig",
    "DiffusionStep",
    "DiffusionTrainer",
    "DiffusionTrainingState",
    "PairDiffusion",
    "TrainingData",
    "build_unet",
    "default_labels",
    "draw_batch",
    "load_diffusion",
    "noise_scheduler",
    "read_diffusion_checkpoint",
    "repaint_levels",
    "respaced_scheduler",
    "sampling_timesteps",
    "save_diffusion",
    "stack_pairs",
    "step_seed",
]
