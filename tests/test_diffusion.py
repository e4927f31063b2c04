"""The diffusion backend on the real nuclei sample (2D) and the real MNI152 template (3D): sampling, splitting,
seeded and resumable training, RePaint inpainting, checkpoints and input checks. The sampling maths is also checked
against exact noise predictors of known data distributions, where the right answer is known in closed form."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import GM, T1, WM, mni_crop
from conftest import tiny_diffusion_config as tiny
from ignite.engine import Events
from torch import nn

from monai_singanseg import SinGANSegInputError, TrainingPair, prepare_training_pair
from monai_singanseg.checkpoint import load_model
from monai_singanseg.diffusion import (
    DiffusionConfig,
    DiffusionTrainer,
    PairDiffusion,
    load_diffusion,
    noise_scheduler,
    repaint_levels,
    respaced_scheduler,
    stack_pairs,
)
from monai_singanseg.intensity import IntensityMapping


def unet_weights(model: PairDiffusion) -> list[torch.Tensor]:
    return list(model.unet.state_dict().values())


@pytest.fixture(scope="module")
def nuclei_crop(nuclei_pair) -> TrainingPair:
    """A 64x64 crop of the real nuclei pair (grey image + binary mask, both present), for random 32x32 crops."""
    real = nuclei_pair.real[:, 64:128, 112:176].clone()
    assert (real[1] > 0).any() and (real[1] < 0).any()
    return TrainingPair(real, nuclei_pair.intensity, nuclei_pair.labels, nuclei_pair.meta)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, nuclei_crop):
    """(model, checkpoint) of a tiny model trained 10 steps on the nuclei crop."""
    path = tmp_path_factory.mktemp("diffusion") / "nuclei.pt"
    return DiffusionTrainer(tiny(), progress=False).fit([nuclei_crop], path), path


# --- the sampling maths, with exact noise predictors -------------------------------------------------------------


class GaussianOracle(nn.Module):
    """The exact noise prediction E[eps | x_t] for data whose every value is independently N(mu, s^2)."""

    def __init__(self, alphas_cumprod: torch.Tensor, mu: float, s: float) -> None:
        super().__init__()
        self.alphas_cumprod, self.mu, self.s = alphas_cumprod, mu, s
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the model a device

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod[timesteps].reshape(-1, *[1] * (x.ndim - 1))
        return (1 - a).sqrt() * (x - a.sqrt() * self.mu) / (a * self.s**2 + 1 - a)


class ConstantOracle(nn.Module):
    """The exact noise prediction for data that are constant images c * 1 with c ~ N(mu, s^2): every value of a
    sample is the same, so a correct inpainting must fill the redrawn region with the kept region's value."""

    def __init__(self, alphas_cumprod: torch.Tensor, mu: float, s: float) -> None:
        super().__init__()
        self.alphas_cumprod, self.mu, self.s = alphas_cumprod, mu, s
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod[timesteps].reshape(-1, *[1] * (x.ndim - 1))
        size = x[0].numel()
        mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)  # the sufficient statistic of c
        c = self.mu + a.sqrt() * self.s**2 / (a * self.s**2 + (1 - a) / size) * (mean - a.sqrt() * self.mu)
        return (x - a.sqrt() * c) / (1 - a).sqrt()


def test_respaced_schedule_is_the_training_schedule_at_full_length_and_exact_when_shorter():
    config = tiny()
    full, timesteps = respaced_scheduler(config, config.num_train_timesteps, "ddpm")
    base = noise_scheduler(config)
    assert torch.equal(timesteps, torch.arange(config.num_train_timesteps))
    assert torch.allclose(full.betas, base.betas, atol=1e-6)
    short, timesteps = respaced_scheduler(config, 10, "ddim")
    assert timesteps[0] == 0 and timesteps[-1] == config.num_train_timesteps - 1 and len(timesteps) == 10
    assert torch.equal(short.alphas_cumprod, base.alphas_cumprod[timesteps])
    assert short.timesteps.tolist() == list(range(9, -1, -1))  # MONAI's step goes i -> i - 1: now exact
    with pytest.raises(ValueError, match="steps must lie in"):
        respaced_scheduler(config, 101, "ddpm")
    with pytest.raises(ValueError, match="sampler must be one of"):
        respaced_scheduler(config, 10, "euler")


