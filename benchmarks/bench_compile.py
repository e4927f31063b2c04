"""Does ``torch.compile`` pay for the per-scale training step? Eager against compiled, scale by scale.

    python benchmarks/bench_compile.py --size 96 192 --groups 1 [--device cpu] [--threads 1]
    python benchmarks/bench_compile.py --size 192 --groups 1 16 64 --device cuda --modes default reduce-overhead

A SinGAN model trains one small generator/critic pair per scale, so a compiled step must win back its compile time
within that scale's iterations. For every scale of the nuclei crop's pyramid (fast schedule, widths as trained,
``--groups`` models side by side as :class:`~monai_singanseg.training.SinGANSegTrainer` groups them) this measures
the two parts of an iteration that can be compiled, with the networks eager and wrapped in ``torch.compile``:

- ``generator``: the generator update's forward and backward (a random sample scored by the frozen critic, the
  reconstruction path's MSE);
- ``critic``: the critic update's forward and backward on the real and the fake image, without the gradient
  penalty (its double backward cannot run through a compiled graph: "aot_autograd does not currently support double
  backward", so a compiled trainer would keep the penalty eager).

It reports milliseconds per call (median of ``--reps`` after two warm-up calls), the compile time (first compiled
call minus first eager call, with an empty inductor cache, after a first compile that pays the process's one-off
start-up, reported apart; "warm": the same shapes again from inductor's on-disk
cache, as every model after the first of a ``train-many`` run with equal pyramids pays it), and the break-even iterations against those the fast schedule runs at that scale
(2000 at the coarse scales, at most 600 at the others); ``--scales`` limits it to some levels. ``reduce-overhead`` is torch.compile's CUDA-graph mode (GPU
only). Writes ``benchmarks/results/compile_<device>.json`` and ``.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from monai_singanseg import SinGANSegConfig, load_training_pair
from monai_singanseg.files import atomic_write
from monai_singanseg.networks.scale_networks import ScaleCritic, ScaleGenerator, init_weights
from monai_singanseg.pyramid import scale_shapes

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "nuclei"
MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's modes


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(call, reps: int, device: torch.device) -> tuple[float, float]:
    """(seconds of the first call, median seconds of ``reps`` calls after two warm-up calls)."""
    _sync(device)
    start = time.perf_counter()
    call()
    _sync(device)
    first = time.perf_counter() - start
    for _ in range(2):
        call()
    times = []
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        call()
        _sync(device)
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def _parts(generator, critic, real: torch.Tensor, rec_weight: float):
    """The two compilable parts of an iteration as argument-free callables (gradients accumulate; never stepped)."""
    noise, previous = torch.randn_like(real), torch.randn_like(real)
    rec_noise, rec_previous = torch.zeros_like(real), torch.randn_like(real)
    critic_params = list(critic.parameters())

    def generator_part() -> None:
        for p in critic_params:
            p.requires_grad_(False)
        loss = -critic(generator(noise, previous)).mean() + rec_weight * F.mse_loss(
            generator(rec_noise, rec_previous), real)
        loss.backward()
        for p in critic_params:
            p.requires_grad_(True)

    def critic_part() -> None:
        with torch.no_grad():
            fake = generator(noise, previous)
        (critic(fake).mean() - critic(real).mean()).backward()

    return {"generator": generator_part, "critic": critic_part}


def measure_scale(config: SinGANSegConfig, shape: tuple[int, ...], scale: int, groups: int, modes: list[str],
                  reps: int, device: torch.device, cache_root: str) -> list[dict]:
    """One row per (part, mode) at pyramid level ``scale`` (random tensors of its shape: timing only)."""
    cfg = config
    width = cfg.network.channels_at(scale)
    real = torch.rand(1, groups * cfg.channels, *shape, device=device) * 2 - 1

    def networks(mode: str):
        torch.manual_seed(0)
        generator = ScaleGenerator(cfg.spatial_dims, cfg.channels, width, cfg.network, groups).to(device).train()
        critic = ScaleCritic(cfg.spatial_dims, cfg.channels, width, cfg.network, groups).to(device).train()
        init_weights(generator)
        init_weights(critic)
        if mode == "eager":
            return generator, critic
        torch._dynamo.reset()  # each scale's networks compile afresh, as a trainer's would
        return torch.compile(generator, mode=mode), torch.compile(critic, mode=mode)

    rows = []
    eager: dict[str, dict] = {}
    for mode in ["eager", *modes]:
        # an empty inductor cache: the first compile of each scale and mode as a fresh machine pays it
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(dir=cache_root)
        for part, call in _parts(*networks(mode), real, cfg.optim.rec_weight).items():
            first, per_call = _timed(call, reps, device)
            row = {"scale": scale, "shape": list(shape), "width": width, "part": part, "mode": mode,
                   "first_s": first, "ms_per_call": per_call * 1e3}
            rows.append(row)
            if mode == "eager":
                eager[part] = row
                continue
            row["eager_ms"] = eager[part]["ms_per_call"]  # measured in the same process
            row["speedup"] = eager[part]["ms_per_call"] / row["ms_per_call"]
            row["compile_s"] = max(0.0, first - eager[part]["first_s"])
            saving = (eager[part]["ms_per_call"] - row["ms_per_call"]) / 1e3
            row["break_even_iters"] = row["compile_s"] / saving if saving > 0 else None
        if mode != "eager":
            # the same shapes again: inductor's on-disk cache now holds them, as it does for every model after the
            # first of a train-many run (equal pyramids)
            for part, call in _parts(*networks(mode), real, cfg.optim.rec_weight).items():
                _sync(device)
                start = time.perf_counter()
                call()
                _sync(device)
                row = next(r for r in rows if r["mode"] == mode and r["part"] == part)
                row["warm_compile_s"] = max(0.0, time.perf_counter() - start - eager[part]["first_s"])
    return rows


def _process_startup(device: torch.device, cache_root: str) -> float:
    """Seconds of a process's first compile (a 3x3 convolution, forward and backward): inductor's imports and
    compiler start-up, paid once per process (once per ``train-many`` run), so no scale is charged with them."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(dir=cache_root)
    conv = torch.compile(torch.nn.Conv2d(2, 2, 3).to(device))
    x = torch.randn(1, 2, 8, 8, device=device)
    _sync(device)
    start = time.perf_counter()
    conv(x).sum().backward()
    _sync(device)
    torch._dynamo.reset()
    return time.perf_counter() - start


