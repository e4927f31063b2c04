"""The one seed stream of both trainers: a 63-bit seed for unit ``index`` (a SinGAN-Seg scale, a diffusion step) of
a run seeded ``seed``.

Every unit starts its own random stream from these numbers, so the random state at a checkpoint is just ``(seed,
index)``: resuming needs no generator state, on any device. The same seed gives the same stream on the same kind of
device; CPU and CUDA generators differ, so a run resumed on another kind of device is an equally valid but not
bit-identical continuation.
"""

from __future__ import annotations

import hashlib

__all__ = ["DIFFUSION_SALT", "SINGANSEG_SALT", "scale_seed", "step_seed", "stream_seed"]

SINGANSEG_SALT = "monai-singanseg"
"""Salt of the SinGAN-Seg trainer's per-scale streams (changing it would change every seeded model)."""

DIFFUSION_SALT = "monai-singanseg-diffusion"
"""Salt of the diffusion trainer's per-step streams, apart from the scales' so that no two units share a stream."""


def stream_seed(salt: str, seed: int, index: int) -> int:
    """Seed ``[0, 2**63)`` of the random stream of unit ``index`` of a run seeded ``seed``: the first 8 bytes
    (little-endian) of the SHA-256 of ``"{salt}:{seed}:{index}"``, top bit cleared."""
    digest = hashlib.sha256(f"{salt}:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def scale_seed(seed: int, scale: int) -> int:
    """Seed of the random stream of pyramid level ``scale`` of a SinGAN-Seg model seeded ``seed``."""
    return stream_seed(SINGANSEG_SALT, seed, scale)


def step_seed(seed: int, step: int) -> int:
    """Seed of the random stream of optimisation step ``step`` (0-based) of a diffusion run seeded ``seed``."""
    return stream_seed(DIFFUSION_SALT, seed, step)