def closed_form_std(scheduler, sampler: str, s: float) -> float:
    """The spread of samples of N(mu, s^2) data drawn with the exact noise predictor: every step is linear in x_t,
    so the variance goes through the steps in closed form (Ho et al. eq. 7 for DDPM, Song et al. eq. 12 for DDIM)."""
    acp, betas, alphas = (v.double() for v in (scheduler.alphas_cumprod, scheduler.betas, scheduler.alphas))
    var = 1.0
    for i in range(len(acp) - 1, -1, -1):
        a, prev = acp[i], acp[i - 1] if i > 0 else torch.tensor(1.0, dtype=torch.float64)
        gain = a.sqrt() * s**2 / (a * s**2 + 1 - a)  # d E[x0 | x_t] / d x_t
        if sampler == "ddpm":
            coefficient = prev.sqrt() * betas[i] / (1 - a) * gain + alphas[i].sqrt() * (1 - prev) / (1 - a)
            var = coefficient**2 * var + ((1 - prev) / (1 - a) * betas[i] if i > 0 else 0.0)
        else:
            coefficient = prev.sqrt() * gain + (1 - prev).sqrt() / (1 - a).sqrt() * (1 - a.sqrt() * gain)
            var = coefficient**2 * var
    return float(var) ** 0.5


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_match_the_closed_form_on_gaussian_data(sampler):
    """With the exact noise predictor of N(0.3, 0.3^2) data, samples have that mean and the spread the sampler's
    equations give: 0.3 at the full 1000 steps, less in 20 steps (both samplers shrink the spread when the steps
    are few). MONAI's DDPMScheduler stepped straight over 20 of 1000 timesteps would leave std ~0.7 (noise)."""
    config = tiny(num_train_timesteps=1000)
    model = PairDiffusion(config)
    model.unet = GaussianOracle(noise_scheduler(config).alphas_cumprod, 0.3, 0.3)
    for steps in (20, 1000):
        x = model.generate(8, steps=steps, sampler=sampler, generator=torch.Generator().manual_seed(0))
        expected = closed_form_std(respaced_scheduler(config, steps, sampler)[0], sampler, 0.3)
        assert abs(x.mean().item() - 0.3) < 0.01
        assert x.std().item() == pytest.approx(expected, rel=0.03)
    assert expected == pytest.approx(0.3, rel=0.02)
    assert closed_form_std(respaced_scheduler(config, 20, sampler)[0], sampler, 0.3) > 0.2


def test_repaint_fills_the_region_consistently_with_the_kept_part():
    """Constant images: the redrawn half must take the kept half's value (here 0.5, the region starting at -0.5)."""
    config = tiny(num_train_timesteps=200)
    model = PairDiffusion(config)
    model.unet = ConstantOracle(noise_scheduler(config).alphas_cumprod, 0.0, 0.5)
    real = torch.full((2, 32, 32), 0.5)
    real[:, :, 16:] = -0.5  # the region to redraw holds something else
    region = torch.zeros(32, 32, dtype=torch.bool)
    region[:, 16:] = True
    out = model.inpaint(real, region, steps=20, jump_length=5, resample=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[0, :, :, :16], real[:, :, :16])
    assert (out[0, :, :, 16:] - 0.5).abs().max() < 0.05


def test_repaint_schedule():
    assert repaint_levels(4, jump_length=2, resample=2) == [4, 3, 2, 1, 0, 2, 1, 0]
    assert repaint_levels(5, jump_length=10, resample=3) == [5, 4, 3, 2, 1, 0]  # nothing to jump back over
    levels = repaint_levels(50, jump_length=10, resample=10)
    assert levels[0] == 50 and levels[-1] == 0
    assert sum(b < a for a, b in zip(levels, levels[1:])) == 50 + 9 * 40  # denoising steps = network calls


