"""Training several models as one grouped network, the fast schedule's plateau stop, and portable resume, on the
real nuclei crop and tiles."""

from __future__ import annotations

import pytest
import torch
import torch.serialization
from conftest import DATA, nuclei_tile, second_plateau, tiny_config

from monai_singanseg import SinGANSegConfig, SinGANSegInputError, SinGANSegTrainer, load_training_pair
from monai_singanseg.checkpoint import load_model, read_checkpoint
from monai_singanseg.training import TrainingItem
from monai_singanseg.training.trainer import LOSSES


def _weights(model) -> list[torch.Tensor]:
    return [t for g in model.generators for t in g.state_dict().values()]


def _item(pair, path) -> TrainingItem:
    return TrainingItem(pair.real, pair.intensity, pair.labels, path)


def _group_and_alone(tmp_path, pair, config, seed_other=None):
    alone = SinGANSegTrainer(config, progress=False).fit(pair.real, pair.intensity, pair.labels, tmp_path / "alone.pt")
    others = [nuclei_tile(letter) for letter in "abc"]
    group = SinGANSegTrainer(config, progress=False).fit_group(
        [_item(pair, tmp_path / "g0.pt")] + [_item(p, tmp_path / f"g{i}.pt") for i, p in enumerate(others, 1)])
    return alone, group


def _samples(model, seed=3):
    return model.generate(2, generator=torch.Generator().manual_seed(seed))


# concurrent scales with two critic steps: with exactly three (and lr_d 5e-4), on an AMD EPYC CPU a rounding-level
# difference between the grouped and the plain convolutions (1e-9) grew to two learning-rate steps by scale 2, while
# 2 or 4 critic steps, or lr_d 1e-4, match to 1e-8 there: one configuration whose rounding meets a discontinuity
# (an activation's kink or the like), not a difference of the group's arithmetic
@pytest.mark.parametrize("schedule", [{}, {"critic_steps": 2, "generator_steps": 1, "gp_every": 2},
                                      {"concurrent_scales": 2, "critic_steps": 2}, {"crop_size": 24}])
def test_a_model_trained_in_a_group_of_four_equals_the_model_trained_alone(tmp_path, nuclei_pair, schedule):
    # one iteration per scale exercises everything a scale does (initialisation from each model's stream, noise
    # amplitudes, critic, lazy penalty, generator, hand-over to the next scale) before GAN dynamics amplify rounding
    alone, group = _group_and_alone(tmp_path, nuclei_pair, tiny_config(iters=1, **schedule))
    assert len(group) == 4 and group[0].num_scales == alone.num_scales >= 2
    for a, b in zip(_weights(alone), _weights(group[0])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert group[0].noise_amps == pytest.approx(alone.noise_amps, rel=1e-5)
    torch.testing.assert_close(group[0].fixed_noise, alone.fixed_noise)
    torch.testing.assert_close(_samples(group[0]), _samples(alone), rtol=1e-5, atol=1e-5)
    # its training log holds its own losses, not the group's means
    alone_log, member_log = load_model(tmp_path / "alone.pt")[1].log, load_model(tmp_path / "g0.pt")[1].log
    for a, m in zip(alone_log, member_log, strict=True):
        assert [m[name] for name in LOSSES] == pytest.approx([a[name] for name in LOSSES], rel=1e-4, abs=1e-6)
    # the other members learnt their own images: their weights and noise amplitudes differ from the first's
    assert not torch.allclose(_weights(group[1])[0], _weights(group[0])[0])
    assert group[1].noise_amps[1:] != pytest.approx(group[0].noise_amps[1:], rel=1e-3)
    # every member's checkpoint is complete and loads alone
    loaded, state = load_model(tmp_path / "g2.pt")
    assert state.complete and state.log[-1]["group_size"] == 4
    assert all(torch.equal(a, b) for a, b in zip(_weights(loaded), _weights(group[2])))


def test_every_member_of_a_group_trained_on_windows_sees_its_own_windows(tmp_path, nuclei_pair):
    # each model draws its windows from its own stream: the second member equals its image's model trained alone
    config = tiny_config(iters=1, crop_size=24)
    _, group = _group_and_alone(tmp_path, nuclei_pair, config)
    tile = nuclei_tile("a")
    alone = SinGANSegTrainer(config, progress=False).fit(tile.real, tile.intensity, tile.labels, tmp_path / "a.pt")
    for a, b in zip(_weights(alone), _weights(group[1])):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_longer_grouped_training_drifts_by_rounding_only(tmp_path, nuclei_pair):
    # grouped convolutions round differently from single ones, and many Adam steps amplify rounding; the drift stays
    # far below the difference that another seed makes
    config = tiny_config(iters=6)
    alone, group = _group_and_alone(tmp_path, nuclei_pair, config)
    config.seed += 1
    other_seed = SinGANSegTrainer(config, progress=False).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "seed.pt")
    drift = (_samples(group[0]) - _samples(alone)).abs().mean()
    seed_gap = (_samples(other_seed) - _samples(alone)).abs().mean()
    assert drift < 0.1 * seed_gap, (drift, seed_gap)


