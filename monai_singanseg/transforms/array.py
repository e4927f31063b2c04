"""Array transform: replace an (image, label) pair by a fresh synthetic pair from a SinGAN-Seg model."""

from __future__ import annotations

import hashlib
import numbers
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.transforms import RandomizableTransform
from monai.utils import MAX_SEED, TransformBackends, convert_to_dst_type, look_up_option

from monai_singanseg.diffusion.config import DiffusionSampling
from monai_singanseg.diffusion.inpainting import inpaint_pair, label_region
from monai_singanseg.diffusion.model import PairDiffusion
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generator_protocol import PairGenerator
from monai_singanseg.intensity import IntensityMapping
from monai_singanseg.networks import SinGANSeg
from monai_singanseg.pyramid import resize
from monai_singanseg.transforms.geometry import field_of_view, orientation_change, reorient
from monai_singanseg.transforms.model_bank import ModelBank, ModelSource

__all__ = ["SinGANSegAugment", "SyntheticPairAugment"]

MODEL_CHOICES = ("matched", "random")
ON_MISSING = ("error", "skip")
_MAX_NAME_LENGTH = 255  # longest file name most file systems allow: anything longer is not a sample's name


REDRAW_POOL_INPUTS = 64
"""Distinct inputs whose pooled inpainting redraws a transform keeps (``DiffusionSampling.pool_redraws``)."""


@dataclass
class _PooledSample:
    """One pooled sample: the model's raw output, and what it became at each output shape it was served at.

    Attributes:
        raw: ``(1, C, *model_spatial)`` in ``[-1, 1]``, straight from the model's ``generate``.
        finished: per output spatial shape, the (image ``(C_img, *spatial)`` in ``[-1, 1]``, label indices
            ``(1, *spatial)``) of :meth:`SinGANSegAugment._finish`, so a sample served again at the same shape
            skips the resize and the label decoding.
    """

    raw: torch.Tensor
    finished: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


def _sample_name_or_none(name: Any) -> str | None:
    """``name`` when it can name a sample, else ``None``.

    A data dictionary whose ``model_key`` holds pixels (a plain array or tensor, no file name) hands over the
    array's printout as the name; that must read as "no name", never be echoed into an error message.
    """
    if not isinstance(name, str) or "\n" in name or len(name) > _MAX_NAME_LENGTH:
        return None
    return name



