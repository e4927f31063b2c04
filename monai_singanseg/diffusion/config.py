"""One typed configuration for a diffusion model of image + mask pairs and its training, with a JSON round trip."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from monai_singanseg.config import STYLE_METHODS, JsonConfig, PairModelConfig, as_tuple

__all__ = ["CLUSTER_FEATURES", "DIFFUSION_MODES", "NOISE_SCHEDULES", "REPAINT_RESAMPLE", "SAMPLERS", "DiffusionConfig",
           "DiffusionSampling"]

NOISE_SCHEDULES = ("linear_beta", "scaled_linear_beta", "sigmoid_beta", "cosine")
"""Names of MONAI's noise schedules (``monai.networks.schedulers.NoiseSchedules``)."""

SAMPLERS = ("ddpm", "ddim")

CLUSTER_FEATURES = ("intensity", "inception")
"""Features the training pairs can be clustered on (:mod:`monai_singanseg.diffusion.clustering`)."""

DIFFUSION_MODES = ("inpaint", "sample")
"""How a diffusion model makes a pair in the transforms: redraw the lesion region of the incoming real pair, or draw
a whole new pair."""

REPAINT_RESAMPLE = 5
"""RePaint's resampling count per stretch everywhere inpainting has a default (:meth:`PairDiffusion.inpaint`,
:class:`DiffusionSampling`, the command line): 5, half of RePaint's 10, is the count docs/diffusion.md measured in
use (the inpainted pictures, 6.4 s per 64² pair on a core against 14.8 s at 10)."""


