"""The diffusion generator behind the user surface shared with SinGAN-Seg: the transforms (inpainting the incoming
pair, or new pairs), the model bank and checkpoint dispatch, ``singanseg train-diffusion`` (one model, or one per
cluster), ``sample`` and ``report``; on the real nuclei sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL, tiny_diffusion_config
from monai.data import MetaTensor

from monai_singanseg import (
    SinGANSegAugment,
    SinGANSegAugmentd,
    SinGANSegHarmonize,
    SinGANSegInputError,
    SyntheticPairAugment,
    SyntheticPairAugmentd,
    TrainingPair,
    read_image,
)
from monai_singanseg.cli import main
from monai_singanseg.diffusion import DiffusionConfig, DiffusionSampling, DiffusionTrainer, PairDiffusion
from monai_singanseg.diffusion.inpainting import inpaint_pair, label_region
from monai_singanseg.generation import write_diffusion_samples
from monai_singanseg.generators import checkpoint_kind, is_diffusion, load_generator

FAST = {"steps": 4, "jump_length": 2, "resample": 2, "dilation": 2}  # a few network calls per sample


@pytest.fixture(scope="module")
def diffusion(tmp_path_factory, nuclei_pair) -> tuple[PairDiffusion, object]:
    """(model, checkpoint) of a tiny diffusion model trained 10 steps on a 64x64 crop of the real nuclei pair."""
    real = nuclei_pair.real[:, 64:128, 112:176].clone()
    path = tmp_path_factory.mktemp("diffusion") / "nuclei.pt"
    crop = TrainingPair(real, nuclei_pair.intensity, nuclei_pair.labels, nuclei_pair.meta)
    return DiffusionTrainer(tiny_diffusion_config(), progress=False).fit([crop], path), path


@pytest.fixture(scope="module")
def real_crop() -> tuple[np.ndarray, np.ndarray]:
    """A 41x50 crop (sides no multiple of the UNet's 2) of the real nuclei image (0..255) and its 0/255 mask."""
    image = read_image(NUCLEI_IMAGE).as_tensor().numpy()[:, 70:111, 120:170].astype(np.float32)
    label = read_image(NUCLEI_LABEL).as_tensor().numpy()[:, 70:111, 120:170].astype(np.float32)
    assert set(np.unique(label)) == {0.0, 255.0} and 0.05 < (label > 0).mean() < 0.6
    return image, label


def tiles_datalist(folder, tiles: str):
    """A datalist of the shipped real nuclei tiles named in ``tiles`` (of "abcd")."""
    where = NUCLEI_IMAGE.parent / "tiles"
    items = [{"image": str(where / f"nuclei_tile_{t}_image.png"), "label": str(where / f"nuclei_tile_{t}_label.png")}
             for t in tiles]
    datalist = folder / "datalist.json"
    datalist.write_text(json.dumps({"training": items}))
    return datalist


def region_of(label: np.ndarray, dilation: int) -> np.ndarray:
    return label_region(torch.as_tensor(label != 0).float(), dilation).numpy()


def test_checkpoint_kind_and_loading(diffusion, nuclei_model, tmp_path):
    _, path = diffusion
    assert checkpoint_kind(path) == "diffusion" and checkpoint_kind(nuclei_model[1]) == "singanseg"
    assert is_diffusion(load_generator(path)) and not is_diffusion(load_generator(nuclei_model[1]))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(SinGANSegInputError, match="foreign.pt: not a monai-singanseg checkpoint"):
        load_generator(foreign)


def test_unfinished_diffusion_checkpoint_refused(nuclei_pair, tmp_path):
    path = tmp_path / "half.pt"
    real = nuclei_pair.real[:, :64, :64].clone()
    DiffusionTrainer(tiny_diffusion_config(), progress=False, stop_after=5).fit([real], path)
    with pytest.raises(SinGANSegInputError, match="stopped at step 5 of 10"):
        load_generator(path)
    assert is_diffusion(load_generator(path, require_complete=False))


def test_inpaint_transform_redraws_the_region_only(diffusion, real_crop):
    model, _ = diffusion
    image, label = real_crop
    augment = SyntheticPairAugment(model, prob=1.0, diffusion=FAST).set_random_state(5)
    out_image, out_label = augment(image, label)
    assert type(out_image) is np.ndarray and out_image.dtype == image.dtype and out_image.shape == image.shape
    assert out_label.shape == label.shape and set(np.unique(out_label)) <= {0.0, 255.0}
    region = region_of(label, FAST["dilation"])
    outside = ~region[0]
    assert np.array_equal(out_image[0][outside], image[0][outside])  # the real context, bit for bit
    assert np.array_equal(out_label[0][outside], label[0][outside])
    assert np.abs(out_image[0][region[0]] - image[0][region[0]]).mean() > 1.0  # redrawn in the image's units
    again = SyntheticPairAugment(model, prob=1.0, diffusion=FAST).set_random_state(5)(image, label)
    assert np.array_equal(again[0], out_image) and np.array_equal(again[1], out_label)
    other = SyntheticPairAugment(model, prob=1.0, diffusion=FAST).set_random_state(6)(image, label)
    assert not np.array_equal(other[0], out_image)


def test_inpaint_transform_passes_an_empty_label_through(diffusion, real_crop):
    model, _ = diffusion
    image, label = real_crop
    empty = np.zeros_like(label)
    out_image, out_label = SinGANSegAugment(model, prob=1.0, diffusion=FAST)(image, empty)
    assert out_image is image and out_label is empty


def test_sample_mode_makes_a_whole_new_pair_of_the_input_size(diffusion, real_crop):
    model, _ = diffusion
    image, label = real_crop
    augment = SyntheticPairAugment(model, prob=1.0, diffusion={"mode": "sample", "steps": 3})
    out_image, out_label = augment(torch.as_tensor(image), torch.as_tensor(label))
    assert out_image.shape == image.shape and set(torch.unique(out_label).tolist()) <= {0.0, 255.0}
    assert not np.array_equal(out_image.numpy(), image)
    low, high = model.intensity.lower[0], model.intensity.upper[0]
    assert low - 1e-3 <= float(out_image.min()) and float(out_image.max()) <= high + 1e-3


def test_dictionary_transform_takes_a_diffusion_checkpoint(diffusion, real_crop):
    _, path = diffusion
    image, label = real_crop
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    data = {"image": MetaTensor(torch.as_tensor(image), affine=affine), "label": MetaTensor(torch.as_tensor(label))}
    augment = SyntheticPairAugmentd(["image"], "label", str(path), prob=1.0, diffusion=FAST)
    assert SyntheticPairAugmentd is SinGANSegAugmentd
    out = augment.set_random_state(1)(data)
    assert isinstance(out["image"], MetaTensor) and np.allclose(out["image"].affine.numpy(), affine)
    outside = ~region_of(label, FAST["dilation"])[0]
    assert torch.equal(out["image"][0][outside], data["image"][0][outside])


def test_a_bank_mixes_both_kinds(diffusion, nuclei_model, real_crop, tmp_path):
    (tmp_path / "bank").mkdir()
    (tmp_path / "bank" / "gan.pt").write_bytes(nuclei_model[1].read_bytes())
    (tmp_path / "bank" / "diffusion.pt").write_bytes(diffusion[1].read_bytes())
    image, label = real_crop
    augment = SyntheticPairAugment(tmp_path / "bank", prob=1.0, model_choice="random", diffusion=FAST)
    kinds = set()
    for seed in range(6):
        augment.set_random_state(seed)
        out_image, out_label = augment(image, label)
        assert out_image.shape == image.shape and set(np.unique(out_label)) <= {0.0, 255.0}
        kinds.add(augment.last_draw.random_model)
    assert kinds == {"gan", "diffusion"}


def test_harmonization_refuses_a_diffusion_model(diffusion, real_crop):
    image, label = real_crop
    harmonize = SinGANSegHarmonize(diffusion[0], donors=[(image, label)], prob=1.0, at_scale=1)
    with pytest.raises(SinGANSegInputError, match="a diffusion model; harmonization injects"):
        harmonize(image, None)


def test_inpaint_pair_pads_any_size_and_keeps_the_context(diffusion, nuclei_pair):
    model, _ = diffusion
    pair = nuclei_pair.real[:, 10:47, 20:59]  # 37 x 39
    region = label_region(model.labels.indices(pair[1:]), 1)
    out = inpaint_pair(model, pair, region, DiffusionSampling(**FAST), num=2,
                       generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 2, 37, 39)
    assert torch.equal(out[:, :, ~region[0]], pair[None].expand(2, -1, -1, -1)[:, :, ~region[0]])
    assert not torch.equal(out[0], out[1])  # two redraws differ


def test_a_singanseg_model_refuses_diffusion_options(nuclei_model, tmp_path, capsys):
    path = str(nuclei_model[1])
    assert main(["sample", path, "--num", "1", "--out", str(tmp_path / "a"), "--steps", "20"]) == 2
    assert "diffusion options" in capsys.readouterr().err
    assert main(["sample", path, "--num", "1", "--out", str(tmp_path / "b"), "--inpaint-region", path]) == 2
    assert "needs a diffusion model" in capsys.readouterr().err
    assert main(["sample", path, "--num", "1", "--out", str(tmp_path / "c")]) == 0


def test_inpainting_files_are_checked_by_name(diffusion, real_crop, tmp_path, capsys):
    from PIL import Image

    image, label = real_crop
    grey = label[0].copy()
    grey[0, :3] = 60  # a third value, as an interpolating resize leaves
    files = {"image.png": image[0], "half.png": label[0, :20], "grey.png": grey, "empty.png": np.zeros_like(grey),
             "box.png": np.pad(np.full((10, 10), 255.0), ((5, 26), (5, 35)))}
    for name, array in files.items():
        Image.fromarray(array.astype(np.uint8)).save(tmp_path / name)

    def run(label: str, *region: str) -> tuple[int, str]:
        code = main(["sample", str(diffusion[1]), "--num", "1", "--out", str(tmp_path / f"out_{label}"), "--steps",
                     "2", "--resample", "1", "--inpaint-image", str(tmp_path / "image.png"), "--inpaint-label",
                     str(tmp_path / label), *(["--inpaint-region", str(tmp_path / region[0])] if region else [])])
        return code, capsys.readouterr().err

    for label, region, fragments in (("half.png", (), ["half.png", "does not match the image"]),
                                     ("grey.png", (), ["grey.png", "not binary"]),
                                     ("empty.png", (), ["empty.png", "empty mask"]),
                                     ("box.png", ("grey.png",), ["grey.png", "not binary"])):
        code, err = run(label, *region)
        assert code == 2 and all(f in err for f in fragments) and "Traceback" not in err, err
        assert not (tmp_path / f"out_{label}").exists()
    # with a region to redraw, the label may hold no structure yet: a new one is drawn there
    code, err = run("empty.png", "box.png")
    assert code == 0, err


def test_write_diffusion_samples_refuses_an_empty_context(diffusion, real_crop, tmp_path):
    model, _ = diffusion
    image, label = real_crop
    with pytest.raises(SinGANSegInputError, match="region to redraw is empty"):
        write_diffusion_samples(model, tmp_path / "s", 1, FAST, context=(torch.as_tensor(image),
                                                                         torch.zeros_like(torch.as_tensor(label))))
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


def test_write_diffusion_samples_redraws_a_region_the_user_gives(diffusion, real_crop, tmp_path):
    model, _ = diffusion
    image, label = (torch.as_tensor(a) for a in real_crop)
    region = torch.zeros_like(label)
    region[:, 5:20, 10:30] = 1  # a box, wherever the nuclei are
    write_diffusion_samples(model, tmp_path, 1, FAST, context=(image, label), region=region)
    out_image = read_image(tmp_path / "sample_0000_image.png").as_tensor()
    out_label = read_image(tmp_path / "sample_0000_label.png").as_tensor()
    outside = region == 0
    assert torch.equal(out_image[outside], image[outside].round()) and torch.equal(out_label[outside], label[outside])
    assert not torch.equal(out_image[~outside], image[~outside].round())


def test_cli_train_diffusion_sample_and_report(tmp_path, capsys):
    model = tmp_path / "m.pt"
    options = ["--image-size", "32", "--unet-channels", "16", "32", "--train-steps", "6", "--batch-size", "2",
               "--timesteps", "50", "--checkpoint-every", "3", "--ema-decay", "0.99", "--quiet"]
    assert main(["train-diffusion", "--image", str(NUCLEI_IMAGE), "--label", str(NUCLEI_LABEL), "--resize", "64",
                 "--out", str(model), *options]) == 0
    assert checkpoint_kind(model) == "diffusion"
    assert load_generator(model).config.ema_decay == 0.99
    assert main(["train-diffusion", "--image", str(NUCLEI_IMAGE), "--label", str(NUCLEI_LABEL), "--resize", "64",
                 "--out", str(model), *options]) == 2
    assert "already exists; pass --resume to continue it" in capsys.readouterr().err  # the flag, not "resume"
    assert main(["sample", str(model), "--num", "2", "--out", str(tmp_path / "new"), "--steps", "3"]) == 0
    written = read_image(tmp_path / "new" / "sample_0000_label.png").as_tensor()
    assert written.shape[1:] == (32, 32) and set(torch.unique(written).tolist()) <= {0.0, 255.0}
    crop = tmp_path / "crop"
    crop.mkdir()
    image, label = read_image(NUCLEI_IMAGE), read_image(NUCLEI_LABEL)
    from monai_singanseg.io import write_image

    write_image(image.as_tensor()[:, 64:128, 112:176], crop / "image.png", dict(image.meta))
    write_image(label.as_tensor()[:, 64:128, 112:176], crop / "label.png", dict(label.meta), is_label=True)
    args = ["--steps", "3", "--resample", "1", "--dilation", "2"]
    assert main(["sample", str(model), "--num", "2", "--out", str(tmp_path / "inpainted"), "--inpaint-image",
                 str(crop / "image.png"), "--inpaint-label", str(crop / "label.png"), "--style", "histogram",
                 *args]) == 0
    redrawn = read_image(tmp_path / "inpainted" / "sample_0001_image.png").as_tensor()
    real = read_image(crop / "image.png").as_tensor()
    outside = ~region_of(read_image(crop / "label.png").as_tensor().numpy(), 2)
    assert redrawn.shape == real.shape and torch.equal(redrawn[torch.as_tensor(outside)],
                                                       real[torch.as_tensor(outside)])
    assert main(["sample", str(model), "--num", "1", "--out", str(tmp_path / "x"), "--start-scale", "1"]) == 2
    assert "SinGAN-Seg options" in capsys.readouterr().err
    assert main(["sample", str(model), "--num", "1", "--out", str(tmp_path / "x"), "--style-steps", "5"]) == 2
    assert "--style and --style-weights only" in capsys.readouterr().err
    # VGG weights that are not there: one line before any sampling, nothing written
    assert main(["sample", str(model), "--num", "1", "--out", str(tmp_path / "vgg"), "--inpaint-image",
                 str(crop / "image.png"), "--inpaint-label", str(crop / "label.png"), "--style", "vgg",
                 "--style-weights", str(tmp_path / "missing.pth"), *args]) == 2
    err = capsys.readouterr().err
    assert "missing.pth" in err and "Traceback" not in err and not (tmp_path / "vgg").exists()
    assert main(["report", str(model), "--image", str(crop / "image.png"), "--label", str(crop / "label.png"),
                 "--out", str(tmp_path / "report"), "--num", "2", "--quiet", *args]) == 0
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert list(report["samplers"]) == ["sample", "inpainted"] and report["shape"] == [64, 64]
    for name in ("grid_sample.png", "grid_inpainted.png", "metrics.md", "mask_mean_std.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    inpainted, sampled = report["samplers"]["inpainted"], report["samplers"]["sample"]
    # redraws keep the real context: closer to the training pair than whole new pairs of a barely trained model
    assert inpainted["swd"]["mean"] < sampled["swd"]["mean"]


def test_cli_train_diffusion_one_model_per_cluster(tmp_path):
    datalist = tiles_datalist(tmp_path, "abcd")
    out = tmp_path / "models"
    args = ["train-diffusion", "--datalist", str(datalist), "--out", str(out), "--clusters", "2", "--resize", "32",
            "--image-size", "32", "--unet-channels", "16", "32", "--train-steps", "2", "--batch-size", "2",
            "--timesteps", "50", "--quiet"]
    assert main(args) == 0
    clusters = json.loads((out / "clusters.json").read_text())
    members = clusters["members"]
    assert sorted(name for names in members.values() for name in names) == [f"nuclei_tile_{t}_image" for t in "abcd"]
    assert all(members[k] for k in ("0", "1"))  # k-means leaves no cluster empty
    for k in (0, 1):
        model = load_generator(out / f"cluster_{k}.pt")
        assert is_diffusion(model) and model.config.image_size == (32, 32)
    before = (out / "cluster_0.pt").read_bytes()
    assert main([*args, "--resume"]) == 0  # finished models are left as they are
    assert (out / "cluster_0.pt").read_bytes() == before


def test_inpaint_keeps_float64_values_and_refuses_a_label_of_another_size(diffusion, real_crop):
    model, _ = diffusion
    image, label = real_crop
    image64 = image.astype(np.float64) + 0.123456789  # values a float32 round trip would change
    out_image, _ = SyntheticPairAugment(model, prob=1.0, diffusion=FAST).set_random_state(2)(image64, label)
    outside = ~region_of(label, FAST["dilation"])[0]
    assert out_image.dtype == np.float64 and np.array_equal(out_image[0][outside], image64[0][outside])
    with pytest.raises(SinGANSegInputError, match="one-channel label of the image's spatial size"):
        SyntheticPairAugment(model, prob=1.0, diffusion=FAST)(image, label[:, :-3])


def test_an_inpainting_draw_replays_and_a_sample_draw_too(diffusion, real_crop):
    """``last_draw`` holds everything a diffusion pair was made with: applied again, the same pair comes out."""
    model, _ = diffusion
    image, label = real_crop
    for options in (FAST, {"mode": "sample", "steps": 2}):
        augment = SyntheticPairAugment(model, prob=1.0, diffusion=options).set_random_state(3)
        out_image, out_label = augment(image, label)
        again_image, again_label = augment.apply(image, label, augment.last_draw)
        assert np.array_equal(out_image, again_image) and np.array_equal(out_label, again_label)


def test_sample_mode_draws_at_the_input_size_not_a_resized_crop(diffusion):
    model, _ = diffusion
    augment = SyntheticPairAugment(model, prob=1.0, diffusion={"mode": "sample", "steps": 2})
    assert augment.samplers[model.kind].generate(model, 2, augment.last_draw, (41, 50)).shape == (2, 2, 41, 50)


def test_bad_diffusion_sampling_options_end_with_one_line(diffusion, real_crop, tmp_path, capsys):
    _, path = diffusion  # trained with 100 timesteps
    assert main(["sample", str(path), "--num", "1", "--out", str(tmp_path / "a"), "--steps", "101"]) == 2
    assert "101 denoising steps; this model was trained with 100 timesteps" in capsys.readouterr().err
    image = tmp_path / "image.nii.gz"
    from monai_singanseg.io import write_image

    write_image(torch.as_tensor(real_crop[0]), image, {})
    assert main(["report", str(path), "--image", str(image), "--label", str(image), "--out", str(tmp_path / "r"),
                 "--dilation", "-1"]) == 2
    assert "dilation and context_margin must be >= 0, got -1" in capsys.readouterr().err
    with pytest.raises(SinGANSegInputError, match="101 denoising steps"):
        SyntheticPairAugment(path, prob=1.0, diffusion={"steps": 101})(*real_crop)


def test_inpainted_files_take_the_context_affine_and_values(diffusion, real_crop, tmp_path):
    model, _ = diffusion
    image, label = (torch.as_tensor(a) for a in real_crop)
    affine = np.diag([2.0, 3.0, 1.0, 1.0])
    bright = image.clone()
    bright[0, 0, :] = 400.0  # beyond the model's 0..255: kept as it is outside the region
    write_diffusion_samples(model, tmp_path, 1, {**FAST, "dilation": 0}, fmt="nii.gz",
                            context=(MetaTensor(bright, affine=affine), label))
    written = read_image(tmp_path / "sample_0000_image.nii.gz")
    assert np.allclose(written.affine.numpy(), affine)
    outside = region_of(label.numpy(), 0)[0] == 0
    torch.testing.assert_close(written.as_tensor()[0][torch.as_tensor(outside)].float(),
                               bright[0][torch.as_tensor(outside)], rtol=0, atol=1e-3)


def test_resuming_clusters_keeps_them_and_refuses_another_count(tmp_path, capsys):
    datalist = tiles_datalist(tmp_path, "abc")
    out = tmp_path / "models"
    args = ["train-diffusion", "--datalist", str(datalist), "--out", str(out), "--resize", "32", "--image-size", "32",
            "--unet-channels", "16", "48", "--train-steps", "1", "--batch-size", "2", "--timesteps", "20", "--quiet"]
    assert main([*args, "--clusters", "2"]) == 0  # 48 wide: attention heads of gcd(32, 48) = 16 channels
    record = (out / "clusters.json").read_text()
    assert main([*args, "--clusters", "3", "--resume"]) == 2
    assert "resuming needs the same pairs and --clusters" in capsys.readouterr().err
    assert main([*args, "--clusters", "2"]) == 2
    assert "already exists; pass --resume to continue these clusters'" in capsys.readouterr().err
    assert (out / "clusters.json").read_text() == record and not (out / "cluster_2.pt").exists()


def test_inpainting_sees_the_region_and_its_margin_only(diffusion, nuclei_pair, monkeypatch):
    model, _ = diffusion
    pair = nuclei_pair.real  # the whole 256 x 256 pair
    region = torch.zeros(1, 256, 256, dtype=torch.bool)
    region[:, 100:110, 40:52] = True
    seen = []
    inpaint = model.inpaint
    monkeypatch.setattr(model, "inpaint", lambda x, r, **kw: seen.append(tuple(x.shape)) or inpaint(x, r, **kw))
    out = inpaint_pair(model, pair, region, DiffusionSampling(**{**FAST, "context_margin": 6}), num=1,
                       generator=torch.Generator().manual_seed(0))
    assert seen == [(1, 2, 22, 24)]  # (10 + 2 * 6) x (12 + 2 * 6), already multiples of 2
    assert out.shape == (1, 2, 256, 256) and torch.equal(out[0][:, ~region[0]], pair[:, ~region[0]])
    assert not torch.equal(out[0][:, region[0]], pair[:, region[0]])
    whole = inpaint_pair(model, pair[:, :40, :40], region[:, :40, :40] | True, DiffusionSampling(
        **{**FAST, "context_margin": None}), generator=torch.Generator().manual_seed(0))
    assert whole.shape == (1, 2, 40, 40)


def test_the_styling_pass_after_inpainting_changes_the_region_only(diffusion, real_crop, nuclei_pair, tmp_path,
                                                                    capsys):
    """A tiny, briefly trained model redraws with the wrong brightness; histogram matching of the context box to
    the real box brings the box's distribution back, inside the region only, and leaves the label as drawn."""
    model, path = diffusion
    pair = nuclei_pair.real[:, 10:47, 20:59]
    region = label_region(model.labels.indices(pair[1:]), 1)
    seed = lambda: torch.Generator().manual_seed(0)
    plain = inpaint_pair(model, pair, region, DiffusionSampling(**FAST), generator=seed())[0]
    styled = inpaint_pair(model, pair, region, DiffusionSampling(**FAST, style="histogram"), generator=seed())[0]
    outside = ~region[0]
    assert torch.equal(styled[:, outside], pair[:, outside])  # the real context stays bit for bit
    assert torch.equal(styled[1:], plain[1:])  # the label is the one drawn
    assert not torch.equal(styled[0, region[0]], plain[0, region[0]])
    # the redrawn region's values now follow the real image's distribution more closely than before
    real_values = torch.sort(pair[0].flatten()).values
    gap = lambda x: (torch.sort(x[0].flatten()).values - real_values).abs().mean()
    assert gap(styled) < gap(plain)
    # the transform and the command line take it too; new pairs refuse it (it is a pass after inpainting)
    image, label = real_crop
    out_image, _ = SyntheticPairAugment(model, prob=1.0, diffusion={**FAST, "style": "histogram"}).set_random_state(
        5)(image, label)
    kept = ~region_of(label, FAST["dilation"])[0]
    assert np.array_equal(out_image[0][kept], image[0][kept])
    with pytest.raises(ValueError, match="pass after inpainting"):
        DiffusionSampling(mode="sample", style="histogram").validate()
    from monai_singanseg.style.vgg import VGGWeightsNotFoundError

    vgg = DiffusionSampling(style="vgg", style_weights=str(tmp_path / "missing.pth")).validate()
    with pytest.raises(VGGWeightsNotFoundError, match="not found"):  # before any RePaint run, not after it
        vgg.check_model(model.config)
    with pytest.raises(SinGANSegInputError, match="2D images"):
        vgg.check_model(tiny_diffusion_config(spatial_dims=3, image_size=16))
    assert main(["sample", str(path), "--num", "1", "--out", str(tmp_path / "s"), "--style", "histogram"]) == 2
    assert "pass after inpainting" in capsys.readouterr().err


def test_inpainting_pools_the_redraws_of_each_input(diffusion, real_crop, monkeypatch):
    """With a pool, the redraws of one input are made in one batch and served from it; another input gets its own."""
    import monai_singanseg.transforms.sampling as sampling_module

    model, _ = diffusion
    image, label = real_crop
    calls = []
    real_inpaint = sampling_module.inpaint_pair
    monkeypatch.setattr(sampling_module, "inpaint_pair", lambda *a, **k: calls.append(a[4]) or real_inpaint(*a, **k))
    unpooled = SyntheticPairAugment(model, prob=1.0, diffusion=FAST, pool_size=4).set_random_state(0)
    unpooled(image, label), unpooled(image, label)
    assert calls == [1, 1]  # pooling redraws is opt-in: a pool of new pairs alone redraws every time
    calls.clear()
    augment = SyntheticPairAugment(model, prob=1.0, diffusion={**FAST, "pool_redraws": True}, pool_size=4,
                                   pool_refresh=1.0)
    augment.set_random_state(0)
    outs = [augment(image, label)[0] for _ in range(3)]
    assert calls == [4, 2]  # one batch of 4; topped up with 2 once half had been served
    kept = ~region_of(label, FAST["dilation"])[0]
    assert all(np.array_equal(o[0][kept], image[0][kept]) for o in outs)  # the context still bit for bit
    assert not np.array_equal(outs[0], outs[1])  # served redraws differ
    other = image.copy()
    other[0, 0, 0] += 1.0  # another input: its own pool
    augment(other, label)
    assert calls == [4, 2, 4]
    monkeypatch.setattr(augment.redraws, "max_keys", 1)  # only the last input's redraws are kept
    augment(other, label), augment(image, label)
    assert calls == [4, 2, 4, 4]  # the first input's pool was dropped for the other's: a new batch


@pytest.mark.parametrize("clusters", [0, -2, 1.5, True])
def test_a_cluster_count_below_one_is_named_before_the_output(nuclei_pair, tmp_path, clusters):
    # 0 said "diffusion.pt: with 0 clusters the output is a folder, not a .pt file"
    from monai_singanseg.diffusion.many import train_diffusion_models
    from monai_singanseg.errors import SinGANSegInputError

    with pytest.raises(SinGANSegInputError, match=rf"num_clusters={clusters!r}: the k-means clusters .* at least 1"):
        train_diffusion_models(["nuclei"], [nuclei_pair], tmp_path / "diffusion.pt", tiny_diffusion_config, clusters)
    assert not list(tmp_path.iterdir())


def test_a_batch_beyond_the_memory_is_refused_with_the_largest_that_fits(tmp_path, capsys, monkeypatch):
    # --batch-size 100000 on one small pair grew to 23 GB and was killed by the system, without a word
    import re

    from monai_singanseg.diffusion import trainer
    from monai_singanseg.diffusion.model import build_unet

    config = DiffusionConfig(image_channels=1, mask_channels=1, image_size=64)  # what the command line builds
    parameters = sum(p.numel() for p in build_unet(config).parameters())
    available = 4 * 2**30
    assert trainer.training_memory(config, parameters) < available  # the default batch of 8 fits
    monkeypatch.setattr(trainer, "available_memory", lambda device: available)
    out = tmp_path / "diffusion.pt"
    argv = ["train-diffusion", "--image", str(NUCLEI_IMAGE), "--label", str(NUCLEI_LABEL), "--batch-size", "100000",
            "--train-steps", "1", "--quiet", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if "nvImageCodec" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "batch size 100000 (--batch-size): training 64x64 crops with UNet widths 32-64-64-64 needs about" in err
    assert "cpu has 4.0 GiB available; the largest batch that fits is" in err, err
    fits = int(re.search(r"the largest batch that fits is (\d+)", err).group(1))
    # the largest indeed: it fits and one more does not
    assert trainer.training_memory(config, parameters, fits) <= available < trainer.training_memory(
        config, parameters, fits + 1)
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_attention_at_a_large_resolution_is_warned_about_once(diffusion, nuclei_pair, caplog):
    """A two-level UNet (16, 32) attends at half the sampling size: a 256x256 inpainting took minutes per call
    without a word. The line names the resolution and the --unet-channels that bring it to 32 per side."""
    import logging

    model, _ = diffusion
    with caplog.at_level(logging.WARNING, logger="monai_singanseg.diffusion.model"):
        model.generate(1, steps=1)  # its 32x32 training size: attention at 16x16, no warning
        assert caplog.records == []
        pair = nuclei_pair.real[:, :96, :96]
        region = torch.zeros(1, 96, 96, dtype=torch.bool)
        region[:, 40:50, 40:50] = True
        for _ in range(2):
            model.inpaint(pair, region, steps=1, jump_length=1, resample=1, generator=torch.Generator().manual_seed(0))
    assert len(caplog.records) == 1  # once per size, not once per call
    line = caplog.records[0].getMessage()
    assert "self-attention runs at 48x48 when sampling 96x96" in line and "--unet-channels 16 32 32" in line
    assert "\n" not in line
