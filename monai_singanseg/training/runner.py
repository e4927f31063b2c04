"""One multi-model runner for both generators: many models, sharded over ``torchrun`` ranks, each claimed, skipped
when finished, resumed when half-trained, and a failure of one never stopping the others.

What differs between the kinds (how one model, or one group of models, is prepared and trained) is a
:class:`ModelKind` the caller passes in: SinGAN-Seg trains one model per datalist item, grouped by pyramid shape
(:func:`~monai_singanseg.training.many.train_many`); the diffusion generator one model per cluster of pairs
(:func:`~monai_singanseg.diffusion.many.train_diffusion_models`). Everything else lives here, once:

- reading a Decathlon-style datalist into :class:`DatalistItem` (image paths, label, model name);
- the ranks of this process (:func:`distributed_ranks`) and the device of each (:func:`rank_device`);
- rank ``r`` takes models ``r, r + world_size, ...``; each one's output is claimed with a lock file
  (:func:`~monai_singanseg.files.claim_output`) until the rank is done, so a second run on the same outputs skips
  nothing it should not and trains nothing twice;
- models with equal group keys are trained together, ``group_size`` at a time; a failing group is retried one model
  at a time, so only the faulty model is reported;
- one ``logging`` line per model as it ends (a failure at WARNING, with its reason), the counts at the end, and a
  summary (:func:`check_summary` turns failures into one error for callers that must not report success).

The progress lines are records of this module's logger, ``monai_singanseg.training.runner``; the command line shows
them on stderr, one per model as it finishes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
import torch.distributed as dist
from monai.data import load_decathlon_datalist

from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.files import atomic_write, claim_output
from monai_singanseg.io import model_name

__all__ = [
    "STATUSES",
    "SUMMARY_NAME",
    "DatalistItem",
    "Job",
    "ModelKind",
    "OneModelPerJob",
    "Ranks",
    "check_summary",
    "check_unique_names",
    "cpu_threads_per_rank",
    "distributed_ranks",
    "rank_device",
    "read_datalist",
    "run_jobs",
]

logger = logging.getLogger(__name__)

SUMMARY_NAME = "train_many_summary.json"
STATUSES = ("done", "resumed", "skipped", "failed")
"""What became of a model: trained from scratch, continued from a partial output, left as it was (finished), or
not trained (its reason in the record's ``error``)."""


class Ranks(NamedTuple):
    """Where this process stands among the ``torchrun`` processes of a run."""

    rank: int
    world: int
    local_rank: int
    local_world: int


@dataclass(frozen=True)
class DatalistItem:
    """One item of a Decathlon-style datalist.

    Attributes:
        images: the image file(s), resolved against the datalist's folder (several: co-registered contrasts).
        label: the label file, or ``None`` when the item has none (each caller decides whether that is an error).
        name: the model name of the item: its first image's file name without extensions.
    """

    images: list[str]
    label: str | None
    name: str


@dataclass
class Job:
    """One model of a run: what the runner tracks, and what its :class:`ModelKind` prepares and trains.

    Attributes:
        name: the model's name in progress lines and the summary.
        path: its output file, claimed for the run while this rank holds it.
        source: what the kind prepares the model from (a :class:`DatalistItem`, a cluster's pairs, ...).
        info: fields of the model's summary record besides name, rank, status and seconds (the kind may add to
            them while it trains the model).
        work: what the kind trains, set by :meth:`ModelKind.prepare`.
        key: jobs with equal keys may be trained together (set by :meth:`ModelKind.prepare`).
        resume: the output is half-trained and is continued (set by :meth:`ModelKind.prepare`).
    """

    name: str
    path: Path
    source: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    work: Any = None
    key: str = ""
    resume: bool = False


class ModelKind(Protocol):
    """How one kind of model is prepared and trained: the part of a run that is not the runner's."""

    def prepare(self, job: Job) -> bool:
        """Read what ``job`` needs, set its ``work``, ``key`` and ``resume``; ``False``: its output is finished
        already (skipped). Called with ``job.path`` claimed. Raises for a model that cannot be trained (reported
        as failed; :class:`~monai_singanseg.errors.SinGANSegInputError` without a traceback)."""

    def train(self, jobs: Sequence[Job]) -> Sequence[str]:
        """Train ``jobs`` (one or more of one key) together; one status (:data:`STATUSES`) per job. Raises when
        they cannot be trained."""


@dataclass
class OneModelPerJob(ABC):
    """A :class:`ModelKind` whose every job is one checkpoint of one config, trained alone (the diffusion and
    StyleGAN generators): a subclass says how far a checkpoint has trained (:meth:`trained_steps`) and how one
    model is trained (:meth:`fit`); this class claims, resumes and reports. Nothing is skipped in :meth:`prepare`:
    the kind's trainer leaves a finished checkpoint as it is, after checking it was trained on these pairs.

    Args:
        config: the models' configuration. device: the training device. progress: show progress bars.
        resume: continue checkpoints that exist; without it an existing checkpoint is an error.
    """

    config: Any
    device: str
    progress: bool
    resume: bool

    @abstractmethod
    def trained_steps(self, path: Path) -> int | None:
        """The steps the checkpoint at ``path`` has trained (``None``: it holds no training state)."""

    @abstractmethod
    def fit(self, job: Job) -> None:
        """Train (or resume, with ``job.resume``) the model of ``job`` into ``job.path``."""

    def prepare(self, job: Job) -> bool:
        """Note whether the claimed checkpoint continues and how far it was trained; always ``True``."""
        if job.path.exists() and not self.resume:  # checked again once claimed: another run may have written it
            raise SinGANSegInputError(f"{job.path}: already exists; pass --resume to continue it, or choose another "
                                      "output.")
        job.resume = job.path.exists()
        job.work = self.trained_steps(job.path) if job.resume else None
        job.key = job.name  # these models train one at a time
        return True

    def train(self, jobs: Sequence[Job]) -> list[str]:
        """Train the one model of ``jobs``; ``skipped`` when it was finished already."""
        (job,) = jobs
        self.fit(job)
        job.info["steps"] = self.trained_steps(job.path)
        if not job.resume:
            return ["done"]
        return ["skipped" if job.info["steps"] == job.work else "resumed"]


@contextlib.contextmanager
def distributed_ranks() -> Iterator[Ranks]:
    """(rank, world size, local rank, local world size) of this process, for the block.

    A process group that is already initialised (the caller's) is used and left as it is. Otherwise, under torchrun
    (``WORLD_SIZE`` > 1) one is created for the block and destroyed at its end, on errors too, so a caller never
    finds a group it did not make, nor loses one it did.
    """
    created = False
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        created = True
    try:
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        yield Ranks(rank, world, local_rank, local_world)
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def rank_device(device: str | None, local_rank: int) -> str:
    """The device of a rank: ``None`` means GPU ``local_rank`` when there are GPUs, else the CPU; ``"cuda"`` means
    GPU ``local_rank`` (the ranks of a machine each take their own GPU); anything else is kept as given."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return f"cuda:{local_rank}" if device == "cuda" else device


def cpu_threads_per_rank() -> int:
    """CPU threads for each of the ranks sharing this machine's cores (``LOCAL_WORLD_SIZE`` of torchrun, else
    ``WORLD_SIZE``, else one process): the cores divided between them, at least one."""
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return max(1, (os.cpu_count() or 1) // max(local_world, 1))


def read_datalist(datalist: str | os.PathLike, section: str = "training") -> list[DatalistItem]:
    """The items of ``datalist[section]`` (Decathlon style: paths relative to the file's folder, ``image`` one file
    or a list of co-registered contrasts).

    Raises:
        SinGANSegInputError: the file or section cannot be read, or the section lists no item.
    """
    try:
        items = load_decathlon_datalist(str(datalist), is_segmentation=True, data_list_key=section)
    except Exception as err:
        raise SinGANSegInputError(f"{datalist}: cannot read section {section!r} of the datalist ({err}).") from err
    if not items:
        raise SinGANSegInputError(f"{datalist}: section {section!r} lists no item to train on.")
    read = []
    for item in items:
        value = item["image"]
        images = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
        label = str(item["label"]) if "label" in item else None
        read.append(DatalistItem(images, label, model_name(images[0])))
    return read


def check_unique_names(items: Sequence[DatalistItem], datalist: str | os.PathLike) -> None:
    """Refuse items that would write the same output: models are named after their (first) image file.

    Raises:
        SinGANSegInputError: naming up to five repeated names.
    """
    names = [item.name for item in items]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SinGANSegInputError(
            f"{datalist}: several items would write the same checkpoint ({', '.join(repeated[:5])}); "
            "checkpoints are named after the image file, so image names must be unique."
        )


def check_summary(summary: dict[str, Any], out_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """``summary`` of a run (:func:`run_jobs`) as it is when no model failed; else one error naming the first
    failure.

    A run goes on past a failing model (one bad image must not stop the others) and returns normally; a caller that
    must not report success when models are missing (the command line, the bundles) passes its summary through
    this. Every failed model's reason was already logged, one line each, as it failed.

    Args:
        summary: what the run returned.
        out_dir: the folder the run wrote its summary file (:data:`SUMMARY_NAME`) to, named in the error; ``None``
            when it wrote none.

    Raises:
        SinGANSegInputError: ``"2 of 2 models failed (first: name: reason); see <out_dir>/train_many_summary.json."``
    """
    if summary["failed"]:
        first = next(m for m in summary["models"] if m.get("status") == "failed")
        where = f"; see {Path(out_dir) / SUMMARY_NAME}" if out_dir is not None else ""
        raise SinGANSegInputError(f"{summary['failed']} of {summary['total']} models failed (first: {first['name']}: "
                                  f"{first['error']}){where}.")
    return summary


class _Progress:
    """This rank's records, and one logging line per model as it ends."""

    def __init__(self, ranks: Ranks, mine: int) -> None:
        self.ranks, self.mine = ranks, mine
        self.records: list[dict[str, Any]] = []

    def report(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        failed = record["status"] == "failed"
        # a logging line reaches the log as the model finishes (a handler flushes every record)
        (logger.warning if failed else logger.info)(
            "[rank %d/%d] %d/%d %s: %s (%.1f s)%s", self.ranks.rank, self.ranks.world, len(self.records), self.mine,
            record["name"], record["status"], record["seconds"], f" - {record['error']}" if failed else "")


def _failure(record: dict[str, Any], err: Exception) -> None:
    """Put ``err`` in ``record``: its message, and a short traceback unless it is a user's input error."""
    record.update(status="failed", error=f"{type(err).__name__}: {err}")
    if not isinstance(err, SinGANSegInputError):
        record["traceback"] = traceback.format_exc(limit=3)


@dataclass
class _Group:
    """Jobs of one key waiting to be trained together, with their records."""

    jobs: list[Job] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)


