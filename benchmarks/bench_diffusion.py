"""The diffusion backend on the CPU: training time to a usable model, sampling time per pair, quality vs SinGAN-Seg.

    python benchmarks/bench_diffusion.py train    [--sizes 64 128] [--modes crops whole] [--steps 3000]
    python benchmarks/bench_diffusion.py sampling [--sizes 64 128] [--modes crops]
    python benchmarks/bench_diffusion.py compare  [--sizes 64 128] [--modes whole crops]
    python benchmarks/bench_diffusion.py train sampling compare --sizes 32 --steps 40 --eval-every 20 --eval-num 8 \
        --ddpm-steps 100 --ddim-steps 10 --singanseg-iters 50 --singanseg-train-sizes 32 --out /tmp/bd   # smoke test

Data: the real nuclei pair of ``data/nuclei`` (a 256x256 crop of the stardist image, grey + binary mask), in one of
two training sets per size ``S`` (``--modes``):

- ``crops``: random ``S x S`` crops (and flips) of the 256x256 pair at its own resolution: the model learns nuclei at
  their native scale; 193^2 crop positions at 64, 129^2 at 128 (half the pair per crop: overlapping tiles of one
  image, not independent images). Samples are measured against the whole 256x256 pair; a row of real crops measured
  the same way gives the floor the samples can reach.
- ``whole``: the 256x256 pair downscaled to ``S x S`` (antialiased, as SinGAN-Seg's pyramid does), one image the
  model sees whole (flips only): exactly the finest scale a SinGAN-Seg model of ``max_size S`` trains on, so the
  two generators are compared on the same data. One training image: watch the memorisation column.

The network is a small ``DiffusionModelUNet``: feature maps (32, 64, 64, 64), one residual block per level,
self-attention only at the deepest level (and in MONAI's middle block), epsilon prediction, T = 1000 linear betas,
Adam 2e-4 (Ho et al. 2020's rate), batch 8. A fourth level makes it cheaper than (32, 64, 64) on the CPU (the
deepest attention sees 8^2 / 16^2 positions instead of 16^2 / 32^2 at 64 / 128) and widens its receptive field.

Phases (each writes ``diffusion.json`` and ``diffusion.md`` in ``--out`` after every measurement, and stops at its
own wall-clock ``--deadline``; a later call resumes training from the checkpoints and keeps what is measured):

- ``train``: trains ``--steps`` steps per size, in stretches of ``--eval-every`` steps; after each stretch, quality of
  ``--eval-num`` DDIM samples (``--eval-steps`` steps, the same start noise every time): a curve of quality vs
  training wall time (the trainer's own timing, evaluation excluded). Time to a usable model: the first evaluation
  from which the SWD stays within 10 % of the last evaluation's (every later one included). Also seconds per step
  and peak resident memory of the process during the run (VmHWM, reset at its start).
- ``sampling``: seconds per pair for DDPM and DDIM at several step counts, batch 1 and 8, with the quality of the
  largest batch's samples (``--sampling-num``); RePaint inpainting (jump 10, resample 10 vs 1) per pair.
- ``compare``: SinGAN-Seg (fast schedule, ``--singanseg-iters`` per scale, max size S: an existing model of
  ``benchmarks/results/models/time_to_quality`` or trained here for the sizes in ``--singanseg-train-sizes``) beside
  the diffusion models of ``train``: SWD, diversity, foreground error, memorisation, training minutes, s/sample.

Metrics (``monai_singanseg.metrics``, image channels in ``[-1, 1]`` unless said): SWD of 7x7 patches (as the report
and the other benchmarks), diversity = 1 - mean pairwise MS-SSIM, foreground fraction of the masks (error: mean
|sample - real|), and memorisation: each sample's RMS distance to the nearest training crop (every position and
flip of the training image, as the trainer draws them) over the median distance between samples; under 0.5 counts
as a copy, as ``memorisation_check`` does for one training image. Models go to ``--out/models`` (default
``benchmarks/results/models``, ignored by git).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_quality import reference_sets
from bench_time_to_quality import load_pair, make_config
from ignite.engine import Events
from machine import machine, peak_rss_mib, reset_peak_rss

from monai_singanseg import SinGANSeg, SinGANSegTrainer, TrainingPair
from monai_singanseg.checkpoint import read_checkpoint
from monai_singanseg.diffusion import (
    DiffusionConfig,
    DiffusionTrainer,
    PairDiffusion,
    read_diffusion_checkpoint,
    stored_config,
)
from monai_singanseg.files import atomic_write
from monai_singanseg.metrics import foreground, foreground_fraction, ms_ssim_diversity, sliced_wasserstein
from monai_singanseg.pyramid import build_pyramid
from monai_singanseg.report import SWD_OPTIONS, generate_samples, markdown_table
from monai_singanseg.training.trainer import config_differences

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PHASES = ("train", "sampling", "compare")
MODES = ("crops", "whole")
DEFAULT_MODES = {"train": ["crops", "whole"], "sampling": ["crops"], "compare": ["whole", "crops"]}
DEFAULT_DEADLINE_MINUTES = {"train": 600, "sampling": 120, "compare": 60}
USABLE_TOLERANCE = 0.10
COPY_FRACTION = 0.5
EVAL_SEED = 1234  # start noise of every quality evaluation (the same at every checkpoint: a smoother curve)


# --- data, models, bookkeeping ------------------------------------------------------------------------------------


def training_pair(pair: TrainingPair, mode: str, size: int) -> TrainingPair:
    """The training set of ``mode`` at ``size``: the native pair (random crops) or the pair downscaled to size^2."""
    if mode == "crops":
        if min(pair.real.shape[1:]) < size:
            raise SystemExit(f"crops of {size} px do not fit in the {tuple(pair.real.shape[1:])} pair.")
        return pair
    real = build_pyramid(pair.real[None], [(size, size)])[0][0]  # SinGAN-Seg's finest scale at max_size = size
    return TrainingPair(real, pair.intensity, pair.labels, pair.meta)


def diffusion_config(args: argparse.Namespace, size: int, steps: int) -> DiffusionConfig:
    channels = tuple(args.unet_channels)
    return DiffusionConfig(
        image_channels=1, mask_channels=1, image_size=size, unet_channels=channels,
        attention_levels=tuple(i == len(channels) - 1 for i in range(len(channels))),
        num_res_blocks=args.res_blocks, norm_num_groups=args.norm_groups, num_head_channels=args.head_channels,
        num_train_timesteps=args.timesteps, lr=args.lr, train_steps=steps, batch_size=args.batch_size,
        checkpoint_every=args.eval_every, seed=args.seed, ema_decay=args.ema_decay,
    ).validate()


def model_path(args: argparse.Namespace, mode: str, size: int) -> Path:
    return args.models / f"diffusion_{mode}_{size}_s{args.seed}.pt"


def steps_for(args: argparse.Namespace, size: int) -> int:
    """``--steps``: one number for every size, or one per ``--sizes`` entry."""
    if len(args.steps) == 1:
        return args.steps[0]
    if len(args.steps) != len(args.sizes):
        raise SystemExit(f"--steps takes one number or one per size ({len(args.sizes)}), got {args.steps}.")
    return args.steps[args.sizes.index(size)]


class Deadline:
    """A wall-clock limit, ``minutes`` from now."""

    def __init__(self, minutes: float) -> None:
        self.end = time.monotonic() + 60.0 * minutes

    def left(self) -> float:
        return self.end - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0


def results_path(args: argparse.Namespace) -> Path:
    return args.out / "diffusion.json"


def read_results(args: argparse.Namespace) -> dict:
    path = results_path(args)
    results = json.loads(path.read_text()) if path.exists() else {}
    for key in ("meta", *PHASES):
        results.setdefault(key, {})
    return results


def store(args: argparse.Namespace, phase: str, key: str, value: dict) -> None:
    """Put ``value`` at ``results[phase][key]`` and rewrite the JSON and the markdown (read late: phases may run in
    parallel processes)."""
    results = read_results(args)
    results[phase][key] = value
    results["meta"][phase] = {**machine(), "settings": settings(args)}
    text = json.dumps(results, indent=1) + "\n"
    atomic_write(results_path(args), lambda tmp: Path(tmp).write_text(text))
    markdown = write_markdown(results)
    atomic_write(args.out / "diffusion.md", lambda tmp: Path(tmp).write_text(markdown))
    if phase == "train":
        plot_training(results["train"], args.out / "diffusion_training.png")


def settings(args: argparse.Namespace) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("phases",)}


# --- quality ------------------------------------------------------------------------------------------------------


def nearest_crop_rms(real: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """RMS distance ``(N,)`` of every sample ``(N, C, h, w)`` to its nearest crop of ``real`` ``(1, C, H, W)``, over
    every crop position and the four flips the trainer draws: |crop - x|^2 = |crop|^2 + |x|^2 - 2 crop.x, with the
    crop sums from an integral image and the correlations by FFT (no crop is materialised)."""
    real, samples = real.double().cpu(), samples.double().cpu()
    (H, W), (h, w) = real.shape[2:], samples.shape[2:]
    integral = F.pad(real[0].pow(2).sum(0).cumsum(0).cumsum(1), (1, 0, 1, 0))
    windows = integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w]  # |crop|^2, (P, Q)
    spectrum = torch.fft.rfft2(real[0], s=(H, W))
    best = torch.full((samples.shape[0],), math.inf, dtype=torch.float64)
    for dims in ((), (-1,), (-2,), (-2, -1)):
        x = samples.flip(dims) if dims else samples
        # correlation of real with x at every valid offset (no wrap-around: x starts at the origin, offset <= H - h)
        cross = torch.fft.irfft2(spectrum * torch.fft.rfft2(x, s=(H, W)).conj(), s=(H, W)).sum(1)
        squared = windows + x.pow(2).sum((1, 2, 3)).view(-1, 1, 1) - 2 * cross[:, : H - h + 1, : W - w + 1]
        best = torch.minimum(best, squared.flatten(1).amin(1))
    return (best.clamp_min(0) / samples[0].numel()).sqrt().float()


def measure(real: torch.Tensor, samples: torch.Tensor, labels, n_img: int = 1) -> dict:
    """Quality of ``samples`` ``(N, C, h, w)`` against the training image ``real`` ``(1, C, H, W)`` (``H, W >= h, w``),
    both in ``[-1, 1]``, image channels first."""
    real, samples = real.cpu(), samples.cpu()
    swd = sliced_wasserstein(real[:, :n_img], samples[:, :n_img], **SWD_OPTIONS)
    fractions = foreground_fraction(foreground(samples[:, n_img:], labels))
    real_fraction = float(foreground_fraction(foreground(real[:, n_img:], labels))[0])
    nearest = nearest_crop_rms(real[:, :n_img], samples[:, :n_img])
    flat = samples[:, :n_img].double().reshape(samples.shape[0], -1)
    spread = float((torch.pdist(flat) / math.sqrt(flat.shape[1])).median())
    ratio = nearest / spread if spread > 0 else torch.full_like(nearest, math.inf)
    return {
        "num": samples.shape[0],
        "swd": round(float(swd.mean()), 6), "swd_std": round(float(swd.std(correction=0)), 6),
        "diversity": round(ms_ssim_diversity(samples[:, :n_img]), 6),
        "fg_error": round(float((fractions - real_fraction).abs().mean()), 6),
        "fg_mean": round(float(fractions.mean()), 6), "fg_std": round(float(fractions.std(correction=0)), 6),
        "fg_real": round(real_fraction, 6),
        "nearest_rms_mean": round(float(nearest.mean()), 6), "spread_rms": round(spread, 6),
        "min_ratio": round(float(ratio.min()), 4) if math.isfinite(float(ratio.min())) else None,
        "copies": int((ratio <= COPY_FRACTION).sum()),
    }


def ddim_samples(model: PairDiffusion, num: int, steps: int, seed: int, batch: int = 8) -> torch.Tensor:
    """``num`` DDIM samples ``(num, C, *image_size)`` in ``[-1, 1]``, ``batch`` at a time from one seeded generator."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    return torch.cat([model.generate(min(batch, num - i), steps, "ddim", generator=generator)
                      for i in range(0, num, batch)]).cpu()