def fast_pyramid(size: int) -> tuple[SinGANSegConfig, list[tuple[int, ...]]]:
    """The fast schedule's config at max size ``size`` and the nuclei crop's pyramid shapes under it."""
    pair = load_training_pair([DATA / "nuclei_image.png"], DATA / "nuclei_label.png")
    config = SinGANSegConfig.for_schedule("fast", image_channels=1, mask_channels=1)
    config.pyramid.max_size = size
    return config, scale_shapes(pair.real.shape[1:], config.pyramid)


def run(size: int, groups: int, modes: list[str], reps: int, device: torch.device, cache_root: str,
        scales: list[int] | None = None) -> dict:
    config, shapes = fast_pyramid(size)
    rows = []
    for scale, shape in enumerate(shapes):
        if scales is not None and scale not in scales and scale - len(shapes) not in scales:
            continue
        iters = config.optim.at_scale(scale, len(shapes)).iters_per_scale
        for row in measure_scale(config, tuple(shape), scale, groups, modes, reps if scale < len(shapes) - 2
                                 else max(3, reps // 4), device, cache_root):
            row["schedule_iters"] = iters
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"size": size, "groups": groups, "device": str(device), "rows": rows}


def summary(record: dict, mode: str) -> dict:
    """Seconds one fast model's compilable parts take over its schedule's maximum iterations, eager and compiled
    (compile time included), and how many scales win back their compile time."""
    eager = compiled = warm = 0.0
    paying = 0
    scales = sorted({r["scale"] for r in record["rows"]})
    for scale in scales:
        rows = [r for r in record["rows"] if r["scale"] == scale]
        iters = rows[0]["schedule_iters"]
        e = sum(r["eager_ms"] for r in rows if r["mode"] == mode) / 1e3 * iters
        c = sum(r["ms_per_call"] / 1e3 * iters + r["compile_s"] for r in rows if r["mode"] == mode)
        w = sum(r["ms_per_call"] / 1e3 * iters + r["warm_compile_s"] for r in rows if r["mode"] == mode)
        eager, compiled, warm = eager + e, compiled + c, warm + w
        paying += c < e
    return {"eager_s": eager, "compiled_s": compiled, "warm_s": warm, "paying_scales": paying, "scales": len(scales)}


def write(records: list[dict], device: str) -> None:
    """Save ``records`` beside the saved ones of other sizes and group sizes (a record replaces its own earlier
    measurement), and write the markdown of all."""
    path = HERE / "results" / f"compile_{device}.json"
    keep = json.loads(path.read_text()) if path.exists() else []
    new = {(r["size"], r["groups"]) for r in records}
    records = sorted([r for r in keep if (r["size"], r["groups"]) not in new] + records,
                     key=lambda r: (r["size"], r["groups"]))
    text = json.dumps(records, indent=1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))  # it holds earlier measurements too
    lines = [f"# torch.compile for the per-scale step ({device})", "",
             (f"Measured: {records[0]['date']}, torch {records[0]['torch']}, {records[0]['device_name']}, "
             f"{records[0]['threads']} thread(s). `benchmarks/bench_compile.py`; compile time = first compiled call "
             "minus first eager call; break-even = compile time / saving per call; fast schedule's iterations. "
             f"A process's first compile (inductor's start-up, once per run, in no figure below): "
             f"{max(r['process_startup_compile_s'] for r in records):.0f} s."), "",
             ("| max size | K | mode | eager s (generator + critic parts, scales measured, schedule's iterations) | "
              "compiled s (incl. cold compile) | compiled s (warm cache) | scales that pay (cold) |"),
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for rec in records:
        for mode in sorted({r["mode"] for r in rec["rows"]} - {"eager"}):
            s = summary(rec, mode)
            lines.append(f"| {rec['size']} | {rec['groups']} | {mode} | {s['eager_s']:.0f} | {s['compiled_s']:.0f} | "
                         f"{s['warm_s']:.0f} | {s['paying_scales']} of {s['scales']} |")
    lines += ["", "Per scale (ms per call eager → compiled, speedup, compile s, break-even iterations / schedule's):",
              "", ("| max size | K | mode | scale | shape | part | eager ms | compiled ms | speedup | compile s "
              "| warm compile s | break-even / iters |"),
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for rec in records:
        for r in rec["rows"]:
            if r["mode"] == "eager":
                continue
            be = "never" if r["break_even_iters"] is None else f"{r['break_even_iters']:.0f}"
            lines.append(f"| {rec['size']} | {rec['groups']} | {r['mode']} | {r['scale']} | "
                         f"{'x'.join(map(str, r['shape']))} | {r['part']} | "
                         f"{r['eager_ms']:.2f} | {r['ms_per_call']:.2f} | "
                         f"{r['speedup']:.2f} | {r['compile_s']:.1f} | {r['warm_compile_s']:.1f} | {be} / "
                         f"{r['schedule_iters']} |")
    atomic_write(path.with_suffix(".md"), lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[96])
    parser.add_argument("--groups", type=int, nargs="+", default=[1])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--modes", nargs="+", default=["default"], choices=MODES,
                        help="torch.compile modes (reduce-overhead: CUDA graphs, GPU only)")
    parser.add_argument("--scales", type=int, nargs="+", default=None,
                        help="pyramid levels to measure (0 = coarsest, -1 = finest; default: all)")
    parser.add_argument("--reps", type=int, default=20, help="timed calls per part (a quarter at the two finest)")
    parser.add_argument("--child-out", help=argparse.SUPPRESS)  # one size, K and mode, measured in a fresh process
    args = parser.parse_args(argv)
    if min(args.groups) < 1 or args.reps < 1 or min(args.size) < 1:
        parser.error("--size, --groups and --reps must be at least 1")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch sees no CUDA device")
    for size in args.size if args.scales else []:
        n = len(fast_pyramid(size)[1])
        if bad := [k for k in args.scales if not -n <= k < n]:
            parser.error(f"--scales {' '.join(map(str, bad))}: max size {size} has {n} scales (0 to {n - 1}, or -1 "
                         f"to -{n} from the finest)")
    if args.child_out:
        return _child(args)
    records = []
    for size in args.size:
        for groups in args.groups:
            record = None
            for mode in args.modes:
                # each mode in its own process: compiled kernels stay cached in memory, so a second mode compiled in
                # the same process would be charged less than a fresh run pays
                with tempfile.TemporaryDirectory() as tmp:
                    out = Path(tmp) / "record.json"
                    command = [sys.executable, __file__, "--size", str(size), "--groups", str(groups), "--modes", mode,
                               "--device", args.device, "--threads", str(args.threads), "--reps", str(args.reps),
                               "--child-out", str(out)]
                    if args.scales is not None:
                        command += ["--scales", *map(str, args.scales)]
                    subprocess.run(command, check=True)
                    child = json.loads(out.read_text())
                if record is None:
                    record = child
                else:  # the eager rows of the first process; each mode's rows compare with its own process's
                    record["rows"] += [r for r in child["rows"] if r["mode"] != "eager"]
                    record["process_startup_compile_s"] = max(record["process_startup_compile_s"],
                                                              child["process_startup_compile_s"])
            records.append(record)
            write(records, torch.device(args.device).type)  # partial results survive a deadline


def _child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    with tempfile.TemporaryDirectory(prefix="bench_compile_") as cache_root:
        startup = _process_startup(device, cache_root)
        print(f"{args.modes[0]}: first compile in this process (one-off, not charged to any scale): {startup:.1f} s",
              flush=True)
        record = run(args.size[0], args.groups[0], args.modes, args.reps, device, cache_root, args.scales)
    record.update(date=time.strftime("%Y-%m-%d"), torch=torch.__version__, device_name=name, threads=args.threads,
                  process_startup_compile_s=startup)
    Path(args.child_out).write_text(json.dumps(record))

if __name__ == "__main__":
    main()
