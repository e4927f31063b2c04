"""Real few-shot segmentation datasets for the downstream study, written as PNG pairs and Decathlon-style datalists.

- ``nuclei``: the 512x512 stardist fluorescence image and mask (BSD-3), reassembled from the four quadrant tiles in
  ``data/nuclei/tiles`` and cut into 16 tiles of 128x128: the 8 tiles of the top half form the training pool, the
  4 of the bottom-left quadrant validate, the 4 of the bottom-right quadrant test.
- ``ventricles``: axial slices of nilearn's MNI152 T1 template (1 mm, cropped to the head) with the lateral
  ventricles as the mask: cerebrospinal fluid inside the brain (grey + white matter probability < 0.2 inside the
  filled grey + white matter > 0.5 mask), its two largest connected parts. A small, anatomy-bound structure
  (about 0.5 % of a slice). Slabs with gaps between them, so no test slice neighbours a training one: training pool
  z = 73, 75, 77, 79, 81; validation z = 85, 86; test z = 89, 91, 93, 95, 97.

Everything is derived from files shipped in the repository or inside registry wheels; nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TILES = ROOT / "data" / "nuclei" / "tiles"
DATASETS = ("nuclei", "ventricles")
VENTRICLE_SLICES = {"training": [73, 75, 77, 79, 81], "validation": [85, 86], "test": [89, 91, 93, 95, 97]}
HEAD = (slice(18, 178), slice(20, 212))  # x, y crop of the 197 x 233 MNI grid: 160 x 192, the whole head


def _write(folder: Path, name: str, image: np.ndarray, label: np.ndarray) -> dict[str, str]:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.astype(np.uint8)).save(folder / "images" / f"{name}.png")
    Image.fromarray((label > 0).astype(np.uint8) * 255).save(folder / "labels" / f"{name}.png")
    return {"image": f"images/{name}.png", "label": f"labels/{name}.png"}


def _nuclei(folder: Path) -> dict[str, list[dict[str, str]]]:
    quadrant = {q: (np.array(Image.open(TILES / f"nuclei_tile_{q}_image.png")),
                    np.array(Image.open(TILES / f"nuclei_tile_{q}_label.png"))) for q in "abcd"}
    image = np.block([[quadrant["a"][0], quadrant["b"][0]], [quadrant["c"][0], quadrant["d"][0]]])
    label = np.block([[quadrant["a"][1], quadrant["b"][1]], [quadrant["c"][1], quadrant["d"][1]]])
    sections: dict[str, list[dict[str, str]]] = {"training": [], "validation": [], "test": []}
    for row in range(4):
        for col in range(4):
            window = (slice(128 * row, 128 * (row + 1)), slice(128 * col, 128 * (col + 1)))
            section = "training" if row < 2 else ("validation" if col < 2 else "test")
            sections[section].append(_write(folder, f"nuclei_r{row}c{col}", image[window], label[window]))
    return sections


def ventricle_mask(gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Lateral ventricles of the MNI152 template from its grey- and white-matter maps (values 0-255)."""
    from scipy import ndimage

    tissue = gm + wm
    brain = ndimage.binary_fill_holes(tissue > 0.5 * 255)
    fluid = brain & (tissue < 0.2 * 255)
    parts, count = ndimage.label(fluid)
    sizes = ndimage.sum(fluid, parts, range(1, count + 1))
    keep = np.argsort(sizes)[-2:] + 1  # left and right lateral ventricle
    return np.isin(parts, keep)


def _ventricles(folder: Path) -> dict[str, list[dict[str, str]]]:
    mni = Path(importlib.util.find_spec("nilearn").submodule_search_locations[0]) / "datasets" / "data"
    load = lambda name: np.asarray(nib.load(mni / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz").dataobj,
                                   dtype=np.float32)
    t1, mask = load("t1"), ventricle_mask(load("gm"), load("wm"))
    sections: dict[str, list[dict[str, str]]] = {}
    for section, slices in VENTRICLE_SLICES.items():
        # rotated so that the front of the head is up, as radiologists look at axial slices
        sections[section] = [_write(folder, f"mni_z{z}", np.rot90(t1[HEAD + (z,)]).round(),
                                    np.rot90(mask[HEAD + (z,)])) for z in slices]
    return sections


def prepare(name: str, cache: Path) -> Path:
    """Write dataset ``name`` under ``cache/name`` (once) and return its datalist path."""
    folder = cache / name
    datalist = folder / "datalist.json"
    if not datalist.exists():
        sections = _nuclei(folder) if name == "nuclei" else _ventricles(folder)
        datalist.write_text(json.dumps({"description": __doc__.splitlines()[0], **sections}, indent=1))
    return datalist
