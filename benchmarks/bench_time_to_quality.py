"""Time to quality: how good a model is for the training time it cost, for the faithful and the fast schedule.

    python benchmarks/bench_time_to_quality.py run --data nuclei --max-size 96 --schedule fast --iters 200 400
    python benchmarks/bench_time_to_quality.py table          # markdown table + PNG curves from the saved runs

``run`` trains one model per ``--iters`` value (iterations per scale; the fast schedule's plateau stop may use
fewer) on a real pair, then measures the quality of its samples against the pair as the model sees it (finest
scale, ``[-1, 1]``):

- ``swd``: sliced Wasserstein distance of 7x7 image patches, samples vs the real image (lower is closer);
- ``diversity``: 1 - mean pairwise MS-SSIM of the samples' image channels (0 = copies);
- ``fg_error``: mean |foreground fraction of a sample's mask - the real mask's| (lower is closer);
- ``rec_mse``: MSE of the reconstruction path's output against the real pair (how well the model fits it).

Samples: ``--num`` (24) at start scale 0, seeded. Training seconds are the trainer's own per-scale timings
(``training.log`` of the checkpoint), so a resumed run counts only its training. Data:

- ``nuclei``: the 256x256 crop of the stardist nuclei image + mask shipped in ``data/nuclei`` (BSD-3);
- ``mni``: axial slice z = 80 of nilearn's MNI152 T1 template (1 mm), mask = white-matter probability > 0.5.

Runs append to ``benchmarks/results/time_to_quality.json`` (one record per data, size, schedule, iterations,
threads); ``table`` writes ``time_to_quality.md`` and ``time_to_quality.png``. Set ``--threads`` to compare runs
made while the machine was shared (the faithful 2000-iteration baselines were run with 1 thread beside other work).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from monai_singanseg import SinGANSeg, SinGANSegConfig, SinGANSegTrainer, load_training_pair, prepare_training_pair
from monai_singanseg.checkpoint import read_checkpoint
from monai_singanseg.metrics import foreground, foreground_fraction, ms_ssim_diversity, sliced_wasserstein
from monai_singanseg.pyramid import build_pyramid

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
MODELS = RESULTS / "models" / "time_to_quality"
RECORDS = RESULTS / "time_to_quality.json"
SWD_OPTIONS = {"patch_size": 7, "num_projections": 128, "levels": 1, "stride": 1, "seed": 0}
MNI_SLICE = 80


def load_pair(name: str):
    """The real training pair ``name`` (``nuclei`` or ``mni``) as a :class:`~monai_singanseg.io.TrainingPair`."""
    if name == "nuclei":
        data = ROOT / "data" / "nuclei"
        return load_training_pair([data / "nuclei_image.png"], data / "nuclei_label.png")
    folder = Path(importlib.util.find_spec("nilearn").submodule_search_locations[0]) / "datasets" / "data"
    t1 = nib.load(folder / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    wm = nib.load(folder / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")
    image = np.asarray(t1.dataobj[:, :, MNI_SLICE], dtype=np.float32)[None]
    mask = (np.asarray(wm.dataobj[:, :, MNI_SLICE], dtype=np.float32) > 0.5 * 255).astype(np.float32)[None]
    return prepare_training_pair(torch.from_numpy(image), torch.from_numpy(mask), "MNI152 T1", "MNI152 WM > 0.5")


def make_config(pair, max_size: int, schedule: str, iters: int, seed: int) -> SinGANSegConfig:
    config = SinGANSegConfig.for_schedule(schedule, spatial_dims=pair.spatial_dims,
                                          image_channels=pair.image_channels, mask_channels=pair.labels.channels,
                                          seed=seed)
    config.pyramid.max_size = max_size
    config.optim.iters_per_scale = iters
    return config.validate()


@torch.no_grad()
def measure(model: SinGANSeg, real: torch.Tensor, num: int, seed: int) -> dict:
    """Quality figures of ``num`` samples at start scale 0 against ``real`` ``(1, C, *finest)``."""
    n_img = model.config.image_channels
    samples = torch.cat([model.generate(1, 0, generator=torch.Generator().manual_seed(seed + i)) for i in range(num)])
    fractions = foreground_fraction(foreground(samples[:, n_img:], model.labels))
    real_fraction = float(foreground_fraction(foreground(real[:, n_img:], model.labels))[0])
    return {
        "swd": float(sliced_wasserstein(real[:, :n_img], samples[:, :n_img], **SWD_OPTIONS).mean()),
        "diversity": float(ms_ssim_diversity(samples[:, :n_img])),
        "fg_error": float((fractions - real_fraction).abs().mean()),
        "fg_real": real_fraction,
        "fg_mean": float(fractions.mean()),
        "rec_mse": float(torch.mean((model.reconstruct() - real) ** 2)),
    }


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    pair = load_pair(args.data)
    for iters in args.iters:
        key = {"data": args.data, "max_size": args.max_size, "schedule": args.schedule, "iters": iters,
               "threads": args.threads, "seed": args.seed}
        path = MODELS / f"{args.data}_{args.max_size}_{args.schedule}_{iters}_t{args.threads}_s{args.seed}.pt"
        config = make_config(pair, args.max_size, args.schedule, iters, args.seed)
        resume = path.exists()
        start = time.perf_counter()
        model = SinGANSegTrainer(config, progress=not args.quiet).fit(
            pair.real, pair.intensity, pair.labels, path, resume=resume)
        wall = time.perf_counter() - start
        log = (read_checkpoint(path).get("training") or {}).get("log", [])
        real = build_pyramid(pair.real.unsqueeze(0), model.shapes)[-1]
        record = {**key, "scales": model.num_scales, "shape": list(model.shapes[-1]),
                  "train_seconds": round(sum(r["seconds"] for r in log), 2),
                  "iterations_run": [r.get("iterations", iters) for r in log],
                  "wall_seconds_this_call": round(wall, 2), "torch": torch.__version__,
                  "date": time.strftime("%Y-%m-%d"), **measure(model, real, args.num, args.seed)}
        records = json.loads(RECORDS.read_text()) if RECORDS.exists() else []  # read late: runs may go in parallel
        records = [r for r in records if any(r.get(k) != v for k, v in key.items())] + [record]
        RECORDS.parent.mkdir(parents=True, exist_ok=True)
        RECORDS.write_text(json.dumps(records, indent=1))
        print(json.dumps(record), flush=True)


def table(args: argparse.Namespace) -> None:
    from monai_singanseg.visualize import pyplot, save_figure

    records = sorted(json.loads(RECORDS.read_text()),
                     key=lambda r: (r["data"], r["max_size"], r["threads"], r["schedule"], r["train_seconds"]))
    lines = ["| data | max size | threads | schedule | iters/scale | scales | train s | SWD | diversity | "
             "fg error | rec MSE |", "| --- " * 11 + "|"]
    for r in records:
        lines.append(f"| {r['data']} | {r['max_size']} | {r['threads']} | {r['schedule']} | {r['iters']} | "
                     f"{r['scales']} | {r['train_seconds']:.0f} | {r['swd']:.4f} | {r['diversity']:.3f} | "
                     f"{r['fg_error']:.4f} | {r['rec_mse']:.5f} |")
    text = "# Time to quality (start scale 0 samples vs the real pair)\n\n" + "\n".join(lines) + "\n"
    (RESULTS / "time_to_quality.md").write_text(text)
    print(text)
    groups = sorted({(r["data"], r["max_size"], r["threads"]) for r in records})
    metrics = ("swd", "diversity", "fg_error", "rec_mse")
    plt = pyplot()
    fig, axes = plt.subplots(len(groups), len(metrics), figsize=(4 * len(metrics), 3 * len(groups)), squeeze=False)
    for row, group in zip(axes, groups):
        for ax, metric in zip(row, metrics):
            for schedule, style in (("faithful", "o-"), ("fast", "s-")):
                points = [r for r in records if (r["data"], r["max_size"], r["threads"]) == group
                          and r["schedule"] == schedule]
                if points:
                    ax.plot([p["train_seconds"] / 60 for p in points], [p[metric] for p in points], style,
                            label=schedule)
            ax.set_xscale("log")
            ax.set_xlabel("training minutes (log)")
            ax.set_title(f"{group[0]} {group[1]} px ({group[2]} thr): {metric}", fontsize=9)
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, RESULTS / "time_to_quality.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", choices=("nuclei", "mni"), default="nuclei")
    r.add_argument("--max-size", type=int, default=96)
    r.add_argument("--schedule", choices=("faithful", "fast"), default="fast")
    r.add_argument("--iters", type=int, nargs="+", default=[2000])
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--num", type=int, default=24)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--quiet", action="store_true")
    sub.add_parser("table")
    args = parser.parse_args()
    run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    main()
