"""Training the StyleGAN generator on the real nuclei tiles (data/nuclei/tiles, BSD-3) in seconds: it changes the
model, resumes to the uninterrupted result, feeds the transforms, the ``singanseg`` commands and the report, and
refuses bad data with one line naming the file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import TILES, nuclei_tile
from ignite.engine import Events
from PIL import Image

from monai_singanseg import SyntheticPairAugment, SyntheticPairAugmentd
from monai_singanseg.cli import main
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.stylegan import PairStyleGAN, StyleGANConfig, StyleGANTrainer, train_stylegan_models

SMALL = {"resolution": 32, "widths": (16, 16, 8, 8), "latent_dim": 16, "style_dim": 16, "mapping_layers": 2,
         "batch_size": 4, "r1_interval": 2, "checkpoint_every": 3}
SMALL_FLAGS = ["--resolution", "32", "--widths", "16", "16", "8", "8", "--latent-dim", "16", "--style-dim", "16",
               "--mapping-layers", "2", "--batch-size", "4", "--r1-interval", "2", "--checkpoint-every", "3",
               "--quiet"]


@pytest.fixture(scope="module")
def tiles():
    """The two training tiles of the shipped datalist (real 256x256 nuclei image + mask pairs)."""
    return [nuclei_tile("a"), nuclei_tile("b")]


def config(tiles, design: str = "joint", **fields) -> StyleGANConfig:
    return StyleGANConfig.for_pair(tiles[0], design=design, **{**SMALL, "train_steps": 6, **fields})


@pytest.fixture(scope="module")
def trained(tiles, tmp_path_factory):
    """(model, checkpoint) per design, 6 steps each."""
    out = {}
    for design in ("joint", "mask_then_image"):
        path = tmp_path_factory.mktemp(design) / "stylegan.pt"
        out[design] = (StyleGANTrainer(config(tiles, design), progress=False).fit(tiles, path), path)
    return out


@pytest.mark.parametrize("design", ["joint", "mask_then_image"])
def test_training_changes_the_model_and_logs_finite_losses(tiles, trained, design):
    model, path = trained[design]
    untrained = PairStyleGAN(config(tiles, design))
    assert not torch.equal(model.generate(2, seed=0), untrained.generate(2, seed=0))
    state = torch.load(path, map_location="cpu", weights_only=True)["training"]
    assert state["complete"] and state["step"] == 6 and [r["step"] for r in state["log"]] == [3, 6]
    names = ["pair"] if design == "joint" else ["mask", "image"]
    for record in state["log"]:
        for name in names:
            assert all(np.isfinite(record[f"{name}/{loss}"]) for loss in ("critic", "generator", "r1"))
    assert model.source["shape"] == [256, 256]  # of the first pair; its intensity map is both pairs' union
    assert model.intensity.upper == [max(t.intensity.upper[0] for t in tiles)]


@pytest.mark.parametrize("design", ["joint", "mask_then_image"])
def test_a_resumed_run_equals_an_uninterrupted_one(tiles, trained, tmp_path, design):
    whole, whole_path = trained[design]
    path = tmp_path / "stopped.pt"
    StyleGANTrainer(config(tiles, design), progress=False, stop_after=4).fit(tiles, path)
    assert not torch.load(path, weights_only=True)["training"]["complete"]
    with pytest.raises(SinGANSegInputError, match="stopped at step 4 of 6"):
        PairStyleGAN.from_checkpoint(path, require_complete=True)
    resumed = StyleGANTrainer(config(tiles, design), progress=False).fit(tiles, path, resume=True)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    critics = [torch.load(p, weights_only=True)["training"]["critics"] for p in (whole_path, path)]
    assert all(torch.equal(critics[0][n][k], critics[1][n][k]) for n in critics[0] for k in critics[0][n])
    with pytest.raises(SinGANSegInputError, match="trained on other data"):
        StyleGANTrainer(config(tiles, design), progress=False).fit(tiles[::-1], path, resume=True)


def test_resuming_extends_the_run_and_warns_of_the_options_the_checkpoint_keeps(tiles, tmp_path, caplog):
    path = tmp_path / "m.pt"
    StyleGANTrainer(config(tiles, train_steps=2), progress=False).fit(tiles, path)
    with caplog.at_level("WARNING", logger="monai_singanseg.stylegan.trainer"):
        model = StyleGANTrainer(config(tiles, train_steps=3, lr=0.01), progress=False).fit(tiles, path, resume=True)
    assert model.config.lr == config(tiles).lr and model.config.train_steps == 3  # train_steps may change
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == [
        f"resuming with the checkpoint's options: lr: {config(tiles).lr!r} kept (asked 0.01)"]
    assert torch.load(path, weights_only=True)["training"]["step"] == 3


def test_handler_objects_and_functions_attach_after_the_checkpoint_writer(tiles, tmp_path):
    seen = []

    class Written:  # a handler object: at each step, is the checkpoint of a due step already written?
        def attach(self, engine):
            engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(
                (e.state.iteration, torch.load(tmp_path / "m.pt", weights_only=True)["training"]["step"]
                 if (tmp_path / "m.pt").exists() else None)))

    def losses(engine):  # a plain function, as handlers were before handler objects
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(sorted(e.state.output)))

    StyleGANTrainer(config(tiles, train_steps=3), progress=False, handlers=[Written(), losses]).fit(
        tiles, tmp_path / "m.pt")
    assert seen[::2] == [(1, None), (2, None), (3, 3)]  # checkpoint_every=3: written before the user's handler
    assert seen[1] == ["pair/critic", "pair/generator", "pair/r1"]


def test_class_conditioning_trains_and_draws_per_class(tiles, tmp_path):
    model = StyleGANTrainer(config(tiles, num_classes=2, train_steps=2), progress=False).fit(
        tiles, tmp_path / "classes.pt", classes=[0, 1])
    assert not torch.equal(model.generate(2, seed=0, classes=0), model.generate(2, seed=0, classes=1))
    with pytest.raises(SinGANSegInputError, match="one class index per pair"):
        StyleGANTrainer(config(tiles, num_classes=2), progress=False).fit(tiles, tmp_path / "x.pt")


@pytest.mark.parametrize("design", ["joint", "mask_then_image"])
def test_the_transforms_yield_pairs_with_a_binary_mask_of_the_input_shape(tiles, trained, design):
    _, path = trained[design]
    pair = tiles[0]
    image, label = pair.intensity.denormalize(pair.real[:1]), pair.labels.decode(pair.real[1:])
    augment = SyntheticPairAugment(path, prob=1.0)
    augment.set_random_state(0)
    out_image, out_label = augment(image, label)
    assert out_image.shape == image.shape and out_label.shape == label.shape
    assert set(torch.unique(torch.as_tensor(out_label)).tolist()) <= {0.0, 255.0}
    assert not torch.equal(torch.as_tensor(out_image), image)
    data = SyntheticPairAugmentd(["image"], "label", [path], prob=1.0).set_random_state(1)(
        {"image": image, "label": label})
    assert data["image"].shape == image.shape and data["label"].shape == label.shape


def test_the_runner_trains_skips_and_resumes(tiles, tmp_path):
    out = tmp_path / "runner.pt"
    summary = train_stylegan_models(tiles, out, config(tiles, train_steps=3), device="cpu")
    assert summary["done"] == 1 and summary["models"][0]["steps"] == 3
    summary = train_stylegan_models(tiles, out, config(tiles, train_steps=3), device="cpu", resume=True)
    assert summary["skipped"] == 1
    summary = train_stylegan_models(tiles, out, config(tiles, train_steps=4), device="cpu", resume=True)
    assert summary["resumed"] == 1 and summary["models"][0]["steps"] == 4
    with pytest.raises(SinGANSegInputError, match="already exists"):
        train_stylegan_models(tiles, out, config(tiles), device="cpu")


def test_commands_train_sample_and_draw_images_for_given_masks(tmp_path, capsys):
    model = tmp_path / "m.pt"
    assert main(["train-stylegan", str(TILES / "datalist.json"), "--out", str(model), "--design", "mask_then_image",
                 "--train-steps", "3", *SMALL_FLAGS]) == 0
    assert "mask_then_image, 3 steps" in capsys.readouterr().out
    assert main(["sample", str(model), "--num", "3", "--out", str(tmp_path / "new")]) == 0
    labels = sorted((tmp_path / "new").glob("*_label.png"))
    assert len(labels) == 3 and set(np.unique(np.asarray(Image.open(labels[0])))) <= {0, 255}
    given = TILES / "nuclei_tile_c_label.png"
    assert main(["sample", str(model), "--num", "2", "--out", str(tmp_path / "given"), "--masks", str(given)]) == 0
    written = np.asarray(Image.open(tmp_path / "given" / "sample_0001_label.png")) > 0
    expected = torch.nn.functional.interpolate(
        torch.as_tensor(np.asarray(Image.open(given)) > 0).float().T[None, None], size=(32, 32), mode="nearest")[0, 0]
    assert np.array_equal(written, expected.T.numpy() > 0)  # the image was drawn for the mask given
    assert main(["sample", str(model), "--num", "2", "--out", str(tmp_path / "x"), "--start-scale", "1"]) == 2
    assert "a StyleGAN model; --start-scale: options of the other kinds" in capsys.readouterr().err


def test_report_of_a_stylegan_model(trained, tmp_path, capsys):
    _, path = trained["mask_then_image"]
    assert main(["report", str(path), "--image", str(TILES / "nuclei_tile_a_image.png"), "--label",
                 str(TILES / "nuclei_tile_a_label.png"), "--num", "3", "--out", str(tmp_path / "report"),
                 "--quiet"]) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert set(metrics["samplers"]) == {"sample", "for_real_mask"}
    assert (tmp_path / "report" / "grid_for_real_mask.png").is_file()


def _datalist(tmp_path, items) -> str:
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": items}))
    return str(path)


def test_bad_data_is_one_line_naming_the_file(tmp_path, capsys):
    for name in ("a", "b"):
        for part in ("image", "label"):
            shutil.copy(TILES / f"nuclei_tile_{name}_{part}.png", tmp_path)
    # a colour image among grey ones: its channel count does not fit the model's
    grey = np.asarray(Image.open(tmp_path / "nuclei_tile_b_image.png"))
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "colour.png")
    items = [{"image": "nuclei_tile_a_image.png", "label": "nuclei_tile_a_label.png"},
             {"image": "colour.png", "label": "nuclei_tile_b_label.png"}]
    out = tmp_path / "m.pt"
    assert main(["train-stylegan", _datalist(tmp_path, items), "--out", str(out), "--train-steps", "1",
                 *SMALL_FLAGS]) == 2
    err = capsys.readouterr().err
    assert "colour.png: 4 channels (3 image + 1 mask); the model expects 2 (1 image + 1 mask)" in err
    assert err.count("\n") == 1 and not out.exists()
    # a mask of three values is no binary mask
    mask = np.asarray(Image.open(tmp_path / "nuclei_tile_b_label.png")).copy()
    mask[:10] = 128
    Image.fromarray(mask).save(tmp_path / "three_values.png")
    items[1] = {"image": "nuclei_tile_b_image.png", "label": "three_values.png"}
    assert main(["train-stylegan", _datalist(tmp_path, items), "--out", str(out), "--train-steps", "1",
                 *SMALL_FLAGS]) == 2
    err = capsys.readouterr().err
    assert "three_values.png: mask is not binary" in err and not out.exists()
    # a class key the items lack
    items[1] = {"image": "nuclei_tile_b_image.png", "label": "nuclei_tile_b_label.png"}
    assert main(["train-stylegan", _datalist(tmp_path, items), "--out", str(out), "--class-key", "contrast",
                 *SMALL_FLAGS]) == 2
    assert "has no 'contrast' (--class-key)" in capsys.readouterr().err


def test_losses_go_to_tensorboard(tiles, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    StyleGANTrainer(config(tiles, "mask_then_image", train_steps=2), progress=False, log_dir=tmp_path / "tb").fit(
        tiles, tmp_path / "m.pt")
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"stylegan/mask/critic", "stylegan/image/generator", "stylegan/image/r1"} <= tags
    assert [e.step for e in events.Scalars("stylegan/mask/critic")] == [1, 2]


def test_classes_from_the_datalist_are_named_in_the_checkpoint(tmp_path, capsys):
    items = [{"image": str(TILES / f"nuclei_tile_{k}_image.png"), "label": str(TILES / f"nuclei_tile_{k}_label.png"),
              "stain": stain} for k, stain in (("a", "he"), ("b", "dapi"), ("c", "he"))]
    model = tmp_path / "m.pt"
    assert main(["train-stylegan", _datalist(tmp_path, items), "--out", str(model), "--class-key", "stain",
                 "--train-steps", "2", *SMALL_FLAGS]) == 0
    assert "classes dapi, he" in capsys.readouterr().out
    loaded = PairStyleGAN.load(model)
    assert loaded.config.num_classes == 2 and loaded.source["classes"] == ["dapi", "he"]
    assert main(["sample", str(model), "--num", "2", "--out", str(tmp_path / "he"), "--class-name", "he"]) == 0
    assert main(["sample", str(model), "--num", "2", "--out", str(tmp_path / "x"), "--class-name", "ki67"]) == 2
    assert "class 'ki67': its classes are dapi, he" in capsys.readouterr().err
