"""Low-end mono: removes the side (L - R) below a crossover; everything else passes untouched.

How: mid/side, with a phase-coherent, zero-phase split of the side only::

    M = (L + R) / 2            S = (L - R) / 2
    side_low = zero-phase low band of S at crossover_hz
    S' = S - side_low           (the high band of S)
    L' = M + S' = L - side_low  R' = M - S' = R + side_low

The low band is a 4th-order Butterworth low-pass run forward and backward
(``filtfilt``), so its magnitude is ``1 / (1 + (f/fc)**8)`` - the Linkwitz-Riley
8th-order (48 dB/octave) magnitude - with zero phase. The side that remains
is the exact complement, ``(f/fc)**8 / (1 + (f/fc)**8)`` (an LR8 high band,
also zero phase), so low band + high band = S to rounding: the split sums
back flat, and there is no delay and no phase shift anywhere.

Consequences:

* the mid is not filtered at all: ``(L' + R') / 2 == (L + R) / 2`` (to rounding);
* the side is -6.02 dB at ``crossover_hz``; below, it falls 48 dB/octave
  (-28.5 dB at 2/3 of the crossover, -48 dB an octave below); above, it is
  back within 0.04 dB by 2x the crossover and within 0.001 dB by 3.3x;
* a mono input ``(1, n)`` is returned unchanged; more than two channels are refused.

Why not a 2nd-order Butterworth filtfilt (LR4 magnitude, 24 dB/octave)? It
leaves the side only about 24 dB down in the band below 2/3 of the crossover
(the octave-plus just under it is where a wide bass lives); the 4th-order
split removes over 35 dB there for the same flatness above.

The ends are handled as in :func:`stemmaster.dsp.highpass.zero_phase_sos`
(mirror extension, steady-state start), so a side that is DC is removed
completely, right up to the first and last samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from stemmaster.dsp.highpass import butter_sos, edge_pad_length, zero_phase_response_db, zero_phase_sos
from stemmaster.dsp.processor import Processor, check_range
from stemmaster.errors import AudioError

MIN_HZ, MAX_HZ = 20.0, 500.0
CROSSOVER_ORDER = 4  # Butterworth order of the low-pass run forward and backward (LR8 magnitude)


@dataclass(frozen=True)
class LowEndMono(Processor):
    """Makes everything below ``crossover_hz`` mono (side removed, mid untouched); zero phase."""

    kind: ClassVar[str] = "low_end_mono"
    native_dtypes: ClassVar[tuple[type, ...]] = (np.float32, np.float64)

    crossover_hz: float = 120.0

    def __post_init__(self) -> None:
        check_range(type(self).__name__, "crossover_hz", self.crossover_hz, MIN_HZ, MAX_HZ)

    def sections(self, sample_rate: int) -> np.ndarray:
        """The low-pass that picks out the side's low band (run forward and backward), ``(k, 6)``."""
        return butter_sos("lowpass", self.crossover_hz, CROSSOVER_ORDER, sample_rate)

    def context_samples(self, sample_rate: int) -> int:
        """The low-pass's slowest pole's decay to ``EDGE_DECAY`` (as ``HighPass.context_samples``)."""
        return edge_pad_length(self.sections(sample_rate))

    def side_response_db(self, freq_hz, sample_rate: int) -> np.ndarray:
        """The gain in dB applied to the side at ``freq_hz`` (the mid's gain is 0 dB everywhere)."""
        low = 10.0 ** (zero_phase_response_db(self.sections(sample_rate), freq_hz, sample_rate) / 20.0)
        return 20.0 * np.log10(np.maximum(1.0 - low, 1e-15))

    def side_low(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """The side's low band, ``(n,)`` float64: what is taken out of L and put into R."""
        x = np.asarray(audio)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        side = 0.5 * (x[0] - x[1])
        return zero_phase_sos(self.sections(sample_rate), side[None, :])[0]

    def apply_in_place(self, audio: np.ndarray, sample_rate: int) -> None:
        """``process``, written over ``audio`` (float64 ``(channels, samples)``, mono or stereo):
        for a caller that owns a whole song and need not keep it (the bus)."""
        channels = audio.shape[0]
        if channels == 1:
            return
        if channels != 2:
            raise AudioError(f"low_end_mono needs mono or stereo audio, got {channels} channels")
        low = self.side_low(audio, sample_rate)
        audio[0] -= low
        audio[1] += low

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        out = audio.copy()
        self.apply_in_place(out, sample_rate)
        return out
