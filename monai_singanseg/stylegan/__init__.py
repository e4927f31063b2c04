"""A third generator: a conditional StyleGAN2 of image + mask pairs (2D or 3D), trained on a small dataset.

Two designs (Vu, Tronchin, Nyholm and Löfstedt, arXiv 2503.00962): ``joint`` (one generator of the stacked image and
mask channels) and ``mask_then_image`` (a mask generator, then an image generator conditioned on the mask, which also
draws images for masks a user gives). Mapping network, modulated convolutions with weight demodulation, noise inputs,
lazy R1 and DiffAugment; the same stacked ``[-1, 1]`` tensors, intensity maps, label encodings and checkpoint envelope
as the other generators. See ``docs/stylegan.md``.

The names are imported on first use (PEP 562): the command line reads ``stylegan.config`` for its options without
importing torch and MONAI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monai_singanseg.lazy import lazy_names

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from monai_singanseg.stylegan.checkpoint_format import STYLEGAN_CHECKPOINT, StyleGANTrainingState
    from monai_singanseg.stylegan.config import AUGMENT_OPS, DESIGNS, StyleGANConfig
    from monai_singanseg.stylegan.many import train_stylegan_models
    from monai_singanseg.stylegan.model import PairStyleGAN, binarize_mask
    from monai_singanseg.stylegan.networks import Critic, StyleGenerator
    from monai_singanseg.stylegan.trainer import StyleGANTrainer, stack_pairs

_SOURCES = {  # submodule: its public names
    "checkpoint_format": ("STYLEGAN_CHECKPOINT", "StyleGANTrainingState"),
    "config": ("AUGMENT_OPS", "DESIGNS", "StyleGANConfig"),
    "many": ("train_stylegan_models",),
    "model": ("PairStyleGAN", "binarize_mask"),
    "networks": ("Critic", "StyleGenerator"),
    "trainer": ("StyleGANTrainer", "stack_pairs"),
}

__all__ = [
    "AUGMENT_OPS",
    "DESIGNS",
    "STYLEGAN_CHECKPOINT",
    "Critic",
    "PairStyleGAN",
    "StyleGANConfig",
    "StyleGANTrainer",
    "StyleGANTrainingState",
    "StyleGenerator",
    "binarize_mask",
    "stack_pairs",
    "train_stylegan_models",
]

__getattr__, __dir__ = lazy_names(__name__, _SOURCES, f"{__name__}.")
