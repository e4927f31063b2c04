"""The few-shot downstream study (benchmarks/downstream) runs end to end at tiny sizes on its real datasets."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

STUDY = Path(__file__).resolve().parents[1] / "benchmarks" / "downstream"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"downstream_{name}", STUDY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"downstream_{name}"] = module
    spec.loader.exec_module(module)
    return module


def _study():
    return _load("study")


def test_ventricle_dataset_is_real_small_and_split_by_slabs(tmp_path):
    sys.path.insert(0, str(STUDY))
    from data import VENTRICLE_SLICES, prepare

    datalist = json.loads(prepare("ventricles", tmp_path).read_text())
    assert {k: len(v) for k, v in datalist.items() if k != "description"} == {"training": 5, "validation": 2, "test": 5}
    slices = {s: [int(Path(i["image"]).stem.split("z")[1]) for i in datalist[s]] for s in VENTRICLE_SLICES}
    assert min(slices["test"]) - max(slices["training"]) >= 8  # no test slice neighbours a training one
    label = np.array(Image.open(tmp_path / "ventricles" / datalist["training"][2]["label"]))
    assert 0.002 < (label > 0).mean() < 0.03  # a small structure, present on every training slice
    image = np.array(Image.open(tmp_path / "ventricles" / datalist["training"][2]["image"]))
    assert image[label > 0].mean() < 0.5 * image[image > 0].mean()  # ventricles are dark (CSF) on T1


def test_study_runs_every_kind_of_condition_and_reports(tmp_path):
    study = _study()
    results = tmp_path / "results"
    study.main(["--datasets", "nuclei", "--n", "1", "--seeds", "0", "--conditions", "standard", "sgs_p50_s0",
                "synthetic_only", "--iterations", "4", "--validate-every", "2", "--batch-size", "2", "--patch", "64",
                "--max-size", "32", "--generator-iters", "2", "--results", str(results), "--workdir", str(tmp_path)])
    records = json.loads((results / "results.json").read_text())
    assert [r["condition"] for r in records] == ["standard", "sgs_p50_s0", "synthetic_only"]
    assert all(0.0 <= r["test_dice"] <= 1.0 and r["n"] == 1 for r in records)
    # one generator, for the one pool image that N = 1, seed 0 trains on (not all eight)
    chosen = study.subset(json.loads((tmp_path / "cache" / "nuclei" / "datalist.json").read_text())["training"], 1, 0)
    models = sorted((tmp_path / "models").glob("nuclei_fast_32_*/*.pt"))
    assert [m.stem for m in models] == [Path(chosen[0]["image"]).stem]
    # the folder and every record name the generators' settings, so that no later version of the schedule mixes in
    settings = {r["generator_settings"] for r in records}
    assert settings == {models[0].parent.name.rsplit("_", 1)[1]} and len(settings.pop()) == 8
    assert "nuclei" in (results / "downstream.md").read_text() and (results / "downstream.png").stat().st_size > 0

    # two folders of generators side by side (here the same models twice: the same figures)
    compare = _load("compare_generators")
    copy = models[0].parent.with_name("copy")
    shutil.copytree(models[0].parent, copy)
    names = [models[0].parent.name, copy.name]
    compare.main(["--dataset", "nuclei", "--images", models[0].stem, "--models", *names, "--num", "3", "--show", "2",
                  "--out", str(tmp_path / "compare"), "--workdir", str(tmp_path)])
    figures = json.loads((tmp_path / "compare" / "generators.json").read_text())
    first, second = (figures[f"{name}/{models[0].stem}"] for name in names)
    assert first == second and set(first) >= {"swd", "diversity", "fg_error", "rec_mse"} and first["swd"] > 0
    assert (tmp_path / "compare" / "generators.png").stat().st_size > 0
    with pytest.raises(SystemExit):  # a folder without the image's model: one line, nothing written
        compare.main(["--dataset", "nuclei", "--images", "nuclei_r1c1", "--models", *names, "--out",
                      str(tmp_path / "none"), "--workdir", str(tmp_path)])
    assert not (tmp_path / "none").exists()
    (copy / f"{models[0].stem}.pt").write_bytes(b"damaged")  # a damaged model, and a zero sample count: one line each
    for bad in (["--models", *names], ["--models", names[0], names[0], "--num", "0"]):
        with pytest.raises(SystemExit):
            compare.main(["--dataset", "nuclei", "--images", models[0].stem, *bad, "--out", str(tmp_path / "none"),
                          "--workdir", str(tmp_path)])
    assert not (tmp_path / "none").exists()


def test_study_runs_the_diffusion_conditions(tmp_path):
    study = _study()
    results = tmp_path / "results"
    study.main(["--datasets", "ventricles", "--n", "1", "--seeds", "0", "--conditions", "dif_inpaint_p50",
                "dif_sample_p50", "--iterations", "2", "--validate-every", "2", "--batch-size", "2", "--patch", "64",
                "--diffusion-crop", "32", "--diffusion-channels", "8", "16", "--diffusion-steps", "2",
                "--diffusion-timesteps", "20", "--diffusion-sampling-steps", "2", "--diffusion-resample", "1",
                "--results", str(results), "--workdir", str(tmp_path)])
    records = json.loads((results / "results.json").read_text())
    assert [r["condition"] for r in records] == ["dif_inpaint_p50", "dif_sample_p50"]
    assert all(0.0 <= r["test_dice"] <= 1.0 and r["diffusion_steps"] == 2 for r in records)
    models = sorted((tmp_path / "models" / "ventricles_diffusion_32_8-16_2").glob("*.pt"))
    # one diffusion model for the one pool image that N = 1, seed 0 trains on (not all five), none of SinGAN-Seg
    chosen = study.subset(json.loads((tmp_path / "cache" / "ventricles" / "datalist.json").read_text())["training"],
                          1, 0)
    assert [m.stem for m in models] == [Path(chosen[0]["image"]).stem]
    assert not list((tmp_path / "models").glob("ventricles_fast_*"))


def test_models_of_other_schedule_settings_stop_the_study(tmp_path, nuclei_model):
    """A model trained under other settings of a schedule must not pass as the schedule's; the settings' digest that
    names the models folder changes with any setting and with the iterations."""
    from argparse import Namespace

    study = _study()
    digests = {study.generator_settings(Namespace(schedule=s, generator_iters=i))
               for s in ("fast", "faithful") for i in (None, 4)}
    assert len(digests) == 4
    _, path = nuclei_model  # tiny_config: the faithful settings, 4 iterations per scale
    study.check_recipe(path, Namespace(schedule="faithful", generator_iters=4))  # the same settings: no objection
    with pytest.raises(SystemExit, match=r"nuclei\.pt: .*'fast'.*optim\.critic_steps: 3 kept \(asked 1\).*Move it out"):
        study.check_recipe(path, Namespace(schedule="fast", generator_iters=4))
    study.check_recipe(tmp_path / "absent.pt", Namespace(schedule="fast", generator_iters=None))  # nothing to check
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match=r"damaged\.pt: not a monai-singanseg checkpoint"):
        study.check_recipe(damaged, Namespace(schedule="fast", generator_iters=None))
    assert damaged.read_bytes() == b"not a checkpoint"


def test_gains_are_paired_by_seed_and_headroom_is_what_the_largest_n_adds():
    study = _study()
    rows = [{"dataset": "d", "condition": c, "n": n, "seed": s, "test_dice": v} for c, n, s, v in [
        ("standard", 1, 0, 0.60), ("standard", 1, 1, 0.80), ("standard", 1, 2, 0.70), ("standard", 3, 0, 0.90),
        ("aug", 1, 0, 0.65), ("aug", 1, 1, 0.83), ("aug", 1, 2, 0.69), ("aug", 1, 7, 0.99)]]  # seed 7: no pair
    (gain,) = study.paired_gains(rows)
    assert (gain["condition"], gain["n"], gain["seeds"], gain["wins"]) == ("aug", 1, 3, 2)
    assert np.isclose(gain["mean"], (0.05 + 0.03 - 0.01) / 3)
    assert np.isclose(gain["se"], np.std([0.05, 0.03, -0.01], ddof=1) / np.sqrt(3))
    room = study.headroom(rows)["d"]  # standard at N = 3 (all) minus at N = 1: 0.90 - mean(0.6, 0.8, 0.7)
    assert set(room) == {1} and np.isclose(room[1], 0.20)  # the largest N has no row (it would read +0.000)
    assert study.headroom([r for r in rows if r["n"] == 1]) == {}  # one N alone: nothing to measure it against
    # the same runs with other generators: each run against its own earlier self; runs on one side only are left out
    later = [{**r, "test_dice": r["test_dice"] + (0.02 if r["condition"] == "aug" and r["seed"] != 1 else 0.0)}
             for r in rows if r["seed"] != 2] + [{**rows[0], "condition": "new", "test_dice": 0.5}]
    changes = {(g["condition"], g["n"]): g for g in study.paired_between(later, rows)}
    assert set(changes) == {("standard", 1), ("standard", 3), ("aug", 1)}
    aug = changes[("aug", 1)]
    assert (aug["seeds"], aug["wins"]) == (3, 2) and np.isclose(aug["mean"], 0.04 / 3)
    assert changes[("standard", 1)]["mean"] == 0.0 and changes[("standard", 1)]["wins"] == 0


def test_one_results_file_holds_one_protocol(tmp_path, capsys):
    """Runs with generators of other settings (or another UNet protocol) are refused in one table; one run each is
    accepted, and the first two rounds' records (no settings field) count as one protocol."""
    study = _study()
    base = {"dataset": "ventricles", "n": 1, "seed": 0, "iterations": 600, "pool_size": 16, "pool_refresh": 0.1}
    old = [{**base, "condition": c} for c in ("standard", "sgs_add1_s0_d04")]
    assert study.one_protocol(old) == old
    with pytest.raises(SystemExit, match="mix 2 protocol"):
        study.one_protocol(old + [{**base, "seed": 1, "condition": "standard", "generator_settings": "0123abcd"}])
    with pytest.raises(SystemExit, match="twice"):
        study.one_protocol(old + old[:1])
    # a study run into a folder of another protocol stops before it trains or writes anything
    (tmp_path / "results.json").write_text(json.dumps(old))
    with pytest.raises(SystemExit, match="another protocol"):
        study.main(["--datasets", "nuclei", "--n", "1", "--seeds", "0", "--conditions", "standard",
                    "--results", str(tmp_path), "--workdir", str(tmp_path / "work")])
    assert json.loads((tmp_path / "results.json").read_text()) == old and not (tmp_path / "work").exists()
    (tmp_path / "results.json").unlink()
    # a comparison folder without results: one line naming it, before anything is read or written
    with pytest.raises(SystemExit):
        study.main(["--report", "--results", str(tmp_path), "--against", str(tmp_path / "elsewhere")])
    assert "elsewhere: no results.json" in capsys.readouterr().err and not list(tmp_path.iterdir())
