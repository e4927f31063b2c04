"""The StyleGAN generator measured against SinGAN-Seg and the diffusion model on the downstream study's tasks.

    python benchmarks/bench_stylegan.py --smoke                       # about a minute on one CPU thread: tiny sizes
    python benchmarks/bench_stylegan.py --tasks nuclei64 ventricles_axial --resolutions 64 128 --steps 3000 \\
        --device cuda --train-deadline 200                           # a lent GPU (benchmarks/gpu_stylegan.sh)
    python benchmarks/bench_stylegan.py --steps 3000 --train-deadline 3600    # overnight on the CPU, resumable

For every task (``benchmarks/downstream/data.py``: ``nuclei64``, 8 training tiles of 64x64; ``ventricles_axial``,
5 axial slices of 192x160) and resolution, one StyleGAN model per design (``joint``, ``mask_then_image``) is trained on
the task's whole training pool, the pool the study's subsets are drawn from. Models go to
``<models>/<task>_<design>_<resolution>_<widths>_b<batch>_s<seed>.pt`` (default ``benchmarks/results/models/stylegan``,
ignored by git); a later call with as many or more ``--steps`` resumes them (the step count is not in the name), so a
run cut by its deadline goes on where it stopped and a finished one is only measured.

Measured, per generator, ``--num`` samples against the task's training pool, everything brought to
``resolution x resolution`` (images antialiased, masks smoothly then made hard again, as the StyleGAN trainer resizes
its pairs; the ventricle slices are squashed from 192x160 to a square, the same for every generator), images in
``[-1, 1]`` from the PNGs' 0-255 units (one scale for every generator), masks foreground = label > 0:

- ``swd``: sliced Wasserstein distance of 7x7 patches (as the other benchmarks), each sample against each real pool
  image, averaged; the real pool images against one another (``real`` row) give the floor.
- ``diversity``: 1 - mean pairwise MS-SSIM of the sample images.
- mask statistics: foreground share of the samples (mean, sd) against the pool's, and the share of empty masks.
- memorisation, the nearest real pair: each sample's RMS image distance to its nearest pool image, over the median
  distance between two samples (``nn_ratio``; under 0.5 counts as a copy: ``copies``); the ``real`` row gives each
  pool image's nearest other pool image over the pool's median distance.
- artifacts (``monai_singanseg.metrics.artifacts``, docs/quality.md): ``frame`` (largest border-ring ridge of the
  samples' mean against a pool image's, averaged over the pool), ``pinned`` (share of pixels foreground in >= 90 % of
  samples), ``sharpness`` (Laplacian RMS of the samples over the pool's, at the resolution).

Generators besides StyleGAN, when their models are there (``--models-root``, default the study's
``benchmarks/downstream/models``): SinGAN-Seg, one model per pool image (``--singanseg-folder``, default the study's
fast-schedule 192-px folder), samples at start scale 0 (``--singanseg-diversity``), drawn from the models in turn; the diffusion model, one per
pool image (``--diffusion-folder``), DDIM samples (``--diffusion-sampling-steps``) of its training crop size. A
missing folder is said and skipped.

Training cost: seconds per step and in all (the trainer's own clock, across resumed runs, from the checkpoint's log),
generator weights, device. Every phase keeps to its deadline (``--train-deadline`` per model: training stops with a
checkpoint, as an interruption would; ``--deadline`` for the whole run: later phases are skipped and said), and
``stylegan[_<tag>].json`` / ``.md`` in ``--results`` are rewritten after every model and every measurement, with
``stylegan_<task>_<resolution>[_<tag>].png`` (real pool pairs, then each generator's samples).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from machine import machine
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "downstream"))
from data import prepare  # the study's datasets, through the path above
from monai_singanseg import load_training_pair
from monai_singanseg.files import atomic_write
from monai_singanseg.generators import load_generator
from monai_singanseg.metrics import (
    frame_score,
    ms_ssim_diversity,
    pinned_content,
    sharpness,
    sliced_wasserstein,
)
from monai_singanseg.pyramid import resize
from monai_singanseg.stylegan import DESIGNS, PairStyleGAN, StyleGANConfig, StyleGANTrainer
from monai_singanseg.stylegan.many import trained_steps

RESULTS = HERE / "results"
TASKS = ("nuclei64", "ventricles_axial")
SWD_OPTIONS = {"patch_size": 7, "num_projections": 128, "levels": 1, "stride": 1, "seed": 0}
# feature maps per synthesis level, coarsest first: a 4-px start doubled to the resolution (StyleGAN2's widths scaled
# down for tens of pairs; the 64-px ones are StyleGANConfig's defaults)
WIDTHS = {32: (64, 64, 32, 32), 64: (128, 128, 128, 64, 32), 128: (128, 128, 128, 128, 64, 32)}
SMOKE = {"resolutions": [32], "steps": 3, "batch_size": 2, "num": 6, "widths": [16, 16, 16, 16], "latent_dim": 16,
         "checkpoint_every": 2, "diffusion_sampling_steps": 2, "tag": "smoke"}


class Deadline:
    """A wall-clock limit: ``left()`` seconds remain of ``seconds`` (``None``: no limit)."""

    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left (``inf`` without a limit; negative once passed)."""
        return math.inf if self.end is None else self.end - time.monotonic()

    def passed(self) -> bool:
        """Whether the limit has passed."""
        return self.left() <= 0


