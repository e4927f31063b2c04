"""The time-to-quality benchmark's diagnostics: mixing the scales of two models, and training the coarsest scale
alone inside a host model (tiny models of the real nuclei crop)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_time_to_quality as ttq

from monai_singanseg import SinGANSegTrainer

TINY = "optim.iters_per_scale=2,optim.coarse.iters_per_scale=2,network.base_channels=8"


def _model(path: Path, seed: int):
    pair = ttq.load_pair("nuclei")
    config = ttq.make_config(pair, 32, "fast", 2, seed, TINY)
    return SinGANSegTrainer(config, progress=False).fit(pair.real, pair.intensity, pair.labels, path)


def test_set_takes_a_tuple_joined_by_plus_and_refuses_a_bad_item():
    pair = ttq.load_pair("nuclei")
    config = ttq.make_config(pair, 32, "fast", 2, 0, "network.critic=content_layout,"
                                                     "network.critic_augment=translation+cutout")
    assert config.network.critic_augment == ("translation", "cutout")
    with pytest.raises(ValueError, match="critic_augment must be a tuple of distinct operations"):
        ttq.make_config(pair, 32, "fast", 2, 0, "network.critic_augment=translation+flip")


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ttq")
    return folder, _model(folder / "a.pt", 0), _model(folder / "b.pt", 1)


def test_with_scales_takes_exactly_the_asked_scales_from_the_donor(two_models):
    _, host, donor = two_models
    assert host.num_scales >= 2
    mixed = ttq._with_scales(host, donor, range(1))
    for scale, generator in enumerate(mixed.generators):
        source = donor if scale == 0 else host
        for name, value in generator.state_dict().items():
            assert torch.equal(value, source.generators[scale].state_dict()[name]), (scale, name)
        assert mixed.noise_amps[scale] == source.noise_amps[scale]
    assert torch.equal(mixed.fixed_noise, donor.fixed_noise)  # the reconstruction path starts at the donor's scale 0
    assert not torch.equal(mixed.fixed_noise, host.fixed_noise)
    # the host is left as it was, and a mix without scale 0 keeps the host's reconstruction noise
    assert torch.equal(ttq._with_scales(host, donor, range(1, host.num_scales)).fixed_noise, host.fixed_noise)


def test_coarsest_measures_a_new_scale_zero_inside_the_host_one_row_per_seed(two_models, monkeypatch, tmp_path):
    folder, _, _ = two_models
    monkeypatch.setattr(ttq, "MODELS", folder)
    monkeypatch.setattr(ttq, "COARSEST", tmp_path / "coarsest.json")
    args = argparse.Namespace(data="nuclei", host="a.pt", schedule="fast", set=TINY, seeds=[0, 1], threads=1, num=2,
                              seed=0)
    ttq.coarsest(args)
    rows = json.loads((tmp_path / "coarsest.json").read_text())
    assert [(r["host"], r["seed"], r["overrides"]) for r in rows] == [("a.pt", 0, TINY), ("a.pt", 1, TINY)]
    assert all(r["swd"] > 0 and 0 <= r["diversity"] <= 1 for r in rows)
    ttq.coarsest(argparse.Namespace(**{**vars(args), "seeds": [0]}))  # a rerun replaces its row
    assert len(json.loads((tmp_path / "coarsest.json").read_text())) == 2


def test_a_missing_model_stops_with_one_line_naming_it(monkeypatch, tmp_path):
    monkeypatch.setattr(ttq, "MODELS", tmp_path)
    monkeypatch.setattr(ttq, "COARSEST", tmp_path / "coarsest.json")
    args = argparse.Namespace(data="nuclei", host="nope.pt", schedule="fast", set="", seeds=[0], threads=1, num=2,
                              seed=0)
    with pytest.raises(SystemExit, match="nope.pt: no such model"):
        ttq.coarsest(args)
    assert not (tmp_path / "coarsest.json").exists()


def test_a_host_of_another_pyramid_stops_before_any_training(two_models, monkeypatch, tmp_path):
    folder, _, _ = two_models
    monkeypatch.setattr(ttq, "MODELS", folder)
    monkeypatch.setattr(ttq, "COARSEST", tmp_path / "coarsest.json")
    monkeypatch.setattr(ttq, "SinGANSegTrainer", lambda *a, **k: pytest.fail("trained before the check"))
    args = argparse.Namespace(data="nuclei", host="a.pt", schedule="fast", set=TINY + ",pyramid.min_size=21",
                              seeds=[0], threads=1, num=2, seed=0)
    with pytest.raises(SystemExit, match="a.pt has another pyramid than this recipe"):
        ttq.coarsest(args)
    assert not (tmp_path / "coarsest.json").exists()


def test_artifact_benchmark_measures_and_tabulates_a_model(two_models):
    import bench_artifacts

    _, model, _ = two_models
    pair = ttq.load_pair("nuclei")
    real = ttq.build_pyramid(pair.real.unsqueeze(0), model.shapes)[-1]
    samples = bench_artifacts.draw(model, 4, 1000)
    larger = bench_artifacts.draw(model, 2, 1000, canvas=1.25)
    assert samples.shape[2:] == larger.shape[2:] == model.shapes[-1]
    record = bench_artifacts.measure(model, real, pair.real.unsqueeze(0), samples)
    assert set(bench_artifacts.COLUMNS) <= set(record) and record["frame"] >= 0 and 0 < record["sharpness"]
    # a sample's title in the picture: the variant's values, one line
    label = bench_artifacts.short_label("network.critic=content_layout,network.critic_augment=translation+cutout", 0)
    assert label == "content_layout, translation+cutout 0" and bench_artifacts.short_label("", 1) == "default 1"
    rows = [{"data": "nuclei", "max_size": 32, "variant": "zeros", "seed": s, **record} for s in (0, 1)]
    text = bench_artifacts.table(rows)
    assert "| zeros | 2 |" in text and f"{record['swd']:.3f} ± 0.000" in text
    assert ttq.model_path("nuclei", 64, "fast", "optim.crop_size=64,network.padding=reflect", 600, 1, 2).name == (
        "nuclei_64_fast_crop_size64_network.paddingreflect_600_t1_s2.pt")


def test_artifact_benchmark_measures_a_folder_of_models_against_their_own_pairs(two_models, tmp_path):
    import shutil

    import bench_artifacts

    folder, _, _ = two_models
    models, pairs = tmp_path / "recipe_a", tmp_path / "task"
    for sub in (models, pairs / "images", pairs / "labels"):
        sub.mkdir(parents=True)
    shutil.copy(folder / "a.pt", models / "crop.pt")
    shutil.copy(ttq.ROOT / "data" / "nuclei" / "nuclei_image.png", pairs / "images" / "crop.png")
    shutil.copy(ttq.ROOT / "data" / "nuclei" / "nuclei_label.png", pairs / "labels" / "crop.png")
    (record,) = bench_artifacts.folder_records([models], pairs, 2)
    assert (record["data"], record["variant"], record["seed"], record["num"]) == ("task", "recipe_a", "crop", 2)
    assert set(bench_artifacts.COLUMNS) <= set(record) and record["swd"] > 0


def test_sharpness_benchmark_profiles_refits_and_retrains_the_finest_scale(two_models):
    import bench_sharpness

    folder, model, _ = two_models
    pair = ttq.load_pair("nuclei")
    real = pair.real[None]
    profile = bench_sharpness.profile(model, real, 2)
    assert len(profile["scales"]) == model.trained_scales
    assert profile["scales"][-1]["real"] == bench_sharpness.image_sharpness(
        ttq.build_pyramid(real, model.shapes)[-1], model.config.image_channels)  # the real image at the finest scale, as the model sees it
    assert set(profile["samples"]) == {f"start{s}_d{d}" for s, d in bench_sharpness.SETTINGS}
    before = [t.clone() for t in model.generators[-1].state_dict().values()]
    refit = bench_sharpness.refit(ttq.SinGANSeg.load(folder / "a.pt"), real, 4, 2)
    assert [t["step"] for t in refit["trace"]] == [1, 2, 3, 4] and all(t["sharpness"] > 0 for t in refit["trace"])
    assert all(torch.equal(a, b) for a, b in zip(before, model.generators[-1].state_dict().values()))
    retrained = bench_sharpness.retrain(folder / "a.pt", pair, 4, 100.0, 2, 2)
    assert retrained["rec_weight"] == 100.0 and [t["iteration"] for t in retrained["trace"]] == [2, 4]
    assert ttq.SinGANSeg.load(folder / "a.pt").trained_scales == model.trained_scales  # the model file is untouched


def test_the_study_picture_script_draws_the_real_pair_and_the_samples(two_models, tmp_path):
    sys.path.insert(0, str(ttq.HERE / "downstream"))
    import pictures

    folder, _, _ = two_models
    out = tmp_path / "samples.png"
    data = ttq.ROOT / "data" / "nuclei"
    pictures.main([str(folder / "a.pt"), str(data / "nuclei_image.png"), str(data / "nuclei_label.png"), str(out),
                   "--diversities", "1", "--per", "2"])
    from PIL import Image

    with Image.open(out) as image:
        assert image.size[0] > 200 and image.size[1] > 100


def test_the_picture_and_sharpness_scripts_stop_with_one_line_naming_a_missing_file(tmp_path, monkeypatch):
    import bench_sharpness

    sys.path.insert(0, str(ttq.HERE / "downstream"))
    import pictures

    data = ttq.ROOT / "data" / "nuclei"
    with pytest.raises(SystemExit, match="nope.pt: checkpoint file not found"):
        pictures.main([str(tmp_path / "nope.pt"), str(data / "nuclei_image.png"), str(data / "nuclei_label.png"),
                       str(tmp_path / "out.png")])
    assert not (tmp_path / "out.png").exists()
    monkeypatch.setattr(sys, "argv", ["bench_sharpness.py", "profile", str(tmp_path / "nope.pt"),
                                      str(tmp_path / "a.png"), str(data / "nuclei_label.png")])
    monkeypatch.setattr(bench_sharpness, "RESULTS", tmp_path / "sharpness.json")
    with pytest.raises(SystemExit, match="a.png: file not found"):
        bench_sharpness.main()
    assert not (tmp_path / "sharpness.json").exists()


def test_the_artifact_benchmark_refuses_a_folder_whose_pairs_are_missing_before_measuring(two_models, tmp_path,
                                                                                         monkeypatch):
    import shutil

    import bench_artifacts

    folder, _, _ = two_models
    models = tmp_path / "recipe"
    models.mkdir()
    shutil.copy(folder / "a.pt", models / "crop.pt")
    monkeypatch.setattr(bench_artifacts, "measure", lambda *a: pytest.fail("measured before the check"))
    with pytest.raises(SystemExit, match=r"crop.pt: its pair is missing: no .*images/crop.png"):
        bench_artifacts.folder_records([models], tmp_path / "task", 2)
    with pytest.raises(SystemExit, match="no models"):
        bench_artifacts.folder_records([tmp_path / "task"], tmp_path / "task", 2)
    # a damaged model file: one line naming it, nothing written
    for part in ("images", "labels"):
        (tmp_path / "task" / part).mkdir(parents=True, exist_ok=True)
        (tmp_path / "task" / part / "crop.png").write_bytes(b"")
    (models / "crop.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="crop.pt"):
        bench_artifacts.folder_records([models], tmp_path / "task", 2)
