"""Demo: train SinGAN-Seg on the real nuclei sample shipped in data/, write synthetic pairs and pictures.

Run with ``make demo`` (sets up first) or ``python scripts/demo.py --out demo_output``. Everything goes through the
``singanseg`` command a user would type (train, sample, sample with histogram style, report); the last steps draw
the real pair beside synthetic ones, the transform in a MONAI chain, and harmonization at every scale. Rerunning resumes
or reuses the model it finds in ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from monai_singanseg import SinGANSeg, load_training_pair
from monai_singanseg.cli import main as singanseg
from monai_singanseg.visualize import save_pair_grid

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "data" / "nuclei" / "nuclei_image.png"
LABEL = ROOT / "data" / "nuclei" / "nuclei_label.png"


def run(argv: list[str]) -> None:
    print("$ singanseg " + " ".join(argv), flush=True)
    if singanseg(argv) != 0:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_output")
    parser.add_argument("--max-size", default="64")
    parser.add_argument("--schedule", default="fast", help="fast (default) or faithful")
    parser.add_argument("--num", default="16")
    args = parser.parse_args()
    out = Path(args.out)
    model_path = out / "nuclei_image.pt"  # named after its image, so SinGANSegAugmentd can match them
    start = time.perf_counter()
    train = ["train", "--image", str(IMAGE), "--label", str(LABEL), "--out", str(model_path),
             "--max-size", args.max_size, "--schedule", args.schedule, "--seed", "0"]
    run(train + (["--resume"] if model_path.exists() else []))
    run(["sample", str(model_path), "--num", args.num, "--out", str(out / "samples"), "--seed", "0", "--overwrite"])
    run(["sample", str(model_path), "--num", args.num, "--out", str(out / "samples_histogram_style"), "--seed", "0",
         "--style", "histogram", "--style-image", str(IMAGE), "--overwrite"])
    run(["report", str(model_path), "--image", str(IMAGE), "--label", str(LABEL), "--out", str(out / "report"),
         "--start-scales", "0", "1", "2", "--overwrite", "--quiet"])

    model = SinGANSeg.load(model_path)
    real = load_training_pair([IMAGE], LABEL)
    # the real pair at the model's finest size, in the image's units, for a side-by-side picture
    from monai_singanseg.pyramid import resize

    finest = resize(real.real[None], model.shapes[-1])[0]
    real_image, real_label = model.split(finest[None])
    rows, names = [], []
    for start_scale in (0, 1, 2):
        rows.append(model.sample(3, start_scale=start_scale, seed=start_scale))
        names += [f"start scale {start_scale}"] * 3
    images = torch.cat([r[0] for r in rows])
    labels = torch.cat([r[1] for r in rows])
    picture = out / "real_vs_synthetic.png"
    save_pair_grid(picture, images, labels, real=(real_image[0], real_label[0]), columns=5,
                   title="real nuclei crop and SinGAN-Seg samples: start scale 0 is the most diverse",
                   intensity_range=(model.intensity.lower, model.intensity.upper), names=names)
    print(f"wrote {picture}")
    augmentation_picture(model_path, out / "augmented_in_monai_chain.png")
    harmonization_picture(model, out / "harmonization_scales.png")
    print(f"wrote {out / 'augmented_in_monai_chain.png'} ({time.perf_counter() - start:.0f} s in all)")


def harmonization_picture(model: SinGANSeg, picture: Path) -> None:
    """A nucleus cut from the real image, pasted elsewhere, then injected at every scale."""
    from monai_singanseg import read_image
    from monai_singanseg.harmonization import harmonize

    image, label = read_image(IMAGE).as_tensor(), read_image(LABEL).as_tensor()
    donor_mask = torch.zeros_like(label)
    donor_mask[:, 100:140, 100:140] = label[:, 100:140, 100:140]
    results = [harmonize(model, image, image, donor_mask, at_scale=k, location=(60, 200)) for k in
               range(model.num_scales)]
    composite, pasted = results[0][2], results[0][1]
    images = torch.stack([composite] + [r[0] for r in results])[(slice(None), slice(None), slice(20, 110),
                                                                 slice(150, 250))]
    labels = torch.stack([pasted] * (len(results) + 1))[(slice(None), slice(None), slice(20, 110), slice(150, 250))]
    save_pair_grid(picture, images, labels, columns=len(results) + 1,
                   names=["naive paste"] + [f"injected at scale {k}" for k in range(len(results))],
                   intensity_range=([0.0], [128.0]),
                   title="harmonization: the same pasted nuclei redrawn from each scale (0 = coarsest)")


def augmentation_picture(model_path: Path, picture: Path) -> None:
    """The real sample through a MONAI chain with SinGANSegAugmentd (prob 1), several draws."""
    from monai.transforms import Compose, LoadImaged

    from monai_singanseg import SinGANSegAugmentd
    from monai_singanseg.bundle_checks import quiet_nvimgcodec

    quiet_nvimgcodec()  # MONAI's two notices about an optional DICOM decoder, on a demo that reads PNGs
    load = LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True)
    real = load({"image": str(IMAGE), "label": str(LABEL)})
    chain = Compose([load, SinGANSegAugmentd(["image"], "label", model_path.parent, prob=1.0,
                                             start_scale=(0, 1))]).set_random_state(0)
    outs = [chain({"image": str(IMAGE), "label": str(LABEL)}) for _ in range(4)]
    save_pair_grid(picture, torch.stack([o["image"].as_tensor() for o in outs]),
                   torch.stack([o["label"].as_tensor() for o in outs]),
                   real=(real["image"].as_tensor(), real["label"].as_tensor()), columns=5,
                   names=["augmented"] * 4, intensity_range=([0.0], [128.0]),
                   title="SinGANSegAugmentd in a MONAI chain: the input (left) and four draws, at the input's size")


if __name__ == "__main__":
    main()