def test_a_group_needs_equal_pyramids(tmp_path, nuclei_pair):
    config = tiny_config()
    narrow = load_training_pair([DATA / "nuclei_image.png"], DATA / "nuclei_label.png")
    narrow.real = narrow.real[:, :, :128]
    with pytest.raises(SinGANSegInputError, match="one group"):
        SinGANSegTrainer(config, progress=False).fit_group(
            [_item(nuclei_pair, tmp_path / "a.pt"), _item(narrow, tmp_path / "b.pt")])


def test_plateau_stop_decays_then_ends_a_scale_early(tmp_path, nuclei_pair):
    # tolerance 1.0: every window counts as a plateau, so each scale decays after 2 windows and stops after 3
    config = tiny_config(iters=200, plateau_window=5, plateau_tolerance=1.0)
    SinGANSegTrainer(config, progress=False).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "m.pt")
    _, state = load_model(tmp_path / "m.pt")
    assert [r["iterations"] for r in state.log] == [15] * len(state.log)
    # tolerance 0 with a steadily falling loss never stops early
    config = tiny_config(iters=12, plateau_window=3, plateau_tolerance=0.0)
    SinGANSegTrainer(config, progress=False).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "n.pt")
    assert all(r["iterations"] <= 12 for r in load_model(tmp_path / "n.pt")[1].log)


def test_coarse_scales_train_with_their_own_recipe(tmp_path, nuclei_pair):
    config = tiny_config(iters=3, coarse_scales=1, coarse={"iters_per_scale": 5, "critic_steps": 2})
    SinGANSegTrainer(config, progress=False).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "m.pt")
    model, state = load_model(tmp_path / "m.pt")
    assert model.num_scales >= 2
    assert [r["iterations"] for r in state.log] == [5] + [3] * (model.num_scales - 1)
    assert model.config.optim.coarse == {"iters_per_scale": 5, "critic_steps": 2}  # stored with the checkpoint
    recipe = config.optim.at_scale(0, 3)
    assert (recipe.iters_per_scale, recipe.critic_steps, recipe.coarse) == (5, 2, {})
    assert config.optim.at_scale(1, 3) is config.optim
    config.optim.coarse_scales = 4
    assert config.optim.at_scale(2, 4).iters_per_scale == 5 and config.optim.at_scale(3, 4) is config.optim


def _scale_step(pair_reals, config, decayed=()):
    """A ScaleStep at the coarsest scale for the models whose training tensors are ``pair_reals`` (one group)."""
    from monai_singanseg.networks import ScaleCritic, ScaleGenerator, init_weights, stack_states
    from monai_singanseg.training.trainer import ScaleStep, scale_seed

    net, groups = config.network, len(pair_reals)
    rngs = [torch.Generator().manual_seed(scale_seed(config.seed + k, 0)) for k in range(groups)]
    generators, critics = [], []
    for rng in rngs:
        g, c = ScaleGenerator(2, config.channels, 8, net), ScaleCritic(2, config.channels, 8, net)
        init_weights(g, rng)
        init_weights(c, rng)
        generators.append(g.state_dict())
        critics.append(c.state_dict())
    generator = ScaleGenerator(2, config.channels, 8, net, groups)
    critic = ScaleCritic(2, config.channels, 8, net, groups)
    generator.load_state_dict(stack_states(generators))
    critic.load_state_dict(stack_states(critics))
    real = torch.cat(pair_reals, 1)
    rec_noise = torch.cat([torch.randn(r.shape, generator=rng) for r, rng in zip(pair_reals, rngs)], 1)
    step = ScaleStep(generator, critic, real, torch.ones(()), (rec_noise, torch.zeros_like(real)), [], rngs,
                     config.optim)
    step.decay_learning_rates(list(decayed))
    return step


