"""Hostile-but-fair input, as a table that grows with the product: every row must end in one line naming the file
or option and the problem (exit status 2), with no traceback, and nothing written where the output would go.

The inputs are made from the real nuclei sample and the real MNI152 template (tests/conftest.py); add a row for
every bad input a user reports.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL, T1, TILES
from PIL import Image
from pydicom.data import get_testdata_file

from monai_singanseg.cli import main
from monai_singanseg.config import SinGANSegConfig
from monai_singanseg.networks.scale_networks import ScaleCritic

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
    shifted = np.eye(4)
    shifted[0, 3] = 50.0  # the mask's voxels sit 50 mm away from the image's
    nib.save(nib.Nifti1Image(np.asarray(nib.load(T1).dataobj[60:124, 60:124, 90]), np.eye(4)), folder / "t1.nii.gz")
    nib.save(nib.Nifti1Image((t1 > 100).astype(np.uint8), shifted), folder / "shifted_mask.nii.gz")
    made.update({name: folder / name for name in ("t1.nii.gz", "shifted_mask.nii.gz")})
    png("constant.png", np.full_like(image, 90))
    lesion = np.zeros_like(label)
    lesion[100:102, 100:102] = 255  # a 2x2 lesion in the 256-pixel crop: less than a pixel at 32
    png("tiny_lesion.png", lesion)
    (folder / "tiny_lesion.json").write_text(json.dumps({"training": [{"image": str(NUCLEI_IMAGE),
                                                                       "label": str(folder / "tiny_lesion.png")}]}))
    made["tiny_lesion.json"] = folder / "tiny_lesion.json"
    (folder / "empty.json").write_text(json.dumps({"training": []}))
    made["empty.json"] = folder / "empty.json"
    png("label01.png", (label > 0).astype(np.uint8))  # binary, but 0/1 where the model was trained on 0/255
    png("rgba.png", np.stack([image] * 4, axis=-1))
    png("opaque_rgba.png", np.stack([image] * 3 + [np.full_like(image, 255)], axis=-1))
    series = folder / "two_series"
    series.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):  # real DICOM files of pydicom's test set: a CT and an MR series
        shutil.copy(get_testdata_file(name), series / name)
    made["two_series"] = series
    payload = torch.load(nuclei_model[1], weights_only=True)
    weight = next(k for k, v in payload["generators"][0].items() if v.is_floating_point())
    payload["generators"][0][weight][0] = float("nan")  # a diverged or damaged model
    torch.save(payload, folder / "nan_weights.pt")
    made["nan_weights.pt"] = folder / "nan_weights.pt"
    payload = torch.load(nuclei_model[1], weights_only=True)
    payload["format_version"] = "2"  # edited by hand, or written by another tool
    torch.save(payload, folder / "string_version.pt")
    made["string_version.pt"] = folder / "string_version.pt"
    payload = torch.load(nuclei_model[1], weights_only=True)
    config = json.loads(payload["config"])
    config["optim"]["lr_warmup"] = 100  # an option a later release may add
    payload["config"] = json.dumps(config)
    torch.save(payload, folder / "newer_release.pt")
    made["newer_release.pt"] = folder / "newer_release.pt"
    payload = torch.load(nuclei_model[1], weights_only=True)  # interrupted after its second-to-last scale ...
    del payload["generators"][-1], payload["noise_amps"][-1]
    payload["training"]["complete"] = False
    network = SinGANSegConfig.from_json(payload["config"]).network
    wider = ScaleCritic(2, 2, 2 * network.base_channels, network)  # ... holding the critic of a wider scale
    payload["training"]["critic"] = wider.state_dict()
    torch.save(payload, folder / "other_critic.pt")
    made["other_critic.pt"] = folder / "other_critic.pt"
    return made


def train(image: str, label: str, *extra: str) -> list[str]:
    return ["train", "--image", image, "--label", label, *SMALL, *extra]


def harmonize(f: dict[str, Path], out: str, donor_label: str | None = None, *extra: str) -> list[str]:
    """A real tile's nucleus pasted into the nuclei crop by its model."""
    return ["harmonize", str(f["model"]), "--image", str(f["image"]), "--donor-image",
            str(TILES / "nuclei_tile_a_image.png"), "--donor-label",
            donor_label or str(TILES / "nuclei_tile_a_label.png"), "--at-scale", "1", "--out", out, *extra]


