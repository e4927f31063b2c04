"""Few-shot segmentation study: does adding SinGAN-Seg pairs to standard MONAI augmentation improve a UNet?

    python benchmarks/downstream/study.py --conditions standard standard_x2 sgs_add1_s0_d04 synthetic_only \
        --results benchmarks/results/downstream/power     # the powered tasks, 8 seeds (core-hours: docs/downstream.md)
    python benchmarks/downstream/study.py --datasets nuclei --n 2 --seeds 0 --conditions standard sgs_p50_s0
    python benchmarks/downstream/study.py --report                          # tables + plots from saved results

For every dataset (``data.py``: by default the tasks with >= 20 test images, ``nuclei64``, ``ventricles_axial`` and
``ventricles_coronal``; the earlier ``nuclei`` and ``ventricles`` by name), training-set size N and seed, a MONAI
2D UNet is trained for the same fixed number of iterations under each condition, the checkpoint with the best
validation Dice is kept, and its Dice on the held-out test split is recorded. The N training images are the first N of the
training pool shuffled by the seed; the seed also drives the UNet's initialisation and every augmentation draw.

Conditions (``CONDITIONS``): ``standard`` (flips, small affine, intensity scale/shift, Gaussian noise); ``sgs_*``:
the same chain with ``SinGANSegAugmentd`` first (``prob``, ``start_scale``, ``model_choice``); ``synthetic_only``:
the UNet sees only synthetic pairs from the N images' models (the data-sharing use), with the standard chain on top;
``dif_*``: the same transform with diffusion models (``dif_inpaint_*``: the incoming pair's structures redrawn in
place by RePaint; ``dif_sample_*``: whole new pairs of the diffusion training crop size); ``sty_*`` (asked for by
name, not run by default): the same transform with one StyleGAN model of the N training images together
(``sty_p25`` .. ``sty_only``: the share of pairs replaced; ``sty_add1`` / ``sty_add3``: one / three synthetic pairs
beside every real one, their controls ``standard_x2`` / ``standard_x4``).

Generators: one model per training-pool image that the asked runs use, trained once by the project's CLI and reused
by every N, seed and condition, so every condition's generators saw exactly the N training images: SinGAN-Seg by
``singanseg train-many`` (``--schedule`` / ``--max-size``) into
``models/<dataset>_<schedule>_<max size>_<settings>/`` (``<settings>``: a digest of the optimisation settings, which
a schedule's name outlives; every record keeps it and one results file holds one), diffusion (the small UNet of
``bench_diffusion.py``, ``--diffusion-*``) into ``models/<dataset>_diffusion_<crop>/``; StyleGAN, one model per
(dataset, subset) of N images (``--stylegan-*``, by the project's runner: claimed while it trains, resumed, reused by
every seed that draws the same images) into
``models/<dataset>_stylegan_<design>_<resolution>_<widths>_b<batch>_<steps>/n<N>_<digest of the images>.pt``. Results:
``benchmarks/results/downstream/results.json`` (one record per dataset, N, seed, condition; appended as runs finish, so
an interrupted study resumes), ``downstream.md`` (mean ± sd over seeds; the paired changes with their 95 % t
intervals; with ``--workdir``'s models, what the runs and generators cost), ``gains.json`` (the paired rows, t and
bootstrap intervals), ``downstream.png`` (test Dice against N), ``downstream_intervals.png`` (every paired change
against ``standard`` with its intervals) and ``downstream_answer.png`` (the question alone: the shipped recipe
against both controls and synthetic pairs alone against the real images, by N).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.nets import UNet
from monai.transforms import (
    AsDiscreted,
    Compose,
    DivisiblePadd,
    EnsureTyped,
    Lambda,
    LoadImaged,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropd,
    ScaleIntensityd,
    SpatialPadd,
)
from monai.utils import set_determinism

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from data import DATASETS, POWERED, prepare
from monai_singanseg import SinGANSegAugmentd, SinGANSegConfig
from monai_singanseg.checkpoint import read_checkpoint
from monai_singanseg.config import NetworkConfig, OptimConfig
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.files import atomic_write
from monai_singanseg.generators import load_generator
from monai_singanseg.training import config_differences

if TYPE_CHECKING:  # the StyleGAN names are imported where they are used: most studies never touch them
    from monai_singanseg.io import TrainingPair
    from monai_singanseg.stylegan import StyleGANConfig

RESULTS = HERE.parent / "results" / "downstream"
WORK = HERE  # cache/ (the datasets as PNG) and models/ (the generators) go here

CONDITIONS: dict[str, dict | None] = {
    "standard": None,
    "sgs_p50_s0": {"prob": 0.5, "start_scale": 0},
    "sgs_p50_s0-1": {"prob": 0.5, "start_scale": (0, 1)},
    "sgs_p25_s0": {"prob": 0.25, "start_scale": 0},
    "sgs_p75_s0": {"prob": 0.75, "start_scale": 0},
    "sgs_p50_s0_random": {"prob": 0.5, "start_scale": 0, "model_choice": "random"},
    "synthetic_only": {"prob": 1.0, "start_scale": 0},
    # the continuous knob between a new layout (start 0) and near-copies (start 1): see SinGANSeg.generate
    "sgs_p50_s0_d04": {"prob": 0.5, "start_scale": 0, "diversity": 0.4},
    "sgs_p50_s0_d06": {"prob": 0.5, "start_scale": 0, "diversity": 0.6},
    "sgs_p50_s0_d03-08": {"prob": 0.5, "start_scale": 0, "diversity": (0.3, 0.8)},
    # synthetic pairs added beside the real ones, a fixed half of every batch (num_samples=2, keep_original=True);
    # their control is standard_x2, every real sample twice under independent augmentation (the same batch size)
    "standard_x2": {"generator": None, "copies": 2},
    "sgs_add1_s0": {"prob": 1.0, "start_scale": 0, "diversity": 1.0, "num_samples": 2, "keep_original": True},
    "sgs_add1_s0_d04": {"prob": 1.0, "start_scale": 0, "diversity": 0.4, "num_samples": 2, "keep_original": True},
    # the same recipe with generators of the artifact issue (docs/quality.md), trained into folders of their own:
    # reflect padding (no frame, no pinned corners), and fine scales trained on 64-px windows (192-px models at a
    # third of the cost); diversity 1 as well, since the pinned corners that argued for 0.4 are gone
    "sgs_add1_s0_d04_reflect": {"prob": 1.0, "start_scale": 0, "diversity": 0.4, "num_samples": 2,
                                "keep_original": True, "recipe": {"padding": "reflect"}},
    "sgs_add1_s0_reflect": {"prob": 1.0, "start_scale": 0, "diversity": 1.0, "num_samples": 2, "keep_original": True,
                            "recipe": {"padding": "reflect"}},
    # 192-px generators whose fine scales train on 64-px windows (a third of the cost, the same patch statistics on
    # the nuclei crop: docs/quality.md): the affordable way to the MRI tasks' generators on a CPU. The shipped
    # sampling with zero-padded windowed generators is the reference the reflect-padded ones are paired with
    "sgs_add1_s0_d04_crop64": {"prob": 1.0, "start_scale": 0, "diversity": 0.4, "num_samples": 2,
                               "keep_original": True, "recipe": {"crop_size": 64}},
    "sgs_add1_s0_d04_crop64_reflect": {"prob": 1.0, "start_scale": 0, "diversity": 0.4, "num_samples": 2,
                                       "keep_original": True, "recipe": {"padding": "reflect", "crop_size": 64}},
    "sgs_add1_s0_crop64_reflect": {"prob": 1.0, "start_scale": 0, "diversity": 1.0, "num_samples": 2,
                                   "keep_original": True, "recipe": {"padding": "reflect", "crop_size": 64}},
    # windowed 192-px generators whose fine scales weigh reconstruction 10x (100 instead of 10): their samples keep
    # about a fifth more of the slice's fine detail (docs/quality.md, "Blur"); the shipped sampling, and start scale 1 at
    # diversity 1 (the coarsest layout kept, every finer scale drawn afresh)
    "sgs_add1_s0_d04_crop64_rec100": {"prob": 1.0, "start_scale": 0, "diversity": 0.4, "num_samples": 2,
                                      "keep_original": True, "recipe": {"crop_size": 64, "rec_weight": 100}},
    "sgs_add1_s1_crop64_rec100": {"prob": 1.0, "start_scale": 1, "diversity": 1.0, "num_samples": 2,
                                  "keep_original": True, "recipe": {"crop_size": 64, "rec_weight": 100}},
    # the data-sharing use with the shipped sampling: every real pair replaced by a synthetic one of its model
    # (diversity 0.4, the batch as in standard); on the MRI tasks with their windowed generators
    "synthetic_only_d04": {"prob": 1.0, "start_scale": 0, "diversity": 0.4},
    "synthetic_only_d04_crop64": {"prob": 1.0, "start_scale": 0, "diversity": 0.4, "recipe": {"crop_size": 64}},
    # the second generator, one diffusion model per image as for SinGAN-Seg (sampling options: --diffusion-*)
    # the redraws of each cached slice are pooled like the SinGAN-Seg pairs (the transform comes before the crops)
    "dif_inpaint_p50": {"prob": 0.5, "generator": "diffusion", "diffusion": {"mode": "inpaint", "pool_redraws": True}},
    "dif_sample_p50": {"prob": 0.5, "generator": "diffusion", "diffusion": {"mode": "sample"}},
}
# what a study runs unless told: every condition above; the StyleGAN ones below train a model per (dataset, subset),
# hours each on a CPU, so they are asked for by name
DEFAULT_CONDITIONS = tuple(CONDITIONS)
CONDITIONS |= {
    # the third generator, one StyleGAN model per (dataset, subset): trained on the N images together, not one per
    # image (--stylegan-*). The share of synthetic pairs per batch is the knob (Vu et al. 2025 saw harm from many):
    # a share replaced (p25 .. only), or synthetic pairs added beside every real one (add1: half the batch, its
    # control standard_x2; add3: three quarters, its control standard_x4). One model: "random" picks it for any image
    "sty_p25": {"prob": 0.25, "generator": "stylegan", "model_choice": "random"},
    "sty_p50": {"prob": 0.5, "generator": "stylegan", "model_choice": "random"},
    "sty_p75": {"prob": 0.75, "generator": "stylegan", "model_choice": "random"},
    "sty_only": {"prob": 1.0, "generator": "stylegan", "model_choice": "random"},
    "sty_add1": {"prob": 1.0, "generator": "stylegan", "model_choice": "random", "num_samples": 2,
                 "keep_original": True},
    "sty_add3": {"prob": 1.0, "generator": "stylegan", "model_choice": "random", "num_samples": 4,
                 "keep_original": True},
    "standard_x4": {"generator": None, "copies": 4},
}
SHIPPED = "sgs_add1_s0_d04"  # the study's winner: the segmentation bundle's defaults (docs/downstream.md)
SHIPPED_WINDOWED = f"{SHIPPED}_crop64"  # the same sampling with the MRI tasks' windowed 192-px generators


def generator_kind(condition: dict | None) -> str | None:
    """``"singanseg"``, ``"diffusion"``, ``"stylegan"`` or ``None`` (no generator) for a condition."""
    return None if condition is None else condition.get("generator", "singanseg")  # standard_x2: None


def recipe_of(condition: dict | None) -> dict:
    """The SinGAN-Seg training options a condition's generators differ by (``padding``, ``crop_size``,
    ``rec_weight``: the fine scales' reconstruction weight; ``{}``: the schedule's own)."""
    return {} if condition is None else dict(condition.get("recipe", {}))


def shipped_reference(name: str) -> str | None:
    """The condition a generator-recipe condition is paired with: the shipped recipe's sampling (:data:`SHIPPED`) with
    generators trained on the same windows but otherwise by the schedule (zero padding, its reconstruction weight),
    so that the pair differs only by what the recipe changes besides training windows; ``None`` for a condition
    without a recipe or the reference itself."""
    recipe = recipe_of(CONDITIONS.get(name))
    if not recipe:
        return None
    reference = {k: v for k, v in recipe.items() if k == "crop_size"}
    same = [c for c, options in CONDITIONS.items() if options is not None and recipe_of(options) == reference
            and {k: v for k, v in options.items() if k != "recipe"} ==
            {k: v for k, v in CONDITIONS[SHIPPED].items() if k != "recipe"}]
    return same[0] if same and same[0] != name else None


def recipe_suffix(recipe: dict) -> str:
    """The generator folder's suffix for ``recipe``: ``""`` for the schedule's own (the folders of earlier rounds keep
    their names), else e.g. ``"_padding-reflect_crop_size-64"``."""
    return "".join(f"_{key}-{recipe[key]}" for key in sorted(recipe))


def train_generators(dataset: str, datalist: Path, args: argparse.Namespace, kind: str = "singanseg",
                     needed: set[str] | None = None, recipe: dict | None = None) -> Path:
    """One generator per training-pool image in ``needed`` (absolute image paths; all when ``None``): the runs asked
    for may use a few of them, and each costs minutes to an hour on a CPU. SinGAN-Seg by the project's command line
    (``train-many``: resumable, finished models reused) with the options of ``recipe`` (:func:`recipe_of`), diffusion
    by the library in this process."""
    if kind == "diffusion":
        return train_diffusion_generators(dataset, datalist, args, needed)
    schedule, max_size, recipe = args.schedule, args.max_size, recipe or {}
    out = (Path(args.workdir) / "models" /
           f"{dataset}_{schedule}_{max_size}_{generator_settings(args)}{recipe_suffix(recipe)}")
    items = absolute(json.loads(datalist.read_text())["training"], datalist.parent)
    items = [i for i in items if needed is None or i["image"] in needed]
    out.mkdir(parents=True, exist_ok=True)
    for item in items:  # before training: train-many would take a finished model of another recipe as done
        check_recipe(out / f"{Path(item['image']).stem}.pt", args, recipe)
    if all(finished(out / f"{Path(item['image']).stem}.pt") for item in items):
        # nothing to train: no train-many, whose brief claim of each model while it checks it would make a second
        # study process of this dataset, started at the same moment, find the models "being written" and stop
        return out
    # the pool images the asked runs use, with absolute paths, in a file of this process's own: study processes of
    # one dataset (other seeds) may train into the same folder at once
    with tempfile.TemporaryDirectory() as folder:
        wanted = Path(folder) / "datalist.json"
        wanted.write_text(json.dumps({"training": items}, indent=1))
        cmd = [sys.executable, "-m", "monai_singanseg.cli", "train-many", str(wanted), "--out", str(out),
               "--schedule", schedule, "--max-size", str(max_size), "--group-size", str(args.group_size), "--quiet"]
        if args.generator_iters is not None:
            cmd += ["--iters", str(args.generator_iters)]
        for key in sorted(recipe):
            cmd += [f"--{key.replace('_', '-')}", str(recipe[key])]
        print("$", " ".join(cmd), flush=True)
        # another study process of this dataset (other seeds) may hold some of the models: train-many reports those
        # as failed and trains the rest, so wait for the holders and ask again until every model is finished
        held = [out / f"{Path(i['image']).stem}.pt.lock" for i in items]
        for attempt in range(3):
            if subprocess.run(cmd, check=False).returncode == 0:
                break
            # the other process may have let go between its claim and this check: a failure with nothing held is
            # ours only when it comes again
            print(f"waiting for another process training into {out}", flush=True)
            while any(lock.exists() for lock in held):
                time.sleep(30)
        else:
            raise SystemExit(f"train-many failed on {out} three times (its log above)")
    return out


def finished(path: Path) -> bool:
    """Whether ``path`` holds a SinGAN-Seg model whose training has finished."""
    if not path.exists():
        return False
    try:
        load_generator(path, require_complete=True)
    except SinGANSegInputError:
        return False
    return True


def optim_settings(args: argparse.Namespace) -> OptimConfig:
    """The SinGAN-Seg optimisation settings that ``--schedule`` and ``--generator-iters`` give in this version."""
    return SinGANSegConfig.for_schedule(args.schedule, iters_per_scale=args.generator_iters).optim


def generator_settings(args: argparse.Namespace) -> str:
    """A short digest of :func:`optim_settings`. A schedule's name outlives its settings (the fast schedule gained its
    coarse scales on 2026-11-30), so models and results are kept apart by this, not by the name."""
    text = json.dumps(dataclasses.asdict(optim_settings(args)), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def check_recipe(path: Path, args: argparse.Namespace, recipe: dict | None = None) -> None:
    """Stop when the SinGAN-Seg model at ``path`` (if any) was trained with other optimisation settings than
    :func:`optim_settings` or another padding than ``recipe`` asks for (a model copied or moved in by hand): results
    of two recipes would pass as one.

    Raises:
        SystemExit: naming the file and the settings that differ.
    """
    if not path.exists():
        return
    try:
        stored = SinGANSegConfig.from_json(read_checkpoint(path)["config"])
    except SinGANSegInputError as err:  # a damaged or foreign file: one line, not a traceback
        raise SystemExit(str(err)) from None
    recipe = recipe or {}
    optim = dataclasses.replace(optim_settings(args), crop_size=recipe.get("crop_size", OptimConfig.crop_size))
    if "rec_weight" in recipe:
        optim = optim.with_fine_rec_weight(recipe["rec_weight"])
    network = dataclasses.replace(stored.network, padding=recipe.get("padding", NetworkConfig.padding))
    differ = config_differences(stored, dataclasses.replace(stored, optim=optim, network=network))
    if differ:
        raise SystemExit(f"{path}: trained with other '{args.schedule}' settings than this study asks for: "
                         f"{'; '.join(map(str, differ))}. Move it out of {path.parent}.")


def train_diffusion_generators(dataset: str, datalist: Path, args: argparse.Namespace,
                               needed: set[str] | None = None) -> Path:
    """One diffusion model per training-pool image in ``needed`` (all when ``None``), trained with the library in
    this process (resumed when a checkpoint exists; a finished one is kept as it is)."""
    from monai_singanseg import load_training_pair
    from monai_singanseg.diffusion import DiffusionConfig, DiffusionTrainer

    widths = "-".join(map(str, args.diffusion_channels))
    ema = "" if args.diffusion_ema_decay == DiffusionConfig.ema_decay else f"_ema{args.diffusion_ema_decay:g}"
    out = (Path(args.workdir) / "models" /
           f"{dataset}_diffusion_{args.diffusion_crop}_{widths}_{args.diffusion_steps}{ema}")
    out.mkdir(parents=True, exist_ok=True)
    device = args.diffusion_device or ("cuda" if torch.cuda.is_available() else "cpu")
    for item in json.loads(datalist.read_text())["training"]:
        image, label = (datalist.parent / item[k] for k in ("image", "label"))
        if needed is not None and str(image) not in needed:
            continue
        pair = load_training_pair([image], label)
        config = DiffusionConfig.for_pair(pair, image_size=args.diffusion_crop, unet_channels=args.diffusion_channels,
                                          num_res_blocks=1, train_steps=args.diffusion_steps, lr=2e-4,
                                          num_train_timesteps=args.diffusion_timesteps,
                                          ema_decay=args.diffusion_ema_decay)
        path = out / f"{image.stem}.pt"
        start = time.perf_counter()
        DiffusionTrainer(config, device=device, progress=False).fit([pair], path, resume=path.exists())
        print(f"diffusion model {path.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return out


# StyleGAN synthesis widths by resolution, coarsest first (bench_stylegan.py's): a 4-px start doubled to the side
STYLEGAN_WIDTHS = {32: (64, 64, 32, 32), 64: (128, 128, 128, 64, 32), 128: (128, 128, 128, 128, 64, 32)}


def stylegan_config(pair: TrainingPair, args: argparse.Namespace) -> StyleGANConfig:
    """The StyleGAN configuration of the study's generators (``--stylegan-*``) for pairs shaped like ``pair``."""
    from monai_singanseg.stylegan import StyleGANConfig

    widths = tuple(args.stylegan_widths or STYLEGAN_WIDTHS[args.stylegan_resolution])
    return StyleGANConfig.for_pair(pair, design=args.stylegan_design, resolution=args.stylegan_resolution,
                                   widths=widths, batch_size=args.stylegan_batch_size,
                                   train_steps=args.stylegan_steps, checkpoint_every=max(1, args.stylegan_steps // 10),
                                   seed=0)


def stylegan_protocol(args: argparse.Namespace) -> dict:
    """What a StyleGAN record also depends on: how its generator was trained."""
    widths = args.stylegan_widths or STYLEGAN_WIDTHS[args.stylegan_resolution]
    return {"stylegan_design": args.stylegan_design, "stylegan_resolution": args.stylegan_resolution,
            "stylegan_steps": args.stylegan_steps, "stylegan_widths": list(widths),
            "stylegan_batch_size": args.stylegan_batch_size}


def stylegan_folder(dataset: str, args: argparse.Namespace) -> Path:
    """``models/<dataset>_stylegan_<design>_<resolution>_<widths>_b<batch>_<steps>/``: one folder per dataset and
    settings, every setting a model depends on in its name (no two settings share a folder)."""
    p = stylegan_protocol(args)
    widths = "-".join(map(str, p["stylegan_widths"]))
    return (Path(args.workdir) / "models" / f"{dataset}_stylegan_{p['stylegan_design']}_{p['stylegan_resolution']}_"
            f"{widths}_b{p['stylegan_batch_size']}_{p['stylegan_steps']}")


def subset_name(chosen: list[dict]) -> str:
    """A subset's model name: its size and a digest of its images' names, sorted, so that every (N, seed) drawing
    the same images (N = all, for every seed) shares one model, and no two subsets do."""
    stems = sorted(Path(item["image"]).stem for item in chosen)
    return f"n{len(stems)}_{hashlib.sha1(' '.join(stems).encode()).hexdigest()[:10]}"


def train_stylegan(dataset: str, chosen: list[dict], args: argparse.Namespace) -> Path:
    """The StyleGAN model of the subset ``chosen`` (absolute paths), trained on its N pairs together (unlike
    SinGAN-Seg's one model per image) through the project's runner: claimed while it trains (study processes of other
    seeds may want the same subset: they wait), resumed when half-trained, kept when finished. Beside it,
    ``<name>.json`` lists the subset's images."""
    from monai_singanseg import load_training_pair
    from monai_singanseg.stylegan import train_stylegan_models

    out = stylegan_folder(dataset, args) / f"{subset_name(chosen)}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    listing = out.with_suffix(".json")
    if not listing.exists():
        text = json.dumps(sorted(Path(i["image"]).name for i in chosen), indent=1)
        atomic_write(listing, lambda tmp: Path(tmp).write_text(text))
    pairs = [load_training_pair([item["image"]], item["label"]) for item in chosen]
    device = args.stylegan_device or ("cuda" if torch.cuda.is_available() else "cpu")
    while True:
        start = time.perf_counter()
        summary = train_stylegan_models(pairs, out, stylegan_config(pairs[0], args), device=device, resume=True)
        if not summary["failed"]:
            break
        lock = out.with_name(out.name + ".lock")
        if not lock.exists():
            error = next(m.get("error") for m in summary["models"] if m.get("status") == "failed")
            raise SystemExit(f"StyleGAN training of {out} failed: {error}")
        print(f"waiting for another process training {out}", flush=True)
        while lock.exists():
            time.sleep(30)
    print(f"StyleGAN model {out.parent.name}/{out.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return out


def chains(condition: dict | None, models: list[Path] | None, patch: int, pool: tuple[int, float] = (0, 1.0)
           ) -> tuple[Compose, Compose]:
    """(training chain, evaluation chain). Intensities are scaled to 0..1 in the deterministic part; the synthetic
    pairs follow that scaling (``match_intensity``) and then get the same standard augmentation as real ones.
    ``pool`` = (pool_size, pool_refresh) of the transform (``(0, 1.0)``: every synthetic pair drawn fresh)."""
    load = [LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True),
            ScaleIntensityd("image"), AsDiscreted("label", threshold=0.5)]
    synthetic = []
    if condition is not None and "copies" in condition:
        copies = condition["copies"]
        synthetic = [Lambda(lambda d: [d] + [deepcopy(d) for _ in range(copies - 1)])]
    elif condition is not None:
        options = {k: v for k, v in condition.items() if k not in ("generator", "recipe")}
        synthetic = [SinGANSegAugmentd(["image"], "label", models=[str(m) for m in models], match_intensity=True,
                                       pool_size=pool[0], pool_refresh=pool[1], **options),
                     AsDiscreted("label", threshold=0.5)]
    standard = [
        SpatialPadd(["image", "label"], patch),
        RandSpatialCropd(["image", "label"], (patch, patch), random_size=False),
        RandFlipd(["image", "label"], prob=0.5, spatial_axis=0),
        RandFlipd(["image", "label"], prob=0.5, spatial_axis=1),
        RandAffined(["image", "label"], prob=0.5, rotate_range=0.26, scale_range=0.1, mode=("bilinear", "nearest"),
                    padding_mode="zeros"),
        RandScaleIntensityd("image", factors=0.1, prob=0.5),
        RandShiftIntensityd("image", offsets=0.1, prob=0.5),
        RandGaussianNoised("image", prob=0.3, std=0.03),
        EnsureTyped(["image", "label"], track_meta=False),
    ]
    evaluation = Compose(load + [DivisiblePadd(["image", "label"], 16), EnsureTyped(["image", "label"],
                                                                                   track_meta=False)])
    return Compose(load + synthetic + standard), evaluation


@torch.no_grad()
def dice(net: torch.nn.Module, loader: DataLoader, patch: int) -> float:
    metric = DiceMetric(include_background=False)
    net.eval()
    for batch in loader:
        logits = sliding_window_inference(batch["image"], (patch, patch), 4, net, overlap=0.25)
        metric(logits.argmax(1, keepdim=True), batch["label"])
    net.train()
    return float(metric.aggregate().item())


def run_one(items: dict, condition: dict | None, models: list[Path] | None, seed: int, args: argparse.Namespace
            ) -> dict:
    """Train a UNet under one condition; returns validation and test Dice of the best-validation checkpoint."""
    set_determinism(seed)
    train_chain, eval_chain = chains(condition, models, args.patch, (args.pool_size, args.pool_refresh))
    train_loader = DataLoader(Dataset(items["training"], train_chain), batch_size=args.batch_size, shuffle=True,
                              num_workers=0, drop_last=False)
    val_loader = DataLoader(Dataset(items["validation"], eval_chain), batch_size=1)
    test_loader = DataLoader(Dataset(items["test"], eval_chain), batch_size=1)
    net = UNet(2, 1, 2, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    best, best_state, iteration = -1.0, None, 0
    start = time.perf_counter()
    while iteration < args.iterations:
        for batch in train_loader:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(net(batch["image"]), batch["label"]).backward()
            optimizer.step()
            iteration += 1
            if iteration % args.validate_every == 0 or iteration == args.iterations:
                score = dice(net, val_loader, args.patch)
                if score > best:
                    best, best_state = score, {k: v.clone() for k, v in net.state_dict().items()}
            if iteration == args.iterations:
                break
    net.load_state_dict(best_state)
    return {"val_dice": best, "test_dice": dice(net, test_loader, args.patch),
            "seconds": round(time.perf_counter() - start, 1)}


def with_sampling(condition: dict | None, args: argparse.Namespace) -> dict | None:
    """A diffusion condition with the sampling options of the command line filled in."""
    if generator_kind(condition) != "diffusion":
        return condition
    sampling = {"steps": args.diffusion_sampling_steps, "resample": args.diffusion_resample,
                **condition["diffusion"]}
    return {**condition, "diffusion": sampling}


def diffusion_protocol(args: argparse.Namespace) -> dict:
    """What a diffusion record also depends on: how its generators were trained and how they sample."""
    return {"diffusion_crop": args.diffusion_crop, "diffusion_steps": args.diffusion_steps,
            "diffusion_channels": list(args.diffusion_channels), "diffusion_sampling_steps":
            args.diffusion_sampling_steps, "diffusion_resample": args.diffusion_resample,
            "diffusion_ema_decay": args.diffusion_ema_decay}


def subset(pool: list[dict], n: int, seed: int) -> list[dict]:
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[i] for i in order[:n]]


def absolute(items: list[dict], folder: Path) -> list[dict]:
    return [{k: str(folder / v) for k, v in item.items()} for item in items]


def study(args: argparse.Namespace) -> None:
    from monai_singanseg.bundle_checks import quiet_nvimgcodec

    quiet_nvimgcodec()  # MONAI's notices about an optional DICOM decoder, twice per process, on PNG data
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    path = results / "results.json"
    records = json.loads(path.read_text()) if path.exists() else []
    # a diffusion or StyleGAN record also depends on how its generators were trained (and sample)
    protocol = lambda r: (*unet_protocol(r), json.dumps({k: v for k, v in r.items()
                                                         if k.startswith(("diffusion_", "stylegan_"))}, sort_keys=True))
    done = {(r["dataset"], r["n"], r["seed"], r["condition"], *protocol(r)) for r in records}
    # what every record of this run holds besides its own keys and results
    fields = {"iterations": args.iterations, "schedule": args.schedule, "max_size": args.max_size,
              "pool_size": args.pool_size, "pool_refresh": args.pool_refresh,
              "generator_settings": generator_settings(args)}
    mine = unet_protocol(fields)
    others = {unet_protocol(r) for r in records} - {mine}
    if others:  # refuse before running: the report of a file that mixes protocols would be refused after hours
        raise SystemExit(f"{path}: holds runs of another protocol (iterations, pool, generator settings: "
                         f"{min(others)}; this run: {mine}); give this run its own --results folder.")
    for dataset in args.datasets:
        datalist = prepare(dataset, Path(args.workdir) / "cache")
        sections = json.loads(datalist.read_text())
        pool = absolute(sections["training"], datalist.parent)
        # one set of generators per (kind, recipe) that the asked conditions use
        # (StyleGAN's are trained per subset, in the loop below)
        wanted = {(generator_kind(CONDITIONS[c]), json.dumps(recipe_of(CONDITIONS[c]), sort_keys=True))
                  for c in args.conditions if generator_kind(CONDITIONS[c]) not in (None, "stylegan")}
        # "all" may equal a number given too (5 training slices): each size once
        sizes = list(dict.fromkeys(len(pool) if t == "all" else min(int(t), len(pool)) for t in args.n))
        needed = {item["image"] for n in sizes for seed in args.seeds for item in subset(pool, n, seed)}
        models = {(kind, recipe): train_generators(dataset, datalist, args, kind, needed, json.loads(recipe))
                  for kind, recipe in sorted(wanted)}
        for n in sizes:
            for seed in args.seeds:
                chosen = subset(pool, n, seed)
                items = {"training": chosen, "validation": absolute(sections["validation"], datalist.parent),
                         "test": absolute(sections["test"], datalist.parent)}
                for name in args.conditions:
                    kind = generator_kind(CONDITIONS[name])
                    folder = models.get((kind, json.dumps(recipe_of(CONDITIONS[name]), sort_keys=True)))
                    extra = {"diffusion": diffusion_protocol(args), "stylegan": stylegan_protocol(args)}.get(kind, {})
                    key = (dataset, n, seed, name, *mine, json.dumps(extra, sort_keys=True))
                    if key in done:
                        continue
                    done.add(key)
                    if kind == "stylegan":  # one model of the N images, trained when a run first needs it
                        bank = [train_stylegan(dataset, chosen, args)]
                    else:
                        bank = [folder / f"{Path(i['image']).stem}.pt" for i in chosen] if kind else None
                    result = run_one(items, with_sampling(CONDITIONS[name], args), bank, seed, args)
                    record = {"dataset": dataset, "n": n, "seed": seed, "condition": name, **fields, **extra,
                              **result}
                    # read late and write atomically: one process per dataset may share the file
                    records = json.loads(path.read_text()) if path.exists() else []
                    records.append(record)
                    text = json.dumps(records, indent=1)
                    atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text))
                    print(json.dumps(record), flush=True)
    report(results, args.against, Path(args.workdir) / "models")