# --- a tiny model trained on the real nuclei crop -----------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_generate_and_split(trained, nuclei_pair, sampler):
    model, _ = trained
    x = model.generate(3, steps=5, sampler=sampler, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 2, 32, 32) and x.min() >= -1 and x.max() <= 1
    again = model.generate(3, steps=5, sampler=sampler, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)
    assert model.generate(1, steps=5, sampler=sampler, shape=(64, 32)).shape == (1, 2, 64, 32)
    image, label = model.split(x)
    assert image.shape == (3, 1, 32, 32) and label.shape == (3, 1, 32, 32)
    low, high = nuclei_pair.intensity.lower[0], nuclei_pair.intensity.upper[0]
    assert image.min() >= low - 1e-4 and image.max() <= high + 1e-4  # the training image's units (0-128)
    assert set(label.unique().tolist()) <= {0.0, 255.0}  # the training label's own values
    back = model.join(image[0], label[0])
    assert torch.allclose(back[:1], x[0, :1], atol=1e-5) and torch.equal(back[1:] > 0, x[0, 1:] > 0)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, trained, nuclei_crop):
    model, _ = trained
    same = DiffusionTrainer(tiny(), progress=False).fit([nuclei_crop], tmp_path / "same.pt")
    other = DiffusionTrainer(tiny(seed=4), progress=False).fit([nuclei_crop], tmp_path / "other.pt")
    assert all(torch.equal(a, b) for a, b in zip(unet_weights(model), unet_weights(same)))
    assert not all(torch.equal(a, b) for a, b in zip(unet_weights(model), unet_weights(other)))


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path, trained, nuclei_crop):
    whole, _ = trained

    def interrupt_at_step_7(engine):
        @engine.on(Events.ITERATION_COMPLETED(once=7))
        def _crash(_):
            raise KeyboardInterrupt

    path = tmp_path / "part.pt"
    with pytest.raises(KeyboardInterrupt):
        DiffusionTrainer(tiny(), progress=False, handlers=[interrupt_at_step_7]).fit([nuclei_crop], path)
    _, state = load_diffusion(path)
    assert state.step == 5 and not state.complete  # the last checkpoint before the crash
    resumed = DiffusionTrainer(tiny(), progress=False).fit([nuclei_crop], path, resume=True)
    assert all(torch.equal(a, b) for a, b in zip(unet_weights(whole), unet_weights(resumed)))
    assert load_diffusion(path)[1].complete


def test_a_finished_run_extends_as_if_trained_longer_at_once(tmp_path, trained, nuclei_crop):
    _, finished = trained
    path = tmp_path / "extended.pt"
    shutil.copy(finished, path)
    extended = DiffusionTrainer(tiny(train_steps=13), progress=False).fit([nuclei_crop], path, resume=True)
    at_once = DiffusionTrainer(tiny(train_steps=13), progress=False).fit([nuclei_crop], tmp_path / "once.pt")
    assert all(torch.equal(a, b) for a, b in zip(unet_weights(extended), unet_weights(at_once)))
    state = load_diffusion(path)[1]
    assert state.step == 13 and state.complete and [r["step"] for r in state.log] == [5, 10, 13]
    other = TrainingPair(nuclei_crop.real.flip(-1), nuclei_crop.intensity, nuclei_crop.labels)
    with pytest.raises(SinGANSegInputError, match="trained on other data"):
        DiffusionTrainer(tiny(train_steps=20), progress=False).fit([other], path, resume=True)


def test_the_moving_average_samples_and_travels_beside_the_training_weights(tmp_path, nuclei_crop):
    """The checkpoint's unet is the warmed-up moving average of the weights after every step; the training weights
    travel in the resume state; ema_decay 0 stores the training weights themselves."""
    # the training weights after each step: runs without an average of 1..4 steps (same seed, same draws)
    seen = [DiffusionTrainer(tiny(ema_decay=0.0, train_steps=k), progress=False).fit([nuclei_crop],
                                                                                   tmp_path / f"raw{k}.pt")
            .unet.state_dict() for k in range(1, 5)]
    assert torch.load(tmp_path / "raw4.pt", weights_only=True)["training"]["online"] is None
    model = DiffusionTrainer(tiny(ema_decay=0.6, train_steps=4), progress=False).fit([nuclei_crop],
                                                                                    tmp_path / "ema.pt")
    expected = {k: v.clone() for k, v in PairDiffusion(tiny()).unet.state_dict().items()}  # the seeded start
    for step, weights in enumerate(seen):
        decay = min(0.6, (1 + step) / (10 + step))
        expected = {name: decay * expected[name] + (1 - decay) * weights[name] for name in expected}
    for name, value in model.unet.state_dict().items():
        torch.testing.assert_close(value, expected[name], atol=1e-6, rtol=1e-5)
    payload = torch.load(tmp_path / "ema.pt", weights_only=True)
    online = payload["training"]["online"]
    assert all(torch.equal(online[k], seen[-1][k]) for k in online)  # the training weights, for resuming
    assert all(torch.equal(payload["unet"][k], v) for k, v in model.unet.state_dict().items())
    assert not all(torch.equal(payload["unet"][k], online[k]) for k in online)
    with pytest.raises(ValueError, match="ema_decay"):
        tiny(ema_decay=1.0)
    # a checkpoint written before the average existed holds the training weights: it reads as ema_decay 0
    old = torch.load(tmp_path / "raw4.pt", weights_only=True)
    config = json.loads(old["config"])
    del config["ema_decay"]
    torch.save({**old, "config": json.dumps(config)}, tmp_path / "old.pt")
    assert load_diffusion(tmp_path / "old.pt")[0].config.ema_decay == 0.0


