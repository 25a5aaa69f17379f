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
def _ring_mask(size: int) -> int:
    """``2**k - 1`` for the smallest ``2**k >= size``: ring buffers index with ``& mask`` (a
    modulo costs a division per sample)."""
    m = 1
    while m < size:
        m *= 2
    return m - 1


@numba.njit(cache=True, nogil=True)
def window_min(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """``y[n] = min(x[n-before .. n+after])``, with ``x`` taken as 1 outside ``[0, len(x))``.

    A monotonic queue (each sample enters and leaves once, so the cost does
    not grow with the window) in a ring buffer a power of two long.
    """
    n = x.shape[0]
    mask = _ring_mask(before + after + 2)  # the window, plus the newest sample before the oldest leaves
    idx = np.empty(mask + 1, dtype=np.int64)
    val = np.empty(mask + 1)
    out = np.empty(n)
    head = 0  # positions count up forever; slots are position & mask
    tail = 0
    for j in range(-before, n + after):
        v = x[j] if 0 <= j < n else 1.0
        while tail > head and val[(tail - 1) & mask] >= v:
            tail -= 1
        idx[tail & mask] = j
        val[tail & mask] = v
        tail += 1
        o = j - after
        if o >= 0:
            while idx[head & mask] < o - before:
                head += 1
            out[o] = val[head & mask]
    return out


@numba.njit(cache=True, nogil=True)
def limiter_pass(env: np.ndarray, target: float, power: int, before: int, after: int,
                 release: bool, rise: float, length: int) -> np.ndarray:
    """One limiter pass in a single sweep, without full-length temporaries:

    ``r = (target / env) ** power`` where ``env > target``, else 1;
    ``h = window_min(r, before, after)``; when ``release``,
    ``h = release_under(h, rise)``; returns
    ``min(moving_average_past(h, length), 1)``, equal to composing those
    kernels (``test_limiter`` checks it bit for bit).
    """
    n = env.shape[0]
    out = np.empty(n)
    mask = _ring_mask(before + after + 2)
    idx = np.empty(mask + 1, dtype=np.int64)
    val = np.empty(mask + 1)
    head = 0
    tail = 0
    ring_mask = _ring_mask(length)
    ring = np.empty(ring_mask + 1)  # the last ``length`` values entering the average
    g = 1.0
    pad = 0.0
    total = 0.0
    busy = 0
    for j in range(-before, n + after):
        v = 1.0
        if 0 <= j < n:
            e = env[j]
            if e > target:
                v = target / e
                if power == 2:  # a multiply, not pow()
                    v = v * v
        while tail > head and val[(tail - 1) & mask] >= v:
            tail -= 1
        idx[tail & mask] = j
        val[tail & mask] = v
        tail += 1
        o = j - after
        if o < 0:
            continue
        while idx[head & mask] < o - before:
            head += 1
        h = val[head & mask]
        if release:
            g = g + (1.0 - g) * rise
            if h < g:
                g = h
            h = g
        d_in = 1.0 - h
        if o == 0:  # the window before sample 0 holds ``length`` copies of the first value
            pad = d_in
            total = pad * length
            busy = length if pad != 0.0 else 0
        d_out = pad if o < length else ring[(o - length) & ring_mask]
        total += d_in - d_out
        busy += int(d_in != 0.0) - int(d_out != 0.0)
        if busy == 0:
            total = 0.0
        ring[o & ring_mask] = d_in
        s = 1.0 - total / length
        out[o] = s if s < 1.0 else 1.0
    return out
