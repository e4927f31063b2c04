"""Two sets of the study's SinGAN-Seg generators side by side: quality figures and a picture of their samples.

    python benchmarks/downstream/compare_generators.py --dataset ventricles --images mni_z77 mni_z81 \
        --models ventricles_fast_192 ventricles_fast_192_a29b2f01 --names "fast before 2026-11-30" "fast now" \
        --out benchmarks/results/downstream/fast_coarse_scales

For every training image and models folder (under ``benchmarks/downstream/models/``, the study's): the figures of
``bench_time_to_quality.py`` (patch SWD to the real pair, MS-SSIM diversity, mask foreground error, reconstruction
MSE) over ``--num`` samples at start scale 0, diversity 1, and a PNG of the first image's samples at ``--diversity``
(the study's setting) from each folder, the real pair first. Writes ``generators.json`` and ``generators.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from bench_time_to_quality import measure

from monai_singanseg import load_training_pair
from monai_singanseg.checkpoint import load_model
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.files import atomic_write
from monai_singanseg.pyramid import build_pyramid
from monai_singanseg.visualize import save_pair_grid


def compare(args: argparse.Namespace, cache: Path, models: Path) -> tuple[dict, dict]:
    """The figures of every (folder, image), and each folder's (samples, real pair) of the first image to draw."""
    figures, shown = {}, {}
    for name in args.images:
        pair = load_training_pair([cache / "images" / f"{name}.png"], cache / "labels" / f"{name}.png")
        for folder in args.models:
            model, _ = load_model(models / folder / f"{name}.pt")
            real = build_pyramid(pair.real.unsqueeze(0), model.shapes)[-1]
            figures[f"{folder}/{name}"] = measure(model, real, args.num, seed=0)
            print(folder, name, {k: round(v, 4) for k, v in figures[f"{folder}/{name}"].items()}, flush=True)
            if name == args.images[0]:
                draws = torch.Generator().manual_seed(0)
                with torch.no_grad():
                    x = model.generate(args.show, 0, generator=draws, diversity=args.diversity)
                shown[folder] = (model.split(x), model.split(real))
    return figures, shown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ventricles")
    parser.add_argument("--images", nargs="+", required=True, help="image names (stems) of the training pool")
    parser.add_argument("--models", nargs=2, required=True, help="two folders under benchmarks/downstream/models")
    parser.add_argument("--names", nargs=2, default=None, help="what to call the two folders in the picture")
    parser.add_argument("--num", type=int, default=16, help="samples per model for the figures")
    parser.add_argument("--diversity", type=float, default=0.4, help="sampling diversity of the picture")
    parser.add_argument("--show", type=int, default=4, help="samples per folder in the picture")
    parser.add_argument("--out", required=True)
    parser.add_argument("--workdir", default=str(HERE), help="the study's folder of cache/ and models/")
    args = parser.parse_args(argv)
    if min(args.num, args.show) < 1:
        parser.error("--num and --show must be >= 1")
    torch.set_num_threads(1)
    cache, models = Path(args.workdir) / "cache" / args.dataset, Path(args.workdir) / "models"
    for folder in args.models:
        missing = [name for name in args.images if not (models / folder / f"{name}.pt").is_file()]
        if missing:
            parser.error(f"{models / folder}: no model for {', '.join(missing)}")
    try:
        figures, shown = compare(args, cache, models)
    except SinGANSegInputError as err:  # an image missing from the cache, a damaged model: one line
        parser.error(str(err))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(figures, indent=1)
    atomic_write(out / "generators.json", lambda tmp: Path(tmp).write_text(text))
    (images_a, labels_a), (images_b, labels_b) = (shown[f][0] for f in args.models)
    real_pair = tuple(t[0] for t in shown[args.models[0]][1])
    names = [f"{folder} {i + 1}" for folder in (args.names or args.models) for i in range(args.show)]
    save_pair_grid(out / "generators.png", torch.cat([images_a, images_b]), torch.cat([labels_a, labels_b]),
                   real=real_pair, columns=args.show + 1, names=names,
                   title=f"{args.images[0]}: samples at diversity {args.diversity} (start scale 0)")


if __name__ == "__main__":
    main()