def _blocks(step, k):
    from monai_singanseg.networks import split_state

    return [split_state(net.state_dict(), step.groups)[k] for net in (step.generator, step.critic)]


def test_in_a_group_each_model_steps_at_its_own_learning_rate(nuclei_pair):
    # model 1's rates have decayed (its first plateau), model 0's have not: each block must take the step its model
    # takes alone, at its own rate (one step of each network: later steps amplify rounding, as in any group)
    from monai_singanseg.pyramid import resize

    config = tiny_config(critic_steps=1, generator_steps=1)
    real = resize(nuclei_pair.real.unsqueeze(0), (24, 24))
    reals = [real, real.flip(-1)]
    group = _scale_step(reals, config, decayed=[1])
    seeded = [SinGANSegConfig.from_dict({**config.to_dict(), "seed": config.seed + k}) for k in range(2)]
    alone = [_scale_step([reals[0]], seeded[0]), _scale_step([reals[1]], seeded[1], decayed=[0])]
    undecayed = _scale_step([reals[1]], seeded[1])
    for step in (group, *alone, undecayed):
        step(None, None)
    for k in range(2):
        for grouped, single in zip(_blocks(group, k), _blocks(alone[k], 0)):
            for name in single:
                torch.testing.assert_close(grouped[name], single[name], rtol=1e-5, atol=1e-6, msg=name)
    # and the decay mattered: at the full rate model 1 would have moved elsewhere
    moved = _blocks(undecayed, 0)[0]
    assert any(not torch.allclose(moved[n], _blocks(alone[1], 0)[0][n], atol=1e-6) for n in moved)


def test_each_model_of_a_group_follows_its_own_plateaus(nuclei_pair):
    # made-up reconstruction losses (window 1, tolerance 10 %): model 0 levels off at once (decay at iteration 2,
    # end at 3), model 1 halves three times first (decay at 5, end at 6); the group runs until both have ended
    from ignite.engine import Engine, Events

    from monai_singanseg.pyramid import resize
    from monai_singanseg.training.trainer import _PlateauStop

    config = tiny_config(iters=20, plateau_window=1, plateau_tolerance=0.1)
    real = resize(nuclei_pair.real.unsqueeze(0), (24, 24))
    step = _scale_step([real, real.flip(-1)], config)
    losses = torch.tensor([[1.0, 1.0], [0.95, 0.5], [0.94, 0.25], [0.93, 0.125], [0.92, 0.12], [0.91, 0.119]]
                          + [[0.9, 0.118]] * 14)
    engine = Engine(lambda e, b: {**step(e, b), "rec_per_model": losses[e.state.iteration - 1]})
    engine.add_event_handler(Events.ITERATION_COMPLETED, _PlateauStop(step, config.optim))
    history = []
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: history.append(_blocks(step, 0)[0]))
    engine.run(range(20), max_epochs=1)
    assert engine.state.iteration == 6 and step.decayed == [True, True] and step.running == []
    assert (step.stopped[0]["iterations"], step.stopped[1]["iterations"]) == (3, 6)
    assert step.stopped[0]["losses"]["rec"] == pytest.approx(0.94)
    # model 0 keeps the weights it had when its scale ended, though the group went on computing its block
    kept = step.stopped[0]["generator"]
    assert all(torch.equal(kept[n], history[2][n]) for n in kept)
    assert any(not torch.equal(kept[n], history[-1][n]) for n in kept)


