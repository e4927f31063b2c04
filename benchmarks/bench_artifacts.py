"""Tell-tale artifacts of start-scale-0 samples by generator variant (padding, window training): frame, pinned content, sharpness, and the
quality figures they must not cost (patch SWD, foreground error, diversity).

    python benchmarks/bench_time_to_quality.py run --data nuclei --max-size 64 --iters 600 --seed 0 --threads 1
    python benchmarks/bench_time_to_quality.py run --data nuclei --max-size 64 --iters 600 --seed 0 --threads 1 \\
        --set network.padding=reflect                        # the models this benchmark reads (fast schedule)
    python benchmarks/bench_artifacts.py [--data nuclei mni] [--max-size 64] [--seeds 0 1 2] [--num 64] \
        [--variants "" network.padding=reflect optim.crop_size=64] [--tag 192]
    python benchmarks/bench_artifacts.py --models FOLDER [FOLDER ...] --pairs DATASET_FOLDER --tag NAME

Reads the time-to-quality models ``benchmarks/results/models/time_to_quality/<data>_<size>_fast[_<variant>]_600_t1_s<seed>.pt``
(one per variant and training seed, the fast schedule at 600 iterations, 1 thread; missing ones are listed and
skipped) and measures ``--num`` samples at start
scale 0 per model (seeded), plus one sampling-only variant of the zero-padded models: ``zeros, canvas crop`` draws
on a canvas 1.25 times larger and keeps its centre, so the border the generators learnt falls outside.

Figures (``monai_singanseg.metrics.artifacts``; docs/quality.md): ``frame`` (largest ridge of a border ring in the
samples' mean against the real image's, real-image sd), ``frame_mask`` (the same on the foreground share),
``pinned``/``pinned_corners`` (share of pixels foreground in >= 90 % of samples), ``frozen_corners`` (corner pixels
whose intensity sd over samples is under 5 % of the real image's), ``sharpness`` (Laplacian RMS against the real
image at its own size, samples resized up; the header gives the real image's own figure at the model's size, the
ceiling), ``swd`` (7-px patches, as time to quality), ``fg_error``, ``diversity``.
Writes ``benchmarks/results/artifacts[_<tag>].json`` and ``.md`` and, per data, ``artifacts_<data>[_<tag>].png`` (the
report's border profiles and pinned maps, first seed) and ``samples_<data>[_<tag>].png``.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import torch
from bench_time_to_quality import SWD_OPTIONS, load_pair, model_path, save_json
from machine import machine

from monai_singanseg import SinGANSeg, load_training_pair
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.metrics import (
    foreground,
    foreground_fraction,
    frame_score,
    ms_ssim_diversity,
    pinned_content,
    sharpness_ratio,
    sliced_wasserstein,
)
from monai_singanseg.pyramid import build_pyramid
from monai_singanseg.report import markdown_table, plot_artifacts
from monai_singanseg.visualize import save_pair_grid

RESULTS = Path(__file__).resolve().parent / "results"
CANVAS = 1.25
COLUMNS = ("frame", "frame_mask", "pinned", "pinned_corners", "frozen_corners", "sharpness", "swd", "fg_error",
           "diversity")


@torch.no_grad()
def draw(model: SinGANSeg, num: int, seed: int, canvas: float = 1.0) -> torch.Tensor:
    """``num`` start-scale-0 samples at the model's size; with ``canvas > 1`` drawn larger and centre-cropped."""
    out = []
    for i in range(num):
        generator = torch.Generator().manual_seed(seed + i)
        x = model.generate(1, 0, scale_ratio=None if canvas == 1 else canvas, generator=generator)
        if canvas != 1:
            starts = [(s - t) // 2 for s, t in zip(x.shape[2:], model.shapes[-1])]
            x = x[(..., *(slice(a, a + t) for a, t in zip(starts, model.shapes[-1])))]
        out.append(x)
    return torch.cat(out)


def measure(model: SinGANSeg, real: torch.Tensor, real_full: torch.Tensor, samples: torch.Tensor) -> dict:
    n = model.config.image_channels
    real_fg, fg = foreground(real[:, n:], model.labels), foreground(samples[:, n:], model.labels)
    frame = frame_score(real, samples, n, foreground=(real_fg, fg))
    pinned = pinned_content(real, samples, n, fg, real_fg)
    fractions = foreground_fraction(fg)
    return {
        "frame": frame["intensity"], "frame_ring": frame["ring"], "frame_mask": frame["mask"],
        "real_frame_spread": frame["real_spread"],
        "pinned": pinned["pinned_foreground"], "pinned_corners": pinned["pinned_foreground_corners"],
        "frozen_corners": pinned["frozen_corners"],
        "sharpness": sharpness_ratio(real_full[:, :n], samples[:, :n])["ratio"],
        # the ceiling at this size: the real image itself brought to the model's size and back
        "real_sharpness": sharpness_ratio(real_full[:, :n], real[:, :n])["ratio"],
        "swd": float(sliced_wasserstein(real[:, :n], samples[:, :n], **SWD_OPTIONS).mean()),
        "fg_error": float((fractions - float(foreground_fraction(real_fg)[0])).abs().mean()),
        "diversity": float(ms_ssim_diversity(samples[:, :n])),
    }


def short_label(variant: str, index: int) -> str:
    """A sample's title in the picture: the variant's values (``content_layout, translation+cutout 0``), short
    enough for one line of a grid cell."""
    text = ", ".join(item.split("=", 1)[-1] for item in variant.split(",")) if variant else "default"
    return textwrap.shorten(f"{text} {index}", 40, placeholder="…")


def table(records: list[dict]) -> str:
    lines = []
    for data in dict.fromkeys(r["data"] for r in records):
        rows = []
        for variant in dict.fromkeys(r["variant"] for r in records if r["data"] == data):
            group = [r for r in records if r["data"] == data and r["variant"] == variant]
            cells = []
            for column in COLUMNS:
                values = torch.tensor([float(r[column]) for r in group])
                sd = f" ± {float(values.std()):.3f}" if len(group) > 1 else ""
                cells.append(f"{float(values.mean()):.3f}{sd}")
            rows.append([variant, str(len(group)), *cells])
        spread = sum(r["real_frame_spread"] for r in records if r["data"] == data) / max(
            1, sum(1 for r in records if r["data"] == data))
        size = records[0]["max_size"]
        ceiling = next(r.get("real_sharpness") for r in records if r["data"] == data)
        # a ratio to the real image's detail at its own size: 1 when the models are at that size (--models)
        lines.append(f"### {data}, {size} px, start scale 0 (real image's own ring-to-ring spread: {spread:.3f}; "
                     f"the real image brought to the model's size and back keeps {ceiling:.3f} of its detail, "
                     f"the samples' sharpness ceiling)\n")
        lines.append(markdown_table(["variant", "seeds", *COLUMNS], rows))
    return "\n".join(lines)


def write_results(records: list[dict], suffix: str, heading: str) -> None:
    """``artifacts<suffix>.json`` (the records with the machine) and ``.md`` (``heading`` then the table); prints it."""
    save_json(RESULTS / f"artifacts{suffix}.json", {"machine": machine(), "records": records})
    text = table(records)
    (RESULTS / f"artifacts{suffix}.md").write_text(heading + text)
    print(text)


def folder_records(folders: list[Path], pairs: Path, num: int) -> list[dict]:
    """Measure every finished model of ``folders`` against its own training pair ``pairs/{images,labels}/<name>.png``;
    the variant is the folder's name, the seed column the model's.

    Raises:
        SystemExit: before measuring anything, naming a folder without models or a model without its pair; and
            naming a model file that cannot be read, before anything is written.
    """
    models = {folder: sorted(folder.glob("*.pt")) for folder in folders}
    for folder, paths in models.items():
        if not paths:
            raise SystemExit(f"{folder}: no models (*.pt) there")
        for path in paths:
            for part in ("images", "labels"):
                if not (pairs / part / f"{path.stem}.png").is_file():
                    raise SystemExit(f"{path}: its pair is missing: no {pairs / part / f'{path.stem}.png'}")
    records = []
    for folder, paths in models.items():
        for path in paths:
            try:  # a damaged or foreign file: one line naming it (nothing is written before all are measured)
                model = SinGANSeg.load(path)
            except SinGANSegInputError as err:
                raise SystemExit(str(err)) from None
            if model.trained_scales < model.num_scales:
                print(f"{path}: unfinished, skipped")
                continue
            pair = load_training_pair([pairs / "images" / f"{path.stem}.png"], pairs / "labels" / f"{path.stem}.png")
            real = build_pyramid(pair.real.unsqueeze(0), model.shapes)[-1]
            record = {"data": pairs.name, "max_size": max(model.shapes[-1]), "variant": folder.name, "seed": path.stem,
                      "num": num, **measure(model, real, pair.real.unsqueeze(0), draw(model, num, 1000))}
            records.append(record)
            print(json.dumps(record), flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["nuclei", "mni"], choices=["nuclei", "mni"])
    parser.add_argument("--max-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["", "network.padding=reflect", "network.padding=replicate"],
                        help="the time-to-quality runs' --set overrides, one per variant ('' = the schedule as "
                             "shipped); the canvas-crop row is drawn from the '' models")
    parser.add_argument("--num", type=int, default=64)
    parser.add_argument("--tag", default="", help="suffix of the result files (default: none)")
    parser.add_argument("--models", nargs="+", type=Path, default=None,
                        help="instead of the time-to-quality models: folders of models trained by train-many (the "
                             "downstream study's), each model measured against its own pair in --pairs")
    parser.add_argument("--pairs", type=Path, default=None,
                        help="with --models: a study dataset folder (images/<name>.png, labels/<name>.png)")
    args = parser.parse_args()
    if args.models and args.pairs is None:
        parser.error("--models needs --pairs (the study dataset folder the models were trained on)")
    torch.set_num_threads(1)
    suffix = f"_{args.tag}" if args.tag else ""
    if args.models:
        write_results(folder_records(args.models, args.pairs, args.num), suffix, (
            "# Tell-tale artifacts by generator folder\n\nWritten by `benchmarks/bench_artifacts.py --models`; columns "
            "in its docstring; mean ± sd over the folder's models (one per training image).\n\n"))
        return
    records, missing = [], []
    for data in args.data:
        pair = load_pair(data)
        pictures: dict[str, torch.Tensor] = {}
        for overrides in args.variants:
            name = overrides.replace("network.padding=", "").replace("optim.", "") or "zeros"
            variants = [(name, 1.0)] + ([("zeros, canvas crop", CANVAS)] if not overrides else [])
            for seed in args.seeds:
                path = model_path(data, args.max_size, "fast", overrides, 600, 1, seed)
                if not path.exists():
                    missing.append(path.name)
                    continue
                model = SinGANSeg.load(path)
                if model.trained_scales < model.num_scales:  # still training: its checkpoint is rewritten per scale
                    missing.append(f"{path.name} (unfinished)")
                    continue
                real = build_pyramid(pair.real.unsqueeze(0), model.shapes)[-1]
                for variant, canvas in variants:
                    samples = draw(model, args.num, 1000, canvas)
                    record = {"data": data, "max_size": args.max_size, "variant": variant, "seed": seed,
                              "num": args.num, **measure(model, real, pair.real.unsqueeze(0), samples)}
                    records.append(record)
                    print(json.dumps(record), flush=True)
                    if seed == args.seeds[0]:
                        pictures[variant] = samples
                        first = model
        if pictures:
            real = build_pyramid(pair.real.unsqueeze(0), first.shapes)[-1]
            n = first.config.image_channels
            plot_artifacts(RESULTS / f"artifacts_{data}{suffix}.png", real, pictures, n,
                           {k: foreground(v[:, n:], first.labels) for k, v in pictures.items()})
            shown = {k: first.split(v[:4]) for k, v in pictures.items()}
            save_pair_grid(RESULTS / f"samples_{data}{suffix}.png", torch.cat([s[0] for s in shown.values()]),
                           torch.cat([s[1] for s in shown.values()]), columns=4,
                           title=f"{data}, {args.max_size} px: start-scale-0 samples (seed {args.seeds[0]} models)",
                           intensity_range=(first.intensity.lower, first.intensity.upper),
                           names=[short_label(k, i) for k in shown for i in range(4)])
    if missing:
        print("missing models (train them first, see the docstring):", ", ".join(missing))
    write_results(records, suffix, (
        "# Tell-tale artifacts by generator variant\n\nWritten by `benchmarks/bench_artifacts.py`; columns in its "
        "docstring and docs/quality.md; mean ± sd over training seeds.\n\n"))


if __name__ == "__main__":
    main()
