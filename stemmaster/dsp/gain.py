"""A plain gain stage in dB (trim before or after the other processors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from stemmaster.dsp.processor import Processor, check_range, db_to_gain

MIN_DB, MAX_DB = -60.0, 24.0


@dataclass(frozen=True)
class Gain(Processor):
    """Multiplies every sample by ``10**(gain_db / 20)``; 0 dB is an exact copy.

    No clipping: a boost can take samples past full scale (they stay finite;
    the bus limiter or the writer deals with them).
    """

    kind: ClassVar[str] = "gain"
    native_dtypes: ClassVar[tuple[type, ...]] = (np.float32, np.float64)

    gain_db: float = 0.0

    def __post_init__(self) -> None:
        check_range(type(self).__name__, "gain_db", self.gain_db, MIN_DB, MAX_DB)

    @property
    def linear(self) -> float:
        """The amplitude factor."""
        return float(db_to_gain(float(self.gain_db)))

    def context_samples(self, sample_rate: int) -> int:
        """None: each output sample depends on its input sample alone."""
        return 0

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        if self.gain_db == 0.0:
            return audio.copy()
        return audio * self.linear