def test_a_group_ends_each_members_scale_at_its_own_second_plateau(tmp_path, nuclei_pair):
    # window 1, tolerance 10 %: every member's recorded end of scale is the second plateau of its own loss trace
    # in the group, and the group runs until its last member has ended
    from ignite.engine import Events

    config = tiny_config(iters=40, plateau_window=1, plateau_tolerance=0.1)
    traces: dict[int, list[torch.Tensor]] = {}

    def record(engine, scale):
        traces[scale] = []
        engine.add_event_handler(Events.ITERATION_COMPLETED,
                                 lambda e: traces[scale].append(e.state.output["rec_per_model"].clone()))

    SinGANSegTrainer(config, progress=False, handlers=[record]).fit_group(
        [_item(nuclei_pair, tmp_path / "g0.pt"), _item(nuclei_tile("a"), tmp_path / "g1.pt")])
    logs = [load_model(tmp_path / f"g{k}.pt")[1].log for k in range(2)]
    for scale, trace in traces.items():
        losses = torch.stack(trace)
        ends = [second_plateau(losses[:, k], 0.1) for k in range(2)]
        assert max(ends) < 32  # before the learning-rate milestone (80 % of 40), which the rule above leaves out
        assert [log[scale]["iterations"] for log in logs] == ends
        assert logs[0][scale]["group_iterations"] == logs[1][scale]["group_iterations"] == max(ends) == len(losses)
        assert logs[1][scale]["rec"] == pytest.approx(float(losses[ends[1] - 1, 1]))


def test_a_coarse_scale_keeps_its_own_plateau_rule(tmp_path, nuclei_pair):
    # tolerance 1.0: every window is a plateau, so the other scales stop after 3 windows; the coarse scale may not
    config = tiny_config(iters=40, plateau_window=5, plateau_tolerance=1.0, coarse_scales=1,
                         coarse={"plateau_window": 0})
    SinGANSegTrainer(config, progress=False).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "m.pt")
    model, state = load_model(tmp_path / "m.pt")
    assert [r["iterations"] for r in state.log] == [40] + [15] * (model.num_scales - 1)


@pytest.mark.parametrize(("coarse", "message"), [
    ({"schedule": "fast"}, "may override"), ({"coarse_scales": 2}, "may override"),
    ({"critic_steps": 0}, "coarse scales' recipe"), ({"iters_per_scale": 2.5}, "coarse scales' recipe.*integer"),
    (None, "dict of overrides"), ([], "dict of overrides")])
