"""The pictures of docs/diffusion.md: real | inpainted pairs, and whole new pairs, from a trained diffusion model.

    python benchmarks/diffusion_pictures.py [--model benchmarks/results/models/diffusion_crops_64_s0.pt]

The model is the one ``bench_diffusion.py train`` trains on 64x64 crops of the real nuclei pair. Inpainting redraws
the (dilated) nuclei of a 128x128 part of the real pair with RePaint through ``SyntheticPairAugment``, as a training
chain would; the new pairs are DDIM samples of the training crop size. Writes docs/images/diffusion_inpainted.png and
docs/images/diffusion_new_pairs.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from monai_singanseg import SyntheticPairAugment, read_image
from monai_singanseg.diffusion import DiffusionSampling, PairDiffusion
from monai_singanseg.visualize import save_pair_grid

ROOT = Path(__file__).resolve().parents[1]
NUCLEI = ROOT / "data" / "nuclei"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "benchmarks/results/models/diffusion_crops_64_s0.pt")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--resample", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = PairDiffusion.load(args.model)
    box = (slice(None), slice(64, 192), slice(96, 224))  # a 128x128 part of the crop with nuclei of several sizes
    image = read_image(NUCLEI / "nuclei_image.png").as_tensor()[box].float()
    label = read_image(NUCLEI / "nuclei_label.png").as_tensor()[box].float()
    sampling = DiffusionSampling(steps=args.steps, resample=args.resample)
    augment = SyntheticPairAugment(model, prob=1.0, diffusion=sampling)
    images, labels = [], []
    for seed in range(3):
        out_image, out_label = augment.set_random_state(seed)(image, label)
        images.append(out_image)
        labels.append(out_label)
    bounds = (model.intensity.lower, model.intensity.upper)
    save_pair_grid(args.out / "diffusion_inpainted.png", torch.stack(images), torch.stack(labels),
                   real=(image, label), columns=4, intensity_range=bounds,
                   title=f"real (left) and three RePaint redraws of its nuclei ({args.steps} steps, resample "
                         f"{args.resample})")
    x = model.generate(8, args.steps, "ddim", generator=torch.Generator().manual_seed(0))
    new_images, new_labels = model.split(x)
    save_pair_grid(args.out / "diffusion_new_pairs.png", new_images, new_labels, columns=4, intensity_range=bounds,
                   title=f"whole new 64x64 pairs (DDIM, {args.steps} steps)")
    print(f"wrote {args.out / 'diffusion_inpainted.png'} and {args.out / 'diffusion_new_pairs.png'}")


if __name__ == "__main__":
    main()
