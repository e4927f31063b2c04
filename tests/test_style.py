"""Style refinement of samples towards the real nuclei image: histogram matching, Gatys VGG, weights, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import NUCLEI_IMAGE
from PIL import Image

from monai_singanseg.cli import main
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.pyramid import resize
from monai_singanseg.style import (
    VGGWeightsNotFoundError,
    find_vgg_weights,
    load_vgg_features,
    match_histograms,
    refine,
    refine_samples,
    style_reference,
    style_transfer,
    vgg_features,
)

# torchvision's indices of the convolutions in vgg16().features and vgg19().features (their state dict keys)
TORCHVISION_CONVS = {
    "vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
    "vgg19": [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34],
}
QUANTILES = torch.linspace(0.02, 0.98, 25)


@pytest.fixture()
def samples(nuclei_model):
    model, _ = nuclei_model
    return model.generate(3, generator=torch.Generator().manual_seed(0))


@pytest.fixture()
def no_weights(tmp_path, monkeypatch):
    """No VGG weights anywhere: empty torch hub cache, no environment variable."""
    monkeypatch.delenv("SINGANSEG_VGG_WEIGHTS", raising=False)
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


def test_histogram_matching_gives_the_real_quantiles_and_keeps_the_label(nuclei_model, nuclei_pair, samples):
    model, _ = nuclei_model
    real = nuclei_pair.real[None, :1]
    refined = refine_samples(samples, 1, real, "histogram")
    real_q = torch.quantile(real.flatten(), QUANTILES)
    for before, after in zip(samples[:, 0], refined[:, 0]):
        after_q = torch.quantile(after.flatten(), QUANTILES)
        before_q = torch.quantile(before.flatten(), QUANTILES)
        assert torch.allclose(after_q, real_q, atol=0.02)
        assert (after_q - real_q).abs().max() < (before_q - real_q).abs().max()
        # the structure is kept: the map is monotone, darker pixels stay no brighter than brighter ones
        assert (after.flatten()[before.flatten().argsort()].diff() >= 0).all()
    assert torch.equal(refined[:, 1:], samples[:, 1:])
    assert torch.equal(model.split(refined)[1], model.split(samples)[1])


def test_histogram_matching_is_exact_for_equal_sizes_and_works_in_3d():
    g = torch.Generator().manual_seed(0)
    reference = torch.randn(1, 2, 6, 5, 4, generator=g) * torch.tensor([1.0, 3.0]).reshape(1, 2, 1, 1, 1)
    image = torch.rand(2, 2, 6, 5, 4, generator=g)
    matched = match_histograms(image, reference)
    for sample in matched:
        assert torch.allclose(sample.flatten(1).sort().values, reference[0].flatten(1).sort().values)


def test_gatys_with_random_vgg_lowers_its_loss_and_never_changes_the_label(nuclei_model, nuclei_pair, samples):
    model, _ = nuclei_model
    torch.manual_seed(0)
    features = vgg_features("vgg16")
    real = nuclei_pair.real[None, :1]
    image = samples[:1, :1]
    refined, losses = style_transfer(image, real, features, steps=8)
    assert losses[-1] < 0.5 * losses[0]
    assert refined.shape == image.shape and refined.abs().max() <= 1.0
    assert not torch.allclose(refined, image, atol=1e-3)
    full = refine_samples(samples[:2], 1, real, "vgg", features=features, steps=3)
    assert torch.equal(full[:, 1:], samples[:2, 1:])
    assert torch.equal(model.split(full)[1], model.split(samples[:2])[1])


def test_gatys_refuses_volumes():
    with pytest.raises(ValueError, match="2D"):
        refine(torch.zeros(1, 1, 8, 8, 8), torch.zeros(1, 1, 8, 8, 8), "vgg", features=vgg_features("vgg16"))


def test_missing_weights_say_how_to_provide_them(no_weights):
    with pytest.raises(VGGWeightsNotFoundError) as err:
        find_vgg_weights()
    message = str(err.value)
    for hint in ("--style-weights", "SINGANSEG_VGG_WEIGHTS", str(no_weights / "checkpoints"), "vgg19-dcbb9e9d.pth",
                 "Nothing is downloaded", "--style histogram"):
        assert hint in message
    with pytest.raises(VGGWeightsNotFoundError):
        refine(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16), "vgg")


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_torchvision_style_state_dict_loads_from_the_hub_cache(no_weights, arch):
    g = torch.Generator().manual_seed(1)
    per_block = 3 if arch == "vgg16" else 4
    widths = [64, 64, 128, 128] + [256] * per_block + [512] * (2 * per_block)
    state, in_c = {}, 3
    for i, out_c in zip(TORCHVISION_CONVS[arch], widths):
        state[f"features.{i}.weight"] = torch.randn(out_c, in_c, 3, 3, generator=g)
        state[f"features.{i}.bias"] = torch.randn(out_c, generator=g)
        in_c = out_c
    state["classifier.0.weight"] = torch.randn(8, 4, generator=g)  # torchvision's head is ignored
    name = {"vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth"}[arch]
    (no_weights / "checkpoints").mkdir(parents=True)
    torch.save(state, no_weights / "checkpoints" / name)
    features, found_arch, path = load_vgg_features()
    assert found_arch == arch and path.name == name
    for i in TORCHVISION_CONVS[arch]:
        assert torch.equal(features[i].weight, state[f"features.{i}.weight"])
        assert torch.equal(features[i].bias, state[f"features.{i}.bias"])
    assert not any(p.requires_grad for p in features.parameters())


def test_explicit_path_and_environment_variable_win(no_weights, tmp_path, monkeypatch):
    features = vgg_features("vgg16")
    path = tmp_path / "mine.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    assert load_vgg_features(path)[1] == "vgg16"
    monkeypatch.setenv("SINGANSEG_VGG_WEIGHTS", str(path))
    assert find_vgg_weights() == path
    monkeypatch.setenv("SINGANSEG_VGG_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(VGGWeightsNotFoundError, match="missing.pth"):
        find_vgg_weights()


def test_style_reference_from_the_training_image_or_the_reconstruction(nuclei_model, nuclei_pair):
    model, _ = nuclei_model
    from_file = style_reference(model, [NUCLEI_IMAGE])
    # the file goes through the model's own intensity map to the finest training scale: the training tensor
    assert torch.allclose(from_file, resize(nuclei_pair.real[None, :1], model.shapes[-1]), atol=1e-5)
    assert torch.equal(style_reference(model), model.reconstruct()[:, :1])
    with pytest.raises(SinGANSegInputError, match="channel"):
        style_reference(model, [NUCLEI_IMAGE, NUCLEI_IMAGE])


def test_cli_sample_with_histogram_style_writes_pairs_and_keeps_labels(nuclei_model, tmp_path):
    _, path = nuclei_model
    base = ["sample", str(path), "--num", "2", "--seed", "3"]
    assert main(base + ["--out", str(tmp_path / "plain")]) == 0
    assert main(base + ["--out", str(tmp_path / "styled"), "--style", "histogram",
                        "--style-image", str(NUCLEI_IMAGE)]) == 0
    real = np.array(Image.open(NUCLEI_IMAGE).convert("L"), dtype=np.float64)
    for i in range(2):
        plain = np.array(Image.open(tmp_path / "plain" / f"sample_{i:04d}_image.png"), dtype=np.float64)
        styled = np.array(Image.open(tmp_path / "styled" / f"sample_{i:04d}_image.png"), dtype=np.float64)
        assert not np.array_equal(plain, styled)
        assert abs(styled.mean() - real.mean()) < abs(plain.mean() - real.mean()) + 1.0
        assert np.array_equal(np.array(Image.open(tmp_path / "plain" / f"sample_{i:04d}_label.png")),
                              np.array(Image.open(tmp_path / "styled" / f"sample_{i:04d}_label.png")))
    assert (tmp_path / "styled" / "preview.png").is_file()


def test_cli_sample_vgg_without_weights_fails_before_writing(nuclei_model, tmp_path, no_weights, capsys):
    _, path = nuclei_model
    out = tmp_path / "vgg"
    assert main(["sample", str(path), "--num", "1", "--out", str(out), "--style", "vgg"]) == 2
    assert "--style-weights" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
