"""The processor contract shared by every effect in stemmaster.

A processor is a frozen dataclass of unit-named settings, validated in
``__post_init__``; ``process(audio, sample_rate)`` takes audio shaped
``(channels, samples)`` (float32 or float64) and returns a new array of the
same shape and dtype, never changing length or adding delay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from stemmaster.errors import AudioError, SettingsError


def check_range(owner: str, name: str, value: float, lo: float, hi: float) -> None:
    """Raise SettingsError naming the field when ``value`` is not in ``[lo, hi]``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise SettingsError(f"{owner}.{name} = {value!r} is not a finite number (allowed {lo} to {hi})")
    if not lo <= value <= hi:
        raise SettingsError(f"{owner}.{name} = {value} is out of range (allowed {lo} to {hi})")


def check_audio(audio: np.ndarray, sample_rate: int) -> None:
    """Check the top-of-API audio contract: float ``(channels, samples)``, finite, positive rate."""
    if not isinstance(audio, np.ndarray) or audio.ndim != 2:
        raise AudioError(f"audio must be a 2-D array shaped (channels, samples), got {getattr(audio, 'shape', type(audio))}")
    if audio.dtype not in (np.float32, np.float64):
        raise AudioError(f"audio must be float32 or float64, got {audio.dtype}")
    if int(sample_rate) <= 0:
        raise AudioError(f"sample rate must be positive, got {sample_rate}")


def db_to_gain(db: float | np.ndarray) -> float | np.ndarray:
    return 10.0 ** (np.asarray(db) / 20.0) if isinstance(db, np.ndarray) else 10.0 ** (db / 20.0)


def gain_to_db(gain: float | np.ndarray, floor_db: float = -200.0) -> float | np.ndarray:
    g = np.maximum(np.abs(np.asarray(gain, dtype=np.float64)), 10.0 ** (floor_db / 20.0))
    out = 20.0 * np.log10(g)
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class Processor:
    """Base of all processors; subclasses set ``kind`` and implement ``_process``."""

    kind: ClassVar[str] = "processor"
    # the dtypes ``_process`` takes as they are (it then returns the same dtype); any other
    # input is worked in float64. A processor whose kernels keep their state and sums in
    # float64 whatever they read lists float32 too: a float32 chain (the render's stems)
    # then holds half the memory and makes no float64 copy of a song per stage.
    native_dtypes: ClassVar[tuple[type, ...]] = (np.float64,)

    def process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Process ``audio`` shaped ``(channels, samples)``; return a new array, same shape and dtype."""
        check_audio(audio, sample_rate)
        if audio.shape[1] == 0:
            return audio.copy()
        work = audio if audio.dtype in self.native_dtypes else audio.astype(np.float64)
        out = self._process(work, int(sample_rate))
        return np.ascontiguousarray(out, dtype=audio.dtype)

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The settings as a plain dict (unit-named keys), for the project file."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_settings(cls, values: dict[str, Any]):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(f"{cls.kind}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**values)
