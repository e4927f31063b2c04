"""Files of StyleGAN pairs: new pairs, or (design ``mask_then_image``) images drawn for mask files a user gives."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generation import write_generated
from monai_singanseg.io import read_mask
from monai_singanseg.stylegan.model import PairStyleGAN

__all__ = ["class_index", "read_condition_masks", "write_stylegan_samples"]


def class_index(model: PairStyleGAN, name: str) -> int:
    """The class index of ``name`` among the model's class names (``source["classes"]``, stored by training).

    Raises:
        SinGANSegInputError: the model has no classes, or none of that name (the names are listed).
    """
    names = list(model.source.get("classes") or [])
    if model.config.num_classes == 0 or name not in names:
        known = f"its classes are {', '.join(names)}" if names else "it was trained without named classes"
        raise SinGANSegInputError(f"class {name!r}: {known}.")
    return names.index(name)


def read_condition_masks(model: PairStyleGAN, paths: Sequence[str | os.PathLike]) -> torch.Tensor:
    """Mask files as the mask channels ``(len(paths), M, *resolution)`` in ``{-1, 1}`` that ``model`` draws images
    for: a binary model takes any 0 / nonzero mask, a multi-class one class indices ``0..K-1``; each is resized to
    the model's resolution (nearest, so classes stay classes).

    Raises:
        SinGANSegInputError: naming the file: unreadable, not 2D/3D as the model, not binary, or class indices out of
            range.
    """
    cfg, masks = model.config, []
    for path in paths:
        label = read_mask(path, binary=not model.labels.one_hot, nonempty=False)
        if label.ndim - 1 != cfg.spatial_dims or label.shape[0] != 1:
            raise SinGANSegInputError(f"{path}: a mask of shape {tuple(label.shape)}; this {cfg.spatial_dims}D model "
                                      f"takes one-channel {cfg.spatial_dims}D masks.")
        if model.labels.one_hot and (bool((label < 0).any()) or bool((label >= cfg.mask_channels).any())
                                     or bool((label != label.round()).any())):
            raise SinGANSegInputError(f"{path}: this model's masks hold class indices 0..{cfg.mask_channels - 1}.")
        index = F.interpolate(label[None], size=cfg.resolution, mode="nearest")[0]
        masks.append(model.labels.encode_indices(index))
    return torch.stack(masks)


def write_stylegan_samples(
    model: PairStyleGAN,
    out: str | os.PathLike,
    num: int,
    seed: int = 0,
    masks: torch.Tensor | None = None,
    truncation: float = 1.0,
    classes: int | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Write ``num`` pairs of ``model`` to ``out`` (files, ``preview.png``; see
    :func:`~monai_singanseg.generation.write_generated`, whose ``fmt``, ``overwrite``, ``batch_size`` and ``name``
    ``options`` takes).

    Args:
        model: the StyleGAN model.
        out: the output folder.
        num: pairs to write.
        seed: seed of every draw.
        masks: ``(K, M, *resolution)`` mask channels (:func:`read_condition_masks`) to draw images for, in turn
            (pair ``i`` has mask ``i mod K``; ``mask_then_image`` models only); ``None``: new masks too.
        truncation: ``psi`` of the truncation trick (1: plain sampling).
        classes: the class index of every pair (:func:`class_index`), for a model with classes (default: drawn).

    Returns:
        One datalist item per pair: ``{"image": path or [paths], "label": path}``.

    Raises:
        SinGANSegInputError: masks for a ``joint`` model, a truncation outside ``[0, 1]``, or a bad output.
    """
    if not 0.0 <= truncation <= 1.0:
        raise SinGANSegInputError(f"truncation must lie in [0, 1], got {truncation}.")
    if masks is not None and model.config.design != "mask_then_image":
        raise SinGANSegInputError(f"{options.get('name', 'model')}: draws image and mask jointly (design 'joint'); "
                                  "images for given masks need a 'mask_then_image' model.")
    done = 0

    def draw(count: int, generator: torch.Generator) -> torch.Tensor:
        nonlocal done
        if masks is None:
            return model.generate(count, generator=generator, truncation=truncation, classes=classes)
        chosen = masks[[(done + i) % masks.shape[0] for i in range(count)]]
        done += count
        return model.generate_for_masks(chosen, generator=generator, truncation=truncation, classes=classes)

    title = f"{options.get('name', 'model')}: StyleGAN ({model.config.design})"
    return write_generated(model, out, num, draw, seed=seed, title=title, **options)
