"""monai-singanseg: SinGAN-Seg for MONAI, synthetic image + segmentation-mask pairs from one annotated image."""

from __future__ import annotations

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