def real_crops(real: torch.Tensor, size: int, num: int, seed: int) -> torch.Tensor:
    """``num`` random ``size^2`` crops of ``real`` ``(1, C, H, W)``, each flipped as the trainer would."""
    generator = torch.Generator().manual_seed(seed)
    crops = []
    for _ in range(num):
        top, left = (int(torch.randint(s - size + 1, (1,), generator=generator)) for s in real.shape[2:])
        crop = real[0, :, top:top + size, left:left + size]
        dims = [d for d in (1, 2) if float(torch.rand(1, generator=generator)) < 0.5]
        crops.append(crop.flip(dims) if dims else crop)
    return torch.stack(crops)


def save_grid(path: Path, model, samples: torch.Tensor, real: torch.Tensor, title: str, count: int = 8) -> None:
    """Samples (``[-1, 1]``) beside the real pair, the image in its units with the mask outlined."""
    from monai_singanseg.visualize import save_pair_grid

    n_img = model.config.image_channels
    to_units = model.intensity.denormalize

    def split(x):
        return to_units(x[:, :n_img], channel_dim=1), model.labels.decode(x[:, n_img:], channel_dim=1)

    images, labels = split(samples[:count])
    real_image, real_label = split(real)
    save_pair_grid(path, images, labels, (real_image[0], real_label[0]), columns=5, title=title,
                   intensity_range=(model.intensity.lower, model.intensity.upper))