def report(f: dict[str, Path], out: str, image: str | None = None, label: str | None = None) -> list[str]:
    return ["report", str(f["model"]), "--image", image or str(f["image"]), "--label", label or str(f["label"]),
            "--out", out, "--num", "2", "--quiet"]


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
    ("no feature maps", lambda f, out: train(str(f["image"]), str(f["label"]), "--base-channels", "0", "--out", out),
     ["base_channels", ">= 1"]),
    ("mask in another physical space", lambda f, out: train(str(f["t1.nii.gz"]), str(f["shifted_mask.nii.gz"]),
                                                            "--out", out), ["shifted_mask.nii.gz", "affine"]),
    ("DICOM folder of two series", lambda f, out: train(str(f["two_series"]), str(f["label"]), "--out", out),
     ["two_series", "2 DICOM series"]),
    ("scale ratio below a pixel", lambda f, out: ["sample", str(f["model"]), "--num", "1", "--out", out,
                                                  "--scale-ratio", "0.01"], ["0.01", "smallest ratio"]),
    ("non-finite weights", lambda f, out: ["sample", str(f["nan_weights.pt"]), "--num", "1", "--out", out],
     ["nan_weights.pt", "non-finite"]),
    ("harmonize: region of another size", lambda f, out: harmonize(f, out, None, "--region", str(f["half_label.png"])),
     ["half_label.png", "size"]),
    ("harmonize: empty region", lambda f, out: harmonize(f, out, None, "--region", str(f["empty_label.png"])),
     ["empty_label.png", "empty"]),
    ("harmonize: donor mask not binary", lambda f, out: harmonize(f, out, str(f["grey_label.png"])),
     ["grey_label.png", "binary"]),
    ("report: empty label", lambda f, out: report(f, out, label=str(f["empty_label.png"])),
     ["empty_label.png", "empty"]),
    ("report: label values not the training label's", lambda f, out: report(f, out, label=str(f["label01.png"])),
     ["label01.png", "training label"]),
    ("report: image of other channels", lambda f, out: report(f, out, image=str(f["rgba.png"])),
     ["rgba.png", "4 channel"]),
    ("window with percentiles", lambda f, out: train(str(f["image"]), str(f["label"]), "--window", "0", "255",
                                                     "--percentiles", "1", "99", "--out", out),
     ["--window", "--percentiles"]),
    ("constant image", lambda f, out: train(str(f["constant.png"]), str(f["label"]), "--out", out),
     ["constant.png", "one value"]),
    ("an RGBA file's opaque alpha channel", lambda f, out: train(str(f["opaque_rgba.png"]), str(f["label"]), "--out",
                                                                 out), ["opaque_rgba.png", "channel 3", "alpha"]),
    ("style options without a style", lambda f, out: ["sample", str(f["model"]), "--num", "1", "--out", out,
                                                      "--style-image", str(f["image"])], ["--style-image", "--style"]),
    ("a folder as the checkpoint", lambda f, out: ["sample", str(f["two_series"]), "--num", "1", "--out", out],
     ["two_series", "a folder"]),
    ("harmonize: location of another dimension", lambda f, out: harmonize(f, out, None, "--location", "5", "5", "5"),
     ["3 coordinate", "2D"]),
    ("report: diffusion options for a SinGAN-Seg model", lambda f, out: [*report(f, out), "--steps", "5"],
     ["diffusion options"]),
    ("window above the image's range", lambda f, out: train(str(f["image"]), str(f["label"]), "--window", "1000",
                                                            "2000", "--out", out),
     ["nuclei_image.png", "window (1000, 2000)", "range 0..128", "one value"]),
    ("window below the image's range", lambda f, out: train(str(f["image"]), str(f["label"]), "--window", "-50", "0",
                                                            "--out", out), ["window (-50, 0)", "one value"]),
    ("mask lost in the pyramid", lambda f, out: train(str(f["image"]), str(f["tiny_lesion.png"]), "--out", out),
     ["tiny_lesion.png", "4 foreground pixel(s)", "every scale", "20x20: 0, 25x25: 0, 32x32: 0", "--max-size"]),
    ("train-many: mask lost in the pyramid", lambda f, out: ["train-many", str(f["tiny_lesion.json"]), "--out", out,
                                                             *SMALL], ["tiny_lesion.png", "every scale"]),
    ("sample: seed beyond 64 bits", lambda f, out: ["sample", str(f["model"]), "--num", "1", "--out", out, "--seed",
                                                    "99999999999999999999"],
     ["--seed 99999999999999999999", "from 0 to 4294967295"]),
    ("harmonize: negative seed", lambda f, out: harmonize(f, out, None, "--seed", "-1"),
     ["--seed -1", "from 0 to 4294967295"]),
    ("train: the same seeds refused", lambda f, out: train(str(f["image"]), str(f["label"]), "--seed", "-1",
                                                           "--out", out), ["--seed -1", "from 0 to 4294967295"]),
    ("TensorBoard folder that is a file", lambda f, out: train(str(f["image"]), str(f["label"]), "--tensorboard",
                                                               str(f["notes.pt"]), "--out", out),
     ["notes.pt: is a file", "--tensorboard"]),
    ("train-diffusion: resize to nothing", lambda f, out: ["train-diffusion", "--image", str(f["image"]), "--label",
                                                           str(f["label"]), "--resize", "0", "--out", out],
     ["resize to (0, 0)", ">= 1 pixel"]),
    ("format version stored as a string", lambda f, out: ["sample", str(f["string_version.pt"]), "--num", "1",
                                                          "--out", out],
     ["string_version.pt", "format version '2' (a str", "reads 1, 2"]),
    ("checkpoint of a newer release", lambda f, out: ["sample", str(f["newer_release.pt"]), "--num", "1", "--out",
                                                      out],
     ["newer_release.pt", "written by a newer version of monai-singanseg", "unknown field optim.lr_warmup",
      "upgrade"]),
    ("resume: checkpoint of a newer release", lambda f, out: train(str(f["image"]), str(f["label"]), "--resume",
                                                                   "--out", str(f["newer_release.pt"])),
     ["newer_release.pt", "newer version", "optim.lr_warmup"]),
    ("--out with a trailing slash", lambda f, out: train(str(f["image"]), str(f["label"]), "--out",
                                                         f"{out}/newdir/"),
     ["newdir/: is a folder", "checkpoint file name", "newdir/model.pt"]),
    ("report: one sample", lambda f, out: [*report(f, out), "--num", "1"], ["--num 1", "at least 2 samples"]),
    ("empty datalist", lambda f, out: ["train-many", str(f["empty.json"]), "--out", out, *SMALL],
     ["empty.json", "no item"]),
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