def test_coarse_recipe_is_validated(coarse, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(coarse_scales=1, coarse=coarse)


def test_configs_with_other_coarse_recipes_differ_in_both_directions():
    from monai_singanseg.training.trainer import config_differences

    fast, faithful = (SinGANSegConfig.for_schedule(s, image_channels=1) for s in ("fast", "faithful"))
    assert "optim.coarse.iters_per_scale: 2000 kept (asked 'unset')" in map(str, config_differences(fast, faithful))
    assert "optim.coarse.iters_per_scale: 'unset' kept (asked 2000)" in map(str, config_differences(faithful, fast))
    assert config_differences(fast, SinGANSegConfig.for_schedule("fast", image_channels=1)) == []


def test_config_json_round_trip_with_coarse_betas_and_without_the_new_fields():
    config = tiny_config(coarse_scales=1, coarse={"betas": (0.5, 0.9), "iters_per_scale": 3})
    again = SinGANSegConfig.from_json(config.to_json())
    assert again == config and again.optim.coarse["betas"] == (0.5, 0.9)
    old = config.to_dict()  # a checkpoint written before the coarse scales existed
    del old["optim"]["coarse"], old["optim"]["coarse_scales"]
    loaded = SinGANSegConfig.from_dict(old).optim
    assert (loaded.coarse_scales, loaded.coarse) == (0, {}) and loaded.at_scale(0, 3) is loaded


def test_fewer_iterations_shorten_the_fast_schedules_coarse_scales_in_proportion():
    fast = SinGANSegConfig.for_schedule("fast", image_channels=1).optim
    assert (fast.iters_per_scale, fast.at_scale(3, 6).iters_per_scale, fast.at_scale(4, 6).iters_per_scale) == \
        (600, 2000, 600)
    assert fast.at_scale(0, 6).plateau_window == 0 and fast.at_scale(5, 6).plateau_window > 0
    short = SinGANSegConfig.for_schedule("fast", iters_per_scale=60, image_channels=1).optim
    assert short.iters_per_scale == 60 and short.at_scale(0, 6).iters_per_scale == 200
    short.coarse["iters_per_scale"] = 1  # a config's values are its own, not the preset's
    assert SinGANSegConfig.for_schedule("fast", image_channels=1).optim.coarse["iters_per_scale"] == 2000


def test_the_fine_reconstruction_weight_leaves_the_coarse_scales_theirs():
    fast = SinGANSegConfig.for_schedule("fast", image_channels=1).optim
    sharp = fast.with_fine_rec_weight(100)
    assert [sharp.at_scale(k, 8).rec_weight for k in range(8)] == [10.0] * 4 + [100.0] * 4
    assert fast.rec_weight == 10.0 and "rec_weight" not in fast.coarse  # the schedule's own config is untouched
    faithful = SinGANSegConfig.for_schedule("faithful", image_channels=1).optim.with_fine_rec_weight(1)
    assert [faithful.at_scale(k, 8).rec_weight for k in range(8)] == [1.0] * 8  # no coarse scales: every scale
    assert SinGANSegConfig.from_json(SinGANSegConfig(optim=sharp).to_json()).optim == sharp
    with pytest.raises(ValueError, match="rec_weight"):
        fast.with_fine_rec_weight(-1)


def test_fast_schedule_preset():
    fast = SinGANSegConfig.for_schedule("fast", image_channels=1)
    assert fast.optim.schedule == "fast" and fast.optim.gp_every > 1 and fast.optim.plateau_window > 0
    assert fast.optim.iters_per_scale < SinGANSegConfig().optim.iters_per_scale
    assert SinGANSegConfig.from_json(fast.to_json()) == fast
    with pytest.raises(ValueError, match="schedule"):
        SinGANSegConfig.for_schedule("fastest")


def _save_in_cuda_form(path):
    """Rewrite a CPU checkpoint as a GPU run writes it with torch.save: every storage tagged 'cuda:0', and the
    CUDA generator's 16-byte random state that format version 1 kept."""
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 1
    payload["training"]["rng_state"] = torch.zeros(16, dtype=torch.uint8)
    original = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(payload, path)
    finally:
        torch.serialization.location_tag = original


def test_checkpoint_from_a_gpu_resumes_on_the_cpu(tmp_path, nuclei_pair):
    config = tiny_config()
    args = (nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels)
    whole = SinGANSegTrainer(config, progress=False).fit(*args, tmp_path / "whole.pt")
    SinGANSegTrainer(config, progress=False, stop_after=1).fit(*args, tmp_path / "part.pt")
    assert all(t.device.type == "cpu" for t in read_checkpoint(tmp_path / "part.pt")["training"]["critic"].values())
    _save_in_cuda_form(tmp_path / "part.pt")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "part.pt", weights_only=True)
    resumed = SinGANSegTrainer(config, progress=False).fit(*args, tmp_path / "part.pt", resume=True)
    # the random state is derived from (seed, scale), so the CPU continuation equals the uninterrupted CPU run
    assert all(torch.equal(a, b) for a, b in zip(_weights(whole), _weights(resumed)))
    payload = torch.load(tmp_path / "part.pt", weights_only=True)  # rewritten on the CPU: loads without map_location
    assert payload["format_version"] == 2 and "rng_state" not in payload["training"]


