"""MRI paths on the real MNI152 template shipped inside the nilearn wheel: slices, contrasts, affines, 3D."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import GM, T1, WM, mni_crop
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd

from monai_singanseg import SinGANSeg, SinGANSegAugmentd, SinGANSegInputError, load_training_pair
from monai_singanseg.cli import main

TINY = ["--min-size", "20", "--iters", "2", "--base-channels", "8", "--quiet"]


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    """A 48x56x40 crop of the template (T1, grey-matter map) and a white-matter mask, with the crop's affine."""
    folder = tmp_path_factory.mktemp("mni")
    box = (slice(75, 123), slice(90, 146), slice(70, 110))
    for name, path in (("t1", T1), ("gm", GM)):
        array, affine = mni_crop(path, box)
        nib.save(nib.Nifti1Image(array, affine), folder / f"{name}.nii.gz")
    wm = (mni_crop(WM, box)[0] > 128).astype(np.uint8)
    nib.save(nib.Nifti1Image(wm, affine), folder / "wm.nii.gz")
    return folder, affine


def test_largest_mask_slice_and_its_affine(volumes):
    folder, affine = volumes
    pair = load_training_pair([folder / "t1.nii.gz"], folder / "wm.nii.gz", slice_axis=2)
    wm = nib.load(folder / "wm.nii.gz").get_fdata()
    best = int(wm.sum(axis=(0, 1)).argmax())
    assert tuple(pair.real.shape) == (2, 48, 56)
    assert np.allclose(pair.meta["affine"][:3, 3], affine[:3, :3] @ [0, 0, best] + affine[:3, 3])


def test_contrasts_must_be_coregistered(volumes, tmp_path):
    folder, affine = volumes
    shifted = affine.copy()
    shifted[0, 3] += 5
    img = nib.load(folder / "gm.nii.gz")
    nib.save(nib.Nifti1Image(img.get_fdata().astype(np.float32), shifted), tmp_path / "gm_shifted.nii.gz")
    with pytest.raises(SinGANSegInputError, match=r"gm_shifted\.nii\.gz: affine differs"):
        load_training_pair([folder / "t1.nii.gz", tmp_path / "gm_shifted.nii.gz"], folder / "wm.nii.gz")


def test_two_contrasts_2d_slice_sample_one_file_per_contrast_with_affine(volumes, tmp_path):
    folder, _ = volumes
    model_path = tmp_path / "m.pt"
    assert main(["train", "--image", str(folder / "t1.nii.gz"), str(folder / "gm.nii.gz"), "--label",
                 str(folder / "wm.nii.gz"), "--out", str(model_path), "--slice-axis", "2", "--max-size", "28"]
                + TINY) == 0
    out = tmp_path / "samples"
    assert main(["sample", str(model_path), "--num", "2", "--out", str(out)]) == 0
    t1 = nib.load(out / "sample_0001_t1.nii.gz")
    gm = nib.load(out / "sample_0001_gm.nii.gz")
    label = nib.load(out / "sample_0001_label.nii.gz")
    assert t1.shape == gm.shape == label.shape == (24, 28)
    assert np.allclose(t1.header.get_zooms()[:2], (2.0, 2.0))  # 48x56 source voxels of 1 mm, sampled at 24x28
    assert set(np.unique(label.get_fdata())) <= {0.0, 1.0}
    assert 0 <= t1.get_fdata().min() and t1.get_fdata().max() <= 255


def train_3d(folder, model_path, max_size: int) -> None:
    """A tiny 3D model of the T1 crop and its white-matter mask, trained through the command line."""
    assert main(["train", "--image", str(folder / "t1.nii.gz"), "--label", str(folder / "wm.nii.gz"), "--out",
                 str(model_path), "--max-size", str(max_size), "--min-size", "12", "--iters", "2", "--base-channels",
                 "8", "--quiet"]) == 0


def test_3d_train_and_sample_on_a_real_volume_crop(volumes, tmp_path):
    folder, _ = volumes
    model_path = tmp_path / "m3d.pt"
    train_3d(folder, model_path, 32)
    model = SinGANSeg.load(model_path)
    finest = tuple(round(s * 32 / 56) for s in (48, 56, 40))
    assert model.config.spatial_dims == 3 and model.shapes[-1] == finest and model.num_scales >= 3
    image, label = model.sample(2, seed=0)
    assert image.shape == (2, 1, *finest) and set(label.unique().tolist()) <= {0.0, 1.0}
    out = tmp_path / "s3d"
    assert main(["sample", str(model_path), "--num", "1", "--out", str(out), "--start-scale", "1"]) == 0
    written = nib.load(out / "sample_0000_image.nii.gz")
    spacing = [src / dst for src, dst in zip((48, 56, 40), finest)]
    assert written.shape == finest and np.allclose(written.header.get_zooms(), spacing, atol=1e-3)


def test_ct_window_keeps_outputs_in_window_units(volumes):
    folder, _ = volumes
    pair = load_training_pair([folder / "t1.nii.gz"], folder / "wm.nii.gz", window=(20, 200))
    assert pair.intensity.lower == [20.0] and pair.intensity.upper == [200.0]
    restored = pair.intensity.denormalize(pair.real[:1])
    original = torch.as_tensor(nib.load(folder / "t1.nii.gz").get_fdata(), dtype=torch.float32)[None]
    inside = (original > 20) & (original < 200)
    assert torch.allclose(restored[inside], original[inside], atol=1e-3)


def test_the_synthetic_pair_follows_the_incoming_orientation(volumes, tmp_path):
    # a chain that reorients (Orientationd) before the transform must get the model's anatomy turned the same way, not
    # the model's voxel order under the incoming affine (a mirrored or transposed brain)
    folder, _ = volumes
    model_path = tmp_path / "t1.pt"
    train_3d(folder, model_path, 24)
    keys = ["t1", "wm"]
    ras = Compose([LoadImaged(keys, image_only=True), EnsureChannelFirstd(keys)])(
        {"t1": str(folder / "t1.nii.gz"), "wm": str(folder / "wm.nii.gz")})

    def augmented(data: dict) -> dict:
        return SinGANSegAugmentd(["t1"], "wm", model_path, prob=1.0).set_random_state(0)(dict(data))

    expected = augmented(ras)
    assert not torch.equal(expected["t1"].as_tensor(), ras["t1"].as_tensor())
    for codes in ("LPS", "SAR"):
        turned = Orientationd(keys, axcodes=codes)(dict(ras))
        out = augmented(turned)
        assert out["t1"].shape == turned["t1"].shape and torch.equal(out["t1"].affine, turned["t1"].affine)
        back = Orientationd(keys, axcodes="RAS")(out)
        for key in keys:
            assert torch.equal(back[key].as_tensor(), expected[key].as_tensor()), (codes, key)
