"""Quality metrics against cases with known answers, on the real nuclei image and on samples of a model of it."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.stats import wasserstein_distance

from monai_singanseg import LabelEncoding, SinGANSegInputError
from monai_singanseg.metrics import (
    INCEPTION_WEIGHT_FILES,
    INCEPTION_WEIGHTS_ENV,
    InceptionStem,
    extract_patches,
    find_inception_weights,
    foreground,
    foreground_fraction,
    fraction_histogram,
    frechet_distance,
    load_inception_stem,
    mask_mean_std,
    memorisation_check,
    ms_ssim_diversity,
    ms_ssim_settings,
    quality_metrics,
    sifid,
    sliced_wasserstein,
)
from monai_singanseg.metrics.features import extract, to_three_channels
from monai_singanseg.metrics.sifid import feature_statistics
from monai_singanseg.metrics.swd import wasserstein_1d
from monai_singanseg.pyramid import resize


@pytest.fixture(scope="module")
def nuclei_64(nuclei_pair):
    """The real nuclei image and mask ``(1, 2, 64, 64)`` in ``[-1, 1]``."""
    return resize(nuclei_pair.real[None], (64, 64)).clamp(-1, 1)


@pytest.fixture(scope="module")
def stem():
    """An Inception stem with random weights (no ImageNet weights on a test machine), seeded."""
    torch.manual_seed(0)
    model = InceptionStem()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial running statistics, as in trained weights
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def noisy(image: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(seed))
    return (image + sigma * noise).clamp(-1, 1)


# --- Inception stem and its weights ---------------------------------------------------------------------------------


def test_stem_has_torchvision_names_and_sifid_layer_shape(stem):
    names = stem.state_dict().keys()
    assert {"Conv2d_1a_3x3.conv.weight", "Conv2d_2a_3x3.bn.running_mean", "Conv2d_2b_3x3.bn.running_var"} <= names
    assert stem(torch.zeros(2, 3, 64, 64)).shape == (2, 64, 14, 14)
    assert stem.Conv2d_1a_3x3.bn.eps == 0.001 and stem.Conv2d_1a_3x3.conv.bias is None


def weight_file(stem, path):
    """A torchvision-like state dict: the stem's tensors without num_batches_tracked, plus layers the stem lacks."""
    state = {k: v for k, v in stem.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"] = torch.zeros(10, 2048)
    torch.save(state, path)
    return path


def test_weights_found_by_path_env_and_hub_cache(stem, tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    explicit = weight_file(stem, tmp_path / "mine.pth")
    loaded = load_inception_stem(explicit)
    x = torch.rand(1, 3, 40, 40) * 2 - 1
    assert torch.allclose(loaded(x), stem(x))

    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(explicit))
    assert find_inception_weights() == explicit
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV)

    cached = tmp_path / "hub" / "checkpoints" / INCEPTION_WEIGHT_FILES[1]
    cached.parent.mkdir(parents=True)
    weight_file(stem, cached)
    assert find_inception_weights() == cached


def test_missing_weights_say_where_and_how(tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))
    with pytest.raises(SinGANSegInputError) as err:
        load_inception_stem()
    assert all(name in str(err.value) for name in (*INCEPTION_WEIGHT_FILES, INCEPTION_WEIGHTS_ENV))
    with pytest.raises(SinGANSegInputError, match="not found"):
        load_inception_stem(tmp_path / "nowhere.pth")
    torch.save({"something.else": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(SinGANSegInputError, match="Conv2d_1a_3x3"):
        load_inception_stem(tmp_path / "other.pth")


# --- SIFID -----------------------------------------------------------------------------------------------------------


def test_frechet_distance_of_known_gaussians():
    eye = np.eye(3)
    assert frechet_distance(np.zeros(3), eye, np.array([1.0, 2.0, 2.0]), eye) == pytest.approx(9.0)
    a, b = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])  # sum (sqrt(a) - sqrt(b))^2 = 1 + 0 + 4
    assert frechet_distance(np.zeros(3), a, np.zeros(3), b) == pytest.approx(5.0)
    singular = np.diag([1.0, 0.0, 0.0])
    assert frechet_distance(np.zeros(3), singular, np.zeros(3), singular) == pytest.approx(0.0, abs=1e-5)


def exact_frechet(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """The Fréchet distance by symmetric eigenvalues, exact for singular covariances too:
    ``tr((cov1 cov2)^(1/2)) = tr((A cov2 A)^(1/2))`` with ``A = cov1^(1/2)``."""
    values, vectors = np.linalg.eigh(cov1)
    root = (vectors * np.sqrt(values.clip(0))) @ vectors.T
    inner = np.linalg.eigvalsh(root @ cov2 @ root)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.sqrt(inner.clip(0)).sum())


