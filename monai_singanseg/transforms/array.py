"""Array transform: replace an (image, label) pair by a fresh synthetic pair from a SinGAN-Seg or diffusion model.

The transform only orchestrates; each job has its module: :mod:`.draw` (the random parameters, drawn into one
:class:`AugmentDraw`), :mod:`.model_choice` (which model of the bank), :mod:`.input_checks` (errors and warnings),
:mod:`.sampling` (how each generator kind makes pairs), :mod:`.sample_pool` (batched samples) and :mod:`.pair_output`
(resize, decoding, the incoming types).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends

from monai_singanseg.diffusion.config import DiffusionSampling
from monai_singanseg.diffusion.inpainting import label_region
from monai_singanseg.generator_protocol import PairGenerator
from monai_singanseg.intensity import IntensityMapping
from monai_singanseg.transforms.draw import AugmentDraw, draw_parameters
from monai_singanseg.transforms.geometry import orientation_change, reorient
from monai_singanseg.transforms.input_checks import PairChecks
from monai_singanseg.transforms.model_bank import ModelBank, ModelSource
from monai_singanseg.transforms.model_choice import MODEL_CHOICES, ON_MISSING, ModelChoice
from monai_singanseg.transforms.pair_output import finish, to_output
from monai_singanseg.transforms.sample_pool import SamplePool
from monai_singanseg.transforms.sampling import SAMPLERS, PairSampler, SamplingOptions, sampler_for

__all__ = ["MODEL_CHOICES", "ON_MISSING", "REDRAW_POOL_INPUTS", "AugmentDraw", "SinGANSegAugment",
           "SyntheticPairAugment"]

REDRAW_POOL_INPUTS = 64
"""Distinct inputs whose pooled inpainting redraws a transform keeps (``DiffusionSampling.pool_redraws``)."""

_CALLER = 4  # stack levels from a method that applies a draw (_new_pair, _inpaint) to the line calling the transform


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
    All randomness comes from ``self.R``, so ``set_random_state`` reproduces a sample exactly: :meth:`randomize`
    draws a call's parameters into one :class:`AugmentDraw`, kept as :attr:`last_draw`, and :meth:`apply` makes the
    pair from it deterministically, so ``aug.apply(image, label, aug.last_draw)`` explains or remakes the last
    augmented sample (with a pool, the pool's contents take part too). Nothing is recorded in
    ``applied_operations``: the pair is replaced, not moved, and earlier spatial transforms stay invertible.

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

    Attributes:
        last_draw: the parameters of the last call (:class:`AugmentDraw`): whether it replaced the sample, the seed,
            start scale, diversity, pool decisions and the randomly chosen model.

    Example:
        >>> aug = SinGANSegAugment("models/", prob=0.5, start_scale=(0, 2), model_choice="random")  # doctest: +SKIP
        >>> out_image, out_label = aug(image, label)
        >>> aug.last_draw  # what it was made with: AugmentDraw(apply=True, seed=..., start_scale=1, ...)
        >>> again_image, again_label = aug.apply(image, label, aug.last_draw)  # the same pair again
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
        diffusion = DiffusionSampling.of(diffusion)
        if not 0.0 <= prob <= 1.0:  # NaN fails too: a transform that silently never fires helps nobody
            raise ValueError(f"prob must lie in [0, 1], got {prob}.")
        if intensity_percentiles is not None and not 0 <= intensity_percentiles[0] < intensity_percentiles[1] <= 100:
            raise ValueError(f"intensity_percentiles must be (low, high) with 0 <= low < high <= 100, "
                             f"got {intensity_percentiles}.")
        self.intensity_percentiles = None if intensity_percentiles is None else tuple(intensity_percentiles)
        self.checks = PairChecks(bool(match_intensity))
        bank = models if isinstance(models, ModelBank) else ModelBank(models, cache_size, device)
        self.models = ModelChoice(bank, model_choice, on_missing)
        self.options = SamplingOptions.of(start_scale, diversity, diffusion)
        self.samplers: dict[str, PairSampler] = {kind: cls(self.options) for kind, cls in SAMPLERS.items()}
        if int(pool_size) < 0:
            raise ValueError(f"pool_size must be >= 0 (0: no pool), got {pool_size}.")
        if not 0.0 < pool_refresh <= 1.0:
            raise ValueError(f"pool_refresh must lie in (0, 1], got {pool_refresh}.")
        self.pool_refresh = float(pool_refresh)
        # new pairs by (model name, start scale), a diffusion model's by (model name, output spatial shape)
        self.pool = SamplePool(int(pool_size))
        # inpainting redraws by (model name, digest of the input pair and region), least recently used dropped
        self.redraws = SamplePool(int(pool_size), max_keys=REDRAW_POOL_INPUTS)
        low, high = self.start_range[0], self.diversity_range[1]
        self.last_draw = AugmentDraw(True, 0, low, high, 0.0, True, bank.names[0])  # before the first randomize

    @property
    def bank(self) -> ModelBank:
        """The models."""
        return self.models.bank

    @property
    def model_choice(self) -> str:
        """``"matched"`` or ``"random"``."""
        return self.models.model_choice

    @property
    def on_missing(self) -> str:
        """``"error"`` or ``"skip"``."""
        return self.models.on_missing

    @property
    def start_range(self) -> tuple[int, int]:
        """Inclusive ``(low, high)`` start scales."""
        return self.options.start_range

    @property
    def diversity_range(self) -> tuple[float, float]:
        """``(low, high)`` diversity."""
        return self.options.diversity_range

    @property
    def diffusion(self) -> DiffusionSampling:
        """How diffusion models make pairs."""
        return self.options.diffusion

    @property
    def match_intensity(self) -> bool:
        """Map onto the incoming image's intensities."""
        return self.checks.match_intensity

    @property
    def pool_size(self) -> int:
        """Pooled samples per model and start scale (0: no pool)."""
        return self.pool.size

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.pool.clear()  # pooled samples came from the old random stream
        self.redraws.clear()
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw the next call's parameters from ``self.R`` into :attr:`last_draw`."""
        super().randomize(None)
        self.last_draw = draw_parameters(self.R, self._do_transform, self.start_range, self.diversity_range,
                                         self.pool_refresh, self.bank.names, self.last_draw)

    def select_model(self, name: str | None) -> tuple[str, PairGenerator] | None:
        """The model for a sample named ``name`` (``None`` when it has none and ``on_missing="skip"``)."""
        return self.models.select(name, self.last_draw.random_model)

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
        return self.apply(image, label, self.last_draw, name)

    def apply(
        self, image: NdarrayOrTensor, label: NdarrayOrTensor, draw: AugmentDraw, name: str | None = None
    ) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """The pair ``draw`` makes of ``image`` and ``label`` (see :meth:`__call__`), drawing nothing.

        ``apply(image, label, transform.last_draw)`` makes again the last call's pair of the same input; with a
        pool, which sample is served also depends on the pool's contents.
        """
        if not draw.apply:
            return image, label
        chosen = self.models.select(name, draw.random_model)
        if chosen is None:
            return image, label
        model_name, model = chosen
        where = self.models.where(model_name)
        self.checks.channels(image, model.config, where)
        self.checks.pair(image, label, name)
        top = self.checks.label_top(model, where, label, name)
        sampler = sampler_for(model, self.samplers)
        sampler.check(model, where)
        if sampler.inpaints:
            return self._inpaint(model_name, model, sampler, image, label, top, draw)
        return self._new_pair(model_name, model, sampler, image, label, top, draw)

    def _mapping(self, model: PairGenerator, image: NdarrayOrTensor) -> IntensityMapping:
        """The map between the model's ``[-1, 1]`` and the output's units: the incoming image's intensities
        (``match_intensity``) or the training image's (checked once against the incoming ones)."""
        if self.match_intensity:
            incoming = torch.as_tensor(image).as_subclass(torch.Tensor).float()
            return IntensityMapping.fit(incoming, self.intensity_percentiles)
        self.checks.units(model, image, stacklevel=_CALLER + 1)
        return model.intensity

    def _new_pair(
        self, model_name: str, model: PairGenerator, sampler: PairSampler, image: NdarrayOrTensor,
        label: NdarrayOrTensor, top: float, draw: AugmentDraw,
    ) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """A new pair in place of ``image`` and ``label``, in the incoming image's orientation, size and units."""
        spatial = tuple(image.shape[1:])
        affine = getattr(image, "affine", None)  # a MetaTensor's: where the incoming voxels lie
        source, dims = model.source, model.config.spatial_dims
        change = None if affine is None or "affine" not in source else orientation_change(
            source["affine"], affine, dims)
        self.checks.view(model, affine, spatial, change, where=self.models.where(model_name), stacklevel=_CALLER)
        # drawn in the model's own axis order, then turned into the incoming image's orientation
        shape = spatial if change is None else tuple(spatial[int(axis)] for axis in change[:, 0])
        raw_image, index = self._sample(model_name, model, sampler, draw, shape)
        if change is not None:
            raw_image, index = reorient(raw_image, change), reorient(index, change)
        fake_image = self._mapping(model, image).denormalize(raw_image, channel_dim=0)
        return to_output(image, label, fake_image, index, top)

    def _sample(self, model_name: str, model: PairGenerator, sampler: PairSampler, draw: AugmentDraw,
                spatial: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """A synthetic (image in ``[-1, 1]``, label indices) at ``spatial``: generated now, or served from the pool."""
        if self.pool.size <= 0:
            return finish(model, sampler.generate(model, 1, draw, spatial), spatial)
        key = (model_name, sampler.pool_key(model, draw, spatial))
        entry = self.pool.serve(key, lambda num: sampler.generate(model, num, draw, spatial), draw.pool_position,
                                draw.drop_served)
        if spatial not in entry.finished:  # a sample served again at the same size skips the resize and decoding
            entry.finished[spatial] = finish(model, entry.raw, spatial)
        image, index = entry.finished[spatial]
        return image.clone(), index.clone()  # the chain may change its outputs in place; the pool must not change

    def _inpaint(
        self, model_name: str, model: PairGenerator, sampler: PairSampler, image: NdarrayOrTensor,
        label: NdarrayOrTensor, top: float, draw: AugmentDraw,
    ) -> tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """Redraw the incoming label's region (dilated) inside the incoming image; an empty label passes through."""
        # all on the CPU (the model's device only inside the sampler), whatever device the chain put the data on
        index = torch.as_tensor(label).as_subclass(torch.Tensor).detach().cpu().float()  # shape: checks.pair
        if top > 0:
            index = (index != 0).float()
        else:
            self.checks.class_indices(index, model.labels.channels)
        region = label_region(index, self.diffusion.dilation)
        if not bool(region.any()):  # nothing to redraw around: the sample passes through
            return image, label
        mapping = self._mapping(model, image)
        real_image = torch.as_tensor(image).as_subclass(torch.Tensor).detach().cpu()
        pair = model.join(real_image, index, indices=True, intensity=mapping).clamp(-1.0, 1.0)
        out = self._redraw(model_name, model, sampler, pair, region, draw)
        n_img = model.config.image_channels
        # outside the region the incoming values themselves (dtype too), not a round trip through [-1, 1]
        fake_image = torch.where(region, mapping.denormalize(out[:n_img]).to(real_image.dtype), real_image)
        new_index = torch.where(region, model.labels.indices(out[n_img:]).float(), index)
        return to_output(image, label, fake_image, new_index, top)

    def _redraw(self, model_name: str, model: PairGenerator, sampler: PairSampler, pair: torch.Tensor,
                region: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
        """One inpainted ``pair`` ``(C, *spatial)``: drawn now, or with a pool, served from the redraws of this very
        input (the same image, label and region: a cached sample before the chain's random crops), which are made
        in batches of ``pool_size`` like the pools of new pairs."""
        if self.pool.size <= 0 or not self.diffusion.pool_redraws:
            return sampler.inpaint(model, pair, region, 1, draw)[0]
        digest = hashlib.sha1(pair.numpy().tobytes() + region.numpy().tobytes()).hexdigest()
        entry = self.redraws.serve((model_name, digest), lambda num: sampler.inpaint(model, pair, region, num, draw),
                                   draw.pool_position, draw.drop_served)
        return entry.raw[0].clone()


SyntheticPairAugment = SinGANSegAugment
