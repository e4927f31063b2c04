"""Coarser scales trained along with the current one (ConSinGAN's concurrent stages), on the real nuclei crop."""

from __future__ import annotations

import pytest
import torch
from conftest import nuclei_tile, second_plateau, tiny_config
from ignite.engine import Events

from monai_singanseg import SinGANSegTrainer
from monai_singanseg.checkpoint import load_model
from monai_singanseg.networks import split_state
from monai_singanseg.pyramid import resize
from monai_singanseg.training import TrainingItem


def _fit(pair, path, config, stop_after=None, resume=False, handlers=None):
    trainer = SinGANSegTrainer(config, progress=False, stop_after=stop_after, handlers=handlers)
    return trainer.fit(pair.real, pair.intensity, pair.labels, path, resume=resume)


def _state(generator) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in generator.state_dict().items()}


@pytest.mark.parametrize("concurrent", [0, 1])
def test_a_scale_trained_along_moves_at_its_share_of_the_learning_rate(tmp_path, nuclei_pair, concurrent):
    # one iteration of scale 1 after scale 0: Adam's first step moves every weight with a gradient by its learning
    # rate (m / sqrt(v) = sign of the gradient), so the largest move is the rate itself: lr_g for scale 1, a tenth
    # of it for scale 0 when it trains along, nothing when it is frozen (the reference)
    config = tiny_config(iters=1, critic_steps=1, generator_steps=1, concurrent_scales=concurrent)
    before = _state(_fit(nuclei_pair, tmp_path / "m.pt", config, stop_after=1).generators[0])
    after = _fit(nuclei_pair, tmp_path / "m.pt", config, stop_after=2, resume=True)
    weights = [name for name in before if "conv" in name and name.endswith("weight")]
    moved = max(float((after.generators[0].state_dict()[n] - before[n]).abs().max()) for n in weights)
    lr = config.optim.lr_g
    if concurrent:
        assert moved == pytest.approx(lr * config.optim.concurrent_lr_scale, rel=1e-3)
    else:
        assert moved == 0.0
    # batch-norm statistics of the coarser scale stay those it ended with (it runs as in sampling)
    for name in before:
        if "running" in name:
            torch.testing.assert_close(after.generators[0].state_dict()[name], before[name], rtol=0, atol=0)
    _, state = load_model(tmp_path / "m.pt")
    assert [r["trained_along"] for r in state.log] == [[], [0] if concurrent else []]


def test_the_paths_through_the_trained_scales_are_the_models_own(tmp_path, nuclei_pair):
    # at the start of scale 2 the reconstruction path rebuilt through scales 0-1 (trained along) is the model's
    # reconstruction, and the random path recomputed with gradients is the sample the critic saw
    config = tiny_config(iters=2, concurrent_scales=2)
    model = _fit(nuclei_pair, tmp_path / "m.pt", config, stop_after=2)
    assert model.num_scales >= 3
    expected = resize(model.eval().reconstruct(2), model.shapes[2])
    seen = {}

    def check(engine, scale):
        step = engine.state.scale_step

        def compare(_):
            with torch.no_grad():
                previous = step.random_previous()
                random, seen["rec"] = step.along.paths()
                seen["random"] = (previous, random)

        engine.add_event_handler(Events.STARTED, compare)

    _fit(nuclei_pair, tmp_path / "m.pt", config, stop_after=3, resume=True, handlers=[check])
    torch.testing.assert_close(seen["rec"], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(*seen["random"], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(seen["random"][0], expected, atol=1e-3)  # a random sample, not the reconstruction


def test_resuming_with_scales_trained_along_equals_an_uninterrupted_run(tmp_path, nuclei_pair):
    config = tiny_config(iters=3, concurrent_scales=1)
    whole = _fit(nuclei_pair, tmp_path / "whole.pt", config)
    _fit(nuclei_pair, tmp_path / "split.pt", config, stop_after=2)
    split = _fit(nuclei_pair, tmp_path / "split.pt", config, resume=True)
    for a, b in zip(whole.generators, split.generators):
        for name, value in a.state_dict().items():
            assert torch.equal(value, b.state_dict()[name]), name
    assert whole.noise_amps == split.noise_amps


def test_a_member_that_ends_early_keeps_the_coarser_weights_of_its_end(tmp_path, nuclei_pair):
    # window-1 plateaus (tolerance 5 %: these two members end apart): each member of a group ends at its own iteration; the coarser scale it trained along must
    # be stored as it was then, not as the group left it (with one scale trained along, scale s - 1 last changes
    # while scale s trains)
    config = tiny_config(iters=40, plateau_window=1, plateau_tolerance=0.05, concurrent_scales=1)
    traces: dict[int, list[tuple[torch.Tensor, list[dict]]]] = {}

    def record(engine, scale):
        step = engine.state.scale_step
        traces[scale] = []

        def keep(e):
            coarser = [split_state(_state(g), step.groups) for g in step.trained]
            traces[scale].append((e.state.output["rec_per_model"].clone(), coarser))

        engine.add_event_handler(Events.ITERATION_COMPLETED, keep)

    pairs = [nuclei_pair, nuclei_tile("a")]
    SinGANSegTrainer(config, progress=False, handlers=[record]).fit_group(
        [TrainingItem(p.real, p.intensity, p.labels, tmp_path / f"g{k}.pt") for k, p in enumerate(pairs)])
    models = [load_model(tmp_path / f"g{k}.pt")[0] for k in range(2)]
    checked = 0
    for scale in range(1, max(traces) + 1):
        losses = torch.stack([rec for rec, _ in traces[scale]])
        ends = [second_plateau(losses[:, k], 0.05) for k in range(2)]
        for k, model in enumerate(models):
            kept = traces[scale][ends[k] - 1][1][0][k]
            for name, value in model.generators[scale - 1].state_dict().items():
                torch.testing.assert_close(value, kept[name], rtol=0, atol=0, msg=name)
            checked += ends[k] < len(losses)  # this member ended before the group did
    assert checked >= 1, "no member ended before its group: the test checks nothing new"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("concurrent_scales", -1, ">= 0"), ("concurrent_scales", 1.5, "integer"),
    ("concurrent_lr_scale", 0.0, r"\(0, 1\]"), ("concurrent_lr_scale", 1.5, r"\(0, 1\]"),
    ("concurrent_lr_scale", "0.1", r"\(0, 1\]"), ("concurrent_lr_scale", True, r"\(0, 1\]")])
def test_concurrent_options_are_validated(field, value, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**{field: value})
