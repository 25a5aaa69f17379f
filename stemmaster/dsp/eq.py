"""Broad tone shaping: RBJ low and high shelves, a broad low-mid bell and a first-order tilt."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from stemmaster.dsp.biquad import sos_filter
from stemmaster.dsp.processor import Processor, check_range

MAX_GAIN_DB = 12.0
MIN_HZ, MAX_HZ = 20.0, 20000.0
NYQUIST_FRACTION = 0.45  # frequencies are clamped below this fraction of the sample rate


def _shelf(kind: str, freq_hz: float, gain_db: float, sample_rate: int) -> np.ndarray:
    """One RBJ-cookbook shelf (slope S=1) as a normalised second-order section."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq_hz / sample_rate
    cos_w0 = math.cos(w0)
    two_sqrt_a_alpha = 2.0 * math.sqrt(a) * math.sin(w0) / 2.0 * math.sqrt(2.0)
    sign = 1.0 if kind == "low" else -1.0  # the high shelf flips the sign of the cos terms
    b0 = a * ((a + 1) - sign * (a - 1) * cos_w0 + two_sqrt_a_alpha)
    b1 = sign * 2 * a * ((a - 1) - sign * (a + 1) * cos_w0)
    b2 = a * ((a + 1) - sign * (a - 1) * cos_w0 - two_sqrt_a_alpha)
    a0 = (a + 1) + sign * (a - 1) * cos_w0 + two_sqrt_a_alpha
    a1 = -sign * 2 * ((a - 1) + sign * (a + 1) * cos_w0)
    a2 = (a + 1) + sign * (a - 1) * cos_w0 - two_sqrt_a_alpha
    return np.array([b0, b1, b2, a0, a1, a2]) / a0


def _peaking(freq_hz: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """One RBJ-cookbook peaking bell as a normalised second-order section."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq_hz / sample_rate
    alpha = math.sin(w0) / (2.0 * q)
    cos_w0 = math.cos(w0)
    a0 = 1.0 + alpha / a
    return np.array([1.0 + alpha * a, -2.0 * cos_w0, 1.0 - alpha * a, a0, -2.0 * cos_w0, 1.0 - alpha / a]) / a0


def _tilt(pivot_hz: float, tilt_db: float, sample_rate: int) -> np.ndarray:
    """First-order tilt: ``-tilt/2`` dB at DC, ``+tilt/2`` dB at Nyquist, 0 dB at the pivot.

    Bilinear transform (prewarped at the pivot) of
    ``H(s) = (sqrt(G) s + w0) / (s + sqrt(G) w0)`` with ``G = 10**(tilt/20)``.
    """
    rg = 10.0 ** (tilt_db / 40.0)
    t = math.tan(math.pi * pivot_hz / sample_rate)
    a0 = 1.0 + rg * t
    return np.array([rg + t, t - rg, 0.0, a0, rg * t - 1.0, 0.0]) / a0


@dataclass(frozen=True)
class ToneEQ(Processor):
    """Low shelf, high shelf, a broad low-mid bell (the "mud" band, 200-500 Hz) and a
    gentle tilt about a pivot (positive tilt = brighter).

    Frequencies above ``0.45 * sample_rate`` are clamped there, so settings
    made at 48 kHz still work on a low-rate file.
    """

    kind: ClassVar[str] = "tone_eq"

    low_shelf_hz: float = 100.0
    low_shelf_db: float = 0.0
    high_shelf_hz: float = 8000.0
    high_shelf_db: float = 0.0
    low_mid_hz: float = 300.0
    low_mid_db: float = 0.0
    low_mid_q: float = 0.9
    tilt_db: float = 0.0
    tilt_pivot_hz: float = 1000.0

    def __post_init__(self) -> None:
        check_range(type(self).__name__, "low_mid_q", self.low_mid_q, 0.3, 4.0)
        for name in ("low_shelf_hz", "high_shelf_hz", "low_mid_hz", "tilt_pivot_hz"):
            check_range(type(self).__name__, name, getattr(self, name), MIN_HZ, MAX_HZ)
        for name in ("low_shelf_db", "high_shelf_db", "low_mid_db", "tilt_db"):
            check_range(type(self).__name__, name, getattr(self, name), -MAX_GAIN_DB, MAX_GAIN_DB)

    def sections(self, sample_rate: int) -> np.ndarray:
        """The active filter as second-order sections, shaped ``(k, 6)`` (``k`` may be 0)."""
        top = NYQUIST_FRACTION * sample_rate
        sos = []
        if self.low_shelf_db != 0.0:
            sos.append(_shelf("low", min(self.low_shelf_hz, top), self.low_shelf_db, sample_rate))
        if self.high_shelf_db != 0.0:
            sos.append(_shelf("high", min(self.high_shelf_hz, top), self.high_shelf_db, sample_rate))
        if self.low_mid_db != 0.0:
            sos.append(_peaking(min(self.low_mid_hz, top), self.low_mid_db, self.low_mid_q, sample_rate))
        if self.tilt_db != 0.0:
            sos.append(_tilt(min(self.tilt_pivot_hz, top), self.tilt_db, sample_rate))
        return np.array(sos, dtype=np.float64).reshape(-1, 6)

    def apply_in_place(self, audio: np.ndarray, sample_rate: int) -> None:
        """``process``, written over ``audio`` (writeable C-contiguous float64 ``(channels, samples)``):
        for a caller that owns a whole song and need not keep it (the bus)."""
        sos = self.sections(sample_rate)
        if len(sos):
            sos_filter(sos, audio, in_place=True)

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        sos = self.sections(sample_rate)
        if len(sos) == 0:
            return audio.copy()
        return sos_filter(sos, audio)
