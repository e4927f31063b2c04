"""Peak memory of training one model at max size 250 on the CPU, with and without ``--low-memory``.

Each configuration trains in its own process (peak RSS is per process): the 4-channel nuclei input (the crop of
data/nuclei replicated to RGB, plus its mask), the faithful recipe, ``--iters`` iterations per scale, one thread. It
records the resident memory after ``import torch``, after importing the package (MONAI and its imports), before
training, and the peak, with the seconds per iteration of the finest scale (the price of ``--low-memory``).

    python benchmarks/bench_memory.py                 # both configurations, 2 iterations per scale (about 6 min)

Writes benchmarks/results/memory.json and memory.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import peak_rss_mib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGE = ROOT / "data" / "nuclei" / "nuclei_image.png"
LABEL = ROOT / "data" / "nuclei" / "nuclei_label.png"


def measure(max_size: int, iters: int, low_memory: bool) -> dict:
    """Train one model in this process and return its memory figures (MiB) and the finest scale's s/iter."""
    import torch

    torch.set_num_threads(1)
    after_torch = peak_rss_mib()
    from monai_singanseg import OptimConfig, PyramidConfig, SinGANSegConfig, SinGANSegTrainer, read_image
    from monai_singanseg.cli import _low_memory
    from monai_singanseg.io import prepare_training_pair

    after_import = peak_rss_mib()
    if low_memory:
        _low_memory()  # what `singanseg train --low-memory` does first
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # first Adam imports torch._dynamo: keep it out of training
    image = read_image(IMAGE).as_tensor().repeat(3, 1, 1)
    pair = prepare_training_pair(image, read_image(LABEL).as_tensor())
    config = SinGANSegConfig(image_channels=3, mask_channels=1, pyramid=PyramidConfig(max_size=max_size),
                             optim=OptimConfig(iters_per_scale=iters))
    before = peak_rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        SinGANSegTrainer(config, progress=False).fit(pair.real, pair.intensity, pair.labels, f"{tmp}/m.pt")
        seconds = time.perf_counter() - start
        log = torch.load(f"{tmp}/m.pt", weights_only=True)["training"]["log"]
    return {"max_size": max_size, "iters": iters, "low_memory": low_memory, "after_import_torch_mib": after_torch,
            "after_import_package_mib": after_import, "before_training_mib": before, "peak_mib": peak_rss_mib(),
            "train_seconds": seconds, "finest_seconds_per_iter": log[-1]["seconds_per_iter"]}


def table(rows: list[dict]) -> str:
    lines = [("| max size | --low-memory | after `import torch` | after the package's imports | before training | "
             "peak RSS | training part | finest scale s/iter |"), "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['max_size']} | {'yes' if r['low_memory'] else 'no'} | {r['after_import_torch_mib']:.0f} | "
                     f"{r['after_import_package_mib']:.0f} | {r['before_training_mib']:.0f} | {r['peak_mib']:.0f} | "
                     f"{r['peak_mib'] - r['before_training_mib']:.0f} | {r['finest_seconds_per_iter']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-size", type=int, default=250)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--one", choices=("plain", "low"), help=argparse.SUPPRESS)  # a child process's own run
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.one:
        args.json.write_text(json.dumps(measure(args.max_size, args.iters, args.one == "low")))
        return
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        for one in ("plain", "low"):
            target = Path(tmp) / f"{one}.json"
            subprocess.run([sys.executable, __file__, "--one", one, "--json", str(target), "--max-size",
                            str(args.max_size), "--iters", str(args.iters)], env=env, check=True)
            rows.append(json.loads(target.read_text()))
            print(table(rows[-1:]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(rows, indent=2) + "\n")
    text = (f"Peak RSS (MiB) of training one model, 4-channel nuclei input, faithful recipe, {args.iters} iterations "
            "per scale, 1 thread; `python benchmarks/bench_memory.py`.\n\n" + table(rows) + "\n")
    (args.out / "memory.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
