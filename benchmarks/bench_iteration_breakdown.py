"""Where a training iteration's time goes, per schedule, at the finest scale (torch.profiler on the CPU).

    python benchmarks/bench_iteration_breakdown.py [--size 192] [--iters 9] [--threads 2]

Trains the nuclei crop (grey image + mask) with ``--iters`` iterations per scale for each schedule and profiles the
finest scale's iterations after the first. The parts are the ``record_function`` labels of
:class:`monai_singanseg.training.ScaleStep`: the random sample of the coarser scales, the fake of a critic step,
the critic update without and with the gradient penalty, and the generator update; "rest" is what the iteration
spends outside them (noise draws, bookkeeping, the engine). Writes ``benchmarks/results/iteration_breakdown.json``
and ``.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from ignite.engine import Events
from machine import machine
from torch.profiler import ProfilerActivity, profile

from monai_singanseg import SinGANSegConfig, SinGANSegTrainer, load_training_pair
from monai_singanseg.pyramid import scale_shapes

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "nuclei"
PARTS = ("random_previous", "fake", "critic_update", "gradient_penalty", "generator_update")


def breakdown(schedule: str, size: int, iters: int, tmp: Path) -> dict:
    """Seconds per finest-scale iteration of ``schedule`` at max size ``size``, split by part."""
    pair = load_training_pair([DATA / "nuclei_image.png"], DATA / "nuclei_label.png")
    config = SinGANSegConfig.for_schedule(schedule, iters_per_scale=iters, image_channels=1, mask_channels=1)
    config.pyramid.max_size = size
    config.optim.plateau_window = 0
    if config.optim.coarse:  # the coarse scales are not profiled: as short as the rest
        config.optim.coarse.update(iters_per_scale=iters, plateau_window=0)
    finest = len(scale_shapes(pair.real.shape[1:], config.pyramid)) - 1
    profiler = profile(activities=[ProfilerActivity.CPU])
    clock: dict[str, float] = {}

    def attach(engine, scale):
        if scale != finest:
            return

        def start(e):
            if e.state.iteration == 1:  # the first iteration pays one-off setup: leave it out
                profiler.start()
                clock["start"] = time.perf_counter()

        def stop(_):
            clock["seconds"] = time.perf_counter() - clock["start"]
            profiler.stop()

        engine.add_event_handler(Events.ITERATION_COMPLETED, start)
        engine.add_event_handler(Events.COMPLETED, stop)

    SinGANSegTrainer(config, progress=False, handlers=[attach]).fit(
        pair.real, pair.intensity, pair.labels, tmp / f"{schedule}.pt")
    measured = iters - 1
    parts = {name: 0.0 for name in PARTS}
    for event in profiler.key_averages():
        if event.key.startswith("singanseg."):
            parts[event.key.split(".", 1)[1]] += event.cpu_time_total / 1e6 / measured
    seconds = clock["seconds"] / measured
    parts["critic_update"] -= parts["gradient_penalty"]  # the penalty runs inside the critic update
    parts["rest"] = seconds - sum(parts[name] for name in PARTS)
    return {"schedule": schedule, "size": size, "seconds_per_iteration": round(seconds, 4),
            "parts": {k: round(v, 4) for k, v in parts.items()}}


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--iters", type=int, default=9, help="iterations per scale (the first is left out)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [breakdown(s, args.size, args.iters, Path(tmp)) for s in ("faithful", "fast")]
    meta = {**machine(), "threads": args.threads}
    columns = ("random_previous", "fake", "critic_update", "gradient_penalty", "generator_update", "rest")
    lines = [f"# One iteration at the finest scale, max size {args.size} ({meta})", "",
             "| schedule | s/iteration | " + " | ".join(columns) + " |", "| --- " * (len(columns) + 2) + "|"]
    for r in rows:
        total = r["seconds_per_iteration"]
        cells = [f"{r['parts'][c]:.3f} s ({100 * r['parts'][c] / total:.0f} %)" for c in columns]
        lines.append(f"| {r['schedule']} | {total:.3f} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (HERE / "results" / "iteration_breakdown.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (HERE / "results" / "iteration_breakdown.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
