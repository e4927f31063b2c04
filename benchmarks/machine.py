"""What every benchmark record says about where it ran, and the process's resident memory.

Shared by the ``bench_*.py`` scripts, so that a figure can always be traced to its CPU (records from different CPUs are
comparable in distribution only: GAN training amplifies rounding differences) and every peak-memory figure is read
the same way.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path

__all__ = ["cpu_name", "machine", "peak_rss_mib", "reset_peak_rss"]


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Date and time of day, torch version and threads, CPU model and count, and the 1-minute load average (a busy machine
    makes timings slower: read it before trusting one)."""
    import torch  # here, so that importing this module stays cheap for scripts that run torch in child processes

    return {"date": time.strftime("%Y-%m-%d"), "time": time.strftime("%H:%M"), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": cpu_name(), "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)}


def reset_peak_rss() -> None:
    """Reset the process's peak resident set (Linux ``VmHWM``), so the next reading is the peak from now on."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mib(field: str = "VmHWM") -> float:
    """Resident memory of this process in MiB: ``VmHWM``, the peak since :func:`reset_peak_rss` (else since it
    started; ``ru_maxrss`` where there is no ``/proc``), or ``VmRSS``, now."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
