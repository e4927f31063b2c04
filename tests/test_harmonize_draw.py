"""The drawn parameters of SinGANSegHarmonize: one object per call, replayable, drawn in the first version's order."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL
from monai.transforms import LoadImaged

from monai_singanseg import SinGANSegHarmonize, SinGANSegHarmonized
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.transforms import HarmonizeDraw


@pytest.fixture()
def sample():
    """The real nuclei image and label, a centre region for the lesion, and two donors cut from the same image."""
    data = LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True)(
        {"image": str(NUCLEI_IMAGE), "label": str(NUCLEI_LABEL)})
    image, label = data["image"], data["label"]
    region = torch.zeros(label.shape)
    region[:, 60:200, 60:200] = 1
    donors = [(image.as_tensor(), label.as_tensor()), (image.as_tensor() * 0.5, (label.as_tensor() > 0).float())]
    return image, label, region, donors


def test_last_draw_replays_the_call(nuclei_model, sample):
    """A call's parameters are one frozen object; applying it again to the same input makes the same lesion."""
    model, _ = nuclei_model
    image, label, region, donors = sample
    harmonizer = SinGANSegHarmonize([model], donors, prob=1.0, at_scale=(1, 2))
    out, lesion = harmonizer.set_random_state(4)(image, label, region=region)
    draw = harmonizer.last_draw
    assert isinstance(draw, HarmonizeDraw) and draw.apply and 1 <= draw.at_scale <= 2 and draw.donor in (0, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        draw.seed = 0
    again, again_lesion = harmonizer.apply(image, label, draw, region=region)
    assert torch.equal(again, out) and torch.equal(again_lesion, lesion)
    other = SinGANSegHarmonize([model], donors, prob=1.0, at_scale=(1, 2))
    assert torch.equal(other.apply(image, label, draw, region=region)[0], out)  # no random state read
    assert harmonizer.apply(image, label, dataclasses.replace(draw, apply=False), region=region)[0] is image
    reseeded = harmonizer.apply(image, label, dataclasses.replace(draw, seed=draw.seed + 1), region=region)[0]
    assert not torch.equal(reseeded, out)  # the seed drives the model's noise


def test_draws_follow_the_random_state_in_the_first_versions_order(nuclei_model, sample):
    """The coin, then scale, donor and seed: the sequence recorded before the draw became one object."""
    model, _ = nuclei_model
    harmonizer = SinGANSegHarmonize([model], sample[3], prob=0.5, at_scale=(0, 3))
    harmonizer.set_random_state(11)
    first = [harmonizer.randomize() or harmonizer.last_draw for _ in range(6)]
    assert [dataclasses.astuple(d) for d in first] == [
        (True, 0, 1, 1989508433), (True, 0, 1, 451723847), (True, 1, 0, 2093245104), (False, 1, 0, 2093245104),
        (True, 1, 0, 3065584162), (True, 2, 1, 3681449461)]
    harmonizer.set_random_state(11)
    assert [harmonizer.randomize() or harmonizer.last_draw for _ in range(6)] == first


def test_the_dictionary_wrapper_applies_the_array_transforms_draw(nuclei_model, sample, tmp_path):
    import shutil

    _, path = nuclei_model
    shutil.copy(path, tmp_path / "nuclei_image.pt")
    image, _, region, donors = sample
    harmonize = SinGANSegHarmonized("image", "lesion", tmp_path, donors, prob=1.0, at_scale=(1, 2),
                                    region_key="brain").set_random_state(2)
    out = harmonize({"image": image, "brain": region})
    again, again_lesion = harmonize.harmonizer.apply(image, None, harmonize.last_draw, region, "nuclei_image")
    assert torch.equal(out["image"], again) and torch.equal(out["lesion"], again_lesion)
    never = SinGANSegHarmonized("image", "lesion", tmp_path, donors, prob=0.0)
    assert never({"image": image})["image"] is image and not never.last_draw.apply


def test_the_model_choice_keeps_its_messages(nuclei_model, sample, tmp_path):
    """One model serves any name; a bank of several needs the image's own, and says so as before."""
    import shutil

    model, path = nuclei_model
    image, _, _, donors = sample
    one = SinGANSegHarmonize([model], donors, prob=1.0, at_scale=1)
    assert one.select_model("anything") is model and one.select_model(None) is model
    for name in ("first", "second"):
        shutil.copy(path, tmp_path / f"{name}.pt")
    bank = SinGANSegHarmonize(tmp_path, donors, prob=1.0, at_scale=1)
    assert isinstance(bank.select_model("second"), type(model))
    for name in ("other", None):
        with pytest.raises(SinGANSegInputError, match=f"no SinGAN-Seg model for sample {name!r}: train one on this "
                                                      "image first."):
            bank(image, name=name)
