"""Train StyleGAN models on the pairs of a datalist through the runner ``train-many`` uses
(:mod:`monai_singanseg.training.runner`): the output claimed while it trains, a finished one left as it is, a
half-trained one resumed, ``torchrun`` ranks and devices, and one summary. What is the StyleGAN generator's own is
here (:class:`StyleGANModels`, a :class:`~monai_singanseg.training.runner.ModelKind`): how one model is trained.
Today a run is one model of all the pairs; several (per class, per cluster) are further jobs of the same kind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai.data import load_decathlon_datalist

from monai_singanseg.checkpoint_envelope import read_envelope
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.io import TrainingPair
from monai_singanseg.stylegan.checkpoint_format import STYLEGAN_CHECKPOINT
from monai_singanseg.stylegan.config import StyleGANConfig
from monai_singanseg.stylegan.trainer import StyleGANTrainer
from monai_singanseg.training.runner import Job, OneModelPerJob, distributed_ranks, rank_device, run_jobs

__all__ = ["StyleGANModels", "StyleGANWork", "datalist_classes", "train_stylegan_models", "trained_steps"]


def trained_steps(path: str | os.PathLike) -> int | None:
    """The steps the StyleGAN checkpoint at ``path`` has trained (``None``: it holds no training state)."""
    state = read_envelope(path, STYLEGAN_CHECKPOINT).get("training")
    return None if state is None else int(state["step"])


@dataclass
class StyleGANWork:
    """One model's pairs (``job.source``): the pairs and their classes (``None`` without classes)."""

    pairs: list[TrainingPair]
    classes: list[int] | None = None
    class_names: list[str] | None = None


class StyleGANModels(OneModelPerJob):
    """The StyleGAN generator's part of a run (a :class:`~monai_singanseg.training.runner.ModelKind`): each job one
    model of one config, trained alone (``job.source``: a :class:`StyleGANWork`)."""

    def trained_steps(self, path: Path) -> int | None:
        return trained_steps(path)

    def fit(self, job: Job) -> None:
        work: StyleGANWork = job.source
        StyleGANTrainer(self.config, device=self.device, progress=self.progress).fit(
            work.pairs, job.path, resume=job.resume, classes=work.classes, class_names=work.class_names)


def train_stylegan_models(
    pairs: Sequence[TrainingPair],
    out: str | os.PathLike,
    config: StyleGANConfig,
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    device: str | None = None,
    resume: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Train one StyleGAN model on ``pairs`` into the checkpoint ``out``, through the runner.

    Args:
        pairs: the training pairs (resized to ``config.resolution`` when of another size).
        out: the checkpoint file.
        config: the model configuration.
        classes: a class index per pair, for a config with ``num_classes`` > 0.
        class_names: the name of each class index, stored in the checkpoint (``source["classes"]``).
        device: training device (``None``: GPU ``LOCAL_RANK`` when GPUs exist, else the CPU; ``"cuda"``: GPU
            ``LOCAL_RANK``).
        resume: continue the checkpoint if it exists (a finished one is left as it is); without it an existing
            checkpoint is an error, so nothing is overwritten.
        progress: show a progress bar.

    Returns:
        The summary of :func:`~monai_singanseg.training.runner.run_jobs`: per model its ``checkpoint``, ``pairs``,
        ``steps`` and ``status`` (a failure is counted in ``failed`` with its ``error``;
        :func:`~monai_singanseg.training.runner.check_summary` turns it into an error).

    Raises:
        SinGANSegInputError: no pairs, or an existing checkpoint without ``resume``.
    """
    if not pairs:
        raise SinGANSegInputError("no training pair given.")
    out = Path(out)
    if out.exists() and not resume:
        raise SinGANSegInputError(f"{out}: already exists; pass --resume to continue it, or choose another output.")
    work = StyleGANWork(list(pairs), None if classes is None else list(classes),
                        None if class_names is None else list(class_names))
    jobs = [Job(out.stem, out, work, {"checkpoint": str(out), "pairs": len(pairs)})]
    with distributed_ranks() as ranks:
        models = StyleGANModels(config, rank_device(device, ranks.local_rank), progress, resume)
        return run_jobs(jobs, models, ranks, extra={"design": config.design})


def datalist_classes(datalist: str | os.PathLike, section: str, key: str) -> tuple[list[int], list[str]]:
    """Each pair's class index and the class names (sorted; index = position) from ``key`` of every item of
    ``datalist[section]`` (a contrast, a protocol, a site), in the datalist's order.

    Raises:
        SinGANSegInputError: the datalist cannot be read, or an item lacks ``key`` (naming its image).
    """
    try:
        items = load_decathlon_datalist(str(datalist), is_segmentation=True, data_list_key=section)
    except Exception as err:
        raise SinGANSegInputError(f"{datalist}: cannot read section {section!r} of the datalist ({err}).") from err
    missing = [item for item in items if key not in item]
    if missing:
        raise SinGANSegInputError(f"{datalist}: item {missing[0].get('image')} has no {key!r} (--class-key); every "
                                  "item needs a class.")
    values = [str(item[key]) for item in items]
    names = sorted(set(values))
    return [names.index(v) for v in values], names