LEVEL = 0.95  # of every interval in the report
RESAMPLES = 10_000  # bootstrap resamples of the per-seed differences


def t_interval(diffs: list[float], level: float = LEVEL) -> tuple[float, float]:
    """Student t interval of the mean of ``diffs``: mean ± t(1 - (1 - level) / 2, k - 1) · sd / sqrt(k). Exact when
    the differences are normal; with k = 8 seeds it is wider than the bootstrap's, which assumes more data than
    there is. ``(nan, nan)`` for fewer than 2 values."""
    from scipy import stats

    k = len(diffs)
    if k < 2:
        return float("nan"), float("nan")
    mean, se = float(np.mean(diffs)), float(np.std(diffs, ddof=1)) / np.sqrt(k)
    half = float(stats.t.ppf(0.5 + level / 2, k - 1)) * se
    return mean - half, mean + half


def bootstrap_interval(diffs: list[float], level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0
                       ) -> tuple[float, float]:
    """Bootstrap percentile interval of the mean of ``diffs``: the (1 - level) / 2 and (1 + level) / 2 quantiles of
    the means of ``resamples`` resamples with replacement, drawn from a generator seeded by ``seed``, so a report
    rebuilt from the same records gives the same interval. ``(nan, nan)`` for fewer than 2 values."""
    values = np.asarray(diffs, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    means = values[np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))].mean(1)
    low, high = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return float(low), float(high)