def _train_group(kind: ModelKind, group: _Group, progress: _Progress) -> None:
    """Train ``group``; when it fails and has several members, each is trained alone so that only the faulty one is
    reported."""
    start = time.perf_counter()
    try:
        statuses = list(kind.train(group.jobs))
    except Exception as err:  # noqa: BLE001 - a failing group must not stop the others
        if len(group.jobs) > 1:  # find the member that fails, and train the others
            for job, record in zip(group.jobs, group.records):
                _train_group(kind, _Group([job], [record]), progress)
            return
        _failure(group.records[0], err)
        statuses = ["failed"]
    share = (time.perf_counter() - start) / len(group.jobs)
    for job, record, status in zip(group.jobs, group.records, statuses):
        # the kind may have added to the job's info while training (the steps trained)
        record.update(job.info, status=status, seconds=record["seconds"] + share, group_size=len(group.jobs))
        progress.report(record)


def _prepare(kind: ModelKind, job: Job, record: dict[str, Any], claims: contextlib.ExitStack,
             progress: _Progress) -> bool:
    """Claim and prepare ``job``; ``True`` when it is to be trained, else it is reported (skipped or failed)."""
    start = time.perf_counter()
    try:
        job.path.parent.mkdir(parents=True, exist_ok=True)  # the lock goes beside the output, before the output
        # held until this rank is done: a second run on these outputs skips the model, not trains it too
        claims.enter_context(claim_output(job.path))
        train = kind.prepare(job)
    except Exception as err:  # noqa: BLE001 - one failing model must not stop the others
        _failure(record, err)
        train = False
    record["seconds"] = time.perf_counter() - start
    if not train:
        record.setdefault("status", "skipped")
        progress.report(record)
    return train


