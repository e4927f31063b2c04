"""The checks of an incoming (image, label) pair against a model, and the warnings about the chain around it.

Errors name the sample and say what to add to the chain; warnings come once per transform (a property of the chain,
which the first sample shows).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from monai.config import NdarrayOrTensor

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generator_protocol import PairGenerator
from monai_singanseg.intensity import IntensityMapping
from monai_singanseg.transforms.geometry import field_of_view
from monai_singanseg.transforms.model_choice import sample_name_or_none

__all__ = ["PairChecks"]


def _plain(value: NdarrayOrTensor) -> torch.Tensor:
    """A plain tensor view of ``value`` (MetaTensor ops are slow)."""
    return torch.as_tensor(value).as_subclass(torch.Tensor)


class PairChecks:
    """The input checks of :class:`~monai_singanseg.transforms.SinGANSegAugment`, and its once-only warnings.

    Args:
        match_intensity: the transform maps onto the incoming image's intensities (so it reads them: they must be
            finite), instead of returning the training image's units (checked against the incoming ones).
    """

    def __init__(self, match_intensity: bool) -> None:
        self.match_intensity = match_intensity
        self.units_checked = False
        self.view_checked = False

    @staticmethod
    def channels(image: NdarrayOrTensor, config: Any, where: Any) -> None:
        """The image must have the model's image channels and spatial dimensions (``where``: the model's name)."""
        if image.shape[0] == config.image_channels and len(image.shape) - 1 == config.spatial_dims:
            return
        if len(image.shape) == config.spatial_dims:  # "the data has 256 channels" hid the missing channel axis
            raise SinGANSegInputError(
                f"{where}: the image of shape {tuple(image.shape)} has no channel axis ({config.spatial_dims}D model "
                f"of {config.image_channels} image channel(s) wants (C, *spatial)); add EnsureChannelFirstd (or "
                "LoadImaged(..., ensure_channel_first=True)) before this transform, for the image and the label."
            )
        if image.shape[0] != config.image_channels:
            raise SinGANSegInputError(
                f"{where}: model makes {config.image_channels} image channel(s), the data has {image.shape[0]}."
            )
        raise SinGANSegInputError(f"{where}: {config.spatial_dims}D model, {len(image.shape) - 1}D data.")

    def pair(self, image: NdarrayOrTensor, label: NdarrayOrTensor, name: str | None) -> None:
        """The label must be one channel of the image's spatial size (the pair is replaced as a whole), and what the
        transform reads must be finite: a NaN would spread to the whole synthetic image through the intensity map."""
        sample = sample_name_or_none(name) or "sample"
        wanted = (1, *image.shape[1:])
        if tuple(label.shape) != wanted:
            hint = ("add EnsureChannelFirstd for the label too" if tuple(label.shape) == wanted[1:] else
                    "class indices for a multi-class model: AsDiscreted(argmax=True)")
            raise SinGANSegInputError(
                f"{sample}: label of shape {tuple(label.shape)} does not fit the image {tuple(image.shape)}; the "
                f"transform takes a one-channel label of the image's spatial size, {wanted} ({hint})."
            )
        checked = {"label": label, "image": image} if self.match_intensity else {"label": label}
        for what, value in checked.items():
            if not bool(torch.isfinite(_plain(value)).all()):
                raise SinGANSegInputError(f"{sample}: the {what} holds NaN or infinite values.")

    @staticmethod
    def label_top(model: PairGenerator, where: Any, label: NdarrayOrTensor, name: str | None) -> float:
        """The foreground value of a binary ``label`` (1 after AsDiscreted, 255 from a PNG), checked binary; 0 for the
        class indices a one-hot model takes."""
        if model.labels.one_hot:
            return 0.0
        plain = _plain(label)
        top = float(plain.max()) if plain.numel() else 0.0
        if bool(((plain != 0) & (plain != top)).any()):  # e.g. 0/0.5/1 from an interpolating resize
            values = torch.unique(plain).tolist()
            shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
            raise SinGANSegInputError(
                f"{sample_name_or_none(name) or 'sample'}: the label is not binary (values {shown}); the model {where} "
                "makes binary masks. Threshold it first (AsDiscreted) or resize labels with mode='nearest'."
            )
        return top

    @staticmethod
    def class_indices(index: torch.Tensor, classes: int) -> None:
        """A multi-class label must hold the class indices ``0..classes - 1``."""
        if bool(((index < 0) | (index >= classes) | (index != index.round())).any()):
            raise SinGANSegInputError(
                f"the label holds values other than the class indices 0..{classes - 1} of this "
                f"{classes}-class model."
            )

    def view(self, model: PairGenerator, affine: Any, spatial: tuple[int, ...], change: np.ndarray | None,
             where: Any, stacklevel: int) -> None:
        """Warn once when the incoming image covers much less than the model's training image (a crop before the
        transform): the synthetic pair is the whole training field of view resized into it, its structures shrunk.
        Models that draw at any size (at the training resolution) are exempt."""
        source = model.source
        if affine is None or self.view_checked or "shape" not in source or model.draws_at_any_size:
            return
        self.view_checked = True
        trained = field_of_view(source["affine"], source["shape"])
        if change is not None:
            trained = trained[np.argsort(change[:, 0])]  # in the incoming image's axis order
        ratio = float(np.min(field_of_view(affine, spatial) / trained))
        if ratio < 0.5:
            warnings.warn(
                f"SinGANSegAugment: the incoming image covers {ratio:.2g} of the field of view of the training image "
                f"of {where} along an axis; the synthetic pair is that whole view resized into the incoming shape, so "
                f"its structures come out {1 / ratio:.1f}x smaller. Crop after this transform, not before.",
                stacklevel=stacklevel + 1,
            )

    def units(self, model: PairGenerator, image: NdarrayOrTensor, stacklevel: int) -> None:
        """Warn once when the incoming image's intensity range and the training image's share less than half of their
        union, unless the incoming range is a tenth or more of the training range and inside it, as a crop's is:
        synthetic images come back in the training image's units."""
        if self.units_checked:
            return
        self.units_checked = True
        low, high = model.intensity.lower, model.intensity.upper
        seen = IntensityMapping.fit(_plain(image).float())
        for lo, hi, s_lo, s_hi in zip(low, high, seen.lower, seen.upper):
            slack = 0.05 * (hi - lo)
            if lo - slack <= s_lo and s_hi <= hi + slack and s_hi - s_lo >= 0.1 * (hi - lo):
                continue  # the same units, part of the range: a crop or a darker slice
            overlap = max(0.0, min(hi, s_hi) - max(lo, s_lo))
            union = max(hi, s_hi) - min(lo, s_lo)
            if union > 0 and overlap < 0.5 * union:  # e.g. a 0..1 chain and a 0..255 training image
                warnings.warn(
                    f"SinGANSegAugment: the incoming image spans {s_lo:.3g}..{s_hi:.3g} but the model's training "
                    f"image spanned {lo:.3g}..{hi:.3g}; synthetic images come back in the training image's units. "
                    "Pass match_intensity=True (or place the transform before the intensity normalisation).",
                    stacklevel=stacklevel + 1,
                )
                return
