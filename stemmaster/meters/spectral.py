"""Spectral measures of a stem, for showing what a repair did (and, later, for diagnosis).

All take audio shaped ``(channels, samples)``; levels are in dB relative to
full scale unless the name says otherwise.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import median_filter

SIBILANCE_BAND_HZ = (4500.0, 11000.0)
HARSH_BAND_HZ = (1000.0, 10000.0)
_FLOOR = 1e-20


def _db(energy: np.ndarray | float) -> np.ndarray | float:
    return 10.0 * np.log10(np.maximum(energy, _FLOOR))


@numba.njit(cache=True, nogil=True)
def _mid_side_kernel(left: np.ndarray, right: np.ndarray, mid: np.ndarray, side: np.ndarray) -> None:
    for i in range(left.shape[0]):
        a = left[i]
        b = right[i]
        mid[i] = 0.5 * (a + b)
        side[i] = 0.5 * (a - b)


@numba.njit(cache=True, nogil=True)
def _half_sum_kernel(left: np.ndarray, right: np.ndarray, sign: float, out: np.ndarray) -> None:
    for i in range(left.shape[0]):
        out[i] = 0.5 * (left[i] + sign * right[i])


def _mid(audio: np.ndarray) -> np.ndarray:
    """The mid alone, float32 (as ``_mid_side(audio)[0]``, without making the side)."""
    audio = np.asarray(audio)
    if audio.shape[0] < 2:
        return audio[0].astype(np.float32)
    out = np.empty(audio.shape[1], dtype=np.float32)
    _half_sum_kernel(np.ascontiguousarray(audio[0]), np.ascontiguousarray(audio[1]), 1.0, out)
    return out


def _side(audio: np.ndarray) -> np.ndarray:
    """The side alone, float32 (as ``_mid_side(audio)[1]``)."""
    audio = np.asarray(audio)
    out = np.zeros(audio.shape[1], dtype=np.float32)
    if audio.shape[0] >= 2:
        _half_sum_kernel(np.ascontiguousarray(audio[0]), np.ascontiguousarray(audio[1]), -1.0, out)
    return out


def _mid_side(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mid and side in float32 (the measures here take float32 FFTs; 1e-7 is far below what they resolve)."""
    audio = np.asarray(audio)
    if audio.shape[0] < 2:
        return audio[0].astype(np.float32), np.zeros(audio.shape[1], dtype=np.float32)
    mid = np.empty(audio.shape[1], dtype=np.float32)
    side = np.empty(audio.shape[1], dtype=np.float32)
    _mid_side_kernel(np.ascontiguousarray(audio[0]), np.ascontiguousarray(audio[1]), mid, side)
    return mid, side


_BLOCK_SAMPLES = 1 << 21  # frames per FFT block hold this many samples: the windowed copy and spectra stay small


