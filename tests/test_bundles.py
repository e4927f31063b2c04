"""Bundles run with `python -m monai.bundle run`, from the repository root, with command-line overrides."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from monai_singanseg import SinGANSeg

ROOT = Path(__file__).resolve().parents[1]


def _bundle(config: str, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", f"bundles/singanseg_generation/configs/{config}",
           *overrides]
    return subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)


def test_generation_bundle_trains_then_samples_a_shareable_datalist(tmp_path):
    out = tmp_path / "models"
    done = _bundle("train.json", "--iters", "2", "--max_size", "32", "--output_dir", str(out))
    assert done.returncode == 0, done.stdout[-3000:]
    model = SinGANSeg.load(out / "nuclei_image.pt")
    assert model.shapes[-1] == (32, 32) and model.config.optim.iters_per_scale == 2
    assert json.loads((out / "train_many_summary.json").read_text())["done"] == 1

    synthetic = tmp_path / "synthetic"
    done = _bundle("inference.json", "--models_dir", str(out), "--output_dir", str(synthetic), "--num_samples", "3",
                   "--start_scale", "1")
    assert done.returncode == 0, done.stdout[-3000:]
    from monai.data import load_decathlon_datalist

    items = load_decathlon_datalist(str(synthetic / "synthetic_datalist.json"), data_list_key="training")
    assert len(items) == 3
    assert all(Path(i["image"]).is_file() and Path(i["label"]).is_file() for i in items)
    assert (synthetic / "nuclei_image" / "preview.png").is_file()
    again = _bundle("inference.json", "--models_dir", str(out), "--output_dir", str(synthetic))
    assert again.returncode != 0 and "already exists" in again.stdout  # nothing overwritten by default