@dataclass
class DiffusionConfig(PairModelConfig):
    """Everything that defines a pair-diffusion model: data layout, UNet, noise schedule and optimisation.

    The network is MONAI's ``DiffusionModelUNet`` predicting the noise (epsilon) of ``image_channels +
    mask_channels`` stacked channels in ``[-1, 1]`` (the same stacked tensor SinGAN-Seg trains on).

    Args:
        spatial_dims: 2 for images, 3 for volumes.
        image_channels: channels of the image part (1 for MR/CT, 3 for RGB, several for stacked contrasts).
        mask_channels: channels of the mask part (1 for a binary mask, K for a one-hot mask of K classes); >= 1.
        image_size: training crop and default sample size, one number or one per spatial axis; every side must be a
            multiple of ``2 ** (len(unet_channels) - 1)`` (the UNet halves it at every level but the last).
        unet_channels: feature maps per UNet level.
        attention_levels: self-attention at each level (one flag per level); the middle block between the deepest
            levels always has it (MONAI's UNet).
        num_res_blocks: residual blocks per level.
        num_head_channels: channels per attention head (divides the channels of every attention level and of the
            deepest one).
        norm_num_groups: group-norm groups (divides every entry of ``unet_channels``).
        num_train_timesteps: diffusion steps of the forward process (T).
        schedule: a MONAI noise schedule, one of :data:`NOISE_SCHEDULES`.
        beta_start: first beta of the beta schedules (ignored by ``"cosine"``).
        beta_end: last beta of the beta schedules (ignored by ``"cosine"``).
        lr: Adam learning rate (constant).
        train_steps: optimisation steps (batches) in all.
        batch_size: crops per step.
        flips: flip each crop along every spatial axis with probability 1/2 (off for data with a handedness).
        ema_decay: decay of the exponential moving average of the weights kept during training; the average is the
            model that samples and that the checkpoint's ``unet`` holds (0: no average, the last weights sample).
            Warmed up by step: step ``k`` uses ``min(ema_decay, (1 + k) / (10 + k))``, so a short run is not
            dragged back to its initial weights.
        checkpoint_every: write the checkpoint every this many steps (and always at the end).
        seed: seed of the weight initialisation and of every random draw in training.

    Example:
        >>> DiffusionConfig(image_channels=1, image_size=32, unet_channels=(16, 32)).image_size
        (32, 32)
    """

    spatial_dims: int = 2
    image_channels: int = 3
    mask_channels: int = 1
    image_size: tuple[int, ...] = (64, 64)
    # the small UNet measured on the CPU (docs/diffusion.md): 1.5 M parameters; a fourth level is cheaper than three
    # here because MONAI's middle block always attends, at the deepest level's positions
    unet_channels: tuple[int, ...] = (32, 64, 64, 64)
    attention_levels: tuple[bool, ...] = (False, False, False, True)
    num_res_blocks: int = 1
    num_head_channels: int = 32
    norm_num_groups: int = 32
    num_train_timesteps: int = 1000
    schedule: str = "linear_beta"
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    lr: float = 2e-4
    train_steps: int = 3000
    batch_size: int = 8
    flips: bool = True
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        # JSON gives lists and a user may give one number: keep one canonical form (tuples), so configs compare equal
        self.image_size = as_tuple(self.image_size, self.spatial_dims, int)
        self.unet_channels = as_tuple(self.unet_channels, 1, int)
        self.attention_levels = as_tuple(self.attention_levels, len(self.unet_channels), bool)

    @property
    def size_multiple(self) -> int:
        """Every spatial side the UNet sees must be a multiple of this."""
        return 2 ** (len(self.unet_channels) - 1)

    def validate(self) -> DiffusionConfig:
        """Check every field; returns ``self``.

        Raises:
            ValueError: a field out of range or fields that do not fit together, naming them.
        """
        self.check_layout("image_size", min_image_channels=0)
        if not self.unet_channels or min(self.unet_channels) < 1:
            raise ValueError(f"unet_channels must list >= 1 positive widths, got {self.unet_channels}.")
        multiple = self.size_multiple
        if any(s < multiple or s % multiple for s in self.image_size):
            raise ValueError(
                f"image_size {self.image_size}: every side must be a positive multiple of {multiple}, as a UNet of "
                f"{len(self.unet_channels)} levels halves it {len(self.unet_channels) - 1} times."
            )
        if len(self.attention_levels) != len(self.unet_channels):
            raise ValueError(
                f"attention_levels {self.attention_levels} needs one flag per UNet level ({len(self.unet_channels)})."
            )
        if self.norm_num_groups < 1 or any(c % self.norm_num_groups for c in self.unet_channels):
            raise ValueError(f"norm_num_groups ({self.norm_num_groups}) must divide every unet_channels entry "
                             f"{self.unet_channels}.")
        # the UNet's middle block always attends, at the deepest level's width
        attended = {c for c, a in zip(self.unet_channels, self.attention_levels) if a}
        attended = sorted(attended | {self.unet_channels[-1]})
        if self.num_head_channels < 1 or any(c % self.num_head_channels for c in attended):
            raise ValueError(f"num_head_channels ({self.num_head_channels}) must divide the channels of every "
                             f"attention level and of the deepest level {attended}.")
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1, got {self.num_res_blocks}.")
        if self.num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be >= 2, got {self.num_train_timesteps}.")
        if self.schedule not in NOISE_SCHEDULES:
            raise ValueError(f"schedule must be one of {NOISE_SCHEDULES}, got {self.schedule!r}.")
        if not 0.0 < self.beta_start < self.beta_end < 1.0:
            raise ValueError(f"need 0 < beta_start < beta_end < 1, got {self.beta_start} and {self.beta_end}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        self.check_training_fields()
        return self

    @classmethod
    def derived_fields(cls, fields: dict[str, Any]) -> dict[str, Any]:
        """Defaults :meth:`~monai_singanseg.config.PairModelConfig.for_pair` derives from ``unet_channels`` (given
        in ``fields`` or the default): attention at the deepest level only, attention heads of
        ``gcd(32, deepest width)`` channels, and the most group-norm groups (up to 32, MONAI's default) that divide
        every width. The command line and the bundle build their configs with ``for_pair``.

        Example:
            >>> DiffusionConfig.for_pair(pair, unet_channels=(16, 24), image_size=32).norm_num_groups  # doctest: +SKIP
            8
        """
        channels = as_tuple(fields.get("unet_channels", cls.unet_channels), 1, int)
        return {
            "attention_levels": (False,) * (len(channels) - 1) + (True,),
            "num_head_channels": math.gcd(32, channels[-1]),
            "norm_num_groups": next(g for g in range(32, 0, -1) if all(c % g == 0 for c in channels)),
        }


@dataclass
class DiffusionSampling(JsonConfig):
    """How a diffusion model makes pairs where a transform, the CLI or a bundle asks for one.

    Args:
        mode: ``"inpaint"`` (default: redraw the region of the incoming label, dilated by ``dilation``, inside the
            real image with RePaint, so a new structure and its mask appear in a real context; samples with an empty
            label pass through) or ``"sample"`` (a whole new pair of the training crop size).
        steps: denoising steps of one pass.
        sampler: ``"ddim"`` or ``"ddpm"`` for ``"sample"`` (inpainting always takes DDPM steps, as RePaint does).
        eta: DDIM's noise weight (0: deterministic given the start noise).
        jump_length: RePaint's jump back, in steps.
        resample: RePaint's resampling count per stretch (1: plain replacement, no harmonising jumps).
        dilation: pixels (voxels) the incoming label is dilated by to make the redrawn region, so the border of the
            structure is redrawn with it.
        context_margin: inpainting sees the region's bounding box widened by this many pixels on every side (the
            context the redrawn part must agree with), not the whole image, so its cost follows the region's size;
            ``None``: the whole image.
        style: a styling pass after inpainting (:func:`monai_singanseg.style.refine`): ``"none"``, ``"histogram"``
            (the context box's histogram made the real one's) or ``"vgg"`` (Gatys style transfer with the real
            context box as the style, 2D, local VGG weights); the image channels change inside the redrawn region
            only, the label never. Inpainting only.
        style_weights: VGG weights file for ``style="vgg"`` (default: ``$SINGANSEG_VGG_WEIGHTS``, then the torch hub
            cache).
        pool_redraws: with the transform's ``pool_size``, keep the redraws of each distinct input (the same image,
            label and region) and serve them like the pools of new pairs, made in batches. Pays only when the same
            inputs come back: a cached sample before the chain's random crops, with ``num_workers=0``, a
            ``ThreadDataLoader`` or persistent workers (a worker that restarts starts with empty pools). The last
            64 inputs are kept.

    Example:
        >>> DiffusionSampling(mode="sample", steps=20).validate().sampler
        'ddim'
    """

    mode: str = "inpaint"
    steps: int = 50
    sampler: str = "ddim"
    eta: float = 0.0
    jump_length: int = 10
    resample: int = REPAINT_RESAMPLE
    dilation: int = 4
    context_margin: int | None = 32
    style: str = "none"
    style_weights: str | None = None
    pool_redraws: bool = False

    def validate(self) -> DiffusionSampling:
        """Check every field; returns ``self``.

        Raises:
            ValueError: a field out of range, naming it.
        """
        if self.mode not in DIFFUSION_MODES:
            raise ValueError(f"mode must be one of {DIFFUSION_MODES}, got {self.mode!r}.")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}.")
        if min(self.steps, self.jump_length, self.resample) < 1:
            raise ValueError(f"steps, jump_length and resample must be >= 1, got {self.steps}, {self.jump_length}, "
                             f"{self.resample}.")
        if self.dilation < 0 or (self.context_margin is not None and self.context_margin < 0):
            raise ValueError(f"dilation and context_margin must be >= 0, got {self.dilation} and "
                             f"{self.context_margin}.")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {self.eta}.")
        if self.style not in STYLE_METHODS:
            raise ValueError(f"style must be one of {STYLE_METHODS}, got {self.style!r}.")
        if self.style != "none" and self.mode != "inpaint":
            raise ValueError(f"style {self.style!r} is a pass after inpainting (mode 'inpaint'); refine new pairs "
                             "with monai_singanseg.style.refine and a real image of your choice.")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffusionSampling:
        """Build and validate from a dict (a bundle's config; unknown keys are refused)."""
        return cls.from_flat_dict(data)

    def check_model(self, config: DiffusionConfig, name: str = "model") -> DiffusionSampling:
        """Refuse settings a model of ``config`` cannot sample with; returns ``self``.

        Raises:
            SinGANSegInputError: more denoising steps than the model's ``num_train_timesteps``, or a VGG styling
                pass for a 3D model, naming ``name``.
            VGGWeightsNotFoundError: ``style="vgg"`` and no VGG weights found (before any sampling is done).
        """
        from monai_singanseg.errors import SinGANSegInputError

        if self.steps > config.num_train_timesteps:
            raise SinGANSegInputError(f"{name}: {self.steps} denoising steps; this model was trained with "
                                      f"{config.num_train_timesteps} timesteps, so at most that many.")
        if self.style == "vgg":
            if config.spatial_dims != 2:
                raise SinGANSegInputError(f"{name}: the VGG styling pass works on 2D images; this model makes "
                                          f"{config.spatial_dims}D pairs. Use style 'histogram'.")
            from monai_singanseg.style.vgg import find_vgg_weights

            find_vgg_weights(self.style_weights)
        return self

    @classmethod
    def of(cls, value: DiffusionSampling | dict[str, Any] | None) -> DiffusionSampling:
        """``value`` as a checked :class:`DiffusionSampling` (``None``: the defaults)."""
        if value is None:
            return cls()
        return value.validate() if isinstance(value, DiffusionSampling) else cls.from_dict(dict(value))