def test_checkpoints_with_biases_before_norms_load_exactly(nuclei_model):
    # the reference and this project's older checkpoints keep a bias in every convolution followed by a norm
    from monai_singanseg.networks import drop_norm_biases

    model, _ = nuclei_model
    state = model.generators[-1].state_dict()
    old = dict(state)
    for key in [k for k in state if k.endswith("adn.N.running_mean")]:
        bias = torch.randn_like(state[key])
        old[key.replace("adn.N.running_mean", "conv.bias")] = bias
        old[key] = state[key] + bias  # the running mean of an old layer includes its bias
    converted = drop_norm_biases(old)
    assert converted.keys() == state.keys()
    for key in state:
        torch.testing.assert_close(converted[key], state[key])


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_a_widened_network_starts_as_the_narrow_one_it_embeds(nuclei_pair, norm):
    from monai_singanseg.config import NetworkConfig
    from monai_singanseg.networks import ScaleCritic, ScaleGenerator, init_weights, widen_state
    from monai_singanseg.pyramid import resize

    net = NetworkConfig(norm=norm)
    real = resize(nuclei_pair.real.unsqueeze(0), (40, 40))
    noise = torch.randn(real.shape, generator=torch.Generator().manual_seed(0))
    for make in (lambda w: ScaleGenerator(2, 2, w, net), lambda w: ScaleCritic(2, 2, w, net)):
        narrow, wide = make(8), make(16)
        init_weights(narrow, torch.Generator().manual_seed(1))
        init_weights(wide, torch.Generator().manual_seed(2))
        fresh = make(16)
        fresh.load_state_dict(wide.state_dict())
        wide.load_state_dict(widen_state(wide.state_dict(), narrow.state_dict()))
        inputs = (noise, real) if isinstance(narrow, ScaleGenerator) else (real,)
        with torch.no_grad():
            for mode in (True, False):
                # one call each: a training-mode call moves the batch norms' running statistics
                expected, widened, scratch = (m.train(mode)(*inputs) for m in (narrow, wide, fresh))
                torch.testing.assert_close(widened, expected, rtol=1e-5, atol=1e-5)
                # a new initialisation computes something else (small: initial weights are N(0, 0.02))
                assert (scratch - expected).abs().max() > 100 * (widened - expected).abs().max() + 1e-6
        # the new channels learn: the zero weights into the old channels get a gradient
        wide.train()
        wide(*inputs).square().mean().backward()
        assert wide.tail.conv.weight.grad[:, 8:].abs().sum() > 0


@pytest.mark.parametrize("widen", [True, False])
def test_widening_starts_a_wider_scale_from_the_previous_scale(tmp_path, nuclei_pair, widen):
    # learning rates 0: the second scale keeps its starting weights, which compute the first scale's function only
    # when widening is on (the width doubles at every scale here)
    config = tiny_config(iters=1, lr_g=0.0, lr_d=0.0, widen_from_previous=widen)
    config.network.channels_double_every = 1
    model = SinGANSegTrainer(config, progress=False, stop_after=2).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "m.pt")
    coarse, fine = model.generators[0], model.generators[1]
    assert fine.tail.conv.weight.shape[1] == 2 * coarse.tail.conv.weight.shape[1]
    x = torch.randn(1, 2, *model.shapes[1], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        coarse.train(), fine.train()
        assert torch.allclose(fine(x, x), coarse(x, x), atol=1e-5) == widen


def test_resuming_a_checkpoint_without_its_critic_says_so(tmp_path, nuclei_pair):
    config = tiny_config()
    args = (nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "m.pt")
    SinGANSegTrainer(config, progress=False, stop_after=1).fit(*args)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["training"]["critic"] = None
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(SinGANSegInputError, match="no critic of scale 0"):
        SinGANSegTrainer(config, progress=False).fit(*args, resume=True)


def test_widening_refuses_states_of_another_architecture():
    from monai_singanseg.config import NetworkConfig
    from monai_singanseg.networks import ScaleGenerator, widen_state

    narrow, wide = ScaleGenerator(2, 2, 8, NetworkConfig()), ScaleGenerator(2, 2, 16, NetworkConfig())
    with pytest.raises(ValueError, match="not a narrower network"):
        widen_state(narrow.state_dict(), wide.state_dict())  # the wrong way round
    other = ScaleGenerator(2, 2, 8, NetworkConfig(norm="none")).state_dict()  # conv biases, no norm statistics
    with pytest.raises(ValueError, match="not a narrower network"):
        widen_state(wide.state_dict(), other)
    other_kernel = ScaleGenerator(2, 2, 8, NetworkConfig(kernel_size=5)).state_dict()
    with pytest.raises(ValueError, match="not a narrower network"):
        widen_state(wide.state_dict(), other_kernel)
    with pytest.raises(ValueError, match="widen_from_previous must be true or false"):
        tiny_config(widen_from_previous="false")
