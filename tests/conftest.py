"""Shared fixtures: the real nuclei sample shipped in data/ and one tiny model trained on it once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from monai_singanseg import OptimConfig, PyramidConfig, SinGANSegConfig, SinGANSegTrainer, load_training_pair

DATA = Path(__file__).resolve().parents[1] / "data" / "nuclei"
NUCLEI_IMAGE = DATA / "nuclei_image.png"
NUCLEI_LABEL = DATA / "nuclei_label.png"

torch.set_num_threads(2)


def tiny_config(image_channels: int = 1, mask_channels: int = 1, spatial_dims: int = 2, **optim) -> SinGANSegConfig:
    """A model small enough to train in seconds: 2-3 scales of at most 32 pixels, narrow networks."""
    config = SinGANSegConfig(
        spatial_dims=spatial_dims,
        image_channels=image_channels,
        mask_channels=mask_channels,
        seed=7,
        pyramid=PyramidConfig(min_size=20, max_size=32, scale_factor=0.75),
        optim=OptimConfig(iters_per_scale=optim.pop("iters", 4), **optim),
    )
    config.network.base_channels = 8
    return config.validate()


@pytest.fixture(scope="session")
def nuclei_pair():
    return load_training_pair([NUCLEI_IMAGE], NUCLEI_LABEL)


@pytest.fixture(scope="session")
def nuclei_model(tmp_path_factory, nuclei_pair):
    """(model, checkpoint path) of a tiny model trained on the real nuclei crop."""
    path = tmp_path_factory.mktemp("model") / "nuclei.pt"
    model = SinGANSegTrainer(tiny_config(), progress=False).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, path
    )
    return model, path
