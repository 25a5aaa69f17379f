"""Biquad (second-order section) filtering: one Numba kernel for every IIR filter we run.

``pair_pass`` runs two sections over one or two rows of a float64 array in
place, in transposed direct form II (the form ``scipy.signal.sosfilt`` uses,
so results agree with it to the last few bits), forward or backward, each
section starting from a given state. Two channels are interleaved in one
loop: twice the arithmetic for the same dependency chain, so stereo costs
hardly more than mono. ``sos_filter`` is the plain forward filter on top of
it (``scipy.signal.sosfilt`` with zero initial state, about 2x faster);
``dsp/highpass.py`` builds the zero-phase forward-backward filter on it.
"""

from __future__ import annotations

import numba
import numpy as np

# Every 1024 samples, a section whose state is all under TINY (-600 dBFS) is
# set to rest. A recursion decaying through digital silence otherwise reaches
# subnormal numbers, which the CPU computes up to 100x slower: a vocal stem
# with its silences took 3.5x as long to high-pass as noise. From TINY, the
# slowest filter here needs tens of thousands of samples to reach the
# subnormal range, so checking now and then is enough, and costs nothing on
# the recursion's critical path.
TINY = 1e-30
_FLUSH_EVERY = 1023
# a pass-through section, to pad an odd number of sections to pairs
IDENTITY_SECTION = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
_ZERO_STATE = np.zeros(2)


@numba.njit(cache=True, nogil=True)
def pair_pass(x: np.ndarray, row: int, both: bool, b: np.ndarray, d: np.ndarray,
               zb: np.ndarray, zd: np.ndarray, reverse: bool) -> None:
    """Run sections ``b`` then ``d`` over ``x[row]`` (and ``x[row + 1]`` when ``both``), in place.

    Transposed direct form II; each section starts in the steady state for
    the first sample it meets (``zb``, ``zd``: the states for a unit step
    into the pair). ``reverse`` runs from the last sample to the first.
    """
    n = x.shape[1]
    b0, b1, b2, a1, a2 = b[0], b[1], b[2], b[4], b[5]
    d0, d1, d2, e1, e2 = d[0], d[1], d[2], d[4], d[5]
    first = n - 1 if reverse else 0
    f = x[row, first]
    p0, p1, q0, q1 = zb[0] * f, zb[1] * f, zd[0] * f, zd[1] * f
    if not both:
        for k in range(n):
            i = n - 1 - k if reverse else k
            v = x[row, i]
            y = b0 * v + p0
            p0 = b1 * v - a1 * y + p1
            p1 = b2 * v - a2 * y
            u = d0 * y + q0
            q0 = d1 * y - e1 * u + q1
            q1 = d2 * y - e2 * u
            x[row, i] = u
            if (k & _FLUSH_EVERY) == 0:
                if -TINY < p0 < TINY and -TINY < p1 < TINY:
                    p0 = p1 = 0.0
                if -TINY < q0 < TINY and -TINY < q1 < TINY:
                    q0 = q1 = 0.0
        return
    g = x[row + 1, first]
    r0, r1, s0, s1 = zb[0] * g, zb[1] * g, zd[0] * g, zd[1] * g
    for k in range(n):  # two independent channels interleaved: twice the work, same latency
        i = n - 1 - k if reverse else k
        v = x[row, i]
        w = x[row + 1, i]
        y = b0 * v + p0
        t = b0 * w + r0
        p0 = b1 * v - a1 * y + p1
        r0 = b1 * w - a1 * t + r1
        p1 = b2 * v - a2 * y
        r1 = b2 * w - a2 * t
        u = d0 * y + q0
        h = d0 * t + s0
        q0 = d1 * y - e1 * u + q1
        s0 = d1 * t - e1 * h + s1
        q1 = d2 * y - e2 * u
        s1 = d2 * t - e2 * h
        x[row, i] = u
        x[row + 1, i] = h
        if (k & _FLUSH_EVERY) == 0:
            if -TINY < p0 < TINY and -TINY < p1 < TINY:
                p0 = p1 = 0.0
            if -TINY < q0 < TINY and -TINY < q1 < TINY:
                q0 = q1 = 0.0
            if -TINY < r0 < TINY and -TINY < r1 < TINY:
                r0 = r1 = 0.0
            if -TINY < s0 < TINY and -TINY < s1 < TINY:
                s0 = s1 = 0.0


def sos_filter(sos: np.ndarray, audio: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """``scipy.signal.sosfilt(sos, audio, axis=-1)``: each row of ``audio`` ``(rows, samples)``
    filtered forward through the sections ``sos`` ``(k, 6)`` from a zero state.

    Returns a new float64 array (``audio`` is not touched); ``k = 0`` returns a copy.
    ``in_place``: ``audio`` (a writeable C-contiguous float64 2-D array) is filtered
    and returned itself, which saves a copy of a whole song.
    """
    if in_place:
        if not (isinstance(audio, np.ndarray) and audio.dtype == np.float64 and audio.ndim == 2
                and audio.flags.c_contiguous and audio.flags.writeable):
            raise ValueError("in_place needs a writeable, C-contiguous float64 2-D array")
        out = audio
    else:
        out = np.array(audio, dtype=np.float64, order="C", ndmin=2)  # a copy, filtered in place
    rows, n = out.shape
    sos = np.asarray(sos, dtype=np.float64).reshape(-1, 6)
    sos = sos / sos[:, 3:4]  # the kernel takes a0 = 1
    if n == 0 or len(sos) == 0:
        return out
    if len(sos) % 2:
        sos = np.vstack([sos, IDENTITY_SECTION])
    for s in range(0, len(sos), 2):
        b, d = np.ascontiguousarray(sos[s]), np.ascontiguousarray(sos[s + 1])
        row = 0
        while row < rows:
            both = row + 1 < rows
            pair_pass(out, row, both, b, d, _ZERO_STATE, _ZERO_STATE, False)
            row += 2 if both else 1
    return out
