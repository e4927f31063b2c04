"""From a generator's raw sample to the transform's output pair: resize, label decoding, the incoming types."""

from __future__ import annotations

import torch
from monai.config import NdarrayOrTensor
from monai.utils import convert_to_dst_type

from monai_singanseg.generator_protocol import PairGenerator
from monai_singanseg.pyramid import resize

__all__ = ["finish", "to_output"]


def finish(model: PairGenerator, x: torch.Tensor, spatial: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw sample ``(1, C, *shape)`` in ``[-1, 1]`` -> image channels ``(C_img, *spatial)`` still in ``[-1, 1]`` and
    label indices ``(1, *spatial)``; the map to the output's units comes after."""
    n_img = model.config.image_channels
    resized = resize(x, spatial)[0]  # one resize of all channels
    # resizing the continuous mask channels before thresholding keeps outlines as smooth as the image's
    index = model.labels.indices(resized[n_img:], channel_dim=0).float()
    return resized[:n_img].clamp(-1.0, 1.0), index


def to_output(
    image: NdarrayOrTensor, label: NdarrayOrTensor, fake_image: torch.Tensor, index: torch.Tensor, top: float
) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
    """The synthetic image (output units) and label indices in the incoming image's and label's type, dtype and
    values (a binary label's foreground value ``top``; class indices for one-hot models)."""
    label_t = torch.as_tensor(label)
    fake_label = index * top if top > 0 else index
    out_image = convert_to_dst_type(fake_image.to(torch.as_tensor(image).device), image, dtype=image.dtype)[0]
    out_label = convert_to_dst_type(fake_label.to(label_t.device), label, dtype=label.dtype)[0]
    return out_image, out_label
