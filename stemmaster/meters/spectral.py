"""Spectral measures of a stem, for showing what a repair did (and, later, for diagnosis).

All take audio shaped ``(channels, samples)``; levels are in dB relative to
full scale unless the name says otherwise.

Each measure is an accumulator fed consecutive blocks ``(channels, n)`` of a
signal (``_Sibilance``, ``_Resonance``, ``_SideLow``, ``_HitCrest``), keeping
per-frame or per-window figures and per-bin sums only, with the frames that
straddle a block boundary completed from the next block (``FrameCarry``); the
whole-array functions feed it the whole signal as one block.
``meters.effects.EffectMeter`` feeds them a repair's input and output in blocks.
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


def _frame_blocks(x: np.ndarray, n_fft: int, hop: int, scale: float = 1.0):
    """Yield ``(first frame, power spectra (frames, n_fft // 2 + 1) float32)`` of Hann-windowed
    frames, a block of frames at a time: for measures that reduce each block as it comes."""
    window = (np.hanning(n_fft) * np.sqrt(scale)).astype(np.float32)
    frames = sliding_window_view(np.asarray(x, dtype=np.float32), n_fft)[::hop]
    block = max(1, _BLOCK_SAMPLES // n_fft)
    for start in range(0, frames.shape[0], block):
        z = scipy.fft.rfft(frames[start:start + block] * window, axis=1, workers=-1)
        yield start, np.add(z.real ** 2, z.imag ** 2)


class FrameCarry:
    """Consecutive blocks ``(..., n)`` of one signal regrouped into runs of whole frames of
    ``n_fft`` samples every ``hop`` samples, on the whole signal's grid from sample 0: a frame
    that straddles a block boundary is completed from the next block (the samples from the
    next frame's start on are carried, fewer than ``n_fft``). The incomplete last frame of
    the signal is never given out; ``tail`` holds it."""

    def __init__(self, n_fft: int, hop: int) -> None:
        if n_fft < 1 or hop < 1:
            raise ValueError(f"frames of {n_fft} samples every {hop}")
        self.n_fft, self.hop = int(n_fft), int(hop)
        self.frames = 0  # complete frames given out so far
        self.samples = 0  # samples fed so far
        self._carry: np.ndarray | None = None  # (..., n_fft): the carried samples first
        self._held = 0  # carried samples, from the next frame's start on

    @property
    def tail(self) -> np.ndarray | None:
        """The carried samples, from the next frame's start on ``(..., < n_fft)`` (None before any block)."""
        return None if self._carry is None else self._carry[..., :self._held]

    def push(self, block: np.ndarray) -> tuple[int, np.ndarray]:
        """Feed the next ``block`` ``(..., n)``: ``(index of the first frame, run)`` where the run
        ``(..., (k - 1) * hop + n_fft)`` holds the ``k`` frames now complete (``k`` may be 0: an empty
        run). Without carried samples the run is a view of ``block``."""
        block = np.asarray(block)
        n = block.shape[-1]
        self.samples += n
        if self._carry is None:
            self._carry = np.empty(block.shape[:-1] + (self.n_fft,), dtype=block.dtype)
        first, held = self.frames, self._held
        if held + n < self.n_fft:  # no frame completes: carry the block (short blocks stay cheap)
            self._carry[..., held:held + n] = block
            self._held += n
            return first, block[..., :0]
        data = np.concatenate([self._carry[..., :held], block], axis=-1) if held else block
        k = (data.shape[-1] - self.n_fft) // self.hop + 1
        self.frames += k
        self._held = data.shape[-1] - k * self.hop
        self._carry[..., :self._held] = data[..., k * self.hop:]
        return first, data[..., :(k - 1) * self.hop + self.n_fft]


class _LongTermSpectrum:
    """Per-bin power sums of Hann frames of ``n_fft`` samples laid end to end (hop ``n_fft``) of a
    signal fed in blocks ``(n,)``, averaged into the long-term spectrum. A signal shorter than
    one frame is read as one frame as long as the signal (held until then: under ``n_fft`` samples)."""

    def __init__(self, n_fft: int = 8192) -> None:
        self._frames = FrameCarry(n_fft, n_fft)
        self._power_sum = np.zeros(n_fft // 2 + 1)  # float64, per bin

    @property
    def samples(self) -> int:
        return self._frames.samples

    def add(self, x: np.ndarray) -> None:
        n_fft = self._frames.n_fft
        _, run = self._frames.push(x)
        if run.shape[-1]:
            for _, power in _frame_blocks(run, n_fft, n_fft):
                self._power_sum += power.sum(axis=0, dtype=np.float64)

    def spectrum(self, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """(frequencies in Hz, mean power per frame and bin) of what was fed (at least one sample)."""
        if self._frames.frames == 0:  # shorter than a frame: one frame as long as the signal
            if self.samples == 0:
                raise ValueError("no samples: no long-term spectrum")
            short = _LongTermSpectrum(self.samples)
            short.add(self._frames.tail)
            return short.spectrum(sample_rate)
        n_fft = self._frames.n_fft
        return np.fft.rfftfreq(n_fft, 1.0 / sample_rate), self._power_sum / self._frames.frames


def _low_energy_of(freqs_hz: np.ndarray, power: np.ndarray, below_hz: float) -> float:
    """Mean square below ``below_hz`` from a long-term spectrum ``(freqs_hz, power)``."""
    n_fft = 2 * (freqs_hz.shape[0] - 1)
    scale = 2.0 / (n_fft * np.sum(np.hanning(n_fft) ** 2))  # one-sided power per frame -> mean square
    return float(power[freqs_hz < below_hz].sum() * scale)


class _SideLow:
    """The side's energy below a frequency (``levels``) of audio fed in blocks ``(channels, n)``:
    the long-term spectra of the side (and, when ``relative``, of the mid) accumulated per bin."""

    def __init__(self, relative: bool = True) -> None:
        self._side = _LongTermSpectrum()
        self._mid = _LongTermSpectrum() if relative else None

    def add(self, audio: np.ndarray) -> None:
        self._side.add(_side(audio))
        if self._mid is not None:
            self._mid.add(_mid(audio))

    def levels(self, sample_rate: int, below_hz: float = 100.0) -> dict[str, float]:
        if self._side.samples < 256:
            return {"side_below_hz": below_hz, "side_low_dbfs": float("-inf"), "side_to_mid_low_db": float("nan")}
        s = _low_energy_of(*self._side.spectrum(sample_rate), below_hz)
        relative_db = float("nan")
        if self._mid is not None:
            relative_db = float(_db(s) - _db(_low_energy_of(*self._mid.spectrum(sample_rate), below_hz)))
        return {"side_below_hz": below_hz, "side_low_dbfs": float(_db(s)), "side_to_mid_low_db": relative_db}


class _Sibilance:
    """Per 1024-sample frame (hop 512) of the mid of audio fed in blocks ``(channels, n)``: the
    sibilance-band (4.5-11 kHz) energy and the total energy, two floats a frame."""

    N_FFT, HOP = 1024, 512

    def __init__(self, sample_rate: int) -> None:
        f = np.fft.rfftfreq(self.N_FFT, 1.0 / sample_rate)
        self._b0, self._b1 = np.searchsorted(f, SIBILANCE_BAND_HZ)  # the band's bins: [b0, b1)
        self._frames = FrameCarry(self.N_FFT, self.HOP)
        self._band: list[np.ndarray] = []
        self._total: list[np.ndarray] = []

    def add(self, audio: np.ndarray) -> None:
        _, run = self._frames.push(_mid(audio))
        if run.shape[-1]:
            for _, power in _frame_blocks(run, self.N_FFT, self.HOP):
                self._band.append(power[:, self._b0:self._b1].sum(axis=1, dtype=np.float64))
                self._total.append(power.sum(axis=1, dtype=np.float64))

    def energies(self) -> tuple[np.ndarray, np.ndarray]:
        """(sibilance-band energy, total energy) per frame, float64 ``(frames,)`` each."""
        if not self._band:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(self._band), np.concatenate(self._total)


def _sibilance_energies(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per 1024-sample frame (hop 512) of the mid: (sibilance-band energy, total energy)."""
    meter = _Sibilance(sample_rate)
    meter.add(audio)
    return meter.energies()


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


def _sibilance_change(before: _Sibilance, after: _Sibilance) -> dict[str, float]:
    band, total = before.energies()
    frames = _top_frames(band, total, 0.05)
    band_after, total_after = after.energies()
    return {"before": _sibilance_of(band, total, frames), "after": _sibilance_of(band_after, total_after, frames)}


def sibilance_change_db(before: np.ndarray, after: np.ndarray, sample_rate: int) -> dict[str, float]:
    """``sibilance_db`` of ``before`` and of ``after`` (each ``(channels, samples)``) on the sibilant
    frames of ``before`` (what a de-esser did), each signal analysed once."""
    meters = _Sibilance(sample_rate), _Sibilance(sample_rate)
    meters[0].add(before)
    meters[1].add(after)
    return _sibilance_change(*meters)


def sibilance_db(audio: np.ndarray, sample_rate: int, frames: np.ndarray | None = None) -> float:
    """Sibilance-band (4.5-11 kHz) energy in the sibilant frames over the stem's mean frame energy, dB.

    Pass the ``frames`` found on the unprocessed stem to compare before and after on the same frames.
    """
    band, total = _sibilance_energies(audio, sample_rate)
    if frames is None:
        frames = _top_frames(band, total, 0.05)
    return _sibilance_of(band, total, frames)


class _Resonance:
    """``resonance_profile`` of audio fed in blocks ``(channels, n)``: the mid's long-term spectrum
    (8192-point Hann frames end to end) accumulated per bin."""

    def __init__(self) -> None:
        self._spectrum = _LongTermSpectrum()

    def add(self, audio: np.ndarray) -> None:
        self._spectrum.add(_mid(audio))

    def profile(self, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(frequencies_hz, level_db, excess_db)`` on the 48-per-octave grid."""
        grid = np.geomspace(50.0, min(20000.0, sample_rate * 0.45), 48 * 9)
        if self._spectrum.samples < 256:
            nan = np.full(grid.shape, np.nan)
            return grid, nan, nan
        return resonance_of_spectrum(*self._spectrum.spectrum(sample_rate), sample_rate)


def resonance_of_spectrum(freqs_hz: np.ndarray, power: np.ndarray, sample_rate: int
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``resonance_profile`` from a long-term power spectrum ``power`` ``(bins,)`` at ``freqs_hz``
    (8192-point Hann frames): ``(grid_hz, level_db, excess_db)``, the 1/6-octave level on a
    48-per-octave grid and its excess over the median across +-1/3 octave."""
    grid = np.geomspace(50.0, min(20000.0, sample_rate * 0.45), 48 * 9)
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    lo = np.searchsorted(freqs_hz, grid * 2.0 ** (-1.0 / 12.0))
    hi = np.maximum(np.searchsorted(freqs_hz, grid * 2.0 ** (1.0 / 12.0)), lo + 1)
    level = _db((cumulative[hi] - cumulative[lo]) / (hi - lo))
    envelope = median_filter(level, size=33, mode="nearest")  # +-16 points = +-1/3 octave
    return grid, level, level - envelope


def resonance_profile(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The long-term spectrum of ``audio`` ``(channels, samples)`` on a 48-per-octave grid:
    ``(frequencies_hz, level_db, excess_db)``.

    The long-term power spectrum (8192-point Hann frames) is averaged over
    1/6 octave around each grid point, which blurs a voice's harmonic lines and
    the formants of its changing vowels; the excess is the level over the
    median of that over +-1/3 octave. A fixed resonance (a harsh 3 kHz ring)
    stands out by its excess. (At 1/12 octave the demo voice's formant near
    1.75 kHz outranks its planted 3 kHz resonance.)
    """
    meter = _Resonance()
    meter.add(audio)
    return meter.profile(sample_rate)


def strongest_resonance(audio: np.ndarray, sample_rate: int,
                        band_hz: tuple[float, float] = HARSH_BAND_HZ) -> dict[str, float]:
    """The largest excess of the long-term spectrum over its envelope within ``band_hz``."""
    grid, _, excess = resonance_profile(audio, sample_rate)
    inside = np.flatnonzero((grid >= band_hz[0]) & (grid <= band_hz[1]))
    if not np.isfinite(excess[inside]).any():
        return {"frequency_hz": float("nan"), "excess_db": float("nan")}
    j = int(inside[np.nanargmax(excess[inside])])
    return {"frequency_hz": float(grid[j]), "excess_db": float(excess[j])}


def _largest_cut(before: _Resonance, after: _Resonance, sample_rate: int,
                 band_hz: tuple[float, float] = HARSH_BAND_HZ) -> dict[str, float]:
    grid, level_b, excess_b = before.profile(sample_rate)
    _, level_a, excess_a = after.profile(sample_rate)
    inside = np.flatnonzero((grid >= band_hz[0]) & (grid <= band_hz[1]))
    cut = level_b - level_a
    if not np.isfinite(cut[inside]).any():
        nan = float("nan")
        return {"frequency_hz": nan, "cut_db": nan, "before_db": nan, "after_db": nan}
    j = int(inside[np.nanargmax(cut[inside])])
    return {"frequency_hz": float(grid[j]), "cut_db": float(cut[j]),
            "before_db": float(excess_b[j]), "after_db": float(excess_a[j])}


class _HitCrest:
    """``hit_crest_db`` of audio fed in blocks ``(channels, n)``: per 50 ms window (end to end from
    sample 0), the peak and the mean square of the louder channel, two floats a window."""

    def __init__(self, sample_rate: int) -> None:
        self.window = max(1, int(0.05 * sample_rate))  # samples
        self._windows = FrameCarry(self.window, self.window)
        self._peak: list[np.ndarray] = []
        self._mean_square: list[np.ndarray] = []

    def add(self, audio: np.ndarray) -> None:
        _, run = self._windows.push(audio)
        n = run.shape[-1] // self.window
        if n:
            peak, mean_square = _window_peaks(np.asarray(run, dtype=np.float32), self.window, n)
            self._peak.append(peak)
            self._mean_square.append(mean_square)

    def crest_db(self) -> float:
        """The mean over the top-decile windows by RMS of peak over RMS, dB (NaN without a loud window)."""
        if not self._peak:
            return float("nan")
        return hit_crest_of_windows(np.concatenate(self._peak), np.concatenate(self._mean_square))


def hit_crest_of_windows(peak: np.ndarray, mean_square: np.ndarray) -> float:
    """``hit_crest_db`` from its 50 ms windows' peaks and mean squares (of the louder channel at
    each sample): the mean of peak over RMS (dB) in the top decile of windows by RMS."""
    if peak.size == 0:
        return float("nan")
    rms = np.sqrt(mean_square)
    loud = rms >= np.quantile(rms, 0.9)
    loud &= rms > 0
    if not loud.any():
        return float("nan")
    return float(np.mean(20.0 * np.log10(peak[loud] / rms[loud])))


def hit_crest_db(audio: np.ndarray, sample_rate: int) -> float:
    """Crest factor of the loud moments of ``audio`` ``(channels, samples)``: mean over 50 ms
    windows in the top decile by energy of (peak / RMS) in dB. Rises when transients are
    restored, falls when they are squashed."""
    meter = _HitCrest(sample_rate)
    meter.add(audio)
    return meter.crest_db()


@numba.njit(cache=True, nogil=True)
def _window_peaks(audio: np.ndarray, win: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per window of ``win`` samples (``n`` of them) of ``audio`` ``(channels, samples)``: the
    peak and the mean square of ``max_c |audio[c]|`` (the louder channel at each sample)."""
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
