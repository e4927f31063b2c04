"""Time to quality: how good a model is for the training time it cost, for the faithful and the fast schedule.

    python benchmarks/bench_time_to_quality.py run --data nuclei --max-size 96 --schedule fast --iters 200 400
    python benchmarks/bench_time_to_quality.py timing         # idle seconds per iteration of every run's config
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
threads, device). Quality does not depend on how busy the machine was, but wall time does, and the long faithful
runs shared the CPU with other work: so the training time in the table is the number of iterations each run made
at each scale times the seconds per iteration that ``timing`` measures there on an idle machine
(``time_to_quality_timings.json``). ``table`` writes ``time_to_quality.md`` and ``time_to_quality.png``.
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


def make_config(pair, max_size: int, schedule: str, iters: int, seed: int, overrides: str = "") -> SinGANSegConfig:
    """The run's config; ``overrides`` like ``"optim.generator_steps=2,optim.plateau_tolerance=0.01"``."""
    config = SinGANSegConfig.for_schedule(schedule, spatial_dims=pair.spatial_dims,
                                          image_channels=pair.image_channels, mask_channels=pair.labels.channels,
                                          seed=seed)
    config.pyramid.max_size = max_size
    config.optim.iters_per_scale = iters
    for item in filter(None, overrides.split(",")):
        key, value = item.split("=")
        section, name = key.split(".")
        owner = getattr(config, section)
        setattr(owner, name, type(getattr(owner, name))(value))
    return config.validate()


