"""Stereo width: mid/side scaling of the side (and, optionally, the mid).

``M = (L + R) / 2``, ``S = (L - R) / 2``; out ``L = g M + w S``,
``R = g M - w S`` with ``w = width`` and ``g = 10**(mid_gain_db / 20)``.
``width`` 0 folds to mono (L == R exactly), 1 leaves the side alone, 2
doubles it (+6.02 dB of side energy; 1.5 gives +3.52 dB). The mid is the same
whatever the width. With ``width = 1`` and ``mid_gain_db = 0`` the output is an
exact copy of the input. A mono input ``(1, n)`` is returned unchanged (there
is no side to scale, and the mid gain is a stereo balance control, not a
level); more than two channels are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from stemmaster.dsp.processor import Processor, check_range, db_to_gain
from stemmaster.errors import AudioError

MAX_WIDTH = 2.0
MAX_MID_GAIN_DB = 12.0


@dataclass(frozen=True)
class StereoWidth(Processor):
    """M/S width: ``width`` scales the side (0 = mono, 1 = unchanged, 2 = double); ``mid_gain_db`` the mid."""

    kind: ClassVar[str] = "stereo_width"

    width: float = 1.0
    mid_gain_db: float = 0.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_range(owner, "width", self.width, 0.0, MAX_WIDTH)
        check_range(owner, "mid_gain_db", self.mid_gain_db, -MAX_MID_GAIN_DB, MAX_MID_GAIN_DB)

    @property
    def is_identity(self) -> bool:
        return self.width == 1.0 and self.mid_gain_db == 0.0

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        channels = audio.shape[0]
        if channels > 2:
            raise AudioError(f"stereo_width needs mono or stereo audio, got {channels} channels")
        if channels == 1 or self.is_identity:
            return audio.copy()
        # L' = p L + q R, R' = q L + p R with p = (g + w) / 2, q = (g - w) / 2: one
        # output and one temporary; at width 0, p == q and both rows are computed alike.
        g = float(db_to_gain(float(self.mid_gain_db)))
        w = float(self.width)
        p, q = 0.5 * (g + w), 0.5 * (g - w)
        out = np.empty_like(audio)
        tmp = np.empty_like(audio[0])
        np.multiply(audio[0], p, out=out[0])
        np.multiply(audio[1], q, out=tmp)
        out[0] += tmp
        np.multiply(audio[0], q, out=out[1])
        np.multiply(audio[1], p, out=tmp)
        out[1] += tmp
        return out