def summarise(dataset: str, condition: str, n: int, diffs: list[float]) -> dict:
    """One row of per-seed differences: ``mean``, ``sd``, ``se`` = sd / sqrt(k), ``wins`` (> 0), ``seeds`` (k) and
    the 95 % intervals of the mean: ``t_low`` / ``t_high`` (:func:`t_interval`) and ``boot_low`` / ``boot_high``
    (:func:`bootstrap_interval`); nan where k < 2."""
    sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else float("nan")
    (t_low, t_high), (boot_low, boot_high) = t_interval(diffs), bootstrap_interval(diffs)
    return {"dataset": dataset, "condition": condition, "n": n, "mean": float(np.mean(diffs)), "sd": sd,
            "se": sd / np.sqrt(len(diffs)), "wins": sum(d > 0 for d in diffs), "seeds": len(diffs),
            "t_low": t_low, "t_high": t_high, "boot_low": boot_low, "boot_high": boot_high}


def interval_cell(row: dict) -> str:
    """A report cell: the mean change, its 95 % t interval and the wins, e.g. ``+0.031 [-0.004, +0.066] (6/8)``; an
    interval that excludes zero is marked ``*``."""
    if np.isnan(row["t_low"]):
        return f"{row['mean']:+.3f} ({row['wins']}/{row['seeds']})"
    apart = "*" if row["t_low"] > 0 or row["t_high"] < 0 else ""
    return f"{row['mean']:+.3f} [{row['t_low']:+.3f}, {row['t_high']:+.3f}]{apart} ({row['wins']}/{row['seeds']})"


