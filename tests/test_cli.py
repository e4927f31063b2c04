"""The ``singanseg`` command end to end on the real nuclei sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL
from PIL import Image

from monai_singanseg.cli import main

TRAIN = ["train", "--image", str(NUCLEI_IMAGE), "--label", str(NUCLEI_LABEL), "--max-size", "32",
         "--min-size", "20", "--iters", "3", "--base-channels", "8", "--quiet"]


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "nuclei.pt"
    assert main(TRAIN + ["--out", str(path)]) == 0
    return path


def test_sample_writes_pairs_and_preview(cli_model, tmp_path):
    out = tmp_path / "samples"
    assert main(["sample", str(cli_model), "--num", "3", "--out", str(out), "--seed", "1"]) == 0
    for i in range(3):
        image = np.array(Image.open(out / f"sample_{i:04d}_image.png"))
        label = np.array(Image.open(out / f"sample_{i:04d}_label.png"))
        assert image.shape == label.shape == (32, 32) and image.dtype == np.uint8
        assert set(np.unique(label)) <= {0, 255}
    assert Image.open(out / "preview.png").size[0] > 200


def test_sample_nifti_other_size_and_start_scale(cli_model, tmp_path):
    import nibabel as nib

    out = tmp_path / "nii"
    args = ["sample", str(cli_model), "--num", "2", "--out", str(out), "--format", "nii.gz", "--start-scale", "1",
            "--scale-ratio", "1.5", "1"]
    assert main(args) == 0
    image = nib.load(out / "sample_0001_image.nii.gz").get_fdata()
    assert image.shape == (48, 32)


def test_sampling_is_seeded(cli_model, tmp_path):
    for name in ("a", "b"):
        assert main(["sample", str(cli_model), "--num", "1", "--out", str(tmp_path / name), "--seed", "3"]) == 0
    a, b = (np.array(Image.open(tmp_path / n / "sample_0000_image.png")) for n in ("a", "b"))
    assert np.array_equal(a, b)


def test_existing_outputs_are_not_overwritten(cli_model, tmp_path, capsys):
    out = tmp_path / "keep"
    out.mkdir()
    (out / "sample_0000_image.png").write_bytes(b"user data")
    assert main(["sample", str(cli_model), "--num", "2", "--out", str(out)]) == 2
    assert "sample_0000_image.png: already exists" in capsys.readouterr().err
    assert (out / "sample_0000_image.png").read_bytes() == b"user data"
    assert not (out / "sample_0001_image.png").exists()
    before = cli_model.read_bytes()
    assert main(TRAIN + ["--out", str(cli_model)]) == 2
    assert "already exists; pass --resume" in capsys.readouterr().err
    assert cli_model.read_bytes() == before


def test_resume_of_finished_model_is_a_no_op(cli_model, capsys):
    before = cli_model.read_bytes()
    assert main(TRAIN + ["--out", str(cli_model), "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert cli_model.read_bytes() == before


def test_bad_inputs_exit_2_with_one_message(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", "--image", str(NUCLEI_IMAGE), "--label", str(NUCLEI_IMAGE), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("singanseg: error:") and "nuclei_image.png: mask is not binary" in err
    assert not out.exists()
    notmodel = tmp_path / "notes.pt"
    notmodel.write_text("hello")
    assert main(["sample", str(notmodel), "--num", "1", "--out", str(tmp_path / "s")]) == 2
    assert "notes.pt: not a monai-singanseg checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_sampling_unfinished_model_is_refused(tmp_path, capsys):
    from conftest import tiny_config

    from monai_singanseg import SinGANSegTrainer, load_training_pair

    pair = load_training_pair([NUCLEI_IMAGE], NUCLEI_LABEL)
    path = tmp_path / "part.pt"
    SinGANSegTrainer(tiny_config(), progress=False, stop_after=1).fit(pair.real, pair.intensity, pair.labels,
                                                                             path)
    assert main(["sample", str(path), "--num", "1", "--out", str(tmp_path / "s")]) == 2
    assert "not finished" in capsys.readouterr().err
    assert torch.load(path, weights_only=True)["training"]["complete"] is False


def test_schedule_option_sets_the_recipe(cli_model, tmp_path):
    from monai_singanseg.checkpoint import load_model

    fast, _ = load_model(cli_model)  # the default schedule
    assert fast.config.optim.schedule == "fast" and fast.config.optim.critic_steps == 1
    assert fast.config.optim.iters_per_scale == 3  # --iters overrides the schedule's count
    path = tmp_path / "faithful.pt"
    assert main(TRAIN + ["--out", str(path), "--schedule", "faithful"]) == 0
    faithful, state = load_model(path)
    assert faithful.config.optim.schedule == "faithful" and faithful.config.optim.critic_steps == 3
    assert faithful.config.optim.gp_every == 1 and faithful.config.optim.plateau_window == 0
    assert [r["iterations"] for r in state.log] == [3] * faithful.num_scales
    sharp_path = tmp_path / "sharp.pt"
    assert main(TRAIN + ["--out", str(sharp_path), "--rec-weight", "100"]) == 0
    sharp, _ = load_model(sharp_path)
    assert sharp.config.optim.rec_weight == 100.0 and sharp.config.optim.coarse["rec_weight"] == 10.0


@pytest.mark.parametrize("extra, message", [
    (["--percentiles", "99", "1"], "percentiles (99.0, 1.0): need 0 <= low < high <= 100"),
    (["--percentiles", "-5", "150"], "need 0 <= low < high <= 100"),
    (["--device", "tpu9"], "--device tpu9: not a device name"),
    (["--device", "cuda:7"], "--device cuda:7:"),
    (["--rec-weight", "-1"], "rec_weight must be a number >= 0"),
])
def test_bad_training_options_stop_with_one_line_before_training(tmp_path, capsys, extra, message):
    out = tmp_path / "m.pt"
    assert main(TRAIN + ["--out", str(out)] + extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not out.exists()


def test_bad_output_places_are_refused_before_training(tmp_path, capsys):
    folder = tmp_path / "a_folder"
    folder.mkdir()
    assert main(TRAIN + ["--out", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
    blocked = tmp_path / "file_not_folder"
    blocked.write_text("user data")
    assert main(TRAIN + ["--out", str(blocked / "m.pt")]) == 2
    assert "cannot write there" in capsys.readouterr().err and blocked.read_text() == "user data"
    assert main(["train-many", str(tmp_path / "none.json"), "--out", str(blocked)]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_bad_sampling_options_are_refused(cli_model, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sample", str(cli_model), "--num", "2", "--out", str(tmp_path / "s"), "--batch-size", "0"])
    assert "must be >= 1" in capsys.readouterr().err
    assert main(["sample", str(cli_model), "--num", "2", "--out", str(tmp_path / "s"), "--scale-ratio", "nan"]) == 2
    assert "scale ratio" in capsys.readouterr().err
    assert main(["sample", str(cli_model), "--num", "2", "--out", str(tmp_path / "s"), "--diversity", "1.5"]) == 2
    assert "diversity must lie in [0, 1]" in capsys.readouterr().err
    assert main(["sample", str(cli_model), "--num", "2", "--out", str(tmp_path / "d"), "--diversity", "0.5"]) == 0
    with pytest.raises(SystemExit):
        main(TRAIN + ["--out", str(tmp_path / "m.pt"), "--slice-index", "middle"])
    assert "a slice number or 'largest'" in capsys.readouterr().err


def test_ctrl_c_gives_one_line_and_a_resumable_checkpoint(tmp_path, capsys, monkeypatch):
    from monai_singanseg.checkpoint import load_model
    from monai_singanseg.training import trainer

    original = trainer.SinGANSegTrainer._train_scale

    def interrupt_at_second_scale(self, members, scale, board):
        if scale == 1:
            raise KeyboardInterrupt
        return original(self, members, scale, board)

    monkeypatch.setattr(trainer.SinGANSegTrainer, "_train_scale", interrupt_at_second_scale)
    out = tmp_path / "m.pt"
    assert main(TRAIN + ["--out", str(out)]) == 130
    assert "interrupted (finished scales are saved: continue with --resume)" in capsys.readouterr().err
    assert load_model(out)[1].complete is False
    monkeypatch.setattr(trainer.SinGANSegTrainer, "_train_scale", original)
    assert main(TRAIN + ["--out", str(out), "--resume"]) == 0 and load_model(out)[1].complete


def test_resume_checks_the_data_and_says_which_options_it_keeps(cli_model, tmp_path, capsys):
    import shutil

    copy = tmp_path / "m.pt"
    shutil.copy(cli_model, copy)
    flipped = tmp_path / "flipped.png"
    Image.fromarray(np.array(Image.open(NUCLEI_IMAGE))[:, ::-1]).save(flipped)
    other_image = ["train", "--image", str(flipped)] + TRAIN[3:]
    assert main(other_image + ["--out", str(copy), "--resume"]) == 2  # finished, but on another image
    assert "was trained on other data" in capsys.readouterr().err
    assert main(TRAIN + ["--out", str(copy), "--resume", "--max-size", "40"]) == 0
    captured = capsys.readouterr()
    assert "pyramid.max_size: 32 kept (asked 40)" in captured.err and "already complete" in captured.out


@pytest.mark.parametrize("rows, message", [(2, "is too thin"), (1, "a 1D image of shape (256,)")])
def test_an_image_thinner_than_the_critic_is_refused_with_its_name(tmp_path, capsys, rows, message):
    image, label = np.array(Image.open(NUCLEI_IMAGE))[:rows], np.array(Image.open(NUCLEI_LABEL))[:rows]
    label[:, 10:20] = 255  # a real strip of the nuclei crop, with some foreground for sure
    Image.fromarray(image).save(tmp_path / "strip.png")
    Image.fromarray(label).save(tmp_path / "strip_label.png")
    args = ["train", "--image", str(tmp_path / "strip.png"), "--label", str(tmp_path / "strip_label.png"),
            "--out", str(tmp_path / "m.pt"), "--iters", "1", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "strip.png" in err and message in err and "Traceback" not in err


def test_sample_output_folder_rules(cli_model, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("user data")
    assert main(["sample", str(cli_model), "--num", "1", "--out", str(a_file)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err and a_file.read_text() == "user data"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "preview.png").write_bytes(b"my own picture")
    assert main(["sample", str(cli_model), "--num", "1", "--out", str(mine)]) == 2
    assert (mine / "preview.png").read_bytes() == b"my own picture"
    out = tmp_path / "s"
    assert main(["sample", str(cli_model), "--num", "3", "--out", str(out), "--format", "nii.gz"]) == 0
    assert main(["sample", str(cli_model), "--num", "2", "--out", str(out)]) == 2  # other format: not mixed in
    assert "already exists" in capsys.readouterr().err
    assert main(["sample", str(cli_model), "--num", "2", "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["preview.png", "sample_0000_image.png", "sample_0000_label.png",
                                                     "sample_0001_image.png", "sample_0001_label.png"]


def test_an_interrupted_pair_leaves_neither_file(tmp_path):
    from monai_singanseg.files import atomic_write_together

    def fail(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_together([(tmp_path / "a_image.png", lambda t: Path(t).write_bytes(b"x")),
                               (tmp_path / "a_label.png", fail)])
    assert list(tmp_path.iterdir()) == []  # no image without its label, and no temporary file


def test_a_pair_interrupted_between_its_renames_leaves_neither_file(tmp_path, monkeypatch):
    import os

    from monai_singanseg import files

    calls = []
    original = os.replace

    def replace_then_stop(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # SIGTERM arriving after the image, before the label
        original(src, dst)

    monkeypatch.setattr(files.os, "replace", replace_then_stop)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write_together([(tmp_path / "b_image.png", lambda t: Path(t).write_bytes(b"x")),
                                     (tmp_path / "b_label.png", lambda t: Path(t).write_bytes(b"y"))])
    assert list(tmp_path.iterdir()) == []


def test_low_memory_changes_memory_use_only(cli_model, tmp_path):
    """--low-memory retunes the allocator of its own process (so it runs in a fresh one here): same weights."""
    import os
    import subprocess
    import sys

    path = tmp_path / "low.pt"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run([sys.executable, "-m", "monai_singanseg.cli", *TRAIN, "--low-memory", "--out", str(path)],
                          env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "mallopt" not in done.stderr  # glibc took the setting: no warning
    ours, theirs = (torch.load(p, weights_only=True)["generators"] for p in (path, cli_model))
    for a, b in zip(ours, theirs, strict=True):
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_help_imports_neither_torch_nor_monai():
    """``singanseg --help`` took about 20 s on a busy machine, importing MONAI and torch to print text."""
    import os
    import subprocess
    import sys

    code = ("import sys\n"
            "from monai_singanseg.cli import build_parser, main\n"
            "build_parser()\n"
            "for argv in (['--help'], ['train', '--help'], ['train-many', '--help'], ['sample', '--help']):\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'monai') if m in sys.modules))\n")
    root = Path(__file__).resolve().parents[1]  # this checkout's package, not an installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "usage: singanseg train " in done.stdout  # the help was printed
    assert done.stdout.strip().splitlines()[-1] == "HEAVY []", done.stdout[-300:]
    # the lazy package still hands out every public name
    import monai_singanseg
    import monai_singanseg.diffusion

    for package in (monai_singanseg, monai_singanseg.diffusion):
        assert all(getattr(package, name) is not None for name in package.__all__)


def test_threads_option_sets_torchs_threads_while_the_command_runs(cli_model, tmp_path, monkeypatch):
    """``--threads 1`` reaches torch before any work (on a busy 2-core machine one thread trained 17x faster than
    torch's default), and the caller's count comes back afterwards (main may run in-process)."""
    from monai_singanseg import generation

    before = torch.get_num_threads()
    seen = []
    original = generation.write_samples

    def record_threads(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(generation, "write_samples", record_threads)
    other = 1 if before != 1 else 2
    out = tmp_path / "s"
    assert main(["sample", str(cli_model), "--num", "1", "--out", str(out), "--threads", str(other)]) == 0
    assert seen == [other]
    assert torch.get_num_threads() == before
    assert main(["sample", str(cli_model), "--num", "1", "--out", str(out), "--overwrite"]) == 0
    assert seen[-1] == before  # no --threads: torch's own choice is left alone


def test_a_busy_machine_gets_the_free_cores_unless_the_user_chose(cli_model, tmp_path, monkeypatch, caplog):
    """Without ``--threads`` or ``OMP_NUM_THREADS``, a command on a machine whose cores are busy uses the free ones
    (torch's one thread per core crawls there) and says so in one line; a user's choice always stands."""
    from monai_singanseg import generation, threads

    assert threads.busy_machine_threads(cores=2, load=0.2) is None  # idle: torch's own choice
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.busy_machine_threads(cores=2, load=1.2) == 1
    assert threads.busy_machine_threads(cores=8, load=2.6) == 5
    assert threads.busy_machine_threads(cores=2, load=7.0) == 1  # at least one
    # one reading of the load: the message quotes the number the choice was made from
    assert threads.busy_machine(cores=8, load=2.6) == threads.BusyMachine(threads=5, load=2.6, cores=8)
    seen = []
    original = generation.write_samples
    monkeypatch.setattr(generation, "write_samples",
                        lambda *a, **k: (seen.append(torch.get_num_threads()), original(*a, **k))[1])
    monkeypatch.setattr(threads, "busy_machine", lambda: threads.BusyMachine(threads=1, load=1.2, cores=2))
    before = torch.get_num_threads()
    with caplog.at_level("WARNING"):
        assert main(["sample", str(cli_model), "--num", "1", "--out", str(tmp_path / "a")]) == 0
    assert seen == [1] and torch.get_num_threads() == before
    assert "the machine is busy (load 1.2 on 2 cores)" in caplog.text and "--threads N" in caplog.text
    assert main(["sample", str(cli_model), "--num", "1", "--out", str(tmp_path / "b"), "--threads", "2"]) == 0
    assert seen[-1] == 2
    monkeypatch.undo()  # the real function, and OMP_NUM_THREADS set again (conftest): the user's choice stands
    assert threads.busy_machine_threads(cores=2, load=1.5) is None


def test_every_computing_command_takes_threads(capsys):
    from monai_singanseg.cli import build_parser

    parser = build_parser()
    for command in ("train", "train-many", "sample", "report", "harmonize", "edit", "train-diffusion"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        assert "--threads N" in capsys.readouterr().out, command
    with pytest.raises(SystemExit):
        main(["sample", "m.pt", "--num", "1", "--out", "o", "--threads", "0"])
    assert "--threads: must be >= 1, got 0" in capsys.readouterr().err


def test_ctrl_c_while_sampling_keeps_the_written_pairs_with_their_preview(cli_model, tmp_path, capsys, monkeypatch):
    """``sample --num 400`` stopped with Ctrl-C left files and no preview, and no word of how many were written."""
    from monai_singanseg import generation

    original = generation.atomic_write_together
    calls = []

    def stop_at_the_fourth_pair(pairs):
        calls.append(pairs)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(pairs)

    monkeypatch.setattr(generation, "atomic_write_together", stop_at_the_fourth_pair)
    out = tmp_path / "samples"
    assert main(["sample", str(cli_model), "--num", "10", "--batch-size", "2", "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    line = (f"singanseg: interrupted: wrote 3 of 10 pairs and {out / 'preview.png'} to {out}; a rerun into it "
            "needs --overwrite (it replaces them)")
    assert err == [line]
    assert sorted(p.name for p in out.iterdir()) == ["preview.png"] + [
        f"sample_{i:04d}_{kind}.png" for i in range(3) for kind in ("image", "label")]
    assert Image.open(out / "preview.png").size[0] > 200

    # interrupted before any pair: no preview, and the line says none was written
    monkeypatch.setattr(generation, "atomic_write_together", lambda pairs: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["sample", str(cli_model), "--num", "5", "--out", str(tmp_path / "none")]) == 130
    assert "wrote 0 of 5 pairs to" in capsys.readouterr().err
    assert not (tmp_path / "none" / "preview.png").exists()
