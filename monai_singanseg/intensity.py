"""Mapping between the image's own units and the networks' ``[-1, 1]``, and between labels and mask channels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["IntensityMapping", "LabelEncoding"]


@dataclass
class IntensityMapping:
    """Per-channel linear map from ``[lower, upper]`` (the image's units) to ``[-1, 1]``; stored in checkpoints.

    Args:
        lower: per image channel, the value sent to -1.
        upper: per image channel, the value sent to +1.
    """

    lower: list[float]
    upper: list[float]

    @classmethod
    def fit(cls, image: torch.Tensor, percentiles: Sequence[float] | None = None) -> IntensityMapping:
        """Fit to ``image`` ``(C, *spatial)``: per-channel min/max, or the given ``(low, high)`` percentiles."""
        flat = image.detach().reshape(image.shape[0], -1).double()
        if percentiles is None:
            lower, upper = flat.min(dim=1).values, flat.max(dim=1).values
        else:
            q = torch.tensor([percentiles[0] / 100.0, percentiles[1] / 100.0], dtype=flat.dtype)
            lower, upper = torch.quantile(flat, q, dim=1)
        return cls([float(v) for v in lower], [float(v) for v in upper])

    def _bounds(self, x: torch.Tensor, channel_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        shape = [1] * x.ndim
        shape[channel_dim] = -1
        lo = torch.tensor(self.lower, dtype=x.dtype, device=x.device).reshape(shape)
        hi = torch.tensor(self.upper, dtype=x.dtype, device=x.device).reshape(shape)
        return lo, torch.where(hi > lo, hi - lo, torch.ones_like(hi))

    def normalize(self, x: torch.Tensor, channel_dim: int = 0) -> torch.Tensor:
        """Image units → ``[-1, 1]`` (values outside ``[lower, upper]`` are clipped)."""
        lo, span = self._bounds(x, channel_dim)
        return ((x - lo) / span * 2.0 - 1.0).clamp(-1.0, 1.0)

    def denormalize(self, x: torch.Tensor, channel_dim: int = 0) -> torch.Tensor:
        """``[-1, 1]`` → image units."""
        lo, span = self._bounds(x, channel_dim)
        return (x.clamp(-1.0, 1.0) + 1.0) / 2.0 * span + lo

    def to_dict(self) -> dict[str, Any]:
        return {"lower": list(self.lower), "upper": list(self.upper)}


@dataclass
class LabelEncoding:
    """How a label becomes mask channels in ``[-1, 1]`` and back.

    A binary label (``one_hot=False``) is one channel: ``+1`` where the label equals ``values[1]``, ``-1`` elsewhere;
    decoding thresholds at 0, the middle of the range. A multi-class label (``one_hot=True``) is one channel per
    class; decoding takes the argmax. ``values`` are the label's own values (background first), so decoded labels
    come back with the values the user had (for example 0/255 PNG masks).
    """

    values: list[float]
    one_hot: bool = False

    @property
    def channels(self) -> int:
        return len(self.values) if self.one_hot else 1

    def encode(self, label: torch.Tensor) -> torch.Tensor:
        """Label ``(1, *spatial)`` of values in ``values`` → ``(channels, *spatial)`` in ``[-1, 1]``."""
        if self.one_hot:
            values = torch.tensor(self.values, dtype=label.dtype, device=label.device)
            shape = [-1] + [1] * (label.ndim - 1)
            return (label == values.reshape(shape)).float() * 2.0 - 1.0
        return (label[:1] == self.values[1]).float() * 2.0 - 1.0

    def encode_indices(self, index: torch.Tensor) -> torch.Tensor:
        """Class indices ``(1, *spatial)`` (0 = background; for a binary label, any nonzero is foreground) ->
        ``(channels, *spatial)`` in ``[-1, 1]``: the inverse of :meth:`indices`, whatever values the label holds."""
        if self.one_hot:
            classes = torch.arange(len(self.values), device=index.device).reshape([-1] + [1] * (index.ndim - 1))
            return (index[:1].long() == classes).float() * 2.0 - 1.0
        return (index[:1] != 0).float() * 2.0 - 1.0

    def indices(self, mask: torch.Tensor, channel_dim: int = 0) -> torch.Tensor:
        """Mask channels in ``[-1, 1]`` → class indices (0 = background), one channel."""
        if self.one_hot:
            return mask.argmax(dim=channel_dim, keepdim=True)
        return (mask > 0.0).long()

    def decode(self, mask: torch.Tensor, channel_dim: int = 0) -> torch.Tensor:
        """Mask channels in ``[-1, 1]`` → label with one channel, holding the original values."""
        values = torch.tensor(self.values, dtype=torch.float32, device=mask.device)
        return values[self.indices(mask, channel_dim)]

    def to_dict(self) -> dict[str, Any]:
        return {"values": list(self.values), "one_hot": self.one_hot}
