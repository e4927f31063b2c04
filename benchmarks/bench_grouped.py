"""Models per hour when K models with equal pyramids train side by side as one grouped network.

    python benchmarks/bench_grouped.py                                  # K = 1 4 16 at 96 and 192 px, this CPU
    python benchmarks/bench_grouped.py --sizes 192 --groups 1 4 16 64 --device cuda
    python benchmarks/bench_grouped.py --recount --device cuda         # saved rows, current iterations per scale

Each (size, K) runs in its own process (peak memory is its own). The K training pairs are real: the nuclei crop
and the four nuclei tiles shipped in ``data/`` (256x256 each, grey image + mask) and their flips and rotations, so
every model of a group has its own image. Each scale runs ``--measure`` iterations of the chosen schedule's step
(the median time of an iteration after the first is kept); a whole model then costs the sum over scales of
``--iters-per-scale`` x that time, so

    models per hour = 3600 x K / sum over scales (iters per scale x seconds per grouped iteration).

``--iters-per-scale`` defaults to the schedule's ``iters_per_scale`` (600 fast / 2000 faithful; the fast
schedule's four coarsest scales run 2000, in proportion to it), an upper bound: the fast schedule's plateau stop
usually ends its other scales earlier (see ``time_to_quality.md`` for measured counts). ``--recount`` measures
nothing and recounts the saved rows with the schedules' current iterations per scale.
Peak RSS is the whole process's; "training MiB per model" is (peak - RSS before training) / K, what each model
adds above the interpreter, libraries and data. Writes ``benchmarks/results/grouped_<device>.json`` and ``.md``
and prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name, peak_rss_mib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT / "data" / "nuclei"


def real_pairs(count: int) -> list:
    """``count`` real training pairs of equal shape: 5 nuclei images x 8 flips/rotations, repeated if needed."""
    from monai_singanseg import load_training_pair

    base = [load_training_pair([DATA / "nuclei_image.png"], DATA / "nuclei_label.png")]
    base += [load_training_pair([DATA / "tiles" / f"nuclei_tile_{c}_image.png"],
                                DATA / "tiles" / f"nuclei_tile_{c}_label.png") for c in "abcd"]
    pairs = []
    for i in range(count):
        pair = base[i % len(base)]
        variant = (i // len(base)) % 8
        real = pair.real.rot90(variant % 4, dims=(1, 2))
        real = real.flip(-1) if variant >= 4 else real
        pairs.append((real.contiguous(), pair))
    return pairs


def seconds_per_iteration(config, pairs: list, device: str = "cpu", measure_iters: int = 4):
    """Train ``pairs`` (``(real, TrainingPair)``) as one group for ``measure_iters`` iterations per scale.

    Returns:
        ``(models, seconds)``: the models and, per scale, the median seconds of an iteration after the first (the
        first pays one-off setup).
    """
    import torch

    from monai_singanseg import SinGANSegTrainer
    from monai_singanseg.training import TrainingItem

    config = type(config).from_dict(config.to_dict())
    config.optim.iters_per_scale = measure_iters
    config.optim.plateau_window = 0
    if config.optim.coarse:  # the coarse scales' step mix is timed too, for as many iterations
        config.optim.coarse.update(iters_per_scale=measure_iters, plateau_window=0)
    stamps: dict[int, list[float]] = {}

    def timer(engine, scale):
        from ignite.engine import Events

        def stamp(_):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            stamps.setdefault(scale, []).append(time.perf_counter())

        engine.add_event_handler(Events.ITERATION_COMPLETED, stamp)

    with tempfile.TemporaryDirectory() as tmp:
        items = [TrainingItem(real, p.intensity, p.labels, f"{tmp}/m{i}.pt") for i, (real, p) in enumerate(pairs)]
        models = SinGANSegTrainer(config, device=device, progress=False, handlers=[timer]).fit_group(items)
    return models, [statistics.median(b - a for a, b in zip(t[:-1], t[1:])) for _, t in sorted(stamps.items())]


def measure(size: int, groups: int, schedule: str, measure_iters: int, device: str, threads: int,
            cudnn_benchmark: bool = False) -> dict:
    """Seconds per grouped iteration at every scale, and peak memory, for ``groups`` models of ``size`` px."""
    import torch

    from monai_singanseg import SinGANSegConfig

    torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark = cudnn_benchmark  # this child process only
    pairs = real_pairs(groups)
    config = SinGANSegConfig.for_schedule(schedule, image_channels=1, mask_channels=1)
    config.pyramid.max_size = size
    rss_before = peak_rss_mib()  # interpreter, libraries, data
    start = time.perf_counter()
    models, per_scale = seconds_per_iteration(config, pairs, device, measure_iters)
    wall = time.perf_counter() - start
    record = {
        "size": size, "groups": groups, "schedule": schedule, "device": device, "threads": threads,
        "cudnn_benchmark": cudnn_benchmark,
        "scales": [list(s) for s in models[0].shapes],
        "seconds_per_iteration": [round(s, 5) for s in per_scale],
        "wall_seconds": round(wall, 2),
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_training_mib": round(rss_before, 1),
    }
    if device.startswith("cuda"):
        record["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        record["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return record


def count_models(record: dict, optim) -> None:
    """Seconds per model and models per hour of ``record`` with the iterations ``optim`` runs at each scale."""
    num_scales = len(record["scales"])
    iters = [optim.at_scale(scale, num_scales).iters_per_scale for scale in range(num_scales)]
    seconds_per_model = sum(n * s for n, s in zip(iters, record["seconds_per_iteration"])) / record["groups"]
    record.update(iters_per_scale=iters, seconds_per_model=round(seconds_per_model, 1),
                  models_per_hour=round(3600 / seconds_per_model, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 192])
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--schedule", default="fast")
    parser.add_argument("--measure", type=int, default=4, help="iterations measured per scale")
    parser.add_argument("--iters-per-scale", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN time its algorithms per shape")
    parser.add_argument("--recount", action="store_true",
                        help="measure nothing: recount the saved rows with the schedules' current iterations per "
                             "scale (valid while a schedule's step mix per scale is unchanged)")
    parser.add_argument("--one", nargs=2, type=int, default=None, help=argparse.SUPPRESS)  # size, K (child process)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        record = measure(args.one[0], args.one[1], args.schedule, args.measure, args.device, args.threads,
                         args.cudnn_benchmark)
        Path(args.out).write_text(json.dumps(record))
        return

    sys.path.insert(0, str(ROOT))
    from monai_singanseg import SinGANSegConfig

    optim = SinGANSegConfig.for_schedule(args.schedule, iters_per_scale=args.iters_per_scale).optim
    records = []
    for size in [] if args.recount else args.sizes:
        for groups in args.groups:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "r.json"
                cmd = [sys.executable, __file__, "--one", str(size), str(groups), "--out", str(out),
                       "--schedule", args.schedule, "--measure", str(args.measure), "--device", args.device,
                       "--threads", str(args.threads)] + ["--cudnn-benchmark"] * args.cudnn_benchmark
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(f"size {size} K {groups}: failed\n{done.stderr[-1500:]}", file=sys.stderr)
                    continue
                record = json.loads(out.read_text())
            count_models(record, optim)
            record["training_mib_per_model"] = round(
                (record["peak_rss_mib"] - record["rss_before_training_mib"]) / groups, 1)
            records.append(record)
            print(json.dumps(record), flush=True)
    import torch

    # results accumulate over invocations (one row per schedule, size, K, threads), so sweeps can be run apart
    name = f"grouped_{args.device.split(':')[0]}"
    path = HERE / "results" / f"{name}.json"
    saved = json.loads(path.read_text()) if path.exists() else []
    saved = saved["records"] if isinstance(saved, dict) else saved
    if args.recount:
        for r in saved:
            count_models(r, SinGANSegConfig.for_schedule(r["schedule"], iters_per_scale=args.iters_per_scale).optim)
    key = ("schedule", "size", "groups", "threads", "cudnn_benchmark")
    fresh = {tuple(r.get(k, False) for k in key) for r in records}
    for r in records:
        r.update(date=time.strftime("%Y-%m-%d"), torch=torch.__version__, cpu=cpu_name())
    records = sorted([r for r in saved if tuple(r.get(k, False) for k in key) not in fresh] + records,
                     key=lambda r: tuple(r.get(k, False) for k in key))
    runs = sorted({(r["date"], r["torch"], r.get("gpu") or r.get("cpu", "")) for r in records if "date" in r})
    measured = "; ".join(f"{d}, torch {t}" + (f", {g}" if g else "") for d, t, g in runs) + \
        ("; some rows: date not recorded" if any("date" not in r for r in records) else "")
    recounted = f" Recounted {time.strftime('%Y-%m-%d')} with that day's schedules (`--recount`)." if args.recount \
        else ""
    lines = [f"# Grouped training: models per hour on {args.device}", "", f"Measured: {measured}.{recounted}", "",
             ("Models per hour = 3600 x K / (iterations at each scale x seconds per grouped iteration there, "
              "summed over scales); iterations: the schedule's maximum at each scale (fast: 600, and 2000 at its "
              "coarse scales since 2026-11-30; faithful: 2000)."), "",
             ("| schedule | threads | max size | K | scales | s per grouped iteration (coarsest → finest) | "
             "s per model | models/h | peak RSS MiB | training MiB per model | peak GPU MiB |"),
             "| --- " * 11 + "|"]
    for r in records:
        steps = " ".join(f"{s:.3f}" for s in r["seconds_per_iteration"])
        schedule = r["schedule"] + (" (cuDNN benchmark)" if r.get("cudnn_benchmark") else "")
        gpu = f"{r['peak_gpu_mib']:.0f}" if "peak_gpu_mib" in r else ""
        lines.append(f"| {schedule} | {r['threads']} | {r['size']} | {r['groups']} | {len(r['scales'])} | "
                     f"{steps} | {r['seconds_per_model']:.0f} | {r['models_per_hour']:.2f} | "
                     f"{r['peak_rss_mib']:.0f} | {r['training_mib_per_model']:.0f} | {gpu} |")
    text = "\n".join(lines) + "\n"
    path.write_text(json.dumps(records, indent=1))
    (HERE / "results" / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
