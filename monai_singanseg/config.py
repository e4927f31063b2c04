"""One typed configuration for a SinGAN-Seg model and its training, with a JSON round trip.

The defaults follow the SinGAN / SinGAN-Seg reference recipe (Shaham et al., ICCV 2019; Thambawita et al., PLOS ONE
2022); see ``docs/design.md`` for where this project departs from it and why.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CRITICS", "PADDINGS", "SCHEDULES", "NetworkConfig", "OptimConfig", "PyramidConfig", "SinGANSegConfig"]

# the choices and defaults the library and the command line share (this module is light, so `singanseg --help`
# can build its options from here without importing torch or MONAI)
NORMS = ("batch", "instance", "none")
ACTS = ("leakyrelu", "elu", "relu")
PADDINGS = ("zeros", "reflect", "replicate")
CRITICS = ("patch", "content_layout")
AUGMENT_OPS = ("color", "translation", "cutout")
"""DiffAugment's operations (Zhao et al. 2020; :mod:`monai_singanseg.training.augment`): ``color`` changes the image
channels only; ``translation`` and ``cutout`` move or blank image and mask channels alike."""
OUTPUT_FORMATS = ("png", "nii.gz")
STYLE_METHODS = ("none", "histogram", "vgg")
STYLE_CONTENT_STYLE = (1.0, 1000.0)  # Gatys et al.'s content:style loss weights
STYLE_STEPS = 100  # L-BFGS iterations per sample

SCHEDULES: dict[str, dict[str, dict[str, Any]]] = {
    # the SinGAN / SinGAN-Seg reference recipe: the dataclass defaults
    "faithful": {},
    # fewer, cheaper iterations: one critic and one generator step, the gradient penalty every 4th critic step
    # (weighted x4), and a per-scale stop once the reconstruction loss has stopped falling; the four coarsest scales,
    # which lay out the image and cost little on a CPU, run 2000 iterations without the stop. Chosen by
    # benchmarks/bench_time_to_quality.py (docs/benchmarks.md, "Time to quality")
    "fast": {
        "optim": {"iters_per_scale": 600, "critic_steps": 1, "generator_steps": 1, "gp_every": 4,
                  "plateau_window": 50, "plateau_tolerance": 0.02,
                  "coarse_scales": 4, "coarse": {"iters_per_scale": 2000, "plateau_window": 0}},
    },
}
"""Training schedules by name: overrides of the dataclass defaults, per sub-config."""


class JsonConfig:
    """JSON round trip shared by the typed configs (dataclasses that define ``from_dict``)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_flat_dict(cls, data: dict[str, Any]):
        """Build and validate a config without nested configs from ``data``, refusing unknown keys (a typo in a bundle
        or a JSON file must not pass silently)."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {unknown}.")
        return cls(**data).validate()


def as_tuple(value: Any, length: int, kind: type) -> tuple:
    """``value`` as a tuple: one number repeated ``length`` times, or the given sequence (a JSON list)."""
    if isinstance(value, (int, float, bool)):
        return (kind(value),) * length
    return tuple(kind(v) for v in value)


class PairModelConfig(JsonConfig):
    """What the configs of the learned pair generators (diffusion, StyleGAN2) share: a flat JSON round trip, the
    checks of the training-length fields and a constructor from a training pair's layout.

    A subclass is a dataclass with ``spatial_dims``, ``image_channels``, ``mask_channels``, ``ema_decay``,
    ``train_steps``, ``batch_size`` and ``checkpoint_every`` fields and a ``validate()`` returning ``self``.
    """

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build and validate a config from :meth:`to_dict`'s output (unknown keys are refused)."""
        return cls.from_flat_dict(data)

    @classmethod
    def derived_fields(cls, fields: dict[str, Any]) -> dict[str, Any]:
        """Defaults :meth:`for_pair` derives from the ``fields`` given (none here; a subclass may add some)."""
        return {}

    @classmethod
    def for_pair(cls, pair: Any, **fields: Any):
        """A checked config for pairs shaped like ``pair`` (a :class:`~monai_singanseg.io.TrainingPair`): the layout
        (``spatial_dims``, ``image_channels``, ``mask_channels``) from the pair, defaults derived from ``fields``
        (:meth:`derived_fields`), the rest from ``fields``."""
        layout = {"spatial_dims": pair.spatial_dims, "image_channels": pair.image_channels,
                  "mask_channels": pair.labels.channels}
        return cls(**{**cls.derived_fields(fields), **layout, **fields}).validate()

    @property
    def channels(self) -> int:
        """Channels of the stacked tensor (image + mask)."""
        return self.image_channels + self.mask_channels

    def check_layout(self, size_field: str, min_image_channels: int = 1) -> None:
        """``ValueError`` unless ``spatial_dims`` is 2 or 3, ``image_channels >= min_image_channels``,
        ``mask_channels >= 1`` and the size field ``size_field`` has one side per spatial axis."""
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}.")
        if self.image_channels < min_image_channels or self.mask_channels < 1:
            need = ("image_channels and mask_channels must be >= 1" if min_image_channels == 1 else
                    f"image_channels must be >= {min_image_channels} and mask_channels >= 1")
            raise ValueError(f"{need}, got {self.image_channels} and {self.mask_channels}.")
        size = getattr(self, size_field)
        if len(size) != self.spatial_dims:
            raise ValueError(f"{size_field} {size} needs {self.spatial_dims} sides (spatial_dims).")

    def check_training_fields(self) -> None:
        """``ValueError`` unless ``ema_decay`` lies in ``[0, 1)`` and ``train_steps``, ``batch_size`` and
        ``checkpoint_every`` are >= 1."""
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}.")
        if min(self.train_steps, self.batch_size, self.checkpoint_every) < 1:
            raise ValueError("train_steps, batch_size and checkpoint_every must be >= 1.")


