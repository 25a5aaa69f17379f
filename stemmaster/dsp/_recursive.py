"""Numba kernels for the few recursions that cannot be vectorised.

Each kernel takes and returns contiguous float64 1-D arrays and is compiled
once (``cache=True``), so only the first call in a fresh environment pays
the compile time.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def release_under(required: np.ndarray, rise: float) -> np.ndarray:
    """``g[n] = min(required[n], g[n-1] + (1 - g[n-1]) * rise)`` with ``g[-1] = 1``.

    A linear gain that drops at once to whatever is required and rises back
    toward 1 along a one-pole curve, never above the requirement.
    """
    n = required.shape[0]
    out = np.empty(n)
    g = 1.0
    for i in range(n):
        g = g + (1.0 - g) * rise
        r = required[i]
        if r < g:
            g = r
        out[i] = g
    return out


@numba.njit(cache=True, nogil=True)
def moving_average_past(x: np.ndarray, length: int) -> np.ndarray:
    """``y[n] = mean(x[n-length+1 .. n])``, with ``x`` taken as ``x[0]`` before the start.

    A running sum of ``1 - x``; whenever the window holds only exact ones the
    sum is reset to 0, so idle stretches come out exactly 1 whatever
    rounding the busy stretches before them left behind.
    """
    n = x.shape[0]
    out = np.empty(n)
    pad = 1.0 - x[0]
    total = pad * length  # the window before sample 0 holds ``length`` copies of x[0]
    busy = length if pad != 0.0 else 0  # how many non-idle samples the window holds
    for i in range(n):
        d_in = 1.0 - x[i]
        d_out = pad if i < length else 1.0 - x[i - length]
        total += d_in - d_out
        busy += int(d_in != 0.0) - int(d_out != 0.0)
        if busy == 0:
            total = 0.0
        out[i] = 1.0 - total / length
    return out


@numba.njit(cache=True, nogil=True)
def window_min(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """``y[n] = min(x[n-before .. n+after])``, with ``x`` taken as 1 outside ``[0, len(x))``.

    A monotonic queue (each sample enters and leaves once, so the cost does
    not grow with the window) in a ring buffer of the window's size.
    """
    n = x.shape[0]
    size = before + after + 2  # the window, plus the newest sample before the oldest leaves
    idx = np.empty(size, dtype=np.int64)
    val = np.empty(size)
    out = np.empty(n)
    head = 0  # positions count up forever; slots are position % size
    tail = 0
    for j in range(-before, n + after):
        v = x[j] if 0 <= j < n else 1.0
        while tail > head and val[(tail - 1) % size] >= v:
            tail -= 1
        idx[tail % size] = j
        val[tail % size] = v
        tail += 1
        o = j - after
        if o >= 0:
            while idx[head % size] < o - before:
                head += 1
            out[o] = val[head % size]
    return out
