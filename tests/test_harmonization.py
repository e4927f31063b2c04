"""Harmonization and editing on the real nuclei image: a nucleus cut from one place is pasted at another."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL
from PIL import Image

from monai_singanseg import SinGANSegInputError, read_image
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
