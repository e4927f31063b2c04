"""Bundles run with `python -m monai.bundle run`, from the repository root, with command-line overrides."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, verify_metadata, verify_net_in_out
from monai.data import load_decathlon_datalist
from PIL import Image

from monai_singanseg import SinGANSeg, SinGANSegAugmentd
from monai_singanseg.diffusion import PairDiffusion
from monai_singanseg.generators import checkpoint_kind

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "bundles"
SCHEMA = BUNDLES / "schema" / "meta_schema_20240725.json"
SCHEMA_MD5 = "76e1add273836515d0bbb3bc71962474"  # bundles/schema/README.md
SEGMENTATION = BUNDLES / "singanseg_segmentation" / "configs"
DIFFUSION = BUNDLES / "diffusion_generation" / "configs"


def _bundle(config: str | list[str], *overrides: str, command: str = "run") -> subprocess.CompletedProcess:
    files = config if isinstance(config, str) else repr(config)
    cmd = [sys.executable, "-m", "monai.bundle", command, "--config_file", files, *overrides]
    return subprocess.run(cmd, check=False, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def generation_models(tmp_path_factory):
    """Tiny SinGAN-Seg models of the two real training tiles, trained by the generation bundle."""
    out = tmp_path_factory.mktemp("generation") / "models"
    done = _bundle("bundles/singanseg_generation/configs/train.json", "--iters", "2", "--max_size", "32",
                   "--output_dir", str(out))
    assert done.returncode == 0, done.stdout[-3000:]
    return out


def test_generation_bundle_trains_then_samples_a_shareable_datalist(generation_models, tmp_path):
    out = generation_models
    assert sorted(p.name for p in out.glob("*.pt")) == ["nuclei_tile_a_image.pt", "nuclei_tile_b_image.pt"]
    model = SinGANSeg.load(out / "nuclei_tile_a_image.pt")
    assert model.shapes[-1] == (32, 32) and model.config.optim.iters_per_scale == 2
    assert json.loads((out / "train_many_summary.json").read_text())["done"] == 2

    synthetic = tmp_path / "synthetic"
    done = _bundle("bundles/singanseg_generation/configs/inference.json", "--models_dir", str(out),
                   "--output_dir", str(synthetic), "--num_samples", "3", "--start_scale", "1",
                   "--style", "histogram")
    assert done.returncode == 0, done.stdout[-3000:]
    from monai.data import load_decathlon_datalist

    items = load_decathlon_datalist(str(synthetic / "synthetic_datalist.json"), data_list_key="training")
    assert len(items) == 6  # 3 pairs from each of the 2 models
    assert all(Path(i["image"]).is_file() and Path(i["label"]).is_file() for i in items)
    assert (synthetic / "nuclei_tile_a_image" / "preview.png").is_file()
    again = _bundle("bundles/singanseg_generation/configs/inference.json", "--models_dir", str(out),
                    "--output_dir", str(synthetic))
    assert again.returncode != 0 and "already exists" in again.stdout  # nothing overwritten by default


@pytest.mark.parametrize("override, reason", [
    (("--max_size", "-1"), "max_size (-1) must be >= min_size (25)"),
    (("--schedule", "bogus"), "schedule must be one of ('faithful', 'fast'), got 'bogus'"),
    (("--iters", "five"), "iters_per_scale must be an integer, got 'five'"),
], ids=["max_size", "schedule", "iters"])
def test_generation_bundle_fails_when_its_models_fail(tmp_path, override, reason):
    # it exited 0 with every model failed, where 'singanseg train-many' exits 2
    out = tmp_path / "models"
    done = _bundle("bundles/singanseg_generation/configs/train.json", *override, "--output_dir", str(out))
    assert done.returncode != 0, done.stdout[-3000:]
    for tile in ("nuclei_tile_a_image", "nuclei_tile_b_image"):  # one line per item, with its reason
        lines = [line for line in done.stdout.splitlines() if f"{tile}: failed" in line]
        assert len(lines) == 1 and reason in lines[0], done.stdout[-3000:]
    assert "2 of 2 models failed" in done.stdout
    assert "Traceback" not in done.stdout  # the failure in one line, not monai.bundle's wrapped exception
    assert not list(out.glob("*.pt"))


@pytest.mark.parametrize("bundle", ["singanseg_generation", "singanseg_segmentation"])
def test_metadata_is_valid_against_the_shipped_schema_offline(bundle, tmp_path):
    meta = BUNDLES / bundle / "configs" / "metadata.json"
    schema = tmp_path / SCHEMA.name
    shutil.copy(SCHEMA, schema)  # verify_metadata only downloads when the file is missing
    verify_metadata(meta_file=str(meta), filepath=str(schema), hash_val=SCHEMA_MD5)

    broken = json.loads(meta.read_text())
    del broken["network_data_format"]["inputs"]["image"]["value_range"]
    broken_file = tmp_path / "metadata.json"
    broken_file.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="Failed validating"):
        verify_metadata(meta_file=str(broken_file), filepath=str(schema), hash_val=SCHEMA_MD5)


@pytest.mark.parametrize("variant", [["train.json"], ["train.json", "unetplusplus.json"]])
def test_segmentation_network_matches_its_metadata(variant):
    configs = [str(SEGMENTATION / name) for name in variant]
    verify_net_in_out(net_id="network_def", meta_file=str(SEGMENTATION / "metadata.json"), config_file=configs,
                      device="cpu", n=4)


def test_generation_network_matches_its_metadata(generation_models):
    configs = BUNDLES / "singanseg_generation" / "configs"
    verify_net_in_out(net_id="network_def", meta_file=str(configs / "metadata.json"),
                      config_file=str(configs / "inference.json"), device="cpu", n=2,
                      models_dir=str(generation_models))


def _preprocessing(**overrides):
    parser = ConfigParser()
    parser.read_config(str(SEGMENTATION / "train.json"))
    for key, value in overrides.items():
        parser[key] = value
    return parser.get_parsed_content("train#preprocessing")


def test_segmentation_chain_caches_the_deterministic_part_and_augments_in_the_random_part(generation_models):
    chain = _preprocessing(synthetic_models=str(generation_models))
    kinds = [type(t).__name__ for t in chain.transforms]
    assert kinds[:3] == ["LoadImaged", "EnsureChannelFirstd", "AsDiscreted"]  # cached by CacheDataset
    assert kinds[3] == "SinGANSegAugmentd"  # the first random transform: caching stops here
    augment = chain.transforms[3]
    assert isinstance(augment, SinGANSegAugmentd) and augment.prob == 1.0
    assert (augment.num_samples, augment.keep_original) == (2, True)  # pairs beside the real ones, the default
    assert augment.augment.bank.names == ["nuclei_tile_a_image", "nuclei_tile_b_image"]
    # without augmentation the chain needs no SinGAN-Seg model at all (baseline runs)
    baseline = _preprocessing(augment_prob=0, synthetic_models="/nonexistent")
    assert "SinGANSegAugmentd" not in [type(t).__name__ for t in baseline.transforms]
    # the older per-sample replacement, and the defaults: each tile and one synthetic pair, cut into patches
    replace = _preprocessing(synthetic_models=str(generation_models), synthetic_per_image=0, augment_prob=0.5)
    assert (replace.transforms[3].num_samples, replace.transforms[3].keep_original) == (1, False)
    beside = _preprocessing(synthetic_models=str(generation_models))
    tile = str(ROOT / "data" / "nuclei" / "tiles" / "nuclei_tile_a_image.png")
    out = beside.set_random_state(0)({"image": tile, "label": tile.replace("_image", "_label")})
    assert len(out) == 2 * 4 and all(o["image"].shape == (1, 128, 128) for o in out)  # flat: one batch of 8


def test_segmentation_bundle_without_generation_models_says_run_the_generation_bundle_first(tmp_path):
    # it ended in a 72-line traceback of MONAI's instantiation wrappers around "folder not found"
    missing, out = tmp_path / "no_models", tmp_path / "seg"
    done = _bundle("bundles/singanseg_segmentation/configs/train.json", "--synthetic_models", str(missing),
                   "--output_dir", str(out))
    assert done.returncode != 0
    assert "Traceback" not in done.stdout, done.stdout[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith(f"{missing}: no such folder; run the generation bundle first"), last
    assert not out.exists()
    empty = tmp_path / "empty"  # a folder without checkpoints: the same line
    empty.mkdir()
    done = _bundle("bundles/singanseg_segmentation/configs/train.json", "--synthetic_models", str(empty),
                   "--output_dir", str(out))
    assert done.stdout.strip().splitlines()[-1].startswith(f"{empty}: no SinGAN-Seg models (*.pt) in it; run the "
                                                           "generation bundle first"), done.stdout[-3000:]


def test_every_bundle_ships_a_logging_conf_that_monai_applies():
    # every run warned "Default logging file in .../configs/logging.conf does not exist, skipping logging."
    code = ("from monai.bundle import ConfigWorkflow\n"
            "for name in ('singanseg_generation', 'singanseg_segmentation', 'diffusion_generation'):\n"
            "    ConfigWorkflow(config_file=f'bundles/{name}/configs/train.json', workflow_type=None)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "does not exist, skipping logging" not in done.stdout, done.stdout
    for name in ("singanseg_generation", "singanseg_segmentation", "diffusion_generation"):
        assert f"Setting logging properties based on config: bundles/{name}/configs/logging.conf" in done.stdout


def test_the_documented_baseline_output_is_ignored_by_git():
    # the segmentation docs' baseline run writes runs/baseline, which was left untracked in the checkout
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert "--output_dir runs/baseline" in (BUNDLES / "singanseg_segmentation" / "docs" / "README.md").read_text()
    ignored = subprocess.run(["git", "check-ignore", "-q", "runs/baseline/model.pt"], cwd=ROOT, check=False)
    assert ignored.returncode == 0


def test_segmentation_docs_give_the_class_count_to_num_classes():
    # masks 0..K have K+1 classes; the docs said --num_classes K, which the code reads as classes 0..K-1
    text = " ".join((BUNDLES / "singanseg_segmentation" / "docs" / "README.md").read_text().split())
    assert "Multi-class labels (values 0..K): `--out_channels K+1 --binary_label False` here and `--num_classes K+1`" \
        in text


@pytest.mark.parametrize("variant", [["train.json"], ["train.json", "unetplusplus.json"]])
def test_segmentation_bundle_trains_and_evaluates_on_real_tiles(variant, generation_models, tmp_path):
    models, evaluation = tmp_path / "models", tmp_path / "eval"
    configs = [f"bundles/singanseg_segmentation/configs/{name}" for name in variant]
    done = _bundle(configs, "--epochs", "2", "--val_interval", "1", "--augment_prob", "1.0",
                   "--synthetic_models", str(generation_models), "--output_dir", str(models))
    assert done.returncode == 0, done.stdout[-3000:]
    assert "val_mean_dice" in done.stdout and "val_mean_iou" in done.stdout
    assert (models / "model.pt").is_file() and (models / "model_final.pt").is_file()

    eval_configs = ["bundles/singanseg_segmentation/configs/evaluate.json", *configs[1:]]
    done = _bundle(eval_configs, "--model_dir", str(models), "--output_dir", str(evaluation))
    assert done.returncode == 0, done.stdout[-3000:]
    rows = dict(csv.reader((evaluation / "metrics.csv").open()))
    assert set(rows) == {"test_mean_dice", "test_mean_iou"}
    dice, iou = float(rows["test_mean_dice"]), float(rows["test_mean_iou"])
    assert 0.0 <= iou <= dice <= 1.0  # IoU never exceeds Dice
    per_image = (evaluation / "test_mean_dice_raw.csv").read_text()
    assert "nuclei_tile_d_image.png" in per_image  # the held-out test tile, never trained on
    assert (evaluation / "predictions" / "nuclei_tile_d_image_pred.nii.gz").is_file()


def test_both_bundles_run_in_3d_on_real_mni_volumes(tmp_path):
    """The documented 3D overrides, end to end: grey-matter segmentation of real MNI152 T1 crops (nilearn)."""
    import nibabel as nib
    import numpy as np
    from conftest import GM, T1, mni_crop

    corners = {"a": (60, 80), "b": (100, 80), "c": (60, 120), "d": (100, 120)}
    items = {}
    for name, (x, y) in corners.items():
        box = (slice(x, x + 24), slice(y, y + 24), slice(60, 84))
        t1, affine = mni_crop(T1, box)
        gm, _ = mni_crop(GM, box)
        nib.save(nib.Nifti1Image(t1.astype(np.float32), affine), tmp_path / f"case_{name}.nii.gz")
        nib.save(nib.Nifti1Image((gm > 127).astype(np.uint8), affine), tmp_path / f"case_{name}_gm.nii.gz")
        items[name] = {"image": f"case_{name}.nii.gz", "label": f"case_{name}_gm.nii.gz"}
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [items["a"], items["b"]], "validation": [items["c"]],
                                    "test": [items["d"]]}))
    models = tmp_path / "singanseg_models"
    done = _bundle("bundles/singanseg_generation/configs/train.json", "--datalist", str(datalist), "--output_dir",
                   str(models), "--iters", "1", "--max_size", "16", "--min_size", "12")
    assert done.returncode == 0, done.stdout[-3000:]
    assert SinGANSeg.load(models / "case_a.pt").config.spatial_dims == 3

    volume = ["--datalist", str(datalist), "--spatial_dims", "3", "--patch_size", "[16,16,16]",
              "--intensity_range", "[0,255]"]
    done = _bundle("bundles/singanseg_segmentation/configs/train.json", *volume, "--synthetic_models", str(models),
                   "--output_dir", str(tmp_path / "seg"), "--epochs", "1", "--val_interval", "1",
                   "--augment_prob", "1.0")
    assert done.returncode == 0, done.stdout[-3000:]
    done = _bundle("bundles/singanseg_segmentation/configs/evaluate.json", *volume, "--model_dir",
                   str(tmp_path / "seg"), "--output_dir", str(tmp_path / "eval"))
    assert done.returncode == 0, done.stdout[-3000:]
    prediction = nib.load(tmp_path / "eval" / "predictions" / "case_d_pred.nii.gz")
    assert prediction.shape[:3] == (24, 24, 24)
    assert np.allclose(prediction.affine, nib.load(tmp_path / "case_d.nii.gz").affine, atol=1e-4)  # same grid
    rows = dict(csv.reader((tmp_path / "eval" / "metrics.csv").open()))
    assert 0.0 <= float(rows["test_mean_iou"]) <= float(rows["test_mean_dice"]) <= 1.0


def _tiny_diffusion(**overrides: str) -> list[str]:
    """Command-line overrides for a diffusion model small and short enough for a test (seconds on one CPU thread)."""
    options = {"train_steps": "4", "image_size": "32", "unet_channels": "[16, 32]", "batch_size": "2", **overrides}
    return [arg for key, value in options.items() for arg in (f"--{key}", value)]


def test_diffusion_metadata_is_valid_against_the_shipped_schema_offline(tmp_path):
    schema = tmp_path / SCHEMA.name
    shutil.copy(SCHEMA, schema)  # verify_metadata only downloads when the file is missing
    verify_metadata(meta_file=str(DIFFUSION / "metadata.json"), filepath=str(schema), hash_val=SCHEMA_MD5)


def test_diffusion_train_defaults_build_the_network_the_metadata_describes():
    parser = ConfigParser()
    parser.read_config(str(DIFFUSION / "train.json"))
    assert parser["datalist"] == "data/nuclei/tiles/datalist.json" and parser["clusters"] == 1
    parser["datalist"] = str(ROOT / parser["datalist"])  # the bundle runs from the repository root; pytest may not
    names, pairs = parser.get_parsed_content("datalist_pairs")
    assert names == ["nuclei_tile_a_image", "nuclei_tile_b_image"]
    config = parser.get_parsed_content("make_config")(pairs[0])
    assert config.image_size == (64, 64) and config.unet_channels == (32, 64, 64, 64)
    assert config.attention_levels == (False, False, False, True) and config.train_steps == 3000
    assert parser.get_parsed_content("out") == "bundles/diffusion_generation/models/diffusion.pt"

    network = json.loads((DIFFUSION / "metadata.json").read_text())["network_data_format"]
    image, timesteps = network["inputs"]["image"], network["inputs"]["timesteps"]
    assert image["num_channels"] == config.channels == network["outputs"]["pred"]["num_channels"]
    assert image["spatial_shape"] == [f"{config.size_multiple}*n"] * 2
    assert timesteps["value_range"] == [0, config.num_train_timesteps - 1]
    model = PairDiffusion(config)
    x = torch.randn(2, image["num_channels"], 40, 64)  # any sides that are multiples of 8, not only the crop size
    assert model.predict_noise(x, timesteps["value_range"][1]).shape == x.shape


def test_diffusion_bundle_trains_one_model_then_samples_a_shareable_datalist(tmp_path):
    models, synthetic = tmp_path / "models", tmp_path / "synthetic"
    done = _bundle("bundles/diffusion_generation/configs/train.json", *_tiny_diffusion(), "--output_dir", str(models))
    assert done.returncode == 0, done.stdout[-3000:]
    assert sorted(p.name for p in models.iterdir()) == ["diffusion.pt"]  # one model for both training tiles
    assert checkpoint_kind(models / "diffusion.pt") == "diffusion"
    config = PairDiffusion.load(models / "diffusion.pt").config
    assert (config.image_channels, config.mask_channels, config.image_size) == (1, 1, (32, 32))
    assert config.unet_channels == (16, 32) and config.train_steps == 4

    done = _bundle("bundles/diffusion_generation/configs/inference.json", "--models_dir", str(models),
                   "--output_dir", str(synthetic), "--num_samples", "3", "--steps", "2")
    assert done.returncode == 0, done.stdout[-3000:]
    items = load_decathlon_datalist(str(synthetic / "synthetic_datalist.json"), data_list_key="training")
    written = sorted((synthetic / "diffusion").glob("sample_*_label.png"))
    assert len(written) == 3 and sorted(Path(i["label"]).resolve() for i in items) == written
    assert (synthetic / "diffusion" / "preview.png").is_file()
    for item in items:
        image, label = np.asarray(Image.open(item["image"])), np.asarray(Image.open(item["label"]))
        assert image.shape == label.shape == (32, 32)  # the training crop size
        assert set(np.unique(label).tolist()) <= {0, 255}  # binary, in the training masks' values


def test_diffusion_bundle_trains_one_model_per_cluster(tmp_path):
    out = tmp_path / "clusters"
    done = _bundle("bundles/diffusion_generation/configs/train.json", *_tiny_diffusion(train_steps="2"),
                   "--clusters", "2", "--output_dir", str(out))
    assert done.returncode == 0, done.stdout[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["cluster_0.pt", "cluster_1.pt", "clusters.json"]
    assert all(checkpoint_kind(out / f"cluster_{k}.pt") == "diffusion" for k in range(2))
    clusters = json.loads((out / "clusters.json").read_text())
    assert clusters["members"] == {"0": ["nuclei_tile_a_image"], "1": ["nuclei_tile_b_image"]}


def _last_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0 and "Traceback" not in done.stdout, done.stdout[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_generation_bundle_refuses_bad_options_in_one_line_before_writing(nuclei_model, tmp_path):
    models, out = tmp_path / "models", tmp_path / "synthetic"
    models.mkdir()
    shutil.copy(nuclei_model[1], models / "nuclei.pt")
    inference = "bundles/singanseg_generation/configs/inference.json"
    # jpg made the output folder, then failed in the writer after a traceback
    last = _last_line(_bundle(inference, "--models_dir", str(models), "--output_dir", str(out), "--format", "jpg"))
    assert last.startswith("format 'jpg': pairs are written as png or nii.gz"), last
    assert not out.exists()
    # 99 was clipped to the model's top scale without a word, where 'singanseg sample --start-scale 99' is refused
    last = _last_line(_bundle(inference, "--models_dir", str(models), "--output_dir", str(out), "--start_scale", "99"))
    top = nuclei_model[0].num_scales - 1
    assert last.startswith(f"start scale 99: must lie in [0, {top}]"), last
    assert not out.exists()
    a_file = tmp_path / "notes.txt"  # train's --output_dir that is a file: a FileExistsError traceback
    a_file.write_text("not a folder")
    last = _last_line(_bundle("bundles/singanseg_generation/configs/train.json", "--output_dir", str(a_file)))
    assert last == f"{a_file}: exists and is not a folder.", last


def test_bundle_counts_are_named_by_their_bundle_option(tmp_path):
    # --clusters 0 said "diffusion.pt: with 0 clusters the output is a folder"; --synthetic_per_image -1 said
    # "num_samples must be a whole number of at least 1, got 0"
    last = _last_line(_bundle("bundles/diffusion_generation/configs/train.json", "--clusters", "0", "--output_dir",
                              str(tmp_path / "diffusion")))
    assert last == "--clusters 0: k-means clusters of the pairs, one model each, a whole number of at least 1.", last
    last = _last_line(_bundle("bundles/singanseg_segmentation/configs/train.json", "--synthetic_per_image", "-1",
                              "--augment_prob", "0", "--output_dir", str(tmp_path / "seg")))
    assert last.startswith("--synthetic_per_image -1: synthetic pairs drawn beside each real image"), last
    assert not (tmp_path / "diffusion").exists() and not (tmp_path / "seg").exists()


@pytest.mark.parametrize("config, transforms", [("train.json", "load_pair"), ("evaluate.json", "preprocessing")])
def test_segmentation_bundle_builds_its_loader_without_the_nvimagecodec_notices(config, transforms):
    # every run printed "nvImageCodec is not available; skipping ..." and "... did not register successfully ..."
    code = f"""
import logging, warnings
from monai.bundle import ConfigParser
parser = ConfigParser()
parser.read_config({str(SEGMENTATION / config)!r})
parser["augment_prob"] = 0  # the baseline: no generation models needed
for expression in parser["initialize"]:
    parser.get_parsed_content("initialize#" + str(parser["initialize"].index(expression)))
parser.get_parsed_content({transforms!r})
logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").warning("another notice of that logger")
warnings.warn("NvImgCodecPydicomReader ignores to_gpu=True")
warnings.warn("an unrelated warning")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "nvImageCodec is not available" not in done.stdout and "did not register" not in done.stdout, done.stdout
    for other in ("another notice of that logger", "ignores to_gpu=True", "an unrelated warning"):  # still said
        assert other in done.stdout, (other, done.stdout)
