"""Where a SinGAN-Seg model loses the real image's fine detail: per scale, per sampling setting, and whether its
finest generator could keep it.

    python benchmarks/bench_sharpness.py profile MODEL.pt IMAGE LABEL [--num 16]
    python benchmarks/bench_sharpness.py refit MODEL.pt IMAGE LABEL [--steps 400]
    python benchmarks/bench_sharpness.py retrain MODEL.pt IMAGE LABEL --iters 500 [--rec-weight 100] [--every 100]

``profile`` reads a trained model and the pair it was trained on and prints the sharpness (RMS of the image
channels' Laplacian, :func:`monai_singanseg.metrics.sharpness`) of (a) the real image at every pyramid scale and the
model's reconstruction there, (b) the reconstruction one scale below brought up to the finest scale, which is what
the finest generator starts from, and the real image brought through the same resize (what upsampling alone
keeps), and (c) ``--num`` samples at start scales 0 and 1 and diversities 0.4 and 1.

``refit`` asks whether the finest generator *can* keep the detail: a copy of it is fitted to the real image by the
reconstruction loss alone (Adam at the schedule's learning rate, whole image, its own input), then samples are drawn
with it in place. ``retrain`` trains the finest scale again through the project's trainer (the model's own recipe,
``--iters`` iterations, no plateau stop, optionally another reconstruction weight), printing the reconstruction's
sharpness every ``--every`` iterations, then measures samples as ``profile`` does. Both are diagnostics of one
model: the recipe's own figures come from models trained from scratch (``bench_artifacts.py``).

Records append to ``benchmarks/results/sharpness.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch
from bench_time_to_quality import save_json
from ignite.engine import Events
from machine import machine

from monai_singanseg.checkpoint import load_model
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.io import load_training_pair
from monai_singanseg.metrics import sharpness
from monai_singanseg.pyramid import resize
from monai_singanseg.training.trainer import SinGANSegTrainer

RESULTS = Path(__file__).resolve().parent / "results" / "sharpness.json"
SETTINGS = ((0, 0.4), (0, 1.0), (1, 0.4), (1, 1.0))


def image_sharpness(x: torch.Tensor, image_channels: int) -> float:
    """Mean sharpness of the image channels of a batch ``(N, C, *spatial)``."""
    return round(float(sharpness(x[:, :image_channels]).mean()), 4)


@torch.no_grad()
def sample_sharpness(model, num: int, seed: int = 0) -> dict[str, float]:
    """Sharpness of ``num`` seeded samples per start scale and diversity in :data:`SETTINGS`."""
    out = {}
    for start, diversity in SETTINGS:
        generator = torch.Generator().manual_seed(seed)
        x = model.generate(num, start_scale=start, generator=generator, diversity=diversity)
        out[f"start{start}_d{diversity}"] = image_sharpness(x, model.config.image_channels)
    return out


@torch.no_grad()
def profile(model, real: torch.Tensor, num: int) -> dict:
    """Real and reconstruction sharpness per scale, what the finest generator starts from, and the samples'."""
    n = model.config.image_channels
    scales = []
    for k in range(1, model.trained_scales + 1):
        shape = model.shapes[k - 1]
        scales.append({"shape": list(shape), "real": image_sharpness(resize(real, shape), n),
                       "reconstruction": image_sharpness(model.reconstruct(k), n)})
    finest, below = model.shapes[model.trained_scales - 1], model.shapes[model.trained_scales - 2]
    return {
        "scales": scales,
        "finest_input": image_sharpness(resize(model.reconstruct(model.trained_scales - 1), finest), n),
        "real_through_upsampling": image_sharpness(resize(resize(real, below), finest), n),
        "reconstruction_mse": round(float(((model.reconstruct() - resize(real, finest)) ** 2).mean()), 5),
        "samples": sample_sharpness(model, num),
    }