def paired_gains(records: list[dict], baseline: str = "standard") -> list[dict]:
    """Test Dice change of every condition against ``baseline``, paired by seed: a seed picks the same N images, the
    same UNet initialisation and the same draws for every condition, so per-seed differences cancel what the seed
    alone decides (which images, how lucky the start) and their spread is the condition's own.

    Returns one row per (dataset, condition, N) with a baseline run of the same seed: ``mean`` and ``sd`` of the
    differences, ``se`` = sd / sqrt(k), ``wins`` (differences > 0), ``seeds`` (k) and the 95 % intervals of the mean
    change (``t_low``, ``t_high``, ``boot_low``, ``boot_high``: :func:`summarise`).
    """
    score = _scores(records)
    return _paired({k: v for k, v in score.items() if k[1] != baseline}, score,
                   lambda dataset, condition, n, seed: (dataset, baseline, n, seed))


def paired_with_reference(records: list[dict]) -> list[dict]:
    """Test Dice change of every generator-recipe condition against its :func:`shipped_reference`, paired by seed.
    Rows as :func:`paired_gains`."""
    score = _scores(records)
    mine = {k: v for k, v in score.items() if shipped_reference(k[1]) is not None}
    return _paired(mine, score, lambda dataset, condition, n, seed: (dataset, shipped_reference(condition), n, seed))


