"""Harmonization and editing by injection: paste a donor lesion, let a SinGAN-Seg model redraw it from scale K.

SinGAN (Shaham et al., ICCV 2019) harmonizes a pasted object by injecting the composite at a scale of a model
trained on the background image and running the finer scales; MediSinGAN-style tumour harmonization does the same
with a lesion cut from another scan. Harmonization blends the result back under a slightly dilated, blurred lesion
mask, so far-away pixels stay the target's own; editing uses a much wider blend, so the model may also reshape the
surroundings of the edit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import GaussianSmooth
from monai.transforms.utils_morphological_ops import dilate

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.networks import SinGANSeg
from monai_singanseg.networks.wrappers import inject

__all__ = ["BLEND_DILATION", "blend_weights", "harmonize", "paste_lesion"]

BLEND_DILATION = {"harmonize": 2, "edit": 12}


def _box(mask: torch.Tensor) -> tuple[slice, ...]:
    coords = torch.nonzero(mask[0] > 0)
    if coords.numel() == 0:
        raise SinGANSegInputError("donor label: empty mask (no lesion to paste).")
    low, high = coords.min(0).values, coords.max(0).values + 1
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def paste_lesion(
    target: torch.Tensor,
    donor: torch.Tensor,
    donor_mask: torch.Tensor,
    location: Sequence[int] | None = None,
    region: torch.Tensor | None = None,
    rng: np.random.RandomState | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy the donor's pixels under its mask into ``target``.

    Args:
        target: ``(C, *spatial)`` image. donor: ``(C, *spatial')`` image in the same units. donor_mask: ``(1, ...)``.
        location: where the lesion's bounding-box centre goes (voxel indices); by default a random place where the
            box fits, with its centre inside ``region`` when given.
        region: ``(1, *spatial)`` mask of allowed centres (e.g. the brain).
        rng: random state for the location.

    Returns:
        ``(composite, pasted_mask)``: the target with the lesion, and the lesion's mask at its new place.
    """
    box = _box(donor_mask)
    size = [s.stop - s.start for s in box]
    spatial = target.shape[1:]
    if location is not None and len(location) != len(spatial):
        raise SinGANSegInputError(f"location {tuple(location)}: {len(location)} coordinate(s) for a "
                                  f"{len(spatial)}D image.")
    if any(s > t for s, t in zip(size, spatial)):
        raise SinGANSegInputError(f"donor lesion {tuple(size)} is larger than the target {tuple(spatial)}.")
    if location is None:
        rng = rng or np.random.RandomState()
        allowed = torch.ones(spatial, dtype=torch.bool) if region is None else region[0] > 0
        fits = torch.zeros(spatial, dtype=torch.bool)
        fits[tuple(slice(s // 2, t - (s - s // 2) + 1) for s, t in zip(size, spatial))] = True
        candidates = torch.nonzero(allowed & fits)
        if len(candidates) == 0:
            raise SinGANSegInputError("no place in the region where the donor lesion fits.")
        location = candidates[rng.randint(len(candidates))].tolist()
    start = [int(c) - s // 2 for c, s in zip(location, size)]
    if any(a < 0 or a + s > t for a, s, t in zip(start, size, spatial)):
        raise SinGANSegInputError(f"location {tuple(location)}: the lesion {tuple(size)} does not fit there.")
    dest = tuple(slice(a, a + s) for a, s in zip(start, size))
    lesion = donor_mask[(slice(None), *box)] > 0
    composite = target.clone()
    composite[(slice(None), *dest)] = torch.where(lesion, donor[(slice(None), *box)], target[(slice(None), *dest)])
    pasted = torch.zeros((1, *spatial), dtype=torch.float32)
    pasted[(slice(None), *dest)] = lesion.float()
    return composite, pasted


def blend_weights(mask: torch.Tensor, dilation: int, sigma: float = 1.5) -> torch.Tensor:
    """``mask`` ``(1, *spatial)`` (nonzero inside) dilated by ``dilation`` pixels and blurred: weights in ``[0, 1]``."""
    dilated = dilate(mask[None].float(), filter_size=2 * dilation + 1)[0]  # MONAI's binary dilation, a cubic box
    return GaussianSmooth(sigma=sigma)(dilated).clamp(0.0, 1.0).as_subclass(torch.Tensor)


@torch.no_grad()
def harmonize(
    model: SinGANSeg,
    target: torch.Tensor,
    donor: torch.Tensor,
    donor_mask: torch.Tensor,
    at_scale: int,
    location: Sequence[int] | None = None,
    region: torch.Tensor | None = None,
    seed: int = 0,
    mode: str = "harmonize",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paste a donor lesion into ``target`` and let ``model`` (trained on the target) redraw it from ``at_scale``.

    Args:
        model: a model trained on the target image (image + mask or image channels only).
        target: ``(C, *spatial)`` in the model's image units. donor, donor_mask: the lesion's image and mask.
        at_scale: scale where the composite is injected (studies found 2-3 best for tumours); 0 redraws everything.
        location, region: where the lesion goes (see :func:`paste_lesion`).
        seed: seeds the location draw and the model's noise.
        mode: ``"harmonize"`` (tight blend) or ``"edit"`` (wide blend).

    Returns:
        ``(image, label, composite)``: the harmonized image in the target's units, the pasted lesion's mask with
        the donor's label value, and the naive paste for comparison.
    """
    if mode not in BLEND_DILATION:
        raise ValueError(f"mode must be one of {tuple(BLEND_DILATION)}, got {mode!r}.")
    cfg = model.config
    if target.shape[0] != cfg.image_channels or donor.shape[0] != cfg.image_channels:
        raise SinGANSegInputError(
            f"the model makes {cfg.image_channels} image channel(s); target has {target.shape[0]}, "
            f"donor {donor.shape[0]}."
        )
    if not 0 <= at_scale < model.num_scales:
        raise SinGANSegInputError(f"the scale of injection must lie in [0, {model.num_scales - 1}], got {at_scale}.")
    target, donor, donor_mask = (torch.as_tensor(t).float().cpu() for t in (target, donor, donor_mask))
    for name, value in (("target", target), ("donor", donor), ("donor mask", donor_mask)):
        if value.ndim - 1 != cfg.spatial_dims:
            raise SinGANSegInputError(f"{name}: a {value.ndim - 1}D image for a {cfg.spatial_dims}D model.")
        if not bool(torch.isfinite(value).all()):
            raise SinGANSegInputError(f"{name}: holds NaN or infinite values.")
    composite, pasted = paste_lesion(target, donor, donor_mask, location, region, np.random.RandomState(seed))
    x = model.intensity.normalize(composite)
    if cfg.mask_channels:
        x = torch.cat([x, model.labels.encode(pasted * model.labels.values[-1])])
    out = inject(model, x[None], at_scale, seed)
    redrawn = model.intensity.denormalize(out[0, : cfg.image_channels].cpu())
    weights = blend_weights(pasted, BLEND_DILATION[mode])
    image = weights * redrawn + (1.0 - weights) * target
    lesion_value = float(donor_mask[donor_mask > 0].max())
    return image, pasted * lesion_value, composite
