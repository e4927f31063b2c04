"""A bank of generators (SinGAN-Seg or diffusion): checkpoints found by name, loaded lazily, a bounded number kept
in memory."""

from __future__ import annotations

import numbers
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import torch

from monai_singanseg.devices import check_device
from monai_singanseg.errors import SinGANSegInputError
from monai_singanseg.generators import PairGenerator, checkpoint_kind, load_generator
from monai_singanseg.io import model_name

__all__ = ["ModelBank", "model_name"]

ModelSource = Union[str, os.PathLike, PairGenerator, Sequence[Union[str, os.PathLike, PairGenerator]], "ModelBank"]


class ModelBank:
    """Models by name, loaded on first use, at most ``cache_size`` kept (least recently used dropped).

    Args:
        models: a checkpoint path, a folder of ``*.pt`` checkpoints, loaded models of any kind
            (:class:`~monai_singanseg.generator_protocol.PairGenerator`: :class:`~monai_singanseg.networks.SinGANSeg`,
            :class:`~monai_singanseg.diffusion.PairDiffusion`), or a list mixing these.
        cache_size: loaded models kept in memory at once (loaded objects passed in are always kept).
        device: where loaded models run.

    The bank pickles without its loaded models, so a transform holding it can go to DataLoader workers.
    """

    def __init__(self, models: ModelSource, cache_size: int = 8, device: str | torch.device = "cpu") -> None:
        # checked when the transform is built, not when the first sample (maybe in a worker, hours later) needs it
        device = check_device(device)
        if isinstance(cache_size, bool) or not isinstance(cache_size, numbers.Real) or int(cache_size) != cache_size \
                or cache_size < 1:  # max(1, -1) quietly kept one model where the caller may have meant "no limit"
            raise ValueError(f"cache_size must be a whole number of at least 1 (checkpoints kept loaded), got "
                             f"{cache_size!r}.")
        if isinstance(models, ModelBank):
            models = list(models._paths.values()) + list(models._fixed.values())
        items = list(models) if isinstance(models, (list, tuple)) else [models]
        self._paths: dict[str, Path] = {}
        self._fixed: dict[str, PairGenerator] = {}
        for item in items:
            if isinstance(item, PairGenerator):  # a loaded model of any registered kind
                self._fixed[f"model_{len(self._fixed)}"] = item.to(device).eval()
                continue
            path = Path(item)
            if path.is_dir():
                found = sorted(path.glob("*.pt"))
                if not found:
                    raise SinGANSegInputError(f"{path}: folder holds no *.pt checkpoint.")
                self._paths.update({model_name(p): p for p in found})
            elif path.is_file():
                self._paths[model_name(path)] = path
            else:
                raise SinGANSegInputError(f"{path}: model checkpoint or folder not found.")
        if not self._paths and not self._fixed:
            raise SinGANSegInputError("no model given.")
        for path in self._paths.values():  # a foreign *.pt (say a UNet's) must not surface hours into a training
            checkpoint_kind(path)  # about 20 ms a file
        self._names = sorted(list(self._paths) + list(self._fixed))  # fixed after construction; read per sample
        self.cache_size = int(cache_size)
        self.device = torch.device(device)
        self._cache: OrderedDict[str, PairGenerator] = OrderedDict()

    @property
    def names(self) -> list[str]:
        """Every model's name, sorted (checkpoints by file stem, loaded objects as ``model_i``)."""
        return self._names

    def __len__(self) -> int:
        return len(self._paths) + len(self._fixed)

    def __contains__(self, name: str) -> bool:
        return name in self._paths or name in self._fixed

    def path(self, name: str) -> Path | None:
        return self._paths.get(name)

    def get(self, name: str) -> PairGenerator:
        """The model called ``name``, loading it (and dropping the least recently used one) when needed."""
        if name in self._fixed:
            return self._fixed[name]
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        if name not in self._paths:
            raise KeyError(name)
        model = load_generator(self._paths[name], device=self.device, require_complete=True)
        self._cache[name] = model
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return model

    @property
    def loaded(self) -> list[str]:
        """Names of the checkpoints in memory now, least recently used first."""
        return list(self._cache)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()  # workers load what they need themselves
        return state
