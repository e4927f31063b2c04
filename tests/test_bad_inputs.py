"""Hostile-but-fair input, as a table that grows with the product: every row must end in one line naming the file
or option and the problem (exit status 2), with no traceback, and nothing written where the output would go.

The inputs are made from the real nuclei sample and the real MNI152 template (tests/conftest.py); add a row for
every bad input a user reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL, T1
from PIL import Image

from monai_singanseg.cli import main

SMALL = ["--max-size", "32", "--min-size", "20", "--iters", "2", "--base-channels", "8", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, nuclei_model) -> dict[str, Path]:
    """Bad files made from real ones, and a real tiny checkpoint."""
    folder = tmp_path_factory.mktemp("bad")
    image = np.array(Image.open(NUCLEI_IMAGE))
    label = np.array(Image.open(NUCLEI_LABEL))
    made = {"image": NUCLEI_IMAGE, "label": NUCLEI_LABEL, "model": nuclei_model[1]}

    def png(name: str, array: np.ndarray) -> None:
        Image.fromarray(array).save(folder / name)
        made[name] = folder / name

    png("half_label.png", label[: label.shape[0] // 2])
    png("grey_label.png", (label > 0).astype(np.uint8) * 128 + (np.arange(label.shape[1]) % 2).astype(np.uint8))
    png("empty_label.png", np.zeros_like(label))
    png("strip.png", image[:, :2].copy())
    png("strip_label.png", (label[:, :2] > 0).astype(np.uint8) * 255)
    t1 = np.asarray(nib.load(T1).dataobj[60:124, 60:124, 90], dtype=np.float32)
    t1[10, 10] = np.nan
    nib.save(nib.Nifti1Image(t1, np.eye(4)), folder / "nan_t1.nii.gz")
    made["nan_t1.nii.gz"] = folder / "nan_t1.nii.gz"
    nib.save(nib.Nifti1Image((t1 > 100).astype(np.uint8), np.eye(4)), folder / "t1_mask.nii.gz")
    made["t1_mask.nii.gz"] = folder / "t1_mask.nii.gz"
    (folder / "not_an_image.png").write_text("this is text, not a PNG")
    made["not_an_image.png"] = folder / "not_an_image.png"
    (folder / "not_dicom.dcm").write_bytes(b"\x00" * 64)
    made["not_dicom.dcm"] = folder / "not_dicom.dcm"
    (folder / "notes.pt").write_text("not a checkpoint")
    made["notes.pt"] = folder / "notes.pt"
    (folder / "no_label.json").write_text(json.dumps({"training": [{"image": str(NUCLEI_IMAGE)}]}))
    made["no_label.json"] = folder / "no_label.json"
    return made


def train(image: str, label: str, *extra: str) -> list[str]:
    return ["train", "--image", image, "--label", label, *SMALL, *extra]


# (id, argv from (files, out), fragments the one line must hold)
CASES = [
    ("label size differs", lambda f, out: train(str(f["image"]), str(f["half_label.png"]), "--out", out),
     ["half_label.png", "size"]),
    ("mask not binary", lambda f, out: train(str(f["image"]), str(f["grey_label.png"]), "--out", out),
     ["grey_label.png", "binary"]),
    ("empty mask", lambda f, out: train(str(f["image"]), str(f["empty_label.png"]), "--out", out),
     ["empty_label.png", "empty"]),
    ("NaN in the image", lambda f, out: train(str(f["nan_t1.nii.gz"]), str(f["t1_mask.nii.gz"]), "--out", out),
     ["nan_t1.nii.gz", "NaN"]),
    ("unreadable image", lambda f, out: train(str(f["not_an_image.png"]), str(f["label"]), "--out", out),
     ["not_an_image.png"]),
    ("unreadable DICOM", lambda f, out: train(str(f["not_dicom.dcm"]), str(f["label"]), "--out", out),
     ["not_dicom.dcm"]),
    ("missing file", lambda f, out: train("nowhere/image.png", str(f["label"]), "--out", out),
     ["nowhere/image.png"]),
    ("image thinner than the convolutions", lambda f, out: train(str(f["strip.png"]), str(f["strip_label.png"]),
                                                                 "--out", out), ["strip"]),
    ("inverted percentiles", lambda f, out: train(str(f["image"]), str(f["label"]), "--percentiles", "99", "1",
                                                  "--out", out), ["percentiles"]),
    ("unknown device", lambda f, out: train(str(f["image"]), str(f["label"]), "--device", "tpu9", "--out", out),
     ["tpu9"]),
    ("output in an unwritable place", lambda f, out: train(str(f["image"]), str(f["label"]), "--out",
                                                           "/proc/singanseg/model.pt"), ["/proc/singanseg"]),
    ("not a checkpoint", lambda f, out: ["sample", str(f["notes.pt"]), "--num", "1", "--out", out],
     ["notes.pt"]),
    ("diversity out of range", lambda f, out: ["sample", str(f["model"]), "--num", "1", "--out", out,
                                               "--diversity", "2"], ["diversity"]),
    ("start scale beyond the model", lambda f, out: ["sample", str(f["model"]), "--num", "1", "--out", out,
                                                     "--start-scale", "9"], ["start scale"]),
    ("scale ratio not a number", lambda f, out: ["sample", str(f["model"]), "--num", "1", "--out", out,
                                                 "--scale-ratio", "nan"], ["scale ratio"]),
    ("datalist item without a label", lambda f, out: ["train-many", str(f["no_label.json"]), "--out", out, *SMALL],
     ["label"]),
]


@pytest.mark.parametrize("argv, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(files, tmp_path, capsys, argv, fragments):
    out = tmp_path / "out"
    code = main(argv(files, str(out)))
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if "nvImageCodec" not in line]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("singanseg: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    # nothing is left where the output would have gone (train-many writes only its summary of the failure)
    written = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    assert written in ([], ["train_many_summary.json"]), written