def _run_rank(jobs: Sequence[Job], kind: ModelKind, ranks: Ranks, group_size: int) -> list[dict[str, Any]]:
    """Train this rank's share of ``jobs`` (``rank, rank + world, ...``); its records."""
    mine = jobs[ranks.rank::ranks.world]
    progress = _Progress(ranks, len(mine))
    pending: dict[str, _Group] = {}
    with contextlib.ExitStack() as claims:
        for job in mine:
            record = {"name": job.name, **job.info, "rank": ranks.rank}
            if not _prepare(kind, job, record, claims, progress):
                continue
            group = pending.setdefault(job.key, _Group())
            group.jobs.append(job)
            group.records.append(record)
            if len(group.jobs) == group_size:
                _train_group(kind, pending.pop(job.key), progress)
        for group in pending.values():  # what is left: smaller groups
            _train_group(kind, group, progress)
    return progress.records


def _summarize(records: list[dict[str, Any]], ranks: Ranks, group_size: int, total: int,
               extra: dict[str, Any]) -> dict[str, Any]:
    """Counts per status, seconds per trained model, and every record (sorted by name)."""
    counts = {s: sum(r["status"] == s for r in records) for s in STATUSES}
    trained = [r["seconds"] for r in records if r["status"] in ("done", "resumed")]
    return {
        **extra,
        "world_size": ranks.world,
        "group_size": group_size,
        "total": total,
        **counts,
        "seconds_per_model": sum(trained) / len(trained) if trained else None,
        "models": sorted(records, key=lambda r: r["name"]),
    }


