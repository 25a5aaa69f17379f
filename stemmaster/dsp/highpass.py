"""A zero-phase Butterworth high-pass, plus the zero-phase filtering it shares.

Zero phase means no delay at all (the cross-correlation of input and output
peaks at lag 0) and no phase shift in the pass band, which matters when a
stem is filtered and its neighbours are not. It is done the classic way: the
Butterworth sections are run forward over the signal, then backward over the
result (``filtfilt``). The magnitude response is therefore the *square* of
the Butterworth design's:

* at ``highpass_hz`` the gain is -6.02 dB (not -3.01 dB) for any order;
* the stop-band slope is doubled: order 2 falls 24 dB/octave (one octave
  below the cutoff: -24.6 dB), order 4 falls 48 dB/octave (one octave below:
  -48.2 dB);
* the pass band is flat: at 10x the cutoff the loss is under 0.001 dB.

Ends: each row is extended at both ends by an even (mirror) reflection as long
as the slowest pole needs to decay to -140 dB (capped at the signal's length
minus one), and each filter pass starts in its steady state for the first
sample it sees, as ``scipy.signal.sosfiltfilt`` does. The recursion itself is
the Numba kernel of ``dsp/biquad.py`` that runs two sections and two channels interleaved, about
twice as fast as ``sosfiltfilt``; for filters of one or two sections the result
is bit-identical to ``sosfiltfilt(sos, x, padtype="even", padlen=pad)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.signal import butter, sosfilt_zi, sosfreqz

from stemmaster.dsp.biquad import IDENTITY_SECTION, pair_pass
from stemmaster.dsp.processor import Processor, check_range
from stemmaster.errors import SettingsError

MIN_HZ, MAX_HZ = 10.0, 1000.0
ORDERS: tuple[int, ...] = (2, 4)
NYQUIST_FRACTION = 0.45  # cutoffs are clamped below this fraction of the sample rate
EDGE_DECAY = 1e-7  # the ends are padded until the slowest pole has decayed this far (-140 dB)


def butter_sos(btype: str, freq_hz: float, order: int, sample_rate: int) -> np.ndarray:
    """A digital Butterworth ``"lowpass"``/``"highpass"`` as second-order sections, ``(k, 6)``.

    ``freq_hz`` is clamped to ``NYQUIST_FRACTION * sample_rate``.
    """
    hz = min(float(freq_hz), NYQUIST_FRACTION * sample_rate)
    return butter(int(order), hz, btype=btype, output="sos", fs=sample_rate)


def edge_pad_length(sos: np.ndarray) -> int:
    """Samples for the slowest pole of ``sos`` to decay by ``EDGE_DECAY``."""
    radius = max(float(np.max(np.abs(np.roots(section[3:])))) for section in sos)
    if radius <= 0.0:
        return 0
    radius = min(radius, 1.0 - 1e-12)
    return int(math.ceil(math.log(EDGE_DECAY) / math.log(radius)))


def zero_phase_sos(sos: np.ndarray, audio: np.ndarray) -> np.ndarray:
    """Filter each row of ``audio`` (float64 ``(rows, n)``) forward and backward through ``sos``.

    Returns a new float64 array of the same shape (``audio`` is not touched):
    zero phase, magnitude ``|H|**2``. The ends are handled as described in the
    module docstring.
    """
    audio = np.asarray(audio)
    if audio.dtype not in (np.float32, np.float64):
        audio = audio.astype(np.float64)
    rows, n = audio.shape
    if n == 0 or len(sos) == 0:
        return audio.copy()
    sos = np.asarray(sos, dtype=np.float64)
    if len(sos) % 2:
        sos = np.vstack([sos, IDENTITY_SECTION])
    pad = min(edge_pad_length(sos), n - 1)
    buf = np.empty((rows, n + 2 * pad), dtype=audio.dtype)  # float32 rows: the recursion still runs in float64
    buf[:, pad:pad + n] = audio
    if pad:
        buf[:, :pad] = audio[:, pad:0:-1]  # even reflection about the first sample
        buf[:, pad + n:] = audio[:, n - 2:n - 2 - pad:-1] if n - 2 - pad >= 0 else audio[:, n - 2::-1]
    pairs = [(np.ascontiguousarray(sos[s]), np.ascontiguousarray(sos[s + 1]),
              np.ascontiguousarray(sosfilt_zi(sos[s:s + 2]))) for s in range(0, len(sos), 2)]
    for reverse in (False, True):
        for b, d, zi in pairs:
            row = 0
            while row < rows:
                both = row + 1 < rows
                pair_pass(buf, row, both, b, d, zi[0], zi[1], reverse)
                row += 2 if both else 1
    if pad == 0:
        return buf
    # the rows' middles moved to the front of the buffer, one after another: a C-contiguous
    # result in the same memory (a caller needing one would otherwise copy the whole song)
    flat = buf.reshape(-1)
    for row in range(rows):
        flat[row * n:(row + 1) * n] = buf[row, pad:pad + n]  # numpy buffers an overlapping move
    return flat[:rows * n].reshape(rows, n)


def zero_phase_response_db(sos: np.ndarray, freq_hz, sample_rate: int) -> np.ndarray:
    """The gain in dB of ``zero_phase_sos(sos, .)`` at ``freq_hz`` (twice the single-pass gain)."""
    freqs = np.atleast_1d(np.asarray(freq_hz, dtype=np.float64))
    _, h = sosfreqz(sos, worN=freqs, fs=sample_rate)
    return 20.0 * np.log10(np.maximum(np.abs(h) ** 2, 1e-300))


@dataclass(frozen=True)
class HighPass(Processor):
    """Zero-phase Butterworth high-pass; ``highpass_hz = 0`` is off (exact identity).

    ``highpass_hz`` is where the response is -6.02 dB (the filter runs
    forward and backward, squaring the Butterworth magnitude: an ``order``-2
    design falls 24 dB/octave, ``order`` 4 48 dB/octave). Cutoffs above
    ``0.45 * sample_rate`` are clamped there. DC is removed.
    """

    kind: ClassVar[str] = "highpass"
    native_dtypes: ClassVar[tuple[type, ...]] = (np.float32, np.float64)

    highpass_hz: float = 0.0
    order: int = 2

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_range(owner, "highpass_hz", self.highpass_hz, 0.0, MAX_HZ)
        if 0.0 < self.highpass_hz < MIN_HZ:
            raise SettingsError(f"{owner}.highpass_hz = {self.highpass_hz} is out of range "
                                f"(0 = off, else {MIN_HZ} to {MAX_HZ})")
        order = self.order
        integral = isinstance(order, (int, float, np.integer, np.floating)) and not isinstance(order, bool)
        if not integral or not math.isfinite(order) or order not in ORDERS:
            raise SettingsError(f"{owner}.order = {order!r} must be one of {', '.join(map(str, ORDERS))}")
        object.__setattr__(self, "order", int(order))

    @property
    def active(self) -> bool:
        return self.highpass_hz > 0.0

    def sections(self, sample_rate: int) -> np.ndarray:
        """The Butterworth design (run forward and backward), ``(k, 6)``; ``k = 0`` when off."""
        if not self.active:
            return np.zeros((0, 6))
        return butter_sos("highpass", self.highpass_hz, self.order, sample_rate)

    def context_samples(self, sample_rate: int) -> int:
        """The slowest pole's decay to ``EDGE_DECAY`` (0 when off): a segment's forward and backward
        passes start that far from its core, so their wrong start has died away there."""
        return edge_pad_length(self.sections(sample_rate)) if self.active else 0

    def response_db(self, freq_hz, sample_rate: int) -> np.ndarray:
        """The designed gain in dB at ``freq_hz`` (0 dB everywhere when off)."""
        if not self.active:
            return np.zeros(np.shape(np.atleast_1d(freq_hz)))
        return zero_phase_response_db(self.sections(sample_rate), freq_hz, sample_rate)

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        if not self.active:
            return audio.copy()
        return zero_phase_sos(self.sections(sample_rate), audio)
