"""train-many: one model per datalist item, sharded over torchrun ranks, restartable after a kill."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL
from PIL import Image

from monai_singanseg import SinGANSeg
from monai_singanseg.checkpoint import load_model
from monai_singanseg.cli import main
from monai_singanseg.training import many
from monai_singanseg.training.many import SUMMARY_NAME, train_many

TINY = ["--max-size", "32", "--min-size", "20", "--iters", "3", "--base-channels", "8", "--quiet"]


def _datalist(tmp_path, count: int, broken: bool = False):
    """Four 96x96 crops of the real nuclei image and mask, as a Decathlon-style datalist with relative paths."""
    image, label = np.array(Image.open(NUCLEI_IMAGE)), np.array(Image.open(NUCLEI_LABEL))
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    items = []
    for i in range(count):
        y, x = 40 * i, 150 - 30 * i
        Image.fromarray(image[y:y + 96, x:x + 96]).save(tmp_path / "imagesTr" / f"case_{i}.png")
        Image.fromarray(label[y:y + 96, x:x + 96]).save(tmp_path / "labelsTr" / f"case_{i}.png")
        items.append({"image": f"imagesTr/case_{i}.png", "label": f"labelsTr/case_{i}.png"})
    if broken:  # an image given as a mask: not binary
        Image.fromarray(image[:96, :96]).save(tmp_path / "imagesTr" / "broken.png")
        items.append({"image": "imagesTr/broken.png", "label": "imagesTr/case_1.png"})
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"training": items}))
    return path


def test_single_process_reports_failures_and_skips_finished(tmp_path, caplog):
    datalist = _datalist(tmp_path, 2, broken=True)
    out = tmp_path / "models"
    with caplog.at_level(logging.INFO, logger="monai_singanseg.training.runner"):
        assert main(["train-many", str(datalist), "--out", str(out)] + TINY) == 2
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert (summary["total"], summary["done"], summary["failed"]) == (3, 2, 1)
    failed = [m for m in summary["models"] if m["status"] == "failed"]
    assert "mask is not binary" in failed[0]["error"]
    assert sorted(p.name for p in out.glob("*.pt")) == ["case_0.pt", "case_1.pt"]
    # one logging record per model as it finishes (a failure as a warning), then the counts
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "monai_singanseg.training.runner"]
    assert [(level, line.split(" (")[0]) for level, line in lines] == [
        (logging.INFO, "[rank 0/1] 1/3 case_0: done"), (logging.INFO, "[rank 0/1] 2/3 case_1: done"),
        (logging.WARNING, "[rank 0/1] 3/3 broken: failed"),
        (logging.INFO, f"3 models: 2 done, 0 resumed, 0 skipped, 1 failed -> {out / SUMMARY_NAME}")]
    main(["train-many", str(datalist), "--out", str(out)] + TINY)
    again = json.loads((out / SUMMARY_NAME).read_text())
    assert again["skipped"] == 2 and again["done"] == 0


def test_quiet_train_many_says_one_line_per_model(tmp_path):
    """docs/train_many.md: with --quiet, one line per model as it finishes and the counts, nothing else."""
    datalist = _datalist(tmp_path, 2)
    out = tmp_path / "models"
    root = Path(__file__).resolve().parents[1]  # this checkout's package
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(root), os.environ.get(
        "PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "monai_singanseg.cli", "train-many", str(datalist), "--out", str(out),
                           *TINY], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    lines = [line for line in done.stdout.splitlines() if "nvImageCodec" not in line]
    assert [line.split(" (")[0] for line in lines] == [
        "[rank 0/1] 1/2 case_0: done", "[rank 0/1] 2/2 case_1: done",
        f"2 models: 2 done, 0 resumed, 0 skipped, 0 failed -> {out / SUMMARY_NAME}"], lines


def test_two_items_with_one_model_name_are_refused(tmp_path):
    datalist = _datalist(tmp_path, 1)
    data = json.loads(datalist.read_text())
    data["training"].append(dict(data["training"][0]))
    datalist.write_text(json.dumps(data))
    with pytest.raises(Exception, match="case_0"):
        train_many(datalist, tmp_path / "models", make_config=None)


@pytest.mark.skipif(sys.platform != "linux", reason="process-group kill")
def test_torchrun_two_ranks_with_kill_and_restart(tmp_path):
    datalist = _datalist(tmp_path, 4)
    out = tmp_path / "models"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "monai_singanseg.cli", "train-many", str(datalist), "--out", str(out), "--device", "cpu"] + TINY
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("case_*.pt")):
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert list(out.glob("case_*.pt")), "no checkpoint appeared before the kill"
    assert not (out / SUMMARY_NAME).exists()  # the first run never finished
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "[rank 0/2]" in done.stdout and "[rank 1/2]" in done.stdout
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["world_size"] == 2 and summary["total"] == 4 and summary["failed"] == 0
    assert summary["done"] + summary["resumed"] + summary["skipped"] == 4
    assert summary["done"] < 4  # something from the killed run was kept (skipped or resumed)
    assert sorted(m["name"] for m in summary["models"]) == [f"case_{i}" for i in range(4)]
    assert {m["rank"] for m in summary["models"]} == {0, 1}
    for i in range(4):
        model = SinGANSeg.load(out / f"case_{i}.pt")
        assert model.trained_scales == model.num_scales


def test_items_with_equal_pyramids_train_in_groups(tmp_path):
    datalist = _datalist(tmp_path, 3)
    out = tmp_path / "models"
    assert main(["train-many", str(datalist), "--out", str(out), "--group-size", "2"] + TINY) == 0
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["group_size"] == 2 and summary["done"] == 3
    assert sorted(m["group_size"] for m in summary["models"]) == [1, 2, 2]
    for i in range(3):
        model, state = load_model(out / f"case_{i}.pt")
        assert state.complete and model.trained_scales == model.num_scales
    assert main(["train-many", str(datalist), "--out", str(out), "--group-size", "0"] + TINY) == 2


def test_a_finished_model_of_other_data_or_options_is_not_kept(tmp_path, capsys):
    datalist = _datalist(tmp_path, 2)
    out = tmp_path / "models"
    assert main(["train-many", str(datalist), "--out", str(out)] + TINY) == 0
    data = json.loads(datalist.read_text())
    data["training"][0]["label"] = data["training"][1]["label"]  # the image now points at another mask
    datalist.write_text(json.dumps(data))
    assert main(["train-many", str(datalist), "--out", str(out)] + TINY) == 2
    summary = json.loads((out / SUMMARY_NAME).read_text())
    failed = {m["name"]: m for m in summary["models"] if m["status"] == "failed"}
    assert list(failed) == ["case_0"] and "trained on other data" in failed["case_0"]["error"]
    assert main(["train-many", str(datalist), "--out", str(out), "--seed", "5"] + TINY) == 2  # other options
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert all("seed: 0 kept (asked 5)" in m["error"] for m in summary["models"] if m["name"] == "case_1")


def test_an_item_without_label_is_reported_and_the_others_train(tmp_path):
    datalist = _datalist(tmp_path, 2)
    data = json.loads(datalist.read_text())
    del data["training"][1]["label"]
    datalist.write_text(json.dumps(data))
    out = tmp_path / "models"
    assert main(["train-many", str(datalist), "--out", str(out)] + TINY) == 2
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert (summary["done"], summary["failed"]) == (1, 1)
    assert "case_1 has no 'label'" in next(m for m in summary["models"] if m["status"] == "failed")["error"]


def _datalist_without_labels(tmp_path):
    """A datalist whose one item fails at once (no label): train_many runs its whole course without training."""
    datalist = _datalist(tmp_path, 1)
    data = json.loads(datalist.read_text())
    del data["training"][0]["label"]
    datalist.write_text(json.dumps(data))
    return datalist


def test_train_many_keeps_the_callers_process_group_and_thread_count(tmp_path, monkeypatch):
    datalist = _datalist_without_labels(tmp_path)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)  # a machine where a split of the cores would show
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)  # the caller's own group
    try:
        summary = train_many(datalist, tmp_path / "models", make_config=None, device="cpu")
        assert summary["failed"] == 1 and summary["world_size"] == 1
        assert dist.is_initialized()  # still there for the caller to use and to destroy
        assert torch.get_num_threads() == 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        torch.set_num_threads(threads)


def test_train_many_destroys_only_the_process_group_it_created(tmp_path, monkeypatch):
    created = []
    init = dist.init_process_group

    def single_rank_group(backend, **kwargs):  # what torchrun's rendezvous gives, here with one rank
        created.append(backend)
        init(backend, store=dist.HashStore(), rank=0, world_size=1)

    monkeypatch.setattr(dist, "init_process_group", single_rank_group)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not dist.is_initialized()
    summary = train_many(_datalist_without_labels(tmp_path), tmp_path / "models", make_config=None, device="cpu")
    assert created and summary["failed"] == 1
    assert not dist.is_initialized()
    data = json.loads((tmp_path / "dataset.json").read_text())
    data["training"].append(dict(data["training"][0]))  # two items, one checkpoint name: refused
    (tmp_path / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(Exception, match="case_0"):
        train_many(tmp_path / "dataset.json", tmp_path / "models", make_config=None, device="cpu")
    assert len(created) == 2 and not dist.is_initialized()  # destroyed on the error too


def test_cli_gives_each_rank_its_share_of_the_cores_and_restores_the_count(tmp_path, monkeypatch):
    seen = []

    def fake_train_many(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return {"failed": 0, "total": 0}

    monkeypatch.setattr(many, "train_many", fake_train_many)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    threads = torch.get_num_threads()
    args = ["train-many", str(tmp_path / "dataset.json"), "--out", str(tmp_path / "models"), "--device", "cpu"] + TINY
    try:
        torch.set_num_threads(8)  # torch's default: every core
        assert main(args) == 0
        torch.set_num_threads(1)  # the user's own limit (OMP_NUM_THREADS=1) is never raised
        assert main(args) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert seen == [2, 1]  # 8 cores shared by 4 ranks of this machine; the user's one thread


def test_window_and_slice_options_reach_every_item(tmp_path):
    # two real MNI152 T1 crops with a white-matter mask, trained as one 2D slice each under a fixed window
    import nibabel as nib
    from conftest import T1, WM, mni_crop

    items = []
    for i, z in enumerate((80, 96)):
        box = (slice(60, 124), slice(70, 134), slice(z - 3, z + 3))
        t1, affine = mni_crop(T1, box)
        wm, _ = mni_crop(WM, box)
        nib.save(nib.Nifti1Image(t1, affine), tmp_path / f"t1_{i}.nii.gz")
        nib.save(nib.Nifti1Image((wm > 127).astype(np.uint8), affine), tmp_path / f"wm_{i}.nii.gz")
        items.append({"image": f"t1_{i}.nii.gz", "label": f"wm_{i}.nii.gz"})
    (tmp_path / "dataset.json").write_text(json.dumps({"training": items}))
    out = tmp_path / "models"
    args = ["train-many", str(tmp_path / "dataset.json"), "--out", str(out), "--window", "10", "90",
            "--slice-axis", "2", "--slice-index", "2", *TINY]
    assert main(args) == 0
    for i in range(2):
        model, _ = load_model(out / f"t1_{i}.pt")
        assert model.config.spatial_dims == 2
        assert (model.intensity.lower, model.intensity.upper) == ([10.0], [90.0])
