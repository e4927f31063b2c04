"""MONAI transforms: synthetic-pair augmentation (SinGAN-Seg or diffusion) and lesion harmonization, each as an array
transform and its dictionary wrapper; :class:`AugmentDraw` and :class:`HarmonizeDraw`, the recorded parameters of
one call, and :class:`SamplePool`, the augmentation's batched samples."""

from __future__ import annotations

from monai_singanseg.io import model_name
from monai_singanseg.transforms.array import SinGANSegAugment, SyntheticPairAugment
from monai_singanseg.transforms.dictionary import (
    SinGANSegAugmentD,
    SinGANSegAugmentd,
    SinGANSegAugmentDict,
    SinGANSegHarmonizeD,
    SinGANSegHarmonized,
    SinGANSegHarmonizeDict,
    SyntheticPairAugmentd,
)
from monai_singanseg.transforms.draw import AugmentDraw, HarmonizeDraw
from monai_singanseg.transforms.harmonize import SinGANSegHarmonize
from monai_singanseg.transforms.model_bank import ModelBank
from monai_singanseg.transforms.sample_pool import SamplePool

__all__ = ["AugmentDraw", "HarmonizeDraw", "ModelBank", "SamplePool", "SinGANSegAugment", "SinGANSegAugmentD", "SinGANSegAugmentDict",
           "SinGANSegAugmentd", "SinGANSegHarmonize", "SinGANSegHarmonizeD", "SinGANSegHarmonizeDict", "SinGANSegHarmonized",
           "SyntheticPairAugment", "SyntheticPairAugmentd", "model_name"]
