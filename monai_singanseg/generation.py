"""Writing synthetic pairs to disk: for one model (``singanseg sample``) or a folder of models (the bundle)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from monai_singanseg.config import OUTPUT_FORMATS
from monai_singanseg.diffusion.config import DiffusionSampling
from monai_singanseg.diffusion.inpainting import inpaint_pair, label_region
from monai_singanseg.diffusion.model import PairDiffusion
from monai_singanseg.errors import SamplesInterrupted, SinGANSegInputError
from monai_singanseg.files import atomic_write, atomic_write_together, check_output_folder, is_disk_full
from monai_singanseg.generator_protocol import PairGenerator
from monai_singanseg.generators import load_generator
from monai_singanseg.io import image_writer
from monai_singanseg.networks import SinGANSeg
from monai_singanseg.visualize import save_pair_grid

__all__ = ["check_format", "output_affine", "output_format", "sample_bank", "write_diffusion_samples", "write_generated",
           "write_samples"]

logger = logging.getLogger(__name__)


def output_affine(model: PairGenerator, shape: Sequence[int]) -> np.ndarray:
    """The source affine with its spacing stretched from the source shape to ``shape`` (origin kept); a model that
    draws at any size (diffusion) works at the training images' own resolution, so its samples keep the source
    spacing (:meth:`~monai_singanseg.generator_protocol.PairGenerator.output_affine`)."""
    return model.output_affine(shape)


def write_samples(
    model: SinGANSeg,
    out: str | os.PathLike,
    num: int,
    start_scale: int = 0,
    scale_ratio: float | Sequence[float] | None = None,
    seed: int = 0,
    fmt: str | None = None,
    overwrite: bool = False,
    prefix: str = "sample",
    batch_size: int = 16,
    name: str = "model",
    style: str = "none",
    style_reference: torch.Tensor | None = None,
    style_options: dict[str, Any] | None = None,
    diversity: float = 1.0,
) -> list[dict[str, Any]]:
    """Write ``num`` pairs ``<prefix>_0000_image.<fmt>``, ``<prefix>_0000_label.<fmt>``, ... and ``preview.png``.

    Several contrasts (NIfTI) are written one file each, named after the training inputs. Nothing is written when
    any target file exists and ``overwrite`` is false.

    ``style`` refines the image channels before writing (``"none"``, ``"histogram"`` or ``"vgg"``, see
    :func:`monai_singanseg.style.refine`; labels are never changed) towards ``style_reference`` ``(1, C_img,
    *spatial)`` in ``[-1, 1]`` (default: the model's reconstruction of its training image); ``style_options`` go to
    :func:`~monai_singanseg.style.refine` (``weights``, ``content_style``, ``steps``). ``diversity`` (0..1) mixes the
    reconstruction's noise into the start scale's (see :meth:`SinGANSeg.generate`).

    Returns:
        One datalist item per pair: ``{"image": path or [paths], "label": path}``.

    Raises:
        SamplesInterrupted: on Ctrl-C (a ``KeyboardInterrupt``) while writing; the complete pairs written so far and
            their preview stay, and the exception says how many.
    """
    output_format(model, fmt, name)  # refuse a format the model cannot fill before anything else
    if num < 1:
        raise SinGANSegInputError("the number of samples must be >= 1.")
    if not 0 <= start_scale < model.num_scales:
        raise SinGANSegInputError(f"{name}: start scale must lie in [0, {model.num_scales - 1}].")
    if not 0.0 <= diversity <= 1.0:
        raise SinGANSegInputError(f"diversity must lie in [0, 1], got {diversity}.")
    try:
        model.scaled_shapes(scale_ratio)
    except ValueError as err:
        raise SinGANSegInputError(f"scale ratio: {err}") from err
    return write_generated(
        model, out, num, lambda count, generator: model.generate(count, start_scale, scale_ratio, generator=generator,
                                                                 diversity=diversity),
        seed=seed, fmt=fmt, overwrite=overwrite, prefix=prefix, batch_size=batch_size, name=name,
        title=f"{name}: start scale {start_scale}" + (f", diversity {diversity:g}" if diversity < 1 else ""),
        style=style, style_reference=style_reference, style_options=style_options)


def check_format(fmt: str | None) -> None:
    """Refuse an output format other than ``None`` (each model's default) and :data:`OUTPUT_FORMATS`, before any
    folder is made (``jpg`` made the output folder, then failed in the writer)."""
    if fmt is not None and fmt not in OUTPUT_FORMATS:
        raise SinGANSegInputError(f"format {fmt!r}: pairs are written as {' or '.join(OUTPUT_FORMATS)} (or None: png "
                                  "for 2D images of 1 or 3 channels, else nii.gz).")


def output_format(model: PairGenerator, fmt: str | None, name: str) -> str:
    """``fmt``, or the default for ``model`` (PNG for 2D images of 1 or 3 channels in 0..65535, else NIfTI), checked
    against what the model makes."""
    cfg = model.config
    check_format(fmt)
    # PNG holds 2D images of 1 or 3 channels with values 0..65535: CT windows in HU, say, need NIfTI
    png_range = min(model.intensity.lower) >= 0 and max(model.intensity.upper) <= 65535
    fmt = fmt or ("png" if cfg.spatial_dims == 2 and cfg.image_channels in (1, 3) and png_range else "nii.gz")
    if fmt == "png" and (cfg.spatial_dims != 2 or cfg.image_channels not in (1, 3)):
        raise SinGANSegInputError(
            f"{name}: PNG holds 2D images of 1 or 3 channels; this model makes {cfg.spatial_dims}D images "
            f"with {cfg.image_channels} channels: use nii.gz."
        )
    if fmt == "png" and not png_range:
        raise SinGANSegInputError(
            f"{name}: the model's intensities span {min(model.intensity.lower):g}..{max(model.intensity.upper):g}; "
            "PNG holds 0..65535 only: use nii.gz."
        )
    return fmt


def write_generated(
    model: PairGenerator,
    out: str | os.PathLike,
    num: int,
    draw: Callable[[int, torch.Generator], torch.Tensor],
    seed: int = 0,
    fmt: str | None = None,
    overwrite: bool = False,
    prefix: str = "sample",
    batch_size: int = 16,
    name: str = "model",
    title: str | None = None,
    style: str = "none",
    style_reference: torch.Tensor | None = None,
    style_options: dict[str, Any] | None = None,
    affine: np.ndarray | None = None,
    split: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> list[dict[str, Any]]:
    """Write ``num`` pairs made by ``draw(count, generator)`` (raw ``(count, C, *spatial)`` in ``[-1, 1]``) of
    either kind of model: the files, the preview and the returned datalist items of :func:`write_samples`.
    ``affine`` (default: :func:`output_affine`) is the written files' affine; ``split`` (default: the model's) maps
    raw samples to (image in its units, label)."""
    cfg = model.config
    fmt = output_format(model, fmt, name)
    if num < 1:
        raise SinGANSegInputError("the number of samples must be >= 1.")
    made = not Path(out).exists()
    out = check_output_folder(out)
    contrasts = model.source.get("contrasts") or []
    image_names = contrasts if fmt == "nii.gz" and len(contrasts) == cfg.image_channels > 1 else ["image"]
    names = [([out / f"{prefix}_{i:04d}_{n}.{fmt}" for n in image_names], out / f"{prefix}_{i:04d}_label.{fmt}")
             for i in range(num)]
    preview = out / (f"{prefix}_preview.png" if prefix != "sample" else "preview.png")
    # every earlier sample of this prefix counts, in any format and number, and the preview: nothing is mixed in
    earlier = sorted(p for p in out.glob(f"{prefix}_[0-9][0-9][0-9][0-9]_*") if p.is_file())
    existing = earlier + ([preview] if preview.exists() else [])
    if existing and not overwrite:
        raise SinGANSegInputError(f"{existing[0]}: already exists ({len(existing)} files); overwrite or choose "
                                  "another output folder.")
    style_options = dict(style_options or {})
    if style != "none":
        from monai_singanseg.style import load_vgg_features, refine_samples
        from monai_singanseg.style import style_reference as model_reference

        if style_reference is None:
            style_reference = model_reference(model)
        if style == "vgg" and style_options.get("features") is None:  # load once, and fail before writing anything
            if cfg.spatial_dims != 2:
                raise SinGANSegInputError(f"{name}: VGG style refinement works on 2D images; use histogram matching.")
            style_options["features"] = load_vgg_features(style_options.pop("weights", None), pooling="avg",
                                                          device=model.device)[0]
    for stale in earlier:  # overwriting: the older samples go, so the folder holds this run's pairs only
        stale.unlink()
    generator = torch.Generator(device=model.device).manual_seed(seed)
    shown: list[tuple[torch.Tensor, torch.Tensor]] = []  # the first 16 pairs written, for the preview

    def write_preview() -> None:
        save_pair_grid(preview, torch.stack([i for i, _ in shown]), torch.stack([lab for _, lab in shown]),
                       title=title or name, intensity_range=(model.intensity.lower, model.intensity.upper))

    written = 0
    try:
        for first in range(0, num, batch_size):
            count = min(batch_size, num - first)
            x = draw(count, generator)
            if style != "none":
                x = refine_samples(x, cfg.image_channels, style_reference, style, **style_options)
            image, label = (split or model.split)(x)
            meta = {"affine": output_affine(model, image.shape[2:]) if affine is None else affine}
            for i in range(count):
                image_paths, label_path = names[first + i]
                parts = image[i].split(1) if len(image_paths) > 1 else [image[i]]
                # an image and its label appear together or not at all
                atomic_write_together([(p, image_writer(part, p, meta)) for part, p in zip(parts, image_paths)]
                                      + [(label_path, image_writer(label[i], label_path, meta, is_label=True))])
                written += 1
                if len(shown) < 16:
                    shown.append((image[i].cpu(), label[i].cpu()))
        write_preview()
    except OSError as err:
        if not is_disk_full(err):
            raise
        # a half-written run made the rerun refuse ("already exists"): what it wrote goes, so the rerun just works
        for path in [p for imgs, lab in names for p in (*imgs, lab)] + [preview]:
            path.unlink(missing_ok=True)
        if made:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise SinGANSegInputError(f"{out}: the disk is full ({err.strerror or err}); the pairs written so far were "
                                  "removed: free space and run again.") from err
    except KeyboardInterrupt:
        # what was written stays (whole pairs only); its preview too, so a long run stopped early can be looked at
        if shown:
            write_preview()
        raise SamplesInterrupted(written, num, str(preview) if shown else None) from None
    return [{"image": [str(p) for p in imgs] if len(imgs) > 1 else str(imgs[0]), "label": str(lab)}
            for imgs, lab in names]


def write_diffusion_samples(
    model: PairDiffusion,
    out: str | os.PathLike,
    num: int,
    sampling: DiffusionSampling | dict[str, Any] | None = None,
    context: tuple[torch.Tensor, torch.Tensor] | None = None,
    region: torch.Tensor | None = None,
    seed: int = 0,
    fmt: str | None = None,
    overwrite: bool = False,
    prefix: str = "sample",
    batch_size: int = 16,
    name: str = "model",
) -> list[dict[str, Any]]:
    """Write ``num`` pairs of a diffusion model like :func:`write_samples`: new pairs of the training crop size, or,
    with ``context``, redraws of the label's region (dilated) inside a real image (RePaint).

    Args:
        model: the diffusion model.
        out: output folder.
        num: pairs to write.
        sampling: steps, sampler, RePaint settings and the label dilation (``mode`` is ignored: ``context`` decides).
        context: ``(image (C_img, *spatial) in the training image's units, label (1, *spatial))`` to inpaint into;
            the label's foreground (any nonzero; class indices, or one-hot channels, for multi-class models) dilated
            is the redrawn region. A MetaTensor image gives the written files its affine; outside the region its
            values are written as they are.
        region: ``(1, *spatial)``, nonzero where to redraw in ``context`` instead of the dilated label (a region
            the user draws; the label inside it is redrawn too, outside it kept).
        seed, fmt, overwrite, prefix, batch_size, name: as in :func:`write_samples`.

    Raises:
        SinGANSegInputError: bad sampling options, a context that does not fit the model, or an empty context label.
    """
    try:
        sampling = DiffusionSampling.of(sampling)
    except ValueError as err:
        raise SinGANSegInputError(f"diffusion sampling: {err}") from err
    cfg = model.config
    if context is None and sampling.style != "none":
        raise SinGANSegInputError(f"{name}: style {sampling.style!r} is a pass after inpainting; give a context.")
    context_affine = None
    if context is not None and isinstance(context[0], MetaTensor):  # the files written sit where the context does
        context_affine = np.asarray(context[0].affine, dtype=np.float64)
    if context is None:
        title = f"{name}: {sampling.sampler.upper()}, {sampling.steps} steps"

        def draw(count: int, generator: torch.Generator) -> torch.Tensor:
            return model.generate(count, sampling.steps, sampling.sampler, generator=generator, eta=sampling.eta)
    else:
        image, label = (torch.as_tensor(t).as_subclass(torch.Tensor).float() for t in context)
        if label.shape[0] > 1:  # a one-hot label: its class indices
            label = label.argmax(0, keepdim=True).float()
        if image.shape[0] != cfg.image_channels or image.ndim - 1 != cfg.spatial_dims:
            raise SinGANSegInputError(
                f"{name}: the context image is {image.ndim - 1}D with {image.shape[0]} channel(s); the model makes "
                f"{cfg.spatial_dims}D images with {cfg.image_channels} channel(s)."
            )
        if tuple(label.shape[1:]) != tuple(image.shape[1:]):
            raise SinGANSegInputError(f"{name}: the context label's size {tuple(label.shape[1:])} differs from the "
                                      f"image's {tuple(image.shape[1:])}.")
        index = label if model.labels.one_hot else (label != 0).float()
        if region is None:
            region = label_region(index[:1], sampling.dilation)
        else:
            region = torch.as_tensor(region)
            if tuple(region.shape[1:]) != tuple(image.shape[1:]):
                raise SinGANSegInputError(f"{name}: the inpainting region's size {tuple(region.shape[1:])} differs "
                                          f"from the image's {tuple(image.shape[1:])}.")
            region = region[:1] != 0
        if not bool(region.any()):
            raise SinGANSegInputError(f"{name}: the region to redraw is empty (an empty context label or region).")
        pair = model.join(image, index, indices=True).clamp(-1.0, 1.0)
        title = f"{name}: inpainted, {sampling.steps} steps, resample {sampling.resample}"

        def draw(count: int, generator: torch.Generator) -> torch.Tensor:
            return inpaint_pair(model, pair, region, sampling, count, generator)

        def split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Outside the region the context's own values, also those beyond the model's intensity range."""
            new_image, new_label = model.split(x)
            inside = region.to(x.device)
            return (torch.where(inside, new_image, image.to(x.device)),
                    torch.where(inside, new_label, model.labels.decode(pair[cfg.image_channels:]).to(x.device)))
    sampling.check_model(cfg, name)
    return write_generated(model, out, num, draw, seed=seed, fmt=fmt, overwrite=overwrite, prefix=prefix,
                           batch_size=batch_size, name=name, title=title, affine=context_affine,
                           split=None if context is None else split)


def sample_bank(
    models_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    num: int,
    start_scale: int = 0,
    seed: int = 0,
    fmt: str | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    style: str = "none",
    style_options: dict[str, Any] | None = None,
    diffusion: DiffusionSampling | dict[str, Any] | None = None,
) -> Path:
    """Sample ``num`` pairs from every ``*.pt`` model of ``models_dir`` into ``out_dir/<model name>/``.

    Writes ``out_dir/synthetic_datalist.json`` (``{"training": [...]}``, paths relative to ``out_dir``), ready to
    train on or to share, and returns its path. Start scales beyond a model's pyramid are clipped to it; one beyond
    every model's is refused. ``style`` refines the images towards each model's reconstruction of its training image
    (see :func:`write_samples`). Diffusion
    checkpoints in the folder draw new pairs with ``diffusion`` (a :class:`DiffusionSampling` or its fields; start
    scale and style are SinGAN-Seg's), StyleGAN checkpoints new pairs at their resolution.
    """
    if not Path(models_dir).is_dir():
        raise SinGANSegInputError(f"{models_dir}: folder not found.")
    models = sorted(Path(models_dir).glob("*.pt"))
    if not models:
        raise SinGANSegInputError(f"{models_dir}: folder holds no *.pt checkpoint.")
    check_format(fmt)
    tops = []
    for path in models:  # a damaged or unfinished model stops the run before anything is written, not halfway
        model = load_generator(path, device="cpu", require_complete=True)
        tops += [model.num_scales - 1] if isinstance(model, SinGANSeg) else []  # start scales are a pyramid's
    if tops and not 0 <= start_scale <= max(tops):
        # clipped per model (a bank mixes pyramid heights), but a start scale no model has is a mistake, refused as
        # 'singanseg sample' refuses it
        raise SinGANSegInputError(f"start scale {start_scale}: must lie in [0, {max(tops)}], the scales of the "
                                  f"deepest model in {models_dir}.")
    out_dir = Path(out_dir)
    items = []
    for index, path in enumerate(models):
        model = load_generator(path, device=device, require_complete=True)
        if isinstance(model, PairDiffusion):
            items += write_diffusion_samples(model, out_dir / path.stem, num, diffusion, seed=seed + index, fmt=fmt,
                                             overwrite=overwrite, name=str(path))
            continue
        if model.kind == "stylegan":  # new pairs at the model's resolution (start scale and style are SinGAN-Seg's)
            from monai_singanseg.stylegan.writing import write_stylegan_samples

            items += write_stylegan_samples(model, out_dir / path.stem, num, seed=seed + index, fmt=fmt,
                                            overwrite=overwrite, name=str(path))
            continue
        items += write_samples(model, out_dir / path.stem, num, min(start_scale, model.num_scales - 1),
                               seed=seed + index, fmt=fmt, overwrite=overwrite, name=str(path), style=style,
                               style_options=style_options)

    def relative(p: str | list[str]) -> str | list[str]:
        return [relative(q) for q in p] if isinstance(p, list) else os.path.relpath(p, out_dir)

    datalist = {"description": f"synthetic pairs from the models in {models_dir}",
                "training": [{k: relative(v) for k, v in item.items()} for item in items]}
    target = out_dir / "synthetic_datalist.json"
    atomic_write(target, lambda tmp: Path(tmp).write_text(json.dumps(datalist, indent=2)))
    logger.info("wrote %d pairs from %d model(s) and %s", len(items), len(models), target)
    return target
