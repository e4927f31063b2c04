"""Shared fixtures: the real nuclei sample shipped in data/, one tiny model trained on it once per session, and the
real MNI152 template (T1, grey- and white-matter maps) shipped inside the nilearn wheel."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_singanseg import OptimConfig, PyramidConfig, SinGANSegConfig, SinGANSegTrainer, load_training_pair
from monai_singanseg.diffusion import DiffusionConfig

DATA = Path(__file__).resolve().parents[1] / "data" / "nuclei"
NUCLEI_IMAGE = DATA / "nuclei_image.png"
NUCLEI_LABEL = DATA / "nuclei_label.png"
TILES = DATA / "tiles"

MNI = Path(importlib.util.find_spec("nilearn").submodule_search_locations[0]) / "datasets" / "data"
T1 = MNI / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
GM = MNI / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"
WM = MNI / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"

# two threads on CI's two cores; fewer on a machine busy with benchmarks (a contended OpenMP team crawls)
torch.set_num_threads(int(os.environ.get("SINGANSEG_TEST_THREADS", "2")))
# the command line's own choice on a busy machine (monai_singanseg.threads) stays out of the tests: it follows the
# machine's load, and tests check what commands print; tests of that choice set the load themselves
os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))


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


def nuclei_tile(letter: str):
    """The real 256x256 nuclei tile ``letter`` (``a``-``d``, data/nuclei/tiles, cut from the stardist sample)."""
    return load_training_pair([TILES / f"nuclei_tile_{letter}_image.png"], TILES / f"nuclei_tile_{letter}_label.png")


def second_plateau(losses: torch.Tensor, tolerance: float) -> int:
    """The iteration at which a window-1 plateau rule ends a scale: the second time the loss fell by less than
    ``tolerance`` (relative) from one iteration to the next (float32 arithmetic, as the trainer's)."""
    fell = (losses[:-1] - losses[1:]) / losses[:-1].clamp_min(1e-12)
    plateaus = torch.nonzero(fell < tolerance).flatten()
    return int(plateaus[1]) + 2 if len(plateaus) > 1 else len(losses)


def tiny_diffusion_config(**fields) -> DiffusionConfig:
    """A diffusion UNet of two levels (16, 32 feature maps) on 32x32 crops: trains 10 steps in about a second."""
    base = {"image_channels": 1, "mask_channels": 1, "image_size": 32, "unet_channels": (16, 32),
            "attention_levels": (False, False), "num_res_blocks": 1, "norm_num_groups": 8, "num_head_channels": 16,
            "num_train_timesteps": 100, "train_steps": 10, "batch_size": 4, "checkpoint_every": 5, "seed": 3}
    return DiffusionConfig(**{**base, **fields}).validate()


def mni_crop(path: Path, box: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(array, affine)`` of a crop of an MNI152 map (1 mm, RAS; values 0-255):
    the affine's origin moved to the box."""
    image = nib.load(path)
    affine = image.affine.copy()
    affine[:3, 3] = image.affine[:3, :3] @ np.array([b.start for b in box]) + image.affine[:3, 3]
    return np.asarray(image.dataobj[box], dtype=np.float32), affine


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
