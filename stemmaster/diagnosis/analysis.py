"""The shared measurements of one signal (a stem or the mix), computed once.

Every detector reads a ``SignalAnalysis``: one STFT of the mid and one of the
side (2048-point Hann frames, hop 2048: 21.5 Hz bins and 46 ms steps at
44.1 kHz; the detectors read long-term statistics, so frames need not
overlap, which halves the cost), the K-weighted energy per 100 ms hop (BS.1770, from
``meters.loudness``) with the momentary and short-term loudness derived from
it, and a few whole-signal figures (peak, RMS, DC, runs of clipped samples).
Nothing here loops over samples in Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np

from stemmaster.meters import loudness

from stemmaster.meters.spectral import _frame_power, _mid, _side
from stemmaster.meters.truepeak import true_peak_dbtp

N_FFT = 2048
HOP = 2048
_FLOOR = 1e-20


def db(x):
    """Power ratio in dB (``10 log10``), floored at -200 dB."""
    return 10.0 * np.log10(np.maximum(x, _FLOOR))


@numba.njit(cache=True, nogil=True)
def _clip_runs(x: np.ndarray, level: float, min_run: int, sample_rate: int) -> np.ndarray:
    """Per whole second of ``x``: the number of runs of at least ``min_run`` consecutive
    samples holding one value whose magnitude is at least ``level``."""
    seconds = x.shape[0] // sample_rate + 1
    out = np.zeros(seconds, dtype=np.int64)
    run = 1
    for i in range(1, x.shape[0]):
        if x[i] == x[i - 1] and abs(x[i]) >= level:
            run += 1
            if run == min_run:
                out[i // sample_rate] += 1
        else:
            run = 1
    return out


@dataclass
class SignalAnalysis:
    """What the detectors read about one signal. Powers are per STFT bin, scaled so that the
    sum over bins of one frame is that frame's mean square (a full-scale sine: 0.5)."""

    name: str
    role: str
    sample_rate: int
    samples: int
    channels: int
    freqs: np.ndarray            # (bins,) Hz
    mid_power: np.ndarray        # (frames, bins) float32, mid = (L + R) / 2
    side_power: np.ndarray | None  # (frames, bins) float32, side = (L - R) / 2; None for mono
    hop_energy: np.ndarray       # (hops,) K-weighted channel-weighted energy per 100 ms
    hop_lengths: np.ndarray      # (hops,) samples per hop
    momentary: np.ndarray        # LUFS, 400 ms windows every 100 ms
    short_term: np.ndarray       # LUFS, 3 s windows every 100 ms
    integrated_lufs: float       # BS.1770 gating of the momentary blocks
    peak: float                  # largest |sample|, linear
    rms_dbfs: float
    dc: np.ndarray               # (channels,) mean of each channel
    clip_runs: np.ndarray        # (seconds,) runs of >= 3 equal samples at the peak level, all channels
    first: np.ndarray            # (channels,) first sample
    edge_tail_dbfs: float        # peak of the last 10 ms, dBFS
    _true_peak: float | None = field(default=None, repr=False)
    _audio: np.ndarray | None = field(default=None, repr=False)

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate

    @property
    def mid_mean(self) -> np.ndarray:
        """Long-term mean power per bin of the mid (float64)."""
        if not hasattr(self, "_mid_mean"):
            self._mid_mean = self.mid_power.mean(axis=0, dtype=np.float64) if self.mid_power.shape[0] else \
                np.zeros(self.freqs.shape)
        return self._mid_mean

    @property
    def side_mean(self) -> np.ndarray:
        if not hasattr(self, "_side_mean"):
            if self.side_power is None or self.side_power.shape[0] == 0:
                self._side_mean = np.zeros(self.freqs.shape)
            else:
                self._side_mean = self.side_power.mean(axis=0, dtype=np.float64)
        return self._side_mean

    def band(self, lo: float, hi: float) -> np.ndarray:
        """Boolean mask of the bins in ``[lo, hi)`` Hz."""
        return (self.freqs >= lo) & (self.freqs < hi)

    def true_peak_dbtp(self) -> float:
        """4x-oversampled true peak (BS.1770-4), computed on first use only."""
        if self._true_peak is None:
            self._true_peak = true_peak_dbtp(self._audio) if self._audio is not None else float("nan")
        return self._true_peak


def analyse(name: str, role: str, audio: np.ndarray, sample_rate: int) -> SignalAnalysis:
    """Measure ``audio`` (channels, samples) once for all detectors."""
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.dtype not in (np.float32, np.float64):
        audio = audio.astype(np.float32)
    loudness.check_meter_audio(audio, sample_rate)
    sr = int(sample_rate)
    channels, n = audio.shape
    stereo = channels >= 2
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sr)
    if n >= N_FFT:
        # scaled so each frame's bins sum to its mean square (one-sided, the window's energy divided out);
        # the mid and the side are made one at a time, each only for its spectra
        scale = 2.0 / (N_FFT * float(np.sum(np.hanning(N_FFT) ** 2)))
        mid_power = _frame_power(_mid(audio[:2]), N_FFT, HOP, scale=scale)
        side_power = _frame_power(_side(audio[:2]), N_FFT, HOP, scale=scale) if stereo else None
    else:
        mid_power = np.zeros((0, freqs.size), np.float32)
        side_power = np.zeros((0, freqs.size), np.float32) if stereo else None

    energy, lengths = loudness._prepared_energy(np.ascontiguousarray(audio), sr)
    momentary = loudness._window_lufs(energy, lengths, loudness._hops_per(loudness.BLOCK_S))
    short_term = loudness._window_lufs(energy, lengths, loudness._hops_per(loudness.SHORT_TERM_S))
    integrated = loudness.integrated_from_blocks(momentary)

    peaks = np.maximum(audio.max(axis=1), -audio.min(axis=1)) if n else np.zeros(channels)  # no |audio| copy
    peak = float(peaks.max()) if n else 0.0
    sums = audio.sum(axis=1, dtype=np.float64)
    squares = np.einsum("ij,ij->", audio, audio, dtype=np.float64) if n else 0.0
    mean_square = float(squares) / max(1, audio.size)
    rms = 10.0 * math.log10(mean_square) if mean_square > 0 else float("-inf")
    clip = np.zeros(n // sr + 1, dtype=np.int64)
    for c in range(channels):
        # clipping holds the signal at one value: runs at (nearly) the channel's own peak,
        # which also catches a clipped file normalised afterwards; ignored below -6 dBFS
        if peaks[c] >= 0.5:
            clip += _clip_runs(np.ascontiguousarray(audio[c]), float(peaks[c]) * 0.999, 3, sr)
    tail = audio[:, max(0, n - int(0.01 * sr)):]
    tail_peak = float(np.abs(tail).max()) if tail.size else 0.0
    return SignalAnalysis(
        name=name, role=role, sample_rate=sr, samples=n, channels=channels, freqs=freqs,
        mid_power=mid_power, side_power=side_power, hop_energy=energy, hop_lengths=lengths,
        momentary=momentary, short_term=short_term, integrated_lufs=integrated, peak=peak,
        rms_dbfs=rms, dc=sums / max(1, n), clip_runs=clip,
        first=audio[:, 0].astype(np.float64) if n else np.zeros(channels),
        edge_tail_dbfs=20.0 * math.log10(tail_peak) if tail_peak > 0 else float("-inf"),
        _audio=audio,
    )
