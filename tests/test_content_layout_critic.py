"""The content and layout critic (``NetworkConfig.critic = "content_layout"``, after One-Shot GAN): its branches'
shapes and per-model channels, training and sampling on the real nuclei crop, grouped training, the config; and the
DiffAugment of the coarsest critics' inputs (``NetworkConfig.critic_augment``)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL, nuclei_tile, tiny_config

from monai_singanseg import SinGANSeg, SinGANSegConfig, SinGANSegTrainer
from monai_singanseg.checkpoint import load_model, read_checkpoint
from monai_singanseg.cli import main
from monai_singanseg.config import NetworkConfig
from monai_singanseg.networks import ScaleCritic, init_weights, stack_states
from monai_singanseg.training import TrainingItem


def _layout_config(augment: tuple[str, ...] = (), **optim) -> SinGANSegConfig:
    config = tiny_config(**optim)
    config.network.critic = "content_layout"
    config.network.critic_scales = 2  # of the tiny pyramid's three: the finest scale has a patch critic
    config.network.critic_augment = augment
    return config.validate()


def _critic(dims: int, groups: int = 1, scale: int | None = None, seed: int = 0, **network) -> ScaleCritic:
    critic = ScaleCritic(dims, 2, 8, NetworkConfig(critic="content_layout", **network), groups, scale)
    init_weights(critic, torch.Generator().manual_seed(seed))
    return critic


@pytest.mark.parametrize("dims", [2, 3])
def test_the_branches_score_the_whole_sample_and_a_one_channel_map(dims):
    critic = _critic(dims, groups=2)
    x = torch.randn(2, 4, *([14] * dims))  # two models of two channels each
    scores = critic.branch_scores(x)
    assert scores["patch"].shape == (2, 2, *([4] * dims))  # five unpadded 3-wide convolutions
    assert scores["content"].shape == (2, 2, *([1] * dims))  # one score per sample and model
    assert scores["layout"].shape == (2, 2, *([6] * dims))  # the shared features' map, kept by replication
    # the map the losses read: its mean is the sum of the branches' means, per model
    combined = critic(x)
    assert combined.shape == scores["patch"].shape
    means = sum(s.mean(dim=tuple(range(2, x.ndim))) for s in scores.values())
    torch.testing.assert_close(combined.mean(dim=tuple(range(2, x.ndim))), means)


def test_a_grouped_critic_is_its_models_side_by_side():
    singles = [_critic(2, seed=s) for s in (1, 2)]
    grouped = ScaleCritic(2, 2, 8, NetworkConfig(critic="content_layout"), groups=2)
    grouped.load_state_dict(stack_states([c.state_dict() for c in singles]))
    x = torch.randn(3, 4, 16, 16)
    scores = grouped.branch_scores(x)
    for k, single in enumerate(singles):
        for name, value in single.branch_scores(x[:, 2 * k: 2 * k + 2]).items():
            torch.testing.assert_close(scores[name][:, k: k + 1], value, rtol=1e-5, atol=1e-6)
    # model 0's scores do not move when model 1's channels change
    changed = x.clone()
    changed[:, 2:] = torch.randn_like(changed[:, 2:])
    torch.testing.assert_close(grouped(changed)[:, 0], grouped(x)[:, 0])


def test_finer_scales_keep_the_branch_weights_but_judge_patches_only():
    coarse, fine = _critic(2, scale=0, critic_scales=1), _critic(2, scale=1, critic_scales=1)
    assert coarse.state_dict().keys() == fine.state_dict().keys()  # one set of weights for every scale
    patch = ScaleCritic(2, 2, 8, NetworkConfig())
    assert set(patch.state_dict()) < set(fine.state_dict())
    patch.load_state_dict({k: v for k, v in fine.state_dict().items() if k in patch.state_dict()})
    x = torch.randn(1, 2, 16, 16)
    assert list(fine.branch_scores(x)) == ["patch"]
    torch.testing.assert_close(fine(x), patch(x))
    assert not torch.allclose(coarse(x), patch(x))


def test_the_patch_critic_is_the_default_and_unchanged():
    critic = ScaleCritic(2, 2, 8, NetworkConfig())
    assert NetworkConfig().critic == "patch"
    assert [name for name, _ in critic.named_children()] == ["features", "tail"]


def test_a_content_layout_model_trains_samples_saves_and_resumes(tmp_path, nuclei_pair):
    config = _layout_config()
    args = (nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels)
    model = SinGANSegTrainer(config, progress=False).fit(*args, tmp_path / "whole.pt")
    stored = json.loads(read_checkpoint(tmp_path / "whole.pt")["config"])["network"]
    assert stored["critic"] == "content_layout" and stored["critic_scales"] == 2
    loaded = SinGANSeg.load(tmp_path / "whole.pt")
    x, y = (m.generate(2, generator=torch.Generator().manual_seed(0)) for m in (model, loaded))
    assert torch.equal(x, y) and x.shape[2:] == model.shapes[-1] and bool(torch.isfinite(x).all())
    # a run stopped after a branched scale resumes to the uninterrupted run's weights
    SinGANSegTrainer(config, progress=False, stop_after=1).fit(*args, tmp_path / "part.pt")
    resumed = SinGANSegTrainer(config, progress=False).fit(*args, tmp_path / "part.pt", resume=True)
    for a, b in zip(model.generators, resumed.generators, strict=True):
        for u, v in zip(a.state_dict().values(), b.state_dict().values()):
            assert torch.equal(u, v)
    # and it differs from the patch critic's model of the same seed
    patch = SinGANSegTrainer(tiny_config(), progress=False).fit(*args, tmp_path / "patch.pt")
    assert not torch.equal(patch.generate(2, generator=torch.Generator().manual_seed(0)), x)


# two critic steps: with three (and lr_d 5e-4) the rounding-level difference between grouped and plain convolutions
# meets a discontinuity on the windows' run and grows to 1e-4 by scale 1, as tests/test_grouped_training.py notes
# for concurrent scales; with two or four critic steps, two generator steps or lr_d 1e-4 the weights match to 1e-7
@pytest.mark.parametrize("optim", [{"critic_steps": 2}, {"critic_steps": 2, "crop_size": 24},
                                   {"critic_steps": 2, "augment": ("color", "translation", "cutout")}])
def test_a_content_layout_model_trained_in_a_group_equals_the_model_trained_alone(tmp_path, nuclei_pair, optim):
    config = _layout_config(iters=1, **optim)
    other = _layout_config(iters=1, **optim)
    other.seed += 1  # its own random streams: a step that drew every model's augmentation from one would differ
    tile = nuclei_tile("a")
    alone = SinGANSegTrainer(config, progress=False).fit(nuclei_pair.real, nuclei_pair.intensity,
                                                          nuclei_pair.labels, tmp_path / "alone.pt")
    tile_alone = SinGANSegTrainer(other, progress=False).fit(tile.real, tile.intensity, tile.labels,
                                                              tmp_path / "tile_alone.pt")
    group = SinGANSegTrainer(config, progress=False).fit_group([
        TrainingItem(nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "g0.pt"),
        TrainingItem(tile.real, tile.intensity, tile.labels, tmp_path / "g1.pt", config=other)])
    for single, member in ((alone, group[0]), (tile_alone, group[1])):
        for a, b in zip(single.generators, member.generators, strict=True):
            for u, v in zip(a.state_dict().values(), b.state_dict().values()):
                torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-6)
    alone_critic = load_model(tmp_path / "alone.pt", for_training=True)[1].critic
    member_critic = load_model(tmp_path / "g0.pt", for_training=True)[1].critic
    assert {k for k in alone_critic if k.startswith(("content", "layout"))}  # the branch weights are stored
    for name, value in alone_critic.items():
        torch.testing.assert_close(member_critic[name], value, rtol=1e-5, atol=1e-6)


def test_the_config_round_trips_and_old_configs_read_as_patch():
    config = _layout_config()
    assert SinGANSegConfig.from_json(config.to_json()) == config
    data = json.loads(tiny_config().to_json())
    del data["network"]["critic"], data["network"]["critic_scales"]  # a checkpoint from before the option
    old = SinGANSegConfig.from_dict(data)
    assert old.network.critic == "patch" and old.network.critic_scales == 3 and old.network.critic_augment == ()
    augmented = _layout_config(("translation", "cutout"))
    assert SinGANSegConfig.from_json(augmented.to_json()).network.critic_augment == ("translation", "cutout")


@pytest.mark.parametrize("field, value, message", [
    ("critic", "global", "critic must be one of"),
    ("critic_scales", 0, "critic_scales must be >= 1"),
    ("critic_scales", "2", "critic_scales must be an integer"),
    ("critic_augment", ("flip",), "critic_augment must be a tuple of distinct operations"),
    ("critic_augment", ("cutout", "cutout"), "critic_augment must be a tuple of distinct operations"),
    ("critic_augment", None, "critic_augment must be a tuple of distinct operations"),
])
def test_bad_critic_options_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        NetworkConfig(**{field: value}).validate()


def test_the_command_line_trains_a_content_layout_model(tmp_path, capsys):
    train = ["train", "--image", str(NUCLEI_IMAGE), "--label", str(NUCLEI_LABEL), "--max-size", "32",
             "--min-size", "20", "--iters", "2", "--base-channels", "8", "--quiet"]
    out = tmp_path / "m.pt"
    assert main(train + ["--out", str(out), "--critic", "content_layout", "--critic-scales", "1"]) == 0
    network = load_model(out)[0].config.network
    assert network.critic == "content_layout" and network.critic_scales == 1
    assert main(train + ["--out", str(tmp_path / "bad.pt"), "--critic-scales", "0"]) == 2
    assert "critic_scales must be >= 1" in capsys.readouterr().err and not (tmp_path / "bad.pt").exists()
    augmented = tmp_path / "augmented.pt"
    assert main(train + ["--out", str(augmented), "--critic-augment", "translation", "cutout"]) == 0
    assert load_model(augmented)[0].config.network.critic_augment == ("translation", "cutout")
    with pytest.raises(SystemExit):  # argparse: not one of the operations
        main(train + ["--out", str(tmp_path / "bad.pt"), "--critic-augment", "flip"])
    assert "invalid choice: 'flip'" in capsys.readouterr().err and not (tmp_path / "bad.pt").exists()


def test_the_augmentation_reaches_the_coarsest_critics_only_and_changes_training(tmp_path, nuclei_pair, monkeypatch):
    import monai_singanseg.training.trainer as trainer_module

    seen: list[tuple[int, ...]] = []
    original = trainer_module.diff_augment

    def recording(x, image_channels, ops, generator=None):
        seen.append(tuple(x.shape[2:]))
        assert image_channels == 1 and ops == ("translation", "cutout")
        return original(x, image_channels, ops, generator)

    monkeypatch.setattr(trainer_module, "diff_augment", recording)
    args = (nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels)
    config = _layout_config(("translation", "cutout"), iters=2)
    model = SinGANSegTrainer(config, progress=False).fit(*args, tmp_path / "augmented.pt")
    # real, fake and the penalty's mixture in every critic step, the fake in every generator step
    assert set(seen) == {tuple(s) for s in model.shapes[:2]} and len(seen) > 0
    plain = SinGANSegTrainer(_layout_config(iters=2), progress=False).fit(*args, tmp_path / "plain.pt")
    assert any(not torch.equal(a, b) for a, b in zip(model.generators[0].state_dict().values(),
                                                      plain.generators[0].state_dict().values(), strict=True))


def test_a_3d_content_layout_model_trains_and_samples(tmp_path, nuclei_pair):
    # a small volume from the real crop: 16 slices of its 16x16 thumbnail, each shifted by one pixel more
    thumb = torch.nn.functional.interpolate(nuclei_pair.real[None], size=(16, 16), mode="area")[0]
    volume = torch.stack([thumb.roll(i, dims=-1) for i in range(16)], dim=1)  # (C, 16, 16, 16)
    volume[1:] = (volume[1:] > 0).float() * 2 - 1  # the mask stays binary in [-1, 1]
    config = tiny_config(spatial_dims=3, iters=2)
    config.pyramid.min_size, config.pyramid.max_size = 12, 16
    config.network.critic = "content_layout"
    model = SinGANSegTrainer(config.validate(), progress=False).fit(volume, nuclei_pair.intensity,
                                                                     nuclei_pair.labels, tmp_path / "v.pt")
    assert model.num_scales >= 2
    x = model.generate(2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 2, 16, 16, 16) and bool(torch.isfinite(x).all())
