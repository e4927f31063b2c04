"""The downstream study's powered tasks (issue 27): enough test images, splits apart, and the intervals it reports."""

from __future__ import annotations

import importlib.util
import json
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

STUDY = Path(__file__).resolve().parents[1] / "benchmarks" / "downstream"
SPLITS = ("training", "validation", "test")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"downstream_{name}", STUDY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"downstream_{name}"] = module
    sys.path.insert(0, str(STUDY))  # study.py imports data.py by its plain name
    spec.loader.exec_module(module)
    return module


def _place(image: str) -> tuple[int, ...]:
    """Where an image was cut: ``(slice index,)`` for ``mni_z75`` / ``mni_y110``, ``(row, column)`` for
    ``nuclei64_r4c3``."""
    stem = Path(image).stem
    if stem.startswith("nuclei64_r"):
        row, col = stem.removeprefix("nuclei64_r").split("c")
        return int(row), int(col)
    return (int(stem.removeprefix("mni_")[1:]),)


@pytest.mark.parametrize("name, shape", [("nuclei64", (64, 64)), ("ventricles_axial", (192, 160)),
                                         ("ventricles_coronal", (160, 160))])
def test_powered_task_has_twenty_test_images_none_beside_a_training_one(tmp_path, name, shape):
    data = _load("data")
    assert name in data.POWERED
    datalist = json.loads(data.prepare(name, tmp_path / "a").read_text())
    counts = {s: len(datalist[s]) for s in SPLITS}
    assert counts["test"] >= 20 and counts["training"] >= 5 and counts["validation"] >= 2, counts  # N = 1, 2, 5
    places = {s: [_place(i["image"]) for i in datalist[s]] for s in SPLITS}
    # no two images of different splits are the same or neighbours (slices: 1 mm apart; tiles: an edge or a corner)
    for first, second in combinations(SPLITS, 2):
        gap = min(max(abs(a - b) for a, b in zip(p, q)) for p in places[first] for q in places[second])
        assert gap >= 2, (first, second, gap)
    folder = tmp_path / "a" / name
    for item in (i for s in SPLITS for i in datalist[s]):
        image, label = (np.array(Image.open(folder / item[k])) for k in ("image", "label"))
        assert image.shape == label.shape == shape and image.dtype == np.uint8
        assert set(np.unique(label)) == {0, 255}  # binary, and the structure is on every image
        assert 0.001 < (label > 0).mean() < 0.5
    # written again elsewhere: the same bytes (the datalists are the study's record of what was tested on)
    again = data.prepare(name, tmp_path / "b").parent
    files = sorted(p.relative_to(folder) for p in folder.rglob("*.*"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.*")) and len(files) == 1 + 2 * sum(
        counts.values())
    assert all((folder / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_powered_images_are_cut_where_their_names_say(tmp_path):
    """A tile's or slice's name is its place, which the split test above relies on; and the axial task's training
    slices are the ``ventricles`` task's own images, so those generators serve both."""
    data = _load("data")
    image, label = data.nuclei_image()
    tiles = tmp_path / "nuclei64"
    data.prepare("nuclei64", tmp_path)
    for row, col in ((0, 7), (4, 3), (7, 0)):
        window = (slice(64 * row, 64 * (row + 1)), slice(64 * col, 64 * (col + 1)))
        assert np.array_equal(np.array(Image.open(tiles / "images" / f"nuclei64_r{row}c{col}.png")), image[window])
        assert np.array_equal(np.array(Image.open(tiles / "labels" / f"nuclei64_r{row}c{col}.png")), label[window])
    t1, _ = data.mni_template()
    data.prepare("ventricles_coronal", tmp_path)
    written = np.array(Image.open(tmp_path / "ventricles_coronal" / "images" / "mni_y137.png"))
    assert np.array_equal(written, data.mni_slice(t1, "y", 137).round().astype(np.uint8))
    assert np.array_equal(written, np.rot90(t1[18:178, 137, 0:160]).round())  # coronal: x and z, top of the head up
    data.prepare("ventricles", tmp_path)
    data.prepare("ventricles_axial", tmp_path)
    for z in (75, 77, 79):
        for kind in ("images", "labels"):
            assert (tmp_path / "ventricles" / kind / f"mni_z{z}.png").read_bytes() == \
                (tmp_path / "ventricles_axial" / kind / f"mni_z{z}.png").read_bytes()
    with pytest.raises(ValueError, match="unknown dataset 'hippocampus'"):
        data.prepare("hippocampus", tmp_path)


def test_intervals_on_known_differences():
    study = _load("study")
    # the same change on every seed: no spread, a zero-width interval at that change
    for low, high in (study.t_interval([0.02] * 8), study.bootstrap_interval([0.02] * 8)):
        assert low == pytest.approx(0.02, abs=1e-12) and high == pytest.approx(0.02, abs=1e-12)
    # 1, 2, 3: mean 2, sd 1, t(0.975, 2 degrees of freedom) = 4.302653
    low, high = study.t_interval([1.0, 2.0, 3.0])
    assert low == pytest.approx(2 - 4.302653 / np.sqrt(3), abs=1e-5) and high == pytest.approx(
        2 + 4.302653 / np.sqrt(3), abs=1e-5)
    assert study.t_interval([1.0, 2.0, 3.0], level=0.9) == pytest.approx(
        (2 - 2.919986 / np.sqrt(3), 2 + 2.919986 / np.sqrt(3)), abs=1e-5)
    # 0, 0, 0, 1: resampled means are k / 4 with k ~ Binomial(4, 1/4); P(k = 0) = 0.32 > 2.5 %, P(k <= 2) = 0.95
    # < 97.5 % <= P(k <= 3) = 0.996, so the percentile interval is [0, 0.75]; the same draws every time
    assert study.bootstrap_interval([0.0, 0.0, 0.0, 1.0]) == (0.0, 0.75)
    assert study.bootstrap_interval([0.3, -0.1, 0.2, 0.05]) == study.bootstrap_interval([0.3, -0.1, 0.2, 0.05])
    assert all(np.isnan(v) for v in study.t_interval([0.1]) + study.bootstrap_interval([0.1]))  # one seed: no spread


def test_paired_rows_carry_their_intervals_and_the_report_marks_those_clear_of_zero():
    study = _load("study")
    rows = [{"dataset": "d", "condition": c, "n": 1, "seed": s, "test_dice": v} for c, s, v in [
        ("standard", 0, 0.60), ("standard", 1, 0.80), ("standard", 2, 0.70),
        ("aug", 0, 0.65), ("aug", 1, 0.83), ("aug", 2, 0.69),  # +0.05, +0.03, -0.01: across zero
        ("good", 0, 0.70), ("good", 1, 0.91), ("good", 2, 0.79)]]  # +0.10, +0.11, +0.09: clear of zero
    gains = {g["condition"]: g for g in study.paired_gains(rows)}
    aug, good = gains["aug"], gains["good"]
    assert (aug["t_low"], aug["t_high"]) == pytest.approx(study.t_interval([0.05, 0.03, -0.01]))
    assert (aug["boot_low"], aug["boot_high"]) == pytest.approx(study.bootstrap_interval([0.05, 0.03, -0.01]))
    assert aug["t_low"] < aug["boot_low"] <= aug["mean"] <= aug["boot_high"] < aug["t_high"]  # t: wider at k = 3
    assert aug["t_low"] < 0 < aug["t_high"] and good["t_low"] > 0
    assert study.interval_cell(aug).startswith("+0.023 [-0.") and "*" not in study.interval_cell(aug)
    assert study.interval_cell(good) == "+0.100 [+0.075, +0.125]* (3/3)"
    (between,) = study.paired_between([{**r, "test_dice": r["test_dice"] + 0.01} for r in rows
                                       if r["condition"] == "standard"], rows)
    assert between["t_low"] == pytest.approx(0.01) and between["t_high"] == pytest.approx(0.01)
    lone = study.summarise("d", "aug", 1, [0.04])
    assert np.isnan(lone["t_low"]) and study.interval_cell(lone) == "+0.040 (1/1)"


def test_generator_recipes_train_into_folders_of_their_own_and_a_moved_model_is_refused(tmp_path, monkeypatch):
    """A condition with generators of another recipe (reflect padding, crop training) gets its own folder suffix; a
    model of one recipe found in another recipe's folder stops the study, naming what differs."""
    import argparse
    import dataclasses

    from monai_singanseg import SinGANSegConfig

    study = _load("study")
    reflect = study.recipe_of(study.CONDITIONS["sgs_add1_s0_d04_reflect"])
    assert reflect == {"padding": "reflect"}
    assert study.recipe_of(study.CONDITIONS["sgs_add1_s0_d04"]) == {}  # earlier rounds' folders keep their names
    assert study.recipe_suffix({}) == ""
    assert study.recipe_suffix({"padding": "reflect", "crop_size": 64}) == "_crop_size-64_padding-reflect"
    args = argparse.Namespace(schedule="fast", generator_iters=None)
    zeros = SinGANSegConfig.for_schedule("fast", image_channels=1, mask_channels=1)
    stored = {"config": zeros.to_json()}
    monkeypatch.setattr(study, "read_checkpoint", lambda path: stored)
    path = tmp_path / "model.pt"
    path.write_bytes(b"")  # only its existence matters; the config comes from the patched reader
    study.check_recipe(path, args, {})  # the schedule's own recipe: zero padding, whole images
    with pytest.raises(SystemExit, match="padding"):
        study.check_recipe(path, args, reflect)
    cropped = dataclasses.replace(zeros, network=dataclasses.replace(zeros.network, padding="reflect"),
                                  optim=dataclasses.replace(zeros.optim, crop_size=64))
    stored["config"] = cropped.to_json()
    study.check_recipe(path, args, {"padding": "reflect", "crop_size": 64})
    with pytest.raises(SystemExit, match="crop_size"):
        study.check_recipe(path, args, reflect)
    # the fine scales' reconstruction weight is a recipe of its own: a model of one weight never passes for the other
    sharp = {"crop_size": 64, "rec_weight": 100}
    assert study.recipe_suffix(sharp) == "_crop_size-64_rec_weight-100"
    with pytest.raises(SystemExit, match="rec_weight"):
        study.check_recipe(path, args, {**sharp, "padding": "reflect"})
    stored["config"] = dataclasses.replace(zeros, optim=zeros.optim.with_fine_rec_weight(100)).to_json()
    study.check_recipe(path, args, {"rec_weight": 100})
    with pytest.raises(SystemExit, match="crop_size"):
        study.check_recipe(path, args, sharp)
    stored["config"] = dataclasses.replace(zeros, optim=dataclasses.replace(
        zeros.optim.with_fine_rec_weight(100), crop_size=64)).to_json()
    study.check_recipe(path, args, sharp)
    with pytest.raises(SystemExit, match="rec_weight"):
        study.check_recipe(path, args, {"crop_size": 64})


def test_the_report_compares_other_generator_recipes_with_the_shipped_ones_by_seed(tmp_path):
    """Conditions whose generators follow another recipe get their own section: the change against the shipped
    recipe's condition (same sampling, today's generators), paired by seed, with its interval."""
    study = _load("study")
    shipped, reflect = study.SHIPPED, "sgs_add1_s0_d04_reflect"
    protocol = {"iterations": 10, "pool_size": 16, "pool_refresh": 0.1, "generator_settings": "abc"}
    rows = [{"dataset": "d", "condition": c, "n": 1, "seed": s, "test_dice": v, **protocol} for c, s, v in [
        ("standard", 0, 0.60), ("standard", 1, 0.70), ("standard", 2, 0.65),
        (shipped, 0, 0.62), (shipped, 1, 0.71), (shipped, 2, 0.66),
        (reflect, 0, 0.66), (reflect, 1, 0.73), (reflect, 2, 0.70)]]  # +0.04, +0.02, +0.04 over the shipped
    (tmp_path / "results.json").write_text(json.dumps(rows))
    study.report(tmp_path)
    assert (tmp_path / "downstream_answer.png").stat().st_size > 0  # the shipped recipe against standard, by N
    text = (tmp_path / "downstream.md").read_text()
    section = text[text.index(f"## Change against `{shipped}`"):]
    assert f"| d | {reflect} | +0.033 [" in section and "(3/3)" in section
    assert f"| d | {shipped} |" not in section  # itself is no row of its own section
    gains = json.loads((tmp_path / "gains.json").read_text())
    (row,) = [g for g in gains if g["comparison"].startswith(f"Change against `{shipped}`")]
    assert row["mean"] == pytest.approx(0.10 / 3) and row["t_low"] > 0


def test_windowed_generators_are_paired_with_their_zero_padded_windowed_twin(tmp_path):
    """Reflect-padded generators trained on windows are compared with the shipped sampling of zero-padded generators
    trained on the same windows, not with whole-image ones: the pair differs by the padding (and diversity) only."""
    study = _load("study")
    twin = "sgs_add1_s0_d04_crop64"
    assert study.shipped_reference("sgs_add1_s0_d04_reflect") == study.SHIPPED
    assert study.shipped_reference("sgs_add1_s0_reflect") == study.SHIPPED
    assert study.shipped_reference("sgs_add1_s0_crop64_reflect") == twin
    assert study.shipped_reference("sgs_add1_s0_d04_crop64_reflect") == twin
    assert study.shipped_reference("sgs_add1_s0_d04_crop64_rec100") == twin  # differs by the weight only
    assert study.shipped_reference("sgs_add1_s1_crop64_rec100") == twin
    assert study.shipped_reference(twin) is None and study.shipped_reference(study.SHIPPED) is None
    assert study.shipped_reference("standard") is None
    protocol = {"iterations": 10, "pool_size": 16, "pool_refresh": 0.1, "generator_settings": "abc"}
    rows = [{"dataset": "d", "condition": c, "n": 2, "seed": s, "test_dice": v, **protocol} for c, s, v in [
        ("standard", 0, 0.50), ("standard", 1, 0.60), (study.SHIPPED, 0, 0.90), (study.SHIPPED, 1, 0.90),
        (twin, 0, 0.55), (twin, 1, 0.62), ("sgs_add1_s0_crop64_reflect", 0, 0.60),
        ("sgs_add1_s0_crop64_reflect", 1, 0.63)]]
    (row,) = study.paired_with_reference(rows)
    assert row["condition"] == "sgs_add1_s0_crop64_reflect" and row["mean"] == pytest.approx(0.03)


def test_finished_generators_are_not_handed_to_train_many_again(tmp_path, nuclei_model, nuclei_pair):
    """A study process whose generators are all trained does not run train-many (whose brief claim of each model
    while checking it stops a second process of the same dataset started at the same moment); an unfinished or
    missing model still goes to it."""
    from conftest import tiny_config

    from monai_singanseg.training import SinGANSegTrainer

    study = _load("study")
    partial = tmp_path / "partial.pt"
    SinGANSegTrainer(tiny_config(), progress=False, stop_after=1).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, partial)
    assert study.finished(nuclei_model[1])
    assert not study.finished(partial)
    assert not study.finished(tmp_path / "missing.pt")


def test_the_report_measures_the_cost_of_the_runs_and_of_the_generators_they_used(tmp_path, nuclei_model,
                                                                                   nuclei_pair):
    """UNet core-hours are the records' own seconds; generator core-hours the training logs of the finished models in
    the task's folders of the records' settings digest (another digest's folder, another task's and an unfinished
    model are left out)."""
    import shutil

    from conftest import tiny_config

    from monai_singanseg.checkpoint import read_checkpoint
    from monai_singanseg.training import SinGANSegTrainer

    study = _load("study")
    models = tmp_path / "models"
    used, other = models / "d_fast_192_abc", models / "d_fast_192_zzz"
    neighbour = models / "d_x_fast_192_abc"  # another task whose name starts with this one's, same settings
    unused = models / "d_fast_192_abc_padding-reflect"  # a recipe no record ran
    for folder in (used, other, neighbour, unused):
        folder.mkdir(parents=True)
        shutil.copy(nuclei_model[1], folder / "a.pt")
    SinGANSegTrainer(tiny_config(), progress=False, stop_after=1).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, used / "partial.pt")
    (used / "damaged.pt").write_bytes(b"not a checkpoint")  # left out with one line, the report goes on
    logged = sum(e["seconds"] for e in read_checkpoint(nuclei_model[1])["training"]["log"])
    protocol = {"iterations": 10, "pool_size": 16, "pool_refresh": 0.1, "generator_settings": "abc",
                "schedule": "fast", "max_size": 192}
    rows = [{"dataset": "d", "condition": c, "n": 1, "seed": s, "test_dice": 0.5, "seconds": 1800.0, **protocol}
            for c in ("standard", study.SHIPPED) for s in (0, 1)]
    (row,) = study.cost(rows, models)
    assert row["unet_runs"] == 4 and row["unet_core_hours"] == 2.0
    assert list(row["generators"]) == ["d_fast_192_abc"]
    generators = row["generators"]["d_fast_192_abc"]
    assert generators["models"] == 1 and generators["core_hours"] == round(logged / 3600, 2)
    (tmp_path / "results.json").write_text(json.dumps(rows))
    study.report(tmp_path, models=models)
    text = (tmp_path / "downstream.md").read_text()
    assert "## Cost" in text and "| d | 4 | 2.00 | `d_fast_192_abc` | 1 |" in text
