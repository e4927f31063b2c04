"""A conditional StyleGAN2 of stacked image + mask pairs: new pairs, and (design ``mask_then_image``) images drawn
for masks a user gives."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from monai_singanseg.checkpoint_envelope import (
    check_finite,
    load_checkpoint,
    write_checkpoint,
)
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generator_protocol import PairGenerator, check_pair_values, default_labels
from monai_singanseg.intensity import IntensityMapping, LabelEncoding
from monai_singanseg.pyramid import resize
from monai_singanseg.stylegan.checkpoint_format import STYLEGAN_CHECKPOINT, StyleGANTrainingState
from monai_singanseg.stylegan.config import StyleGANConfig
from monai_singanseg.stylegan.networks import Critic, StyleGenerator

__all__ = ["PairStyleGAN", "binarize_mask", "build_critics", "build_generators", "default_labels"]


def binarize_mask(mask: torch.Tensor) -> torch.Tensor:
    """Mask channels ``(N, M, *spatial)`` in ``[-1, 1]`` made hard: one channel thresholded at 0, several one-hot by
    argmax; values -1 and 1. The image generator of ``mask_then_image`` was trained on hard real masks, so a drawn
    mask is made hard before the image is drawn for it (and the pair's image and label then agree)."""
    if mask.shape[1] == 1:
        return torch.where(mask > 0, 1.0, -1.0).to(mask.dtype)
    index = mask.argmax(dim=1, keepdim=True)
    classes = torch.arange(mask.shape[1], device=mask.device).reshape(1, -1, *(1,) * (mask.ndim - 2))
    return (index == classes).to(mask.dtype) * 2.0 - 1.0


def build_generators(config: StyleGANConfig) -> nn.ModuleDict:
    """The generators of ``config``'s design: ``{"pair"}`` of all channels (``joint``), or ``{"mask", "image"}``,
    the image generator's synthesis seeing the mask at every level (``mask_then_image``)."""
    cfg = config

    def generator(out_channels: int, condition_channels: int = 0) -> StyleGenerator:
        return StyleGenerator(cfg.spatial_dims, out_channels, cfg.widths, cfg.start_size, cfg.latent_dim,
                              cfg.style_dim, cfg.mapping_layers, cfg.num_classes, condition_channels,
                              cfg.mapping_lr_mult)

    if cfg.design == "joint":
        return nn.ModuleDict({"pair": generator(cfg.channels)})
    return nn.ModuleDict({"mask": generator(cfg.mask_channels),
                          "image": generator(cfg.image_channels, cfg.mask_channels)})


def build_critics(config: StyleGANConfig, seed: int | None = None) -> nn.ModuleDict:
    """The critics, one per generator: of all channels (``joint``); of the mask, and of the image with the mask it
    was drawn for (``mask_then_image``: the critic judges the pair, so the image must fit its mask). ``seed``: of
    the initialisation (the caller's random state is left as it was)."""
    cfg = config
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)

        def critic(channels: int) -> Critic:
            return Critic(cfg.spatial_dims, channels, cfg.widths, cfg.resolution, cfg.num_classes)

        if cfg.design == "joint":
            return nn.ModuleDict({"pair": critic(cfg.channels)})
        return nn.ModuleDict({"mask": critic(cfg.mask_channels), "image": critic(cfg.channels)})


