"""Reductions of spectra that the diagnosis' passes and measures share: levels in dB, band means,
the resonance profile of a long-term spectrum (``meters.spectral``'s) and its candidate peaks,
spectral flatness.

Spectra are ``(..., bins)`` powers; frequencies in Hz.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

from stemmaster.meters.spectral import resonance_of_spectrum

RESONANCE_BAND_HZ = (1000.0, 10000.0)
SIBILANCE_BAND_HZ = (4500.0, 11000.0)
_FLOOR = 1e-20


def db(x):
    """Power ratio in dB (``10 log10``), floored at -200 dB."""
    return 10.0 * np.log10(np.maximum(x, _FLOOR))


def band_means(power: np.ndarray, freqs: np.ndarray, grid: np.ndarray, half_octave: float) -> np.ndarray:
    """Mean power per bin within ``grid * 2**(+-half_octave)`` (at least one bin), along the last axis."""
    cumulative = np.concatenate([np.zeros(power.shape[:-1] + (1,)), np.cumsum(power, axis=-1, dtype=np.float64)],
                                axis=-1)
    lo = np.searchsorted(freqs, grid * 2.0 ** (-half_octave))
    hi = np.maximum(np.searchsorted(freqs, grid * 2.0 ** half_octave), lo + 1)
    hi = np.minimum(hi, freqs.size)
    lo = np.minimum(lo, hi - 1)
    return (cumulative[..., hi] - cumulative[..., lo]) / (hi - lo)


def resonance_curve(freqs: np.ndarray, power: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``meters.spectral.resonance_profile`` from the long-term spectrum ``power`` (``(bins,)`` at
    ``freqs``, 8192-point Hann frames) instead of the audio: ``(grid_hz, excess_db)``."""
    grid, _level, excess = resonance_of_spectrum(freqs, power, sample_rate)
    return grid, excess


def resonance_candidates(grid: np.ndarray, excess: np.ndarray, band_hz: tuple[float, float] = RESONANCE_BAND_HZ,
                         count: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest peaks of ``excess`` within ``band_hz`` (the largest point when none is a
    peak): ``(frequencies_hz, excess_db)``, strongest first; empty when nothing in the band is finite."""
    inside = (grid >= band_hz[0]) & (grid <= band_hz[1]) & np.isfinite(excess)
    if not inside.any():
        return np.zeros(0), np.zeros(0)
    curve = np.where(inside, excess, -1e9)
    peaks, _ = find_peaks(curve)
    peaks = peaks[curve[peaks] > -1e8]
    if peaks.size == 0:
        peaks = np.array([int(np.argmax(curve))])
    peaks = peaks[np.argsort(curve[peaks])[::-1][:count]]
    return grid[peaks], curve[peaks]


def standing_counts(power: np.ndarray, freqs: np.ndarray, centres_hz: np.ndarray, over_db: float = 3.0) -> np.ndarray:
    """For each of ``centres_hz``: in how many of the frames ``power`` ``(frames, bins)`` its
    1/6-octave band stands at least ``over_db`` over the mean (in dB) of its neighbours 1/3 octave away."""
    k = centres_hz.size
    three = np.concatenate([centres_hz * 2.0 ** (-1.0 / 3.0), centres_hz, centres_hz * 2.0 ** (1.0 / 3.0)])
    per_frame = db(band_means(power.astype(np.float64), freqs, three, 1.0 / 12.0))
    stands = per_frame[:, k:2 * k] - 0.5 * (per_frame[:, :k] + per_frame[:, 2 * k:])
    return np.count_nonzero(stands >= over_db, axis=0)


def flatness(power: np.ndarray) -> np.ndarray:
    """Spectral flatness of each row of ``power`` ``(frames, bins)``: geometric over arithmetic mean
    (1 for white noise, near 0 for tones), float64 ``(frames,)``."""
    spectra = power.astype(np.float64) + 1e-30
    return np.exp(np.mean(np.log(spectra), axis=1)) / np.mean(spectra, axis=1)
