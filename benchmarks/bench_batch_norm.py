"""Batch norm at sampling time: how far the reconstruction is from the real pair with the running statistics
(eval mode, how every model samples) against the statistics of the input itself (train mode), scale by scale, and
whether re-estimating the running statistics after training ("precise BN") helps.

    python benchmarks/bench_batch_norm.py                       # the nuclei 96-px time-to-quality models
    python benchmarks/bench_batch_norm.py --models A.pt B.pt    # any models trained on --data

Uses the checkpoints that ``bench_time_to_quality.py run`` left in ``results/models/time_to_quality`` and its
quality figures (``measure``: SWD, diversity, foreground error, reconstruction MSE; 24 samples at start scale 0).
Writes ``results/batch_norm.json`` and ``results/batch_norm.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from bench_time_to_quality import MODELS, RESULTS, load_pair, measure

from monai_singanseg.checkpoint import load_model
from monai_singanseg.networks import SinGANSeg, draw_noise
from monai_singanseg.pyramid import build_pyramid, resize

DEFAULT_MODELS = ["nuclei_96_faithful_2000_t1_s0.pt", "nuclei_96_faithful_2000_t1_s1.pt",
                  "nuclei_96_fast_600_t1_s0.pt", "nuclei_96_fast_600_t1_s1.pt"]
FORWARDS = 100  # batch-1 forwards per scale to re-estimate the statistics


def _reconstruction_input(model: SinGANSeg, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(noise, previous) of the reconstruction path at ``scale``, with the coarser scales in eval mode."""
    if scale == 0:
        return model.noise_amps[0] * model.fixed_noise, torch.zeros_like(model.fixed_noise)
    previous = resize(model.reconstruct(scale), model.shapes[scale])
    return torch.zeros_like(previous), previous


@torch.no_grad()
def reconstruction_by_scale(model: SinGANSeg, real_pyramid: list[torch.Tensor]) -> list[dict[str, float]]:
    """MSE of each scale's output on the reconstruction path, eval-mode vs train-mode batch norm at that scale."""
    model.eval()
    out = []
    for scale, generator in enumerate(model.generators):
        noise, previous = _reconstruction_input(model, scale)
        errors = {}
        # a copy in train mode: a train-mode forward updates the running statistics, even without gradients
        for mode, network in (("eval", generator), ("train", copy.deepcopy(generator).train())):
            errors[mode] = float(((network(noise, previous) - real_pyramid[scale]) ** 2).mean())
        out.append(errors)
    return out


@torch.no_grad()
def recalibrate(model: SinGANSeg, rec_every: int, seed: int = 123) -> SinGANSeg:
    """Re-estimate every generator's running statistics, coarsest first, as the plain average over ``FORWARDS``
    batch-1 forwards of random samples, every ``rec_every``-th one the reconstruction path's input instead (0: never).
    """
    rng = torch.Generator().manual_seed(seed)
    channels = model.config.channels
    model.eval()
    for scale, generator in enumerate(model.generators):
        norms = [m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average instead of the exponential one of training
        for i in range(FORWARDS):
            if rec_every and i % rec_every == 0:
                noise, previous = _reconstruction_input(model, scale)
            else:  # a random sample of the coarser scales (their statistics already re-estimated), then this scale's
                previous = resize(model.generate(1, generator=rng, stop_scale=scale), model.shapes[scale])
                noise = model.noise_amps[scale] * draw_noise(1, channels, model.shapes[scale], scale == 0, rng, "cpu")
            generator.train()
            generator(noise, previous)
            generator.eval()
        for norm in norms:
            norm.momentum = 0.1
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="nuclei", choices=("nuclei", "mni"))
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pair = load_pair(args.data)
    records = []
    for name in args.models:
        path = Path(name) if Path(name).exists() else MODELS / name
        model, _ = load_model(path)
        pyramid = build_pyramid(pair.real.unsqueeze(0), model.shapes)
        record = {"model": path.name, "by_scale": reconstruction_by_scale(model, pyramid),
                  "as_trained": measure(model, pyramid[-1], 24, 0)}
        for label, rec_every in (("precise_random", 0), ("precise_mixed", 3)):
            record[label] = measure(recalibrate(load_model(path)[0], rec_every), pyramid[-1], 24, 0)
        print(json.dumps(record), flush=True)
        records.append(record)
    (RESULTS / "batch_norm.json").write_text(json.dumps(records, indent=1))
    scales = len(records[0]["by_scale"])
    lines = ["# Batch norm at sampling time", "",
             ("Reconstruction MSE of each scale's output (coarser scales in eval mode): eval-mode batch norm (running "
              "statistics, how models sample) / train-mode (the input's own statistics)."), "",
             "| model | " + " | ".join(f"scale {k}" for k in range(scales)) + " |", "| --- |" + " --- |" * scales]
    for r in records:
        lines.append(f"| {r['model']} | " + " | ".join(f"{s['eval']:.5f} / {s['train']:.5f}" for s in r["by_scale"])
                     + " |")
    lines += ["", (f"Quality (24 samples at start scale 0) with the running statistics training left, and re-estimated "
                   f"after training as the average over {FORWARDS} batch-1 forwards: of random samples only, or with "
                   "every third forward the reconstruction path's input."), "",
              "| model | statistics | SWD | diversity | fg error | rec MSE |", "| --- | --- | --- | --- | --- | --- |"]
    for r in records:
        for label in ("as_trained", "precise_random", "precise_mixed"):
            q = r[label]
            lines.append(f"| {r['model']} | {label.replace('_', ' ')} | {q['swd']:.4f} | {q['diversity']:.3f} | "
                         f"{q['fg_error']:.4f} | {q['rec_mse']:.5f} |")
    (RESULTS / "batch_norm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
