"""Training on the real nuclei sample: learning, seeding, resuming, and what a checkpoint holds."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import tiny_config
from ignite.engine import Events

from monai_singanseg import SinGANSeg, SinGANSegTrainer
from monai_singanseg.checkpoint import load_model


def _weights(model: SinGANSeg) -> list[torch.Tensor]:
    return [t for g in model.generators for t in g.state_dict().values()]


def test_reconstruction_error_falls_at_the_finest_scale(tmp_path, nuclei_pair):
    config = tiny_config(iters=60)
    config.network.base_channels = 16
    rec_losses: dict[int, list[float]] = {}

    def record(engine, scale):
        engine.add_event_handler(
            Events.ITERATION_COMPLETED, lambda e: rec_losses.setdefault(scale, []).append(e.state.output["rec"])
        )

    model = SinGANSegTrainer(config, progress=False, handlers=[record]).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "m.pt"
    )
    finest = rec_losses[model.num_scales - 1]
    assert len(finest) == 60
    assert sum(finest[-5:]) / 5 < 0.5 * finest[0], finest


def test_same_seed_same_model_other_seed_other_model(tmp_path, nuclei_pair):
    def train(seed, name):
        config = tiny_config()
        config.seed = seed
        return SinGANSegTrainer(config, progress=False).fit(
            nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / name
        )

    a, b, c = train(3, "a.pt"), train(3, "b.pt"), train(4, "c.pt")
    assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b)))
    assert torch.equal(a.fixed_noise, b.fixed_noise) and a.noise_amps == b.noise_amps
    assert not all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(c)))


def test_resume_equals_uninterrupted(tmp_path, nuclei_pair):
    config = tiny_config()
    args = (nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels)
    whole = SinGANSegTrainer(config, progress=False).fit(*args, tmp_path / "whole.pt")
    assert whole.num_scales >= 2
    interrupted = SinGANSegTrainer(config, progress=False, stop_after=1).fit(*args, tmp_path / "part.pt")
    assert interrupted.trained_scales == 1
    _, state = load_model(tmp_path / "part.pt")
    assert state.complete is False
    resumed = SinGANSegTrainer(config, progress=False).fit(*args, tmp_path / "part.pt", resume=True)
    assert resumed.trained_scales == whole.num_scales
    assert all(torch.equal(x, y) for x, y in zip(_weights(whole), _weights(resumed)))
    assert resumed.noise_amps == whole.noise_amps
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(whole.generate(2, generator=g1), resumed.generate(2, generator=g2))


def test_stop_after_scales_is_a_deprecated_name_of_stop_after(tmp_path, nuclei_pair):
    # both trainers name the interruption point stop_after (scales here, steps for the diffusion trainer)
    with pytest.warns(DeprecationWarning, match="stop_after_scales"):
        trainer = SinGANSegTrainer(tiny_config(), progress=False, stop_after_scales=1)
    assert trainer.stop_after == 1
    model = trainer.fit(nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "part.pt")
    assert model.trained_scales == 1


def test_resume_refuses_other_data(tmp_path, nuclei_pair):
    import pytest

    from monai_singanseg import SinGANSegInputError

    config = tiny_config()
    SinGANSegTrainer(config, progress=False, stop_after=1).fit(
        nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "part.pt"
    )
    with pytest.raises(SinGANSegInputError, match="other data"):
        SinGANSegTrainer(config, progress=False).fit(
            nuclei_pair.real.flip(-1), nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "part.pt", resume=True
        )


def test_checkpoint_is_weights_only_and_holds_no_training_image(nuclei_model, nuclei_pair):
    model, path = nuclei_model
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["format"] == "monai-singanseg" and payload["format_version"] == 2
    assert len(payload["generators"]) == model.num_scales == len(payload["noise_amps"])
    assert payload["intensity"]["upper"] == [128.0] and payload["labels"]["values"] == [0.0, 255.0]

    def tensors(obj):
        if isinstance(obj, torch.Tensor):
            yield obj
        elif isinstance(obj, dict):
            for v in obj.values():
                yield from tensors(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                yield from tensors(v)

    real_pyramid_sizes = {tuple(s) for s in model.shapes}
    for t in tensors(payload):
        # nothing image-shaped except the fixed noise, which is not the image
        if tuple(t.shape[-2:]) in real_pyramid_sizes:
            assert t.shape[-2:] == model.shapes[0]
            assert not torch.allclose(t.float().flatten()[:100], nuclei_pair.real[0].flatten()[:100], atol=0.1)
    loaded = SinGANSeg.load(path)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(loaded.generate(2, generator=g1), model.generate(2, generator=g2))


def test_samples_are_binary_labels_in_training_units(nuclei_model):
    model, _ = nuclei_model
    image, label = model.sample(4, seed=0)
    assert set(label.unique().tolist()) <= {0.0, 255.0}
    assert 0.0 <= image.min() and image.max() <= 128.0
    again, _ = model.sample(4, seed=0)
    other, _ = model.sample(4, seed=1)
    assert torch.equal(image, again) and not torch.equal(image, other)
    # start scale: the higher it is, the closer samples stay to each other (less diversity)
    spread = [model.generate(6, start_scale=k, generator=torch.Generator().manual_seed(0)).std(0).mean()
              for k in (0, model.num_scales - 1)]
    assert spread[1] < spread[0]


def test_diversity_moves_from_the_reconstruction_to_plain_sampling(nuclei_model):
    model, _ = nuclei_model
    seeded = lambda: torch.Generator().manual_seed(5)
    # 1 is plain sampling; 0 at the coarsest scale alone is the reconstruction's own noise
    assert torch.equal(model.generate(2, generator=seeded(), diversity=1.0), model.generate(2, generator=seeded()))
    torch.testing.assert_close(model.generate(1, 0, stop_scale=1, diversity=0.0), model.reconstruct(1))
    # one value per sample: the first stays on the reconstruction, the second is a plain sample
    mixed = model.generate(2, stop_scale=1, generator=seeded(), diversity=torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(mixed[:1], model.reconstruct(1))
    plain = model.generate(2, stop_scale=1, generator=seeded())
    torch.testing.assert_close(mixed[1:], plain[1:])
    # in between, samples drift from the reconstruction as diversity grows (mean over draws)
    rec = model.reconstruct()
    gap = [float(((model.generate(8, generator=seeded(), diversity=d) - rec) ** 2).mean()) for d in (0.0, 0.5, 1.0)]
    assert gap[0] < gap[1] < gap[2], gap
    for bad in (1.5, -0.1, float("nan"), torch.tensor([0.5, 0.5, 0.5])):
        with pytest.raises(ValueError, match="diversity"):
            model.generate(2, diversity=bad)


def test_training_logs_one_line_per_scale_when_output_is_not_a_terminal(tmp_path, nuclei_pair, caplog, capsys):
    # under pytest stderr is captured, as in a redirected `make demo > log` or a cluster job's output
    with caplog.at_level(logging.INFO, logger="monai_singanseg"):
        model = SinGANSegTrainer(tiny_config(iters=3), progress=True).fit(
            nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels, tmp_path / "m.pt")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("scale ")]
    assert len(lines) == model.num_scales  # one per scale, no progress-bar text
    assert lines[0].startswith(f"scale 1/{model.num_scales} ") and "3 iterations" in lines[0]
    assert "reconstruction MSE" in lines[0]
    assert "\r" not in capsys.readouterr().err  # no progress bar's refreshes


def test_a_lesion_lost_at_the_coarse_scales_only_is_a_warning(nuclei_pair, caplog):
    # a 10x10 lesion of the real 256-pixel crop: about a pixel at 25 and 32, nothing at 20
    from monai_singanseg import prepare_training_pair
    from monai_singanseg.training import check_mask_survives

    image = nuclei_pair.intensity.denormalize(nuclei_pair.real[:1])
    lesion = torch.zeros_like(image)
    lesion[0, 100:110, 100:110] = 255
    pair = prepare_training_pair(image, lesion, label_name="lesion.png")
    with caplog.at_level("WARNING", logger="monai_singanseg"):
        left = check_mask_survives(pair.real, tiny_config(), pair.labels, "lesion.png")
    assert left[0] == 0 and all(left[1:])
    assert "lesion.png" in caplog.text and "1 of 3 scales" in caplog.text and "20x20: 0" in caplog.text


def test_both_trainers_seed_from_one_stream_with_their_own_salts():
    # the values the trainers' own functions gave before they became one (seeded models stay bit-identical)
    from monai_singanseg.diffusion import step_seed
    from monai_singanseg.training import scale_seed
    from monai_singanseg.training.seeds import DIFFUSION_SALT, SINGANSEG_SALT, stream_seed

    assert scale_seed(7, 1) == stream_seed(SINGANSEG_SALT, 7, 1) == 2324963714087369655
    assert step_seed(3, 2) == stream_seed(DIFFUSION_SALT, 3, 2) == 3916508606746318843
    assert all(0 <= stream_seed(SINGANSEG_SALT, s, k) < 2**63 for s in range(3) for k in range(5))
