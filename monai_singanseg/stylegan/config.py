"""One typed configuration for a conditional StyleGAN2 of image + mask pairs and its training, with a JSON round trip."""

from __future__ import annotations

from dataclasses import dataclass

from monai_singanseg.config import AUGMENT_OPS, PairModelConfig, as_tuple

__all__ = ["AUGMENT_OPS", "DESIGNS", "StyleGANConfig"]

DESIGNS = ("joint", "mask_then_image")
"""The two designs of Vu, Tronchin, Nyholm and Löfstedt (2025): one generator of the stacked image + mask channels
(``joint``), or a mask generator followed by an image generator conditioned on the mask (``mask_then_image``)."""


@dataclass
class StyleGANConfig(PairModelConfig):
    """Everything that defines a StyleGAN2-style pair generator: data layout, networks and optimisation.

    The generator makes ``image_channels + mask_channels`` stacked channels in ``[-1, 1]`` (the stacked tensor the
    other generators make) at ``resolution``. Its synthesis network starts from a learned constant of
    ``resolution / 2 ** (len(widths) - 1)`` per side and doubles it at every level after the first.

    Args:
        spatial_dims: 2 for images, 3 for volumes.
        image_channels: channels of the image part (1 for MR/CT, 3 for RGB, several for stacked contrasts); >= 1.
        mask_channels: channels of the mask part (1 for a binary mask, K for a one-hot mask of K classes); >= 1.
        resolution: the training and sampling size, one number or one per spatial axis; each side a multiple of
            ``2 ** (len(widths) - 1)``, the start size (at least 2) times the doublings.
        latent_dim: size of the input noise ``z``.
        style_dim: size of the intermediate latent ``w`` (the styles are affine maps of it).
        mapping_layers: fully connected layers of the mapping network ``z -> w`` (8 in StyleGAN2; fewer suit small
            data).
        widths: feature maps per synthesis level, coarsest first; the critic uses them finest first.
        design: one of :data:`DESIGNS`.
        num_classes: class (or contrast/protocol) labels of the pairs, 0 for none; with K > 0 both networks are
            conditioned on a class index ``0..K-1`` per pair (an embedding joined to ``z``; a projection term in the
            critic).
        r1_gamma: weight of the R1 penalty ``gamma / 2 * E ||grad D(real)||^2`` on real pairs.
        r1_interval: lazy regularisation: R1 every this many steps, weighted by the interval (StyleGAN2's 16).
        augment: DiffAugment operations applied to every pair the critic sees (real and generated, differentiably),
            a subset of :data:`AUGMENT_OPS` (empty: none).
        flips: flip each training pair along the first spatial axis with probability 1/2 (image and mask alike;
            off for data with a handedness).
        lr: Adam learning rate of both networks (the mapping network's is ``lr * mapping_lr_mult``).
        mapping_lr_mult: learning-rate multiplier of the mapping network (StyleGAN's 0.01).
        batch_size: pairs per step.
        train_steps: optimisation steps (one critic and one generator update each).
        ema_decay: decay of the moving average of the generator's weights, the weights that sample (0: none),
            warmed up by step as ``min(ema_decay, (1 + k) / (10 + k))``.
        checkpoint_every: write the checkpoint every this many steps (and always at the end).
        seed: seed of the weight initialisation and of every random draw in training.

    Example:
        >>> StyleGANConfig(image_channels=1, resolution=32, widths=(32, 32, 16, 16)).start_size
        (4, 4)
    """

    spatial_dims: int = 2
    image_channels: int = 3
    mask_channels: int = 1
    resolution: tuple[int, ...] = (64, 64)
    latent_dim: int = 128
    style_dim: int = 128
    mapping_layers: int = 4
    widths: tuple[int, ...] = (128, 128, 128, 64, 32)
    design: str = "joint"
    num_classes: int = 0
    r1_gamma: float = 1.0
    r1_interval: int = 16
    augment: tuple[str, ...] = ("color", "translation", "cutout")
    flips: bool = True
    lr: float = 2e-3
    mapping_lr_mult: float = 0.01
    batch_size: int = 8
    train_steps: int = 5000
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        # JSON gives lists and a user may give one number: one canonical form (tuples), so configs compare equal
        self.resolution = as_tuple(self.resolution, self.spatial_dims, int)
        self.widths = as_tuple(self.widths, 1, int)
        self.augment = (self.augment,) if isinstance(self.augment, str) else tuple(str(a) for a in self.augment)

    @property
    def levels(self) -> int:
        """Synthesis levels (resolutions), the start size's included."""
        return len(self.widths)

    @property
    def start_size(self) -> tuple[int, ...]:
        """The learned constant's spatial size: ``resolution`` halved ``levels - 1`` times."""
        return tuple(s // 2 ** (self.levels - 1) for s in self.resolution)

    def validate(self) -> StyleGANConfig:
        """Check every field; returns ``self``.

        Raises:
            ValueError: a field out of range or fields that do not fit together, naming them.
        """
        self.check_layout("resolution")
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must list >= 1 positive feature-map counts, got {self.widths}.")
        multiple = 2 ** (self.levels - 1)
        if any(s % multiple or s // multiple < 2 for s in self.resolution):
            raise ValueError(
                f"resolution {self.resolution}: every side must be a multiple of {multiple} and at least "
                f"{2 * multiple}, as {self.levels} synthesis levels double a start size of >= 2 {self.levels - 1} "
                "times."
            )
        if min(self.latent_dim, self.style_dim, self.mapping_layers) < 1:
            raise ValueError("latent_dim, style_dim and mapping_layers must be >= 1.")
        if self.design not in DESIGNS:
            raise ValueError(f"design must be one of {DESIGNS}, got {self.design!r}.")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}.")
        if self.r1_gamma < 0 or self.r1_interval < 1:
            raise ValueError(f"need r1_gamma >= 0 and r1_interval >= 1, got {self.r1_gamma} and {self.r1_interval}.")
        unknown = [a for a in self.augment if a not in AUGMENT_OPS]
        if unknown or len(set(self.augment)) != len(self.augment):
            raise ValueError(f"augment must list distinct operations of {AUGMENT_OPS}, got {self.augment}.")
        if not self.lr > 0 or not self.mapping_lr_mult > 0:
            raise ValueError(f"lr and mapping_lr_mult must be > 0, got {self.lr} and {self.mapping_lr_mult}.")
        self.check_training_fields()
        return self
