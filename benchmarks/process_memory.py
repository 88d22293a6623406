"""Resident memory of processes for the benchmark scripts, read with psutil (one helper for all of them).

All values are in MB = 10^6 bytes. (benchmarks/concurrency.py results written before 2026-11-23 used
2^20-byte "MB", read from /proc; the difference is 4.9%.)
"""

from __future__ import annotations

import resource
import sys

import psutil


def rss_mb(pid: int | None = None, *, descendants: bool = False) -> float:
    """Resident set size of process ``pid`` (default: this process), in MB.

    With ``descendants=True`` the RSS of all its children, their children, ... is added (a server and its
    workers, a CLI and the processes it starts). A process that is gone (or a zombie) counts 0.0; a ``pid``
    that does not exist at all returns 0.0.
    """
    try:
        process = psutil.Process(pid)
        processes = [process, *process.children(recursive=True)] if descendants else [process]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for each in processes:
        try:
            total += each.memory_info().rss
        except psutil.NoSuchProcess:  # also psutil.ZombieProcess
            pass
    return total / 1e6


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (``getrusage`` ``ru_maxrss``; the kernel's VmHWM), in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6  # bytes on macOS, KB on Linux
