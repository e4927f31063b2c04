"""The multi-model runner both generators share: claims, skips, groups, failures and the summary, with a stand-in
kind of model that trains nothing (the real kinds are tested in test_train_many.py and test_diffusion_surface.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import NUCLEI_IMAGE, NUCLEI_LABEL, tiny_diffusion_config

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.files import claim_output
from monai_singanseg.training.runner import (
    Job,
    Ranks,
    check_summary,
    rank_device,
    read_datalist,
    run_jobs,
)

ONE_PROCESS = Ranks(rank=0, world=1, local_rank=0, local_world=1)


class Notes:
    """A kind of model that writes a text file; ``finished`` are skipped, a group holding ``bad`` fails."""

    def __init__(self, finished: Sequence[str] = (), bad: str = "") -> None:
        self.finished, self.bad = set(finished), bad
        self.groups: list[list[str]] = []

    def prepare(self, job: Job) -> bool:
        job.key = "all"  # every model may train with every other
        return job.name not in self.finished

    def train(self, jobs: Sequence[Job]) -> list[str]:
        self.groups.append([job.name for job in jobs])
        if any(job.name == self.bad for job in jobs):
            raise RuntimeError("no good")
        for job in jobs:
            job.path.write_text(job.name)
        return ["done"] * len(jobs)


def _jobs(folder: Path, names: str) -> list[Job]:
    return [Job(name, folder / f"{name}.txt", info={"letter": name}) for name in names]


def test_a_failing_group_is_retried_one_by_one_and_only_its_faulty_model_fails(tmp_path, caplog):
    notes = Notes(finished=["e"], bad="b")
    with caplog.at_level(logging.INFO, logger="monai_singanseg.training.runner"):
        summary = run_jobs(_jobs(tmp_path, "abcde"), notes, ONE_PROCESS, group_size=3,
                           summary_file=tmp_path / "summary.json", extra={"what": "notes"})
    assert notes.groups == [["a", "b", "c"], ["a"], ["b"], ["c"], ["d"]]  # d: the group left at the end
    assert (summary["what"], summary["total"], summary["done"], summary["skipped"], summary["failed"]) == (
        "notes", 5, 3, 1, 1)
    failed = summary["models"][1]
    assert (failed["name"], failed["status"], failed["error"], failed["letter"]) == ("b", "failed",
                                                                                     "RuntimeError: no good", "b")
    assert "traceback" in failed  # not a user's input error: where it came from is kept
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert not list(tmp_path.glob("*.lock"))  # every claim is given back
    # one line per model as it ends: the group's members alone, e as soon as it is found finished, d at the end
    lines = [r.getMessage().split(" (")[0] for r in caplog.records]
    assert lines == ["[rank 0/1] 1/5 a: done", "[rank 0/1] 2/5 b: failed", "[rank 0/1] 3/5 c: done",
                     "[rank 0/1] 4/5 e: skipped", "[rank 0/1] 5/5 d: done",
                     f"5 models: 3 done, 0 resumed, 1 skipped, 1 failed -> {tmp_path / 'summary.json'}"]
    assert caplog.records[1].levelno == logging.WARNING and caplog.records[1].getMessage().endswith(
        " - RuntimeError: no good")
    with pytest.raises(SinGANSegInputError, match=r"1 of 5 models failed \(first: b: RuntimeError: no good\); see "):
        check_summary(summary, tmp_path)


def test_an_output_another_run_holds_is_reported_not_trained(tmp_path):
    notes = Notes()
    with claim_output(tmp_path / "a.txt"):
        summary = run_jobs(_jobs(tmp_path, "ab"), notes, ONE_PROCESS)
    assert notes.groups == [["b"]] and not (tmp_path / "a.txt").exists()
    assert "a.txt: another run is writing it" in summary["models"][0]["error"]
    assert "traceback" not in summary["models"][0]  # a user's input error says all in its line
    with pytest.raises(SinGANSegInputError, match=r"\(first: a: SinGANSegInputError: .*another run.*\)\.$"):
        check_summary(summary)  # no summary file to point to


def test_a_group_size_below_one_is_refused(tmp_path):
    with pytest.raises(SinGANSegInputError, match="group size must be >= 1, got 0"):
        run_jobs(_jobs(tmp_path, "a"), Notes(), ONE_PROCESS, group_size=0)


def test_datalist_items_carry_their_images_label_and_model_name(tmp_path):
    items = [{"image": [str(NUCLEI_IMAGE), str(NUCLEI_IMAGE)], "label": str(NUCLEI_LABEL)}, {"image": "a/b.nii.gz"}]
    (tmp_path / "dataset.json").write_text(json.dumps({"training": items}))
    first, second = read_datalist(tmp_path / "dataset.json")
    assert first.images == [str(NUCLEI_IMAGE)] * 2 and first.label == str(NUCLEI_LABEL)
    assert first.name == "nuclei_image"
    assert second.images == [str(tmp_path / "a" / "b.nii.gz")] and second.label is None and second.name == "b"
    with pytest.raises(SinGANSegInputError, match="section 'validation'"):
        read_datalist(tmp_path / "dataset.json", "validation")


def test_each_rank_of_a_machine_takes_its_own_gpu():
    assert rank_device("cuda", 3) == "cuda:3"
    assert rank_device("cuda:1", 3) == "cuda:1" and rank_device("cpu", 3) == "cpu"


def test_a_failing_diffusion_model_is_reported_like_a_failing_singanseg_one(nuclei_pair, tmp_path, monkeypatch):
    from monai_singanseg.diffusion import many

    class NoMemory:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def fit(self, pairs, checkpoint, resume=False):
            raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(many, "DiffusionTrainer", NoMemory)
    out = tmp_path / "diffusion.pt"
    summary = many.train_diffusion_models(["nuclei"], [nuclei_pair], out, lambda pair: tiny_diffusion_config())
    assert (summary["total"], summary["failed"], summary["clusters"]) == (1, 1, {"num_clusters": 1})
    record = summary["models"][0]
    assert (record["name"], record["checkpoint"], record["pairs"]) == ("diffusion", str(out), 1)
    assert not list(tmp_path.iterdir())  # no checkpoint, no lock, no summary file
    with pytest.raises(SinGANSegInputError, match=r"\(first: diffusion: RuntimeError: CUDA out of memory\)\.$"):
        check_summary(summary)
