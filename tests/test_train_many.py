"""train-many: one model per datalist item, sharded over torchrun ranks, restartable after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL
from PIL import Image

from monai_singanseg import SinGANSeg
from monai_singanseg.checkpoint import load_model
from monai_singanseg.cli import main
from monai_singanseg.training.many import SUMMARY_NAME

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


def test_single_process_reports_failures_and_skips_finished(tmp_path, capsys):
    datalist = _datalist(tmp_path, 2, broken=True)
    out = tmp_path / "models"
    assert main(["train-many", str(datalist), "--out", str(out)] + TINY) == 2
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert (summary["total"], summary["done"], summary["failed"]) == (3, 2, 1)
    failed = [m for m in summary["models"] if m["status"] == "failed"]
    assert "mask is not binary" in failed[0]["error"]
    assert sorted(p.name for p in out.glob("*.pt")) == ["case_0.pt", "case_1.pt"]
    assert "[rank 0/1]" in capsys.readouterr().out
    main(["train-many", str(datalist), "--out", str(out)] + TINY)
    again = json.loads((out / SUMMARY_NAME).read_text())
    assert again["skipped"] == 2 and again["done"] == 0


def test_two_items_with_one_model_name_are_refused(tmp_path):
    datalist = _datalist(tmp_path, 1)
    data = json.loads(datalist.read_text())
    data["training"].append(dict(data["training"][0]))
    datalist.write_text(json.dumps(data))
    with pytest.raises(Exception, match="case_0"):
        from monai_singanseg.training.many import train_many

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
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
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
    assert "case_1 has no 'label'" in [m for m in summary["models"] if m["status"] == "failed"][0]["error"]
