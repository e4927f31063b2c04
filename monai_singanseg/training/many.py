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
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from monai.data import load_decathlon_datalist

from monai_singanseg.checkpoint import read_checkpoint, training_state
from monai_singanseg.config import SinGANSegConfig
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.files import atomic_write, check_output_folder, claim_output
from monai_singanseg.io import load_training_pair, model_name
from monai_singanseg.pyramid import scale_shapes
from monai_singanseg.training.trainer import (
    SinGANSegTrainer,
    TrainingItem,
    config_differences,
    verify_checkpoint_data,
)

__all__ = ["DEFAULT_GROUP_SIZE", "SUMMARY_NAME", "check_summary", "cpu_threads_per_rank", "distributed_ranks",
           "train_many"]

logger = logging.getLogger(__name__)

SUMMARY_NAME = "train_many_summary.json"
DEFAULT_GROUP_SIZE = {"cpu": 1, "cuda": 32}
"""Models trained side by side by default, per device type. CPU: 1, because grouping did not pay there (the
convolutions already keep the cores busy: 9.5 models/h per core at 96 px alone, 8.7 in groups of 4 or 16;
benchmarks/results/grouped_cpu.md). CUDA: 32, between the measured K = 16 (300 models/h at 192 px on an H200,
13 GiB) and K = 64 (406 models/h, 28 GiB): most of the gain at a memory most GPUs have
(benchmarks/results/grouped_cuda.md)."""


@dataclass
class _Pending:
    """Items of one group key waiting to be trained together."""

    items: list[TrainingItem] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    resume: bool = False


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _status(path: Path) -> str:
    """``missing``, ``partial`` or ``complete``."""
    if not path.exists():
        return "missing"
    state = training_state(read_checkpoint(path))
    return "complete" if state is None or state.complete else "partial"


@contextlib.contextmanager
def distributed_ranks() -> Iterator[tuple[int, int, int, int]]:
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
        yield rank, world, local_rank, local_world
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def check_summary(summary: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Any]:
    """``summary`` of :func:`train_many` as it is when no model failed; else one error naming the first failure.

    :func:`train_many` goes on past a failing item (one bad image must not stop the others) and returns normally;
    a caller that must not report success when models are missing (the command line, the generation bundle) passes
    its summary through this. Every failed item's reason was already printed, one line each, as it failed.

    Raises:
        SinGANSegInputError: ``"2 of 2 models failed (first: name: reason); see <out_dir>/train_many_summary.json."``
    """
    if summary["failed"]:
        first = next(m for m in summary["models"] if m.get("status") == "failed")
        raise SinGANSegInputError(
            f"{summary['failed']} of {summary['total']} models failed (first: {first['name']}: {first['error']}); "
            f"see {Path(out_dir) / SUMMARY_NAME}."
        )
    return summary


