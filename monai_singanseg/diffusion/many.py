"""Train diffusion models on the pairs of a datalist: one model for all, or one per k-means cluster.

The labelled-polyp diffusion pipeline clusters a small dataset and trains one model per cluster, so each model learns
one appearance; here the clusters come from :func:`~monai_singanseg.diffusion.clustering.cluster_pairs`. Clusters are
independent trainings, run by the runner ``train-many`` uses (:mod:`monai_singanseg.training.runner`): sharded over
``torchrun`` ranks (rank ``r`` trains clusters ``r, r + world_size, ...``, on GPU ``LOCAL_RANK`` when GPUs exist),
each checkpoint claimed while it trains, each one resuming on its own, and a failing cluster reported (one line)
without stopping the others. What is the diffusion generator's own is here: the clusters and their record, and how
one cluster's model is trained.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from monai_singanseg.diffusion.checkpoint import read_diffusion_checkpoint
from monai_singanseg.diffusion.config import DiffusionConfig
from monai_singanseg.diffusion.trainer import DiffusionTrainer
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.files import atomic_write
from monai_singanseg.io import TrainingPair, load_training_pair
from monai_singanseg.training.pairs import resize_pair  # re-exported: its earlier home
from monai_singanseg.training.runner import Job, OneModelPerJob, distributed_ranks, rank_device, read_datalist, run_jobs

__all__ = ["CLUSTERS_NAME", "cluster_checkpoint", "load_datalist_pairs", "resize_pair", "train_diffusion_models"]

CLUSTERS_NAME = "clusters.json"


def cluster_checkpoint(out_dir: str | os.PathLike, cluster: int) -> Path:
    """The checkpoint of cluster ``cluster`` in ``out_dir``."""
    return Path(out_dir) / f"cluster_{cluster}.pt"


def load_datalist_pairs(
    datalist: str | os.PathLike,
    section: str = "training",
    resize_to: Sequence[int] | None = None,
    **reader: Any,
) -> tuple[list[str], list[TrainingPair]]:
    """The names and training pairs of ``datalist[section]`` (Decathlon style; paths relative to the file).

    Args:
        datalist: the datalist JSON.
        section: its key to read.
        resize_to: resize every pair to this spatial shape (a diffusion model trains on pairs of one shape).
        reader: options of :func:`~monai_singanseg.io.load_training_pair` (``num_classes``, ``percentiles``,
            ``window``, ``slice_axis``, ``slice_index``).

    Raises:
        SinGANSegInputError: an unreadable datalist, an item without a label, or a bad file (named).
    """
    names, pairs = [], []
    for item in read_datalist(datalist, section):
        if item.label is None:
            raise SinGANSegInputError(f"{datalist}: item {item.images[0]} has no 'label'.")
        pair = load_training_pair(item.images, item.label, **reader)
        names.append(item.name)
        pairs.append(resize_pair(pair, resize_to) if resize_to is not None else pair)
    return names, pairs




def _check_cluster_count(num_clusters: Any) -> None:
    """Refuse a cluster count that is no whole number of at least 1, before the output is looked at."""
    if isinstance(num_clusters, bool) or not isinstance(num_clusters, int) or num_clusters < 1:
        # before the output checks: 0 was "with 0 clusters the output is a folder, not a .pt file"
        raise SinGANSegInputError(f"num_clusters={num_clusters!r}: the k-means clusters of the pairs (one model each) "
                                  "are a whole number of at least 1.")


def _recorded_clusters(record: Path, names: Sequence[str], num_clusters: int, resume: bool) -> dict[str, Any]:
    """The clusters ``record`` holds, when resuming the same pairs and count; else an error."""
    if not resume:
        raise SinGANSegInputError(f"{record}: already exists; pass --resume to continue these clusters' "
                                  "models, or choose another output folder.")
    # resuming keeps the clusters the checkpoints were trained on (k-means is not recomputed)
    clusters = json.loads(record.read_text())
    if clusters.get("num_clusters") != num_clusters or clusters.get("names") != list(names):
        raise SinGANSegInputError(
            f"{record}: holds {clusters.get('num_clusters')} clusters of {len(clusters.get('names', []))} "
            f"pairs; resuming needs the same pairs and --clusters as then ({num_clusters} asked for "
            f"{len(names)} pairs)."
        )
    return clusters


def _clusters(names: Sequence[str], pairs: Sequence[TrainingPair], out: Path, num_clusters: int,
              cluster_options: dict[str, Any] | None, resume: bool) -> tuple[list[int], list[Path], dict[str, Any]]:
    """(cluster of each pair, checkpoint of each cluster, the clusters' record): one cluster of all pairs, the
    record of the run being resumed, or k-means."""
    if num_clusters == 1:
        return [0] * len(pairs), [out], {"num_clusters": 1}
    from monai_singanseg.diffusion.clustering import cluster_pairs

    if out.suffix == ".pt":
        raise SinGANSegInputError(f"{out}: with {num_clusters} clusters the output is a folder, not a .pt file.")
    paths = [cluster_checkpoint(out, k) for k in range(num_clusters)]
    if (out / CLUSTERS_NAME).exists():
        clusters = _recorded_clusters(out / CLUSTERS_NAME, names, num_clusters, resume)
        return list(clusters["assignments"]), paths, clusters
    # every rank clusters the same pairs with the same seed, so all agree without talking to each other
    found = cluster_pairs(pairs, num_clusters, names=list(names), **(cluster_options or {}))
    assignments = list(found.assignments)
    members = {str(k): [n for n, a in zip(names, assignments) if a == k] for k in range(num_clusters)}
    return assignments, paths, {**found.to_dict(), "members": members}


def _trained_steps(path: Path) -> int | None:
    """The steps the checkpoint at ``path`` has trained (``None``: it holds no training state)."""
    state = read_diffusion_checkpoint(path).get("training")
    return None if state is None else int(state["step"])


class _DiffusionModels(OneModelPerJob):
    """The diffusion generator's part of a run (a :class:`~monai_singanseg.training.runner.ModelKind`): one model
    per cluster, of one config, trained alone (``job.source``: the cluster's pairs)."""

    def trained_steps(self, path: Path) -> int | None:
        return _trained_steps(path)

    def fit(self, job: Job) -> None:
        DiffusionTrainer(self.config, device=self.device, progress=self.progress).fit(job.source, job.path,
                                                                                      resume=job.resume)


def train_diffusion_models(
    names: Sequence[str],
    pairs: Sequence[TrainingPair],
    out: str | os.PathLike,
    make_config: Callable[[TrainingPair], DiffusionConfig],
    num_clusters: int = 1,
    cluster_options: dict[str, Any] | None = None,
    device: str | None = None,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Train one diffusion model on ``pairs``, or one per cluster.

    Args:
        names: a name per pair (recorded in ``clusters.json``).
        pairs: the training pairs, all of one spatial shape (:func:`resize_pair` them first otherwise).
        out: with one cluster, the checkpoint file; with several, the folder of ``cluster_<k>.pt`` checkpoints and
            ``clusters.json`` (which pair went where, and how the clusters were made).
        make_config: the model configuration, from the first pair.
        num_clusters: k-means clusters (1: no clustering).
        cluster_options: keyword options of :func:`~monai_singanseg.diffusion.clustering.cluster_pairs` (``method``,
            ``inception_weights``, ``seed``).
        device: training device (``None``: GPU ``LOCAL_RANK`` when GPUs exist, else the CPU; ``"cuda"``: GPU
            ``LOCAL_RANK``).
        resume: continue checkpoints that exist (a finished one is left as it is); without it an existing checkpoint
            is an error, so nothing is overwritten.
        progress: show progress bars.

    Returns:
        The summary of :func:`~monai_singanseg.training.runner.run_jobs` (the same on every rank) with
        ``clusters``: per model (one per cluster) its ``checkpoint``, ``cluster``, ``pairs``, ``steps`` and
        ``status``; a cluster that failed is counted in ``failed`` with its ``error``, and the others are trained
        (:func:`~monai_singanseg.training.runner.check_summary` turns failures into an error).

    Raises:
        SinGANSegInputError: names that do not match the pairs, a bad cluster count or output, clusters that differ
            from the recorded ones when resuming, or an existing checkpoint without ``resume``.
    """
    if len(names) != len(pairs) or not pairs:
        raise SinGANSegInputError(f"{len(pairs)} pairs and {len(names)} names; need one name per pair, >= 1 pair.")
    _check_cluster_count(num_clusters)
    out = Path(out)
    assignments, paths, clusters = _clusters(names, pairs, out, num_clusters, cluster_options, resume)
    existing = [p for p in paths if p.exists()]
    if existing and not resume:
        raise SinGANSegInputError(f"{existing[0]}: already exists; pass --resume to continue it, or choose another "
                                  "output.")
    config = make_config(pairs[0])
    jobs = []
    for k, path in enumerate(paths):
        members = [p for p, a in zip(pairs, assignments) if a == k]
        jobs.append(Job(path.stem, path, members, {"cluster": k, "checkpoint": str(path), "pairs": len(members)}))
    with distributed_ranks() as ranks:
        if num_clusters > 1 and ranks.rank == 0 and not (out / CLUSTERS_NAME).exists():
            out.mkdir(parents=True, exist_ok=True)
            text = json.dumps(clusters, indent=2)
            atomic_write(out / CLUSTERS_NAME, lambda tmp: Path(tmp).write_text(text))
        models = _DiffusionModels(config, rank_device(device, ranks.local_rank), progress, resume)
        return run_jobs(jobs, models, ranks, extra={"clusters": clusters})
