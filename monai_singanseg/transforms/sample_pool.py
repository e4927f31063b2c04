"""Pools of generated samples: made in batches, served one per call, topped up once half is gone.

Batching makes generation cheaper per sample; serving a pooled sample several times (``pool_refresh < 1``) cheaper
still. One :class:`SamplePool` holds the new pairs of every model and start scale (or output size), another the
inpainting redraws of recent inputs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import torch

__all__ = ["PooledSample", "SamplePool"]


@dataclass
class PooledSample:
    """One pooled sample: the generator's raw output, and what it became at each output shape it was served at.

    Attributes:
        raw: ``(1, C, *spatial)`` in ``[-1, 1]``, one item of the generator's batch.
        finished: per output spatial shape, whatever the caller made of ``raw`` there (for new pairs: the image in
            ``[-1, 1]`` and the label indices), so a sample served again at the same shape skips that work.
    """

    raw: torch.Tensor
    finished: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


class SamplePool:
    """Samples by key (say, model name and start scale), served by a drawn position.

    Args:
        size: samples per key; a key's pool is filled to ``size`` in one batch whenever ``size // 2`` or fewer are
            left.
        max_keys: keys kept, least recently served dropped first (``None``: all). Bounds pools of per-input
            samples (inpainting redraws), whose keys never repeat once an input is gone.

    The pool holds state besides the random draws: two transforms given the same draws serve the same samples only
    when their pools went through the same calls (``set_random_state`` empties it through :meth:`clear`).
    """

    def __init__(self, size: int, max_keys: int | None = None) -> None:
        self.size = int(size)
        self.max_keys = max_keys
        self._pools: OrderedDict[Hashable, list[PooledSample]] = OrderedDict()

    def __len__(self) -> int:
        """Keys held."""
        return len(self._pools)

    def clear(self) -> None:
        """Drop every sample (they came from an old random stream)."""
        self._pools.clear()

    def serve(
        self, key: Hashable, make: Callable[[int], torch.Tensor], position: float, drop: bool
    ) -> PooledSample:
        """One sample of ``key``'s pool.

        Args:
            key: which pool.
            make: ``make(num)``: ``num`` new samples ``(num, C, *spatial)``, called when the pool runs low.
            position: in ``[0, 1)``: where the served sample sits (index ``int(position * len(pool))``).
            drop: the served sample leaves the pool.

        Returns:
            The pooled sample (shared with the pool unless dropped: callers must not change it in place).
        """
        pool = self._pools.setdefault(key, [])
        self._pools.move_to_end(key)
        while self.max_keys is not None and len(self._pools) > self.max_keys:
            self._pools.popitem(last=False)
        if len(pool) <= self.size // 2:
            pool.extend(PooledSample(x) for x in make(self.size - len(pool)).split(1))
        index = min(int(position * len(pool)), len(pool) - 1)
        return pool.pop(index) if drop else pool[index]
