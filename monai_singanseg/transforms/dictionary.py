"""Dictionary transform: SinGAN-Seg augmentation for MONAI dictionary pipelines."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Hashable, Mapping, Sequence
from copy import deepcopy
from typing import Any, ClassVar

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type

from monai_singanseg.diffusion.config import DiffusionSampling
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.io import model_name
from monai_singanseg.transforms.array import SinGANSegAugment
from monai_singanseg.transforms.draw import AugmentDraw, HarmonizeDraw
from monai_singanseg.transforms.harmonize import SinGANSegHarmonize
from monai_singanseg.transforms.model_bank import ModelBank, ModelSource

__all__ = ["SinGANSegAugmentD", "SinGANSegAugmentDict", "SinGANSegAugmentd", "SinGANSegHarmonizeD",
           "SinGANSegHarmonizeDict", "SinGANSegHarmonized", "SyntheticPairAugmentd"]


def sample_name(data: Mapping[Hashable, Any], key: Hashable) -> str | None:
    """The name of the sample in ``data[key]``: a path string, or a MetaTensor's ``filename_or_obj``; ``None`` when
    the value names nothing (a plain array or tensor, whose printout is no name)."""
    if key not in data:
        raise SinGANSegInputError(f"missing key {key!r} that names the sample (model_key).")
    value = data[key]
    if isinstance(value, MetaTensor):
        value = value.meta.get("filename_or_obj")
    return model_name(value) if isinstance(value, (str, os.PathLike)) and str(value) else None


class SinGANSegAugmentd(RandomizableTransform, MapTransform):
    """Dictionary wrapper of :class:`SinGANSegAugment`: replaces ``keys`` + ``label_key`` by a synthetic pair from a
    SinGAN-Seg or a diffusion model (also exported as ``SyntheticPairAugmentd``).

    Several ``keys`` (e.g. ``["t1", "t2", "flair"]``) are stacked as channels in that order, as the model was
    trained, and split back after generation; a single key may hold several channels.

    Args:
        keys: the image keys (not the label: it is ``label_key``, and listing it in ``keys`` too is refused).
        label_key: the label key.
        models: checkpoint path, folder, loaded models or a list of these.
        prob: probability of replacing a sample.
        start_scale: int or inclusive ``(low, high)`` range drawn per sample.
        diversity: a number in ``[0, 1]`` or a ``(low, high)`` range drawn per sample (see :class:`SinGANSegAugment`).
        model_key: the data key that names the sample, to pick the model trained on it: its value may be a file
            path string or a MetaTensor whose ``filename_or_obj`` is used; defaults to ``keys[0]``.
        model_choice: ``"matched"`` (by ``model_key``) or ``"random"``.
        on_missing: ``"error"`` or ``"skip"`` when no model matches.
        cache_size, device, pool_size, pool_refresh, match_intensity, intensity_percentiles, diffusion: see
            :class:`SinGANSegAugment`.
        allow_missing_keys: don't raise when a key is missing.
        num_samples: dictionaries returned per incoming one. Above 1 the transform returns a list, MONAI's
            multi-sample convention (as ``RandCropByPosNegLabeld``): the following transforms of a ``Compose`` run
            on each item and ``list_data_collate`` puts them all in the batch.
        keep_original: with ``num_samples`` above 1, the first item is the incoming sample untouched and the
            others are synthetic with probability ``prob`` each: ``num_samples=2, keep_original=True, prob=1.0``
            gives every batch a fixed half of synthetic pairs *beside* the real ones, instead of replacing real
            samples by a per-sample coin (:meth:`add_beside_real` spells out the study's whole recipe).
        synthetic_key: when given, every dictionary the transform returns gets this key: a 0-d ``torch.bool``
            tensor, ``True`` for a synthetic pair and ``False`` for a real sample (passed through or kept by
            ``keep_original``), so ``list_data_collate`` batches it to a ``(B,)`` mask of the batch's synthetic
            items. ``None`` (default) adds no key.

    Example:
        >>> SinGANSegAugmentd(keys=["image"], label_key="label", models="models/", prob=0.5)  # doctest: +SKIP
        >>> # every real sample plus one synthetic pair of its model: half of each batch synthetic
        >>> SinGANSegAugmentd(keys=["image"], label_key="label", models="models/", prob=1.0,
        ...                   num_samples=2, keep_original=True)  # doctest: +SKIP
        >>> # the same, as the study ran it, with batch["synthetic"] telling the two apart
        >>> SinGANSegAugmentd.add_beside_real(["image"], "label", "models/")  # doctest: +SKIP
    """

    backend = SinGANSegAugment.backend

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str,
        models: ModelSource,
        prob: float = 0.5,
        start_scale: int | Sequence[int] = 0,
        model_key: str | None = None,
        model_choice: str = "matched",
        on_missing: str = "error",
        cache_size: int = 8,
        device: str | torch.device = "cpu",
        pool_size: int = 0,
        pool_refresh: float = 1.0,
        match_intensity: bool = False,
        intensity_percentiles: Sequence[float] | None = None,
        diversity: float | Sequence[float] = 0.4,
        allow_missing_keys: bool = False,
        diffusion: DiffusionSampling | dict[str, Any] | None = None,
        num_samples: int = 1,
        keep_original: bool = False,
        synthetic_key: str | None = None,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must lie in [0, 1], got {prob}.")
        if int(num_samples) != num_samples or num_samples < 1:
            raise ValueError(f"num_samples must be a whole number of at least 1, got {num_samples}.")
        if keep_original and num_samples < 2:
            raise ValueError("keep_original=True needs num_samples of at least 2 (the original plus synthetic ones).")
        if label_key in self.keys:
            # MONAI's habit of listing every key of the pair: the label would be stacked as one more image channel
            raise SinGANSegInputError(f"label_key {label_key!r} is also listed in keys {list(self.keys)}: keys are the image "
                             f"keys only (e.g. keys=['image'], label_key='label'); the label is replaced with them.")
        RandomizableTransform.__init__(self, prob)
        self.num_samples, self.keep_original = int(num_samples), keep_original
        self.label_key, self.synthetic_key = label_key, synthetic_key
        self.model_key = model_key if model_key is not None else self.keys[0]
        self.augment = SinGANSegAugment(
            models, prob=1.0, start_scale=start_scale, model_choice=model_choice, on_missing=on_missing,
            cache_size=cache_size, device=device, pool_size=pool_size, pool_refresh=pool_refresh,
            match_intensity=match_intensity, intensity_percentiles=intensity_percentiles, diversity=diversity,
            diffusion=diffusion,
        )

    BESIDE_REAL: ClassVar[dict[str, Any]] = {"start_scale": 0, "diversity": 0.4, "match_intensity": True, "prob": 1.0,
                                   "num_samples": 2, "keep_original": True, "synthetic_key": "synthetic"}
    """The options of :meth:`add_beside_real`: the few-shot study's best recipe (docs/downstream.md)."""

    @classmethod
    def add_beside_real(cls, keys: KeysCollection, label_key: str, models: ModelSource,
                        **overrides: Any) -> SinGANSegAugmentd:
        """The study's winner in one call: every real sample kept, one synthetic pair of its model added beside it.

        The options of :attr:`BESIDE_REAL`: ``start_scale=0, diversity=0.4, match_intensity=True, prob=1.0,
        num_samples=2, keep_original=True`` and ``synthetic_key="synthetic"``, so each batch is half real, half
        synthetic, and ``batch["synthetic"]`` (a ``(B,)`` bool tensor) says which is which. Place it after the
        cached intensity normalisation (``match_intensity``) and before the random crops.

        Args:
            keys: the image keys.
            label_key: the label key.
            models: checkpoint path, folder, loaded models or a list of these.
            overrides: any other option of the constructor, or one of the recipe's replaced (e.g.
                ``num_samples=3`` for two synthetic pairs per real one, ``synthetic_key=None`` for no marker).

        Returns:
            The transform.
        """
        return cls(keys, label_key, models, **{**cls.BESIDE_REAL, **overrides})

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.augment.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if self._do_transform:
            self.augment.randomize()

    @property
    def last_draw(self) -> AugmentDraw:
        """The parameters of the last item made (``apply=False`` when this wrapper's ``prob`` coin passed it through);
        ``self.augment.apply(image, label, last_draw)`` remakes its pair from the stacked image keys."""
        draw = self.augment.last_draw
        return draw if self._do_transform else dataclasses.replace(draw, apply=False)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any] | list[dict[Hashable, Any]]:
        if self.num_samples == 1:
            return self._one(data)
        first = [self._mark(dict(data), False)] if self.keep_original else []
        return first + [self._own(self._one(data), data) for _ in range(self.num_samples - len(first))]

    def _mark(self, d: dict[Hashable, Any], synthetic: bool) -> dict[Hashable, Any]:
        """``d`` with its ``synthetic_key`` set (when there is one). A sample an earlier transform made synthetic and
        this one passes through stays marked synthetic."""
        if self.synthetic_key is not None:
            earlier = d.get(self.synthetic_key)
            was = earlier is not None and bool(torch.as_tensor(earlier).any())
            d[self.synthetic_key] = torch.tensor(synthetic or was)
        return d

    @staticmethod
    def _own(item: dict[Hashable, Any], data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """``item`` with its own copy of every value it still shares with ``data`` (a synthetic image and label are
        new already), so a later in-place step on one item never reaches another."""
        return {k: deepcopy(v) if k in data and v is data[k] else v for k, v in item.items()}

    def _one(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """One draw: the incoming sample, or with probability ``prob`` a synthetic pair in its place."""
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return self._mark(d, False)
        keys = [k for k in self.key_iterator(d)]
        for key in [*self.keys, self.label_key]:
            if key not in d and not self.allow_missing_keys:
                raise SinGANSegInputError(f"missing key {key!r} in the data dictionary.")
        if len(keys) < len(self.keys) or self.label_key not in d:
            # allow_missing_keys: a pair with a contrast or the label missing cannot be replaced whole
            return self._mark(d, False)
        name = sample_name(d, self.model_key) if self.augment.model_choice == "matched" else None
        parts = [d[k] for k in keys]
        sizes = [p.shape[0] for p in parts]
        shapes = {tuple(p.shape[1:]) for p in parts}
        if len(shapes) != 1:
            raise SinGANSegInputError(f"keys {keys} have different spatial shapes {sorted(shapes)}: cannot stack them.")
        stacked = parts[0]
        if len(parts) > 1:  # keeps the first contrast's metadata: its affine tells the transform the orientation
            stacked = torch.cat([torch.as_tensor(p).as_subclass(torch.Tensor) for p in parts])
            if isinstance(parts[0], MetaTensor):
                stacked = MetaTensor(stacked, meta=dict(parts[0].meta))
        image, label = self.augment(stacked, d[self.label_key], name=name, randomize=False)
        # the array transform hands its input back when it passes the sample through (on_missing="skip", a
        # diffusion model and an empty label): that sample is still real
        self._mark(d, image is not stacked)
        if len(parts) == 1:
            d[keys[0]] = image
        else:
            image_t = torch.as_tensor(image)
            for key, part, chunk in zip(keys, parts, torch.split(image_t, sizes)):
                d[key] = convert_to_dst_type(chunk, part, dtype=part.dtype)[0]
        d[self.label_key] = label
        return d


SinGANSegAugmentD = SinGANSegAugmentDict = SyntheticPairAugmentd = SinGANSegAugmentd


class SinGANSegHarmonized(RandomizableTransform, MapTransform):
    """Dictionary wrapper of :class:`SinGANSegHarmonize`: insert a donor lesion into a (healthy) image on the fly and
    harmonize it with the image's own model.

    With probability ``prob``: a donor pair is drawn from ``donors``, pasted at a random place (inside
    ``region_key``'s mask when given), injected at a scale drawn from ``at_scale`` of the model named like the
    sample (``model_key``, as in :class:`SinGANSegAugmentd`), and blended back; ``label_key`` receives the pasted
    lesion's mask. Shape, type, dtype and metadata of the image are kept; all randomness comes from ``self.R``
    (``set_random_state`` seeds the array transform too, so both give the same result for the same seed), and
    :attr:`last_draw` is the last call's :class:`HarmonizeDraw`.

    Args:
        keys: the image key (one).
        label_key: where the lesion mask goes (created when absent, with the image's type and metadata).
        models: checkpoint path, folder, loaded models, a list of these, or a :class:`ModelBank`.
        donors: list of ``(image, mask)`` tensors ``(C, *spatial)``, ``(1, *spatial)`` in the models' image units.
        prob: probability of inserting a lesion.
        at_scale: int or inclusive ``(low, high)`` range drawn per sample; clipped to each model's scales.
        model_key: the data key that names the sample (default: the image key).
        region_key: optional data key of a mask of allowed lesion centres.
        mode: ``"harmonize"`` or ``"edit"``.
        cache_size, device: see :class:`SinGANSegHarmonize`.

    Example:
        >>> harmonize = SinGANSegHarmonized("image", "lesion", "models/", donors=[(donor, donor_mask)],
        ...                                 prob=0.5, at_scale=(2, 3), region_key="brain")  # doctest: +SKIP
    """

    backend = SinGANSegHarmonize.backend

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str,
        models: ModelSource,
        donors: Sequence[tuple[torch.Tensor, torch.Tensor]],
        prob: float = 0.5,
        at_scale: int | Sequence[int] = 2,
        model_key: str | None = None,
        region_key: str | None = None,
        mode: str = "harmonize",
        cache_size: int = 8,
        device: str | torch.device = "cpu",
    ) -> None:
        MapTransform.__init__(self, keys)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must lie in [0, 1], got {prob}.")
        RandomizableTransform.__init__(self, prob)
        if len(self.keys) != 1:
            raise ValueError("SinGANSegHarmonized takes one image key.")
        self.label_key, self.region_key = label_key, region_key
        self.model_key = model_key if model_key is not None else self.keys[0]
        self.harmonizer = SinGANSegHarmonize(models, donors, prob=1.0, at_scale=at_scale, mode=mode,
                                             cache_size=cache_size, device=device)

    @property
    def bank(self) -> ModelBank:
        """The models, held by the array transform."""
        return self.harmonizer.bank

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.harmonizer.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if self._do_transform:
            self.harmonizer.randomize()

    @property
    def last_draw(self) -> HarmonizeDraw:
        """The parameters of the last call (``apply=False`` when this wrapper's ``prob`` coin passed it through);
        ``self.harmonizer.apply(image, label, last_draw, region, name)`` remakes its image and lesion."""
        draw = self.harmonizer.last_draw
        return draw if self._do_transform else dataclasses.replace(draw, apply=False)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        key = self.keys[0]
        if key not in d:
            raise SinGANSegInputError(f"missing key {key!r} in the data dictionary.")
        name = sample_name(d, self.model_key)
        if name not in self.bank:  # harmonizing needs the model trained on this very image: no fallback
            raise SinGANSegInputError(f"no SinGAN-Seg model for sample {name!r}: train one on this image first.")
        region = d[self.region_key] if self.region_key else None
        d[key], d[self.label_key] = self.harmonizer(d[key], d.get(self.label_key), region=region, name=name,
                                                    randomize=False)
        return d


SinGANSegHarmonizeD = SinGANSegHarmonizeDict = SinGANSegHarmonized
