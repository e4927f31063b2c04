"""What every pair generator offers the rest of the package, and the checks of a stacked pair.

A pair generator (:class:`~monai_singanseg.networks.SinGANSeg`, :class:`~monai_singanseg.diffusion.PairDiffusion`)
makes tensors ``(N, C, *spatial)`` in ``[-1, 1]``: ``config.image_channels`` image channels, then
``config.mask_channels`` mask channels. :class:`PairGenerator` is the base both derive from: it owns the map between
such a tensor and an (image, label) pair in the training data's units (:meth:`~PairGenerator.split`,
:meth:`~PairGenerator.join`) and names what differs between the kinds as methods and attributes, so transforms, the
CLI and the report ask the model instead of asking which kind it is. Which kinds exist and how their checkpoints are
read is :mod:`monai_singanseg.generators`' registry.

This module imports no model, so both models import it.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from monai_singanseg.checkpoint_envelope import CheckpointFormat, ResumeState
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.intensity import IntensityMapping, LabelEncoding

__all__ = ["PAIR_VALUE_TOLERANCE", "PairConfig", "PairGenerator", "check_pair_values", "default_labels"]

PAIR_VALUE_TOLERANCE = 1e-4
"""How far past ``[-1, 1]`` a stacked pair may reach and still be taken (then clamped): the rounding of an intensity
map applied in float32, not a pair in other units."""


def check_pair_values(pair: torch.Tensor, name: str, hint: str) -> None:
    """Refuse a stacked pair that is not finite or reaches past ``[-1, 1]`` by more than
    :data:`PAIR_VALUE_TOLERANCE`.

    Args:
        pair: the stacked pair(s), any shape.
        name: what the user passed (``"pair 3"``, ``"image_pair"``), the start of the message.
        hint: where a pair in ``[-1, 1]`` comes from, the end of the message.

    Raises:
        SinGANSegInputError: ``"<name>: values outside [-1, 1] (or not finite); <hint>"``.
    """
    if not bool(torch.isfinite(pair).all()) or float(pair.abs().max()) > 1.0 + PAIR_VALUE_TOLERANCE:
        raise SinGANSegInputError(f"{name}: values outside [-1, 1] (or not finite); {hint}")


def default_labels(mask_channels: int) -> LabelEncoding:
    """The label encoding assumed for bare tensors: binary 0/1 for one mask channel, class indices for K > 1."""
    if mask_channels == 1:
        return LabelEncoding([0.0, 1.0], one_hot=False)
    return LabelEncoding([float(k) for k in range(mask_channels)], one_hot=True)


class PairConfig(Protocol):
    """The part of a generator's config the rest of the package reads (SinGANSegConfig, DiffusionConfig)."""

    image_channels: int
    mask_channels: int
    spatial_dims: int

    @property
    def channels(self) -> int:
        """``image_channels + mask_channels``."""
        ...


