"""Process settings for a long-running, multi-threaded server (the Gradio app).

Gradio runs each request in a worker thread from a pool of up to 40. glibc's malloc gives each thread that
allocates its own arena (up to 8 per core) and keeps freed memory in it, so the server's resident memory
rose with every new worker thread that ran a recognition: +600 MB over 4 x 40 s of 20 concurrent clients,
still rising (`benchmarks/concurrency.py --rounds 4`, benchmarks/results/concurrency.md). Capping the arenas at 2
keeps it flat at the cost of some allocator contention, which the app's single recognition lock makes moot.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def limit_malloc_arenas(count: int | None = None) -> bool:
    """Cap glibc malloc arenas for this process (``mallopt(M_ARENA_MAX, count)``), as the environment
    variable ``MALLOC_ARENA_MAX`` would at start-up; call it before worker threads start.

    Args:
        count: arenas to allow; None reads ``FER_HF_MALLOC_ARENAS`` (default 2). 0 leaves malloc as it is.
    Returns:
        True if the cap was applied; False when ``count`` is 0, when ``MALLOC_ARENA_MAX`` is already set
        (the user's choice wins) or when the C library is not glibc (musl, macOS, Windows: nothing to do).
    Raises:
        ValueError: for a negative count or a ``FER_HF_MALLOC_ARENAS`` that is not an integer.
    """
    if count is None:
        raw = os.environ.get("FER_HF_MALLOC_ARENAS", "2")
        try:
            count = int(raw)
        except ValueError:
            raise ValueError(f"FER_HF_MALLOC_ARENAS must be an integer (0 = glibc's default), got {raw!r}") from None
    if count < 0:
        raise ValueError(f"malloc arena count must be >= 0, got {count}")
    if count == 0 or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):
        return False
    applied = bool(mallopt(_M_ARENA_MAX, count))
    if applied:
        logger.info("glibc malloc arenas capped at %d (FER_HF_MALLOC_ARENAS)", count)
    return applied
