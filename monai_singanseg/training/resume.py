"""What both trainers check before resuming a run: that the data is the same, and which options differ.

A checkpoint never stores its training data; it stores :func:`fingerprint` of it, and a resumed run refuses other
data. The options come from the checkpoint's own config; :func:`config_differences` lists, as
:class:`ConfigDifference` records, every option the caller asked for that the checkpoint keeps otherwise, so a caller
can warn about them, refuse them or let some of them through by field path, without parsing text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

import torch

__all__ = ["UNSET", "ConfigDifference", "config_differences", "fingerprint"]


def fingerprint(real: torch.Tensor) -> str:
    """SHA-256 of the training tensor (any shape, as float32 on the CPU): identifies the data in a checkpoint
    without storing it."""
    return hashlib.sha256(real.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()


class _Unset:
    """A field that one of the two configs does not have (the coarse scales' overrides are a free-form dict)."""

    def __repr__(self) -> str:
        return repr("unset")  # the text users have seen in messages: 'unset', quoted


UNSET: Any = _Unset()
"""The value of a field one side lacks, shown as ``'unset'``."""


@dataclass(frozen=True)
class ConfigDifference:
    """One option that differs between a checkpoint's config and the one asked for.

    Attributes:
        field: dotted path of the option, e.g. ``"pyramid.max_size"`` (a top-level field has no dot).
        stored: the checkpoint's value, which a resumed run keeps (:data:`UNSET` where it has none).
        asked: the value asked for (:data:`UNSET` where the asked config has none).

    ``str()`` gives the line users see: ``"pyramid.max_size: 64 kept (asked 128)"``.
    """

    field: str
    stored: Any = UNSET
    asked: Any = UNSET

    def __str__(self) -> str:
        return f"{self.field}: {self.stored!r} kept (asked {self.asked!r})"


class _Config(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return out


def config_differences(stored: _Config, asked: _Config) -> list[ConfigDifference]:
    """Every field (sorted by path) where ``asked`` differs from ``stored``; works for any config with ``to_dict()``
    (SinGAN-Seg's, the diffusion model's).

    Example:
        >>> [str(d) for d in config_differences(stored, asked)]                    # doctest: +SKIP
        ['pyramid.max_size: 64 kept (asked 128)']
    """
    old, new = _flat(stored.to_dict()), _flat(asked.to_dict())
    # a key may be on one side only; a missing key and None count as equal, as they always have
    return [ConfigDifference(key, old.get(key, UNSET), new.get(key, UNSET)) for key in sorted(old.keys() | new.keys())
            if old.get(key) != new.get(key)]
