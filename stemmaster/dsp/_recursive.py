"""Numba kernels for the few recursions that cannot be vectorised.

Each kernel takes and returns contiguous float64 1-D arrays and is compiled
once (``cache=True``), so only the first call in a fresh environment pays
the compile time.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def smooth_gain_db(target_db: np.ndarray, attack_coef: float, release_coef: float) -> np.ndarray:
    """One-pole attack/release smoothing of a gain curve in dB (``<= 0``), starting at 0 dB.

    While the target falls below the smoothed value (more reduction) the
    attack coefficient is used, otherwise the release one:
    ``y[n] = c * y[n-1] + (1 - c) * target[n]``.
    """
    n = target_db.shape[0]
    out = np.empty(n)
    y = 0.0
    for i in range(n):
        x = target_db[i]
        c = attack_coef if x < y else release_coef
        y = c * y + (1.0 - c) * x
        out[i] = y
    return out


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