def paired_between(records: list[dict], earlier: list[dict]) -> list[dict]:
    """Test Dice of every condition here minus the same (dataset, condition, N, seed) in ``earlier`` (another results
    folder: other generators, the same UNet protocol). Each seed's UNet start, images and draws are the same in both,
    so the difference is what the other generators changed. Rows as :func:`paired_gains`."""
    return _paired(_scores(records), _scores(earlier), lambda *key: key)


def _scores(records: list[dict]) -> dict[tuple, float]:
    return {(r["dataset"], r["condition"], r["n"], r["seed"]): r["test_dice"] for r in records}


def _paired(scores: dict[tuple, float], others: dict[tuple, float], counterpart: Callable[..., tuple]) -> list[dict]:
    """Per (dataset, condition, N): the differences ``scores[key] - others[counterpart(*key)]`` over the seeds that
    have a counterpart, summarised by :func:`summarise`."""
    diffs: dict[tuple, list[float]] = {}
    for key in sorted(scores):
        if (match := counterpart(*key)) in others:
            diffs.setdefault(key[:3], []).append(scores[key] - others[match])
    return [summarise(*group, values) for group, values in sorted(diffs.items())]


def headroom(records: list[dict], baseline: str = "standard") -> dict[str, dict[int, float]]:
    """Per dataset and N below the largest N run: the baseline's mean test Dice at the largest N minus at N (the
    largest N is every training image where the runs include it). What more real images give is a yardstick for
    what synthetic pairs of the N images can be expected to give."""
    out: dict[str, dict[int, float]] = {}
    for dataset in sorted({r["dataset"] for r in records}):
        means = {n: float(np.mean([r["test_dice"] for r in records if (r["dataset"], r["condition"], r["n"]) ==
                                   (dataset, baseline, n)]))
                 for n in sorted({r["n"] for r in records if (r["dataset"], r["condition"]) == (dataset, baseline)})}
        if len(means) > 1:  # one N alone has nothing to compare with
            top = means[max(means)]
            out[dataset] = {n: top - m for n, m in means.items() if n != max(means)}
    return out


