"""Block-wise helpers for the diagnosis: runs of clipped samples counted with their state carried
from block to block. (Frames across block boundaries: ``meters.spectral.FrameCarry``.)

Audio blocks are ``(channels, samples)``; a signal's blocks come in order, from sample 0.
Nothing here loops over samples in Python.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _clip_runs_step(x: np.ndarray, offset: int, level: float, min_run: int, sample_rate: int,
                    out: np.ndarray, state: np.ndarray) -> None:
    """Add to ``out[s]`` (per whole second ``s``) the runs of ``x`` (samples ``offset`` on of one
    channel) of at least ``min_run`` consecutive samples holding one value of magnitude at least
    ``level``. ``state`` = (previous sample, current run length) carries a run across blocks;
    start it at (NaN, 1)."""
    prev = state[0]
    run = int(state[1])
    for i in range(x.shape[0]):
        v = float(x[i])
        if v == prev and abs(v) >= level:
            run += 1
            if run == min_run:
                out[(offset + i) // sample_rate] += 1
        else:
            run = 1
        prev = v
    state[0] = prev
    state[1] = run


class ClipRuns:
    """Runs of ``min_run`` or more equal samples at or above each channel's ``levels`` (linear;
    a channel whose level is infinite is skipped), counted per whole second over a signal of
    ``frames`` samples fed block by block."""

    def __init__(self, levels: np.ndarray, frames: int, sample_rate: int, min_run: int = 3) -> None:
        self.levels = np.asarray(levels, dtype=np.float64)
        self.sample_rate = int(sample_rate)
        self.min_run = int(min_run)
        self.per_second = np.zeros(int(frames) // self.sample_rate + 1, dtype=np.int64)
        self._states = np.tile(np.array([np.nan, 1.0]), (self.levels.size, 1))

    @property
    def active(self) -> bool:
        return bool(np.isfinite(self.levels).any())

    def add(self, start: int, block: np.ndarray) -> None:
        for c, level in enumerate(self.levels):
            if np.isfinite(level):
                _clip_runs_step(np.ascontiguousarray(block[c]), int(start), float(level), self.min_run,
                                self.sample_rate, self.per_second, self._states[c])
