"""Artifact metrics on constructed cases from the real nuclei crop (a framed copy scores badly, a clean one well), and
the generator padding that removes the frame: it trains, samples, saves and loads."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config

from monai_singanseg import SinGANSeg, SinGANSegConfig, SinGANSegTrainer
from monai_singanseg.checkpoint import read_checkpoint
from monai_singanseg.config import NetworkConfig
from monai_singanseg.metrics import (
    border_distance,
    frame_score,
    pinned_content,
    ring_means,
    sharpness,
    sharpness_ratio,
)
from monai_singanseg.networks.scale_networks import ScaleGenerator
from monai_singanseg.pyramid import resize


@pytest.fixture(scope="module")
def real_64(nuclei_pair):
    return resize(nuclei_pair.real[None], (64, 64)).clamp(-1, 1)


def noisy_copies(real: torch.Tensor, num: int = 16, sd: float = 0.05) -> torch.Tensor:
    noise = torch.randn(num, *real.shape[1:], generator=torch.Generator().manual_seed(0))
    return (real + sd * noise).clamp(-1, 1)


def test_border_distance_counts_pixels_to_the_nearest_face():
    assert border_distance((5, 4)).tolist() == [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    assert border_distance((3, 3, 3))[1, 1, 1] == 1 and border_distance((3, 3, 3))[0, 1, 1] == 0


def test_ring_means_of_an_image_made_of_rings():
    image = border_distance((9, 9)).float()[None, None]  # each ring holds its own distance
    assert ring_means(image, 5)[0, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="do not fit"):
        ring_means(image, 6)


def test_a_dark_ring_inside_the_border_scores_as_a_frame(real_64):
    clean = noisy_copies(real_64)
    framed = clean.clone()
    framed[:, :1, border_distance((64, 64)) == 1] -= 0.3  # the line SinGAN's zero padding leaves
    clean_score, framed_score = frame_score(real_64, clean, 1), frame_score(real_64, framed, 1)
    assert clean_score["intensity"] < 0.05  # noisy copies have the real image's own rings
    assert framed_score["intensity"] > 0.5
    assert framed_score["ring"] in (0, 1)  # ring 1 darker, so ring 0 also stands out of it
    assert framed_score["sample_ridges"][1] < -0.5 < 0.5 < framed_score["sample_ridges"][0]
    assert clean_score["real_spread"] > 0


def test_frame_score_reads_the_mask_too(real_64):
    samples = noisy_copies(real_64)
    real_fg, fg = (real_64[:, 1:] > 0).float(), (samples[:, 1:] > 0).float()
    assert frame_score(real_64, samples, 1, foreground=(real_fg, fg))["mask"] < 0.02
    fg_framed = fg.clone()
    fg_framed[:, :, border_distance((64, 64)) == 0] = 1.0  # a foreground band along the border
    assert frame_score(real_64, samples, 1, foreground=(real_fg, fg_framed))["mask"] > 0.5


def test_frame_score_refuses_images_too_small_for_its_rings(real_64):
    with pytest.raises(ValueError, match="more than 13 pixels"):
        frame_score(real_64[..., :12, :12], noisy_copies(real_64)[..., :12, :12], 1)


def test_the_same_corner_in_every_sample_is_pinned_and_moving_nuclei_are_not(real_64):
    real_fg = (real_64[:, 1:] > 0).float()
    shifts = torch.Generator().manual_seed(1)
    moving = torch.cat([torch.roll(real_64, tuple(int(v) for v in torch.randint(0, 64, (2,), generator=shifts)),
                                   dims=(2, 3)) for _ in range(32)])
    fg = (moving[:, 1:] > 0).float()
    free = pinned_content(real_64, moving, 1, fg, real_fg)
    assert free["pinned_foreground"] < 0.01 and free["frozen"] < 0.01
    pinned = moving.clone()
    pinned[:, :, :8, :8] = real_64[:, :, :8, :8]  # one corner copied into every sample
    fg_pinned = (pinned[:, 1:] > 0).float()
    stuck = pinned_content(real_64, pinned, 1, fg_pinned, real_fg)
    corner_fg = float((real_64[:, 1:, :8, :8] > 0).float().mean())
    assert stuck["frozen_corners"] == pytest.approx(0.25)  # one corner box of four, every pixel frozen
    assert stuck["pinned_foreground_corners"] == pytest.approx(0.25 * corner_fg, abs=1e-6)
    assert stuck["real_foreground"] == pytest.approx(float(real_fg.mean()), abs=1e-6)


def test_sharpness_ratio_sees_blur_and_grain(nuclei_pair):
    image = nuclei_pair.real[None, :1]
    assert sharpness_ratio(image, image)["ratio"] == pytest.approx(1.0)
    small = resize(image, (64, 64))  # a model at a quarter of the image's size, resized back up for use
    blurred = sharpness_ratio(image, small)
    assert blurred["ratio"] < 0.5 and blurred["shape"] == [256, 256]
    grainy = image + 0.2 * torch.randn(image.shape, generator=torch.Generator().manual_seed(0))
    assert sharpness_ratio(image, grainy)["ratio"] > 1.5
    volume = torch.zeros(2, 1, 8, 8, 8)
    volume[:, :, 4] = 1.0
    assert sharpness(volume).shape == (2,) and bool((sharpness(volume) > 0).all())


@pytest.mark.parametrize("padding", ["zeros", "reflect", "replicate"])
def test_generator_padding_keeps_shapes_in_2d_and_3d(padding):
    for dims in (2, 3):
        generator = ScaleGenerator(dims, 2, 4, NetworkConfig(padding=padding))
        x = torch.randn(1, 2, *([12] * dims))
        assert generator(x, x).shape == x.shape


def test_reflect_padding_hides_the_border_that_zero_padding_shows():
    """With the same weights, a constant input gives a constant output only when the padding continues the image."""
    torch.manual_seed(0)
    zeros = ScaleGenerator(2, 1, 4, NetworkConfig(padding="zeros", norm="none"))
    reflect = ScaleGenerator(2, 1, 4, NetworkConfig(padding="reflect", norm="none"))
    reflect.load_state_dict(zeros.state_dict())
    constant = torch.full((1, 1, 16, 16), 0.5)
    with torch.no_grad():
        zero_out, reflect_out = zeros(constant, torch.zeros_like(constant)), reflect(constant,
                                                                                    torch.zeros_like(constant))
    assert float(zero_out.std()) > 1e-4  # the border differs from the centre
    assert float(reflect_out.std()) < 1e-6


def test_padding_is_checked_and_old_configs_read_as_zeros():
    with pytest.raises(ValueError, match="padding must be one of"):
        NetworkConfig(padding="circular").validate()
    data = json.loads(tiny_config().to_json())
    del data["network"]["padding"]  # a checkpoint written before the option existed
    assert SinGANSegConfig.from_dict(data).network.padding == "zeros"


def test_a_reflect_padded_model_trains_samples_and_loads(tmp_path, nuclei_pair):
    config = tiny_config()
    config.network.padding = "reflect"
    path = tmp_path / "reflect.pt"
    model = SinGANSegTrainer(config, progress=False).fit(nuclei_pair.real, nuclei_pair.intensity,
                                                          nuclei_pair.labels, path)
    loaded = SinGANSeg.load(path)
    assert json.loads(read_checkpoint(path)["config"])["network"]["padding"] == "reflect"
    x, y = model.generate(2, generator=torch.Generator().manual_seed(0)), loaded.generate(
        2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, y) and x.shape[2:] == model.shapes[-1]
    with pytest.raises(ValueError, match="pads by reflection"):
        loaded.scaled_shapes(0.2)  # a 20-px coarsest scale at 4 px: reflection needs more than 5


# --- training the fine scales on windows ------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["zeros", "reflect"])
@pytest.mark.parametrize("dims", [2, 3])
def test_a_window_of_the_generator_is_that_part_of_its_whole_output(padding, dims):
    generator = ScaleGenerator(dims, 2, 4, NetworkConfig(padding=padding)).eval()
    noise, previous = torch.randn(2, 1, 2, *([14] * dims)).unbind(0)
    window = (slice(0, 9), slice(5, 14), slice(2, 11))[:dims]  # touching the border and inside it
    with torch.no_grad():
        assert torch.allclose(generator(noise, previous)[(..., *window)], generator(noise, previous, [window]),
                              atol=1e-6)


def test_crop_size_is_checked():
    with pytest.raises(ValueError, match="crop_size must be 0"):
        tiny_config(crop_size=8)
    with pytest.raises(ValueError, match="cannot be combined"):
        tiny_config(crop_size=16, concurrent_scales=1)


def test_windows_lie_inside_the_scale_and_only_scales_larger_than_the_crop_use_them(tmp_path, nuclei_pair):
    sizes = []

    def record(engine, scale):
        step = engine.state.scale_step
        windows = [step.windows() for _ in range(20)]
        sizes.append((step.shape, step.crop, windows))

    config = tiny_config(crop_size=24, iters=2)
    SinGANSegTrainer(config, progress=False, handlers=[record]).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "windows.pt")
    for shape, crop, windows in sizes:
        if max(shape) <= 24:
            assert crop == 0 and all(w is None for w in windows)
        else:
            assert crop == 24
            for (window,) in windows:
                assert [w.stop - w.start for w in window] == [min(24, s) for s in shape]
                assert all(0 <= w.start and w.stop <= s for w, s in zip(window, shape))
            assert len({tuple(w.start for w in window) for (window,) in windows}) > 1  # the windows move
    assert any(crop for _, crop, _ in sizes)


def test_a_crop_as_large_as_every_scale_trains_exactly_as_whole_images(tmp_path, nuclei_pair):
    whole = SinGANSegTrainer(tiny_config(), progress=False).fit(nuclei_pair.real, nuclei_pair.intensity,
                                                                 nuclei_pair.labels, tmp_path / "whole.pt")
    same = SinGANSegTrainer(tiny_config(crop_size=32), progress=False).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "same.pt")
    cropped = SinGANSegTrainer(tiny_config(crop_size=16), progress=False).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "cropped.pt")
    draw = lambda m: m.generate(2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draw(whole), draw(same))
    x = draw(cropped)
    assert not torch.equal(draw(whole), x) and bool(torch.isfinite(x).all())
    assert x.shape[2:] == cropped.shapes[-1] == (32, 32)  # trained on 16-px windows, samples whole images
    assert SinGANSeg.load(tmp_path / "cropped.pt").config.optim.crop_size == 16