def _start_range(start_scale: Any) -> tuple[int, int]:
    """``(low, high)`` of ``start_scale``: an int, or an inclusive range of two ints, ``0 <= low <= high``.

    Raises:
        ValueError: naming the value, for a float (``1.5`` said "'float' object is not iterable") or a bad range.
    """
    def whole(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if whole(start_scale):
        low = high = start_scale
    elif isinstance(start_scale, Sequence) and len(start_scale) == 2 and all(whole(v) for v in start_scale):
        low, high = start_scale
    else:
        low, high = -1, -1  # refused below, with the value as given
    if not 0 <= low <= high:
        raise ValueError(f"start_scale must be an int >= 0 or a (low, high) range of ints, got {start_scale!r}.")
    return int(low), int(high)

class SinGANSegAugment(RandomizableTransform):
    """With probability ``prob``, replace an image and its label by a synthetic pair from a SinGAN-Seg model or a
    pair-diffusion model (also exported as ``SyntheticPairAugment``).

    SinGAN-Seg (Thambawita et al., PLOS ONE 2022) trains one model per real image; by default the model trained on
    the very sample is used (``model_choice="matched"``, the sample's name given at call time; a bank of one model
    serves every sample), else a random model of the bank (``"random"``). The output keeps the input's spatial
    shape (the sample is resized: image and mask channels smoothly, the mask thresholded after), type (numpy or
    MetaTensor, metadata and affine included), dtype, and label values.
    A diffusion checkpoint (:mod:`monai_singanseg.diffusion`) in the bank works the same way; by default it redraws
    the region of the incoming label (dilated) inside the real image with RePaint, so a new structure and its mask
    appear in the real context and everything outside the region stays as it was (``diffusion`` says how; samples
    with an empty label pass through).
    All randomness comes from ``self.R``, so ``set_random_state`` reproduces a sample exactly. Nothing is recorded
    in ``applied_operations``: the pair is replaced, not moved, and earlier spatial transforms stay invertible.

    Args:
        models: checkpoint path, folder of checkpoints, loaded models, a list of these, or a :class:`ModelBank`;
            SinGAN-Seg and diffusion checkpoints alike.
        prob: probability of replacing a sample.
        start_scale: an int, or an inclusive ``(low, high)`` range drawn per sample. 0 is the most diverse, higher
            keeps more of the real image's layout. A drawn scale above a model's last one is clipped to it (a bank
            may mix pyramid sizes), but a ``low`` beyond a model's last scale raises :class:`SinGANSegInputError`.
        diversity: in ``[0, 1]``, a number or a ``(low, high)`` range drawn uniformly per sample: how far the noise
            at the start scale departs from the reconstruction's (see :meth:`SinGANSeg.generate`). With
            ``start_scale=0`` it is a continuous knob between the training image's own layout (0) and a new one
            (1, plain SinGAN sampling). The default 0.4 won the few-shot study (docs/downstream.md): the only
            setting never below the baseline minus one sd on both datasets, best mean gain.
        model_choice: ``"matched"`` (the model named like the sample) or ``"random"``.
        on_missing: with ``"matched"``, a sample with no model either raises (``"error"``) or passes through
            unchanged (``"skip"``).
        cache_size: checkpoints kept loaded at once.
        device: where generation runs (``"cuda"`` with MONAI's ``ThreadDataLoader`` for GPU generation).
        pool_size: when > 0, keep a pool of this many samples per model and start scale, generated in batches,
            and serve a random one of them per call: batching makes generation cheaper per sample. Diffusion
            inpainting pools the redraws of each distinct input only with ``DiffusionSampling.pool_redraws``.
        pool_refresh: with a pool, the fraction of calls after which the served sample is dropped (drawn per call);
            the pool is topped up in one batch once half of it is gone. ``1.0`` serves every sample once; ``0.25``
            serves each about four times (with the chain's later random crops and flips on top) for a quarter of the
            generation cost, while the pool keeps turning over.
        match_intensity: map the synthetic image onto the incoming image's intensities instead of the training
            image's units: the model's ``[-1, 1]`` goes to the incoming image's per-channel min..max (or the
            ``intensity_percentiles``), so the transform can follow an intensity normalisation done earlier in the
            chain (for example the cached ``ScaleIntensityd``). ``False`` (default) returns the training image's
            units, and warns when the first sample's intensity range shares less than half with theirs.
        intensity_percentiles: with ``match_intensity``, the ``(low, high)`` percentiles of the incoming image that
            the model's ``[-1, 1]`` maps to; use the ones the model was trained with (``--percentiles``).
        diffusion: how diffusion models of the bank make pairs: a :class:`DiffusionSampling` or its fields as a
            dict (mode ``"inpaint"`` or ``"sample"``, steps, sampler, RePaint's jump length and resampling, label
            dilation); ignored by SinGAN-Seg models. ``start_scale`` and ``diversity`` are SinGAN-Seg's and are
            ignored by diffusion models.

    Example:
        >>> aug = SinGANSegAugment("models/", prob=0.5, start_scale=(0, 2), model_choice="random")  # doctest: +SKIP
        >>> image, label = aug(image, label)
    """

    backend: ClassVar[list[TransformBackends]] = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        models: ModelSource,
        prob: float = 0.5,
        start_scale: int | Sequence[int] = 0,
        model_choice: str = "matched",
        on_missing: str = "error",
        cache_size: int = 8,
        device: str | torch.device = "cpu",
        pool_size: int = 0,
        pool_refresh: float = 1.0,
        match_intensity: bool = False,
        intensity_percentiles: Sequence[float] | None = None,
        diversity: float | Sequence[float] = 0.4,
        diffusion: DiffusionSampling | dict[str, Any] | None = None,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.diffusion = DiffusionSampling.of(diffusion)
        if not 0.0 <= prob <= 1.0:  # NaN fails too: a transform that silently never fires helps nobody
            raise ValueError(f"prob must lie in [0, 1], got {prob}.")
        self.match_intensity = bool(match_intensity)
        if intensity_percentiles is not None and not 0 <= intensity_percentiles[0] < intensity_percentiles[1] <= 100:
            raise ValueError(f"intensity_percentiles must be (low, high) with 0 <= low < high <= 100, "
                             f"got {intensity_percentiles}.")
        self.intensity_percentiles = None if intensity_percentiles is None else tuple(intensity_percentiles)
        self._units_checked = False
        self._view_checked = False
        self.bank = models if isinstance(models, ModelBank) else ModelBank(models, cache_size, device)
        self.model_choice = look_up_option(model_choice, MODEL_CHOICES)
        self.on_missing = look_up_option(on_missing, ON_MISSING)
        self.start_range = _start_range(start_scale)
        low, high = (diversity, diversity) if np.isscalar(diversity) else tuple(diversity)
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"diversity must be a number in [0, 1] or a (low, high) range in it, got {diversity}.")
        self.diversity_range = (float(low), float(high))
        self._diversity = float(high)
        if int(pool_size) < 0:
            raise ValueError(f"pool_size must be >= 0 (0: no pool), got {pool_size}.")
        self.pool_size = int(pool_size)
        if not 0.0 < pool_refresh <= 1.0:
            raise ValueError(f"pool_refresh must lie in (0, 1], got {pool_refresh}.")
        self.pool_refresh = float(pool_refresh)
        # this call's pool draws: where in the pool the served sample sits (in [0, 1)), and whether it leaves
        self._pool_position = 0.0
        self._drop_served = True
        # by (model name, start scale); a diffusion model's by (model name, output spatial shape)
        self._pools: dict[tuple[str, Any], list[_PooledSample]] = {}
        # inpainting redraws by (model name, digest of the input pair and region), least recently used first
        self._redraw_pools: OrderedDict[tuple[str, str], list[_PooledSample]] = OrderedDict()
        self._seed = 0
        self._start = low
        self._random_name = self.bank.names[0]

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self._pools.clear()  # pooled samples came from the old random stream
        self._redraw_pools.clear()
        return self

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        if not self._do_transform:
            return
        self._seed = int(self.R.randint(0, MAX_SEED))
        self._start = int(self.R.randint(self.start_range[0], self.start_range[1] + 1))
        low, high = self.diversity_range
        # drawn only for a range, so a fixed diversity leaves the random stream of earlier versions unchanged
        self._diversity = float(self.R.uniform(low, high)) if high > low else high
        self._pool_position = float(self.R.rand())
        self._drop_served = bool(self.R.rand() < self.pool_refresh)
        names = self.bank.names
        self._random_name = names[int(self.R.randint(len(names)))]

    def select_model(self, name: str | None) -> tuple[str, PairGenerator] | None:
        """The model for a sample named ``name`` (``None`` when it has none and ``on_missing="skip"``)."""
        if self.model_choice == "random":
            return self._random_name, self.bank.get(self._random_name)
        name = _sample_name_or_none(name)
        if name is not None and name in self.bank:
            return name, self.bank.get(name)
        if len(self.bank) == 1:  # matching by name is for banks; one model serves every sample
            only = self.bank.names[0]
            return only, self.bank.get(only)
        if self.on_missing == "skip":
            return None
        models = f"models: {', '.join(self.bank.names[:5])}{', ...' if len(self.bank) > 5 else ''}"
        if name is None:
            raise SinGANSegInputError(
                f"model_choice='matched' found no sample name to match a model by ({models}): pass name= to "
                "SinGANSegAugment, or give SinGANSegAugmentd a model_key holding the image's file path or a "
                "MetaTensor with 'filename_or_obj' in its meta; else use model_choice='random'."
            )
        raise SinGANSegInputError(
            f"no SinGAN-Seg model for sample {name!r} ({models}); train one, use model_choice='random', "
            "or on_missing='skip'."
        )

    @staticmethod
    def _finish(model: PairGenerator, x: torch.Tensor, spatial: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw sample ``(1, C, *shape)`` in ``[-1, 1]`` -> image channels ``(C_img, *spatial)`` still in ``[-1, 1]``
        and label indices ``(1, *spatial)``; :meth:`_mapping` gives the map to the output's units."""
        n_img = model.config.image_channels
        resized = resize(x, spatial)[0]  # one resize of all channels
        # resizing the continuous mask channels before thresholding keeps outlines as smooth as the image's
        index = model.labels.indices(resized[n_img:], channel_dim=0).float()
        return resized[:n_img].clamp(-1.0, 1.0), index

    def _mapping(self, model: PairGenerator, image: NdarrayOrTensor, stacklevel: int = 4) -> IntensityMapping:
        """The map between the model's ``[-1, 1]`` and the output's units: the incoming image's intensities
        (``match_intensity``) or the training image's (checked on the first sample: a warning when the two ranges
        share less than half of their union, unless the incoming range is a tenth or more of the training range and
        inside it, as a crop's is)."""
        if self.match_intensity:
            incoming = torch.as_tensor(image).as_subclass(torch.Tensor).float()
            return IntensityMapping.fit(incoming, self.intensity_percentiles)
        if not self._units_checked:  # a units mismatch is a property of the chain: the first sample shows it
            self._units_checked = True
            low, high = model.intensity.lower, model.intensity.upper
            seen = IntensityMapping.fit(torch.as_tensor(image).as_subclass(torch.Tensor).float())
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
                        stacklevel=stacklevel,  # the line that called the transform
                    )
                    break
        return model.intensity

    def _generate(self, model: PairGenerator, num: int, start: int, spatial: tuple[int, ...]) -> torch.Tensor:
        """``num`` raw samples from the noise seeded by this call's draw from ``self.R`` (a pooled batch draws each
        sample's diversity from that seed too). A diffusion model draws them at ``spatial`` itself (rounded up to its
        UNet's multiple, then cropped), at the resolution it was trained at, instead of resizing its crop size."""
        generator = torch.Generator(device=model.device).manual_seed(self._seed)
        if isinstance(model, PairDiffusion):  # its own sampling options, no start scale or diversity
            d = self.diffusion
            return model.generate_at(num, spatial, d.steps, d.sampler, generator=generator, eta=d.eta)
        low, high = self.diversity_range
        diversity: float | torch.Tensor = self._diversity
        if num > 1 and high > low:
            diversity = low + (high - low) * torch.rand(num, generator=generator, device=model.device)
        return model.generate(num, start_scale=start, generator=generator, diversity=diversity)

    def _draw(self, name: str, model: PairGenerator, start: int, spatial: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        """A synthetic (image, label indices) at ``spatial``: generated now, or served from the pool."""
        if self.pool_size <= 0:
            return self._finish(model, self._generate(model, 1, start, spatial), spatial)
        # samples drawn at the output's size need one pool per size; samples resized to it, one per start scale
        pool = self._pools.setdefault((name, spatial if model.draws_at_any_size else start), [])
        if len(pool) <= self.pool_size // 2:
            more = self._generate(model, self.pool_size - len(pool), start, spatial)
            pool.extend(_PooledSample(x) for x in more.split(1))
        index = min(int(self._pool_position * len(pool)), len(pool) - 1)
        entry = pool.pop(index) if self._drop_served else pool[index]
        if spatial not in entry.finished:  # a sample served again at the same size skips the resize and decoding
            entry.finished[spatial] = self._finish(model, entry.raw, spatial)
        image, label = entry.finished[spatial]
        return image.clone(), label.clone()  # the chain may change its outputs in place; the pool must not change

    def __call__(
        self, image: NdarrayOrTensor, label: NdarrayOrTensor, name: str | None = None, randomize: bool = True
    ) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """Replace ``image`` ``(C, *spatial)`` and ``label`` ``(1, *spatial)`` with probability ``prob``.

        Args:
            image: the image channels the models were trained on, in the order they were stacked.
            label: the label (binary or class indices).
            name: the sample's name for ``model_choice="matched"`` (see :func:`model_name`).
            randomize: draw new random parameters first (``False`` when a dictionary wrapper already did).
        """
        if randomize:
            self.randomize()
        if not self._do_transform:
            return image, label
        chosen = self.select_model(name)
        if chosen is None:
            return image, label
        model_name, model = chosen
        cfg = model.config
        if image.shape[0] != cfg.image_channels or len(image.shape) - 1 != cfg.spatial_dims:
            where = self.bank.path(model_name) or model_name
            if len(image.shape) == cfg.spatial_dims:  # "the data has 256 channels" hid the missing channel axis
                raise SinGANSegInputError(
                    f"{where}: the image of shape {tuple(image.shape)} has no channel axis ({cfg.spatial_dims}D model "
                    f"of {cfg.image_channels} image channel(s) wants (C, *spatial)); add EnsureChannelFirstd (or "
                    "LoadImaged(..., ensure_channel_first=True)) before this transform, for the image and the label."
                )
            if image.shape[0] != cfg.image_channels:
                raise SinGANSegInputError(
                    f"{where}: model makes {cfg.image_channels} image channel(s), the data has {image.shape[0]}."
                )
            raise SinGANSegInputError(f"{where}: {cfg.spatial_dims}D model, {len(image.shape) - 1}D data.")
        self._check_pair(image, label, name)
        top = self._label_top(model, model_name, label, name)
        if isinstance(model, PairDiffusion):
            self.diffusion.check_model(model.config, str(self.bank.path(model_name) or model_name))
            if self.diffusion.mode == "inpaint":
                return self._inpaint(model_name, model, image, label, top)
        start = 0
        if isinstance(model, SinGANSeg):  # start scales are a pyramid's
            last = model.num_scales - 1
            if self.start_range[0] > last:  # every draw would be clipped: the range asked for does not exist here
                raise SinGANSegInputError(
                    f"{self.bank.path(model_name) or model_name}: start_scale {self.start_range[0]} is beyond the "
                    f"model's last scale {last} ({model.num_scales} scales); ask for at most {last}."
                )
            start = min(self._start, last)  # a range reaching past a smaller model of the bank ends at its last scale
        spatial = tuple(image.shape[1:])
        affine = getattr(image, "affine", None)  # a MetaTensor's: where the incoming voxels lie
        source = model.source
        change = None if affine is None or "affine" not in source else orientation_change(
            source["affine"], affine, cfg.spatial_dims)
        if affine is not None and not self._view_checked and "shape" in source and not model.draws_at_any_size:
            self._check_view(source, affine, spatial, change, self.bank.path(model_name) or model_name)
        # drawn in the model's own axis order, then turned into the incoming image's orientation
        shape = spatial if change is None else tuple(spatial[int(axis)] for axis in change[:, 0])
        raw_image, index = self._draw(model_name, model, start, shape)
        if change is not None:
            raw_image, index = reorient(raw_image, change), reorient(index, change)
        fake_image = self._mapping(model, image, stacklevel=3).denormalize(raw_image, channel_dim=0)
        return self._output(image, label, fake_image, index, top)

    def _check_view(self, source: dict, affine: Any, spatial: tuple[int, ...], change: np.ndarray | None,
                    where: Any) -> None:
        """Warn once when the incoming image covers much less than the model's training image (a crop before the
        transform): the synthetic pair is the whole training field of view resized into it, its structures shrunk."""
        self._view_checked = True
        trained = field_of_view(source["affine"], source["shape"])
        if change is not None:
            trained = trained[np.argsort(change[:, 0])]  # in the incoming image's axis order
        ratio = float(np.min(field_of_view(affine, spatial) / trained))
        if ratio < 0.5:
            warnings.warn(
                f"SinGANSegAugment: the incoming image covers {ratio:.2g} of the field of view of the training image "
                f"of {where} along an axis; the synthetic pair is that whole view resized into the incoming shape, so "
                f"its structures come out {1 / ratio:.1f}x smaller. Crop after this transform, not before.",
                stacklevel=3,  # the line that called the transform
            )

    def _check_pair(self, image: NdarrayOrTensor, label: NdarrayOrTensor, name: str | None) -> None:
        """The label must be one channel of the image's spatial size (the pair is replaced as a whole), and what the
        transform reads must be finite: a NaN would spread to the whole synthetic image through the intensity map."""
        sample = _sample_name_or_none(name) or "sample"
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
            if not bool(torch.isfinite(torch.as_tensor(value).as_subclass(torch.Tensor)).all()):
                raise SinGANSegInputError(f"{sample}: the {what} holds NaN or infinite values.")

    def _label_top(self, model: PairGenerator, model_name: str, label: NdarrayOrTensor, name: str | None) -> float:
        """The foreground value of a binary ``label`` (1 after AsDiscreted, 255 from a PNG), checked binary; 0 for the
        class indices a one-hot model takes."""
        if model.labels.one_hot:
            return 0.0
        # plain tensor: MetaTensor ops are slow
        plain = torch.as_tensor(label).as_subclass(torch.Tensor)
        top = float(plain.max()) if plain.numel() else 0.0
        if bool(((plain != 0) & (plain != top)).any()):  # e.g. 0/0.5/1 from an interpolating resize
            values = torch.unique(plain).tolist()
            shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
            raise SinGANSegInputError(
                f"{_sample_name_or_none(name) or 'sample'}: the label is not binary (values {shown}); the model {self.bank.path(model_name) or model_name} makes binary masks. Threshold "
                "it first (AsDiscreted) or resize labels with mode='nearest'."
            )
        return top

    @staticmethod
    def _output(
        image: NdarrayOrTensor, label: NdarrayOrTensor, fake_image: torch.Tensor, index: torch.Tensor, top: float
    ) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """The synthetic image (output units) and label indices in the incoming image's and label's type, dtype and
        values (a binary label's foreground value ``top``; class indices for one-hot models)."""
        label_t = torch.as_tensor(label)
        fake_label = index * top if top > 0 else index
        out_image = convert_to_dst_type(fake_image.to(torch.as_tensor(image).device), image, dtype=image.dtype)[0]
        out_label = convert_to_dst_type(fake_label.to(label_t.device), label, dtype=label.dtype)[0]
        return out_image, out_label

    def _inpaint(
        self, name: str, model: PairDiffusion, image: NdarrayOrTensor, label: NdarrayOrTensor, top: float
    ) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """Redraw the incoming label's region (dilated) inside the incoming image with the diffusion ``model``
        (``name``: its name in the bank, for the pool)."""
        # all on the CPU (the model's device only inside inpaint_pair), whatever device the chain put the data on
        index = torch.as_tensor(label).as_subclass(torch.Tensor).detach().cpu().float()  # shape: _check_pair
        if top > 0:
            index = (index != 0).float()
        elif bool(((index < 0) | (index >= model.labels.channels) | (index != index.round())).any()):
            raise SinGANSegInputError(
                f"the label holds values other than the class indices 0..{model.labels.channels - 1} of this "
                f"{model.labels.channels}-class model."
            )
        region = label_region(index, self.diffusion.dilation)
        if not bool(region.any()):  # nothing to redraw around: the sample passes through
            return image, label
        mapping = self._mapping(model, image)
        real_image = torch.as_tensor(image).as_subclass(torch.Tensor).detach().cpu()
        pair = model.join(real_image, index, indices=True, intensity=mapping).clamp(-1.0, 1.0)
        generator = torch.Generator(device=model.device).manual_seed(self._seed)
        out = self._redraw(name, model, pair, region, generator)
        n_img = model.config.image_channels
        # outside the region the incoming values themselves (dtype too), not a round trip through [-1, 1]
        fake_image = torch.where(region, mapping.denormalize(out[:n_img]).to(real_image.dtype), real_image)
        new_index = torch.where(region, model.labels.indices(out[n_img:]).float(), index)
        return self._output(image, label, fake_image, new_index, top)


    def _redraw(self, name: str, model: PairDiffusion, pair: torch.Tensor, region: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
        """One inpainted ``pair`` ``(C, *spatial)``: drawn now, or with a pool, served from the redraws of this very
        input (the same image, label and region: a cached sample before the chain's random crops), which are made
        in batches of ``pool_size`` like the pools of new pairs."""
        if self.pool_size <= 0 or not self.diffusion.pool_redraws:
            return inpaint_pair(model, pair, region, self.diffusion, 1, generator)[0].cpu()
        digest = hashlib.sha1(pair.numpy().tobytes() + region.numpy().tobytes()).hexdigest()
        pool = self._redraw_pools.setdefault((name, digest), [])
        self._redraw_pools.move_to_end((name, digest))  # least recently used first, dropped beyond the limit
        while len(self._redraw_pools) > REDRAW_POOL_INPUTS:
            self._redraw_pools.popitem(last=False)
        if len(pool) <= self.pool_size // 2:
            more = inpaint_pair(model, pair, region, self.diffusion, self.pool_size - len(pool), generator).cpu()
            pool.extend(_PooledSample(x) for x in more.split(1))
        index = min(int(self._pool_position * len(pool)), len(pool) - 1)
        entry = pool.pop(index) if self._drop_served else pool[index]
        return entry.raw[0].clone()


SyntheticPairAugment = SinGANSegAugment
