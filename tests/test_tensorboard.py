"""Optional TensorBoard logging of training on the real nuclei sample."""

from __future__ import annotations

import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL, tiny_config

import monai_singanseg.training.tensorboard as tb
from monai_singanseg import SinGANSegInputError, SinGANSegTrainer
from monai_singanseg.cli import main


def test_missing_tensorboard_is_a_clear_error_before_training(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(tb, "has_tensorboard", False)
    with pytest.raises(SinGANSegInputError, match="pip install tensorboard"):
        SinGANSegTrainer(tiny_config(), progress=False, log_dir=tmp_path / "logs")
    out = tmp_path / "model.pt"
    args = ["train", "--image", str(NUCLEI_IMAGE), "--label", str(NUCLEI_LABEL), "--out", str(out),
            "--tensorboard", str(tmp_path / "logs"), "--quiet"]
    assert main(args) == 2
    assert "pip install tensorboard" in capsys.readouterr().err and not out.exists()


def test_training_logs_losses_and_a_sample_per_scale_without_changing_the_model(nuclei_pair, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit = (nuclei_pair.real, nuclei_pair.intensity, nuclei_pair.labels)
    logged = SinGANSegTrainer(tiny_config(iters=3), progress=False, log_dir=tmp_path / "logs").fit(
        *fit, tmp_path / "logged.pt")
    plain = SinGANSegTrainer(tiny_config(iters=3), progress=False).fit(*fit, tmp_path / "plain.pt")
    events = EventAccumulator(str(tmp_path / "logs"), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    for scale in range(logged.num_scales):
        for loss in ("critic", "gen", "rec", "gp"):
            assert [e.step for e in events.Scalars(f"scale_{scale:02d}/{loss}")] == [1, 2, 3]
        image = events.Images(f"samples/scale_{scale:02d}")[0]
        # real | sample | real mask | sample mask, each at the scale's size
        assert (image.height, image.width) == (logged.shapes[scale][1], 4 * logged.shapes[scale][0])
    assert [e.step for e in events.Scalars("summary/rec")] == list(range(logged.num_scales))
    assert "summary/noise_amp" in tags["scalars"]
    # logging draws its own noise: the trained model is the same as without logging
    for a, b in zip(logged.generators, plain.generators):
        for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
            assert torch.equal(pa, pb)


def test_diffusion_training_logs_its_loss_at_the_global_step_across_a_resume(nuclei_pair, tmp_path):
    pytest.importorskip("tensorboard")
    from conftest import tiny_diffusion_config
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from monai_singanseg.diffusion import DiffusionTrainer

    real = nuclei_pair.real[:, :64, :64].clone()
    logs, path = tmp_path / "logs", tmp_path / "d.pt"
    DiffusionTrainer(tiny_diffusion_config(), progress=False, stop_after=4, log_dir=logs).fit([real], path)
    logged = DiffusionTrainer(tiny_diffusion_config(), progress=False, log_dir=logs).fit([real], path, resume=True)
    plain = DiffusionTrainer(tiny_diffusion_config(), progress=False).fit([real], tmp_path / "plain.pt")
    events = EventAccumulator(str(logs), size_guidance={"scalars": 0}).Reload()
    assert sorted(e.step for e in events.Scalars("diffusion/loss")) == list(range(1, 11))  # steps done, 1 to 10
    # logging draws nothing: the weights are those of a run without it
    for name, value in plain.unet.state_dict().items():
        assert torch.equal(value, logged.unet.state_dict()[name]), name
    with pytest.raises(SinGANSegInputError, match="pip install tensorboard"), pytest.MonkeyPatch.context() as patch:
        patch.setattr(tb, "has_tensorboard", False)
        DiffusionTrainer(tiny_diffusion_config(), progress=False, log_dir=logs)
