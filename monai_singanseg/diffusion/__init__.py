"""A second generator: a denoising diffusion model of image + mask pairs (2D or 3D), with RePaint inpainting.

Optional k-means clustering of the training pairs (scikit-learn) gives one model per cluster. Built on MONAI's
generative parts (``DiffusionModelUNet``, ``DDPMScheduler`` / ``DDIMScheduler``,
``DiffusionInferer``); the same stacked ``[-1, 1]`` tensors, intensity maps and label encodings as SinGAN-Seg.
See ``docs/diffusion.md``.

The names are imported on first use (PEP 562): the command line reads ``diffusion.config`` for its options without
importing torch and MONAI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monai_singanseg.lazy import lazy_names

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from monai_singanseg.diffusion.checkpoint import (
        DIFFUSION_FORMAT,
        DIFFUSION_FORMAT_VERSION,
        DiffusionTrainingState,
        load_diffusion,
        read_diffusion_checkpoint,
        save_diffusion,
        stored_config,
    )
    from monai_singanseg.diffusion.clustering import PairClusters, cluster_pairs, pair_features
    from monai_singanseg.diffusion.config import (
        CLUSTER_FEATURES,
        DIFFUSION_MODES,
        NOISE_SCHEDULES,
        SAMPLERS,
        DiffusionConfig,
        DiffusionSampling,
    )
    from monai_singanseg.diffusion.inpainting import inpaint_pair, label_region
    from monai_singanseg.diffusion.many import load_datalist_pairs, resize_pair, train_diffusion_models
    from monai_singanseg.diffusion.model import PairDiffusion, build_unet, default_labels
    from monai_singanseg.diffusion.schedule import (
        noise_scheduler,
        repaint_levels,
        respaced_scheduler,
        sampling_timesteps,
    )
    from monai_singanseg.diffusion.trainer import (
        DiffusionCheckpoint,
        DiffusionStep,
        DiffusionTrainer,
        TrainingData,
        WeightAverage,
        draw_batch,
        stack_pairs,
        step_seed,
    )

_SOURCES = {  # submodule: its public names
    "checkpoint": ("DIFFUSION_FORMAT", "DIFFUSION_FORMAT_VERSION", "DiffusionTrainingState", "load_diffusion",
                   "read_diffusion_checkpoint", "save_diffusion", "stored_config"),
    "clustering": ("PairClusters", "cluster_pairs", "pair_features"),
    "config": ("CLUSTER_FEATURES", "DIFFUSION_MODES", "NOISE_SCHEDULES", "SAMPLERS", "DiffusionConfig",
               "DiffusionSampling"),
    "inpainting": ("inpaint_pair", "label_region"),
    "many": ("load_datalist_pairs", "resize_pair", "train_diffusion_models"),
    "model": ("PairDiffusion", "build_unet", "default_labels"),
    "schedule": ("noise_scheduler", "repaint_levels", "respaced_scheduler", "sampling_timesteps"),
    "trainer": ("DiffusionCheckpoint", "DiffusionStep", "DiffusionTrainer", "TrainingData", "WeightAverage",
                "draw_batch", "stack_pairs", "step_seed"),
}

__all__ = [
    "CLUSTER_FEATURES",
    "DIFFUSION_FORMAT",
    "DIFFUSION_FORMAT_VERSION",
    "DIFFUSION_MODES",
    "NOISE_SCHEDULES",
    "SAMPLERS",
    "DiffusionCheckpoint",
    "DiffusionConfig",
    "DiffusionSampling",
    "DiffusionStep",
    "DiffusionTrainer",
    "DiffusionTrainingState",
    "PairClusters",
    "PairDiffusion",
    "TrainingData",
    "WeightAverage",
    "build_unet",
    "cluster_pairs",
    "default_labels",
    "draw_batch",
    "inpaint_pair",
    "label_region",
    "load_datalist_pairs",
    "load_diffusion",
    "noise_scheduler",
    "pair_features",
    "read_diffusion_checkpoint",
    "repaint_levels",
    "resize_pair",
    "respaced_scheduler",
    "sampling_timesteps",
    "save_diffusion",
    "stack_pairs",
    "step_seed",
    "stored_config",
    "train_diffusion_models",
]

__getattr__, __dir__ = lazy_names(__name__, _SOURCES, f"{__name__}.")