def test_a_bank_with_one_damaged_model_writes_nothing(files, tmp_path):
    # the generation bundle's inference: before, model a's pairs were written, then b failed, and a rerun was refused
    # because a's files existed
    from monai_singanseg.errors import SinGANSegInputError
    from monai_singanseg.generation import sample_bank

    bank = tmp_path / "models"
    bank.mkdir()
    shutil.copy(files["model"], bank / "a.pt")
    shutil.copy(files["notes.pt"], bank / "b.pt")
    with pytest.raises(SinGANSegInputError, match="b.pt"):
        sample_bank(bank, tmp_path / "out", 1)
    assert not (tmp_path / "out").exists()
    with pytest.raises(SinGANSegInputError, match="nowhere: folder not found"):
        sample_bank(tmp_path / "nowhere", tmp_path / "out", 1)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if "nvImageCodec" not in line]
    assert len(lines) == 1 and lines[0].startswith("singanseg: error:") and "Traceback" not in err, err
    return lines[0]


def test_a_second_train_on_one_out_stops_while_the_first_runs(files, tmp_path, capsys):
    # two runs started together both passed the "exists" check, both trained and both said "wrote"
    from monai_singanseg.files import claim_output

    out = tmp_path / "model.pt"
    argv = train(str(files["image"]), str(files["label"]), "--out", str(out))
    with claim_output(out):  # the first run, still training
        assert main(argv) == 2
        line = _one_line(capsys)
        assert "model.pt: another run is writing it" in line and "model.pt.lock" in line, line
        assert not out.exists()
    assert main(argv) == 0  # the first run is done: the output is free, and a run leaves no lock behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_stale_lock_is_named_and_left_for_the_user(files, tmp_path, capsys):
    import socket
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    lock = tmp_path / "model.pt.lock"
    lock.write_text(f"{gone.stdout.strip()} {socket.gethostname()}\n")  # left by a run that was killed
    assert main(train(str(files["image"]), str(files["label"]), "--out", str(tmp_path / "model.pt"))) == 2
    line = _one_line(capsys)
    assert "model.pt.lock" in line and "stale" in line and f"process {gone.stdout.strip()}" in line, line
    assert lock.exists() and not (tmp_path / "model.pt").exists()


