"""Train one model per image/label pair of a Decathlon-style datalist, sharded over ``torchrun`` ranks.

Launched plainly it is one process; launched with ``torchrun --nproc_per_node N`` (one machine or several) every
rank takes items ``rank, rank + world_size, ...`` of the list and runs on GPU ``LOCAL_RANK`` when GPUs exist (the
``singanseg train-many`` command also splits CPU threads between the ranks of a machine). torch.distributed does the
launching and rendezvous; there is no scheduler here. A process group the caller already set up is used as it is
and left running; one :func:`train_many` had to create is destroyed when it returns. Finished models are skipped
and half-trained ones resume, so a killed job is restarted with the same command.

Within a rank, items whose pyramids have the same shapes and whose configs differ in the seed at most (and, when
resuming, that stopped at the same scale) are trained ``group_size`` at a time as one grouped network
(:meth:`~monai_singanseg.training.SinGANSegTrainer.fit_group`): one set of kernel launches for K models, which is
what fills a GPU. A model comes out the same, up to rounding, whatever group it was trained in.

The ranks, claims, failures and summary are the shared runner's (:mod:`monai_singanseg.training.runner`); this
module is what is SinGAN-Seg's: reading an item into a :class:`~monai_singanseg.training.TrainingItem`, checking a
model already there against it, the group key, and grouped training.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from monai_singanseg.checkpoint import read_checkpoint, training_state
from monai_singanseg.config import SinGANSegConfig
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.files import check_output_folder
from monai_singanseg.io import load_training_pair
from monai_singanseg.pyramid import scale_shapes
from monai_singanseg.training.runner import (
    SUMMARY_NAME,
    DatalistItem,
    Job,
    check_summary,
    check_unique_names,
    cpu_threads_per_rank,
    distributed_ranks,
    rank_device,
    read_datalist,
    run_jobs,
)
from monai_singanseg.training.trainer import (
    SinGANSegTrainer,
    TrainingItem,
    config_differences,
    verify_checkpoint_data,
)

__all__ = ["DEFAULT_GROUP_SIZE", "SUMMARY_NAME", "check_summary", "cpu_threads_per_rank", "distributed_ranks",
           "train_many"]

DEFAULT_GROUP_SIZE = {"cpu": 1, "cuda": 32}
"""Models trained side by side by default, per device type. CPU: 1, because grouping did not pay there (the
convolutions already keep the cores busy: 9.5 models/h per core at 96 px alone, 8.7 in groups of 4 or 16;
benchmarks/results/grouped_cpu.md). CUDA: 32, between the measured K = 16 (300 models/h at 192 px on an H200,
13 GiB) and K = 64 (406 models/h, 28 GiB): most of the gain at a memory most GPUs have
(benchmarks/results/grouped_cuda.md)."""


def _status(path: Path) -> str:
    """``missing``, ``partial`` or ``complete``."""
    if not path.exists():
        return "missing"
    state = training_state(read_checkpoint(path))
    return "complete" if state is None or state.complete else "partial"


def _group_key(item: TrainingItem, path: Path, status: str) -> str:
    """Items with equal keys can train in one group: same pyramid shapes, same config but the seed, same stage."""
    if status == "partial":
        payload = read_checkpoint(path)
        config = SinGANSegConfig.from_json(payload["config"]).to_dict()
        shapes, stage = payload["shapes"], len(payload["generators"])
    else:
        config = item.config.to_dict()
        shapes, stage = [list(s) for s in scale_shapes(item.real.shape[1:], item.config.pyramid)], 0
    config.pop("seed")
    return json.dumps([shapes, config, stage], sort_keys=True)


@dataclass
class _SinGANSegModels:
    """SinGAN-Seg's part of a run (a :class:`~monai_singanseg.training.runner.ModelKind`): one model per datalist
    item, read with the same options for every item, trained in groups of equal pyramids."""

    datalist: str
    make_config: Callable[[Any], SinGANSegConfig]
    device: str
    progress: bool
    reader: dict[str, Any]

    def prepare(self, job: Job) -> bool:
        """Read the item, check a model already at ``job.path`` against it; ``False`` when that one is finished."""
        item: DatalistItem = job.source
        if item.label is None:
            raise SinGANSegInputError(f"{self.datalist}: item {item.name} has no 'label'.")
        status = _status(job.path)
        pair = load_training_pair(item.images, item.label, **self.reader)
        work = TrainingItem(pair.real, pair.intensity, pair.labels, job.path, pair.source, self.make_config(pair),
                            name=item.label)
        if status != "missing":  # never keep or continue a model of other data or other options
            changes = "; ".join(map(str, config_differences(verify_checkpoint_data(job.path, pair.real), work.config)))
            if changes:
                raise SinGANSegInputError(f"{job.path}: was trained with other options ({changes}); "
                                          "delete it or choose another --out.")
        if status == "complete":
            return False
        job.work, job.resume, job.key = work, status == "partial", _group_key(work, job.path, status)
        return True

    def train(self, jobs: Sequence[Job]) -> list[str]:
        """Train ``jobs`` (equal keys) as one grouped network."""
        items = [job.work for job in jobs]
        SinGANSegTrainer(items[0].config, device=self.device, progress=self.progress).fit_group(
            items, resume=jobs[0].resume)
        return ["resumed" if jobs[0].resume else "done"] * len(jobs)


def train_many(
    datalist: str | os.PathLike,
    out_dir: str | os.PathLike,
    make_config: Callable[[Any], SinGANSegConfig],
    section: str = "training",
    device: str | None = None,
    num_classes: int | None = None,
    percentiles: tuple[float, float] | None = None,
    progress: bool = False,
    group_size: int | None = None,
    window: tuple[float, float] | None = None,
    slice_axis: int | None = None,
    slice_index: int | str = "largest",
) -> dict[str, Any]:
    """Train (or resume, or skip) one checkpoint ``out_dir/<image name>.pt`` per item of ``datalist[section]``.

    Args:
        datalist: Decathlon-style JSON (``{"training": [{"image": ..., "label": ...}, ...]}``); relative paths are
            relative to the file's folder; ``image`` may be a list of co-registered contrasts.
        out_dir: folder of checkpoints, named after each item's (first) image so ``SinGANSegAugmentd`` can match.
        make_config: builds the config of an item from its :class:`~monai_singanseg.io.TrainingPair`.
        section: the datalist key to train.
        device: ``"cpu"``, ``"cuda"`` (GPU ``LOCAL_RANK``) or ``None`` for GPU when available.
        num_classes, percentiles, window, slice_axis, slice_index: as in
            :func:`~monai_singanseg.io.load_training_pair`, for every item.
        progress: progress bars per scale.
        group_size: at most this many models with equal pyramids train side by side in one grouped network
            (default :data:`DEFAULT_GROUP_SIZE` of the device type; 1 trains one model at a time).

    Returns:
        The summary (written to ``out_dir/train_many_summary.json`` by rank 0): counts and one record per item
        (:func:`~monai_singanseg.training.runner.run_jobs`).

    Under torchrun, a process group already initialised by the caller is used and left running; otherwise one is
    created for the call and destroyed before it returns. The number of CPU threads is the caller's to set (the
    ``singanseg train-many`` command gives each rank of a machine its share, :func:`cpu_threads_per_rank`).
    """
    with distributed_ranks() as ranks:
        device = rank_device(device, ranks.local_rank)
        if group_size is None:
            group_size = DEFAULT_GROUP_SIZE.get(torch.device(device).type, 1)
        if group_size < 1:  # before the datalist: an option of the call, not of the data
            raise SinGANSegInputError(f"group size must be >= 1, got {group_size}.")
        items = read_datalist(datalist, section)
        check_unique_names(items, datalist)
        # made and tried before any training: a read-only place was a PermissionError traceback
        out_dir = check_output_folder(out_dir)
        jobs = [Job(item.name, out_dir / f"{item.name}.pt", item, {"image": item.images, "label": str(item.label)})
                for item in items]
        reader = {"num_classes": num_classes, "percentiles": percentiles, "window": window, "slice_axis": slice_axis,
                  "slice_index": slice_index}
        models = _SinGANSegModels(str(datalist), make_config, device, progress, reader)
        return run_jobs(jobs, models, ranks, group_size, out_dir / SUMMARY_NAME,
                        {"datalist": str(datalist), "section": section})