def test_inpainting_keeps_the_known_region_and_redraws_the_rest(trained, nuclei_crop):
    model, _ = trained
    real = nuclei_crop.real[:, 16:48, 16:48]
    lesion = (real[1] > 0).float()[None, None]
    region = torch.nn.functional.max_pool2d(lesion, 5, stride=1, padding=2)[0, 0] > 0  # the mask dilated by 2
    assert 0.05 < region.float().mean() < 0.95
    out = model.inpaint(real, region, steps=10, jump_length=3, resample=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 2, 32, 32) and out.min() >= -1 and out.max() <= 1
    error = (out[0] - real).abs()
    kept, redrawn = error[:, ~region], error[:, region]
    assert kept.max() < 1e-5  # RePaint's last step takes the real pair itself outside the region
    assert redrawn.mean() > 0.1 > 1000 * kept.mean()
    two = model.inpaint(real.expand(2, -1, -1, -1), region, steps=4, jump_length=2, resample=1)
    assert two.shape == (2, 2, 32, 32) and not torch.equal(two[0], two[1])  # each copy is redrawn differently


def test_checkpoint_is_plain_weights_and_reloads(trained, tmp_path):
    model, path = trained
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "monai-singanseg-diffusion" and payload["training"]["complete"]
    assert payload["intensity"] == model.intensity.to_dict() and payload["labels"] == model.labels.to_dict()
    assert isinstance(payload["training"]["optimizer"]["state"][0]["exp_avg"], torch.Tensor)
    loaded = PairDiffusion.load(path)
    assert loaded.config == model.config and not loaded.training
    assert torch.equal(loaded.generate(2, steps=3, generator=torch.Generator().manual_seed(5)),
                       model.generate(2, steps=3, generator=torch.Generator().manual_seed(5)))
    with pytest.raises(SinGANSegInputError, match="no 'monai-singanseg' format marker"):
        load_model(path)  # SinGAN-Seg's loader refuses it clearly
    singan = tmp_path / "singan.pt"
    torch.save({"format": "monai-singanseg", "format_version": 2}, singan)
    with pytest.raises(SinGANSegInputError, match="a SinGAN-Seg checkpoint, not a diffusion one"):
        PairDiffusion.load(singan)
    with pytest.raises(SinGANSegInputError, match="not found"):
        PairDiffusion.load(tmp_path / "missing.pt")


def test_config_round_trip_and_checks():
    config = tiny(schedule="cosine", flips=False)
    assert DiffusionConfig.from_json(config.to_json()) == config
    assert DiffusionConfig(spatial_dims=3, image_size=16).image_size == (16, 16, 16)
    for fields, message in [
        ({"image_size": 31}, "multiple of 2"),
        ({"attention_levels": (False,)}, "one flag per UNet level"),
        ({"norm_num_groups": 12}, "must divide every unet_channels"),
        ({"num_head_channels": 12}, "deepest level"),
        ({"mask_channels": 0}, "mask_channels >= 1"),
        ({"schedule": "quadratic"}, "schedule must be one of"),
    ]:
        with pytest.raises(ValueError, match=message):
            tiny(**fields)
    with pytest.raises(ValueError, match="unknown DiffusionConfig fields"):
        DiffusionConfig.from_dict({**config.to_dict(), "epochs": 3})


def test_building_a_model_leaves_the_global_random_stream_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a, b = PairDiffusion(tiny()), PairDiffusion(tiny())
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(x, y) for x, y in zip(unet_weights(a), unet_weights(b)))  # seeded from config.seed