def stop_at(deadline: Deadline) -> Callable[[Engine], None]:
    """An ignite handler attacher: end training after the step during which ``deadline`` passes. The trainer saves
    its checkpoint on the engine's COMPLETED event, which a terminated engine fires too, so nothing is lost."""

    def attach(engine: Engine) -> None:
        def check(engine: Engine) -> None:
            if deadline.passed():
                engine.terminate()

        engine.add_event_handler(Events.ITERATION_COMPLETED, check)

    return attach


def resize_pairs(images: torch.Tensor, masks: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, C, H, W)`` and 0/1 masks ``(N, 1, H, W)`` at ``size x size`` by the resize the StyleGAN trainer
    gives its pairs (``pyramid.resize``: bicubic, antialiased when shrinking): images clamped to ``[-1, 1]``, masks
    resized smoothly then thresholded at 0.5."""
    if tuple(images.shape[2:]) == (size, size):
        return images.float(), masks.float()
    images = resize(images.float(), (size, size)).clamp(-1.0, 1.0)
    masks = resize(masks.float(), (size, size))
    return images, (masks > 0.5).float()


def pool_pairs(task: str, workdir: Path) -> tuple[list[dict], Path]:
    """The task's training pool (absolute image and label paths) and its datalist."""
    datalist = prepare(task, workdir / "cache")
    items = json.loads(datalist.read_text())["training"]
    return [{k: str(datalist.parent / v) for k, v in item.items()} for item in items], datalist


