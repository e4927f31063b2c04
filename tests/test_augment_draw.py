"""The drawn parameters of SinGANSegAugment: one object per call, replayable, and the pool it serves from."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL
from monai.transforms import LoadImaged

from monai_singanseg import SinGANSegAugment, SinGANSegAugmentd
from monai_singanseg.transforms import AugmentDraw, SamplePool


@pytest.fixture()
def sample():
    data = LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True)(
        {"image": str(NUCLEI_IMAGE), "label": str(NUCLEI_LABEL)})
    return data["image"], data["label"]


def numbered_samples(model, monkeypatch):
    """Make ``model.generate`` return sample k of its stream as an image of the constant ``-0.9 + 0.05 k`` and an
    empty mask, so a served image tells which generated sample it is."""
    generate, made = model.generate, []

    def fake(num, **kwargs):
        x = generate(num, **kwargs)
        for i in range(num):
            x[i, : model.config.image_channels] = -0.9 + 0.05 * len(made)
            x[i, model.config.image_channels:] = -1.0
            made.append(len(made))
        return x

    monkeypatch.setattr(model, "generate", fake)


def served_number(model, image) -> int:
    value = float(model.intensity.normalize(torch.as_tensor(image).float()).mean())
    return round((value + 0.9) / 0.05)


def test_the_pool_serves_the_same_pairs_as_before_for_a_seeded_state(nuclei_model, sample, monkeypatch):
    """The sequence the pool served before the transform was split by job (recorded then), per seeded state."""
    model, _ = nuclei_model
    numbered_samples(model, monkeypatch)
    image, label = sample
    augment = SinGANSegAugment([model], prob=0.8, model_choice="random", pool_size=4, pool_refresh=0.5)
    augment.set_random_state(7)
    served = []
    for _ in range(14):
        out, _ = augment(image, label)
        served.append(None if out is image else served_number(model, out))
    assert served == [1, 2, 0, None, 0, None, 3, 5, 4, 6, 2, 7, 1, 8]


def test_last_draw_replays_the_call(nuclei_model, sample):
    """A call's parameters are one frozen object; applying it again to the same input makes the same pair."""
    model, _ = nuclei_model
    image, label = sample
    augment = SinGANSegAugment([model], prob=1.0, start_scale=(0, 2), diversity=(0.2, 0.6), model_choice="random")
    out_image, out_label = augment.set_random_state(4)(image, label)
    draw = augment.last_draw
    assert isinstance(draw, AugmentDraw) and draw.apply and 0 <= draw.start_scale <= 2 and 0.2 <= draw.diversity <= 0.6
    with pytest.raises(dataclasses.FrozenInstanceError):
        draw.seed = 0
    again_image, again_label = augment.apply(image, label, draw)
    assert torch.equal(again_image, out_image) and torch.equal(again_label, out_label)
    other = SinGANSegAugment([model], prob=1.0, start_scale=(0, 2), diversity=(0.2, 0.6), model_choice="random")
    assert torch.equal(other.apply(image, label, draw)[0], out_image)  # another transform, no random state read
    assert augment.apply(image, label, dataclasses.replace(draw, apply=False))[0] is image
    assert not torch.equal(augment.apply(image, label, dataclasses.replace(draw, seed=draw.seed + 1))[0], out_image)


def test_draws_follow_the_random_state_and_a_skipped_call_draws_nothing_more(nuclei_model):
    model, _ = nuclei_model
    augment = SinGANSegAugment([model], prob=0.5, start_scale=(0, 3), diversity=(0.0, 1.0))
    augment.set_random_state(11)
    first = [augment.randomize() or augment.last_draw for _ in range(8)]
    augment.set_random_state(11)
    assert [augment.randomize() or augment.last_draw for _ in range(8)] == first
    skipped = [(a, b) for a, b in zip(first, first[1:]) if not b.apply]
    assert skipped and all(dataclasses.replace(b, apply=a.apply) == a for a, b in skipped)  # the rest kept as it was


def test_the_dictionary_wrapper_applies_the_array_transforms_draw(nuclei_model, sample):
    model, _ = nuclei_model
    image, label = sample
    augment = SinGANSegAugmentd(["image"], "label", [model], prob=1.0).set_random_state(2)
    out = augment({"image": image, "label": label})
    again_image, again_label = augment.augment.apply(image, label, augment.last_draw)
    assert torch.equal(out["image"], again_image) and torch.equal(out["label"], again_label)
    never = SinGANSegAugmentd(["image"], "label", [model], prob=0.0)
    assert never({"image": image, "label": label})["image"] is image and not never.last_draw.apply


def test_a_pool_refills_in_one_batch_and_keeps_its_latest_keys():
    made = []

    def make(num):
        made.append(num)
        return torch.arange(float(num)).reshape(num, 1, 1, 1)

    pool = SamplePool(4, max_keys=2)
    served = [float(pool.serve("a", make, position, drop=True).raw) for position in (0.0, 0.99, 0.0)]
    assert served == [0.0, 3.0, 1.0] and made == [4, 2]  # 4 made; 2 left after two served: topped up with 2
    assert float(pool.serve("a", make, 0.0, drop=False).raw) == float(pool.serve("a", make, 0.0, drop=False).raw)
    pool.serve("b", make, 0.5, drop=True), pool.serve("c", make, 0.5, drop=True)
    assert len(pool) == 2  # "a", least recently served, was dropped
    pool.clear()
    assert len(pool) == 0


def test_every_generator_kind_has_a_sampler():
    from monai_singanseg.generators import GENERATORS
    from monai_singanseg.transforms.sampling import SAMPLERS

    assert set(SAMPLERS) == set(GENERATORS)
