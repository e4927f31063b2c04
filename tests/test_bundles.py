"""Bundles run with `python -m monai.bundle run`, from the repository root, with command-line overrides."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from monai_singanseg import SinGANSeg

ROOT = Path(__file__).resolve().parents[1]


def test_generation_bundle_trains_the_datalist(tmp_path):
    out = tmp_path / "models"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
           "bundles/singanseg_generation/configs/train.json", "--iters", "2", "--max_size", "32",
           "--output_dir", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    model = SinGANSeg.load(out / "nuclei_image.pt")
    assert model.shapes[-1] == (32, 32) and model.config.optim.iters_per_scale == 2
    assert json.loads((out / "train_many_summary.json").read_text())["done"] == 1
