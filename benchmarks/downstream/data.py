"""Real few-shot segmentation datasets for the downstream study, written as PNG pairs and Decathlon-style datalists.

- ``nuclei``: the 512x512 stardist fluorescence image and mask (BSD-3), reassembled from the four quadrant tiles in
  ``data/nuclei/tiles`` and cut into 16 tiles of 128x128: the 8 tiles of the top half form the training pool, the
  4 of the bottom-left quadrant validate, the 4 of the bottom-right quadrant test.
- ``ventricles``: axial slices of nilearn's MNI152 T1 template (1 mm, cropped to the head) with the lateral
  ventricles as the mask: cerebrospinal fluid inside the brain (grey + white matter probability < 0.2 inside the
  filled grey + white matter > 0.5 mask), its two largest connected parts. A small, anatomy-bound structure
  (about 0.5 % of a slice). Slabs with gaps between them, so no test slice neighbours a training one: training pool
  z = 73, 75, 77, 79, 81; validation z = 85, 86; test z = 89, 91, 93, 95, 97.

The tasks with the power to tell (issue 27: at least 20 test images each, so that a paired interval over seeds is not
drowned by the test split's own noise); the two above stay as they were, so that their results keep their meaning:

- ``nuclei64``: the same 512x512 image cut into an 8x8 grid of 64x64 tiles: row 0 is the training pool (8 tiles),
  row 2 validates (8), rows 4-7 test (32); rows 1 and 3 are left out, so no test or validation tile touches (not even
  at a corner) a tile of another split.
- ``ventricles_axial``: the ``ventricles`` mask and crop on axial slices, as many as the template allows: its lateral
  ventricles span z = 70-100 only (31 slices at 1 mm), so the slabs are tight: validation z = 72, 73; training pool
  z = 75-79 (five neighbouring slices); test z = 81-100 (20). z = 74 and 80 are left out between the slabs.
- ``ventricles_coronal``: the same mask on coronal slices (160 x 160: x and z, top of the head up), where the
  ventricles span y = 78-163: test slab A y = 86, 88, ..., 104 (10, occipital horns and atria), training pool
  y = 110, 113, ..., 122 (5, the bodies), validation y = 128, 131, test slab B y = 137, 139, ..., 155 (10, bodies
  and frontal horns). At least 5 slices lie between slabs; test slices 2 mm apart, training slices 3 mm.

Sources and licences. ``data/nuclei``: stardist's BSD-3-Clause licence (``data/nuclei/LICENSE-stardist.txt``).
MNI152: the files ``mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz`` in the installed nilearn wheel's
``nilearn/datasets/data`` folder (nilearn 0.14.1 ships the T1 and the grey- and white-matter probability maps of the
ICBM 2009a nonlinear symmetric template; no CSF map, no brain mask file, no atlas). The template is "Copyright (C)
1993-2004 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, McGill University", under
a permissive licence: permission to use, copy, modify and distribute for any purpose without fee, provided the
copyright notice appears in all copies (Fonov et al., NeuroImage 47 S102, 2009 and 54(1), 2011); nilearn's own code
is BSD-3-Clause, and its description of the template says "License: unknown", so the McGill notice is the one to
keep with any copy of the slices.

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
VENTRICLE_SLICES = {"training": [73, 75, 77, 79, 81], "validation": [85, 86], "test": [89, 91, 93, 95, 97]}
HEAD = (slice(18, 178), slice(20, 212))  # x, y crop of the 197 x 233 MNI grid: 160 x 192, the whole head
CORONAL = (slice(18, 178), slice(0, 160))  # x, z crop of a coronal slice: 160 x 160, the whole brain
# the slices (MNI voxel indices along the cut axis) of each split of the powered MNI tasks
SLICES = {
    "ventricles_axial": {"training": list(range(75, 80)), "validation": [72, 73], "test": list(range(81, 101))},
    "ventricles_coronal": {"training": list(range(110, 123, 3)), "validation": [128, 131],
                           "test": list(range(86, 105, 2)) + list(range(137, 156, 2))},
}
# the 8x8 grid rows of each split of nuclei64 (every column): rows 1 and 3 keep the splits apart
NUCLEI64_ROWS = {"training": [0], "validation": [2], "test": [4, 5, 6, 7]}
DATASETS = ("nuclei", "ventricles", "nuclei64", "ventricles_axial", "ventricles_coronal")
POWERED = ("nuclei64", "ventricles_axial", "ventricles_coronal")  # >= 20 test images each: the default of new runs


def _write(folder: Path, name: str, image: np.ndarray, label: np.ndarray) -> dict[str, str]:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.astype(np.uint8)).save(folder / "images" / f"{name}.png")
    Image.fromarray((label > 0).astype(np.uint8) * 255).save(folder / "labels" / f"{name}.png")
    return {"image": f"images/{name}.png", "label": f"labels/{name}.png"}


def nuclei_image() -> tuple[np.ndarray, np.ndarray]:
    """The 512x512 stardist image (uint8) and mask (0 / 255), reassembled from the four shipped quadrant tiles."""
    quadrant = {q: (np.array(Image.open(TILES / f"nuclei_tile_{q}_image.png")),
                    np.array(Image.open(TILES / f"nuclei_tile_{q}_label.png"))) for q in "abcd"}
    image = np.block([[quadrant["a"][0], quadrant["b"][0]], [quadrant["c"][0], quadrant["d"][0]]])
    label = np.block([[quadrant["a"][1], quadrant["b"][1]], [quadrant["c"][1], quadrant["d"][1]]])
    return image, label


def _nuclei(folder: Path) -> dict[str, list[dict[str, str]]]:
    image, label = nuclei_image()
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


def _nuclei64(folder: Path) -> dict[str, list[dict[str, str]]]:
    image, label = nuclei_image()
    sections: dict[str, list[dict[str, str]]] = {}
    for section, rows in NUCLEI64_ROWS.items():
        windows = [(row, col, (slice(64 * row, 64 * (row + 1)), slice(64 * col, 64 * (col + 1))))
                   for row in rows for col in range(8)]
        sections[section] = [_write(folder, f"nuclei64_r{row}c{col}", image[w], label[w]) for row, col, w in windows]
    return sections


def mni_template() -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 2009a T1 template (197 x 233 x 189, values 0-255, float32) and its lateral ventricles (bool)."""
    mni = Path(importlib.util.find_spec("nilearn").submodule_search_locations[0]) / "datasets" / "data"
    load = lambda name: np.asarray(nib.load(mni / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz").dataobj,
                                   dtype=np.float32)
    return load("t1"), ventricle_mask(load("gm"), load("wm"))


def mni_slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """Slice ``index`` of an MNI volume (x, y, z), cropped to the head and turned as radiologists look at it: axial
    (``plane="z"``: 192 rows x 160 columns, the front of the head up) or coronal (``"y"``: 160 x 160, its top up)."""
    if plane == "z":
        return np.rot90(volume[HEAD + (index,)])
    return np.rot90(volume[CORONAL[0], index, CORONAL[1]])


def _mni_slices(folder: Path, name: str) -> dict[str, list[dict[str, str]]]:
    t1, mask = mni_template()
    plane = "z" if name == "ventricles_axial" else "y"
    return {section: [_write(folder, f"mni_{plane}{i}", mni_slice(t1, plane, i).round(), mni_slice(mask, plane, i))
                      for i in slices] for section, slices in SLICES[name].items()}


def _ventricles(folder: Path) -> dict[str, list[dict[str, str]]]:
    t1, mask = mni_template()
    sections: dict[str, list[dict[str, str]]] = {}
    for section, slices in VENTRICLE_SLICES.items():
        # rotated so that the front of the head is up, as radiologists look at axial slices
        sections[section] = [_write(folder, f"mni_z{z}", np.rot90(t1[HEAD + (z,)]).round(),
                                    np.rot90(mask[HEAD + (z,)])) for z in slices]
    return sections


def prepare(name: str, cache: Path) -> Path:
    """Write dataset ``name`` (one of :data:`DATASETS`) under ``cache/name`` (once) and return its datalist path."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: one of {', '.join(DATASETS)}")
    folder = cache / name
    datalist = folder / "datalist.json"
    if not datalist.exists():
        writers = {"nuclei": _nuclei, "ventricles": _ventricles, "nuclei64": _nuclei64}
        sections = writers[name](folder) if name in writers else _mni_slices(folder, name)
        datalist.write_text(json.dumps({"description": __doc__.splitlines()[0], **sections}, indent=1))
    return datalist
