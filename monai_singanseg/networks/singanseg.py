"""The multi-scale SinGAN-Seg model: a pyramid of generators that turns noise into image + mask tensors."""

from __future__ import annotations

import contextlib
import operator
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from monai.utils import deprecated
from torch import nn

from monai_singanseg import __version__
from monai_singanseg.checkpoint_envelope import check_complete, damaged, read_envelope, stored_maps, write_checkpoint
from monai_singanseg.config import SinGANSegConfig
from monai_singanseg.generator_protocol import PairGenerator
from monai_singanseg.intensity import IntensityMapping, LabelEncoding
from monai_singanseg.networks.checkpoint_format import (
    SINGANSEG_CHECKPOINT,
    TrainingState,
    restore_generators,
    singanseg_body,
)
from monai_singanseg.networks.scale_networks import ScaleGenerator
from monai_singanseg.pyramid import resize

__all__ = ["SinGANSeg", "draw_noise"]

_VERSION = operator.attrgetter("_version")  # torch's in-place change counter of a tensor


def draw_noise(
    num: int, channels: int, shape: Sequence[int], coarsest: bool, generator: torch.Generator | None, device
) -> torch.Tensor:
    """Standard normal noise ``(num, channels, *shape)``.

    At the coarsest scale one noise map is shared by all channels, as in the SinGAN reference, so the coarse layout
    of the image and of its mask come from the same draw.
    """
    draw_channels = 1 if coarsest else channels
    z = torch.randn((num, draw_channels, *shape), generator=generator, device=device)
    return z.expand(num, channels, *shape) if coarsest else z


def _tensor_tables(module: nn.Module) -> list[dict[str, torch.Tensor | None]]:
    """The parameter and buffer tables (``_parameters``, ``_buffers``) of ``module`` and its submodules that hold
    any: live dicts, so a tensor set in them later is seen."""
    return [table for m in module.modules() for table in (m._parameters, m._buffers) if table]


