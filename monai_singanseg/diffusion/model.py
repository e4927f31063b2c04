"""A denoising diffusion model of stacked image + mask pairs: sampling (DDPM / DDIM) and RePaint inpainting."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.nets import DiffusionModelUNet
from monai.utils import optional_import
from torch import nn

from monai_singanseg.checkpoint_envelope import (
    check_finite,
    load_checkpoint,
    write_checkpoint,
)
from monai_singanseg.diffusion.checkpoint_format import DIFFUSION_CHECKPOINT, DiffusionTrainingState, stored_config
from monai_singanseg.diffusion.config import REPAINT_RESAMPLE, DiffusionConfig
from monai_singanseg.diffusion.schedule import repaint_levels, respaced_scheduler
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generator_protocol import PairGenerator, check_pair_values, default_labels
from monai_singanseg.intensity import IntensityMapping, LabelEncoding

__all__ = ["ATTENTION_WARN_POSITIONS", "PairDiffusion", "attention_shape", "build_unet", "default_labels"]

logger = logging.getLogger(__name__)

# self-attention costs (positions)^2 per layer: at 32x32 a CPU step is fast, at 128x128 it is 256 times dearer
ATTENTION_WARN_POSITIONS = 32 * 32


def attention_shape(config: DiffusionConfig, shape: Sequence[int]) -> tuple[int, ...]:
    """The spatial shape at which the UNet of ``config`` runs its finest self-attention for inputs of ``shape``.

    Level ``i`` of the UNet works at ``shape / 2**i``; it attends where ``attention_levels`` says, and MONAI's
    middle block always attends at the deepest level.
    """
    attended = [i for i, on in enumerate(config.attention_levels) if on] + [len(config.unet_channels) - 1]
    return tuple(int(s) // 2 ** min(attended) for s in shape)


def build_unet(config: DiffusionConfig, seed: int | None = None) -> DiffusionModelUNet:
    """MONAI's ``DiffusionModelUNet`` for ``config``, on the CPU, with ``channels`` inputs and outputs.

    Args:
        config: the model's configuration.
        seed: seed of the weight initialisation; the caller's global random state is left as it was.

    Raises:
        ImportError: the ``einops`` package is missing (MONAI's ``DiffusionModelUNet`` has self-attention in its
            middle block whatever ``attention_levels`` say, and MONAI's attention blocks are built with einops).
    """
    if not optional_import("einops")[1]:
        raise ImportError("the diffusion model needs the einops package (MONAI's DiffusionModelUNet builds its "
                          "attention blocks with it): pip install einops.")
    with torch.random.fork_rng(devices=[]):  # initialise from our seed without moving the caller's CPU stream
        if seed is not None:
            torch.manual_seed(seed)
        return DiffusionModelUNet(
            spatial_dims=config.spatial_dims,
            in_channels=config.channels,
            out_channels=config.channels,
            num_res_blocks=config.num_res_blocks,
            channels=config.unet_channels,
            attention_levels=config.attention_levels,
            norm_num_groups=config.norm_num_groups,
            num_head_channels=config.num_head_channels,
        )


class PairDiffusion(nn.Module, PairGenerator):
    """A diffusion model of image + mask pairs stacked as channels in ``[-1, 1]`` (2D or 3D).

    The denoiser is MONAI's ``DiffusionModelUNet`` trained to predict the noise (Ho et al., "Denoising Diffusion
    Probabilistic Models", NeurIPS 2020); sampling uses MONAI's ``DDPMScheduler`` or ``DDIMScheduler`` (Song et al.,
    "Denoising Diffusion Implicit Models", ICLR 2021) on a respaced schedule
    (:func:`~monai_singanseg.diffusion.schedule.respaced_scheduler`), and :meth:`inpaint` redraws a region of a real
    pair with RePaint (Lugmayr et al., "RePaint: Inpainting using Denoising Diffusion Probabilistic Models",
    CVPR 2022). Like :class:`~monai_singanseg.networks.SinGANSeg`, the model knows how to map its outputs back to the
    training image's units and the training label's values, and holds no pixel of the training data.

    Args:
        config: the model's configuration.
        intensity: map of the image channels to ``[-1, 1]`` (default: the identity on ``[-1, 1]``).
        labels: map of the label to the mask channels (default: :func:`default_labels`).
        source: where the (first) training image came from: ``affine``, ``shape``, ``contrasts``.

    Example:
        >>> model = PairDiffusion.load("diffusion.pt")                          # doctest: +SKIP
        >>> x = model.generate(4, steps=50, sampler="ddim")                     # (4, C, *image_size) in [-1, 1]
        >>> image, label = model.split(x)                                       # image units, label values
        >>> redrawn = model.inpaint(pair.real, region, steps=50)                # (1, C, *spatial) in [-1, 1]
    """

    kind = "diffusion"
    checkpoint_format = DIFFUSION_CHECKPOINT
    draws_at_any_size = True  # the UNet is convolutional: samples of any size at the training resolution
    denoises = True  # DDPM / DDIM steps; RePaint redraws a region of a real pair

    def __init__(
        self,
        config: DiffusionConfig,
        intensity: IntensityMapping | None = None,
        labels: LabelEncoding | None = None,
        source: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.set_maps(config, intensity, labels, source)
        self.unet = build_unet(config, seed=config.seed)

    def _warn_slow_attention(self, shape: Sequence[int]) -> None:
        """Warn once per spatial ``shape`` when self-attention runs over more than ``ATTENTION_WARN_POSITIONS``
        positions there: a small ``unet_channels`` (two levels) puts it at half the sampling size, and a 256x256
        inpainting then took minutes per call without a word."""
        shape = tuple(int(s) for s in shape)
        at = attention_shape(self.config, shape)
        warned = self.__dict__.setdefault("_attention_warned", set())  # shapes already warned of
        if math.prod(at) <= ATTENTION_WARN_POSITIONS or shape in warned:
            return
        warned.add(shape)
        cfg = self.config
        # levels that bring the deepest one to 32 per side or less; more levels of the last width cost little
        levels = len(cfg.unet_channels) + max(0, math.ceil(math.log2(max(at) / 32)))
        channels = " ".join(map(str, (*cfg.unet_channels, *[cfg.unet_channels[-1]] * (levels - len(cfg.unet_channels)))))
        logger.warning("diffusion model: self-attention runs at %s when sampling %s (a UNet of %d levels, %s; attention "
                       "at the deepest), minutes per call on a CPU; train with more levels to bring it to 32 per side "
                       "(--unet-channels %s; attention_levels of DiffusionConfig in Python), or redraw a smaller region.",
                       "x".join(map(str, at)), "x".join(map(str, shape)), len(cfg.unet_channels),
                       " ".join(map(str, cfg.unet_channels)), channels)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def check_shape(self, shape: Sequence[int], name: str = "shape") -> tuple[int, ...]:
        """Refuse a spatial shape the UNet cannot take (wrong rank, a side not a multiple of its downsampling).

        Raises:
            SinGANSegInputError: naming ``name``, the shape and what is needed.
        """
        shape = tuple(int(s) for s in shape)
        multiple = self.config.size_multiple
        if len(shape) != self.config.spatial_dims or any(s < multiple or s % multiple for s in shape):
            raise SinGANSegInputError(
                f"{name}: spatial shape {shape}; this {self.config.spatial_dims}D model's UNet of "
                f"{len(self.config.unet_channels)} levels needs {self.config.spatial_dims} sides, each a positive "
                f"multiple of {multiple}."
            )
        return shape

    def predict_noise(self, x: torch.Tensor, timestep: int | torch.Tensor) -> torch.Tensor:
        """The UNet's noise prediction for ``x`` ``(N, C, *spatial)`` at training timestep(s) ``timestep``."""
        t = torch.as_tensor(timestep, device=x.device, dtype=torch.long).expand(x.shape[0])
        return self.unet(x, timesteps=t)

    @torch.no_grad()
    def generate(
        self,
        num: int = 1,
        steps: int = 50,
        sampler: str = "ddim",
        generator: torch.Generator | None = None,
        shape: Sequence[int] | None = None,
        eta: float = 0.0,
        progress: bool = False,
    ) -> torch.Tensor:
        """Draw ``num`` new pairs ``(num, C, *shape)`` in ``[-1, 1]``: image channels, then mask channels.

        Args:
            num: samples in the batch.
            steps: denoising steps, ``1 <= steps <= num_train_timesteps`` (more: closer to the trained model).
            sampler: ``"ddim"`` (deterministic given the start noise with ``eta=0``; good in few steps) or
                ``"ddpm"`` (ancestral; needs more steps).
            generator: the torch random generator (on the model's device) that draws all the noise (seeding).
            shape: spatial shape of the samples (default: the training ``image_size``); any shape the UNet takes.
            eta: DDIM's noise weight (0 = deterministic, 1 = as DDPM); ignored by ``"ddpm"``.
            progress: show a progress bar over the steps.
        """
        shape = self.check_shape(shape or self.config.image_size)
        self._warn_slow_attention(shape)
        scheduler, timesteps = respaced_scheduler(self.config, steps, sampler)
        x = torch.randn((num, self.config.channels, *shape), generator=generator, device=self.device)
        for index in _maybe_progress(scheduler.timesteps.tolist(), progress, "sampling"):
            eps = self.predict_noise(x, timesteps[index])
            if sampler == "ddim":
                x, _ = scheduler.step(eps, index, x, eta=eta, generator=generator)
            else:
                x, _ = scheduler.step(eps, index, x, generator=generator)
        return x.clamp(-1.0, 1.0)

    def generate_at(
        self, num: int, shape: Sequence[int], steps: int = 50, sampler: str = "ddim",
        generator: torch.Generator | None = None, eta: float = 0.0,
    ) -> torch.Tensor:
        """:meth:`generate` at any spatial ``shape``: ``num`` pairs ``(num, C, *shape)`` in ``[-1, 1]``, drawn at the
        next multiple of the UNet's downsampling along each side and cropped (the UNet is convolutional)."""
        multiple = self.config.size_multiple
        padded = [-(-int(s) // multiple) * multiple for s in shape]
        x = self.generate(num, steps, sampler, generator=generator, shape=padded, eta=eta)
        return x[(slice(None), slice(None), *(slice(0, int(s)) for s in shape))]

    def sample(
        self, num: int = 1, steps: int = 50, sampler: str = "ddim", seed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``num`` new (image, label) pairs in the training data's units: :meth:`generate` then :meth:`split`."""
        generator = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        return self.split(self.generate(num, steps, sampler, generator=generator))

    @torch.no_grad()
    def inpaint(
        self,
        image_pair: torch.Tensor,
        region_mask: torch.Tensor,
        steps: int = 50,
        jump_length: int = 10,
        resample: int = REPAINT_RESAMPLE,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Redraw ``region_mask`` of a real pair and keep the rest, with RePaint.

        At every denoising step the kept region is the real pair noised to that step's level (forward process) and
        the redrawn region is the reverse step's output; jumping back ``jump_length`` steps and denoising again
        (``resample`` times per stretch) lets the redrawn content agree with the kept content around it. The result
        holds the real pair exactly outside the region.

        Args:
            image_pair: ``(C, *spatial)`` or ``(N, C, *spatial)`` in ``[-1, 1]``, image channels then mask channels
                (``TrainingPair.real``, or :meth:`join` of an image and a label); expand it to ``N`` copies to get
                ``N`` different redraws.
            region_mask: where to redraw (nonzero / True), ``(*spatial)``, ``(1 or C, *spatial)`` or
                ``(1 or N, 1 or C, *spatial)``; e.g. the real mask dilated, to redraw a lesion and its border.
                Per-channel masks redraw some channels only (the mask channels alone, say).
            steps: denoising steps of one pass (``1 <= steps <= num_train_timesteps``).
            jump_length: steps per jump back (RePaint's j).
            resample: times each stretch of ``jump_length`` steps is denoised (RePaint's r; 1 = no resampling, plain
                replacement). The network runs about ``steps + (resample - 1) * (steps - jump_length)`` times.
                Default :data:`~monai_singanseg.diffusion.config.REPAINT_RESAMPLE` (5), as the transforms and the
                command line use (RePaint's paper uses 10).
            generator: the torch random generator (on the model's device) that draws all the noise.
            progress: show a progress bar over the steps.

        Returns:
            ``(N, C, *spatial)`` in ``[-1, 1]``.

        Raises:
            SinGANSegInputError: a pair of the wrong channel count, rank or size, values outside ``[-1, 1]``, or a
                region mask that does not broadcast to the pair.
        """
        real = self._check_pair(image_pair)
        keep = 1.0 - self._check_region(region_mask, real.shape)
        self._warn_slow_attention(real.shape[2:])
        scheduler, timesteps = respaced_scheduler(self.config, steps, "ddpm")
        alphas_cumprod = scheduler.alphas_cumprod.to(real.device)

        def noised(level: int) -> torch.Tensor:
            """The real pair at ``level`` of the forward process (level 0: itself)."""
            if level == 0:
                return real
            a = alphas_cumprod[level - 1]
            return a.sqrt() * real + (1 - a).sqrt() * _randn(real, generator)

        levels = repaint_levels(steps, jump_length, resample)
        x = _randn(real, generator)
        for level, target in _maybe_progress(list(zip(levels[:-1], levels[1:])), progress, "inpainting"):
            if target < level:  # one reverse step: level -> level - 1, then the kept region from the real pair
                index = level - 1
                x, _ = scheduler.step(self.predict_noise(x, timesteps[index]), index, x, generator=generator)
                x = keep * noised(target) + (1.0 - keep) * x
            else:  # jump back up: q(x_target | x_level), the forward process over target - level steps at once
                ratio = alphas_cumprod[target - 1] / (alphas_cumprod[level - 1] if level > 0 else 1.0)
                x = ratio.sqrt() * x + (1 - ratio).sqrt() * _randn(real, generator)
        return x.clamp(-1.0, 1.0)

    def _check_pair(self, pair: torch.Tensor) -> torch.Tensor:
        pair = torch.as_tensor(pair).to(self.device, torch.float32)
        if pair.ndim == self.config.spatial_dims + 1:
            pair = pair.unsqueeze(0)
        cfg = self.config
        if pair.ndim != cfg.spatial_dims + 2 or pair.shape[1] != cfg.channels:
            raise SinGANSegInputError(
                f"image_pair: shape {tuple(pair.shape)}; this model takes (C, *spatial) or (N, C, *spatial) with "
                f"C = {cfg.channels} ({cfg.image_channels} image + {cfg.mask_channels} mask) and {cfg.spatial_dims} "
                "spatial axes."
            )
        self.check_shape(pair.shape[2:], "image_pair")
        check_pair_values(pair, "image_pair", "give the stacked pair in [-1, 1] (TrainingPair.real, or "
                          "model.join(image, label)).")
        return pair.clamp(-1.0, 1.0)

    def _check_region(self, region: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        region = torch.as_tensor(region, device=self.device)
        spatial = self.config.spatial_dims
        while region.ndim < spatial + 2:
            region = region.unsqueeze(0)
        try:
            region = (region != 0).float().expand(shape)
        except RuntimeError:
            raise SinGANSegInputError(
                f"region_mask: shape {tuple(region.shape)} does not broadcast to the pair's {tuple(shape)}; give "
                "(*spatial), (1 or C, *spatial) or (1 or N, 1 or C, *spatial)."
            ) from None
        return region

    def save(self, path: str | os.PathLike, training: DiffusionTrainingState | None = None,
             weights: dict[str, Any] | None = None) -> None:
        """Write the model and optional resume state to ``path`` atomically: one weights-only file of CPU tensors
        (:mod:`~monai_singanseg.checkpoint_envelope`, :mod:`~monai_singanseg.diffusion.checkpoint_format`).
        ``weights``: the UNet state dict to store as the sampling weights instead of the model's own (the moving
        average during training)."""
        body = {"unet": self.unet.state_dict() if weights is None else weights}
        write_checkpoint(path, DIFFUSION_CHECKPOINT, self, body, training)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        require_complete: bool = False,
        payload: dict[str, Any] | None = None,
    ) -> tuple[PairDiffusion, DiffusionTrainingState | None]:
        """``(model, training)``: the diffusion model stored at ``path``, in eval mode on ``device``, and its
        :class:`~monai_singanseg.diffusion.checkpoint_format.DiffusionTrainingState` (``None`` when the file holds
        none), as :meth:`~monai_singanseg.generator_protocol.PairGenerator.from_checkpoint` says; a config of a
        release before the moving average reads as ``ema_decay=0``
        (:func:`~monai_singanseg.diffusion.checkpoint_format.stored_config`)."""
        return load_checkpoint(cls, path, DIFFUSION_CHECKPOINT, DiffusionTrainingState, _load_unet, device,
                               require_complete, payload, read_config=stored_config)


def _load_unet(model: PairDiffusion, payload: dict[str, Any]) -> None:
    """Put a checkpoint's ``unet`` weights into ``model``."""
    check_finite({f"unet {name}": value for name, value in payload["unet"].items()})
    model.unet.load_state_dict(payload["unet"])


def _randn(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def _maybe_progress(items: list, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)