@torch.no_grad()
def measure(model: SinGANSeg, real: torch.Tensor, num: int, seed: int) -> dict:
    """Quality figures of ``num`` samples at start scale 0 against ``real`` ``(1, C, *finest)``."""
    n_img = model.config.image_channels
    samples = torch.cat([model.generate(1, 0, generator=torch.Generator(model.device).manual_seed(seed + i))
                         for i in range(num)]).cpu()
    fractions = foreground_fraction(foreground(samples[:, n_img:], model.labels))
    real_fraction = float(foreground_fraction(foreground(real[:, n_img:], model.labels))[0])
    return {
        "swd": float(sliced_wasserstein(real[:, :n_img], samples[:, :n_img], **SWD_OPTIONS).mean()),
        "diversity": float(ms_ssim_diversity(samples[:, :n_img])),
        "fg_error": float((fractions - real_fraction).abs().mean()),
        "fg_real": real_fraction,
        "fg_mean": float(fractions.mean()),
        "rec_mse": float(torch.mean((model.reconstruct().cpu() - real) ** 2)),
    }


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    pair = load_pair(args.data)
    for iters in args.iters:
        key = {"data": args.data, "max_size": args.max_size, "schedule": args.schedule, "iters": iters,
               "threads": args.threads, "seed": args.seed, "device": args.device, "overrides": args.set}
        where = "" if args.device == "cpu" else f"_{args.device.split(':')[0]}"
        variant = "" if not args.set else "_" + args.set.replace("optim.", "").replace("=", "").replace(",", "_")
        path = MODELS / (f"{args.data}_{args.max_size}_{args.schedule}{variant}_{iters}_t{args.threads}_s{args.seed}"
                         f"{where}.pt")
        config = make_config(pair, args.max_size, args.schedule, iters, args.seed, args.set)
        resume = path.exists()
        start = time.perf_counter()
        model = SinGANSegTrainer(config, device=args.device, progress=not args.quiet).fit(
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
        defaults = {"device": "cpu", "overrides": ""}
        records = [r for r in records if any(r.get(k, defaults.get(k)) != v for k, v in key.items())] + [record]
        RECORDS.parent.mkdir(parents=True, exist_ok=True)
        RECORDS.write_text(json.dumps(records, indent=1))
        print(json.dumps(record), flush=True)


TIMINGS = RESULTS / "time_to_quality_timings.json"


def timing(args: argparse.Namespace) -> None:
    """Seconds per iteration at every scale, on an idle machine, for each (data, size, schedule) of the runs."""
    from bench_grouped import seconds_per_iteration

    torch.set_num_threads(args.threads)
    records = json.loads(RECORDS.read_text())
    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    for data, size, schedule, overrides in sorted({(r["data"], r["max_size"], r["schedule"], r.get("overrides", ""))
                                                   for r in records}):
        key = f"{data}/{size}/{schedule}{overrides and '+' + overrides}/{args.device}/{args.threads}"
        if key in timings and not args.again:
            continue
        pair = load_pair(data)
        config = make_config(pair, size, schedule, 1, 0, overrides)
        _, seconds = seconds_per_iteration(config, [(pair.real, pair)], args.device, args.measure)
        timings[key] = [round(s, 5) for s in seconds]
        print(key, [round(s, 4) for s in seconds], flush=True)
    TIMINGS.write_text(json.dumps(timings, indent=1))


def estimated_seconds(record: dict, timings: dict, device: str, threads: int) -> float | None:
    """Training seconds on an idle machine: iterations run at each scale x measured seconds per iteration there."""
    overrides = record.get("overrides", "")
    seconds = timings.get(f"{record['data']}/{record['max_size']}/{record['schedule']}"
                          f"{overrides and '+' + overrides}/{device}/{threads}")
    if seconds is None:
        return None
    return sum(n * s for n, s in zip(record["iterations_run"], seconds))


def table(args: argparse.Namespace) -> None:
    from monai_singanseg.visualize import pyplot, save_figure

    timings = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    records = json.loads(RECORDS.read_text())
    for r in records:
        r["idle_seconds"] = estimated_seconds(r, timings, args.device, args.threads)
    records.sort(key=lambda r: (r["data"], r["max_size"], r["schedule"] != "faithful", r["iters"]))
    metrics = ("swd", "diversity", "fg_error", "rec_mse")
    lines = [f"# Time to quality (start scale 0 samples vs the real pair; {args.device}, {args.threads} threads)", "",
             "Training time: iterations run at each scale x seconds per iteration measured there on an idle "
             "machine (`bench_time_to_quality.py timing`). Ratios: fast / faithful 2000 of the same data and size.",
             "", "| data | max size | schedule | iters/scale (run) | training min | SWD | diversity | fg error | "
             "rec MSE | time ratio | SWD / div / fg / rec ratio |", "| --- " * 11 + "|"]
    for r in records:
        base = next((b for b in records if (b["data"], b["max_size"], b["schedule"], b["iters"]) ==
                     (r["data"], r["max_size"], "faithful", 2000)), None)
        minutes = "" if r["idle_seconds"] is None else f"{r['idle_seconds'] / 60:.1f}"
        ratios = time_ratio = ""
        if base is not None and r is not base:
            ratios = " / ".join(f"{r[m] / base[m]:.2f}" for m in metrics)
            if r["idle_seconds"] and base["idle_seconds"]:
                time_ratio = f"1/{base['idle_seconds'] / r['idle_seconds']:.1f}"
        run = ",".join(str(n) for n in r["iterations_run"])
        schedule = r["schedule"] + (f" ({r['overrides']})" if r.get("overrides") else "")
        lines.append(f"| {r['data']} | {r['max_size']} | {schedule} | {r['iters']} ({run}) | {minutes} | "
                     f"{r['swd']:.4f} | {r['diversity']:.3f} | {r['fg_error']:.4f} | {r['rec_mse']:.5f} | "
                     f"{time_ratio} | {ratios} |")
    text = "\n".join(lines) + "\n"
    (RESULTS / "time_to_quality.md").write_text(text)
    print(text)
    groups = sorted({(r["data"], r["max_size"]) for r in records})
    labels = sorted({(r["schedule"], r.get("overrides", "")) for r in records})
    colours = {label: f"C{i}" for i, label in enumerate(labels)}  # one colour per schedule in every panel
    plt = pyplot()
    fig, axes = plt.subplots(len(groups), len(metrics), figsize=(4 * len(metrics), 3 * len(groups)), squeeze=False)
    for row, group in zip(axes, groups):
        for ax, metric in zip(row, metrics):
            variants = sorted({(r["schedule"], r.get("overrides", "")) for r in records
                               if (r["data"], r["max_size"]) == group})
            for schedule, overrides in variants:
                points = sorted((r for r in records if (r["data"], r["max_size"]) == group and r["idle_seconds"]
                                 and (r["schedule"], r.get("overrides", "")) == (schedule, overrides)),
                                key=lambda r: r["idle_seconds"])
                if points:
                    ax.plot([p["idle_seconds"] / 60 for p in points], [p[metric] for p in points],
                            "o-" if schedule == "faithful" else "s-", color=colours[(schedule, overrides)],
                            label=f"{schedule} {overrides.replace('optim.', '')}".strip())
            ax.set_xscale("log")
            ax.set_xlabel("training minutes (log)")
            ax.set_title(f"{group[0]} {group[1]} px: {metric}", fontsize=9)
    handles = {h.get_label(): h for ax in axes.flat for h in ax.get_lines()}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
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
    r.add_argument("--device", default="cpu")
    r.add_argument("--set", default="", help="config overrides, e.g. optim.generator_steps=2,optim.gp_every=2")
    r.add_argument("--quiet", action="store_true")
    for name in ("timing", "table"):
        t = sub.add_parser(name)
        t.add_argument("--threads", type=int, default=2)
        t.add_argument("--device", default="cpu")
        t.add_argument("--measure", type=int, default=4, help="iterations timed per scale (timing)")
        t.add_argument("--again", action="store_true", help="measure configs that have timings already (timing)")
    args = parser.parse_args()
    {"run": run, "timing": timing, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