def test_a_second_train_many_on_one_folder_does_not_train_a_claimed_model(files, tmp_path, capsys):
    from monai_singanseg.files import claim_output

    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [{"image": str(files["image"]), "label": str(files["label"])}]}))
    out = tmp_path / "models"
    out.mkdir()
    with claim_output(out / "nuclei_image.pt"):  # the first train-many, still on this model
        assert main(["train-many", str(datalist), "--out", str(out), *SMALL]) == 2
    line = _one_line(capsys)
    assert "nuclei_image.pt: another run is writing it" in line and "nuclei_image.pt.lock" in line, line
    assert sorted(p.name for p in out.iterdir()) == ["train_many_summary.json"]


def test_a_failed_train_leaves_no_folder_behind(files, tmp_path, capsys):
    # train made the folders of --out before it read the inputs, and left them empty when they were refused
    new = tmp_path / "new"
    for label in ("empty_label.png", "tiny_lesion.png"):  # refused while reading; refused by the trainer's check
        assert main(train(str(files["image"]), str(files[label]), "--out", str(new / "deeper" / "model.pt"))) == 2
        assert label in _one_line(capsys)
        assert not new.exists()
    existing = tmp_path / "kept"  # a folder that was there before is left alone
    existing.mkdir()
    assert main(train(str(files["image"]), str(files["empty_label.png"]), "--out", str(existing / "model.pt"))) == 2
    capsys.readouterr()
    assert existing.is_dir()
    assert main(train(str(files["image"]), str(files["label"]), "--out", str(new / "deeper" / "model.pt"))) == 0
    assert (new / "deeper" / "model.pt").is_file()  # a run that works makes them


def test_a_class_count_that_is_no_number_is_named_without_a_function_name(capsys):
    # argparse printed "invalid _class_count value: 'abc'"
    for option in (["--num-classes", "abc"], ["--batch-size", "x"]):
        argv = ["sample", "m.pt", "--num", "1", "--out", "o", *option] if option[0] == "--batch-size" else \
            ["train", "--image", "a.png", "--label", "b.png", "--out", "o.pt", *option]
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err
        assert f"argument {option[0]}: a whole number, got '{option[1]}'" in err, err
        assert "_class_count" not in err and "_positive_int" not in err


def test_a_pyramid_of_one_scale_is_warned_about(files, tmp_path, caplog):
    # a 48x384 strip at --max-size 96 is 12x96: below --min-size on its short side, it trained one scale silently
    image, label = np.array(Image.open(files["image"])), np.array(Image.open(files["label"]))
    strip = tmp_path / "strip.png"
    Image.fromarray(np.tile(image[100:148], (1, 2))[:, :384]).save(strip)  # two side by side: 48 x 384
    strip_label = tmp_path / "strip_label.png"
    Image.fromarray(np.tile(label[100:148], (1, 2))[:, :384]).save(strip_label)
    argv = ["train", "--image", str(strip), "--label", str(strip_label), "--max-size", "96", "--iters", "2",
            "--base-channels", "8", "--quiet", "--out", str(tmp_path / "strip.pt")]
    with caplog.at_level(logging.WARNING, logger="monai_singanseg"):
        assert main(argv) == 0
    warned = [r.getMessage() for r in caplog.records if "1 scale" in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in caplog.records]
    # MONAI's axis order (a PNG's width first), as in the other messages
    assert "strip.png: 384x48 at --max-size 96 is 96x12" in warned[0] and "--min-size 25" in warned[0]
    assert "raise --max-size to 204 or more" in warned[0]  # where the short side passes 25
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="monai_singanseg"):  # a pyramid of several scales: no word
        assert main(train(str(files["image"]), str(files["label"]), "--out", str(tmp_path / "nuclei.pt"))) == 0
    assert not [r for r in caplog.records if "1 scale" in r.getMessage()]


def test_a_class_count_above_the_masks_classes_is_warned_about(tmp_path, caplog):
    # --num-classes 5 with a mask of classes 0..2 trained 5 mask channels, 2 always empty, without a word
    from monai_singanseg.io import load_training_pair

    label = np.array(Image.open(NUCLEI_LABEL)) > 0
    classes = np.where(label, 1, 0).astype(np.uint8)
    classes[:, 128:][label[:, 128:]] = 2  # nuclei of the right half are class 2
    path = tmp_path / "classes.png"
    Image.fromarray(classes).save(path)
    with caplog.at_level(logging.WARNING, logger="monai_singanseg"):
        pair = load_training_pair([NUCLEI_IMAGE], path, num_classes=5)
    assert pair.labels.channels == 5
    lines = [r.getMessage() for r in caplog.records if r.name == "monai_singanseg.io"]
    assert len(lines) == 1 and "classes.png: class(es) 3, 4 of the 5 asked for" in lines[0], lines
    assert "holds 0, 1, 2" in lines[0] and "2 of its mask channels are trained empty" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="monai_singanseg"):
        load_training_pair([NUCLEI_IMAGE], path, num_classes=3)
    assert not [r for r in caplog.records if r.name == "monai_singanseg.io"]


