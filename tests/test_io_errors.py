"""Bad input ends with one clear error naming the file and the problem, and nothing is written."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL
from PIL import Image

from monai_singanseg import SinGANSegInputError, load_training_pair, prepare_training_pair, read_image
from monai_singanseg.checkpoint import load_model


def _png(path, array):
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def test_real_pair_loads_as_two_channels_in_range(nuclei_pair):
    assert tuple(nuclei_pair.real.shape) == (2, 256, 256)
    assert nuclei_pair.real.min() == -1 and nuclei_pair.real.max() == 1
    mask = nuclei_pair.real[1]
    assert set(mask.unique().tolist()) == {-1.0, 1.0}
    assert 0.1 < (mask > 0).float().mean() < 0.4  # nuclei cover about a fifth of the crop


def test_size_mismatch_names_label(tmp_path):
    label = _png(tmp_path / "small.png", np.array(Image.open(NUCLEI_LABEL))[:100, :100])
    with pytest.raises(SinGANSegInputError, match=r"small\.png: size .* does not match"):
        load_training_pair([NUCLEI_IMAGE], label)


def test_non_binary_mask(tmp_path):
    with pytest.raises(SinGANSegInputError, match=r"nuclei_image\.png: mask is not binary"):
        load_training_pair([NUCLEI_IMAGE], NUCLEI_IMAGE)


def test_empty_mask(tmp_path):
    label = _png(tmp_path / "empty.png", np.zeros((256, 256)))
    with pytest.raises(SinGANSegInputError, match=r"empty\.png: empty mask"):
        load_training_pair([NUCLEI_IMAGE], label)


def test_class_index_mask_with_num_classes(tmp_path):
    label = np.zeros((256, 256))
    label[:50, :50], label[100:150, 100:150] = 1, 2
    path = _png(tmp_path / "classes.png", label)
    with pytest.raises(SinGANSegInputError, match="not binary"):
        load_training_pair([NUCLEI_IMAGE], path)
    pair = load_training_pair([NUCLEI_IMAGE], path, num_classes=3)
    assert pair.labels.one_hot and pair.real.shape[0] == 1 + 3


def test_one_hot_mask_accepted_and_broken_one_hot_refused():
    image = torch.rand(1, 8, 8)
    one_hot = torch.zeros(3, 8, 8)
    one_hot[0, :4], one_hot[1, 4:6], one_hot[2, 6:] = 1, 1, 1
    assert prepare_training_pair(image, one_hot).labels.channels == 3
    one_hot[0, 0, 0] = 0
    with pytest.raises(SinGANSegInputError, match="one-hot"):
        prepare_training_pair(image, one_hot, label_name="seg.nii.gz")


def test_nan_in_image():
    image = torch.rand(1, 8, 8)
    image[0, 1, 1] = float("nan")
    with pytest.raises(SinGANSegInputError, match=r"scan\.nii\.gz: contains NaN"):
        prepare_training_pair(image, torch.ones(1, 8, 8).tril(), image_name="scan.nii.gz")


def test_unreadable_and_missing_files(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(SinGANSegInputError, match=r"broken\.png: unreadable image"):
        read_image(broken)
    with pytest.raises(SinGANSegInputError, match=r"nothere\.png: file not found"):
        read_image(tmp_path / "nothere.png")
    fake_dicom = tmp_path / "slice.dcm"
    fake_dicom.write_bytes(b"\0" * 128 + b"DICM" + b"garbage" * 10)
    with pytest.raises(SinGANSegInputError, match=r"slice\.dcm: unreadable image"):
        read_image(fake_dicom)


def test_stacked_images_must_match(tmp_path):
    other = _png(tmp_path / "other.png", np.zeros((128, 128)))
    with pytest.raises(SinGANSegInputError, match=r"other\.png: size .* co-registered"):
        load_training_pair([NUCLEI_IMAGE, other], NUCLEI_LABEL)


def test_foreign_checkpoints(tmp_path):
    pickled = tmp_path / "pickled.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a whole pickled module, as the reference code saves
    with pytest.raises(SinGANSegInputError, match=r"pickled\.pt: not a monai-singanseg checkpoint"):
        load_model(pickled)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(SinGANSegInputError, match=r"other\.pt: not a monai-singanseg checkpoint"):
        load_model(other)
    newer = tmp_path / "newer.pt"
    torch.save({"format": "monai-singanseg", "format_version": 99}, newer)
    with pytest.raises(SinGANSegInputError, match="version 99"):
        load_model(newer)


def test_a_checkpoint_missing_a_generator_is_damaged(nuclei_model, tmp_path):
    from monai_singanseg import SinGANSeg

    _, path = nuclei_model
    payload = torch.load(path, weights_only=True)
    payload["generators"] = payload["generators"][:-1]
    broken = tmp_path / "broken.pt"
    torch.save(payload, broken)
    with pytest.raises(SinGANSegInputError, match=r"broken\.pt: damaged .*generators"):
        SinGANSeg.load(broken)


def test_outputs_follow_the_umask_not_the_temporary_files_private_mode(nuclei_model, tmp_path):
    model, _ = nuclei_model
    old = os.umask(0o022)
    try:
        model.save(tmp_path / "shared.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "shared.pt").st_mode) == 0o644


def test_a_named_pipe_is_refused_instead_of_waiting_for_ever(tmp_path):
    pipe = tmp_path / "image.png"
    os.mkfifo(pipe)  # nobody writes it: a reader would block
    with pytest.raises(SinGANSegInputError, match=r"image.png: not a regular file or folder \(a named pipe"):
        read_image(pipe)


def test_train_stopped_before_its_first_scale_says_nothing_was_saved(tmp_path, monkeypatch, capsys):
    from monai_singanseg.cli import main
    from monai_singanseg.training import SinGANSegTrainer

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(SinGANSegTrainer, "fit", interrupted)
    out = tmp_path / "model.pt"
    argv = ["train", "--image", str(NUCLEI_IMAGE), "--label", str(NUCLEI_LABEL), "--out", str(out), "--quiet"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "before its first scale was saved; nothing was written" in err and "--resume" not in err
    assert not out.exists()
