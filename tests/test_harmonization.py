"""Harmonization and editing on real images: a nucleus of the real nuclei image pasted at another place (2D), and a
ball of real tissue from the MNI152 T1 template pasted into another block of it (3D, a simulated lesion)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL, T1, WM, mni_crop, tiny_config
from PIL import Image

from monai_singanseg import SinGANSegInputError, SinGANSegTrainer, load_training_pair, read_image
from monai_singanseg.cli import main
from monai_singanseg.harmonization import harmonize, paste_lesion


@pytest.fixture(scope="module")
def real():
    image, label = read_image(NUCLEI_IMAGE).as_tensor(), read_image(NUCLEI_LABEL).as_tensor()
    donor_mask = torch.zeros_like(label)
    donor_mask[:, 100:140, 100:140] = label[:, 100:140, 100:140]
    return image, donor_mask


def test_paste_puts_the_lesion_where_asked(real):
    image, donor_mask = real
    composite, pasted = paste_lesion(image, image, donor_mask, location=(60, 200))
    assert pasted.sum() == (donor_mask > 0).sum()
    ys, xs = torch.nonzero(pasted[0], as_tuple=True)
    assert abs(ys.float().mean() - 60) < 20 and abs(xs.float().mean() - 200) < 20
    assert torch.equal(composite[pasted.bool()], composite[pasted.bool()])
    assert torch.equal(composite[:, :30, :30], image[:, :30, :30])


def test_region_and_errors(real):
    image, donor_mask = real
    region = torch.zeros_like(donor_mask)
    region[:, 200:210, 30:40] = 1
    _, pasted = paste_lesion(image, image, donor_mask, region=region, rng=np.random.RandomState(0))
    ys, xs = torch.nonzero(pasted[0], as_tuple=True)
    assert 170 < ys.float().mean() < 240 and 0 < xs.float().mean() < 70
    with pytest.raises(SinGANSegInputError, match="empty mask"):
        paste_lesion(image, image, torch.zeros_like(donor_mask))
    with pytest.raises(SinGANSegInputError, match="does not fit"):
        paste_lesion(image, image, donor_mask, location=(2, 2))


@pytest.mark.parametrize("mode", ["harmonize", "edit"])
def test_changes_near_the_lesion_and_not_far_away(nuclei_model, real, mode):
    model, _ = nuclei_model
    image, donor_mask = real
    out, label, composite = harmonize(model, image, image, donor_mask, at_scale=1, location=(60, 200), mode=mode)
    assert out.shape == image.shape and set(label.unique().tolist()) == {0.0, 255.0}
    near = (out - composite)[:, 45:75, 185:215].abs().mean()
    assert near > 0.5
    far = (out - image)[:, 150:, :100].abs().max()
    assert far < 1e-3


def test_edit_blends_wider_than_harmonize(nuclei_model, real):
    model, _ = nuclei_model
    image, donor_mask = real
    changed = {}
    for mode in ("harmonize", "edit"):
        out, _, _ = harmonize(model, image, image, donor_mask, at_scale=1, location=(60, 200), mode=mode)
        changed[mode] = int(((out - image).abs() > 0.5).sum())
    assert changed["edit"] > changed["harmonize"]


def test_cli_writes_the_three_files(nuclei_model, tmp_path, real):
    _, path = nuclei_model
    _, donor_mask = real
    donor_label = tmp_path / "donor_label.png"
    Image.fromarray(donor_mask[0].numpy().T.astype(np.uint8)).save(donor_label)
    out = tmp_path / "h"
    args = ["harmonize", str(path), "--image", str(NUCLEI_IMAGE), "--donor-image", str(NUCLEI_IMAGE),
            "--donor-label", str(donor_label), "--at-scale", "1", "--out", str(out), "--location", "60", "200"]
    assert main(args) == 0
    label = np.array(Image.open(out / "harmonized_label.png"))
    assert label.shape == (256, 256) and set(np.unique(label)) == {0, 255}
    assert (out / "harmonized_image.png").exists() and (out / "composite_image.png").exists()
    assert main(args) == 2  # nothing overwritten without --overwrite


def test_harmonization_dictionary_transform(nuclei_model, real, tmp_path):
    import shutil

    from monai.transforms import LoadImaged

    from monai_singanseg.transforms import SinGANSegHarmonized

    _, path = nuclei_model
    shutil.copy(path, tmp_path / "nuclei_image.pt")
    image, donor_mask = real
    region = torch.zeros_like(donor_mask)
    region[:, 60:200, 60:200] = 1
    data = LoadImaged("image", ensure_channel_first=True, image_only=True)({"image": str(NUCLEI_IMAGE)})
    data["brain"] = region
    transform = SinGANSegHarmonized("image", "lesion", tmp_path, donors=[(image, donor_mask)], prob=1.0,
                                    at_scale=(1, 2), region_key="brain")
    first = transform.set_random_state(3)(data)
    again = transform.set_random_state(3)(data)
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["lesion"], again["lesion"])
    assert first["image"].shape == data["image"].shape and torch.equal(first["image"].affine, data["image"].affine)
    assert first["lesion"].sum() / 255 == (donor_mask > 0).sum()
    ys, xs = torch.nonzero(first["lesion"][0], as_tuple=True)
    assert 40 < ys.float().mean() < 220 and 40 < xs.float().mean() < 220


# ---- 3D: a simulated lesion in a real MRI volume ------------------------------------------------------------------


@pytest.fixture(scope="module")
def mni_3d(tmp_path_factory):
    """A tiny 3D model of a 24x24x20 block of the real MNI152 T1 (+ white-matter mask), and a simulated lesion.

    The lesion is not a real tumour: it is a ball of radius 3 voxels of real tissue (lateral ventricle, caudate and
    white matter) cut from another place of the same template, written as a donor image + mask.
    """
    folder = tmp_path_factory.mktemp("mni_3d")
    box = (slice(86, 110), slice(120, 144), slice(92, 112))
    target, affine = mni_crop(T1, box)
    white_matter = (mni_crop(WM, box)[0] > 128).astype(np.uint8)
    donor, _ = mni_crop(T1, (slice(100, 124), slice(130, 154), slice(80, 100)))
    ball = (np.indices(donor.shape) - np.array([6, 6, 8])[:, None, None, None]) ** 2
    donor_mask = (ball.sum(0) <= 9).astype(np.uint8)
    for name, array in (("t1", target), ("wm", white_matter), ("donor", donor), ("donor_mask", donor_mask)):
        nib.save(nib.Nifti1Image(array, affine), folder / f"{name}.nii.gz")
    pair = load_training_pair([folder / "t1.nii.gz"], folder / "wm.nii.gz")
    config = tiny_config(spatial_dims=3)
    config.pyramid.min_size, config.pyramid.max_size = 12, 16
    model = SinGANSegTrainer(config.validate(), progress=False).fit(pair.real, pair.intensity, pair.labels,
                                                                    folder / "t1.pt", source=pair.source)
    return model, folder, affine


def test_3d_harmonize_changes_the_lesion_and_keeps_far_voxels(mni_3d):
    model, folder, _ = mni_3d
    target, donor, donor_mask = (read_image(folder / f"{n}.nii.gz").as_tensor() for n in ("t1", "donor", "donor_mask"))
    assert model.config.spatial_dims == 3 and model.num_scales >= 2
    out, label, composite = harmonize(model, target, donor, donor_mask, at_scale=1, location=(7, 7, 7))
    assert out.shape == composite.shape == target.shape == (1, 24, 24, 20) and label.shape == (1, 24, 24, 20)
    lesion = label[0] > 0
    assert int(lesion.sum()) == int((donor_mask > 0).sum()) == 123  # a ball of radius 3
    assert torch.equal(composite[0][lesion], donor[0][donor_mask[0] > 0])  # the paste copies the donor's voxels
    assert (out - composite)[0][lesion].abs().mean() > 1.0  # redrawn by the model (T1 units 0-255)
    distance = (torch.stack(torch.meshgrid(*[torch.arange(s) for s in (24, 24, 20)], indexing="ij")) - 7).float()
    far = distance.norm(dim=0) > 3 + 10  # beyond the lesion's 2-voxel dilation and the blur
    assert far.sum() > 1000 and (out - target)[0][far].abs().max() < 1e-3


def test_3d_edit_reworks_a_wider_region_than_harmonize(mni_3d):
    model, folder, _ = mni_3d
    target, donor, donor_mask = (read_image(folder / f"{n}.nii.gz").as_tensor() for n in ("t1", "donor", "donor_mask"))
    changed = {}
    for mode in ("harmonize", "edit"):
        out, _, _ = harmonize(model, target, donor, donor_mask, at_scale=1, location=(12, 12, 10), mode=mode)
        changed[mode] = int(((out - target).abs() > 0.5).sum())
    assert changed["edit"] > 2 * changed["harmonize"]


def test_3d_cli_harmonize_writes_nifti_with_the_target_affine(mni_3d, tmp_path):
    _, folder, affine = mni_3d
    out = tmp_path / "h3d"
    assert main(["harmonize", str(folder / "t1.pt"), "--image", str(folder / "t1.nii.gz"), "--donor-image",
                 str(folder / "donor.nii.gz"), "--donor-label", str(folder / "donor_mask.nii.gz"), "--at-scale", "1",
                 "--out", str(out), "--location", "7", "7", "7"]) == 0
    for name in ("harmonized_image", "harmonized_label", "composite_image"):
        written = nib.load(out / f"{name}.nii.gz")
        assert written.shape == (24, 24, 20) and np.allclose(written.affine, affine)
    assert set(np.unique(nib.load(out / "harmonized_label.nii.gz").get_fdata())) == {0.0, 1.0}


def test_harmonize_refuses_nan_other_dimensions_and_empty_donors_by_file(nuclei_model, tmp_path, real, capsys):
    _, path = nuclei_model
    image, donor_mask = real
    donor_label = tmp_path / "donor_label.png"
    Image.fromarray(donor_mask[0].numpy().T.astype(np.uint8)).save(donor_label)
    nan_target = tmp_path / "nan_target.nii.gz"
    with_nan = image[0].numpy().astype(np.float32).copy()
    with_nan[5, 5] = np.nan
    nib.save(nib.Nifti1Image(with_nan, np.eye(4)), nan_target)
    volume = tmp_path / "volume.nii.gz"
    nib.save(nib.Nifti1Image(np.repeat(image[0].numpy()[..., None], 12, -1).astype(np.float32), np.eye(4)), volume)
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((256, 256), np.uint8)).save(empty)
    base = ["harmonize", str(path), "--donor-image", str(NUCLEI_IMAGE), "--at-scale", "1", "--out",
            str(tmp_path / "h")]
    for target, label, message in ((nan_target, donor_label, "nan_target.nii.gz: holds NaN"),
                                   (volume, donor_label, "volume.nii.gz: a 3D image; the model"),
                                   (NUCLEI_IMAGE, empty, "empty.png: empty mask")):
        assert main(base + ["--image", str(target), "--donor-label", str(label)]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "h").exists()
    with pytest.raises(SinGANSegInputError, match="3D image for a 2D model"):
        harmonize(nuclei_model[0], image.unsqueeze(-1).repeat(1, 1, 1, 12), image, donor_mask, 1)