# --- phase 1: training --------------------------------------------------------------------------------------------


def stop_at(deadline: Deadline):
    """Trainer handler: end training (with a checkpoint, as an interruption would) once the deadline passes."""

    def attach(engine) -> None:
        @engine.on(Events.ITERATION_COMPLETED)
        def _check(engine) -> None:
            if deadline.passed():
                engine.terminate()

    return attach


def checkpoint_state(path: Path) -> tuple[DiffusionConfig, dict]:
    payload = read_diffusion_checkpoint(path)
    return stored_config(payload), payload["training"] or {}


def usable_point(evals: list[dict]) -> dict | None:
    """The first evaluation from which every SWD up to the last is within ``USABLE_TOLERANCE`` of the last one."""
    if not evals:
        return None
    final = evals[-1]["swd"]
    return next(e for i, e in enumerate(evals) if all(x["swd"] <= (1 + USABLE_TOLERANCE) * final for x in evals[i:]))


def train_run(args: argparse.Namespace, pair: TrainingPair, mode: str, size: int, deadline: Deadline) -> None:
    key, path = f"{mode}_{size}", model_path(args, mode, size)
    config = diffusion_config(args, size, steps_for(args, size))
    data = training_pair(pair, mode, size)
    record = read_results(args)["train"].get(key)
    if args.fresh or not path.exists():
        path.unlink(missing_ok=True)
        record = None  # no checkpoint: whatever was recorded of it is stale
    done = 0
    if path.exists():
        stored, state = checkpoint_state(path)
        changes = [str(c) for c in config_differences(stored, config) if c.field not in
                   ("train_steps", "checkpoint_every")]
        done = int(state.get("step", 0))
        if changes:
            raise SystemExit(f"{path} was trained with other options ({'; '.join(changes)}); rerun with --fresh.")
        if record is None or record.get("step") != done:
            raise SystemExit(f"{path} holds {done} steps but {results_path(args)} has no matching record (its "
                             "training time is unknown); rerun with --fresh.")
    if record is None:
        model = PairDiffusion(config)
        record = {"mode": mode, "size": size, "data": data_note(mode, size), "step": 0, "train_seconds": 0.0,
                  "segments": [], "evals": [], "peak_rss_mb": 0.0, "config": config.to_dict(),
                  "parameters": sum(p.numel() for p in model.unet.parameters())}
    record["target_steps"] = config.train_steps
    real = data.real[None]
    reset_peak_rss()
    record["rss_at_start_mb"] = peak_rss_mib("VmRSS")  # imports, data, the model: the peak's baseline
    print(f"train {key}: {done}/{config.train_steps} steps done, {record['parameters']:,} parameters", flush=True)
    while done < config.train_steps and not deadline.passed():
        target = min((done // args.eval_every + 1) * args.eval_every, config.train_steps)
        trainer = DiffusionTrainer(config, progress=not args.quiet, handlers=[stop_at(deadline)], stop_after=target)
        model = trainer.fit([data], path, resume=path.exists())
        _, state = checkpoint_state(path)
        new = [r for r in state["log"] if r["step"] > done]
        # the trainer's log counts seconds of training so far, resumed runs included: this stretch is the difference
        before = [r["seconds"] for r in state["log"] if r["step"] <= done]
        seconds = new[-1]["seconds"] - (before[-1] if before else 0.0)
        record["segments"].append({"from": done, "to": state["step"], "seconds": round(seconds, 3),
                                   "s_per_step": round(seconds / max(state["step"] - done, 1), 4),
                                   "loss": round(new[-1]["loss"], 6),
                                   "load_average_1min": round(os.getloadavg()[0], 2)})
        done, record["step"] = state["step"], state["step"]
        record["train_seconds"] = round(record["train_seconds"] + seconds, 3)
        record["peak_rss_mb"] = max(record["peak_rss_mb"], peak_rss_mib())
        if done % args.eval_every == 0 or done == config.train_steps:  # not after a stop by the deadline
            start = time.perf_counter()
            samples = ddim_samples(model, args.eval_num, args.eval_steps, EVAL_SEED)
            quality = measure(real, samples, model.labels)
            if state.get("online") is not None:  # the model samples with the average: the training weights beside
                online = PairDiffusion(model.config, model.intensity, model.labels, model.source)
                online.unet.load_state_dict(state["online"])
                quality["online"] = measure(real, ddim_samples(online.eval(), args.eval_num, args.eval_steps,
                                                               EVAL_SEED), model.labels)
            record["evals"].append({"step": done, "train_seconds": record["train_seconds"],
                                    "loss": round(new[-1]["loss"], 6), **quality,
                                    "eval_seconds": round(time.perf_counter() - start, 2)})
            save_grid(args.out / f"diffusion_train_{key}.png", model, samples, real,
                      f"diffusion {key}: step {done}, DDIM {args.eval_steps} steps")
            print(f"  step {done}: {record['train_seconds'] / 60:.1f} train min, SWD {quality['swd']:.4f}, "
                  f"diversity {quality['diversity']:.3f}, fg error {quality['fg_error']:.4f}, closest/spread "
                  f"{quality['min_ratio']}" + (f"; training weights: SWD {quality['online']['swd']:.4f}, fg error "
                                               f"{quality['online']['fg_error']:.4f}" if "online" in quality else ""),
                  flush=True)
        summarise_training(record)
        store(args, "train", key, record)
    if done < config.train_steps:
        print(f"train {key}: deadline reached at step {done}; rerun to resume.", flush=True)


def summarise_training(record: dict) -> None:
    steps = sum(s["to"] - s["from"] for s in record["segments"])
    record["s_per_step"] = round(record["train_seconds"] / steps, 4) if steps else None
    per_segment = sorted(s["s_per_step"] for s in record["segments"] if s["to"] > s["from"])
    record["s_per_step_median"] = per_segment[len(per_segment) // 2] if per_segment else None
    record["complete"] = record["step"] >= record["target_steps"]
    point = usable_point(record["evals"])
    record["usable"] = None if point is None else {"step": point["step"], "train_seconds": point["train_seconds"],
                                                   "swd": point["swd"], "rule": f"first evaluation from which every "
                                                   f"SWD is <= {1 + USABLE_TOLERANCE:.2f} x the last evaluation's"}


def data_note(mode: str, size: int) -> str:
    if mode == "crops":
        return f"random {size}² crops of the native 256² pair"
    return f"the 256² pair downscaled to {size}² (SinGAN-Seg's finest scale)"


def train(args: argparse.Namespace) -> None:
    deadline = Deadline(args.deadline or DEFAULT_DEADLINE_MINUTES["train"])
    pair = load_pair("nuclei")
    for size in args.sizes:
        for mode in args.modes or DEFAULT_MODES["train"]:
            if deadline.passed():
                print(f"train: deadline passed, {mode} {size} not started.")
                continue
            train_run(args, pair, mode, size, deadline)


# --- phase 2: sampling --------------------------------------------------------------------------------------------


def forward_seconds(model: PairDiffusion, batch: int) -> float:
    """Median seconds of one UNet evaluation at ``batch`` (after a warm-up), for deadline estimates."""
    x = torch.randn(batch, model.config.channels, *model.config.image_size)
    times = []
    with torch.no_grad():
        for _ in range(4):
            start = time.perf_counter()
            model.predict_noise(x, model.config.num_train_timesteps // 2)
            times.append(time.perf_counter() - start)
    return sorted(times[1:])[1]


def sampling_run(args: argparse.Namespace, pair: TrainingPair, mode: str, size: int, deadline: Deadline) -> None:
    key, path = f"{mode}_{size}", model_path(args, mode, size)
    if not path.exists():
        print(f"sampling {key}: no model at {path}; run the train phase first.")
        return
    model = PairDiffusion.load(path)
    _, state = checkpoint_state(path)
    real = training_pair(pair, mode, size).real[None]
    batches = sorted(set(args.batches))
    forward = {b: forward_seconds(model, b) for b in batches}
    plan = [("ddpm", s) for s in args.ddpm_steps] + [("ddim", s) for s in args.ddim_steps]
    record = {"mode": mode, "size": size, "model_step": state.get("step"),
              "forward_seconds": {str(b): round(s, 5) for b, s in forward.items()}, "generate": [], "inpaint": []}
    for sampler, steps in plan:
        row = {"sampler": sampler, "steps": steps}
        for batch in batches:
            repeats = min(8, math.ceil(args.min_calls / steps)) if batch == 1 else math.ceil(args.sampling_num / batch)
            if batch == batches[-1]:
                repeats = max(repeats, math.ceil(args.sampling_num / batch))
            estimate = repeats * steps * forward[batch]
            if estimate > deadline.left():
                row[f"b{batch}"] = {"skipped": f"deadline (needs about {estimate / 60:.1f} min)"}
                continue
            generator = torch.Generator().manual_seed(EVAL_SEED)
            start = time.perf_counter()
            samples = torch.cat([model.generate(batch, steps, sampler, generator=generator) for _ in range(repeats)])
            seconds = time.perf_counter() - start
            row[f"b{batch}"] = {"s_per_pair": round(seconds / samples.shape[0], 4), "pairs": samples.shape[0]}
            if batch == batches[-1] and samples.shape[0] >= 2:
                row["quality"] = measure(real, samples, model.labels)
        record["generate"].append(row)
        print(f"sampling {key}: {sampler} {steps} steps: " + ", ".join(
            f"batch {b} {row[f'b{b}'].get('s_per_pair', 'skipped')} s/pair" for b in batches), flush=True)
        store(args, "sampling", key, record)
    # RePaint: redraw the nuclei of a real size^2 crop (the mask dilated by 3 px), keep the rest
    top = (real.shape[2] - size) // 2
    crop = real[0, :, top:top + size, top:top + size]
    region = F.max_pool2d((crop[1:] > 0).float()[None], 7, stride=1, padding=3)[0, 0] > 0
    for resample in args.resample:
        row = {"steps": args.inpaint_steps, "jump_length": args.jump, "resample": resample,
               "region_fraction": round(float(region.float().mean()), 4),
               "network_calls": args.inpaint_steps + (resample - 1) * max(args.inpaint_steps - args.jump, 0)}
        for batch in batches:
            estimate = row["network_calls"] * forward[batch]
            if estimate > deadline.left():
                row[f"b{batch}"] = {"skipped": f"deadline (needs about {estimate / 60:.1f} min)"}
                continue
            generator = torch.Generator().manual_seed(EVAL_SEED)
            start = time.perf_counter()
            out = model.inpaint(crop.expand(batch, -1, -1, -1), region, args.inpaint_steps, args.jump, resample,
                                generator=generator)
            seconds = time.perf_counter() - start
            kept = float((out - crop)[:, :, ~region].abs().max()) if (~region).any() else 0.0
            row[f"b{batch}"] = {"s_per_pair": round(seconds / batch, 4), "kept_region_max_change": kept}
        record["inpaint"].append(row)
        print(f"inpaint {key}: resample {resample}: " + ", ".join(
            f"batch {b} {row[f'b{b}'].get('s_per_pair', 'skipped')} s/pair" for b in batches), flush=True)
        store(args, "sampling", key, record)


def sampling(args: argparse.Namespace) -> None:
    deadline = Deadline(args.deadline or DEFAULT_DEADLINE_MINUTES["sampling"])
    pair = load_pair("nuclei")
    for size in args.sizes:
        for mode in args.modes or DEFAULT_MODES["sampling"]:
            sampling_run(args, pair, mode, size, deadline)


# --- phase 3: beside SinGAN-Seg -----------------------------------------------------------------------------------


def singanseg_model(args: argparse.Namespace, pair: TrainingPair, size: int, deadline: Deadline) -> Path | None:
    """A fast-schedule SinGAN-Seg model of max size ``size`` on the nuclei pair: found (this benchmark's or
    ``bench_time_to_quality.py``'s, same naming) or trained here when ``size`` is in ``--singanseg-train-sizes``."""
    pattern = f"nuclei_{size}_fast_{args.singanseg_iters}_t*_s{args.seed}.pt"
    for folder in dict.fromkeys([args.models / "time_to_quality", RESULTS / "models" / "time_to_quality"]):
        for path in sorted(folder.glob(pattern)):
            if (read_checkpoint(path).get("training") or {}).get("complete", True):
                return path
    if size not in args.singanseg_train_sizes or deadline.passed():
        return None
    name = f"nuclei_{size}_fast_{args.singanseg_iters}_t{args.threads}_s{args.seed}.pt"
    path = args.models / "time_to_quality" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"compare: training SinGAN-Seg (fast, {args.singanseg_iters} iterations per scale) at {size} -> {path}")
    config = make_config(pair, size, "fast", args.singanseg_iters, args.seed)
    SinGANSegTrainer(config, progress=not args.quiet).fit(pair.real, pair.intensity, pair.labels, path,
                                                         resume=path.exists())
    return path


def compare_rows(args: argparse.Namespace, pair: TrainingPair, size: int, deadline: Deadline) -> dict:
    rows, references, grids = [], [], []
    record = {"size": size, "rows": rows, "references": references, "grids": grids}
    whole = training_pair(pair, "whole", size).real[None]
    num = args.compare_num

    def add(row: dict, model, samples: torch.Tensor, real: torch.Tensor) -> None:
        slug = "".join(c if c.isalnum() else "_" for c in row["name"].lower())
        name = f"diffusion_samples_{slug}_{size}.png"
        save_grid(args.out / name, model, samples, real, f"{row['name']} at {size}: {row['data']}")
        grids.append(name)
        rows.append(row)
        store(args, "compare", str(size), record)
        print(f"compare {size}: {row['name']}: SWD {row['swd']:.4f}, diversity {row['diversity']:.3f}, "
              f"fg error {row['fg_error']:.4f}, closest/spread {row['min_ratio']}, copies {row['copies']}/{num}")

    path = singanseg_model(args, pair, size, deadline)
    if path is None:
        record["notes"] = [(f"no SinGAN-Seg model at {size} (nuclei_{size}_fast_{args.singanseg_iters}_t*_s{args.seed}"
                           f".pt); train one with --singanseg-train-sizes {size}")]
    else:
        model = SinGANSeg.load(path)
        log = (read_checkpoint(path).get("training") or {}).get("log", [])
        real = build_pyramid(pair.real[None], model.shapes)[-1]
        start = time.perf_counter()
        samples = generate_samples(model, num, 0, args.seed).cpu()
        seconds = (time.perf_counter() - start) / num
        add({"name": "SinGAN-Seg fast", "data": data_note("whole", size), "model": str(path),
             "training": f"{args.singanseg_iters} iterations per scale, {model.num_scales} scales",
             "train_seconds": round(sum(r["seconds"] for r in log), 2), "s_per_sample": round(seconds, 4),
             "reference": f"the pair at {tuple(real.shape[2:])}", **measure(real, samples, model.labels)},
            model, samples, real)
    train_records = read_results(args)["train"]
    for mode in args.modes or DEFAULT_MODES["compare"]:
        path = model_path(args, mode, size)
        if not path.exists():
            record.setdefault("notes", []).append(f"no diffusion {mode} model at {size} ({path}): run train")
            continue
        model = PairDiffusion.load(path)
        _, state = checkpoint_state(path)
        real = training_pair(pair, mode, size).real[None]
        trained = train_records.get(f"{mode}_{size}", {})
        seconds = trained.get("train_seconds") if trained.get("step") == state.get("step") else None
        start = time.perf_counter()
        samples = ddim_samples(model, num, args.eval_steps, EVAL_SEED)
        per_sample = (time.perf_counter() - start) / num
        add({"name": f"diffusion {mode}", "data": data_note(mode, size), "model": str(path),
             "training": f"{state.get('step')} steps of batch {model.config.batch_size}",
             "train_seconds": seconds, "s_per_sample": round(per_sample, 4),
             "sampler": f"DDIM {args.eval_steps} steps (batches of 8)",
             "reference": f"the pair at {tuple(real.shape[2:])}", **measure(real, samples, model.labels)},
            model, samples, real)
    # reference points: the training data itself, measured the same way
    labels = pair.labels
    for name, x in reference_sets(whole, 1, num, args.seed).items():
        references.append({"name": name, "reference": f"the pair at {size}²", **measure(whole, x, labels)})
    crops = real_crops(pair.real[None], size, num, args.seed)
    references.append({"name": f"{num} random real {size}² crops (flipped as in training)",
                       "reference": "the native 256² pair", **measure(pair.real[None], crops, labels)})
    store(args, "compare", str(size), record)
    return record


def compare(args: argparse.Namespace) -> None:
    deadline = Deadline(args.deadline or DEFAULT_DEADLINE_MINUTES["compare"])
    pair = load_pair("nuclei")
    for size in args.sizes:
        if deadline.passed():
            print(f"compare: deadline passed, size {size} not measured.")
            continue
        compare_rows(args, pair, size, deadline)


# --- report -------------------------------------------------------------------------------------------------------


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds / 60:.1f}" if seconds >= 60 else f"{seconds / 60:.2f}"


def _ratio(row: dict) -> str:
    return "inf" if row.get("min_ratio") is None else f"{row['min_ratio']:.2f}"


def quality_cells(q: dict) -> list[str]:
    return [f"{q['swd']:.4f}", f"{q['diversity']:.3f}", f"{q['fg_error']:.4f}",
            f"{q['fg_mean']:.3f} ± {q['fg_std']:.3f} ({q['fg_real']:.3f})", _ratio(q), f"{q['copies']}/{q['num']}"]


QUALITY_HEADER = ["SWD ↓", "diversity ↑", "fg error ↓", "fg fraction (real)", "closest / spread", "copies"]


def write_markdown(results: dict) -> str:
    meta = results["meta"]
    out = ["# Diffusion backend on the CPU", "",
           ("`benchmarks/bench_diffusion.py` (see its docstring for the data, the network and the rules). Real nuclei "
           "pair of `data/nuclei` (256², grey + mask). Training sets: **crops** = random S² crops of the native "
           "pair; **whole** = the pair downscaled to S² (what SinGAN-Seg of max size S trains on). Quality is of "
           "the image channel in [-1, 1]: SWD of 7×7 patches against the training image (crops: the whole native "
           "pair), diversity 1 − MS-SSIM, foreground fraction error, and closest / spread = a sample's RMS distance "
           "to the nearest training crop (any position, any flip) over the median distance between samples "
           f"(≤ {COPY_FRACTION} counts as a copy)."), ""]
    for phase in PHASES:
        if phase in meta:
            m = meta[phase]
            out.append(f"- {phase}: {m['date']}, torch {m['torch']}, {m['threads']} thread(s), {m['cpu']} "
                       f"({m['cpus']} CPUs, load average {m['load_average_1min']} at the last write)")
    train = results["train"]
    if train:
        first = next(iter(train.values()))
        c = first["config"]
        out += ["", "## Training: quality vs training time", "",
                (f"UNet {tuple(c['unet_channels'])}, {c['num_res_blocks']} residual block(s) per level, attention "
                f"{tuple(c['attention_levels'])}, {first['parameters']:,} parameters; T = {c['num_train_timesteps']} "
                f"({c['schedule']}), Adam {c['lr']}, batch {c['batch_size']}. Quality after every "
                f"{c['checkpoint_every']} steps from {first['evals'][0]['num'] if first['evals'] else '?'} DDIM "
                f"samples (same start noise each time); training time is the trainer's own clock (evaluations "
                f"excluded). **Usable**: the first evaluation from which the SWD stays within "
                f"{USABLE_TOLERANCE:.0%} of the last evaluation's. Peak RSS: the process's peak during the run "
                 "(training and evaluations), beside its resident memory at the start."), ""]
        rows = []
        for key, r in train.items():
            last = r["evals"][-1] if r["evals"] else None
            usable = r.get("usable")
            rows.append([key, r["data"], f"{r['step']}/{r['target_steps']}", r.get("s_per_step") or "n/a",
                         _minutes(r["train_seconds"]), f"{r['peak_rss_mb']:.0f} ({r.get('rss_at_start_mb', 0):.0f})",
                         f"step {usable['step']} ({_minutes(usable['train_seconds'])} min)" if usable else "n/a",
                         *(quality_cells(last) if last else ["n/a"] * len(QUALITY_HEADER))])
        out.append(markdown_table(["run", "training data", "steps", "s/step", "training min", "peak RSS MiB (start)",
                                   "usable at", *QUALITY_HEADER], rows))
        for key, r in train.items():
            if r["evals"]:
                ema = r["config"].get("ema_decay", 0.0)
                out += [f"Curve {key}" + (f" (samples from the moving average of the weights, decay {ema}; the "
                                          "training weights' own samples in the last columns)" if ema else "") + ":",
                        ""]
                online = ["SWD, training weights ↓", "fg error, training weights ↓"] if ema else []
                out.append(markdown_table(["step", "training min", "loss", "SWD ↓", "diversity ↑", "fg error ↓",
                                           "closest / spread", *online],
                                          [[e["step"], _minutes(e["train_seconds"]), f"{e['loss']:.4f}",
                                            f"{e['swd']:.4f}", f"{e['diversity']:.3f}", f"{e['fg_error']:.4f}",
                                            _ratio(e), *([f"{e['online']['swd']:.4f}", f"{e['online']['fg_error']:.4f}"]
                                                         if "online" in e else [""] * len(online))]
                                           for e in r["evals"]]))
        out.append("Curves: `diffusion_training.png`; latest samples of each run: `diffusion_train_<run>.png`.\n")
    sampling_results = results["sampling"]
    if sampling_results:
        out += ["## Sampling: seconds per pair", ""]
        for key, r in sampling_results.items():
            batches = sorted(int(b) for b in r["forward_seconds"])
            quality_note = next((f"{row['quality']['num']} samples of batch {batches[-1]}"
                                 for row in r["generate"] if "quality" in row), "")
            out += [f"{key} (model at step {r['model_step']}; one UNet call: " + ", ".join(
                f"{r['forward_seconds'][str(b)]:.3f} s at batch {b}"
                for b in batches) + f"; quality from {quality_note}):", ""]

            def cell(row: dict, b: int) -> str:
                entry = row.get(f"b{b}", {})
                return f"{entry['s_per_pair']:.3f}" if "s_per_pair" in entry else entry.get("skipped", "")

            out.append(markdown_table(["sampler", "steps", *(f"s/pair, batch {b}" for b in batches), *QUALITY_HEADER],
                                      [[row["sampler"].upper(), row["steps"], *(cell(row, b) for b in batches),
                                        *(quality_cells(row["quality"]) if "quality" in row else
                                          [""] * len(QUALITY_HEADER))] for row in r["generate"]]))
            if r["inpaint"]:
                out += [(f"RePaint inpainting with {key}: the nuclei and a 3 px border redrawn in a real "
                         f"{r['size']}² pair (crops: the centre crop of the native pair; whole: the training pair), "
                         "the rest kept:"), ""]
                out.append(markdown_table(["steps", "jump", "resample", "network calls", "region",
                                           *(f"s/pair, batch {b}" for b in batches)],
                                          [[row["steps"], row["jump_length"], row["resample"], row["network_calls"],
                                            f"{row['region_fraction']:.0%}", *(cell(row, b) for b in batches)]
                                           for row in r["inpaint"]]))
    compare_results = results["compare"]
    if compare_results:
        out += ["## Beside SinGAN-Seg on the same real data", "",
                ("Each model against its own training image (SinGAN-Seg and diffusion whole: the pair at S²; "
                "diffusion crops: the native 256² pair, so its SWD compares with the real-crops reference row, not "
                "with the other rows). SinGAN-Seg samples at start scale 0; diffusion: DDIM. Training minutes: the "
                "trainers' own clocks."), ""]
        for size, r in compare_results.items():
            out += [f"### {size}²", ""]
            out.append(markdown_table(["model", "training data", "training", "training min", "s/sample",
                                       *QUALITY_HEADER],
                                      [[row["name"], row["data"], row["training"], _minutes(row["train_seconds"]),
                                        f"{row['s_per_sample']:.3f}", *quality_cells(row)] for row in r["rows"]]))
            out += ["Reference points (the training data itself, measured the same way):", ""]
            out.append(markdown_table(["set", "against", *QUALITY_HEADER],
                                      [[row["name"], row["reference"], *quality_cells(row)]
                                       for row in r["references"]]))
            for note in r.get("notes", []):
                out.append(f"- {note}")
            if r.get("grids"):
                out.append("Samples: " + ", ".join(f"`{g}`" for g in r["grids"]) + "\n")
    return "\n".join(out) + "\n"


def plot_training(train: dict, path: Path) -> None:
    """SWD, diversity and foreground error against training minutes, one line per run."""
    from monai_singanseg.visualize import pyplot, save_figure

    runs = {k: r for k, r in train.items() if r["evals"]}
    if not runs:
        return
    metrics = (("swd", "SWD ↓"), ("diversity", "diversity ↑"), ("fg_error", "fg error ↓"))
    fig, axes = pyplot().subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, (metric, title) in zip(axes[0], metrics):
        for i, (key, r) in enumerate(runs.items()):
            ax.plot([e["train_seconds"] / 60 for e in r["evals"]], [e[metric] for e in r["evals"]], "o-",
                    color=f"C{i}", markersize=3, label=key)
            usable = r.get("usable")
            if usable and metric == "swd":
                ax.axvline(usable["train_seconds"] / 60, color=f"C{i}", linestyle=":", linewidth=1)
        ax.set_xlabel("training minutes")
        ax.set_title(title, fontsize=9)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("diffusion on the nuclei pair: quality of DDIM samples vs training time (dotted: usable)",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phases", nargs="+", choices=PHASES)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=None,
                        help="training sets (default: train crops whole, sampling crops, compare whole crops)")
    parser.add_argument("--deadline", type=float, default=None,
                        help=f"wall-clock minutes per phase (default {DEFAULT_DEADLINE_MINUTES})")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--models", type=Path, default=None, help="default: OUT/models")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    train_args = parser.add_argument_group("train")
    train_args.add_argument("--steps", type=int, nargs="+", default=[3000], help="one number, or one per size")
    train_args.add_argument("--eval-every", type=int, default=250, help="steps between checkpoints + evaluations")
    train_args.add_argument("--eval-num", type=int, default=16)
    train_args.add_argument("--eval-steps", type=int, default=50, help="DDIM steps of the evaluation samples")
    train_args.add_argument("--unet-channels", type=int, nargs="+", default=[32, 64, 64, 64])
    train_args.add_argument("--res-blocks", type=int, default=1)
    train_args.add_argument("--norm-groups", type=int, default=16)
    train_args.add_argument("--head-channels", type=int, default=32)
    train_args.add_argument("--timesteps", type=int, default=1000)
    train_args.add_argument("--lr", type=float, default=2e-4)
    train_args.add_argument("--ema-decay", type=float, default=0.0, help="moving average of the weights that "
                            "samples (0: none, as the runs of 2026-11-30 morning); with one, every evaluation also "
                            "measures the training weights")
    train_args.add_argument("--batch-size", type=int, default=8)
    train_args.add_argument("--fresh", action="store_true", help="delete the runs' checkpoints and records first")
    sample_args = parser.add_argument_group("sampling")
    sample_args.add_argument("--ddpm-steps", type=int, nargs="+", default=[1000, 250, 100, 50])
    sample_args.add_argument("--ddim-steps", type=int, nargs="+", default=[100, 50, 20, 10])
    sample_args.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    sample_args.add_argument("--sampling-num", type=int, default=8, help="samples of the largest batch (quality)")
    sample_args.add_argument("--min-calls", type=int, default=100, help="batch 1: pairs enough for this many calls")
    sample_args.add_argument("--inpaint-steps", type=int, default=50)
    sample_args.add_argument("--jump", type=int, default=10)
    sample_args.add_argument("--resample", type=int, nargs="+", default=[10, 1])
    compare_args = parser.add_argument_group("compare")
    compare_args.add_argument("--compare-num", type=int, default=16)
    compare_args.add_argument("--singanseg-iters", type=int, default=600)
    compare_args.add_argument("--singanseg-train-sizes", type=int, nargs="*", default=[64],
                              help="sizes at which a missing SinGAN-Seg model is trained here")
    args = parser.parse_args()
    args.models = args.models or args.out / "models"
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    for phase in PHASES:
        if phase in args.phases:
            {"train": train, "sampling": sampling, "compare": compare}[phase](args)
    print(f"wrote {results_path(args)} and {args.out / 'diffusion.md'}")


if __name__ == "__main__":
    main()
