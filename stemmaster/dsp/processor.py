"""The processor contract shared by every effect in stemmaster.

A processor is a frozen dataclass of unit-named settings, validated in
``__post_init__``; ``process(audio, sample_rate)`` takes audio shaped
``(channels, samples)`` (float32 or float64) and returns a new array of the
same shape and dtype, never changing length or adding delay.

Segment by segment (``stemmaster.dsp.segmented``): a processor says how far
its output reaches in time (``context_samples``), on which grid a segment must
start (``grid_samples``), and, when it measures the whole stem (the de-esser's
frequency and reference level), pins those measurements from block-wise
passes (``needs_statistics``, ``pin_statistics``) so that a segment processed
with its context gives what the whole stem gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar, Iterator, NamedTuple

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


# A recursion with time constant tau has decayed by exp(-14) = 8e-7 after 14 tau: a state
# that starts wrong by a whole gain swing (12 dB, say) is then wrong by 1e-5 dB, a gain
# error of 1e-6. Recursive detectors take this many time constants of context.
CONTEXT_TIME_CONSTANTS = 14.0
# IIR filters take context until their slowest pole has decayed this far (-140 dB).
EDGE_DECAY_CONTEXT = 1e-7
# A processor that does not say how far it reaches gets this much context either side.
DEFAULT_CONTEXT_S = 10.0


def time_constant_context_samples(time_ms: float, sample_rate: int) -> int:
    """Samples of context for a recursion of time constant ``time_ms``: ``CONTEXT_TIME_CONSTANTS`` of them."""
    return int(math.ceil(CONTEXT_TIME_CONSTANTS * float(time_ms) * 1e-3 * int(sample_rate)))


def round_up(value: int, grid: int) -> int:
    """``value`` rounded up to a multiple of ``grid`` (>= 1)."""
    return -(-int(value) // int(grid)) * int(grid)


class InputSegment(NamedTuple):
    """A stretch of a processor's input, as a block-wise pass over a stem gives it.

    ``audio``: float32 ``(channels, samples)``, stem samples ``first ..
    first + samples``; it holds the core ``start .. stop`` and the processor's
    ``context_samples`` either side (fewer at the ends of the stem). The cores
    of a pass are consecutive and cover the stem; ``first`` is on the
    processor's grid (``grid_samples``).
    """

    audio: np.ndarray
    first: int
    start: int
    stop: int

    def core(self) -> np.ndarray:
        """The core, ``(channels, stop - start)`` (a view of ``audio``)."""
        return self.audio[:, self.start - self.first:self.stop - self.first]


# A pass: called once per pass, it yields the segments of the processor's input in order.
InputPass = Callable[[], Iterator[InputSegment]]


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

    # -- segment by segment (stemmaster.dsp.segmented)

    def context_samples(self, sample_rate: int) -> int:
        """Samples of input either side of a segment needed for the output on the segment to equal
        (within 1e-5) the output of the whole stem there. The default, ``DEFAULT_CONTEXT_S``, is for
        processors that do not say; every repair processor gives its real reach."""
        return int(math.ceil(DEFAULT_CONTEXT_S * int(sample_rate)))

    def grid_samples(self, sample_rate: int) -> int:
        """A segment (with its context) must start on a multiple of this many samples of the stem
        (the frame or block grid the processor works on, counted from the stem's first sample)."""
        return 1

    def needs_statistics(self) -> bool:
        """True when ``process`` measures the whole stem and those measurements are not pinned yet:
        such a processor gives a segment's own statistics on a segment, not the stem's."""
        return False

    def pin_statistics(self, passes: InputPass, sample_rate: int, frames: int) -> "Processor":
        """This processor with its whole-stem statistics pinned, measured by block-wise passes over its
        input (``passes()`` starts one; the input is ``frames`` samples long). The default has none."""
        return self

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
