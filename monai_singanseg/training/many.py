"""Train one model per image/label pair of a Decathlon-style datalist, sharded over ``torchrun`` ranks.

Launched plainly it is one process; launched with ``torchrun --nproc_per_node N`` (one machine or several) every
rank takes items ``rank, rank + world_size, ...`` of the list, runs on GPU ``LOCAL_RANK`` when GPUs exist, and CPU
threads are split between the ranks of a machine otherwise. torch.distributed does the launching and rendezvous;
there is no scheduler here. Finished models are skipped and half-trained ones resume, so a killed job is restarted
with the same command.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from monai.data import load_decathlon_datalist

from monai_singanseg.checkpoint import atomic_write, read_checkpoint
from monai_singanseg.config import SinGANSegConfig
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.io import load_training_pair, model_name
from monai_singanseg.training.trainer import SinGANSegTrainer

__all__ = ["SUMMARY_NAME", "train_many"]

SUMMARY_NAME = "train_many_summary.json"


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _status(path: Path) -> str:
    """``missing``, ``partial`` or ``complete``."""
    if not path.exists():
        return "missing"
    state = read_checkpoint(path).get("training") or {}
    return "complete" if state.get("complete", True) else "partial"


def _distributed() -> tuple[int, int, int, int]:
    """(rank, world size, local rank, local world size), joining the torchrun group when there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return rank, world, local_rank, local_world


def train_many(
    datalist: str | os.PathLike,
    out_dir: str | os.PathLike,
    make_config: Callable[[Any], SinGANSegConfig],
    section: str = "training",
    device: str | None = None,
    num_classes: int | None = None,
    percentiles: tuple[float, float] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train (or resume, or skip) one checkpoint ``out_dir/<image name>.pt`` per item of ``datalist[section]``.

    Args:
        datalist: Decathlon-style JSON (``{"training": [{"image": ..., "label": ...}, ...]}``); relative paths are
            relative to the file's folder; ``image`` may be a list of co-registered contrasts.
        out_dir: folder of checkpoints, named after each item's (first) image so ``SinGANSegAugmentd`` can match.
        make_config: builds the config of an item from its :class:`~monai_singanseg.io.TrainingPair`.
        section: the datalist key to train.
        device: ``"cpu"``, ``"cuda"`` (GPU ``LOCAL_RANK``) or ``None`` for GPU when available.
        num_classes, percentiles: as in :func:`~monai_singanseg.io.load_training_pair`.
        progress: progress bars per scale.

    Returns:
        The summary (written to ``out_dir/train_many_summary.json`` by rank 0): counts and one record per item.
    """
    rank, world, local_rank, local_world = _distributed()
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(local_world, 1)))
    try:
        items = load_decathlon_datalist(str(datalist), is_segmentation=True, data_list_key=section)
    except Exception as err:
        raise SinGANSegInputError(f"{datalist}: cannot read section {section!r} of the datalist ({err}).") from err
    names = [model_name(_as_list(item["image"])[0]) for item in items]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SinGANSegInputError(
            f"{datalist}: several items would write the same checkpoint ({', '.join(repeated[:5])}); "
            "checkpoints are named after the image file, so image names must be unique."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mine = items[rank::world]
    records = []
    for index, item in enumerate(mine, 1):
        images = _as_list(item["image"])
        name = model_name(images[0])
        path = out_dir / f"{name}.pt"
        start = time.perf_counter()
        record: dict[str, Any] = {"name": name, "image": images, "label": str(item["label"]), "rank": rank}
        try:
            status = _status(path)
            if status == "complete":
                record["status"] = "skipped"
            else:
                pair = load_training_pair(images, item["label"], num_classes=num_classes, percentiles=percentiles)
                trainer = SinGANSegTrainer(make_config(pair), device=device, progress=progress)
                trainer.fit(pair.real, pair.intensity, pair.labels, path, resume=status == "partial", source=pair.source)
                record["status"] = "resumed" if status == "partial" else "done"
        except Exception as err:  # one failing image must not stop the others
            record.update(status="failed", error=f"{type(err).__name__}: {err}")
            if not isinstance(err, SinGANSegInputError):
                record["traceback"] = traceback.format_exc(limit=3)
        record["seconds"] = time.perf_counter() - start
        records.append(record)
        print(f"[rank {rank}/{world}] {index}/{len(mine)} {name}: {record['status']} ({record['seconds']:.1f} s)"
              + (f" - {record['error']}" if record["status"] == "failed" else ""), flush=True)
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
        "total": len(items),
        **counts,
        "seconds_per_model": sum(trained) / len(trained) if trained else None,
        "models": sorted(records, key=lambda r: r["name"]),
    }
    if rank == 0:
        text = json.dumps(summary, indent=2)
        atomic_write(out_dir / SUMMARY_NAME, lambda tmp: Path(tmp).write_text(text))
        print(f"{len(items)} models: {counts['done']} done, {counts['resumed']} resumed, {counts['skipped']} skipped, "
              f"{counts['failed']} failed -> {out_dir / SUMMARY_NAME}", flush=True)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return summary
