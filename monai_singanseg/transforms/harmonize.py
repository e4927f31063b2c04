"""Array transform: insert a donor lesion into an image and harmonize it with the image's own SinGAN-Seg model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from monai.config import NdarrayOrTensor
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, look_up_option

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generator_protocol import PairGenerator
from monai_singanseg.harmonization import BLEND_DILATION, harmonize
from monai_singanseg.transforms.draw import HarmonizeDraw, draw_harmonization
from monai_singanseg.transforms.model_bank import ModelBank, ModelSource
from monai_singanseg.transforms.model_choice import ModelChoice

__all__ = ["HarmonizeDraw", "SinGANSegHarmonize"]


class SinGANSegHarmonize(RandomizableTransform):
    """With probability ``prob``, paste a donor lesion into an image and let the image's model redraw it.

    The operation of :func:`~monai_singanseg.harmonization.harmonize` as a random MONAI transform: a donor pair is
    drawn from ``donors``, pasted at a random place (its centre inside ``region`` when given), injected at a scale
    drawn from ``at_scale`` of the model trained on this image, and blended back (SinGAN's harmonization, Shaham et
    al., ICCV 2019). The image keeps its shape, type (numpy or MetaTensor, metadata and affine included) and dtype;
    the lesion's mask comes back like ``label`` (or like the image when no label is given), with the donor mask's
    value. All randomness comes from ``self.R``, so ``set_random_state`` reproduces a result exactly: :meth:`randomize`
    draws a call's parameters into one :class:`HarmonizeDraw`, kept as :attr:`last_draw`, and :meth:`apply` inserts
    the lesion from it deterministically, so ``harmonizer.apply(image, label, harmonizer.last_draw, region, name)``
    explains or remakes the last result. Nothing is recorded in ``applied_operations``: the content changes, not
    the geometry.

    Args:
        models: checkpoint path, folder, loaded models, a list of these, or a :class:`ModelBank`; each model must be
            trained on the image it harmonizes (the sample's name picks it; a bank of one model serves any image).
        donors: ``(image, mask)`` pairs, ``(C, *spatial)`` and ``(1, *spatial)``, in the models' image units.
        prob: probability of inserting a lesion.
        at_scale: int or inclusive ``(low, high)`` range drawn per call; clipped to each model's scales. 2-3 suit
            tumours; 0 redraws everything.
        mode: ``"harmonize"`` (tight blend around the lesion) or ``"edit"`` (wide blend).
        cache_size: checkpoints kept loaded at once.
        device: where generation runs.

    Attributes:
        last_draw: the parameters of the last call (:class:`HarmonizeDraw`): whether it fired, the scale of
            injection, the donor and the seed of the lesion's place and the model's noise.

    Example:
        >>> harmonizer = SinGANSegHarmonize("models/", donors=[(donor, donor_mask)], prob=1.0)  # doctest: +SKIP
        >>> image, lesion = harmonizer(image, name="case_001", region=brain_mask)
        >>> harmonizer.last_draw  # HarmonizeDraw(apply=True, at_scale=2, donor=0, seed=...)
        >>> again, _ = harmonizer.apply(image, None, harmonizer.last_draw, region=brain_mask, name="case_001")
    """

    backend: ClassVar[list[TransformBackends]] = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        models: ModelSource,
        donors: Sequence[tuple[NdarrayOrTensor, NdarrayOrTensor]],
        prob: float = 0.5,
        at_scale: int | Sequence[int] = 2,
        mode: str = "harmonize",
        cache_size: int = 8,
        device: str | torch.device = "cpu",
    ) -> None:
        if not 0.0 <= prob <= 1.0:  # NaN fails too
            raise ValueError(f"prob must lie in [0, 1], got {prob}.")
        RandomizableTransform.__init__(self, prob)
        if not donors:
            raise ValueError("donors must hold at least one (image, mask) pair.")
        low, high = (at_scale, at_scale) if isinstance(at_scale, int) else tuple(at_scale)
        if not 0 <= low <= high:
            raise ValueError(f"at_scale must be an int >= 0 or a (low, high) range, got {at_scale}.")
        self.scale_range = (int(low), int(high))
        self.mode = look_up_option(mode, tuple(BLEND_DILATION))
        self.donors = [(torch.as_tensor(i).float(), torch.as_tensor(m).float()) for i, m in donors]
        bank = models if isinstance(models, ModelBank) else ModelBank(models, cache_size, device)
        # "skip" so that this transform raises its own message: harmonizing has no random model to fall back on
        self.models = ModelChoice(bank, "matched", "skip")
        # what a call with randomize=False used before any randomize, as in the first version (scale, donor, seed 0)
        self.last_draw = HarmonizeDraw(True, 0, 0, 0)

    @property
    def bank(self) -> ModelBank:
        """The models."""
        return self.models.bank

    def randomize(self, data: Any = None) -> None:
        """Draw the next call's parameters from ``self.R`` into :attr:`last_draw`."""
        super().randomize(None)
        self.last_draw = draw_harmonization(self.R, self._do_transform, self.scale_range, len(self.donors),
                                            self.last_draw)

    def select_model(self, name: str | None) -> PairGenerator:
        """The model trained on the image named ``name``; the only one, whatever the name, when the bank holds one.

        Raises:
            SinGANSegInputError: no model for ``name``, or one that cannot inject an image at a scale
                (:attr:`~monai_singanseg.generator_protocol.PairGenerator.supports_injection`).
        """
        chosen = self.models.select(name, self.bank.names[0])  # "matched": the drawn name is never used
        if chosen is None:
            raise SinGANSegInputError(f"no SinGAN-Seg model for sample {name!r}: train one on this image first.")
        model_name, model = chosen
        if not model.supports_injection:  # injection at a scale needs a pyramid; use SyntheticPairAugment's inpaint
            raise SinGANSegInputError(
                f"{self.models.where(model_name)}: a {model.display_name} model; harmonization injects at a scale of a "
                "SinGAN-Seg model (diffusion models insert structures by inpainting: SyntheticPairAugment)."
            )
        return model

    def __call__(
        self,
        image: NdarrayOrTensor,
        label: NdarrayOrTensor | None = None,
        region: NdarrayOrTensor | None = None,
        name: str | None = None,
        randomize: bool = True,
    ) -> tuple[NdarrayOrTensor, NdarrayOrTensor | None]:
        """Insert and harmonize a lesion with probability ``prob``.

        Args:
            image: ``(C, *spatial)`` in the models' image units.
            label: optional; when given, the lesion mask takes its type, dtype and metadata.
            region: optional ``(1, *spatial)`` mask of allowed lesion centres (e.g. the brain).
            name: the image's name, to pick its model (see :func:`~monai_singanseg.io.model_name`).
            randomize: draw new random parameters first (``False`` when a dictionary wrapper already did).

        Returns:
            ``(image, lesion)``: the harmonized image and the pasted lesion's mask ``(1, *spatial)``; unchanged
            ``(image, label)`` when the transform does not fire.
        """
        if randomize:
            self.randomize()
        return self.apply(image, label, self.last_draw, region, name)

    def apply(
        self,
        image: NdarrayOrTensor,
        label: NdarrayOrTensor | None,
        draw: HarmonizeDraw,
        region: NdarrayOrTensor | None = None,
        name: str | None = None,
    ) -> tuple[NdarrayOrTensor, NdarrayOrTensor | None]:
        """What ``draw`` makes of ``image`` (see :meth:`__call__`), drawing nothing.

        ``apply(image, label, transform.last_draw, region, name)`` makes again the last call's image and lesion.
        """
        if not draw.apply:
            return image, label
        model = self.select_model(name)
        donor, donor_mask = self.donors[draw.donor]
        region_t = None if region is None else torch.as_tensor(region).as_subclass(torch.Tensor).float().cpu()
        target = torch.as_tensor(image).as_subclass(torch.Tensor).float().cpu()
        at_scale = min(draw.at_scale, model.num_scales - 1)
        out, lesion, _ = harmonize(model, target, donor, donor_mask, at_scale, region=region_t, seed=draw.seed,
                                   mode=self.mode)
        like = image if label is None else label
        out_image = convert_to_dst_type(out, image, dtype=image.dtype)[0]
        out_label = convert_to_dst_type(lesion, like, dtype=getattr(like, "dtype", torch.float32))[0]
        return out_image, out_label
