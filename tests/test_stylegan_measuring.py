"""Measuring the StyleGAN generator (issue 30, part 3): its benchmark and the downstream study's StyleGAN conditions,
at tiny sizes on the study's real tasks."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from argparse import Namespace
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
STUDY = BENCHMARKS / "downstream"
# tiny StyleGAN settings of the study: a 32-px model of narrow layers, two steps
TINY = ["--stylegan-steps", "2", "--stylegan-resolution", "32", "--stylegan-widths", "8", "8", "8", "8",
        "--stylegan-batch-size", "2", "--stylegan-device", "cpu"]


def _load(name: str, folder: Path):
    spec = importlib.util.spec_from_file_location(f"measuring_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"measuring_{name}"] = module
    sys.path.insert(0, str(folder))  # the scripts import their neighbours (data.py, machine.py) by plain name
    spec.loader.exec_module(module)
    return module


def test_a_subset_model_is_keyed_by_its_images_and_the_settings_by_its_folder(tmp_path):
    study = _load("study", STUDY)
    pool = [{"image": f"/d/img_{k}.png", "label": f"/d/lab_{k}.png"} for k in range(5)]
    # the same images in any order: one model; N = all draws the whole pool for every seed, so the seeds share it
    assert study.subset_name(pool[:2]) == study.subset_name(pool[1::-1])
    assert len({study.subset_name(study.subset(pool, 5, seed)) for seed in range(4)}) == 1
    # one name per distinct set of images, and the set's size in front
    subsets = [study.subset(pool, n, seed) for n in (1, 2) for seed in range(6)]
    names = {study.subset_name(s): frozenset(i["image"] for i in s) for s in subsets}
    assert len(names) == len(set(names.values())) == len({frozenset(i["image"] for i in s) for s in subsets})
    assert all(name.startswith(f"n{len(images)}_") for name, images in names.items())
    args = Namespace(workdir=str(tmp_path), stylegan_design="joint", stylegan_resolution=64, stylegan_steps=3000,
                     stylegan_widths=None, stylegan_batch_size=8)
    folder = study.stylegan_folder("nuclei64", args)
    assert folder == tmp_path / "models" / "nuclei64_stylegan_joint_64_128-128-128-64-32_b8_3000"
    assert study.stylegan_folder("nuclei64", Namespace(**{**vars(args), "stylegan_steps": 6000})) != folder
    # every StyleGAN condition names its kind and one model for any image; add1 and add3 keep the real pair
    conditions = {name: c for name, c in study.CONDITIONS.items() if name.startswith("sty_")}
    assert set(conditions) == {"sty_p25", "sty_p50", "sty_p75", "sty_only", "sty_add1", "sty_add3"}
    assert all(study.generator_kind(c) == "stylegan" and c["model_choice"] == "random" for c in conditions.values())
    assert (conditions["sty_add1"]["num_samples"], conditions["sty_add3"]["num_samples"]) == (2, 4)
    # a study run without --conditions runs what it ran before: no StyleGAN condition (hours per subset on a CPU)
    assert not {c for c in study.DEFAULT_CONDITIONS if c.startswith("sty_") or c == "standard_x4"}


def test_report_pairs_each_added_share_with_its_same_batch_control(tmp_path):
    study = _load("study", STUDY)
    base = {"dataset": "nuclei64", "n": 2, "iterations": 600, "pool_size": 16, "pool_refresh": 0.1}
    dice = {"standard": 0.60, "standard_x2": 0.62, "standard_x4": 0.63, "sty_add1": 0.65, "sty_add3": 0.61,
            "sty_p50": 0.64}
    records = [{**base, "seed": seed, "condition": c, "test_dice": v + 0.01 * seed}
               for seed in (0, 1) for c, v in dice.items()]
    (tmp_path / "results.json").write_text(json.dumps(records))
    study.main(["--report", "--results", str(tmp_path)])
    rows = json.loads((tmp_path / "gains.json").read_text())
    against = {(row["comparison"].split("`")[1], row["condition"]): row["mean"] for row in rows}
    # every condition against standard; sty_add1 also against standard_x2, sty_add3 against standard_x4, no other
    assert abs(against[("standard_x2", "sty_add1")] - 0.03) < 1e-9 and ("standard_x2", "sty_add3") not in against
    assert abs(against[("standard_x4", "sty_add3")] + 0.02) < 1e-9 and ("standard_x4", "sty_add1") not in against
    assert ("standard", "sty_p50") in against
    assert "## Change against `standard_x4`" in (tmp_path / "downstream.md").read_text()


def test_study_runs_the_stylegan_conditions_on_one_model_per_subset(tmp_path):
    study = _load("study", STUDY)
    results = tmp_path / "results"
    common = ["--datasets", "nuclei64", "--n", "2", "--seeds", "0", "--iterations", "2", "--validate-every", "2",
              "--batch-size", "2", "--patch", "64", "--pool-size", "2", "--results", str(results),
              "--workdir", str(tmp_path), *TINY]
    study.main([*common, "--conditions", "sty_p50", "sty_add1", "standard_x2"])
    records = json.loads((results / "results.json").read_text())
    assert [r["condition"] for r in records] == ["sty_p50", "sty_add1", "standard_x2"]
    assert all(0.0 <= r["test_dice"] <= 1.0 and r["n"] == 2 for r in records)
    # the StyleGAN records say how their generator was trained; the control's do not
    assert [r.get("stylegan_steps") for r in records] == [2, 2, None]
    assert records[0]["stylegan_widths"] == [8, 8, 8, 8] and records[0]["stylegan_design"] == "joint"
    # one model of the two images seed 0 draws, shared by both conditions, with the list of its images beside it
    folder = tmp_path / "models" / "nuclei64_stylegan_joint_32_8-8-8-8_b2_2"
    (model,) = sorted(folder.glob("*.pt"))
    chosen = study.subset(json.loads((tmp_path / "cache" / "nuclei64" / "datalist.json").read_text())["training"],
                          2, 0)
    assert model.stem == study.subset_name(chosen)
    assert json.loads(model.with_suffix(".json").read_text()) == sorted(Path(i["image"]).name for i in chosen)
    from monai_singanseg.stylegan.many import trained_steps

    assert trained_steps(model) == 2 and not list(folder.glob("*.lock"))
    # the report pairs the added-pairs condition with its same-batch control
    text = (results / "downstream.md").read_text()
    assert "Change against `standard_x2`" in text and "| nuclei64 | sty_add1 |" in text.split("standard_x2`")[1]
    # asked again: every run is done, nothing is trained or added
    stamp = model.stat().st_mtime_ns
    study.main([*common, "--conditions", "sty_p50", "sty_add1", "standard_x2"])
    assert len(json.loads((results / "results.json").read_text())) == 3 and model.stat().st_mtime_ns == stamp


def test_benchmark_trains_resumes_measures_and_writes_its_tables(tmp_path, nuclei_model, capsys):
    bench = _load("bench_stylegan", BENCHMARKS)
    # a SinGAN-Seg folder as the study keeps them (here the session's tiny model of the whole nuclei image)
    singanseg = tmp_path / "downstream_models" / "nuclei64_fast_192_0123abcd"
    singanseg.mkdir(parents=True)
    shutil.copy(nuclei_model[1], singanseg / "nuclei64_r0c0.pt")
    options = ["--smoke", "--tasks", "nuclei64", "--designs", "joint", "--quiet", "--num", "4",
               "--models-root", str(tmp_path / "downstream_models"), "--models", str(tmp_path / "models"),
               "--workdir", str(tmp_path / "work"), "--results", str(tmp_path / "results")]
    # a deadline that passes at once: the model stops after its first step with a checkpoint, and is still measured
    first = bench.main([*options, "--train-deadline", "0"])
    (training,) = first["training"]
    assert (training["steps"], training["complete"]) == (1, False) and training["seconds_per_step"] > 0
    assert [q["generator"] for q in first["quality"]] == ["real pool", "stylegan joint", "singanseg"]
    assert any("diffusion on nuclei64" in s for s in first["skipped"])
    # called again: resumed to the smoke preset's 3 steps, not started over
    second = bench.main(options)
    (training,) = second["training"]
    assert (training["steps"], training["steps_this_run"], training["complete"]) == (3, 2, True)
    stylegan = second["quality"][1]
    assert {"swd", "diversity", "fg_mean", "fg_error", "nn_ratio", "copies", "frame", "pinned", "sharpness"} <= set(
        stylegan) and stylegan["swd"] > 0 and sum(stylegan["nearest_counts"]) == 4
    results = tmp_path / "results"
    saved = json.loads((results / "stylegan_smoke.json").read_text())
    assert saved["quality"] == second["quality"] and saved["machine"]["threads"] >= 1
    page = (results / "stylegan_smoke.md").read_text()
    assert "## Training cost" in page and "| stylegan joint | 4 |" in page and "| singanseg | 4 |" in page
    assert (results / "stylegan_nuclei64_32_smoke.png").stat().st_size > 0
    assert "## nuclei64, 32 px" in capsys.readouterr().out
    # a run deadline that has passed: nothing trained or measured, each skipped phase said
    third = bench.main([*options, "--deadline", "0", "--tag", "late"])
    assert third["training"] == [] and len(third["quality"]) == 1
    assert any("training nuclei64 joint 32 px: past --deadline" in s for s in third["skipped"])


def test_gpu_script_rehearses_on_the_cpu_and_leaves_its_records_in_out(tmp_path):
    """benchmarks/gpu_stylegan.sh with DEVICE=cpu and tiny networks: both tasks and designs at 64 px in phase 1, the
    records merged into one table in $OUT, phase 2 skipped when the budget is spent, and exit status 0."""
    import os
    import subprocess

    out, res = tmp_path / "out", tmp_path / "res"
    tiny = (f"--num 4 --batch-size 2 --widths 8 8 8 8 8 --latent-dim 8 --threads 1 --workdir {tmp_path / 'work'} --models-root {tmp_path / 'none'}")
    env = {**os.environ, "PY": sys.executable, "OUT": str(out), "RES": str(res), "DEVICE": "cpu", "STEPS": "2",
           "P64_S": "300", "BUDGET_S": "0", "BENCH_ARGS": tiny, "MODELS": str(res / "models"), "PYTHONPATH": str(BENCHMARKS.parent)}
    done = subprocess.run(["bash", str(BENCHMARKS / "gpu_stylegan.sh")], cwd=BENCHMARKS.parent, env=env, timeout=900,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    report = json.loads((out / "stylegan_gpu64.json").read_text())
    assert sorted((r["task"], r["design"], r["steps"]) for r in report["training"]) == [
        (task, design, 2) for task in ("nuclei64", "ventricles_axial") for design in ("joint", "mask_then_image")]
    assert sorted({q["generator"] for q in report["quality"]}) == ["real pool", "stylegan joint",
                                                                   "stylegan mask_then_image"]
    summary = (out / "summary.txt").read_text()
    assert "nuclei64 64 px: rc 0" in summary and "phase 2 (128 px) skipped" in summary
    assert "## ventricles_axial, 64 px" in (out / "stylegan_gpu64.md").read_text()
    assert (out / "stylegan_nuclei64_64_gpu64_nuclei64.png").is_file()
    # the checkpoints come back in parts, to be carried into the next session and resumed
    parts = sorted(out.glob("stylegan_models.tar.part-*"))
    assert parts and sum(p.stat().st_size for p in parts) > 0