def run_jobs(
    jobs: Sequence[Job],
    kind: ModelKind,
    ranks: Ranks,
    group_size: int = 1,
    summary_file: str | os.PathLike | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or resume, or skip) every model of ``jobs``, this rank's share here, and sum up the run.

    Args:
        jobs: every model of the run, in the same order on every rank.
        kind: how a model is prepared and trained.
        ranks: this process's place among the run's (:func:`distributed_ranks`).
        group_size: at most this many prepared models with equal keys are trained together.
        summary_file: the JSON file rank 0 writes the summary to (``None``: none).
        extra: fields put first in the summary (what the run was: its datalist, its clusters, ...).

    Returns:
        The summary, the same on every rank: ``total``, a count per status (:data:`STATUSES`),
        ``seconds_per_model`` of the trained ones, and ``models``, one record per model (``name``, ``rank``,
        ``status``, ``seconds``, the job's ``info``, ``error`` for a failed one), gathered from all ranks.

    Raises:
        SinGANSegInputError: ``group_size`` below 1.
    """
    if group_size < 1:
        raise SinGANSegInputError(f"group size must be >= 1, got {group_size}.")
    records = _run_rank(jobs, kind, ranks, group_size)
    if dist.is_initialized():
        gathered: list[Any] = [None] * ranks.world
        dist.all_gather_object(gathered, records)
        records = [r for part in gathered for r in part]
    summary = _summarize(records, ranks, group_size, len(jobs), extra or {})
    if ranks.rank == 0:
        counts = ", ".join(f"{summary[s]} {s}" for s in STATUSES)
        if summary_file is not None:
            text = json.dumps(summary, indent=2)
            atomic_write(summary_file, lambda tmp: Path(tmp).write_text(text))
        logger.info("%d models: %s%s", len(jobs), counts, f" -> {summary_file}" if summary_file is not None else "")
    if dist.is_initialized():
        dist.barrier()  # every rank returns once the summary is written
    return summary
