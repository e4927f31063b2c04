"""A quality report of a trained model: samples at every start scale beside the training pair, mask statistics,
and the metrics of :mod:`monai_singanseg.metrics` as JSON and as a markdown table (``singanseg report``).

A diffusion model is reported the same way, with two rows instead of start scales: whole new pairs (DDIM or DDPM)
and redraws of the training pair's mask region (RePaint inpainting)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from monai_singanseg.diffusion.config import DiffusionSampling
from monai_singanseg.diffusion.inpainting import inpaint_pair, label_region
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.files import atomic_write
from monai_singanseg.generator_protocol import PairGenerator
from monai_singanseg.metrics import (
    FeatureExtractor,
    foreground,
    foreground_fraction,
    fraction_histogram,
    load_inception_stem,
    mask_mean_std,
    ms_ssim_settings,
    pinned_maps,
    quality_metrics,
    ring_means,
)
from monai_singanseg.visualize import display_slice, pyplot, save_figure, save_pair_grid

__all__ = [
    "METRIC_COLUMNS",
    "REPORT_FILES",
    "ReportRow",
    "diffusion_samples",
    "generate_samples",
    "markdown_table",
    "metrics_row",
    "metrics_table",
    "plot_artifacts",
    "real_pair",
    "report_rows",
    "write_report",
]

REPORT_FILES = ("mask_mean_std.png", "foreground_fraction_hist.png", "artifacts.png", "metrics.json", "metrics.md")
"""Files of every report, beside one ``grid_start_scale_<k>.png`` per start scale."""

SWD_OPTIONS = {"patch_size": 7, "num_projections": 128, "levels": 1, "stride": 1, "seed": 0}


def real_pair(model: PairGenerator, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """The training pair as the model sees it: ``(1, C, *finest)`` in ``[-1, 1]``, at the finest trained scale (a
    diffusion model: the pair's own size, at which it was cropped for training).

    Args:
        model: the trained model (its intensity map and label encoding are used, not refitted).
        image: ``(image_channels, *spatial)`` in the image's units.
        label: ``(1, *spatial)`` with the training label's values, or one-hot ``(K, *spatial)``.
    """
    image, label = torch.as_tensor(image).float(), torch.as_tensor(label).float()
    if image.shape[0] != model.config.image_channels or image.ndim - 1 != model.config.spatial_dims:
        raise SinGANSegInputError(f"image of shape {tuple(image.shape)} does not fit a model of "
                                  f"{model.config.image_channels} channel(s) in {model.config.spatial_dims}D.")
    if tuple(label.shape[1:]) != tuple(image.shape[1:]):
        raise SinGANSegInputError(f"label size {tuple(label.shape[1:])} does not match the image "
                                  f"size {tuple(image.shape[1:])}.")
    if label.shape[0] > 1:
        label = label.argmax(0, keepdim=True).float()
    # a SinGAN-Seg model resizes it to its last trained scale (an interrupted model makes samples there)
    return model.model_view(model.join(image, label)[None].to(model.device))


def _seeded_batches(model: PairGenerator, num: int, seed: int, batch_size: int,
                    draw: Callable[[int, torch.Generator], torch.Tensor]) -> torch.Tensor:
    """``num`` samples ``draw(count, generator)`` made ``batch_size`` at a time from one generator seeded with
    ``seed`` on the model's device, concatenated."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    return torch.cat([draw(min(batch_size, num - i), generator) for i in range(0, num, batch_size)])


def generate_samples(model: PairGenerator, num: int, start_scale: int | None, seed: int,
                     batch_size: int = 1) -> torch.Tensor:
    """``num`` samples ``(num, C, *finest)`` in ``[-1, 1]`` from one seeded generator, drawn ``batch_size`` at a time
    (one by one is fastest on a CPU, see docs/benchmarks.md), from ``start_scale`` of a pyramid (``None``: a
    generator without one, its default options)."""
    if start_scale is None:
        return _seeded_batches(model, num, seed, batch_size, lambda n, g: model.generate(n, generator=g))
    return _seeded_batches(model, num, seed, batch_size, lambda n, g: model.generate(n, start_scale, generator=g))


def diffusion_samples(
    model: PairGenerator, shape: Sequence[int], num: int, seed: int, sampling: DiffusionSampling, batch_size: int = 4
) -> torch.Tensor:
    """``num`` new pairs ``(num, C, *shape)`` of a diffusion model at any ``shape``: drawn at the next multiple of its
    UNet's downsampling (the UNet is convolutional) and cropped."""
    return _seeded_batches(model, num, seed, batch_size, lambda n, g: model.generate_at(
        n, shape, sampling.steps, sampling.sampler, generator=g, eta=sampling.eta))


@dataclass
class ReportRow:
    """One row of a report: its key in ``metrics.json``, its grid file, its title and how to draw its samples."""

    key: str
    grid: str
    title: str
    draw: Callable[[int, int], torch.Tensor]  # (num, seed) -> (num, C, *spatial) in [-1, 1]


def _start_scale_rows(model: PairGenerator, start_scales: Sequence[int] | None) -> list[ReportRow]:
    """One row per start scale of a pyramid (default: every one the model offers), checked against them."""
    offered = model.start_scales
    scales = list(offered) if start_scales is None else [int(s) for s in start_scales]
    if not scales or any(s not in offered for s in scales):
        raise SinGANSegInputError(f"start scales {scales} must lie in [0, {len(offered) - 1}].")
    return [ReportRow(str(s), f"grid_start_scale_{s}.png", f"start scale {s}",
                      lambda num, seed, s=s: generate_samples(model, num, s, seed)) for s in scales]


def _denoising_rows(model: PairGenerator, real: torch.Tensor, sampling: DiffusionSampling | None) -> list[ReportRow]:
    """New pairs (``sampling``'s sampler and steps) and, when the training mask is not empty, inpainted redraws of its
    region in the training pair (RePaint)."""
    sampling = DiffusionSampling.of(sampling)
    n_img = model.config.image_channels
    region = label_region(model.labels.indices(real[0, n_img:]), sampling.dilation)
    rows = [ReportRow("sample", "grid_sample.png", f"{sampling.sampler.upper()} {sampling.steps} steps",
                      lambda num, seed: diffusion_samples(model, real.shape[2:], num, seed, sampling))]
    if bool(region.any()):
        def inpainted(num: int, seed: int, batch_size: int = 4) -> torch.Tensor:
            return _seeded_batches(model, num, seed, batch_size,
                                   lambda n, g: inpaint_pair(model, real[0], region, sampling, n, g))

        rows.append(ReportRow("inpainted", "grid_inpainted.png", f"inpainted (resample {sampling.resample})",
                              inpainted))
    return rows


def report_rows(
    model: PairGenerator, real: torch.Tensor, start_scales: Sequence[int] | None = None,
    sampling: DiffusionSampling | None = None,
) -> tuple[str, list[ReportRow]]:
    """The section of ``metrics.json`` and its rows: one per start scale of a model with a pyramid (SinGAN-Seg); for a
    model that denoises (diffusion), new pairs (``sampling``'s sampler and steps) and, when the training mask is not
    empty, inpainted redraws of its region in the training pair (RePaint); for any other, new pairs."""
    if model.start_scales:
        return "start_scales", _start_scale_rows(model, start_scales)
    if start_scales is not None:
        raise SinGANSegInputError(f"start scales are SinGAN-Seg's; a {model.display_name} model has none.")
    if model.denoises:
        return "samplers", _denoising_rows(model, real, sampling)
    rows = [ReportRow("sample", "grid_sample.png", "new pairs", lambda num, seed: generate_samples(model, num, None, seed))]
    if model.draws_for_masks:  # e.g. StyleGAN's mask_then_image: images drawn for the real mask
        mask = real[:, model.config.image_channels:]
        rows.append(ReportRow("for_real_mask", "grid_for_real_mask.png", "images for the real mask",
                              lambda num, seed: model.generate_for_masks(mask.expand(num, *mask.shape[1:]),
                                                                         seed=seed)))
    return "samplers", rows


def _plot_mask_mean_std(path: Path, real_mask: torch.Tensor, masks: dict[str, torch.Tensor]) -> None:
    """One row per report row: the real mask, the pixel-wise mean and the pixel-wise std of the generated masks."""
    plt = pyplot()
    fig, axes = plt.subplots(len(masks), 3, figsize=(8.4, 2.6 * len(masks)), squeeze=False)
    real = display_slice(real_mask, [0.0], [1.0])
    for row, (scale, fg) in zip(axes, masks.items()):
        mean, std = mask_mean_std(fg)
        panels = ((real, "real mask", 1.0, "gray"), (display_slice(mean, [0.0], [1.0]), "mean", 1.0, "viridis"),
                  (display_slice(std, [0.0], [1.0]), "std", 0.5, "magma"))
        for ax, (shown, name, top, cmap) in zip(row, panels):
            im = ax.imshow(shown, vmin=0.0, vmax=top, cmap=cmap, interpolation="nearest")
            ax.set_title(f"{scale}: {name}" if name != "real mask" else name, fontsize=9)
            ax.axis("off")
            if name != "real mask":
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"foreground of {next(iter(masks.values())).shape[0]} generated masks per row", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_artifacts(path: Path, real: torch.Tensor, samples: dict[str, torch.Tensor], image_channels: int,
                    foregrounds: dict[str, torch.Tensor]) -> None:
    """One row per report row: the ring profile near the border (samples' mean against the real image), the
    foreground frequency with its pinned pixels outlined, and the intensity spread over samples."""
    plt = pyplot()
    fig, axes = plt.subplots(len(samples), 3, figsize=(10.5, 2.9 * len(samples)), squeeze=False)
    depth = min(12, int(min(real.shape[2:])) // 2)
    real_profile = ring_means(real[:, :image_channels].cpu(), depth)[0].mean(0)
    for row, (name, x) in zip(axes, samples.items()):
        profile = ring_means(x[:, :image_channels].cpu(), depth).mean((0, 1))
        row[0].plot(range(depth), real_profile, "o-", color="#c00000", label="real")
        row[0].plot(range(depth), profile, "s-", color="#4c72b0", label="samples (mean)")
        row[0].set_xlabel("ring: pixels from the border", fontsize=8)
        row[0].set_ylabel("mean intensity [-1, 1]", fontsize=8)
        row[0].set_title(f"{name}: border profile", fontsize=9)
        row[0].legend(fontsize=7)
        frequency, spread = pinned_maps(x.cpu(), image_channels, foregrounds[name])
        shown = display_slice(frequency[None], [0.0], [1.0])
        im = row[1].imshow(shown, vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
        if bool((shown >= 0.9).any()):
            row[1].contour(shown >= 0.9, levels=[0.5], colors="#ff3030", linewidths=0.8)
        row[1].set_title("foreground frequency (red: >= 0.9, pinned)", fontsize=9)
        fig.colorbar(im, ax=row[1], fraction=0.046, pad=0.04)
        top = max(float(spread.max()), 1e-6)
        # display_slice maps [0, top] to [0, 1]: scaled back, so the colour bar reads the sd itself
        im = row[2].imshow(display_slice(spread[None], [0.0], [top]) * top, vmin=0.0, vmax=top, cmap="magma",
                           interpolation="nearest")
        row[2].set_title("intensity sd over samples (dark: frozen)", fontsize=9)
        fig.colorbar(im, ax=row[2], fraction=0.046, pad=0.04)
        for ax in row[1:]:
            ax.axis("off")
    fig.suptitle("tell-tale artifacts: a frame along the border, content pinned in place", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _plot_fraction_histograms(path: Path, real_fraction: float, fractions: dict[str, torch.Tensor]) -> None:
    """One histogram of the synthetic foreground fractions per report row, the real fraction as a red line."""
    plt = pyplot()
    # one range for all panels, around every value seen, so the panels compare at a glance
    seen = torch.cat([*fractions.values(), torch.tensor([real_fraction])])
    pad = max(0.1 * float(seen.max() - seen.min()), 0.01)
    value_range = (max(float(seen.min()) - pad, 0.0), min(float(seen.max()) + pad, 1.0))
    fig, axes = plt.subplots(1, len(fractions), figsize=(2.8 * len(fractions), 2.8), squeeze=False, sharey=True)
    for ax, (scale, values) in zip(axes[0], fractions.items()):
        hist = fraction_histogram(real_fraction, values, bins=20, value_range=value_range)
        ax.stairs(hist["counts"], hist["edges"], fill=True, color="#4c72b0", label="samples")
        ax.axvline(real_fraction, color="#c00000", linewidth=1.5, label="real")
        ax.set_xlim(*value_range)
        ax.set_title(scale, fontsize=9)
        ax.set_xlabel("foreground fraction", fontsize=8)
    axes[0, 0].set_ylabel("samples", fontsize=8)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"foreground fraction of {len(next(iter(fractions.values())))} generated masks per row",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


METRIC_COLUMNS = ("SIFID ↓", "SWD ↓", "diversity (1 − MS-SSIM) ↑", "foreground fraction", "closest to real / spread",
                  "flagged as copies", "frame ↓", "pinned foreground: all / corners", "sharpness (real = 1)")
"""Header of :func:`metrics_row`: arrows say which way is closer to the real image or more varied."""


def metrics_row(metrics: dict) -> list[str]:
    """Table cells of one :func:`~monai_singanseg.metrics.quality_metrics` result, in :data:`METRIC_COLUMNS` order."""
    sifid, swd, fraction, memo = (metrics["sifid"], metrics["swd"], metrics["foreground_fraction"],
                                  metrics["memorisation"])
    ratio = memo["min_ratio"]
    artifacts = metrics["artifacts"]
    frame, pinned = artifacts["frame"], artifacts["pinned"]
    return [
        f"{sifid['mean']:.4g} ± {sifid['std']:.2g}" if sifid else "n/a",
        f"{swd['mean']:.4f} ± {swd['std']:.4f}",
        f"{metrics['ms_ssim_diversity']:.3f}",
        f"{fraction['mean']:.3f} ± {fraction['std']:.3f} (real {fraction['real']:.3f})",
        f"{ratio:.2f}" if ratio is not None else "inf",
        f"{memo['num_flagged']}/{len(memo['distance_to_real'])}",
        f"{frame['intensity']:.3f} (ring {frame['ring']})" if frame else "n/a",
        f"{pinned['pinned_foreground']:.3f} / {pinned['pinned_foreground_corners']:.3f}",
        f"{artifacts['sharpness']['ratio']:.2f}",
    ]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table from a header and rows of cells."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]) + "\n"


def metrics_table(report: dict) -> str:
    """The markdown page of a report (``metrics.md``): the table of metrics per start scale and how to read it."""
    section = "start_scales" if "start_scales" in report else "samplers"
    rows = [[scale, *metrics_row(m)] for scale, m in report[section].items()]
    sifid = "" if report["sifid_available"] else f"\n**SIFID not computed**: {report['sifid_note']}\n"
    ms = report["settings"]["ms_ssim"]
    return (
        f"# Quality report: {report['model']}\n\n"
        f"{report['num_samples']} samples per row (seed {report['seed']}) against the training pair, "
        f"{report['spatial_dims']}D, {tuple(report['shape'])}.\n{sifid}\n"
        + markdown_table(["start scale" if section == "start_scales" else "sampling", *METRIC_COLUMNS], rows)
        + "\n- **SIFID**: Fréchet distance of Inception-v3 stem features (64 channels, before the second pooling), "
        "sample vs training image, mean ± std over samples; 0 = identical statistics.\n"
        f"- **SWD**: sliced Wasserstein distance of {report['settings']['swd']['patch_size']}-pixel patches "
        f"({report['settings']['swd']['num_projections']} random directions), in [-1, 1] image units; 0 = same "
        "patch distribution.\n"
        f"- **diversity**: mean 1 − MS-SSIM over sample pairs (MONAI, {len(ms['weights'])} scales, kernel "
        f"{ms['kernel_size']}); 0 = all samples identical.\n"
        "- **foreground fraction**: share of mask pixels that are foreground, samples (mean ± std) vs the training "
        "mask; histograms in `foreground_fraction_hist.png`, pixel-wise mean/std in `mask_mean_std.png`.\n"
        "- **closest to real / spread**: the smallest ratio of a sample's RMS distance to the training image over "
        "the median distance between samples; about 0.7 for independent variations of the training image, near 0 "
        f"for a copy. Samples under {report['settings']['memorisation_fraction']} are flagged as copies"
        + (" (inpainted pairs keep the training pair outside the redrawn region, so they sit closer to it by design)."
           if section == "samplers" else ".") + "\n"
        "- **frame**: how much a thin ring of pixels near the border stands out of its neighbouring rings in the "
        "mean of the samples, against the same figure of the real image, in real-image standard deviations (ring 0 "
        "is the outermost); 0 = no frame. Profiles in `artifacts.png`.\n"
        "- **pinned foreground**: share of pixels that are foreground in at least 90 % of the samples, over the "
        "whole image and in its corners (boxes of an eighth of each side); content the generator puts in the same "
        "place every time. Maps in `artifacts.png`.\n"
        "- **sharpness**: RMS of the Laplacian of the samples over the real image's, at the real image's own size "
        "(samples resized up to it); below 1 blurrier than the real image. See docs/quality.md.\n"
    )


def write_report(
    model: PairGenerator,
    real_image: torch.Tensor,
    real_label: torch.Tensor,
    out_dir: str | os.PathLike,
    start_scales: Sequence[int] | None = None,
    num_samples: int = 16,
    seed: int = 0,
    extractor: FeatureExtractor | None = None,
    inception_weights: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    name: str = "model",
    sampling: DiffusionSampling | None = None,
) -> dict:
    """Sample the model at every start scale, measure the samples against the training pair, write the report.

    A diffusion model has rows ``sample`` and ``inpainted`` instead of start scales (:func:`report_rows`; section
    ``samplers`` of ``metrics.json``, grids ``grid_sample.png`` and ``grid_inpainted.png``), drawn with ``sampling``.

    Writes into ``out_dir`` (every file atomically): ``grid_start_scale_<k>.png`` (the training pair and the first
    samples, masks outlined), ``mask_mean_std.png``, ``foreground_fraction_hist.png``, ``metrics.json`` and
    ``metrics.md``. Without an ``extractor`` the Inception-v3 stem is loaded from ``inception_weights`` or the usual
    places (:func:`~monai_singanseg.metrics.find_inception_weights`); when no weight file is found (or the model is
    3D) SIFID is left out and the reason recorded in the JSON and the markdown.

    Args:
        model: a trained model.
        real_image: the training image ``(image_channels, *spatial)`` in its own units.
        real_label: its label ``(1, *spatial)`` (training label values) or one-hot ``(K, *spatial)``.
        out_dir: the report folder.
        start_scales: start scales to sample (default: all trained scales); SinGAN-Seg only.
        num_samples: samples per start scale, at least 2.
        seed: seed of the noise; every start scale draws from a generator seeded with it.
        extractor: SIFID feature extractor ``(N, 3, H, W) -> (N, F, h, w)``.
        inception_weights: the Inception weight file (an explicit path that does not exist is an error).
        overwrite: replace the files of an existing report.
        progress: progress bar over start scales.
        name: the model's name in the report.
        sampling: how a diffusion model draws (default :class:`DiffusionSampling`).

    Returns:
        The contents of ``metrics.json``.

    Raises:
        SinGANSegInputError: report files exist and ``overwrite`` is false; bad start scales; unfit inputs.
    """
    out = Path(out_dir)
    if num_samples < 2:
        raise SinGANSegInputError(f"num_samples must be at least 2 (diversity compares pairs), got {num_samples}.")
    real = real_pair(model, real_image, real_label)
    section, rows = report_rows(model, real, start_scales, sampling)
    files = [row.grid for row in rows] + list(REPORT_FILES)
    existing = [str(out / f) for f in files if (out / f).exists()]
    if existing and not overwrite:
        raise SinGANSegInputError(f"{existing[0]}: already exists; overwrite it or choose another output folder.")
    extractor, sifid_note = _sifid_extractor(model, extractor, inception_weights)
    shape = list(real.shape[2:])
    report = {
        "model": name, "num_samples": num_samples, "seed": seed, "spatial_dims": model.config.spatial_dims,
        "shape": shape, "image_channels": model.config.image_channels, "sifid_available": sifid_note is None,
        "sifid_note": sifid_note,
        "settings": {"swd": SWD_OPTIONS, "ms_ssim": ms_ssim_settings(shape), "memorisation_fraction": 0.5},
        section: {}, "files": files,
    }
    # sharpness is judged at the image's own size, where the samples would be used
    real_full = model.intensity.normalize(torch.as_tensor(real_image).float()).clamp(-1.0, 1.0)[None]
    of = f" of {len(model.start_scales)}" if section == "start_scales" else ""
    drawn = {}  # samples by row title, on the CPU: the figures over all rows come last
    for row in tqdm(rows, desc="report", disable=not progress):
        x = row.draw(num_samples, seed)
        drawn[row.title] = x.cpu()
        report[section][row.key] = _row_metrics(model, real, x, extractor, report, real_full)
        _save_row_grid(out / row.grid, model, real, x, f"{name}: training pair and samples, {row.title}{of}")
    _plot_report_figures(out, model, real, drawn)
    atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    atomic_write(out / "metrics.md", lambda tmp: Path(tmp).write_text(metrics_table(report)))
    return report


def _sifid_extractor(model: PairGenerator, extractor: FeatureExtractor | None,
                     inception_weights: str | os.PathLike | None) -> tuple[FeatureExtractor | None, str | None]:
    """The SIFID feature extractor of a report (``extractor``, else the Inception-v3 stem) and, when there is none,
    why: a 3D model, or no weight file found (an explicit ``inception_weights`` that cannot be read is an error)."""
    if extractor is not None:
        return extractor, None
    if model.config.spatial_dims != 2:
        return None, "SIFID is defined on 2D images; this model is 3D."
    try:
        return load_inception_stem(inception_weights, device=model.device), None
    except SinGANSegInputError as err:
        if inception_weights is not None:
            raise
        return None, str(err)


def _row_metrics(model: PairGenerator, real: torch.Tensor, x: torch.Tensor, extractor: FeatureExtractor | None,
                 report: dict, real_full: torch.Tensor) -> dict:
    """The metrics of one report row's samples ``x`` against the training pair ``real`` (both ``(N, C, *spatial)``
    in ``[-1, 1]``), with the histogram of their foreground fractions."""
    n_img = model.config.image_channels
    metrics = quality_metrics(real, x, n_img, model.labels, extractor, SWD_OPTIONS,
                              report["settings"]["memorisation_fraction"], real_full)
    fractions = foreground_fraction(foreground(x[:, n_img:], model.labels).cpu())
    metrics["foreground_histogram"] = fraction_histogram(metrics["foreground_fraction"]["real"], fractions)
    return metrics


def _save_row_grid(path: Path, model: PairGenerator, real: torch.Tensor, x: torch.Tensor, title: str) -> None:
    """The grid of one report row: the training pair, then the first seven samples of ``x``, masks outlined."""
    real_image, real_label = model.split(real)
    images, labels = model.split(x[:7])
    save_pair_grid(path, images.cpu(), labels.cpu(), real=(real_image[0].cpu(), real_label[0].cpu()), columns=4,
                   title=title, intensity_range=(model.intensity.lower, model.intensity.upper))


def _plot_report_figures(out: Path, model: PairGenerator, real: torch.Tensor, drawn: dict[str, torch.Tensor]) -> None:
    """The figures over all rows (``drawn``: samples by row title): mask mean and std, foreground fraction
    histograms, artifacts."""
    n_img = model.config.image_channels
    real_fg = foreground(real[:, n_img:], model.labels)
    masks = {title: foreground(x[:, n_img:], model.labels) for title, x in drawn.items()}
    fractions = {title: foreground_fraction(fg) for title, fg in masks.items()}
    _plot_mask_mean_std(out / "mask_mean_std.png", real_fg[0].cpu(), masks)
    _plot_fraction_histograms(out / "foreground_fraction_hist.png", float(foreground_fraction(real_fg)[0]), fractions)
    plot_artifacts(out / "artifacts.png", real.cpu(), drawn, n_img, masks)