def monai_frechet(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """MONAI's ``compute_frechet_distance`` (FIDMetric's), skipped where it cannot run."""
    from monai.metrics.fid import compute_frechet_distance

    t = [torch.as_tensor(a, dtype=torch.float64) for a in (mu1, cov1, mu2, cov2)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # "Matrix is singular", as ours ignores
            return float(compute_frechet_distance(*t))
    except TypeError as err:  # MONAI <= 1.6 passes sqrtm(disp=False), which scipy 1.18 removed
        pytest.skip(f"MONAI's Fréchet distance does not run with this scipy: {err}")


def test_frechet_distance_equals_monai_and_the_exact_value():
    """Full-rank covariances (where the earlier eps-regularised version gave the same numbers too)."""
    rng = np.random.RandomState(0)
    a, b = rng.randn(500, 8), 0.5 + 1.3 * rng.randn(400, 8) @ rng.randn(8, 8)
    stats = (a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
    value = frechet_distance(*stats)
    assert value == pytest.approx(exact_frechet(*stats), rel=1e-9)
    assert value == pytest.approx(monai_frechet(*stats), rel=1e-9)


@pytest.mark.parametrize("size", [64, 16])
def test_frechet_distance_on_real_sifid_statistics_equals_monai(nuclei_64, stem, size):
    """The Inception-stem statistics of the real nuclei image are rank-deficient (64 channels, 196 or 4 positions):
    no regularisation there, so the distance is MONAI's and the exact one, also for nearly identical images."""
    real = resize(nuclei_64[:, :1], (size, size))
    (real_rgb,) = to_three_channels(real)  # grey read as RGB, as sifid does
    stats = feature_statistics(extract(stem, real_rgb, 1)[0])
    assert np.linalg.matrix_rank(stats[1]) < 64
    for sigma in (0.02, 0.3):
        (fake_rgb,) = to_three_channels(noisy(real, sigma))
        fake_stats = feature_statistics(extract(stem, fake_rgb, 1)[0])
        value = frechet_distance(*stats, *fake_stats)
        assert value == pytest.approx(exact_frechet(*stats, *fake_stats), rel=1e-5, abs=1e-9)
        assert value == pytest.approx(monai_frechet(*stats, *fake_stats), rel=1e-5, abs=1e-9)
        assert value > 0


def test_sifid_zero_for_identical_and_grows_with_noise(nuclei_64, stem):
    real = nuclei_64[:, :1]
    fakes = torch.cat([real, noisy(real, 0.05), noisy(real, 0.3)])
    scores = sifid(real, fakes, extractor=stem)
    assert scores.shape == (3,)
    assert scores[0] == pytest.approx(0.0, abs=1e-6)
    assert 0 < scores[1] < scores[2]


def test_sifid_reads_grey_as_rgb_and_refuses_volumes(nuclei_64, stem):
    grey, fake = nuclei_64[:, :1], noisy(nuclei_64[:, :1], 0.2)
    rgb = sifid(grey.expand(-1, 3, -1, -1), fake.expand(-1, 3, -1, -1), extractor=stem)
    assert torch.allclose(sifid(grey, fake, extractor=stem), rgb, rtol=1e-5)
    with pytest.raises(ValueError, match="2D"):
        sifid(torch.zeros(1, 1, 8, 8, 8), torch.zeros(2, 1, 8, 8, 8), extractor=stem)


# --- sliced Wasserstein distance -------------------------------------------------------------------------------------


def test_wasserstein_1d_matches_scipy_for_unequal_counts():
    u, v = torch.randn(4, 50, dtype=torch.float64), torch.randn(4, 73, dtype=torch.float64) * 2 + 1
    expected = [wasserstein_distance(u[k].numpy(), v[k].numpy()) for k in range(4)]
    assert np.allclose(wasserstein_1d(u, v).numpy(), expected)


def test_patches_are_the_image_windows():
    image = torch.arange(2 * 6 * 5, dtype=torch.float32).reshape(2, 6, 5)
    patches = extract_patches(image, 3)
    assert patches.shape == (4 * 3, 2 * 9)
    assert torch.equal(patches[0], image[:, :3, :3].reshape(-1))
    assert torch.equal(patches[1], image[:, :3, 1:4].reshape(-1))  # the next window along the last axis
    assert extract_patches(torch.zeros(1, 5, 5, 5), 3, stride=2).shape == (8, 27)


def test_swd_zero_for_identical_and_proportional_to_a_shift(nuclei_64):
    real = nuclei_64[:, :1] * 0.5  # no clamping in the way of the shift
    distances = sliced_wasserstein(real, torch.cat([real, real + 0.1, real + 0.3]), num_projections=32)
    assert distances[0] == 0.0
    # a constant shift s moves every projection by s * sum(direction): the distance is linear in s
    assert distances[2] / distances[1] == pytest.approx(3.0, rel=1e-3)


def test_swd_tells_structure_from_pixel_values(nuclei_64):
    real = nuclei_64[:, :1]
    order = torch.randperm(real.numel(), generator=torch.Generator().manual_seed(0))
    shuffled = real.flatten()[order].reshape(real.shape)  # the same pixel values, no nuclei
    mirrored = torch.cat([real.flip(-1), real.flip(-2), real.transpose(-1, -2)])  # the same nuclei, elsewhere
    assert float(sliced_wasserstein(real, mirrored).max()) < 0.5 * float(sliced_wasserstein(real, shuffled))


def test_swd_in_3d_and_on_a_pyramid():
    volume = torch.rand(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    distances = sliced_wasserstein(volume, torch.cat([volume, noisy(volume, 0.3)]), patch_size=3, levels=2,
                                   num_projections=16)
    assert distances[0] == 0.0 < distances[1]
    with pytest.raises(ValueError, match="smaller than"):
        sliced_wasserstein(volume, volume, patch_size=7, levels=3)


# --- MS-SSIM diversity -----------------------------------------------------------------------------------------------


def test_ms_ssim_settings_fit_small_images():
    assert ms_ssim_settings((250, 250))["kernel_size"] == 11 and len(ms_ssim_settings((250, 250))["weights"]) == 5
    for size, scales in ((64, 4), (32, 3), (16, 2)):
        settings = ms_ssim_settings((size, size))
        assert len(settings["weights"]) == scales and settings["kernel_size"] == 7
        assert sum(settings["weights"]) == pytest.approx(1.0)


def test_diversity_zero_for_identical_samples_and_positive_for_different(nuclei_64, nuclei_model):
    image = nuclei_64[:, :1]
    assert ms_ssim_diversity(image.expand(4, -1, -1, -1)) == pytest.approx(0.0, abs=1e-5)
    close = ms_ssim_diversity(torch.cat([noisy(image, 0.02, seed) for seed in range(4)]))
    far = ms_ssim_diversity(torch.cat([noisy(image, 0.5, seed) for seed in range(4)]))
    assert 0.0 < close < far
    model, _ = nuclei_model  # 32 px samples: MONAI's default 5 scales would not fit
    samples = model.generate(4, generator=torch.Generator().manual_seed(0))
    assert samples.shape[-1] == 32 and ms_ssim_diversity(samples[:, :1]) > 0.0


def test_diversity_of_volumes():
    volumes = torch.rand(3, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert ms_ssim_diversity(volumes) > 0.5
    assert ms_ssim_diversity(volumes[:1].expand(3, -1, -1, -1, -1)) == pytest.approx(0.0, abs=1e-5)


# --- mask statistics -------------------------------------------------------------------------------------------------


def test_mask_mean_std_and_fractions(nuclei_pair):
    mask = foreground(nuclei_pair.real[None, 1:], nuclei_pair.labels)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    mean, std = mask_mean_std(mask.expand(5, -1, -1, -1))
    assert torch.equal(mean, mask[0]) and torch.count_nonzero(std) == 0
    mean, std = mask_mean_std(torch.cat([mask, 1 - mask]))
    assert torch.allclose(mean, torch.full_like(mean, 0.5)) and torch.allclose(std, torch.full_like(std, 0.5))
    fractions = foreground_fraction(torch.cat([mask, 1 - mask]))
    assert fractions.sum() == pytest.approx(1.0) and 0 < fractions[0] < 0.5


def test_foreground_of_one_hot_masks_and_histogram():
    labels = LabelEncoding([0, 1, 2], one_hot=True)
    index = torch.tensor([[[0, 1], [2, 0]]], dtype=torch.float32)  # (1, 2, 2): half foreground
    channels = labels.encode(index)[None]
    assert torch.equal(foreground(channels, labels)[0, 0], torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    hist = fraction_histogram(0.5, torch.tensor([0.1, 0.2, 0.2, 0.9]), bins=4, value_range=(0.0, 1.0))
    assert hist["counts"] == [3, 0, 0, 1] and hist["edges"][-1] == 1.0 and hist["real"] == 0.5


# --- memorisation ----------------------------------------------------------------------------------------------------


def test_memorisation_flags_a_copy_of_the_training_image(nuclei_64):
    real = nuclei_64[:, :1]
    samples = torch.rand(6, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    samples[3] = real[0]
    result = memorisation_check(real, samples)
    assert result.flagged.tolist() == [False, False, False, True, False, False]
    assert result.distance_to_real[3] == 0.0 and result.to_dict()["flagged"] == [3]


def test_independent_variations_sit_at_one_over_root_two_of_the_spread(nuclei_64):
    real = nuclei_64[:, :1] * 0.5
    samples = real + 0.1 * torch.randn(8, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    result = memorisation_check(real, samples)
    assert not result.flagged.any()
    assert torch.allclose(result.ratio, torch.full((8,), 1 / math.sqrt(2)), atol=0.03)


# --- all together ----------------------------------------------------------------------------------------------------


def test_quality_metrics_of_model_samples(nuclei_model, nuclei_pair, stem):
    model, _ = nuclei_model
    real = resize(nuclei_pair.real[None], model.shapes[-1]).clamp(-1, 1)
    samples = model.generate(3, generator=torch.Generator().manual_seed(1))
    metrics = quality_metrics(real, samples, 1, model.labels, extractor=stem)
    assert set(metrics) == {"sifid", "swd", "ms_ssim_diversity", "foreground_fraction", "memorisation", "artifacts"}
    assert metrics["sifid"]["mean"] > 0 and metrics["swd"]["mean"] > 0 and metrics["ms_ssim_diversity"] > 0
    assert 0 < metrics["foreground_fraction"]["real"] < 1
    assert quality_metrics(real, samples, 1, model.labels)["sifid"] is None
