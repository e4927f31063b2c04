"""SinGAN-Seg's checkpoint format: its marker and versions, its resume state, and its weights inside the shared
envelope (:mod:`monai_singanseg.checkpoint_envelope`).

Body of the envelope::

    shapes, noise_amps          scale shapes (coarsest first) and noise amplitudes of the trained scales
    fixed_noise                 the reconstruction noise of the coarsest scale
    generators                  one state dict per trained scale

and ``training`` holds a :class:`TrainingState`. There is no random-generator state to store: each scale's random
stream is seeded from the model seed and the scale number (:func:`~monai_singanseg.training.trainer.scale_seed`), so
a run resumes at a scale boundary on any device. Version 1 also stored a device-specific random state, ignored now.

The functions here take the model as an argument and import no model module, so
:class:`~monai_singanseg.networks.SinGANSeg` imports this module to save and load itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from monai_singanseg.checkpoint_envelope import CheckpointFormat, ResumeState, check_finite
from monai_singanseg.config import SinGANSegConfig
from monai_singanseg.networks.scale_networks import ScaleCritic, drop_norm_biases

__all__ = ["SINGANSEG_CHECKPOINT", "TrainingState", "restore_generators", "singanseg_body"]

SINGANSEG_CHECKPOINT = CheckpointFormat(marker="monai-singanseg", version=2, readable=(1, 2),
                                        config_cls=SinGANSegConfig, name="monai-singanseg")


@dataclass
class TrainingState(ResumeState):
    """What a SinGAN-Seg checkpoint keeps to resume training, beside the trained generators.

    Attributes:
        fingerprint: SHA-256 of the training tensor (resuming on other data is refused).
        complete: every scale is trained (a file without it counts as complete).
        critic: the last trained scale's critic weights (a finer scale of the same width starts from them).
        log: one record per trained scale (shape, width, noise amplitude, iterations, seconds, last losses).
    """

    READ_DEFAULTS: ClassVar[dict[str, Any]] = {"complete": True}

    complete: bool
    critic: dict[str, torch.Tensor] | None = None
    log: list[dict[str, Any]] = field(default_factory=list)

    def unfinished(self, path: str | os.PathLike, model: Any) -> str:
        return (f"{path}: training is not finished ({model.trained_scales}/{model.num_scales} scales); "
                "resume it first (singanseg train ... --resume).")


def singanseg_body(model: Any) -> dict[str, Any]:
    """The envelope's body for ``model`` (a SinGANSeg): pyramid shapes, noise amplitudes, fixed noise, generators."""
    return {
        "shapes": [list(s) for s in model.shapes],
        "noise_amps": [float(a) for a in model.noise_amps],
        "fixed_noise": model.fixed_noise,
        "generators": [g.state_dict() for g in model.generators],
    }


def restore_generators(model: Any, payload: dict[str, Any], state: TrainingState | None, for_training: bool) -> None:
    """Load the trained generators, noise amplitudes and fixed noise of ``payload`` into ``model`` (a SinGANSeg built
    from the same payload's config and shapes).

    Args:
        model: the model to fill.
        payload: the checkpoint's contents, envelope checked.
        state: its resume state (an unfinished one may hold fewer generators than scales).
        for_training: keep the layout training used (a resumed run must repeat its arithmetic exactly), and check
            the stored critic against the last trained scale.

    Raises:
        ValueError, KeyError, RuntimeError: the contents do not fit together (the caller calls the file damaged).
    """
    shapes, generators, amps = payload["shapes"], payload["generators"], payload["noise_amps"]
    if len(generators) != len(amps) or len(generators) > len(shapes) or (
            (state is None or state.complete) and len(generators) != len(shapes)):
        raise ValueError(f"{len(generators)} generators and {len(amps)} noise amplitudes for {len(shapes)} scales")
    check_finite({"noise_amps": amps, "fixed_noise": payload["fixed_noise"],
                  **{f"generator {scale} {name}": v for scale, g in enumerate(generators) for name, v in g.items()}})
    for scale, state_dict in enumerate(generators):
        generator = model.new_generator(scale)
        generator.load_state_dict(drop_norm_biases(state_dict))
        # sampling only: oneDNN's channels-last kernels are ~25 % faster for these batch-1 forward passes
        # (training stays NCHW, where channels-last was slower at 128 feature maps)
        if model.config.spatial_dims == 2 and not for_training:
            generator = generator.to(memory_format=torch.channels_last)
        model.generators.append(generator)
    model.noise_amps = list(amps)
    model.fixed_noise.copy_(payload["fixed_noise"])
    if for_training and state is not None and state.critic is not None and generators:
        # checked here, where the file is named: a critic of another scale failed at the next scale's
        # load_state_dict, after the resumed run had started, with a traceback
        _check_critic(model.config, len(generators) - 1, state.critic)


def _check_critic(config: SinGANSegConfig, scale: int, critic: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless ``critic`` (a stored state dict) fits the critic of pyramid level ``scale``: the
    one a resumed run continues from."""
    expected = ScaleCritic(config.spatial_dims, config.channels, config.network.channels_at(scale),
                           config.network).state_dict()
    stored = drop_norm_biases(critic)
    if set(stored) != set(expected):
        raise ValueError(f"the stored critic's weights {sorted(set(stored) ^ set(expected))[:3]} do not belong to the "
                         f"critic of scale {scale}")
    for name, value in expected.items():
        if tuple(stored[name].shape) != tuple(value.shape):
            raise ValueError(f"the stored critic's {name} is {tuple(stored[name].shape)}, the critic of scale {scale} "
                             f"(the last trained) has {tuple(value.shape)}: it belongs to another scale")