class PairStyleGAN(nn.Module, PairGenerator):
    """A StyleGAN2-style generator of image + mask pairs stacked as channels in ``[-1, 1]`` (2D or 3D), trained on a
    small dataset (:class:`~monai_singanseg.stylegan.trainer.StyleGANTrainer`).

    Two designs (Vu, Tronchin, Nyholm and Löfstedt, arXiv 2503.00962, 2025): ``joint``, one generator of the image
    and mask channels together; ``mask_then_image``, a mask generator, then an image generator whose every level
    sees the mask, so :meth:`generate_for_masks` draws images for masks the user gives. Networks: Karras et al.,
    StyleGAN2 (CVPR 2020), see :mod:`~monai_singanseg.stylegan.networks`. Like the other generators, the model maps
    its outputs back to the training images' units and labels' values, and holds no pixel of the training data.

    Args:
        config: the model's configuration.
        intensity: map of the image channels to ``[-1, 1]`` (default: the identity on ``[-1, 1]``).
        labels: map of the label to the mask channels (default: :func:`default_labels`).
        source: where the (first) training image came from: ``affine``, ``shape``, ``contrasts``.

    Example:
        >>> model = PairStyleGAN.load("stylegan.pt")                   # doctest: +SKIP
        >>> x = model.generate(4, seed=0)                              # (4, C, *resolution) in [-1, 1]
        >>> image, label = model.split(x)                              # image units, label values
        >>> x = model.generate_for_masks(masks, seed=0)                # mask_then_image: images for given masks
    """

    kind = "stylegan"
    checkpoint_format = STYLEGAN_CHECKPOINT
    draws_at_any_size = False  # a fixed-size synthesis network: samples are resized to the size asked for

    def __init__(self, config: StyleGANConfig, intensity: IntensityMapping | None = None,
                 labels: LabelEncoding | None = None, source: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.set_maps(config, intensity, labels, source)
        with torch.random.fork_rng(devices=[]):  # initialise from our seed without moving the caller's CPU stream
            torch.manual_seed(config.seed)
            self.generators = build_generators(config)

    @property
    def device(self) -> torch.device:
        return next(self.generators.parameters()).device

    def _classes(self, num: int, classes: int | Sequence[int] | torch.Tensor | None,
                 generator: torch.Generator | None) -> torch.Tensor | None:
        """``(num,)`` class indices: the given one(s), or drawn uniformly when the model has classes."""
        k = self.config.num_classes
        if k == 0:
            if classes is not None:
                raise SinGANSegInputError("classes: this model was trained without class labels.")
            return None
        if classes is None:
            return torch.randint(k, (num,), generator=generator, device=self.device)
        out = torch.as_tensor(classes, device=self.device).long().reshape(-1)
        if out.numel() == 1:  # one class for the whole batch
            out = out.expand(num)
        if out.shape != (num,) or bool((out < 0).any()) or bool((out >= k).any()):
            raise SinGANSegInputError(f"classes: {num} class indices in 0..{k - 1} needed, got {classes!r}.")
        return out

    def _latents(self, num: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn((num, self.config.latent_dim), generator=generator, device=self.device)

    @torch.no_grad()
    def generate(self, num: int = 1, seed: int | None = None, generator: torch.Generator | None = None,
                 classes: int | Sequence[int] | torch.Tensor | None = None, truncation: float = 1.0) -> torch.Tensor:
        """Draw ``num`` new pairs ``(num, C, *resolution)`` in ``[-1, 1]``: image channels, then mask channels.

        Args:
            num: samples in the batch.
            seed: seed of every draw (ignored when ``generator`` is given).
            generator: the torch random generator (on the model's device) of every draw.
            classes: one class index or one per sample, for a model trained with classes (default: drawn).
            truncation: ``psi`` of the truncation trick, in ``[0, 1]``: 1 is plain sampling, lower pulls the styles
                towards their mean (less variety, fewer failures).

        In ``mask_then_image`` the mask is drawn first, made hard (:func:`binarize_mask`), and the image drawn for
        it; in ``joint`` both come from one draw (the mask channels are soft; :meth:`split` thresholds them).
        """
        generator = _generator(self.device, seed, generator)
        classes_t = self._classes(num, classes, generator)
        if self.config.design == "joint":
            x = self.generators["pair"](self._latents(num, generator), classes_t, generator=generator,
                                        truncation=truncation)
            return x.clamp(-1.0, 1.0)
        mask = binarize_mask(self.generators["mask"](self._latents(num, generator), classes_t, generator=generator,
                                                     truncation=truncation))
        return self._image_for(mask, classes_t, generator, truncation)

    def _image_for(self, mask: torch.Tensor, classes: torch.Tensor | None, generator: torch.Generator | None,
                   truncation: float) -> torch.Tensor:
        image = self.generators["image"](self._latents(mask.shape[0], generator), classes, condition=mask,
                                         generator=generator, truncation=truncation)
        return torch.cat([image.clamp(-1.0, 1.0), mask], dim=1)

    @property
    def draws_for_masks(self) -> bool:
        """Whether it draws images for given masks: the ``mask_then_image`` design."""
        return self.config.design == "mask_then_image"

    @torch.no_grad()
    def generate_for_masks(self, masks: torch.Tensor, seed: int | None = None, generator: torch.Generator | None = None,
                           classes: int | Sequence[int] | torch.Tensor | None = None,
                           truncation: float = 1.0) -> torch.Tensor:
        """Draw an image for each given mask (design ``mask_then_image``).

        Args:
            masks: mask channels ``(N, M, *resolution)`` or ``(M, *resolution)`` in ``[-1, 1]`` (the label encoded
                by :meth:`join`, or ``model.labels.encode``); made hard at 0 / by argmax.
            seed, generator, classes, truncation: as in :meth:`generate`.

        Returns:
            ``(N, C, *resolution)`` in ``[-1, 1]``: the drawn image channels, then the given (hard) mask channels.

        Raises:
            SinGANSegInputError: a ``joint`` model, or masks of the wrong rank, channel count, size or values.
        """
        cfg = self.config
        if cfg.design != "mask_then_image":
            raise SinGANSegInputError("generate_for_masks: this model draws image and mask jointly (design 'joint'); "
                                      "train with design 'mask_then_image' to draw images for given masks.")
        masks = torch.as_tensor(masks).to(self.device, torch.float32)
        if masks.ndim == cfg.spatial_dims + 1:
            masks = masks[None]
        if masks.ndim != cfg.spatial_dims + 2 or masks.shape[1] != cfg.mask_channels or tuple(
                masks.shape[2:]) != cfg.resolution:
            raise SinGANSegInputError(
                f"masks: shape {tuple(masks.shape)}; this model takes (N, {cfg.mask_channels}, "
                f"{', '.join(map(str, cfg.resolution))}) mask channels (resize the label to the model's resolution)."
            )
        check_pair_values(masks, "masks", "give mask channels in [-1, 1] (model.labels.encode(label)).")
        generator = _generator(self.device, seed, generator)
        return self._image_for(binarize_mask(masks), self._classes(masks.shape[0], classes, generator), generator,
                               truncation)

    def sample(self, num: int = 1, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``num`` new (image, label) pairs in the training data's units: :meth:`generate` then :meth:`split`."""
        return self.split(self.generate(num, seed=seed))

    def model_view(self, pair: torch.Tensor) -> torch.Tensor:
        """A real pair ``(N, C, *spatial)`` as this model's samples of it come out: at its resolution, in
        ``[-1, 1]``, the mask channels hard (resized as training resized them)."""
        if tuple(pair.shape[2:]) != self.config.resolution:
            n = self.config.image_channels
            pair = resize(pair.float(), self.config.resolution)
            pair = torch.cat([pair[:, :n], binarize_mask(pair[:, n:])], dim=1)
        return pair.clamp(-1.0, 1.0)

    def save(self, path: str | os.PathLike, training: StyleGANTrainingState | None = None,
             weights: dict[str, Any] | None = None) -> None:
        """Write the model and optional resume state to ``path`` atomically: one weights-only file of CPU tensors.
        ``weights``: ``{name: state dict}`` to store as the sampling weights instead of the model's own (the moving
        average during training)."""
        body = {"generators": {name: g.state_dict() for name, g in self.generators.items()} if weights is None
                else weights}
        write_checkpoint(path, STYLEGAN_CHECKPOINT, self, body, training)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        require_complete: bool = False, payload: dict[str, Any] | None = None,
                        ) -> tuple[PairStyleGAN, StyleGANTrainingState | None]:
        """``(model, training)``: the StyleGAN stored at ``path``, in eval mode on ``device``, and its
        :class:`~monai_singanseg.stylegan.checkpoint_format.StyleGANTrainingState` (``None`` when the file holds
        none), as :meth:`~monai_singanseg.generator_protocol.PairGenerator.from_checkpoint` says
        (:func:`~monai_singanseg.checkpoint_envelope.load_checkpoint` reads it)."""
        return load_checkpoint(cls, path, STYLEGAN_CHECKPOINT, StyleGANTrainingState, _load_generators, device,
                               require_complete, payload)


def _load_generators(model: PairStyleGAN, payload: dict[str, Any]) -> None:
    """Put a checkpoint's ``generators`` weights into ``model`` (``KeyError``: not the generators of its design)."""
    weights = payload["generators"]
    if set(weights) != set(model.generators):
        raise KeyError(f"generators {sorted(weights)}, the design needs {sorted(model.generators)}")
    for name, state in weights.items():
        check_finite({f"{name} {key}": value for key, value in state.items()})
        model.generators[name].load_state_dict(state)


def _generator(device: torch.device, seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
    """``generator``, or one on ``device`` seeded with ``seed``, or ``None`` (the global stream)."""
    if generator is not None or seed is None:
        return generator
    return torch.Generator(device=device).manual_seed(int(seed))
