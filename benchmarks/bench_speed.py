"""Speed of training and sampling: monai-singanseg beside the reference SinGAN-Seg (singan-seg-polyp 1.0.7).

Both run in the same invocation, one after the other, on the same 4-channel input (the nuclei crop from data/
replicated to RGB, plus its mask) with the same recipe (scale factor 0.75, min_size 25, widths 32→128, 3 critic +
3 generator steps). Each configuration runs in its own process so peak memory is its own.

    python benchmarks/bench_speed.py                         # ours and, if set up, the reference
    python benchmarks/bench_speed.py --setup-reference       # build benchmarks/reference/.venv-ref first
    python benchmarks/bench_speed.py --sizes 64 128 --iters 10

Writes benchmarks/results/speed.json and benchmarks/results/speed.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from machine import machine, peak_rss_mib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGE = ROOT / "data" / "nuclei" / "nuclei_image.png"
LABEL = ROOT / "data" / "nuclei" / "nuclei_label.png"
REFERENCE_PY = HERE / "reference" / ".venv-ref" / "bin" / "python"


def run_ours(max_size: int, iters: int, num_samples: int) -> dict:
    """Train and sample in this process; returns per-scale seconds per iteration and samples per second."""
    import tempfile

    import torch

    from monai_singanseg import OptimConfig, PyramidConfig, SinGANSegConfig, SinGANSegTrainer, read_image
    from monai_singanseg.io import prepare_training_pair

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # first Adam imports torch._dynamo: keep it out of scale 0
    image = read_image(IMAGE).as_tensor().repeat(3, 1, 1)
    pair = prepare_training_pair(image, read_image(LABEL).as_tensor())
    config = SinGANSegConfig(image_channels=3, mask_channels=1, pyramid=PyramidConfig(max_size=max_size),
                             optim=OptimConfig(iters_per_scale=iters))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model = SinGANSegTrainer(config, progress=False).fit(pair.real, pair.intensity, pair.labels, f"{tmp}/m.pt")
        total = time.perf_counter() - start
        log = torch.load(f"{tmp}/m.pt", weights_only=True)["training"]["log"]
    rss_train = peak_rss_mib()
    model.generate(2)  # warm-up
    start = time.perf_counter()
    model.generate(num_samples)
    batched = num_samples / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(num_samples):
        model.generate(1)
    one_by_one = num_samples / (time.perf_counter() - start)
    return {
        "implementation": "monai-singanseg",
        "max_size": max_size,
        "iters": iters,
        "scales": [{"scale": r["scale"], "shape": r["shape"], "nfc": r["width"],
                    "seconds_per_iter": r["seconds_per_iter"]} for r in log],
        "total_train_seconds": total,
        "samples_per_second": one_by_one,
        "samples_per_second_batched": batched,
        "peak_rss_mib_after_training": rss_train,
        "peak_rss_mib": peak_rss_mib(),
    }


def in_subprocess(cmd: list[str], out: Path) -> dict | None:
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(out.read_text())


def table(rows: list[dict]) -> str:
    lines = [
        ("| max size | scales | implementation | finest scale s/iter | all scales s/iter | train s | "
        "samples/s (1 by 1) | samples/s (batched) | peak RSS MiB |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        per_iter = sum(s["seconds_per_iter"] for s in r["scales"])
        batched = r.get("samples_per_second_batched")
        lines.append(
            f"| {r['max_size']} | {len(r['scales'])} | {r['implementation']} | "
            f"{r['scales'][-1]['seconds_per_iter']:.3f} | {per_iter:.3f} | {r['total_train_seconds']:.1f} | "
            f"{r['samples_per_second']:.1f} | {'' if batched is None else f'{batched:.1f}'} | "
            f"{r['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines)


def ratios(rows: list[dict]) -> str:
    lines = [("| max size | training speed-up (reference s/iter ÷ ours, all scales) | finest scale | "
              "sampling speed-up |"),
             "| --- | --- | --- | --- |"]
    by = {(r["max_size"], r["implementation"].split()[0]): r for r in rows}
    for size in sorted({r["max_size"] for r in rows}):
        ours, ref = by.get((size, "monai-singanseg")), by.get((size, "singan-seg-polyp"))
        if not ours or not ref:
            continue
        t_ours = sum(s["seconds_per_iter"] for s in ours["scales"])
        t_ref = sum(s["seconds_per_iter"] for s in ref["scales"])
        fin = ref["scales"][-1]["seconds_per_iter"] / ours["scales"][-1]["seconds_per_iter"]
        lines.append(f"| {size} | {t_ref / t_ours:.1f}× | {fin:.1f}× | "
                     f"{ours['samples_per_second'] / ref['samples_per_second']:.1f}× |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 250])
    parser.add_argument("--iters", type=int, nargs="+", default=[10, 6, 3], help="iterations per scale, per size")
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--setup-reference", action="store_true")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    iters = dict(zip(args.sizes, args.iters + args.iters[-1:] * len(args.sizes)))
    if args.worker is not None:
        result = run_ours(args.worker, iters[args.worker], args.num_samples)
        (args.out / f".ours_{args.worker}.json").write_text(json.dumps(result))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.setup_reference:
        subprocess.run(["bash", str(HERE / "reference" / "setup_reference_venv.sh")], check=True)
    use_reference = REFERENCE_PY.exists() and not args.no_reference
    if not use_reference and not args.no_reference:
        print("reference venv missing: run with --setup-reference to measure singan-seg-polyp beside ours")
    rows = []
    for size in args.sizes:
        tmp = args.out / f".ours_{size}.json"
        cmd = [sys.executable, __file__, "--worker", str(size), "--sizes", *map(str, args.sizes), "--iters",
               *map(str, args.iters), "--num-samples", str(args.num_samples), "--out", str(args.out)]
        if (row := in_subprocess(cmd, tmp)) is not None:
            rows.append(row)
        tmp.unlink(missing_ok=True)
        if use_reference:
            tmp = args.out / f".reference_{size}.json"
            cmd = [str(REFERENCE_PY), str(HERE / "reference" / "run_reference.py"), "--image", str(IMAGE), "--label",
                   str(LABEL), "--max-size", str(size), "--iters", str(iters[size]), "--num-samples",
                   str(args.num_samples), "--out", str(tmp)]
            if (row := in_subprocess(cmd, tmp)) is not None:
                rows.append(row)
            tmp.unlink(missing_ok=True)
    meta = {**machine(), "num_samples": args.num_samples}
    (args.out / "speed.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    text = (f"# Speed: training and sampling (4 channels: nuclei crop as RGB + mask)\n\n{meta}\n\n{table(rows)}\n\n"
            f"{ratios(rows)}\n")
    (args.out / "speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
