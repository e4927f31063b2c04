"""monai-singanseg: SinGAN-Seg for MONAI, synthetic image + segmentation-mask pairs from one annotated image.

The public names are imported on first use (PEP 562), so ``import monai_singanseg.cli`` (``singanseg --help``) does
not pay for torch and MONAI; ``from monai_singanseg import SinGANSegAugmentd`` works as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monai_singanseg.lazy import lazy_names

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from monai_singanseg.config import NetworkConfig, OptimConfig, PyramidConfig, SinGANSegConfig
    from monai_singanseg.errors import SinGANSegInputError
    from monai_singanseg.intensity import IntensityMapping, LabelEncoding
    from monai_singanseg.io import TrainingPair, load_training_pair, prepare_training_pair, read_image, write_image
    from monai_singanseg.networks import ScaleCritic, ScaleGenerator, SinGANSeg
    from monai_singanseg.training import SinGANSegTrainer
    from monai_singanseg.transforms import (
        ModelBank,
        SinGANSegAugment,
        SinGANSegAugmentd,
        SinGANSegHarmonize,
        SinGANSegHarmonized,
        SyntheticPairAugment,
        SyntheticPairAugmentd,
        model_name,
    )

__version__ = "0.1.0"

_SOURCES = {
    "monai_singanseg.config": ("NetworkConfig", "OptimConfig", "PyramidConfig", "SinGANSegConfig"),
    "monai_singanseg.errors": ("SinGANSegInputError",),
    "monai_singanseg.intensity": ("IntensityMapping", "LabelEncoding"),
    "monai_singanseg.io": ("TrainingPair", "load_training_pair", "prepare_training_pair", "read_image", "write_image"),
    "monai_singanseg.networks": ("ScaleCritic", "ScaleGenerator", "SinGANSeg"),
    "monai_singanseg.training": ("SinGANSegTrainer",),
    "monai_singanseg.transforms": ("ModelBank", "SinGANSegAugment", "SinGANSegAugmentd", "SinGANSegHarmonize",
                                   "SinGANSegHarmonized", "SyntheticPairAugment", "SyntheticPairAugmentd",
                                   "model_name"),
}

__all__ = [
    "IntensityMapping",
    "LabelEncoding",
    "ModelBank",
    "NetworkConfig",
    "OptimConfig",
    "PyramidConfig",
    "ScaleCritic",
    "ScaleGenerator",
    "SinGANSeg",
    "SinGANSegAugment",
    "SinGANSegAugmentd",
    "SinGANSegConfig",
    "SinGANSegHarmonize",
    "SinGANSegHarmonized",
    "SinGANSegInputError",
    "SinGANSegTrainer",
    "SyntheticPairAugment",
    "SyntheticPairAugmentd",
    "TrainingPair",
    "load_training_pair",
    "model_name",
    "prepare_training_pair",
    "read_image",
    "write_image",
]

__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
