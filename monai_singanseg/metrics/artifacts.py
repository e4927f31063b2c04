"""Tell-tale artifacts of synthetic pairs: a frame along the border, content pinned in place, and blur.

A segmentation network can learn such artifacts instead of anatomy, so each is measured against the same figure on
the real image (docs/quality.md):

- **frame**: the mean intensity (and foreground share) of each thin ring of pixels at distance ``d`` from the border,
  averaged over the samples; a ring darker or brighter than its two neighbours is a frame. The zero padding of
  SinGAN's generators leaves one a pixel or two inside the border.
- **pinned content**: pixels that are foreground in (nearly) every sample, or whose intensity hardly changes between
  samples, while the rest moves; zero padding makes the corners the one place a generator can recognise, and the
  same content sits there in every sample.
- **sharpness**: the RMS of the Laplacian (the finest detail), samples against the real image at the real image's
  own size; below 1 the samples are blurrier, above 1 noisier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from monai_singanseg.pyramid import resize

__all__ = [
    "border_distance",
    "frame_score",
    "max_rings",
    "pinned_content",
    "pinned_maps",
    "ring_means",
    "sharpness",
    "sharpness_ratio",
]


def border_distance(shape: Sequence[int], device: torch.device | str | None = None) -> torch.Tensor:
    """Distance in pixels of every pixel of a grid ``shape`` to its nearest face: 0 on the border, ``(*shape)``."""
    distance = None
    for axis, size in enumerate(shape):
        index = torch.arange(size, device=device)
        along = torch.minimum(index, size - 1 - index).reshape([-1 if a == axis else 1 for a in range(len(shape))])
        distance = along if distance is None else torch.minimum(distance, along)
    return distance.expand(*shape)


def ring_means(x: torch.Tensor, depth: int) -> torch.Tensor:
    """Mean of ``x`` ``(N, C, *spatial)`` over each ring of pixels at border distance ``0 .. depth - 1``:
    ``(N, C, depth)``."""
    if depth > max_rings(x.shape[2:]):
        raise ValueError(f"{depth} rings do not fit an image of shape {tuple(x.shape[2:])}.")
    distance = border_distance(x.shape[2:], x.device).reshape(-1)
    keep = distance < depth  # sums by ring: no (pixels x rings) matrix, which a 3D volume would make large
    flat = x.reshape(*x.shape[:2], -1).float()[..., keep]
    sums = flat.new_zeros(*x.shape[:2], depth).index_add_(2, distance[keep], flat)
    return sums / torch.bincount(distance[keep], minlength=depth).to(flat.dtype)


def max_rings(shape: Sequence[int]) -> int:
    """How many rings of pixels a grid ``shape`` has, from its border to its centre."""
    return (min(int(s) for s in shape) + 1) // 2


def _ridges(profile: torch.Tensor) -> torch.Tensor:
    """How much each ring stands out of its neighbours, ``(..., depth - 1)`` from ring means ``(..., depth)``: ring 0
    against ring 1, ring ``d`` against the mean of rings ``d - 1`` and ``d + 1``."""
    outer = profile[..., :1] - profile[..., 1:2]
    inner = profile[..., 1:-1] - 0.5 * (profile[..., :-2] + profile[..., 2:])
    return torch.cat([outer, inner], dim=-1)


def frame_score(real: torch.Tensor, samples: torch.Tensor, image_channels: int, depth: int = 6,
                foreground: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """A frame along the border of the samples, against the same figure of the real image.

    For each ring ``d < depth`` the *ridge* is how much its mean stands out of its two neighbouring rings (ring 0:
    of ring 1). The samples' ridges are taken on the mean over samples (a systematic frame adds up, sample noise
    cancels), the real image's on itself, both in units of the real image's standard deviation per channel.

    Args:
        real: the training pair ``(1, C, *spatial)``, image channels first.
        samples: synthetic pairs ``(N, C, *spatial)`` of the same layout and size.
        image_channels: how many of the ``C`` channels are image channels.
        depth: rings measured from the border inwards (the generators' padding is 5 per side by default).
        foreground: optional 0/1 foreground of the real mask ``(1, 1, *spatial)`` and of the samples' masks
            ``(N, 1, *spatial)``, for the same figure on the foreground share (in share units, not normalised).

    Returns:
        ``{"intensity": largest |sample ridge - real ridge| over rings and channels, "ring": where it is,
        "sample_ridges": list per ring (channel of the largest), "real_ridges": ..., "real_spread": RMS of the real
        image's ridges over rings deeper inside (how much neighbouring rings differ in this image anyway),
        "mask": the same largest difference on the foreground share or None}``.
    """
    spatial = samples.shape[2:]
    rings = max_rings(spatial)
    if depth + 1 > rings:
        raise ValueError(f"frame_score needs images of more than {2 * depth + 1} pixels per axis, got "
                         f"{tuple(spatial)}.")
    scale = real[:, :image_channels].float().reshape(image_channels, -1).std(dim=1).clamp_min(1e-6)
    real_profile = ring_means(real[:, :image_channels], rings)[0] / scale[:, None]  # (C, rings)
    sample_profile = ring_means(samples[:, :image_channels], depth + 1).mean(0) / scale[:, None]
    real_ridges, sample_ridges = _ridges(real_profile), _ridges(sample_profile)
    gap = (sample_ridges - real_ridges[:, :depth]).abs()  # (C, depth)
    channel, ring = divmod(int(gap.argmax()), depth)
    deeper = real_ridges[:, depth:max(depth + 1, rings // 2)]  # the central rings are a few pixels each: left out
    mask_gap = None
    if foreground is not None:
        real_fg, sample_fg = foreground
        fg_real = _ridges(ring_means(real_fg, depth + 1)[0])
        fg_samples = _ridges(ring_means(sample_fg, depth + 1).mean(0))
        mask_gap = round(float((fg_samples - fg_real).abs().max()), 6)
    return {
        "intensity": round(float(gap.max()), 6),
        "ring": ring,
        "sample_ridges": [round(float(v), 6) for v in sample_ridges[channel]],
        "real_ridges": [round(float(v), 6) for v in real_ridges[channel, :depth]],
        "real_spread": round(float(deeper.pow(2).mean().sqrt()), 6) if deeper.numel() else None,
        "mask": mask_gap,
    }


def pinned_maps(samples: torch.Tensor, image_channels: int, sample_foreground: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The foreground frequency ``(*spatial)`` (share of samples in which a pixel is foreground) and the intensity
    standard deviation over samples ``(*spatial)`` (mean over image channels) of ``samples`` ``(N, C, *spatial)``
    with foreground ``(N, 1, *spatial)``."""
    frequency = sample_foreground.float().mean(0)[0]
    spread = samples[:, :image_channels].float().std(dim=0, correction=0).mean(0)
    return frequency, spread


def _corners(shape: Sequence[int], device) -> torch.Tensor:
    """True in the ``2 ** D`` corner boxes whose sides are an eighth of the image's (at least 2 pixels)."""
    inside = None
    for axis, size in enumerate(shape):
        side = max(size // 8, 2)
        index = torch.arange(size, device=device)
        near = ((index < side) | (index >= size - side)).reshape([-1 if a == axis else 1 for a in range(len(shape))])
        inside = near if inside is None else inside & near
    return inside.expand(*shape)


def pinned_content(real: torch.Tensor, samples: torch.Tensor, image_channels: int, sample_foreground: torch.Tensor,
                   real_foreground: torch.Tensor, frequency: float = 0.9, frozen: float = 0.05) -> dict:
    """Shares of pixels whose content is the same in (nearly) every sample, over the whole image and in its corners.

    Args:
        real: the training pair ``(1, C, *spatial)``.
        samples: synthetic pairs ``(N, C, *spatial)``; 64 make the frequencies steady, 16 show the corners.
        image_channels: how many of the ``C`` channels are image channels.
        sample_foreground: the samples' foreground ``(N, 1, *spatial)`` (0/1).
        real_foreground: the real foreground ``(1, 1, *spatial)`` (0/1): its share is what a pixel's frequency tends
            to when the layout is free.
        frequency: a pixel is *pinned foreground* when it is foreground in at least this share of the samples.
        frozen: a pixel is *frozen* when its intensity's standard deviation over samples is under this share of the
            real image's standard deviation.

    Returns:
        ``{"pinned_foreground": share of all pixels, "pinned_foreground_corners": share of corner pixels,
        "frozen": ..., "frozen_corners": ..., "real_foreground": the real mask's share}``.
    """
    freq, spread = pinned_maps(samples, image_channels, sample_foreground)
    real_sd = float(real[:, :image_channels].float().std())
    corners = _corners(freq.shape, freq.device)
    pinned, still = freq >= frequency, spread < frozen * max(real_sd, 1e-6)
    return {
        "pinned_foreground": round(float(pinned.float().mean()), 6),
        "pinned_foreground_corners": round(float(pinned[corners].float().mean()), 6),
        "frozen": round(float(still.float().mean()), 6),
        "frozen_corners": round(float(still[corners].float().mean()), 6),
        "real_foreground": round(float(real_foreground.float().mean()), 6),
    }


def sharpness(x: torch.Tensor) -> torch.Tensor:
    """RMS of the discrete Laplacian of each image ``(N, C, *spatial)`` over its inner pixels, mean over channels:
    ``(N,)``. The finest detail an image has: grain, edges."""
    dims = x.ndim - 2
    kernel = torch.zeros((3,) * dims, dtype=torch.float32, device=x.device)
    centre = (1,) * dims
    kernel[centre] = -2.0 * dims
    for axis in range(dims):
        for side in (0, 2):
            kernel[tuple(side if a == axis else 1 for a in range(dims))] = 1.0
    channels = x.shape[1]
    weight = kernel.expand(channels, 1, *kernel.shape)
    conv = F.conv2d if dims == 2 else F.conv3d
    laplacian = conv(x.float(), weight, groups=channels)
    return laplacian.pow(2).mean(dim=tuple(range(2, x.ndim))).sqrt().mean(1)


def sharpness_ratio(real_image: torch.Tensor, sample_images: torch.Tensor) -> dict:
    """Sharpness of the samples against the real image at the real image's own size.

    Samples smaller than the real image (a model trained below the image's size) are resized up to it first, as a
    user would to put them beside real images, so their missing grain shows.

    Args:
        real_image: image channels of the real image ``(1, C, *spatial)`` at its own size.
        sample_images: image channels of the samples ``(N, C, *spatial')``.

    Returns:
        ``{"ratio": mean sample sharpness / real sharpness (1 = as sharp), "real": ..., "samples": ...,
        "shape": the size compared at}``.
    """
    shape = tuple(real_image.shape[2:])
    if tuple(sample_images.shape[2:]) != shape:
        sample_images = resize(sample_images.float(), shape)
    real_value = float(sharpness(real_image)[0])
    sample_value = float(sharpness(sample_images).mean())
    return {"ratio": round(sample_value / max(real_value, 1e-12), 6), "real": round(real_value, 6),
            "samples": round(sample_value, 6), "shape": list(shape)}
