"""Checking a device name against this machine once, where it is chosen, instead of failing at first use."""

from __future__ import annotations

import torch

from monai_singanseg.errors import SinGANSegInputError

__all__ = ["check_device"]


def check_device(device: str | torch.device, option: str = "device") -> torch.device:
    """``device`` as a :class:`torch.device`, refused with one line unless torch knows it and this machine has it.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (or a :class:`torch.device`).
        option: how the caller names the setting in messages (``--device`` on the command line).

    Raises:
        SinGANSegInputError: not a device name, a CUDA device on a machine without one (or without that many), or a
            device type other than cpu and cuda.
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise SinGANSegInputError(f"{option} {device}: not a device name (cpu, cuda, cuda:N).") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SinGANSegInputError(f"{option} {device}: this machine has no CUDA GPU (torch {torch.__version__}).")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise SinGANSegInputError(f"{option} {device}: only {torch.cuda.device_count()} GPU(s) here.")
    if resolved.type not in ("cpu", "cuda"):
        raise SinGANSegInputError(f"{option} {device}: only cpu and cuda are supported.")
    return resolved