class PairGenerator(ABC):
    """Base of the models that make stacked (image, mask) pairs; a mixin beside ``torch.nn.Module``.

    A subclass sets ``config`` (a :class:`PairConfig`), ``intensity`` (image units <-> ``[-1, 1]``), ``labels`` (label
    values <-> mask channels) and ``source`` (the training image's ``affine``, ``shape`` and ``contrasts``), and
    defines :attr:`kind` and :attr:`device`.

    What differs between the kinds is asked of the model, never of its class: a new kind sets the attributes below
    that apply to it (the defaults describe a generator that draws whole new pairs at its training size, nothing
    else) and the CLI, the report, :mod:`~monai_singanseg.generation` and the harmonize transform serve it unchanged.

    Attributes:
        kind: the registry's name of the kind (``"singanseg"``, ``"diffusion"``).
        display_name: how messages name the kind (``"SinGAN-Seg"``, ``"diffusion"``; default: ``kind``).
        checkpoint_format: the kind's checkpoint marker, versions and config class (the envelope's
            :class:`~monai_singanseg.checkpoint_envelope.CheckpointFormat`).
        draws_at_any_size: samples are drawn at the size asked for, at the training images' own resolution (a
            convolutional denoiser); ``False``: drawn at the training size and resized to the size asked for, so a
            sample always shows the training image's whole field of view.
        supports_injection: a real image can be injected at a scale of its pyramid and redrawn from there
            (harmonization and editing, :func:`~monai_singanseg.harmonization.harmonize`).
        denoises: draws by denoising steps, with the options of
            :class:`~monai_singanseg.diffusion.config.DiffusionSampling` (steps, sampler, RePaint inpainting of a
            region of a real pair); ``False``: its sampling takes none of them.
        draws_for_masks: draws images for masks it is given, ``generate_for_masks(masks, seed=...)`` (a generator
            conditioned on the mask, e.g. StyleGAN's ``mask_then_image`` design); the report adds a row of images
            drawn for the real mask.
    """

    kind: ClassVar[str]
    display_name: ClassVar[str]
    checkpoint_format: ClassVar[CheckpointFormat]
    draws_at_any_size: ClassVar[bool] = False
    supports_injection: ClassVar[bool] = False
    denoises: ClassVar[bool] = False
    draws_for_masks: bool = False
    config: Any
    intensity: IntensityMapping
    labels: LabelEncoding
    source: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "display_name" not in cls.__dict__ and "kind" in cls.__dict__:  # a kind that names itself no other way
            cls.display_name = cls.kind

    def set_maps(self, config: Any, intensity: IntensityMapping | None, labels: LabelEncoding | None,
                 source: dict[str, Any] | None) -> None:
        """Set ``config`` (validated), ``intensity`` (default: the identity on ``[-1, 1]``), ``labels`` (default:
        :func:`default_labels`) and ``source``: the start of a learned generator's ``__init__``.

        Raises:
            ValueError: the maps' channels differ from the config's.
        """
        self.config = config.validate()
        self.intensity = intensity or IntensityMapping([-1.0] * config.image_channels, [1.0] * config.image_channels)
        self.labels = labels or default_labels(config.mask_channels)
        if len(self.intensity.lower) != config.image_channels or self.labels.channels != config.mask_channels:
            raise ValueError(
                f"intensity mapping of {len(self.intensity.lower)} channels and label encoding of "
                f"{self.labels.channels} mask channels, the config has {config.image_channels} + "
                f"{config.mask_channels}."
            )
        self.source = dict(source or {})

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where the model runs."""

    @property
    def start_scales(self) -> Sequence[int]:
        """The scales sampling may start at, coarsest (0) first: a pyramid's trained scales, where a higher start keeps
        more of the training image's layout; empty for a generator without a pyramid.

        A generator that offers start scales draws with ``generate(num, start_scale, scale_ratio, generator=...,
        diversity=...)`` and checks a scale ratio with ``scaled_shapes(scale_ratio)``, as
        :class:`~monai_singanseg.networks.SinGANSeg` does.
        """
        return ()

    def generate(self, num: int = 1, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``num`` new pairs ``(num, C, *spatial)`` in ``[-1, 1]`` at the training size, the kind's sampling options at
        their defaults (a kind adds its own options after ``num``, all with defaults).

        Args:
            num: pairs in the batch.
            generator: the torch random generator that draws the noise (seeding).
        """
        raise NotImplementedError(f"{type(self).__name__} does not define generate.")

    @classmethod
    @abstractmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", *, require_complete: bool = False,
        payload: dict[str, Any] | None = None,
    ) -> tuple[PairGenerator, ResumeState | None]:
        """``(model, resume state)`` stored at ``path`` (``payload``: its contents when already read), the model in
        eval mode on ``device``; ``require_complete`` refuses a checkpoint whose training has not finished.

        Raises:
            SinGANSegInputError: the file is missing, foreign, of another version, damaged, or unfinished.
        """

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> PairGenerator:
        """Read a model written by its ``save`` (``torch.load(weights_only=True)``, no pickled code), in eval mode."""
        return cls.from_checkpoint(path, device=device)[0]

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split ``(N, C, *spatial)`` in ``[-1, 1]`` into the image (the training image's units) and the label.

        Returns:
            ``image`` ``(N, image_channels, *spatial)`` and ``label`` ``(N, 1, *spatial)`` holding the training
            label's values (a binary mask thresholded at 0, a one-hot mask by argmax).
        """
        n_img = self.config.image_channels
        return self.intensity.denormalize(x[:, :n_img], channel_dim=1), self.labels.decode(x[:, n_img:], channel_dim=1)

    def join(self, image: torch.Tensor, label: torch.Tensor, indices: bool = False,
             intensity: IntensityMapping | None = None) -> torch.Tensor:
        """The inverse of :meth:`split` for one pair.

        Args:
            image: ``(image_channels, *spatial)`` in the training image's units (or ``intensity``'s).
            label: ``(1, *spatial)`` with the training label's values, or class indices with ``indices``
                (0 = background; for a binary model any nonzero value is foreground).
            indices: ``label`` holds class indices.
            intensity: the map of ``image``'s units to ``[-1, 1]`` (default: the model's).

        Returns:
            ``(C, *spatial)``, in ``[-1, 1]`` where ``image`` lies in the map's range (not clamped: callers that
            take images beyond it clamp).
        """
        image, label = torch.as_tensor(image).float(), torch.as_tensor(label).float()
        mask = self.labels.encode_indices(label) if indices else self.labels.encode(label)
        return torch.cat([(intensity or self.intensity).normalize(image), mask], dim=0)

    def model_view(self, pair: torch.Tensor) -> torch.Tensor:
        """A real pair ``(1, C, *spatial)`` in ``[-1, 1]`` as this model's samples of it come out (to compare them):
        clamped to ``[-1, 1]``; a model that draws at its training size resizes it there too."""
        return pair.clamp(-1.0, 1.0)

    def output_affine(self, shape: Sequence[int]) -> np.ndarray:
        """The affine of samples written at spatial ``shape``: the training image's, its spacing stretched from the
        training shape to ``shape`` (origin kept) unless the model draws at any size at the training resolution."""
        affine = np.asarray(self.source.get("affine", np.eye(4)), dtype=np.float64).copy()
        if self.draws_at_any_size:
            return affine
        source_shape = self.source.get("shape") or list(shape)
        for axis, (src, dst) in enumerate(zip(source_shape, shape)):
            affine[:3, axis] *= src / dst
        return affine
