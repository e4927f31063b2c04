"""How many CPU threads a command should give torch when the user did not say: the cores other work leaves free."""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = ["BusyMachine", "available_cores", "busy_machine", "busy_machine_threads"]


class BusyMachine(NamedTuple):
    """A machine whose cores are partly busy, as one reading of its load saw it.

    Attributes:
        threads: the free cores (at least one): the threads torch should use.
        load: the one-minute load average the choice was made from.
        cores: the cores this process may use.
    """

    threads: int
    load: float
    cores: int


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the system says, else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def busy_machine(cores: int | None = None, load: float | None = None) -> BusyMachine | None:
    """The free cores of a machine whose cores are partly busy, with the load they were read from; ``None`` to leave
    torch's own choice.

    Torch starts one OpenMP thread per core; on cores busy with other work those threads wait for each other and a
    run crawls (17x slower measured on a busy 2-core machine, docs/threads.md). So when ``OMP_NUM_THREADS`` is not set
    and the one-minute load average says fewer cores are free than there are, use the free ones (at least one). The
    load is read once, so a message quoting :attr:`BusyMachine.load` quotes the number the choice was made from.

    Args:
        cores: CPU cores this process may use (default: :func:`available_cores`).
        load: runnable processes, averaged over a minute (default: ``os.getloadavg()[0]``).

    Returns:
        A :class:`BusyMachine` when fewer cores are free than ``cores``; ``None`` when every core is free, when the user
        set ``OMP_NUM_THREADS`` (their choice stands), or when the system gives no load average.
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
    return BusyMachine(max(1, free), float(load), cores) if free < cores else None


def busy_machine_threads(cores: int | None = None, load: float | None = None) -> int | None:
    """Threads for torch on a machine whose cores are partly busy, or ``None`` to leave torch's own choice: the
    ``threads`` of :func:`busy_machine` (same arguments)."""
    busy = busy_machine(cores, load)
    return None if busy is None else busy.threads