def test_bad_inputs_are_refused_with_clear_messages(tmp_path, nuclei_crop, trained):
    model, _ = trained
    trainer = DiffusionTrainer(tiny(), progress=False)
    pair = nuclei_crop
    cases = [
        ([pair, TrainingPair(pair.real[:, :48, :48], pair.intensity, pair.labels)], "differs from pair 0's"),
        ([torch.zeros(3, 64, 64)], r"3 channels.*expects 2 \(1 image \+ 1 mask\)"),
        ([pair.real[:, :16, :16]], r"smaller than the training crop image_size \(32, 32\).*multiple of 2"),
        ([pair.real * 3], r"values outside \[-1, 1\]"),
        ([pair.real[None]], "a 2D model trains on"),
        ([], "no training pair"),
    ]
    for pairs, message in cases:
        with pytest.raises(SinGANSegInputError, match=message):
            trainer.fit(pairs, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()
    with pytest.raises(SinGANSegInputError, match="multiple of 2"):
        model.inpaint(pair.real[:, :33, :32], torch.zeros(33, 32))
    with pytest.raises(SinGANSegInputError, match="does not broadcast"):
        model.inpaint(pair.real[:, :32, :32], torch.zeros(16, 16))
    with pytest.raises(SinGANSegInputError, match=r"C = 2 \(1 image \+ 1 mask\)"):
        model.inpaint(torch.zeros(3, 32, 32), torch.zeros(32, 32))
    with pytest.raises(SinGANSegInputError, match="needs 2 sides"):
        model.generate(1, steps=2, shape=(32, 32, 32))
    with pytest.raises(SinGANSegInputError, match="cannot resume: the checkpoint holds no training state"):
        model.save(tmp_path / "weights_only.pt")
        trainer.fit([pair], tmp_path / "weights_only.pt", resume=True)


def test_pairs_in_different_units_share_one_intensity_map(nuclei_crop):
    pair = nuclei_crop
    brighter = prepare_training_pair(pair.intensity.denormalize(pair.real[:1]) * 2, (pair.real[1:] > 0).float() * 255,
                                     intensity=IntensityMapping([0.0], [256.0]))
    data = stack_pairs([pair, brighter], tiny())
    assert data.intensity.lower == [0.0] and data.intensity.upper[0] == pytest.approx(256.0)
    assert torch.allclose(data.intensity.denormalize(data.real[0, :1]), pair.intensity.denormalize(pair.real[:1]),
                          atol=1e-3)  # the same values in the image's units, nothing clipped
    assert torch.equal(data.real[:, 1:], torch.stack([pair.real[1:], brighter.real[1:]]))


# --- 3D, several image channels -----------------------------------------------------------------------------------


def test_a_tiny_3d_model_of_two_contrasts_trains_samples_and_inpaints(tmp_path):
    box = (slice(80, 96), slice(100, 116), slice(70, 86))
    t1, _ = mni_crop(T1, box)
    gm, _ = mni_crop(GM, box)
    wm = (mni_crop(WM, box)[0] > 128).astype(np.float32)
    pair = prepare_training_pair(torch.from_numpy(np.stack([t1, gm])), torch.from_numpy(wm)[None])
    config = tiny(spatial_dims=3, image_channels=2, image_size=16, unet_channels=(8, 16), num_head_channels=8,
                  train_steps=3, batch_size=2)
    model = DiffusionTrainer(config, progress=False).fit([pair], tmp_path / "mni.pt")
    x = model.generate(2, steps=3, sampler="ddim", generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 3, 16, 16, 16)
    image, label = model.split(x)
    assert image.shape == (2, 2, 16, 16, 16) and set(label.unique().tolist()) <= {0.0, 1.0}
    region = torch.zeros(16, 16, 16, dtype=torch.bool)
    region[4:12, 4:12, 4:12] = True
    out = model.inpaint(pair.real, region, steps=4, jump_length=2, resample=2)
    assert out.shape == (1, 3, 16, 16, 16) and torch.allclose(out[0][:, ~region], pair.real[:, ~region], atol=1e-5)
    assert PairDiffusion.load(tmp_path / "mni.pt").config.spatial_dims == 3


def test_intensity_map_and_labels_must_fit_the_config():
    with pytest.raises(ValueError, match="config has 1 \\+ 1"):
        PairDiffusion(tiny(), intensity=IntensityMapping([0.0, 0.0], [1.0, 1.0]))