def unet_protocol(record: dict) -> tuple:
    """What a run's Dice depends on besides its dataset, N, seed and condition: UNet iterations, the synthetic pool
    and the SinGAN-Seg generators' settings (the first two rounds' records have no digest: ``""``)."""
    return (record["iterations"], record.get("pool_size", 0), record.get("pool_refresh", 1.0),
            record.get("generator_settings", ""))


def one_protocol(records: list[dict]) -> list[dict]:
    """``records`` checked to be one study: one UNet protocol (iterations, synthetic pool) and one record per
    (dataset, N, seed, condition), so that means and pairs compare like with like.

    Raises:
        SystemExit: several protocols or duplicate runs, saying to keep them in separate ``--results`` folders.
    """
    protocols = {unet_protocol(r) for r in records}
    keys = [(r["dataset"], r["n"], r["seed"], r["condition"]) for r in records]
    if len(protocols) > 1 or len(set(keys)) < len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})[:3]
        raise SystemExit(f"the results mix {len(protocols)} protocol(s) (iterations, pool, generator settings) or "
                         f"hold runs twice (e.g. {twice}): keep each protocol in its own --results folder.")
    return records


def generator_seconds(path: Path) -> float | None:
    """Training seconds of a finished SinGAN-Seg model (the sum of its scales' logged times); ``None`` if unfinished
    or unreadable (said in one line: the cost table leaves it out rather than stopping the report)."""
    try:
        training = read_checkpoint(path).get("training")
    except SinGANSegInputError as err:
        print(f"cost: left out: {err}", flush=True)
        return None
    if not training or not training.get("complete", False):
        return None
    return float(sum(entry.get("seconds", 0.0) for entry in training.get("log", [])))


def cost(records: list[dict], models: Path) -> list[dict]:
    """What the study cost per task, measured: its UNet runs (the seconds each record logged, one core per process)
    and the SinGAN-Seg generators its records used (every finished model in the task's folders of the records'
    settings digests, by recipe). Hours of one core; a process shared its core only when more ran than cores."""
    rows = []
    for dataset in sorted({r["dataset"] for r in records}):
        mine = [r for r in records if r["dataset"] == dataset]
        # the folders train_generators names for these records: "<dataset>_<schedule>_<size>_<digest><recipe>"
        names = {f"{dataset}_{r['schedule']}_{r['max_size']}_{r['generator_settings']}"
                 f"{recipe_suffix(recipe_of(CONDITIONS.get(r['condition'])))}" for r in mine
                 if r.get("generator_settings") and "schedule" in r and "max_size" in r
                 and generator_kind(CONDITIONS.get(r["condition"])) == "singanseg"}
        folders = sorted(f for f in models.iterdir() if f.is_dir() and f.name in names)
        seconds = {f.name: [s for s in map(generator_seconds, sorted(f.glob("*.pt"))) if s is not None]
                   for f in folders}
        rows.append({"dataset": dataset, "unet_runs": len(mine),
                     "unet_core_hours": round(sum(r.get("seconds", 0.0) for r in mine) / 3600, 2),  # early ones: none
                     "generators": {name: {"models": len(s), "core_hours": round(sum(s) / 3600, 2),
                                           "minutes_each": [round(min(s) / 60, 1), round(max(s) / 60, 1)] if s
                                           else []}
                                    for name, s in seconds.items()}})
    return rows