def _frame_power(x: np.ndarray, n_fft: int, hop: int, *, scale: float = 1.0) -> np.ndarray:
    """Power spectra of Hann-windowed frames, shaped ``(frames, n_fft // 2 + 1)`` float32, times
    ``scale`` (folded into the window). Computed a block of frames at a time: the windowed copy
    and the complex spectra of a whole song at once would be four times the size of the result."""
    frames = (np.asarray(x).shape[0] - n_fft) // hop + 1
    out = np.empty((max(frames, 0), n_fft // 2 + 1), dtype=np.float32)
    for start, power in _frame_blocks(x, n_fft, hop, scale):
        out[start:start + power.shape[0]] = power
    return out


def _frame_blocks(x: np.ndarray, n_fft: int, hop: int, scale: float = 1.0):
    """Yield ``(first frame, power spectra (frames, n_fft // 2 + 1) float32)`` of Hann-windowed
    frames, a block of frames at a time: for measures that reduce each block as it comes."""
    window = (np.hanning(n_fft) * np.sqrt(scale)).astype(np.float32)
    frames = sliding_window_view(np.asarray(x, dtype=np.float32), n_fft)[::hop]
    block = max(1, _BLOCK_SAMPLES // n_fft)
    for start in range(0, frames.shape[0], block):
        z = scipy.fft.rfft(frames[start:start + block] * window, axis=1, workers=-1)
        yield start, np.add(z.real ** 2, z.imag ** 2)


def _long_term_spectrum(x: np.ndarray, sample_rate: int, n_fft: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectrum over non-overlapping Hann frames: (frequencies in Hz, power)."""
    n_fft = min(n_fft, x.shape[0])
    total = np.zeros(n_fft // 2 + 1)
    frames = 0
    for _, power in _frame_blocks(x, n_fft, n_fft):
        total += power.sum(axis=0, dtype=np.float64)
        frames += power.shape[0]
    return np.fft.rfftfreq(n_fft, 1.0 / sample_rate), total / frames


def _low_energy(x: np.ndarray, sample_rate: int, below_hz: float) -> float:
    """Mean square of ``x`` below ``below_hz``, from its long-term spectrum."""
    f, p = _long_term_spectrum(x, sample_rate)
    n_fft = 2 * (f.shape[0] - 1)
    scale = 2.0 / (n_fft * np.sum(np.hanning(n_fft) ** 2))  # one-sided power per frame -> mean square
    return float(p[f < below_hz].sum() * scale)


def side_low_db(audio: np.ndarray, sample_rate: int, below_hz: float = 100.0, *,
                relative: bool = True) -> dict[str, float]:
    """Side energy below ``below_hz`` from the long-term spectrum (5.4 Hz bins at 44.1 kHz):
    absolute in dBFS and, unless ``relative`` is off (then NaN: half the work), relative to
    the mid's energy there in dB."""
    if np.asarray(audio).shape[1] < 256:
        return {"side_below_hz": below_hz, "side_low_dbfs": float("-inf"), "side_to_mid_low_db": float("nan")}
    s = _low_energy(_side(audio), sample_rate, below_hz)
    relative_db = float(_db(s) - _db(_low_energy(_mid(audio), sample_rate, below_hz))) if relative else float("nan")
    return {"side_below_hz": below_hz, "side_low_dbfs": float(_db(s)), "side_to_mid_low_db": relative_db}


def _sibilance_energies(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per 1024-sample frame (hop 512) of the mid: (sibilance-band energy, total energy)."""
    if np.asarray(audio).shape[1] < 1024:
        return np.zeros(0), np.zeros(0)
    mid = _mid(audio)
    f = np.fft.rfftfreq(1024, 1.0 / sample_rate)
    b0, b1 = np.searchsorted(f, SIBILANCE_BAND_HZ)  # the band's bins: [b0, b1)
    frames = (mid.shape[0] - 1024) // 512 + 1
    band, total = np.empty(frames), np.empty(frames)
    for start, power in _frame_blocks(mid, 1024, 512):
        stop = start + power.shape[0]
        band[start:stop] = power[:, b0:b1].sum(axis=1, dtype=np.float64)
        total[start:stop] = power.sum(axis=1, dtype=np.float64)
    return band, total


def sibilant_frames(audio: np.ndarray, sample_rate: int, *, top_fraction: float = 0.05) -> np.ndarray:
    """Indices of the frames (1024 samples, hop 512) whose sibilance-band energy is in the top
    ``top_fraction`` of the non-silent frames."""
    band, total = _sibilance_energies(audio, sample_rate)
    return _top_frames(band, total, top_fraction)


def _top_frames(band: np.ndarray, total: np.ndarray, top_fraction: float) -> np.ndarray:
    live = np.flatnonzero(total > total.max() * 1e-6) if total.size else np.zeros(0, int)
    if live.size == 0:
        return live
    k = max(1, int(round(live.size * top_fraction)))
    return np.sort(live[np.argsort(band[live])[::-1][:k]])


def _sibilance_of(band: np.ndarray, total: np.ndarray, frames: np.ndarray) -> float:
    if band.size == 0 or frames.size == 0:
        return float("-inf")
    return float(_db(band[frames].mean()) - _db(total.mean()))


def sibilance_change_db(before: np.ndarray, after: np.ndarray, sample_rate: int) -> dict[str, float]:
    """``sibilance_db`` of ``before`` and of ``after`` on the sibilant frames of ``before``
    (what a de-esser did), each signal analysed once."""
    band, total = _sibilance_energies(before, sample_rate)
    frames = _top_frames(band, total, 0.05)
    band_after, total_after = _sibilance_energies(after, sample_rate)
    return {"before": _sibilance_of(band, total, frames), "after": _sibilance_of(band_after, total_after, frames)}


def sibilance_db(audio: np.ndarray, sample_rate: int, frames: np.ndarray | None = None) -> float:
    """Sibilance-band (4.5-11 kHz) energy in the sibilant frames over the stem's mean frame energy, dB.

    Pass the ``frames`` found on the unprocessed stem to compare before and after on the same frames.
    """
    band, total = _sibilance_energies(audio, sample_rate)
    if frames is None:
        frames = _top_frames(band, total, 0.05)
    return _sibilance_of(band, total, frames)


def resonance_profile(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The long-term spectrum on a 48-per-octave grid: ``(frequencies_hz, level_db, excess_db)``.

    The long-term power spectrum (8192-point Hann frames) is averaged over
    1/6 octave around each grid point, which blurs a voice's harmonic lines and
    the formants of its changing vowels; the excess is the level over the
    median of that over +-1/3 octave. A fixed resonance (a harsh 3 kHz ring)
    stands out by its excess. (At 1/12 octave the demo voice's formant near
    1.75 kHz outranks its planted 3 kHz resonance.)
    """
    grid = np.geomspace(50.0, min(20000.0, sample_rate * 0.45), 48 * 9)
    if np.asarray(audio).shape[1] < 256:
        nan = np.full(grid.shape, np.nan)
        return grid, nan, nan
    f, p = _long_term_spectrum(_mid(audio), sample_rate)
    cumulative = np.concatenate([[0.0], np.cumsum(p)])
    lo = np.searchsorted(f, grid * 2.0 ** (-1.0 / 12.0))
    hi = np.maximum(np.searchsorted(f, grid * 2.0 ** (1.0 / 12.0)), lo + 1)
    level = _db((cumulative[hi] - cumulative[lo]) / (hi - lo))
    envelope = median_filter(level, size=33, mode="nearest")  # +-16 points = +-1/3 octave
    return grid, level, level - envelope


def strongest_resonance(audio: np.ndarray, sample_rate: int,
                        band_hz: tuple[float, float] = HARSH_BAND_HZ) -> dict[str, float]:
    """The largest excess of the long-term spectrum over its envelope within ``band_hz``."""
    grid, _, excess = resonance_profile(audio, sample_rate)
    inside = np.flatnonzero((grid >= band_hz[0]) & (grid <= band_hz[1]))
    if not np.isfinite(excess[inside]).any():
        return {"frequency_hz": float("nan"), "excess_db": float("nan")}
    j = int(inside[np.nanargmax(excess[inside])])
    return {"frequency_hz": float(grid[j]), "excess_db": float(excess[j])}


def largest_cut(before: np.ndarray, after: np.ndarray, sample_rate: int,
                band_hz: tuple[float, float] = HARSH_BAND_HZ) -> dict[str, float]:
    """Where a repair lowered the long-term spectrum most within ``band_hz`` (1/6-octave resolution),
    by how much, and the excess over the envelope there before and after."""
    grid, level_b, excess_b = resonance_profile(before, sample_rate)
    _, level_a, excess_a = resonance_profile(after, sample_rate)
    inside = np.flatnonzero((grid >= band_hz[0]) & (grid <= band_hz[1]))
    cut = level_b - level_a
    if not np.isfinite(cut[inside]).any():
        nan = float("nan")
        return {"frequency_hz": nan, "cut_db": nan, "before_db": nan, "after_db": nan}
    j = int(inside[np.nanargmax(cut[inside])])
    return {"frequency_hz": float(grid[j]), "cut_db": float(cut[j]),
            "before_db": float(excess_b[j]), "after_db": float(excess_a[j])}


def hit_crest_db(audio: np.ndarray, sample_rate: int) -> float:
    """Crest factor of the loud moments: mean over 50 ms windows in the top decile by energy of
    (peak / RMS) in dB. Rises when transients are restored, falls when they are squashed."""
    audio = np.asarray(audio)
    win = max(1, int(0.05 * sample_rate))
    n = audio.shape[1] // win
    if n == 0:
        return float("nan")
    peak, mean_square = _window_peaks(np.ascontiguousarray(audio, dtype=np.float32), win, n)
    rms = np.sqrt(mean_square)
    loud = rms >= np.quantile(rms, 0.9)
    loud &= rms > 0
    if not loud.any():
        return float("nan")
    return float(np.mean(20.0 * np.log10(peak[loud] / rms[loud])))


@numba.njit(cache=True, nogil=True)
def _window_peaks(audio: np.ndarray, win: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per window of ``win`` samples (``n`` of them): the peak and the mean square of
    ``max_c |audio[c]|`` (the louder channel at each sample)."""
    channels = audio.shape[0]
    peak = np.empty(n, dtype=np.float32)
    mean_square = np.empty(n)
    for w in range(n):
        p = np.float32(0.0)
        acc = 0.0
        for k in range(w * win, (w + 1) * win):
            m = np.float32(0.0)
            for c in range(channels):
                m = max(m, abs(audio[c, k]))
            p = max(p, m)
            acc += float(m) * float(m)
        peak[w] = p
        mean_square[w] = acc / win
    return peak, mean_square