class SinGANSeg(nn.Module, PairGenerator):
    """SinGAN-Seg: SinGAN trained on an image and its mask stacked as channels.

    Thambawita et al., "SinGAN-Seg: Synthetic training data generation for medical image segmentation",
    PLOS ONE 2022; Shaham et al., "SinGAN: Learning a Generative Model from a Single Natural Image", ICCV 2019.

    The model holds the trained generators (coarsest first), the noise amplitude of every scale, the fixed
    reconstruction noise, the scale shapes, and the maps back to the image's units and label values. It holds no
    pixel of the training image.

    Args:
        config: the model's configuration.
        shapes: spatial shape of every scale, coarsest first.
        intensity: map of the image channels to ``[-1, 1]``.
        labels: map of the label to the mask channels.
        source: where the training image came from, for writing outputs alike: ``affine`` (4x4, of the finest
            scale's grid before resizing), ``shape`` (its spatial shape) and ``contrasts`` (a name per channel).

    Example:
        >>> model = SinGANSeg.load("model.pt")                              # doctest: +SKIP
        >>> x = model.generate(4, start_scale=0)                              # (4, C, *spatial) in [-1, 1]
        >>> image, label = model.split(x)                                     # image units, label values
    """

    kind = "singanseg"
    display_name = "SinGAN-Seg"
    checkpoint_format = SINGANSEG_CHECKPOINT
    supports_injection = True
    RECONSTRUCTION_CACHE_SIZE = 4
    """Reconstructions kept per model (one per start scale and output size in use; a 3D one can be tens of MiB)."""

    def __init__(
        self,
        config: SinGANSegConfig,
        shapes: Sequence[Sequence[int]],
        intensity: IntensityMapping,
        labels: LabelEncoding,
        source: dict | None = None,
    ) -> None:
        super().__init__()
        self.config = config.validate()
        self.shapes = [tuple(int(v) for v in s) for s in shapes]
        self.intensity = intensity
        self.labels = labels
        self.source = dict(source or {})
        self.generators = nn.ModuleList()
        self.noise_amps: list[float] = []
        # reconstruction outputs (deterministic) with the tensors they were computed from, keyed by everything they
        # depend on, weights' versions included (see reconstruct); least recently used first, at most
        # RECONSTRUCTION_CACHE_SIZE of them
        self._reconstructions: OrderedDict[tuple, tuple[list[torch.Tensor], torch.Tensor]] = OrderedDict()
        # per scale: the generator and its modules' parameter and buffer tables (see _weights)
        self._generator_tables: list[tuple[nn.Module, list[dict[str, torch.Tensor | None]]]] = []
        self.register_buffer("fixed_noise", torch.zeros(1, config.channels, *self.shapes[0]))

    @property
    def num_scales(self) -> int:
        """Scales in the full pyramid."""
        return len(self.shapes)

    @property
    def trained_scales(self) -> int:
        """Scales whose generator is trained (less than ``num_scales`` while training is under way)."""
        return len(self.generators)

    @property
    def device(self) -> torch.device:
        return self.fixed_noise.device

    @property
    def start_scales(self) -> range:
        """The trained scales, coarsest (0) first: sampling may start at any of them."""
        return range(self.trained_scales)

    def new_generator(self, scale: int) -> ScaleGenerator:
        """An untrained generator for pyramid level ``scale``."""
        cfg = self.config
        return ScaleGenerator(cfg.spatial_dims, cfg.channels, cfg.network.channels_at(scale), cfg.network)

    def scaled_shapes(self, scale_ratio: float | Sequence[float] | None = None) -> list[tuple[int, ...]]:
        """Scale shapes with every axis multiplied by ``scale_ratio`` (one number, or one per spatial axis)."""
        if scale_ratio is None:
            return list(self.shapes)
        ratios = [float(scale_ratio)] * self.config.spatial_dims if isinstance(scale_ratio, (int, float)) else [
            float(r) for r in scale_ratio
        ]
        if len(ratios) != self.config.spatial_dims or not all(0 < r < float("inf") for r in ratios):
            raise ValueError(f"scale_ratio needs {self.config.spatial_dims} positive values, got {scale_ratio}.")
        coarsest = self.shapes[0]
        if any(round(s * r) < 2 for s, r in zip(coarsest, ratios)):  # one pixel has no image, and no patches
            smallest = ", ".join(f"{2 / s:.3g}" for s in coarsest)
            raise ValueError(f"{scale_ratio} shrinks the coarsest scale {tuple(coarsest)} below 2 pixels "
                             f"along an axis; the smallest ratio per axis is {smallest}.")
        pad = self.config.network.receptive_pad
        if self.config.network.padding == "reflect" and any(round(s * r) <= pad for s, r in zip(coarsest, ratios)):
            raise ValueError(f"{scale_ratio} shrinks the coarsest scale {tuple(coarsest)} to {pad} pixels or fewer "
                             f"along an axis, which a generator that pads by reflection ({pad} per side) cannot.")
        return [tuple(max(1, round(s * r)) for s, r in zip(shape, ratios)) for shape in self.shapes]

    @deprecated(since="0.1.0", msg_suffix="The reconstruction cache notices changed weights by itself; drop the call.",
                version_val=__version__, warning_category=DeprecationWarning)
    def forget_reconstructions(self) -> None:
        """Drop the cached reconstructions. Deprecated, and never needed: the cache notices changed weights, noise
        amplitudes, fixed noise and replaced generators by itself (see :meth:`reconstruct`)."""
        self._reconstructions.clear()

    def _weights(self, stop: int) -> list[torch.Tensor]:
        """The tensors a reconstruction through the first ``stop`` scales is computed from: the fixed noise and those
        generators' parameters and buffers.

        They are read from the generators' modules' own tables at every call, so a replaced tensor or generator is
        seen; the tables of each generator are kept, as walking its module tree would cost about a millisecond.
        """
        tensors = [self.fixed_noise]
        for k in range(min(stop, len(self.generators))):
            generator = self.generators[k]
            if k == len(self._generator_tables):
                self._generator_tables.append((generator, _tensor_tables(generator)))
            elif self._generator_tables[k][0] is not generator:  # a replaced generator
                self._generator_tables[k] = (generator, _tensor_tables(generator))
            tensors += [t for table in self._generator_tables[k][1] for t in table.values() if t is not None]
        return tensors

    def _reconstruction_key(self, stop: int, shapes: Sequence[Sequence[int]], weights: list[torch.Tensor]) -> tuple | None:
        """The cache key of a reconstruction: everything it is computed from; ``None`` (not cached) when a tensor
        keeps no version counter (made under ``torch.inference_mode``)."""
        try:
            versions = tuple(map(_VERSION, weights))
        except RuntimeError:  # "Inference tensors do not track version counter"
            return None
        return (stop, tuple(tuple(int(v) for v in s) for s in shapes[:stop]), str(self.device), self.fixed_noise.dtype,
                tuple(float(a) for a in self.noise_amps[:stop]), versions)

    @torch.no_grad()
    def reconstruct(self, stop_scale: int | None = None, shapes: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
        """Output of the reconstruction path (fixed noise at the coarsest scale, none above) at ``stop_scale - 1``.

        Outside training the result is cached (a few, least recently used dropped first) under everything it is
        computed from: scales, shapes, device, dtype, noise amplitudes and the version counters of the weights, which
        torch bumps at every in-place change (optimizer steps, ``load_state_dict``, BatchNorm statistics). An entry
        is served only to the very tensors it was computed from (a replaced generator is new tensors), so a changed
        model is reconstructed afresh without being told. Changes made through ``.data`` bypass version counters (as
        they bypass autograd): change weights under ``torch.no_grad()`` instead.
        """
        shapes = self.shapes if shapes is None else shapes
        stop = self.trained_scales if stop_scale is None else stop_scale
        weights = self._weights(stop)
        key = None if self.training else self._reconstruction_key(stop, shapes, weights)
        cached = None if key is None else self._reconstructions.get(key)
        if cached is not None and len(cached[0]) == len(weights) and all(map(operator.is_, cached[0], weights)):
            with contextlib.suppress(KeyError):  # another thread (ThreadDataLoader) may have just dropped it
                self._reconstructions.move_to_end(key)
            return cached[1]
        x = torch.zeros(1, self.config.channels, *shapes[0], device=self.device)
        z = resize(self.fixed_noise, shapes[0])
        for k in range(stop):
            x = resize(x, shapes[k])
            x = self.generators[k](self.noise_amps[k] * z if k == 0 else torch.zeros_like(x), x)
        if key is not None:
            self._reconstructions[key] = (weights, x)
            while len(self._reconstructions) > self.RECONSTRUCTION_CACHE_SIZE:
                self._reconstructions.popitem(last=False)
        return x

    @torch.no_grad()
    def generate(
        self,
        num: int = 1,
        start_scale: int = 0,
        scale_ratio: float | Sequence[float] | None = None,
        initial: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        stop_scale: int | None = None,
        diversity: float | torch.Tensor = 1.0,
    ) -> torch.Tensor:
        """Draw ``num`` samples ``(num, C, *spatial)`` in ``[-1, 1]``.

        Args:
            num: samples in the batch.
            start_scale: first scale that gets random noise; coarser scales follow the reconstruction path, so a
                higher start keeps more of the training image's layout (0 = most diverse).
            scale_ratio: output size relative to the training size, one number or one per axis.
            initial: a tensor ``(1 or num, C, *spatial)`` in ``[-1, 1]`` injected at ``start_scale`` instead of the
                reconstruction (harmonization and editing).
            generator: the torch random generator that draws the noise (seeding).
            stop_scale: stop after this many scales (default: all trained ones).
            diversity: in ``[0, 1]``, one number or one per sample ``(num,)``: the noise at ``start_scale`` is
                ``d * z + sqrt(1 - d**2) * z_rec``, where ``z_rec`` is the reconstruction's noise there (the fixed
                noise at the coarsest scale, none above). ``1`` is plain sampling; lower values stay closer to the
                training image's layout, so at ``start_scale=0`` it moves continuously from a new layout (1) to the
                training image's own (0), with every finer scale's noise still drawn afresh. Ignored with
                ``initial``.
        """
        stop = self.trained_scales if stop_scale is None else stop_scale
        if not 0 <= start_scale < max(stop, 1):
            raise ValueError(f"start_scale must lie in [0, {stop - 1}], got {start_scale}.")
        # checked on the CPU: a few numbers, and no device round trip per call on the transform's per-sample path
        weight = torch.as_tensor(diversity, dtype=torch.float32).detach().cpu().reshape(-1)
        if weight.numel() not in (1, num) or not bool(((weight >= 0) & (weight <= 1)).all()):
            raise ValueError(f"diversity must lie in [0, 1], one number or one per sample, got {diversity}.")
        mix = bool((weight < 1).any())
        shapes = self.scaled_shapes(scale_ratio)
        channels = self.config.channels
        if initial is not None:
            x = resize(initial.to(self.device, torch.float32), shapes[start_scale])
        elif start_scale > 0:
            x = self.reconstruct(start_scale, shapes)
        else:
            x = torch.zeros(1, channels, *shapes[0], device=self.device)
        x = x.expand(num, *x.shape[1:]) if x.shape[0] == 1 else x
        for k in range(start_scale, stop):
            x = resize(x, shapes[k])
            z = draw_noise(num, channels, shapes[k], k == 0, generator, self.device)
            if k == start_scale and initial is None and mix:
                # both terms are standard normal and independent, so the mix keeps the noise's variance
                d = weight.to(self.device).reshape(-1, *([1] * (z.ndim - 1)))
                z_rec = resize(self.fixed_noise, shapes[0]) if k == 0 else torch.zeros_like(z)
                z = d * z + torch.sqrt(1 - d**2) * z_rec
            x = self.generators[k](self.noise_amps[k] * z, x)
        return x

    def model_view(self, pair: torch.Tensor) -> torch.Tensor:
        """A real pair ``(1, C, *spatial)`` in ``[-1, 1]`` at the last trained scale's shape, where samples come out
        (an interrupted model's samples are coarser than its pyramid's finest scale): resized, clamped, and the mask
        channels, resized smoothly, snapped back to -1/+1 as the augmentation transforms do."""
        x = resize(pair, self.shapes[self.trained_scales - 1]).clamp(-1.0, 1.0)
        n_img = self.config.image_channels
        label = self.labels.decode(x[:, n_img:], channel_dim=1)[0]
        return torch.cat([x[:, :n_img], self.labels.encode(label)[None]], dim=1)

    def sample(
        self,
        num: int = 1,
        start_scale: int = 0,
        scale_ratio: float | Sequence[float] | None = None,
        seed: int | None = None,
        diversity: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``num`` new (image, label) pairs in the training data's units: :meth:`generate` then :meth:`split`."""
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        return self.split(self.generate(num, start_scale, scale_ratio, generator=generator, diversity=diversity))

    def save(self, path: str | os.PathLike, training: TrainingState | None = None) -> None:
        """Write the model and optional resume state to ``path`` atomically: one weights-only file of CPU tensors
        (:mod:`~monai_singanseg.checkpoint_envelope`, :mod:`~monai_singanseg.networks.checkpoint_format`)."""
        write_checkpoint(path, SINGANSEG_CHECKPOINT, self, singanseg_body(self), training)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        for_training: bool = False,
        require_complete: bool = False,
        payload: dict[str, Any] | None = None,
    ) -> tuple[SinGANSeg, TrainingState | None]:
        """Rebuild the model stored at ``path``.

        Args:
            path: the checkpoint.
            device: where the model runs.
            for_training: keep the layout training used (a resumed run must repeat its arithmetic exactly).
            require_complete: refuse (with a clear error) a checkpoint whose training is not finished.
            payload: the file's contents when already read (``load_weights_only``), so it is not read twice.

        Returns:
            ``(model, training)``: the model in eval mode on ``device`` and its :class:`TrainingState` (``None`` when
            the file holds none).

        Raises:
            SinGANSegInputError: the file is missing, foreign, of another version, damaged, or unfinished with
                ``require_complete``.
        """
        payload = read_envelope(path, SINGANSEG_CHECKPOINT, payload)
        with damaged(path, SINGANSEG_CHECKPOINT):
            model = cls(SinGANSegConfig.from_json(payload["config"]), payload["shapes"], *stored_maps(payload),
                        payload.get("source"))
            state = None if payload.get("training") is None else TrainingState.from_dict(payload["training"])
            restore_generators(model, payload, state, for_training)
        if require_complete:
            check_complete(path, model, state)
        return model.to(device).eval(), state
