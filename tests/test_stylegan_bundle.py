"""The StyleGAN generation bundle runs with `python -m monai.bundle run` from the repository root, like the others."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser, verify_metadata
from monai.data import load_decathlon_datalist
from PIL import Image

from monai_singanseg.generators import checkpoint_kind
from monai_singanseg.stylegan import PairStyleGAN

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "bundles" / "stylegan_generation" / "configs"
SCHEMA = ROOT / "bundles" / "schema" / "meta_schema_20240725.json"
SCHEMA_MD5 = "76e1add273836515d0bbb3bc71962474"  # bundles/schema/README.md
# a model small and short enough for a test: 32 px, narrow layers, two steps
TINY = ["--resolution", "32", "--widths", "[8, 8, 8, 8]", "--latent_dim", "8", "--style_dim", "8", "--train_steps",
        "2", "--batch_size", "2", "--device", "cpu"]


def _bundle(config: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(config.relative_to(ROOT)), *overrides]
    return subprocess.run(cmd, check=False, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)


def test_metadata_is_valid_and_describes_the_default_generator(tmp_path):
    shutil.copy(SCHEMA, tmp_path / SCHEMA.name)  # verify_metadata only downloads when the file is missing
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(tmp_path / SCHEMA.name),
                    hash_val=SCHEMA_MD5)
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser["datalist"] = str(ROOT / parser["datalist"])  # the bundle runs from the repository root; pytest may not
    _, pairs = parser.get_parsed_content("datalist_pairs")
    config = parser.get_parsed_content("make_config")(pairs[0])
    network = json.loads((CONFIGS / "metadata.json").read_text())["network_data_format"]
    latent, pred = network["inputs"]["latent"], network["outputs"]["pred"]
    assert latent["num_channels"] == config.latent_dim and pred["num_channels"] == config.channels
    assert pred["spatial_shape"] == list(config.resolution) and config.design == "joint"
    model = PairStyleGAN(config)
    with torch.no_grad():
        out = model.generators["pair"](torch.randn(2, latent["num_channels"]), None)
    assert out.shape == (2, pred["num_channels"], *pred["spatial_shape"])


def test_bundle_trains_one_model_then_samples_a_shareable_datalist(tmp_path):
    models, synthetic = tmp_path / "models", tmp_path / "synthetic"
    done = _bundle(CONFIGS / "train.json", *TINY, "--output_dir", str(models))
    assert done.returncode == 0, done.stdout[-3000:]
    assert sorted(p.name for p in models.iterdir()) == ["stylegan.pt"]  # one model of both training tiles
    assert checkpoint_kind(models / "stylegan.pt") == "stylegan"
    config = PairStyleGAN.load(models / "stylegan.pt").config
    assert (config.resolution, config.widths, config.train_steps) == ((32, 32), (8, 8, 8, 8), 2)
    again = _bundle(CONFIGS / "train.json", *TINY, "--output_dir", str(models))  # nothing is overwritten
    assert again.returncode != 0 and "already exists" in again.stdout.splitlines()[-1]

    done = _bundle(CONFIGS / "inference.json", "--models_dir", str(models), "--output_dir", str(synthetic),
                   "--num_samples", "3", "--device", "cpu")
    assert done.returncode == 0, done.stdout[-3000:]
    items = load_decathlon_datalist(str(synthetic / "synthetic_datalist.json"), data_list_key="training")
    written = sorted((synthetic / "stylegan").glob("*label*"))
    assert len(written) == 3 and sorted(Path(i["label"]).resolve() for i in items) == written
    for item in items:
        image, label = np.asarray(Image.open(item["image"])), np.asarray(Image.open(item["label"]))
        assert image.shape == label.shape == (32, 32)  # the model's resolution
        assert set(np.unique(label).tolist()) <= {0, 255}  # binary, in the training masks' values
