"""How many CPU threads a command should give torch when the user did not say: the cores other work leaves free."""

from __future__ import annotations

import os

__all__ = ["available_cores", "busy_machine_threads"]


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the system says, else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def busy_machine_threads(cores: int | None = None, load: float | None = None) -> int | None:
    """Threads for torch on a machine whose cores are partly busy, or ``None`` to leave torch's own choice.

    Torch starts one OpenMP thread per core; on cores busy with other work those threads wait for each other and a
    run crawls (17x slower measured on a busy 2-core machine, docs/threads.md). So when ``OMP_NUM_THREADS`` is not set
    and the one-minute load average says fewer cores are free than there are, use the free ones (at least one).

    Args:
        cores: CPU cores this process may use (default: :func:`available_cores`).
        load: runnable processes, averaged over a minute (default: ``os.getloadavg()[0]``).

    Returns:
        The free cores when that is fewer than ``cores``; ``None`` when every core is free, when the user set
        ``OMP_NUM_THREADS`` (their choice stands), or when the system gives no load average.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = available_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):  # no load average on this system
            return None
    free = cores - round(load)
    return max(1, free) if free < cores else None
