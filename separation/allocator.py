"""Keep freed activation memory for reuse while separating (glibc malloc tuning; a no-op elsewhere).

A Demucs segment allocates and frees dozens of 10-90 MB tensors. With glibc's
defaults each of them is a fresh ``mmap``: the kernel page-faults and zeroes
every page again, about 0.3 s of system time per htdemucs segment plus the
cache misses, and each worker thread gets its own arena. While a separation
runs, :func:`reuse_freed_memory` raises the mmap and trim thresholds and uses
one arena, so freed blocks are reused: measured 7-8 % faster per segment on
this machine, and a lower peak RSS. Afterwards the defaults' behaviour is
restored and free memory is handed back to the OS (``malloc_trim``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import threading

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_DEFAULT_THRESHOLD = 128 * 1024  # glibc's initial mmap and trim thresholds
_lock = threading.Lock()
_depth = 0


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 - glibc (musl has no mallopt)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def reuse_freed_memory():
    """While inside, freed large blocks stay in the (single) heap for reuse; nestable and thread-safe."""
    global _depth
    libc = _libc()
    if libc is None:
        yield
        return
    with _lock:
        if _depth == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
            libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
            libc.mallopt(_M_ARENA_MAX, 1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(_M_ARENA_MAX, 0)
                libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_THRESHOLD)
                libc.malloc_trim(0)
