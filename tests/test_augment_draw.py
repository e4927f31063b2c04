"""The drawn parameters of SinGANSegAugment: one object per call, replayable, and the pool it serves from."""

from __future__ import annotations

import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL
from monai.transforms import LoadImaged

from monai_singanseg import SinGANSegAugment


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