def test_sample_takes_quiet_like_the_other_commands(files, tmp_path):
    assert main(["sample", str(files["model"]), "--num", "1", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert (tmp_path / "s" / "sample_0000_image.png").is_file()


def test_resuming_a_checkpoint_whose_critic_belongs_to_another_scale_says_damaged(files, tmp_path, capsys):
    # the next scale's load_state_dict failed with a size-mismatch traceback after the resumed run had started
    out = tmp_path / "model.pt"
    shutil.copy(files["other_critic.pt"], out)
    before = out.read_bytes()
    assert main(train(str(files["image"]), str(files["label"]), "--resume", "--out", str(out))) == 2
    err = capsys.readouterr().err
    # the tiny model's options differ from these: those lines come first, as in any resumed run
    lines = [line for line in err.strip().splitlines() if "resuming with the checkpoint's options" not in line
             and "nvImageCodec" not in line]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"singanseg: error: {out}: damaged monai-singanseg checkpoint"), lines[0]
    assert "critic" in lines[0] and "another scale" in lines[0], lines[0]
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_full_disk_while_training_says_the_last_checkpoint_survives(files, tmp_path, capsys, monkeypatch):
    # torch.save on a full disk raised "[enforce fail at inline_container.cc] ... file write failed" as a traceback
    from monai_singanseg.checkpoint import load_model

    real_save, saves = torch.save, []

    def save_until_full(payload, target):
        saves.append(target)
        if len(saves) > 1:  # the first scale's checkpoint fits, the second does not
            raise RuntimeError("[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing file "
                               "data/3: file write failed")
        real_save(payload, target)

    monkeypatch.setattr(torch, "save", save_until_full)
    out = tmp_path / "model.pt"
    assert main(train(str(files["image"]), str(files["label"]), "--out", str(out))) == 2
    line = _one_line(capsys)
    assert f"{out}: cannot write the checkpoint, the disk is full (" in line, line
    assert "the last good checkpoint" in line and "intact" in line and "--resume" in line, line
    monkeypatch.undo()
    model, state = load_model(out)  # the first scale's checkpoint, readable, and nothing else beside it
    assert model.trained_scales == 1 and not state.complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]

    def full(payload, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    fresh = tmp_path / "fresh" / "model.pt"
    assert main(train(str(files["image"]), str(files["label"]), "--out", str(fresh))) == 2
    line = _one_line(capsys)
    assert "the disk is full (No space left on device)" in line and "nothing was saved yet" in line, line
    assert not (tmp_path / "fresh").exists()


def test_a_full_disk_while_sampling_removes_the_pairs_so_a_rerun_works(files, tmp_path, capsys, monkeypatch):
    # the pairs written before the disk filled up made the rerun refuse: "already exists; overwrite ..."
    from monai_singanseg import generation

    real_write, writes = generation.atomic_write_together, []

    def write_until_full(pairs):
        writes.append(pairs)
        if len(writes) > 2:
            raise OSError(28, "No space left on device")
        real_write(pairs)

    monkeypatch.setattr(generation, "atomic_write_together", write_until_full)
    out = tmp_path / "samples"
    argv = ["sample", str(files["model"]), "--num", "4", "--out", str(out), "--quiet"]
    assert main(argv) == 2
    line = _one_line(capsys)
    assert f"{out}: the disk is full (No space left on device)" in line and "run again" in line, line
    assert len(writes) == 3 and not out.exists()  # two pairs were written, then removed with the folder made
    monkeypatch.undo()
    assert main(argv) == 0  # the rerun, without --overwrite
    assert len(list(out.glob("sample_*_label.png"))) == 4


def test_train_many_into_a_read_only_place_is_one_line(files, tmp_path, capsys, monkeypatch):
    # a PermissionError traceback from making --out. Tests run as root, where chmod stops no write: the read-only
    # place is simulated where the folder is made
    locked = tmp_path / "read_only"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if locked in (self, *self.parents):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [{"image": str(files["image"]), "label": str(files["label"])}]}))
    out = locked / "models"
    assert main(["train-many", str(datalist), "--out", str(out), *SMALL]) == 2
    line = _one_line(capsys)
    assert f"{out}: cannot write there (Permission denied)" in line, line
