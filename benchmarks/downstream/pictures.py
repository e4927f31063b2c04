"""Start-scale-0 samples of one of the study's generators beside the slice it was trained on (docs/downstream.md).

    python benchmarks/downstream/pictures.py MODEL.pt IMAGE LABEL OUT.png [--diversities 1 0.4] [--per 4] [--start 0]

Draws ``--per`` seeded samples (seeds 0, 1, ...) per diversity at ``--start`` through the model's own ``sample``
(image and label in the training data's units, the mask thresholded as the transforms do), and writes them with the
real pair first, every panel on the real image's intensity range (:func:`monai_singanseg.visualize.save_pair_grid`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generators import load_generator
from monai_singanseg.io import read_image, read_mask
from monai_singanseg.visualize import save_pair_grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("image")
    parser.add_argument("label")
    parser.add_argument("out", type=Path)
    parser.add_argument("--diversities", type=float, nargs="+", default=[1.0, 0.4])
    parser.add_argument("--per", type=int, default=4, help="samples per diversity")
    parser.add_argument("--start", type=int, default=0, help="start scale")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    try:  # a missing file, a foreign checkpoint, a label of another size: one line naming it
        model = load_generator(args.model)
        image = read_image(args.image).as_tensor().float()
        label = read_mask(args.label, image.shape[1:], args.image).float()
    except SinGANSegInputError as err:
        raise SystemExit(str(err)) from None
    images, labels, names = [], [], []
    for diversity in args.diversities:
        for i in range(args.per):
            x, y = model.sample(1, start_scale=args.start, seed=i, diversity=diversity)
            images.append(x)
            labels.append(y)
            names.append(f"diversity {diversity:g}, #{i}")
    lower, upper = [float(image.min())], [float(image.max())]
    title = args.title or f"start-scale-{args.start} samples of {args.model.parent.name}/{args.model.stem}"
    save_pair_grid(args.out, torch.cat(images), torch.cat(labels), real=(image, label), columns=3, title=title,
                   intensity_range=(lower, upper), names=names)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
