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
    native_dtypes: ClassVar[tuple[type, ...]] = (np.float32, np.float64)

    width: float = 1.0
    mid_gain_db: float = 0.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_range(owner, "width", self.width, 0.0, MAX_WIDTH)
        check_range(owner, "mid_gain_db", self.mid_gain_db, -MAX_MID_GAIN_DB, MAX_MID_GAIN_DB)

    @property
    def is_identity(self) -> bool:
        return self.width == 1.0 and self.mid_gain_db == 0.0

    def context_samples(self, sample_rate: int) -> int:
        """None: each output sample depends on its input sample alone."""
        return 0

    def apply_in_place(self, audio: np.ndarray, sample_rate: int) -> None:
        """``process``, written over ``audio`` (float64 ``(channels, samples)``, mono or stereo):
        for a caller that owns a whole song and need not keep it (the bus)."""
        channels = audio.shape[0]
        if channels > 2:
            raise AudioError(f"stereo_width needs mono or stereo audio, got {channels} channels")
        if channels == 1 or self.is_identity:
            return
        # L' = p L + q R, R' = q L + p R with p = (g + w) / 2, q = (g - w) / 2: two
        # one-channel temporaries; at width 0, p == q and both rows are computed alike.
        g = float(db_to_gain(float(self.mid_gain_db)))
        w = float(self.width)
        p, q = 0.5 * (g + w), 0.5 * (g - w)
        q_right = np.multiply(audio[1], q)
        q_left = np.multiply(audio[0], q)
        audio[0] *= p
        audio[0] += q_right
        del q_right
        audio[1] *= p
        audio[1] += q_left

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        out = audio.copy()
        self.apply_in_place(out, sample_rate)
        return out