def _check_integer(name: str, value: Any) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is an integer (``True`` is not one here)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}.")  # noqa: TRY004


@dataclass
class PyramidConfig:
    """Sizes of the image pyramid.

    Args:
        min_size: shortest side of the coarsest scale, in pixels/voxels.
        max_size: longest side of the finest scale; larger inputs are downsized first.
        scale_factor: wanted ratio between neighbouring scales; recomputed per image so that the coarsest
            shortest side is exactly ``min_size`` (as the reference code does).
    """

    min_size: int = 25
    max_size: int = 250
    scale_factor: float = 0.75

    def validate(self) -> None:
        if self.min_size < 11:
            # five unpadded 3-wide convolutions need the padded input to stay positive and meaningful
            raise ValueError(f"min_size must be >= 11, got {self.min_size}.")
        if self.max_size < self.min_size:
            raise ValueError(f"max_size ({self.max_size}) must be >= min_size ({self.min_size}).")
        if not 0.0 < self.scale_factor < 1.0:
            raise ValueError(f"scale_factor must lie in (0, 1), got {self.scale_factor}.")


@dataclass
class NetworkConfig:
    """Per-scale generator and critic architecture.

    Args:
        num_layers: convolutions per network (head + body + tail), all ``kernel_size`` wide, stride 1, no padding.
        kernel_size: convolution width.
        base_channels: feature maps at the coarsest scales; doubled every ``channels_double_every`` scales.
        max_channels: cap on the feature maps.
        channels_double_every: how many scales share one width.
        norm: ``"batch"`` (reference), ``"instance"`` or ``"none"``.
        act: ``"leakyrelu"`` (reference, slope 0.2), ``"elu"`` or ``"relu"``.
        padding: how the generator pads ``noise + previous`` before its unpadded convolutions: ``"zeros"``
            (reference) gives every border a constant the generator can key on, which it learns as a dark frame and
            as the same content pinned in the corners (docs/quality.md); ``"reflect"`` and ``"replicate"`` continue
            the image instead. The critic is never padded.
        critic: ``"patch"`` (reference): a Markovian critic, one score per receptive field (11 pixels with the
            defaults), which judges local texture but not where things are. ``"content_layout"`` adds two branches
            to the critic of the ``critic_scales`` coarsest scales, after One-Shot GAN (Sushko et al., CVPR 2021): a
            content branch that scores the critic's features averaged over the whole image (what is there, not
            where) and a layout branch that scores a one-channel map of them with a receptive field of about the
            coarsest scale (where things are, not what they look like). An option, not measured downstream
            (docs/quality.md, "Layouts").
        critic_scales: how many of the coarsest scales get the content and layout branches (with
            ``critic="content_layout"``) and the ``critic_augment`` operations (with either critic). The layout is
            decided there: the coarsest scales are 25-42 pixels with the defaults at any ``max_size``, so the
            branches judge the whole image, while finer scales add detail to a layout already drawn.
        critic_augment: DiffAugment operations (:data:`AUGMENT_OPS`) through which the critics of the
            ``critic_scales`` coarsest scales see every input, real and generated alike (their own random draws per
            model; the generator's gradient flows through them). There a critic sees the one real image whole, and a
            whole-image branch (``critic="content_layout"``) can learn it by heart; One-Shot GAN augments its
            critic's inputs for this reason. Empty (the default): none, the reference. With the content and layout
            critic and ``("translation", "cutout")`` the nuclei crop's samples vary more at a higher foreground error;
            an option, not measured downstream (docs/quality.md, "Layouts").
    """

    num_layers: int = 5
    kernel_size: int = 3
    base_channels: int = 32
    max_channels: int = 128
    channels_double_every: int = 4
    norm: str = "batch"
    act: str = "leakyrelu"
    padding: str = "zeros"
    critic: str = "patch"
    critic_scales: int = 3
    critic_augment: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # JSON gives a list, a bundle override may give one name
        ops = self.critic_augment
        if isinstance(ops, (str, list)):  # validate() names anything else
            self.critic_augment = (ops,) if isinstance(ops, str) else tuple(ops)

    def validate(self) -> None:
        if self.critic not in CRITICS:
            raise ValueError(f"critic must be one of {CRITICS}, got {self.critic!r}.")
        ops = self.critic_augment
        if not isinstance(ops, tuple) or any(op not in AUGMENT_OPS for op in ops) or len(set(ops)) != len(ops):
            raise ValueError(f"critic_augment must be a tuple of distinct operations of {AUGMENT_OPS}, "
                             f"got {ops!r}.")
        _check_integer("critic_scales", self.critic_scales)
        if self.critic_scales < 1:
            raise ValueError(f"critic_scales must be >= 1, got {self.critic_scales}.")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}.")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}.")
        if self.act not in ACTS:
            raise ValueError(f"act must be one of {ACTS}, got {self.act!r}.")
        if self.num_layers < 3 or self.kernel_size % 2 == 0:
            raise ValueError("num_layers must be >= 3 and kernel_size odd.")
        if self.base_channels < 1 or self.max_channels < 1 or self.channels_double_every < 1:
            raise ValueError(f"base_channels, max_channels and channels_double_every must be >= 1, got "
                             f"{self.base_channels}, {self.max_channels} and {self.channels_double_every}.")

    def channels_at(self, scale: int) -> int:
        """Feature maps of the networks at pyramid level ``scale`` (0 = coarsest)."""
        return min(self.base_channels * 2 ** (scale // self.channels_double_every), self.max_channels)

    @property
    def receptive_pad(self) -> int:
        """Padding per side that keeps the output the size of the input."""
        return self.num_layers * (self.kernel_size - 1) // 2


@dataclass
class OptimConfig:
    """Optimisation of every scale (WGAN-GP + reconstruction).

    Args:
        iters_per_scale: iterations per scale (reference: 2000).
        lr_g: generator learning rate. lr_d: critic learning rate.
        betas: Adam betas.
        lr_decay_at: fraction of ``iters_per_scale`` after which both learning rates are multiplied by ``lr_gamma``.
        critic_steps: critic updates per iteration. generator_steps: generator updates per iteration.
        gp_weight: gradient-penalty weight (lambda). rec_weight: reconstruction weight (alpha).
        noise_amp_init: amplitude factor times RMSE(real, upsampled reconstruction) above the coarsest scale.
        gp_every: compute the gradient penalty on every ``gp_every``-th critic step only, weighted by ``gp_every``
            (a lazy penalty, as StyleGAN2's lazy regularisation; 1 = every step, the reference).
        plateau_window: when > 0, a scale ends early once the mean reconstruction loss of the last
            ``plateau_window`` iterations fell by less than ``plateau_tolerance`` (relative) against the window
            before: the learning rates are decayed then (if not yet), and the scale stops at the next plateau.
            0 = always ``iters_per_scale`` iterations (the reference).
        plateau_tolerance: relative fall of the reconstruction loss below which a window counts as a plateau.
        widen_from_previous: at a scale whose networks are wider than the previous scale's (every
            ``channels_double_every`` scales), start them from the previous scale's networks embedded in their first
            channels (:func:`~monai_singanseg.networks.widen_state`: the same function at the first step), as the
            scales of equal width do, instead of from a new random initialisation (the reference).
        concurrent_scales: the last ``concurrent_scales`` trained scales keep training with the current one, the
            scale ``d`` below at ``concurrent_lr_scale ** d`` times the learning rates (ConSinGAN, Hinz et al., WACV
            2021, trains three stages at a time at 0.1). The losses reach them through their outputs, upsampled; their
            norms keep the statistics they ended with, as in sampling. 0 = a trained scale is frozen (the reference).
        concurrent_lr_scale: learning-rate factor per scale below the current one, in ``(0, 1]``.
        coarse_scales: the first (coarsest) ``coarse_scales`` scales, never the finest, train with ``coarse``
            applied over these values. They lay out the whole image (docs/benchmarks.md, "Where the fast schedule
            lost quality") and, on a CPU, an iteration there costs a few percent of the finest scale's, so a fast
            schedule can afford longer training there. 0 = every scale alike (the reference).
        coarse: overrides of the fields above for the coarse scales (``{"iters_per_scale": 2000, ...}``); no effect
            while ``coarse_scales`` is 0.
        crop_size: when > 0, a scale larger than ``crop_size`` along an axis trains on random windows of
            ``crop_size`` pixels along it, one window per update (the critic, the adversarial and the reconstruction
            loss see the window; the generator sees it with its padding's worth of context around it, so its output
            there is exactly what it gives on the whole image). The fine scales learn local texture and cost the
            most, so a model at the image's own size costs about what a model of ``crop_size`` pixels costs; the
            coarser scales, which lay out the image, still see all of it. 0 = whole images (the reference).
        schedule: the name of the :data:`SCHEDULES` entry these values came from (provenance only).
    """

    iters_per_scale: int = 2000
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_decay_at: float = 0.8
    lr_gamma: float = 0.1
    critic_steps: int = 3
    generator_steps: int = 3
    gp_weight: float = 0.1
    rec_weight: float = 10.0
    noise_amp_init: float = 0.1
    gp_every: int = 1
    plateau_window: int = 0
    plateau_tolerance: float = 0.02
    widen_from_previous: bool = False
    concurrent_scales: int = 0
    concurrent_lr_scale: float = 0.1
    coarse_scales: int = 0
    coarse: dict[str, Any] = field(default_factory=dict)
    crop_size: int = 0
    schedule: str = "faithful"

    def __post_init__(self) -> None:
        # JSON gives lists: the betas are a tuple, here and in the coarse scales' overrides
        self.betas = tuple(self.betas)
        if isinstance(self.coarse, dict) and "betas" in self.coarse:
            self.coarse = {**self.coarse, "betas": tuple(self.coarse["betas"])}

    def validate(self) -> None:
        # every config error is a ValueError, which the command line turns into one line naming the option; the
        # types first, so a string from a bundle override is named rather than failing a comparison
        for name in ("iters_per_scale", "critic_steps", "generator_steps", "gp_every", "plateau_window",
                     "concurrent_scales", "coarse_scales", "crop_size"):
            _check_integer(name, getattr(self, name))
        if min(self.iters_per_scale, self.critic_steps, self.generator_steps, self.gp_every) < 1:
            raise ValueError("iters_per_scale, critic_steps, generator_steps and gp_every must be >= 1.")
        if self.plateau_window < 0 or not self.plateau_tolerance >= 0:
            raise ValueError("plateau_window and plateau_tolerance must be >= 0.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {tuple(SCHEDULES)}, got {self.schedule!r}.")
        if not isinstance(self.widen_from_previous, bool):
            flag = self.widen_from_previous
            raise ValueError(f"widen_from_previous must be true or false, got {flag!r}.")  # noqa: TRY004
        if self.coarse_scales < 0 or self.concurrent_scales < 0:
            raise ValueError(f"coarse_scales and concurrent_scales must be >= 0, got {self.coarse_scales} and "
                             f"{self.concurrent_scales}.")
        if isinstance(self.rec_weight, bool) or not isinstance(self.rec_weight, (int, float)) or self.rec_weight < 0:
            raise ValueError(f"rec_weight must be a number >= 0, got {self.rec_weight!r}.")
        if self.crop_size != 0 and self.crop_size < 16:
            # the critic's receptive field is 11 pixels: a smaller window leaves it almost nothing to compare
            raise ValueError(f"crop_size must be 0 (whole images) or >= 16, got {self.crop_size}.")
        if self.crop_size and self.concurrent_scales:
            raise ValueError("crop_size and concurrent_scales cannot be combined: the coarser scales trained along "
                             "would see only the window.")
        scale = self.concurrent_lr_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
            raise ValueError(f"concurrent_lr_scale must be in (0, 1], got {self.concurrent_lr_scale!r}.")
        if not isinstance(self.coarse, dict):
            raise ValueError(f"coarse must be a dict of overrides, got {self.coarse!r}.")  # noqa: TRY004
        allowed = {f.name for f in dataclasses.fields(self)} - {"coarse", "coarse_scales", "schedule"}
        unknown = sorted(set(self.coarse) - allowed)
        if unknown:
            raise ValueError(f"coarse may override {sorted(allowed)}, not {unknown}.")
        if self.coarse:
            try:
                self.coarse_recipe()  # the coarse recipe must be valid too
            except (TypeError, ValueError) as error:
                raise ValueError(f"the coarse scales' recipe {self.coarse}: {error}") from error

    def coarse_recipe(self) -> OptimConfig:
        """The recipe of a coarse scale: ``coarse`` applied over these values."""
        recipe = OptimConfig(**{**dataclasses.asdict(self), **self.coarse, "coarse": {}, "coarse_scales": 0})
        recipe.validate()
        return recipe

    def with_fine_rec_weight(self, weight: float) -> OptimConfig:
        """These settings with the reconstruction weight ``weight`` at the scales that are not coarse (every scale
        when there are no coarse overrides); the coarse scales keep their own, since they lay out the image.

        The fine scales of the fast schedule are near-deterministic (their noise amplitude is a few thousandths), so
        what they add is mostly the detail the reconstruction loss teaches them; a larger weight there keeps more of
        the real image's fine detail (docs/quality.md, "Blur: where the fine detail goes").
        """
        coarse = dict(self.coarse)
        if self.coarse and self.coarse_scales:
            coarse.setdefault("rec_weight", self.rec_weight)
        recipe = dataclasses.replace(self, rec_weight=float(weight), coarse=coarse)
        recipe.validate()
        return recipe

    def at_scale(self, scale: int, num_scales: int) -> OptimConfig:
        """The recipe of pyramid level ``scale`` (0 = coarsest) of ``num_scales``; the finest is never coarse (it
        is where the time goes, and a small pyramid has few scales)."""
        coarse = scale < min(self.coarse_scales, num_scales - 1)
        return self.coarse_recipe() if self.coarse and coarse else self


@dataclass
class SinGANSegConfig(JsonConfig):
    """Everything that defines a SinGAN-Seg model: data layout, pyramid, networks and optimisation.

    Args:
        spatial_dims: 2 for images, 3 for volumes.
        image_channels: channels of the image part (1 for MR/CT, 3 for RGB, several for stacked contrasts).
        mask_channels: channels of the mask part (1 for a binary mask, K for a one-hot mask of K classes).
        seed: seed of every random draw in training.
    """

    spatial_dims: int = 2
    image_channels: int = 3
    mask_channels: int = 1
    seed: int = 0
    pyramid: PyramidConfig = field(default_factory=PyramidConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    @property
    def channels(self) -> int:
        """Channels of the stacked training tensor (image + mask)."""
        return self.image_channels + self.mask_channels

    def validate(self) -> SinGANSegConfig:
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}.")
        if self.image_channels < 0 or self.mask_channels < 0 or self.channels < 1:
            raise ValueError("image_channels and mask_channels must be >= 0 and not both 0.")
        self.pyramid.validate()
        self.network.validate()
        self.optim.validate()
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SinGANSegConfig:
        data = dict(data)
        return cls(
            pyramid=PyramidConfig(**data.pop("pyramid", {})),
            network=NetworkConfig(**data.pop("network", {})),
            optim=OptimConfig(**data.pop("optim", {})),
            **data,
        ).validate()

    @classmethod
    def for_schedule(
        cls, schedule: str = "faithful", iters_per_scale: int | None = None, **fields: Any
    ) -> SinGANSegConfig:
        """A config with the :data:`SCHEDULES` entry ``schedule`` applied over the defaults.

        Args:
            schedule: a key of :data:`SCHEDULES`.
            iters_per_scale: overrides the schedule's iterations per scale (``None``: the schedule's); the coarse
                scales' iterations (``OptimConfig.coarse``) change in proportion.
            fields: other :class:`SinGANSegConfig` fields (``spatial_dims``, ``pyramid``, ...).

        Example:
            >>> SinGANSegConfig.for_schedule("fast", image_channels=1).optim.critic_steps
            1
        """
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {tuple(SCHEDULES)}, got {schedule!r}.")
        preset = copy.deepcopy(SCHEDULES[schedule])  # the config owns its values: the preset stays as it is
        optim = {**preset.get("optim", {}), "schedule": schedule}
        if iters_per_scale is not None:
            _check_integer("iters_per_scale", iters_per_scale)
            # the coarse scales keep their share: a shorter run is shorter at every scale
            coarse = optim.get("coarse", {})
            if "iters_per_scale" in coarse:
                ratio = iters_per_scale / optim.get("iters_per_scale", OptimConfig.iters_per_scale)
                coarse["iters_per_scale"] = max(1, round(coarse["iters_per_scale"] * ratio))
            optim.update(iters_per_scale=iters_per_scale, coarse=coarse)
        fields.setdefault("pyramid", PyramidConfig(**preset.get("pyramid", {})))
        fields.setdefault("network", NetworkConfig(**preset.get("network", {})))
        return cls(optim=OptimConfig(**optim), **fields).validate()