def real_pairs(items: list[dict], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pool as images in ``[-1, 1]`` (PNG units / 127.5 - 1) and 0/1 masks, at ``size x size``."""
    images = torch.stack([torch.from_numpy(np.asarray(Image.open(i["image"]), dtype=np.float32))[None] for i in items])
    masks = torch.stack([torch.from_numpy(np.asarray(Image.open(i["label"])) > 0).float()[None] for i in items])
    return resize_pairs(images / 127.5 - 1.0, masks, size)


def model_name(task: str, design: str, resolution: int, widths: tuple[int, ...], batch: int, seed: int) -> str:
    """A StyleGAN model's file stem: everything that defines it but the step count, so more steps resume it."""
    return f"{task}_{design}_{resolution}_{'-'.join(map(str, widths))}_b{batch}_s{seed}"


def train_one(task: str, items: list[dict], design: str, resolution: int, args: argparse.Namespace,
              deadline: Deadline, path: Path) -> dict:
    """Train (or resume, or keep) one StyleGAN model on the pool ``items``; returns its training-cost record."""
    pairs = [load_training_pair([i["image"]], i["label"]) for i in items]
    widths = tuple(args.widths or WIDTHS[resolution])
    config = StyleGANConfig.for_pair(pairs[0], design=design, resolution=resolution, widths=widths,
                                     latent_dim=args.latent_dim, style_dim=args.latent_dim,
                                     batch_size=args.batch_size, train_steps=args.steps,
                                     checkpoint_every=args.checkpoint_every, seed=args.seed)
    before = trained_steps(path) if path.exists() else 0
    start = time.perf_counter()
    # one deadline per model, and never past the run's own
    limit = Deadline(min(math.inf if args.train_deadline is None else args.train_deadline, deadline.left()))
    trainer = StyleGANTrainer(config, device=args.device, progress=not args.quiet, handlers=[stop_at(limit)])
    model = trainer.fit(pairs, path, resume=path.exists())
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    _, state = PairStyleGAN.from_checkpoint(path)
    steps = state.step if state is not None else args.steps
    total = state.log[-1]["seconds"] if state is not None and state.log else None
    losses = {k: round(v, 4) for k, v in (state.log[-1] if state is not None and state.log else {}).items()
              if k not in ("step", "seconds") and isinstance(v, float)}
    return {"task": task, "design": design, "resolution": resolution, "widths": list(widths),
            "batch_size": args.batch_size, "device": args.device, "steps": steps, "train_steps": args.steps,
            "complete": steps >= args.steps, "steps_this_run": steps - (before or 0),
            "seconds_this_run": round(wall, 1),
            "seconds_per_step": round(total / steps, 4) if total and steps else None,
            "seconds_total": None if total is None else round(total, 1),
            "generator_weights": sum(p.numel() for p in model.generators.parameters()),
            "last_losses": losses, "model": path.name}


@torch.no_grad()
def draw(models: list, num: int, seed: int, args: argparse.Namespace
         ) -> tuple[list[torch.Tensor], list[torch.Tensor], float]:
    """``num`` pairs from ``models`` in turn (SinGAN-Seg at start scale 0; diffusion by DDIM), as images ``(1, C, ...)``
    in PNG units and 0/1 masks ``(1, 1, ...)`` at each model's own size; returns (images, masks, seconds per pair)."""
    images, masks, start = [], [], time.perf_counter()
    for i in range(num):
        model = models[i % len(models)]
        extra = ({"steps": args.diffusion_sampling_steps} if model.denoises else
                 {"diversity": args.singanseg_diversity} if model.kind == "singanseg" else {})
        image, label = model.sample(1, seed=seed + i, **extra)
        images.append(image.float().cpu())
        masks.append((label.float().cpu() > 0).float())
    return images, masks, (time.perf_counter() - start) / num


def nearest_real(real: torch.Tensor, samples: torch.Tensor) -> dict:
    """Memorisation by the nearest real pair: each sample's RMS image distance to its nearest pool image over the
    median RMS distance between two samples (under 0.5: a likely copy)."""
    flat = samples.double().reshape(samples.shape[0], -1)
    scale = math.sqrt(flat.shape[1])
    to_real = torch.cdist(flat, real.double().reshape(real.shape[0], -1)) / scale  # (N, P)
    nearest, index = to_real.min(dim=1)
    spread = float((torch.pdist(flat) / scale).median()) if flat.shape[0] > 1 else float("nan")
    ratio = nearest / spread if spread > 0 else torch.full_like(nearest, math.inf)
    return {"nn_distance": round(float(nearest.median()), 4), "nn_ratio": round(float(ratio.median()), 4),
            "nn_ratio_min": round(float(ratio.min()), 4), "copies": int((ratio < 0.5).sum()),
            "nearest_counts": torch.bincount(index, minlength=real.shape[0]).tolist()}


def measure(real: tuple[torch.Tensor, torch.Tensor], samples: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Every figure of ``samples`` (images in ``[-1, 1]``, 0/1 masks, at the resolution) against the pool ``real``."""
    (real_images, real_masks), (images, masks) = real, samples
    swd = torch.stack([sliced_wasserstein(r[None], images, **SWD_OPTIONS) for r in real_images]).mean()
    fractions, real_fractions = masks.mean(dim=(1, 2, 3)), real_masks.mean(dim=(1, 2, 3))
    pair = torch.cat([images, masks * 2 - 1], dim=1)
    frames = []
    for r_image, r_mask in zip(real_images, real_masks):
        real_pair = torch.cat([r_image, r_mask * 2 - 1])[None]
        frames.append(frame_score(real_pair, pair, 1, min(6, images.shape[-1] // 2 - 2),
                                  (r_mask[None], masks))["intensity"])
    pool = torch.cat([real_images, real_masks * 2 - 1], dim=1)
    pinned = pinned_content(pool, pair, 1, masks, real_masks)
    return {"swd": round(float(swd), 4), "diversity": round(ms_ssim_diversity(images), 4),
            "fg_mean": round(float(fractions.mean()), 4), "fg_sd": round(float(fractions.std(correction=0)), 4),
            "fg_real_mean": round(float(real_fractions.mean()), 4),
            "fg_real_sd": round(float(real_fractions.std(correction=0)), 4),
            "fg_error": round(abs(float(fractions.mean() - real_fractions.mean())), 4),
            "empty_masks": round(float((fractions == 0).float().mean()), 4),
            **nearest_real(real_images, images),
            "frame": round(float(np.mean(frames)), 4), "pinned": pinned["pinned_foreground"],
            "sharpness": round(float(sharpness(images).mean() / sharpness(real_images).mean().clamp_min(1e-12)), 4)}


def real_row(real: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """The pool measured against itself: SWD between pool images and each image's nearest other one, the floor."""
    images, masks = real
    p = images.shape[0]
    swd = np.mean([float(sliced_wasserstein(images[i:i + 1], images[j:j + 1], **SWD_OPTIONS)[0])
                   for i in range(p) for j in range(p) if i != j]) if p > 1 else float("nan")
    flat = images.double().reshape(p, -1)
    scale = math.sqrt(flat.shape[1])
    distances = torch.cdist(flat, flat) / scale + torch.diag(torch.full((p,), math.inf, dtype=torch.float64))
    spread = float((torch.pdist(flat) / scale).median()) if p > 1 else float("nan")
    fractions = masks.mean(dim=(1, 2, 3))
    return {"swd": round(float(swd), 4), "diversity": round(ms_ssim_diversity(images), 4) if p > 1 else None,
            "fg_mean": round(float(fractions.mean()), 4), "fg_sd": round(float(fractions.std(correction=0)), 4),
            "nn_ratio": round(float((distances.min(dim=1).values / spread).median()), 4) if p > 1 else None}


COLUMNS = ("swd", "diversity", "fg_mean", "fg_sd", "fg_error", "empty_masks", "nn_ratio", "copies", "frame", "pinned",
           "sharpness", "s_per_pair")


def markdown(report: dict) -> str:
    """The page: training cost, then one quality table per task and resolution."""
    lines = ["# StyleGAN against SinGAN-Seg and diffusion on the study's tasks", "",
             (f"Written by `benchmarks/bench_stylegan.py` ({report['machine']['date']}, device "
              f"{report['settings']['device']}, {report['machine'].get('gpu', report['machine']['cpu'])}); columns "
              "in its docstring. Samples and pool at the resolution, images in [-1, 1] from the PNG units."), "",
             "## Training cost", "",
             "| task | design | px | steps | complete | s/step | s total | generator weights | last losses |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["training"]:
        losses = ", ".join(f"{k} {v}" for k, v in r["last_losses"].items())
        lines.append(f"| {r['task']} | {r['design']} | {r['resolution']} | {r['steps']}/{r['train_steps']} | "
                     f"{'yes' if r['complete'] else 'no'} | {r['seconds_per_step']} | {r['seconds_total']} | "
                     f"{r['generator_weights']:,} | {losses} |")
    for task, resolution in dict.fromkeys((q["task"], q["resolution"]) for q in report["quality"]):
        lines += ["", f"## {task}, {resolution} px", "", "| generator | samples | " + " | ".join(COLUMNS) + " |",
                  "| --- " * (len(COLUMNS) + 2) + "|"]
        for q in report["quality"]:
            if (q["task"], q["resolution"]) == (task, resolution):
                cells = ["" if q.get(c) is None else str(q[c]) for c in COLUMNS]
                lines.append(f"| {q['generator']} | {q.get('num', '')} | " + " | ".join(cells) + " |")
    if report["skipped"]:
        lines += ["", "## Not measured in this run", ""] + [f"- {s}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def save(report: dict, results: Path, suffix: str) -> None:
    """Rewrite the JSON and the page (atomically: a run stopped mid-write leaves the last whole ones)."""
    text = json.dumps(report, indent=1)
    atomic_write(results / f"stylegan{suffix}.json", lambda tmp: Path(tmp).write_text(text))
    page = markdown(report)
    atomic_write(results / f"stylegan{suffix}.md", lambda tmp: Path(tmp).write_text(page))


def folder_models(root: Path, pattern: str, task: str) -> tuple[Path | None, list[Path]]:
    """The first folder of ``root`` matching ``pattern`` (``{task}`` filled in) and its models, one per pool image."""
    folders = sorted(p for p in root.glob(pattern.format(task=task)) if p.is_dir())
    if not folders:
        return None, []
    return folders[0], sorted(folders[0].glob("*.pt"))


def picture(path: Path, rows: dict[str, tuple[torch.Tensor, torch.Tensor]], title: str) -> None:
    """Real pool pairs, then each generator's first samples, one row each (images in ``[-1, 1]``)."""
    from monai_singanseg.visualize import save_pair_grid

    shown = {name: (images[:4], masks[:4]) for name, (images, masks) in rows.items()}
    columns = max(len(images) for images, _ in shown.values())
    images, masks, names = [], [], []
    for name, (image, mask) in shown.items():
        pad = columns - len(image)  # a short row is filled with blanks, so each generator starts a row
        images.append(torch.cat([image, torch.full((pad, *image.shape[1:]), -1.0)]))
        masks.append(torch.cat([mask, torch.zeros((pad, *mask.shape[1:]))]))
        names += [f"{name} {i}" for i in range(len(image))] + [""] * pad
    save_pair_grid(path, torch.cat(images), torch.cat(masks), columns=columns, title=title,
                   intensity_range=([-1.0], [1.0]), names=names)


def run(args: argparse.Namespace) -> dict:
    """Train, measure and write, task by task, resolution by resolution; returns the report written last."""
    torch.set_num_threads(args.threads)
    results, workdir, models_dir = Path(args.results), Path(args.workdir), Path(args.models)
    results.mkdir(parents=True, exist_ok=True)
    models_dir.mkdir(parents=True, exist_ok=True)
    suffix = f"_{args.tag}" if args.tag else ""
    deadline = Deadline(args.deadline)
    settings = {k: v for k, v in vars(args).items() if k not in ("smoke",)}
    report = {"machine": machine(), "settings": settings, "training": [], "quality": [], "skipped": []}
    if args.device.startswith("cuda") and torch.cuda.is_available():
        report["machine"]["gpu"] = torch.cuda.get_device_name(0)
    for resolution in args.resolutions:
        for task in args.tasks:
            items, _ = pool_pairs(task, workdir)
            trained: dict[str, Path] = {}
            for design in args.designs:
                if deadline.passed():
                    report["skipped"].append(f"training {task} {design} {resolution} px: past --deadline")
                    continue
                widths = tuple(args.widths or WIDTHS[resolution])
                path = models_dir / f"{model_name(task, design, resolution, widths, args.batch_size, args.seed)}.pt"
                record = train_one(task, items, design, resolution, args, deadline, path)
                report["training"].append(record)
                trained[design] = path
                print(json.dumps(record), flush=True)
                save(report, results, suffix)
            real = real_pairs(items, resolution)
            rows = {"real": real}
            report["quality"].append({"task": task, "resolution": resolution, "generator": "real pool",
                                      "num": real[0].shape[0], **real_row(real)})
            sources: list[tuple[str, list, str | None]] = []
            for design, path in trained.items():
                sources.append((f"stylegan {design}", [PairStyleGAN.load(path, args.device)], path.name))
            for kind, pattern in (("singanseg", args.singanseg_folder), ("diffusion", args.diffusion_folder)):
                folder, paths = folder_models(Path(args.models_root), pattern, task)
                if not paths:
                    report["skipped"].append(f"{kind} on {task}: no models in {args.models_root}/"
                                             f"{pattern.format(task=task)}")
                    continue
                sources.append((kind, [load_generator(p, device=args.device) for p in paths], folder.name))
            for name, models, source in sources:
                if deadline.passed():
                    report["skipped"].append(f"measuring {name} on {task} {resolution} px: past --deadline")
                    continue
                images, masks, seconds = draw(models, args.num, 1000, args)
                # each model's own size (SinGAN-Seg: the slice's; diffusion: its crop) brought to the resolution
                images = [resize_pairs(i / 127.5 - 1.0, m, resolution) for i, m in zip(images, masks)]
                samples = (torch.cat([i for i, _ in images]).clamp(-1, 1), torch.cat([m for _, m in images]))
                record = {"task": task, "resolution": resolution, "generator": name, "source": source,
                          "models": len(models), "num": args.num, "s_per_pair": round(seconds, 4),
                          "sample_size": list(masks[0].shape[2:]), **measure(real, samples)}
                report["quality"].append(record)
                rows[name] = samples
                print(json.dumps(record), flush=True)
                save(report, results, suffix)
            picture(results / f"stylegan_{task}_{resolution}{suffix}.png", rows,
                    f"{task}, {resolution} px: real pool pairs, then each generator's samples")
    save(report, results, suffix)
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 128], help="StyleGAN training and "
                        "measuring sizes (widths: WIDTHS, or --widths)")
    parser.add_argument("--designs", nargs="+", choices=DESIGNS, default=list(DESIGNS))
    parser.add_argument("--steps", type=int, default=3000, help="StyleGAN training steps (more resume a model)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--widths", type=int, nargs="+", default=None, help="synthesis widths, coarsest first "
                        "(default: by resolution, WIDTHS)")
    parser.add_argument("--latent-dim", type=int, default=128, help="z and w sizes")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="training and sampling device (cuda on a GPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--num", type=int, default=32, help="samples per generator")
    parser.add_argument("--singanseg-diversity", type=float, default=1.0, help="SinGAN-Seg sampling diversity "
                        "(the study's shipped recipe draws at 0.4)")
    parser.add_argument("--diffusion-sampling-steps", type=int, default=50, help="DDIM steps per diffusion pair")
    parser.add_argument("--train-deadline", type=float, default=None, help="seconds of training per model (then "
                        "a checkpoint; a later call resumes)")
    parser.add_argument("--deadline", type=float, default=None, help="seconds for the whole run: later phases are "
                        "skipped and listed")
    parser.add_argument("--models-root", default=str(HERE / "downstream" / "models"), help="the study's generators")
    parser.add_argument("--singanseg-folder", default="{task}_fast_192_????????", help="SinGAN-Seg models under "
                        "--models-root (glob; {task} filled in)")
    parser.add_argument("--diffusion-folder", default="{task}_diffusion_*", help="diffusion models under "
                        "--models-root (glob; {task} filled in)")
    parser.add_argument("--models", default=str(RESULTS / "models" / "stylegan"), help="where StyleGAN models go")
    parser.add_argument("--workdir", default=str(HERE / "downstream"), help="where the study's datasets are cached")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, about a minute on one CPU thread: "
                        f"{SMOKE} (given options win)")
    args = parser.parse_args(argv)
    if args.smoke:  # the preset fills in what was left at its default
        for key, value in SMOKE.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no GPU here")
    report = run(args)
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