def refit(model, real: torch.Tensor, steps: int, num: int) -> dict:
    """Fit a copy of the finest generator by the reconstruction loss alone; the samples with it in place."""
    n, last = model.config.image_channels, model.trained_scales - 1
    shape = model.shapes[last]
    target = resize(real, shape)
    with torch.no_grad():
        previous = resize(model.reconstruct(last), shape)
    generator = copy.deepcopy(model.generators[last]).requires_grad_(True).train()
    optimizer = torch.optim.Adam(generator.parameters(), lr=model.config.optim.lr_g, betas=model.config.optim.betas)
    zeros, trace, start = torch.zeros_like(previous), [], time.perf_counter()
    for step in range(1, steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = ((generator(zeros, previous) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        if step % max(1, steps // 4) == 0 or step == steps:
            with torch.no_grad():
                out = generator.eval()(zeros, previous)
            generator.train()
            trace.append({"step": step, "sharpness": image_sharpness(out, n),
                          "mse": round(float(((out - target) ** 2).mean()), 5),
                          "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps(trace[-1]), flush=True)
    model.generators[last] = generator.eval().requires_grad_(False)
    return {"steps": steps, "trace": trace, "samples": sample_sharpness(model, num)}


class _Probe:
    """Print the finest scale's reconstruction sharpness every ``every`` iterations while it trains."""

    def __init__(self, every: int, image_channels: int, trace: list) -> None:
        self.every, self.image_channels, self.trace, self.start = every, image_channels, trace, time.perf_counter()

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.every), self)

    @torch.no_grad()
    def __call__(self, engine) -> None:
        step = engine.state.scale_step
        step.generator.eval()
        out = step.generator(step.rec_noise, step.rec_previous)
        step.generator.train()
        self.trace.append({"iteration": engine.state.iteration,
                           "sharpness": image_sharpness(out, self.image_channels),
                           "mse": round(float(((out - step.real) ** 2).mean()), 5),
                           "seconds": round(time.perf_counter() - self.start, 1)})
        print(json.dumps(self.trace[-1]), flush=True)


def retrain(path: Path, pair, iters: int, rec_weight: float | None, every: int, num: int) -> dict:
    """Train the finest scale of the model at ``path`` again (its coarser scales kept) through the trainer."""
    model, state = load_model(path, device="cpu", for_training=True)
    if state is None:
        raise SystemExit(f"{path}: holds no training state to retrain from")
    model.generators, model.noise_amps = model.generators[:-1], model.noise_amps[:-1]
    state.log, state.complete = state.log[:-1], False
    optim = dataclasses.replace(model.config.optim, iters_per_scale=iters, plateau_window=0)
    if rec_weight is not None:
        optim = optim.with_fine_rec_weight(rec_weight)
    model.config = dataclasses.replace(model.config, optim=optim)
    trace: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder) / "retrained.pt"
        model.save(work, training=state)
        probe = _Probe(every, model.config.image_channels, trace)
        model = SinGANSegTrainer(model.config, progress=False, handlers=[probe]).fit(
            pair.real, pair.intensity, pair.labels, work, resume=True)
    return {"iters": iters, "rec_weight": optim.rec_weight, "trace": trace, "samples": sample_sharpness(model, num)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("profile", "refit", "retrain"))
    parser.add_argument("model", type=Path)
    parser.add_argument("image")
    parser.add_argument("label")
    parser.add_argument("--num", type=int, default=16, help="samples per start scale and diversity")
    parser.add_argument("--steps", type=int, default=400, help="refit: reconstruction-only steps")
    parser.add_argument("--iters", type=int, default=500, help="retrain: iterations of the finest scale")
    parser.add_argument("--rec-weight", type=float, default=None, help="retrain: the fine scales' weight")
    parser.add_argument("--every", type=int, default=100, help="retrain: probe interval")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:  # a missing or foreign file: one line naming it, before any work
        pair = load_training_pair([args.image], args.label)
        model, _ = load_model(args.model, device="cpu")
    except SinGANSegInputError as err:
        raise SystemExit(str(err)) from None
    if tuple(pair.real.shape[1:]) != tuple(model.shapes[-1]):
        raise SystemExit(f"{args.model}: its finest scale is {tuple(model.shapes[-1])}, the pair {args.image} is "
                         f"{tuple(pair.real.shape[1:])}: give the pair it was trained on")
    real = pair.real[None]
    record = {"mode": args.mode, "model": args.model.name, "folder": args.model.parent.name,
              "real_sharpness": image_sharpness(real, model.config.image_channels), "machine": machine()}
    if args.mode == "profile":
        record.update(profile(model, real, args.num))
    elif args.mode == "refit":
        record.update(refit(model, real, args.steps, args.num))
    else:
        record.update(retrain(args.model, pair, args.iters, args.rec_weight, args.every, args.num))
    print(json.dumps(record, indent=1))
    records = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    save_json(RESULTS, records + [record])


if __name__ == "__main__":
    main()
