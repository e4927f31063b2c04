"""Weight-free refinement: exact per-channel histogram matching of a sample to the real image."""

from __future__ import annotations

import torch

__all__ = ["match_histograms"]


def match_histograms(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Give every channel of every sample the intensity histogram of the same channel of ``reference``.

    Each value is replaced by the reference quantile at its rank, ``q = (rank + 0.5) / n``, interpolated linearly
    between the reference's sorted values; the ordering of the sample's values (its structure) is kept and its
    sorted values become the reference's quantiles. Works for any number of spatial dimensions and any sizes (the
    sample and the reference need not match). Ties keep their input order.

    Args:
        image: samples ``(N, C, *spatial)``, any range (normally ``[-1, 1]``).
        reference: the real image ``(1, C, *spatial')`` or ``(C, *spatial')`` in the same units.

    Returns:
        ``(N, C, *spatial)`` with the input's dtype and device, values within the reference's range.

    Example:
        >>> matched = match_histograms(torch.rand(2, 1, 8, 8), torch.randn(1, 1, 16, 16))
        >>> torch.equal(matched[0].flatten().sort().values, matched[1].flatten().sort().values)
        True
    """
    if reference.ndim == image.ndim - 1:
        reference = reference.unsqueeze(0)
    if reference.shape[0] != 1 or reference.shape[1] != image.shape[1]:
        raise ValueError(
            f"reference must be (1, {image.shape[1]}, ...) for the samples, got {tuple(reference.shape)}."
        )
    n, c = image.shape[:2]
    flat = image.reshape(n, c, -1)
    size = flat.shape[-1]
    ref_sorted = reference.reshape(c, -1).to(torch.float64).sort(dim=-1).values  # (C, M)
    m = ref_sorted.shape[-1]
    ranks = flat.argsort(dim=-1, stable=True).argsort(dim=-1)  # (N, C, P): rank of every value
    # position of quantile (rank + 0.5) / P among the reference's M sorted values (numpy's linear method)
    position = ((ranks.to(torch.float64) + 0.5) / size * m - 0.5).clamp(0, m - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=m - 1)
    weight = position - low
    ref = ref_sorted.unsqueeze(0).expand(n, c, m)
    values = torch.gather(ref, -1, low) * (1 - weight) + torch.gather(ref, -1, high) * weight
    return values.to(image.dtype).reshape(image.shape)
