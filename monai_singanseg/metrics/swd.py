"""Sliced Wasserstein distance between the patch distributions of a real and a synthetic image (weight-free).

Every ``patch_size``-wide patch of an image is a point of ``C * patch_size ** spatial_dims`` dimensions; the same
seeded random unit directions project the real and the synthetic patches to 1D, where the 1D Wasserstein
distance W1 compares them (the integral of the difference of the two empirical CDFs, as
``scipy.stats.wasserstein_distance`` computes it, batched over all directions in torch); the distance is the mean
over directions (and over the levels of an
average-pooled pyramid when ``levels > 1``). As in Karras et al., "Progressive Growing of GANs", ICLR 2018, but
between one real and one synthetic image, without a pretrained network. Works for 2D and 3D; 0 for identical
images, in the units of the inputs (``[-1, 1]`` images give distances in ``[0, 2 * sqrt(D)]``, in practice < 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["extract_patches", "sliced_wasserstein", "wasserstein_1d"]


def extract_patches(image: torch.Tensor, patch_size: int, stride: int = 1) -> torch.Tensor:
    """All patches of one image ``(C, *spatial)`` (2D or 3D) as rows ``(P, C * patch_size ** spatial_dims)``."""
    spatial_dims = image.ndim - 1
    patches = image
    for axis in range(1, spatial_dims + 1):
        patches = patches.unfold(axis, patch_size, stride)  # (C, *positions, *patch)
    positions = list(range(1, spatial_dims + 1))
    patches = patches.permute(*positions, 0, *range(spatial_dims + 1, 2 * spatial_dims + 1))
    return patches.reshape(-1, image.shape[0] * patch_size**spatial_dims)


def wasserstein_1d(u: torch.Tensor, v: torch.Tensor, presorted: bool = False) -> torch.Tensor:
    """W1 distance between the empirical distributions of the rows of ``u`` ``(K, P)`` and ``v`` ``(K, Q)``: ``(K,)``.

    ``W1 = integral |F_u(t) - F_v(t)| dt`` over the merged sorted values, the formula of
    ``scipy.stats.wasserstein_distance``, for ``K`` pairs at once; with equal counts it reduces to the mean absolute
    difference of the sorted values. ``presorted``: the rows are sorted already.
    """
    if not presorted:
        u, v = u.sort(dim=1).values, v.sort(dim=1).values
    if u.shape[1] == v.shape[1]:
        return (u - v).abs().mean(dim=1)
    merged = torch.cat([u, v], dim=1).sort(dim=1).values
    points = merged[:, :-1].contiguous()
    cdf_u = torch.searchsorted(u.contiguous(), points, right=True) / u.shape[1]
    cdf_v = torch.searchsorted(v.contiguous(), points, right=True) / v.shape[1]
    return ((cdf_u - cdf_v).abs() * merged.diff(dim=1)).sum(dim=1)


def sliced_wasserstein(
    real: torch.Tensor,
    fake: torch.Tensor,
    patch_size: int = 7,
    num_projections: int = 128,
    levels: int = 1,
    stride: int = 1,
    seed: int = 0,
) -> torch.Tensor:
    """Sliced Wasserstein distance between the patches of the real image and those of every synthetic image.

    Args:
        real: ``(1, C, *spatial)`` (or one real image per fake, ``(N, C, *spatial)``), 2D or 3D.
        fake: ``(N, C, *spatial)``; its spatial size may differ from the real one's.
        patch_size: patch width along every spatial axis.
        num_projections: random directions (seeded by ``seed``, the same for every image).
        levels: pyramid levels, each average-pooled by 2 from the previous; their distances are averaged.
        stride: step between patches (2 or more for large 3D volumes).
        seed: seed of the directions.

    Returns:
        ``(N,)`` distance per synthetic image, at least 0.

    Raises:
        ValueError: channel counts differ, or an image is smaller than a patch at some level.
    """
    if real.shape[1] != fake.shape[1] or real.ndim != fake.ndim or real.ndim not in (4, 5):
        raise ValueError(f"need 2D or 3D images (N, C, *spatial) of equal channels, got {tuple(real.shape)} and "
                         f"{tuple(fake.shape)}.")
    if real.shape[0] not in (1, fake.shape[0]):
        raise ValueError(f"real holds {real.shape[0]} images for {fake.shape[0]} fakes; give 1 or {fake.shape[0]}.")
    smallest = min(min(real.shape[2:]), min(fake.shape[2:])) // 2 ** (levels - 1)
    if smallest < patch_size:
        raise ValueError(f"images of {smallest} pixels at level {levels - 1} are smaller than a {patch_size} patch; "
                         "use fewer levels or a smaller patch.")
    spatial_dims = real.ndim - 2
    pool = getattr(F, f"avg_pool{spatial_dims}d")
    real, fake = real.detach().float().cpu(), fake.detach().float().cpu()
    generator = torch.Generator().manual_seed(seed)
    distances = torch.zeros(fake.shape[0], levels, dtype=torch.float64)
    for level in range(levels):
        if level:
            real, fake = pool(real, 2), pool(fake, 2)
        directions = torch.randn(real.shape[1] * patch_size**spatial_dims, num_projections, generator=generator)
        directions /= directions.norm(dim=0, keepdim=True)
        # (K, P) projections of every image, each row sorted once
        real_proj = [(extract_patches(r, patch_size, stride) @ directions).T.sort(dim=1).values for r in real]
        for i, image in enumerate(fake):
            fake_proj = (extract_patches(image, patch_size, stride) @ directions).T.sort(dim=1).values
            ref = real_proj[i if len(real_proj) > 1 else 0]
            distances[i, level] = wasserstein_1d(ref, fake_proj, presorted=True).double().mean()
    return distances.mean(dim=1).float()
