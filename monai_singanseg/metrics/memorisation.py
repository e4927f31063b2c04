"""Memorisation check: is a synthetic sample closer to the training image than samples are to one another?"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["MemorisationResult", "memorisation_check"]


@dataclass
class MemorisationResult:
    """Outcome of :func:`memorisation_check`.

    Attributes:
        distance_to_real: ``(N,)`` RMS difference of every sample to the training image (in the inputs' units).
        median_pairwise: median RMS difference between two samples: the spread of the samples.
        ratio: ``(N,)`` ``distance_to_real / median_pairwise`` (``inf`` when the samples do not differ at all).
        flagged: ``(N,)`` True where ``distance_to_real <= fraction * median_pairwise``: a likely copy.
        fraction: the threshold used.
    """

    distance_to_real: torch.Tensor
    median_pairwise: float
    ratio: torch.Tensor
    flagged: torch.Tensor
    fraction: float

    def to_dict(self) -> dict:
        """JSON-ready summary: per-sample lists, the spread, the number flagged."""
        return {
            "distance_to_real": [round(float(v), 6) for v in self.distance_to_real],
            "median_pairwise": round(self.median_pairwise, 6),
            "ratio": [round(float(v), 6) if math.isfinite(float(v)) else None for v in self.ratio],
            "min_ratio": round(float(self.ratio.min()), 6) if math.isfinite(float(self.ratio.min())) else None,
            "flagged": [int(i) for i in torch.nonzero(self.flagged).flatten()],
            "num_flagged": int(self.flagged.sum()),
            "fraction": self.fraction,
        }


def memorisation_check(real: torch.Tensor, samples: torch.Tensor, fraction: float = 0.5) -> MemorisationResult:
    """Compare each sample's distance to the training image with the spread among samples (``torch.cdist``).

    If samples were the training image plus independent variations, a sample would lie about ``1 / sqrt(2)`` (0.71)
    of the spread from the training image; a sample much closer than that (default: under half the median pairwise
    distance) reproduces the training image rather than varying it. Use image channels only (a mask copied from the
    training mask with a new image is not a copy of the patient's image).

    Args:
        real: the training image ``(1, C, *spatial)``.
        samples: ``(N, C, *spatial)`` of the same shape, ``N >= 2``.
        fraction: flag samples closer to the training image than this share of the median pairwise distance.
    """
    if samples.shape[0] < 2 or tuple(real.shape[1:]) != tuple(samples.shape[1:]):
        raise ValueError(f"need >= 2 samples shaped like the real image {tuple(real.shape[1:])}, "
                         f"got {tuple(samples.shape)}.")
    flat = samples.detach().double().reshape(samples.shape[0], -1)
    scale = math.sqrt(flat.shape[1])  # Euclidean distance -> RMS difference per element
    to_real = torch.cdist(flat, real.detach().double().reshape(1, -1))[:, 0] / scale
    pairwise = torch.pdist(flat) / scale
    median = float(pairwise.median())
    ratio = to_real / median if median > 0 else torch.where(to_real > 0, math.inf, 0.0).double()
    return MemorisationResult(to_real.float(), median, ratio.float(), to_real <= fraction * median, fraction)