def cost_lines(rows: list[dict]) -> list[str]:
    """The report's cost table (:func:`cost`)."""
    lines = ["", "## Cost: hours of one core, measured (UNet: the runs' own seconds; generators: their training logs)",
             "", ("Wall time of one-thread processes: where more ran than the machine has cores (the generators of a "
                  "task were often trained two or three at a time on two cores), it overstates the core time."), "",
             "| dataset | UNet runs | UNet core-h | generator folder | models | minutes each | generator core-h |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        folders = row["generators"] or {"": {"models": 0, "core_hours": 0.0, "minutes_each": []}}
        for i, (name, g) in enumerate(folders.items()):
            each = "–".join(str(m) for m in dict.fromkeys(g["minutes_each"])) if g["minutes_each"] else ""
            first = [row["dataset"], str(row["unet_runs"]), f"{row['unet_core_hours']:.2f}"] if i == 0 else [""] * 3
            cells = first + [f"`{name}`" if name else "", str(g["models"]), each, f"{g['core_hours']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(results: Path, against: Path | None = None, models: Path | None = None) -> None:
    records = one_protocol(json.loads((results / "results.json").read_text()))
    keys = sorted({(r["dataset"], r["condition"]) for r in records})
    sizes = sorted({r["n"] for r in records})
    lines = ["# Few-shot segmentation: test Dice, mean ± sd over seeds", "",
             "| dataset | condition | " + " | ".join(f"N = {n}" for n in sizes) + " |",
             "| --- " * (len(sizes) + 2) + "|"]
    curves = {}
    for dataset, condition in keys:
        cells, curve = [], []
        for n in sizes:
            values = [r["test_dice"] for r in records if (r["dataset"], r["condition"], r["n"]) ==
                      (dataset, condition, n)]
            cells.append(f"{np.mean(values):.3f} ± {np.std(values):.3f} ({len(values)})" if values else "")
            if values:
                curve.append((n, float(np.mean(values)), float(np.std(values))))
        curves[(dataset, condition)] = curve
        lines.append(f"| {dataset} | {condition} | " + " | ".join(cells) + " |")
    sections = [(f"Change against `{baseline}`, paired by seed", paired_gains(records, baseline))
                for baseline in ("standard", "standard_x2", "standard_x4")]
    # the controls of the conditions that add pairs beside the real ones: one added (x2), three added (x4)
    sections[1] = (sections[1][0], [g for g in sections[1][1] if g["condition"].startswith(("sgs_add", "sty_add1"))])
    sections[2] = (sections[2][0], [g for g in sections[2][1] if g["condition"].startswith("sty_add3")])
    # generators of another recipe against the shipped recipe's sampling with zero-padded generators trained alike
    # (whole images: the shipped recipe itself; 64-px windows: its windowed twin), paired by seed
    heading = (f"Change against `{SHIPPED}` (the shipped recipe; for windowed generators its windowed twin "
               f"`{SHIPPED_WINDOWED}`), paired by seed")
    sections.append((heading, paired_with_reference(records)))
    if against is not None:
        earlier = one_protocol(json.loads((against / "results.json").read_text()))
        sections.append((f"Change against the same runs in `{against.name}/`, paired by seed",
                         paired_between(records, earlier)))
    for heading, gains in sections:
        if not gains:
            continue
        lines += ["", f"## {heading}", "",
                  ("Mean of the per-seed test Dice differences [95 % t interval] (wins / seeds); `*`: the interval "
                   "excludes zero. Bootstrap percentile intervals: `gains.json`."), "",
                  "| dataset | condition | " + " | ".join(f"N = {n}" for n in sizes) + " |",
                  "| --- " * (len(sizes) + 2) + "|"]
        for dataset, condition in sorted({(g["dataset"], g["condition"]) for g in gains}):
            cells = []
            for n in sizes:
                g = next((g for g in gains if (g["dataset"], g["condition"], g["n"]) == (dataset, condition, n)), None)
                cells.append("" if g is None else interval_cell(g))
            lines.append(f"| {dataset} | {condition} | " + " | ".join(cells) + " |")
    room = headroom(records)
    if room:
        lines += ["", ("## Headroom: `standard`'s test Dice at the largest N run minus at N (every training image "
                       "where the largest N is the whole pool)"), "",
                  "| dataset | " + " | ".join(f"N = {n}" for n in sizes) + " |", "| --- " * (len(sizes) + 1) + "|"]
        lines += [f"| {d} | " + " | ".join(f"{room[d][n]:+.3f}" if n in room[d] else "" for n in sizes) + " |"
                  for d in room]
    if models is not None and models.is_dir():
        lines += cost_lines(cost(records, models))
    text = "\n".join(lines) + "\n"
    (results / "downstream.md").write_text(text)
    # null where one seed leaves no spread (not NaN, which strict JSON readers refuse)
    rows = [{"comparison": heading, **{k: None if isinstance(v, float) and np.isnan(v) else v for k, v in g.items()}}
            for heading, gains in sections for g in gains]
    (results / "gains.json").write_text(json.dumps(rows, indent=1))
    print(text)
    from monai_singanseg.visualize import pyplot, save_figure

    datasets = sorted({d for d, _ in keys})
    gains = paired_gains(records)
    # one colour per condition in every panel; the baseline black and dashed, the shipped recipe and its same-batch
    # control drawn bold, every other condition thin and faint: the picture is the shipped recipe against both
    conditions = sorted({c for _, c in keys} - {"standard"})
    colours = {c: f"C{i % 10}" for i, c in enumerate(conditions)} | {"standard": "black", "standard_x2": "grey"}
    bold = {"standard", "standard_x2", SHIPPED, SHIPPED_WINDOWED}
    plt = pyplot()
    fig, axes = plt.subplots(2, len(datasets), figsize=(5.5 * len(datasets), 7.6), squeeze=False,
                             gridspec_kw={"height_ratios": (3, 2)})
    for column, dataset in enumerate(datasets):
        top, bottom = axes[0, column], axes[1, column]
        for (d, condition), curve in curves.items():
            if d == dataset and curve:
                n, mean, sd = zip(*curve)
                style = {"linewidth": 2.4, "alpha": 1.0, "zorder": 3} if condition in bold else \
                    {"linewidth": 1.0, "alpha": 0.35, "zorder": 2}
                top.errorbar(n, mean, yerr=sd, marker="o", capsize=3, label=condition, color=colours[condition],
                             linestyle="--" if condition == "standard" else "-", **style)
        shown = sorted({g["condition"] for g in gains if g["dataset"] == dataset})
        for offset, condition in enumerate(shown):
            points = sorted((g["n"], g["mean"], g["mean"] - g["t_low"], g["t_high"] - g["mean"]) for g in gains
                            if (g["dataset"], g["condition"]) == (dataset, condition))
            n, mean, below, above = zip(*points)
            below, above = np.clip(below, 0.0, None), np.clip(above, 0.0, None)  # rounding; nan (one seed) stays
            shift = 1 + 0.02 * (offset - len(shown) / 2)  # side by side on the log axis, so bars do not hide
            bottom.errorbar([x * shift for x in n], mean, yerr=[below, above], marker="o", capsize=2,
                            color=colours[condition],
                            linewidth=2.4 if condition in bold else 1.0, alpha=1.0 if condition in bold else 0.35)
        bottom.axhline(0.0, color="black", linestyle="--", linewidth=1.2)
        ticks = sorted({n for (d, _), curve in curves.items() if d == dataset for n, _, _ in curve})
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
        bottom.set_xlabel("real training images N")
        top.set_ylabel("test Dice (mean ± sd over seeds)")
        bottom.set_ylabel("Dice change vs standard\n(paired by seed, mean, 95 % t interval)")
        top.set_title(f"{dataset}: shipped recipe {SHIPPED} in bold")
        top.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, results / "downstream.png")
    plot_intervals(gains, results / "downstream_intervals.png")
    plot_answer({"standard": gains, "standard_x2": paired_gains(records, "standard_x2")},
                results / "downstream_answer.png")


def plot_intervals(gains: list[dict], path: Path) -> None:
    """One panel per dataset, one line per (condition, N): the mean change against the baseline (dot), its 95 % t
    interval (thin) and bootstrap percentile interval (thick), and zero (dashed). An interval clear of zero is drawn
    in colour (green above, red below), one across it in grey."""
    from monai_singanseg.visualize import pyplot, save_figure

    datasets = sorted({g["dataset"] for g in gains})
    if not datasets:
        return
    plt = pyplot()
    heights = [len([g for g in gains if g["dataset"] == d]) for d in datasets]
    fig, axes = plt.subplots(len(datasets), 1, figsize=(7.5, 1.2 + 0.28 * sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, dataset in zip(axes[:, 0], datasets):
        rows = sorted((g for g in gains if g["dataset"] == dataset), key=lambda g: (g["condition"], g["n"]))
        for y, g in enumerate(rows):
            colour = "tab:green" if g["t_low"] > 0 else "tab:red" if g["t_high"] < 0 else "grey"
            ax.plot([g["t_low"], g["t_high"]], [y, y], color=colour, linewidth=1.2)
            ax.plot([g["boot_low"], g["boot_high"]], [y, y], color=colour, linewidth=4, alpha=0.5)
            ax.plot(g["mean"], y, "o", color=colour, markersize=4)
        ax.axvline(0.0, color="black", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(rows)), [f"{g['condition']}, N = {g['n']} ({g['seeds']} seeds)" for g in rows],
                      fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{dataset}: test Dice change vs standard, paired by seed", fontsize=9)
    axes[-1, 0].set_xlabel("mean change; thin: 95 % t interval, thick: bootstrap percentile interval")
    fig.tight_layout()
    save_figure(fig, path)


# the study's question per task, as the answer figure draws it: (label, condition names, baseline); a task's first
# condition name that it ran is taken (the MRI tasks run the shipped sampling with their windowed generators)
ANSWER = (
    ("shipped recipe vs standard", (SHIPPED, SHIPPED_WINDOWED), "standard"),
    ("shipped recipe vs the same batch of real copies", (SHIPPED, SHIPPED_WINDOWED), "standard_x2"),
    ("synthetic pairs only vs the real images", ("synthetic_only_d04", "synthetic_only_d04_crop64"), "standard"),
)


def plot_answer(sections: dict[str, list[dict]], path: Path) -> None:
    """The study's answer in one row of panels, one per task: for each comparison of :data:`ANSWER`, the mean paired
    change and its 95 % t interval against N (filled where the interval clears zero). ``sections`` maps a baseline
    name to its paired rows (:func:`paired_gains`)."""
    from monai_singanseg.visualize import pyplot, save_figure

    datasets = sorted({g["dataset"] for rows in sections.values() for g in rows})
    if not datasets:
        return
    plt = pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 3.6), squeeze=False, sharey=True)
    for ax, dataset in zip(axes[0], datasets):
        for i, (label, names, baseline) in enumerate(ANSWER):
            rows = [g for g in sections.get(baseline, []) if g["dataset"] == dataset]
            name = next((c for c in names if any(g["condition"] == c for g in rows)), None)
            points = sorted((g["n"], g["mean"], g["t_low"], g["t_high"]) for g in rows if g["condition"] == name)
            if not points:
                continue
            shift = 1 + 0.05 * (i - 1)  # side by side on the log axis
            for n, mean, low, high in points:
                clear = low > 0 or high < 0
                ax.plot([n * shift] * 2, [low, high], color=f"C{i}", linewidth=1.6)
                ax.plot(n * shift, mean, "o", color=f"C{i}", markerfacecolor=f"C{i}" if clear else "white",
                        markersize=7, label=label if n == points[0][0] else None)
        ax.axhline(0.0, color="black", linestyle="--", linewidth=1)
        ticks = sorted({g["n"] for rows in sections.values() for g in rows if g["dataset"] == dataset})
        ax.set_xscale("log")
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("real training images N")
        ax.set_title(dataset, fontsize=10)
    axes[0, 0].set_ylabel("test Dice change, paired by seed\n(mean, 95 % t interval; filled: clear of zero)")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(POWERED),
                        help="default: the tasks with >= 20 test images (data.py)")
    parser.add_argument("--n", nargs="+", default=["1", "2", "5", "all"])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--conditions", nargs="+", choices=tuple(CONDITIONS), default=list(DEFAULT_CONDITIONS),
                        help="default: all but the StyleGAN ones (sty_*, standard_x4)")
    parser.add_argument("--iterations", type=int, default=600, help="UNet iterations, the same for every condition")
    parser.add_argument("--validate-every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--pool-size", type=int, default=16, help="synthetic pairs pooled per model (0: each drawn "
                        "fresh; on a CPU a 192-px sample costs about 0.4 s)")
    parser.add_argument("--pool-refresh", type=float, default=0.1, help="share of served pooled pairs replaced "
                        "(0.1: each served about 10 times, under the standard augmentation)")
    parser.add_argument("--schedule", default="fast", help="SinGAN-Seg training schedule of the generators")
    parser.add_argument("--max-size", type=int, default=192, help="SinGAN-Seg max size of the generators")
    parser.add_argument("--generator-iters", type=int, default=None, help="SinGAN-Seg iterations per scale "
                        "(default: the schedule's)")
    parser.add_argument("--group-size", type=int, default=1, help="generators trained side by side (1 on a CPU)")
    parser.add_argument("--diffusion-crop", type=int, default=64, help="diffusion training crop (multiple of 8)")
    parser.add_argument("--diffusion-channels", type=int, nargs="+", default=[32, 64, 64, 64],
                        help="diffusion UNet widths (bench_diffusion.py's small UNet)")
    parser.add_argument("--diffusion-steps", type=int, default=3000, help="diffusion training steps per image")
    parser.add_argument("--diffusion-timesteps", type=int, default=1000, help="diffusion T")
    parser.add_argument("--diffusion-sampling-steps", type=int, default=50, help="denoising steps per pair")
    parser.add_argument("--diffusion-resample", type=int, default=5, help="RePaint resamplings (inpainting)")
    parser.add_argument("--diffusion-ema-decay", type=float, default=0.999, help="moving average of the "
                        "diffusion weights that samples (0: the last weights)")
    parser.add_argument("--diffusion-device", default=None, help="device of diffusion training (default: cuda "
                        "when there is one)")
    parser.add_argument("--stylegan-steps", type=int, default=3000, help="StyleGAN training steps per subset model")
    parser.add_argument("--stylegan-resolution", type=int, default=64, help="StyleGAN training and sampling size "
                        "(its pairs are resized to each incoming image)")
    parser.add_argument("--stylegan-design", default="joint", choices=("joint", "mask_then_image"))
    parser.add_argument("--stylegan-widths", type=int, nargs="+", default=None, help="StyleGAN synthesis widths, "
                        "coarsest first (default: by resolution, STYLEGAN_WIDTHS)")
    parser.add_argument("--stylegan-batch-size", type=int, default=8)
    parser.add_argument("--stylegan-device", default=None, help="device of StyleGAN training (default: cuda when "
                        "there is one)")
    parser.add_argument("--results", default=str(RESULTS), help="where results.json, the table and the plot go")
    parser.add_argument("--workdir", default=str(WORK), help="where the datasets and generators are kept")
    parser.add_argument("--report", action="store_true", help="only rebuild the table and plot")
    parser.add_argument("--against", default=None, help="another results folder (other generators): the report "
                        "compares every run with the same run there, paired by seed")
    args = parser.parse_args(argv)
    if args.against is not None and not (Path(args.against) / "results.json").is_file():
        parser.error(f"--against {args.against}: no results.json there")
    args.against = None if args.against is None else Path(args.against)
    if args.report:
        report(Path(args.results), args.against, Path(args.workdir) / "models")
    else:
        study(args)


if __name__ == "__main__":
    main()