def cpu_threads_per_rank() -> int:
    """CPU threads for each of the ranks sharing this machine's cores (``LOCAL_WORLD_SIZE`` of torchrun, else
    ``WORLD_SIZE``, else one process): the cores divided between them, at least one."""
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return max(1, (os.cpu_count() or 1) // max(local_world, 1))


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
        The summary (written to ``out_dir/train_many_summary.json`` by rank 0): counts and one record per item.

    Under torchrun, a process group already initialised by the caller is used and left running; otherwise one is
    created for the call and destroyed before it returns. The number of CPU threads is the caller's to set (the
    ``singanseg train-many`` command gives each rank of a machine its share, :func:`cpu_threads_per_rank`).
    """
    with distributed_ranks() as (rank, world, local_rank, _):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda":
            device = f"cuda:{local_rank}"
        if group_size is None:
            group_size = DEFAULT_GROUP_SIZE.get(torch.device(device).type, 1)
        if group_size < 1:
            raise SinGANSegInputError(f"group size must be >= 1, got {group_size}.")
        try:
            items = load_decathlon_datalist(str(datalist), is_segmentation=True, data_list_key=section)
        except Exception as err:
            raise SinGANSegInputError(f"{datalist}: cannot read section {section!r} of the datalist ({err}).") from err
        if not items:
            raise SinGANSegInputError(f"{datalist}: section {section!r} lists no item to train on.")
        names = [model_name(_as_list(item["image"])[0]) for item in items]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise SinGANSegInputError(
                f"{datalist}: several items would write the same checkpoint ({', '.join(repeated[:5])}); "
                "checkpoints are named after the image file, so image names must be unique."
            )
        # made and tried before any training: a read-only place was a PermissionError traceback
        out_dir = check_output_folder(out_dir)
        mine = items[rank::world]
        records: list[dict[str, Any]] = []
        pending: dict[str, _Pending] = {}

        def report(record: dict[str, Any]) -> None:
            records.append(record)
            failed = record["status"] == "failed"
            # a logging line reaches the log as the model finishes (a handler flushes every record)
            (logger.warning if failed else logger.info)(
                "[rank %d/%d] %d/%d %s: %s (%.1f s)%s", rank, world, len(records), len(mine), record["name"],
                record["status"], record["seconds"], f" - {record['error']}" if failed else "")

        def train(group: _Pending) -> None:
            start = time.perf_counter()
            try:
                SinGANSegTrainer(group.items[0].config, device=device, progress=progress).fit_group(
                    group.items, resume=group.resume)
            except Exception as err:  # noqa: BLE001 - a failing group must not stop the others
                if len(group.items) > 1:  # find the member that fails, and train the others
                    for job, record in zip(group.items, group.records):
                        train(_Pending([job], [record], group.resume))
                    return
                group.records[0]["error"] = f"{type(err).__name__}: {err}"
                if not isinstance(err, SinGANSegInputError):
                    group.records[0]["traceback"] = traceback.format_exc(limit=3)
                status = "failed"
            else:
                status = "resumed" if group.resume else "done"
            share = (time.perf_counter() - start) / len(group.items)
            for record in group.records:
                record.update(status=status, seconds=record["seconds"] + share, group_size=len(group.items))
                report(record)

        with contextlib.ExitStack() as claims:
            for item in mine:
                images = _as_list(item["image"])
                name = model_name(images[0])
                path = out_dir / f"{name}.pt"
                start = time.perf_counter()
                record: dict[str, Any] = {"name": name, "image": images, "label": str(item.get("label")), "rank": rank}
                try:
                    if "label" not in item:
                        raise SinGANSegInputError(f"{datalist}: item {name} has no 'label'.")
                    # held until this rank is done: a second run on this folder skips the model, not trains it too
                    claims.enter_context(claim_output(path))
                    status = _status(path)
                    pair = load_training_pair(images, item["label"], num_classes=num_classes, percentiles=percentiles,
                                              window=window, slice_axis=slice_axis, slice_index=slice_index)
                    job = TrainingItem(pair.real, pair.intensity, pair.labels, path, pair.source, make_config(pair),
                                       name=str(item["label"]))
                    if status != "missing":  # never keep or continue a model of other data or other options
                        changes = config_differences(verify_checkpoint_data(path, pair.real), job.config)
                        if changes:
                            raise SinGANSegInputError(f"{path}: was trained with other options ({'; '.join(changes)}); "
                                                      "delete it or choose another --out.")
                    if status == "complete":
                        record.update(status="skipped", seconds=time.perf_counter() - start)
                        report(record)
                        continue
                    key = _group_key(job, path, status)
                except Exception as err:  # noqa: BLE001 - one failing image must not stop the others
                    record.update(status="failed", error=f"{type(err).__name__}: {err}",
                                  seconds=time.perf_counter() - start)
                    if not isinstance(err, SinGANSegInputError):
                        record["traceback"] = traceback.format_exc(limit=3)
                    report(record)
                    continue
                record["seconds"] = time.perf_counter() - start
                group = pending.setdefault(key, _Pending(resume=status == "partial"))
                group.items.append(job)
                group.records.append(record)
                if len(group.items) == group_size:
                    train(pending.pop(key))
            for group in pending.values():
                train(group)
        if dist.is_initialized():
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, records)
            records = [r for part in gathered for r in part]
        counts = {s: sum(r["status"] == s for r in records) for s in ("done", "resumed", "skipped", "failed")}
        trained = [r["seconds"] for r in records if r["status"] in ("done", "resumed")]
        summary = {
            "datalist": str(datalist),
            "section": section,
            "world_size": world,
            "group_size": group_size,
            "total": len(items),
            **counts,
            "seconds_per_model": sum(trained) / len(trained) if trained else None,
            "models": sorted(records, key=lambda r: r["name"]),
        }
        if rank == 0:
            text = json.dumps(summary, indent=2)
            atomic_write(out_dir / SUMMARY_NAME, lambda tmp: Path(tmp).write_text(text))
            logger.info("%d models: %d done, %d resumed, %d skipped, %d failed -> %s", len(items), counts["done"],
                        counts["resumed"], counts["skipped"], counts["failed"], out_dir / SUMMARY_NAME)
        if dist.is_initialized():
            dist.barrier()  # every rank returns once the summary is written
        return summary
