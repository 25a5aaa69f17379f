"""The two passes ``analysis.analyse`` makes over a signal, each fed its blocks ``(channels, n)`` in order.

``FirstPass`` keeps what does not grow with the song beyond a few floats per
2048-sample STFT frame (mid and side energy, sibilant-band energy, the
flatness above 1 kHz), per 100 ms hop (``meters.stream.LoudnessMeter``) and
per 50 ms window (peak and mean square), plus per-bin sums: the mid and side
long-term spectra on the 2048-point grid and the mid's on an 8192-point grid
(the resonance profile's). ``SecondPass`` reads the spectra of frames chosen
from the first pass' whole-song figures (the loud frames, the sibilant ones)
and the runs of clipped samples at each channel's peak, known only then.
"""

from __future__ import annotations

import numpy as np

from stemmaster.diagnosis.blocks import ClipRuns
from stemmaster.diagnosis.spectrum import SIBILANCE_BAND_HZ, flatness, standing_counts
from stemmaster.errors import AudioError
from stemmaster.meters.spectral import FrameCarry, _frame_blocks, _mid, _side, _window_peaks
from stemmaster.meters.stream import LoudnessMeter, PeakMeter

N_FFT = 2048  # the detectors' STFT: Hann frames end to end (hop = N_FFT) from sample 0
LONG_FFT = 8192  # the resonance profile's long-term spectrum
FLATNESS_BAND_HZ = (1000.0, 16000.0)  # capped at 0.45 of the sample rate
_SCALE = 2.0 / (N_FFT * float(np.sum(np.hanning(N_FFT) ** 2)))  # a frame's bins sum to its mean square


def frame_freqs(sample_rate: int) -> np.ndarray:
    return np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)


def _spectra(chunk: np.ndarray, n_fft: int, scale: float = 1.0):
    """Power spectra ``(frames, bins)`` float32 of a run of whole frames, a block of frames at a time."""
    if chunk.shape[-1] < n_fft:
        return
    for _start, power in _frame_blocks(chunk, n_fft, n_fft, scale):
        yield power


class FirstPass:
    """The whole-song figures of a signal of ``frames`` samples, ``channels`` (1 or 2) at ``sample_rate``."""

    def __init__(self, name: str, sample_rate: int, channels: int, frames: int) -> None:
        self.name, self.sample_rate, self.channels, self.frames = name, int(sample_rate), int(channels), int(frames)
        sr = self.sample_rate
        freqs = frame_freqs(sr)
        self._sibilant = (freqs >= SIBILANCE_BAND_HZ[0]) & (freqs < SIBILANCE_BAND_HZ[1])
        self._flat = (freqs >= FLATNESS_BAND_HZ[0]) & (freqs < min(FLATNESS_BAND_HZ[1], 0.45 * sr))
        self.loudness = LoudnessMeter(sr, channels)
        self.peak_meter = PeakMeter()
        self.window = max(1, int(0.05 * sr))  # the hit-crest windows: 50 ms end to end
        self._mid_frames, self._side_frames = FrameCarry(N_FFT, N_FFT), FrameCarry(N_FFT, N_FFT)
        self._long_frames, self._windows = FrameCarry(LONG_FFT, LONG_FFT), FrameCarry(self.window, self.window)
        self.mid_sum = np.zeros(freqs.size)
        self.side_sum = np.zeros(freqs.size)
        self.long_sum = np.zeros(LONG_FFT // 2 + 1)
        self._per_frame: dict[str, list[np.ndarray]] = {"mid": [], "side": [], "sibilant": [], "flatness": []}
        self._per_window: dict[str, list[np.ndarray]] = {"peak": [], "mean_square": []}
        self.peaks = np.zeros(channels)
        self.sums = np.zeros(channels)
        self.squares = 0.0
        self.first = np.zeros(channels)
        self.loud_first = self.loud_last = -1  # first and last sample at or above -60 dBFS on any channel
        self.tail_peak = 0.0  # largest |sample| of the last 10 ms
        self._tail_start = max(0, self.frames - int(0.01 * sr))

    def add(self, start: int, block: np.ndarray) -> None:
        if not np.isfinite(block).all():
            raise AudioError(f"{self.name}: NaN or Inf samples; cannot diagnose")
        n = block.shape[1]
        if n == 0:
            return
        self.loudness.add(block)
        self.peak_meter.add(block)
        self.peaks = np.maximum(self.peaks, np.maximum(block.max(axis=1), -block.min(axis=1)))
        self.sums += block.sum(axis=1, dtype=np.float64)
        self.squares += float(np.einsum("ij,ij->", block, block, dtype=np.float64))
        if start == 0:
            self.first = block[:, 0].astype(np.float64)
        level = np.abs(block).max(axis=0)
        loud = np.flatnonzero(level >= 1e-3)
        if loud.size:
            self.loud_first = int(start + loud[0]) if self.loud_first < 0 else self.loud_first
            self.loud_last = int(start + loud[-1])
        if start + n > self._tail_start:
            self.tail_peak = max(self.tail_peak, float(level[max(0, self._tail_start - start):].max()))
        _, windows = self._windows.push(block)
        if windows.shape[1]:
            peak, mean_square = _window_peaks(np.ascontiguousarray(windows, dtype=np.float32), self.window,
                                              windows.shape[1] // self.window)
            self._per_window["peak"].append(peak)
            self._per_window["mean_square"].append(mean_square)
        mid = _mid(block[:2])
        self._add_mid(mid)
        if self.channels >= 2:
            _, chunk = self._side_frames.push(_side(block[:2]))
            for power in _spectra(chunk, N_FFT, _SCALE):
                self.side_sum += power.sum(axis=0, dtype=np.float64)
                self._per_frame["side"].append(power.sum(axis=1, dtype=np.float64))

    def _add_mid(self, mid: np.ndarray) -> None:
        _, chunk = self._mid_frames.push(mid)
        for power in _spectra(chunk, N_FFT, _SCALE):
            self.mid_sum += power.sum(axis=0, dtype=np.float64)
            self._per_frame["mid"].append(power.sum(axis=1, dtype=np.float64))
            self._per_frame["sibilant"].append(power[:, self._sibilant].sum(axis=1, dtype=np.float64))
            self._per_frame["flatness"].append(flatness(power[:, self._flat]))
        _, chunk = self._long_frames.push(mid)
        for power in _spectra(chunk, LONG_FFT):
            self.long_sum += power.sum(axis=0, dtype=np.float64)

    @property
    def long_frames(self) -> int:
        return self._long_frames.frames

    def per_frame(self, key: str) -> np.ndarray:
        """``(frames,)`` float64: "mid" or "side" energy, "sibilant" (4.5-11 kHz) energy, "flatness"."""
        parts = self._per_frame[key]
        if not parts:
            return np.zeros(self._mid_frames.frames)
        return np.concatenate(parts)

    def per_window(self, key: str) -> np.ndarray:
        parts = self._per_window[key]
        return np.concatenate(parts) if parts else np.zeros(0)


class SecondPass:
    """What needs the first pass' figures: per candidate frequency (``resonance_hz``), in how many of
    the ``loud`` frames its band stands out; the summed spectrum of the ``sibilant`` frames within the
    sibilant band; the clipped runs at ``clip_levels`` (per channel, infinite: not counted)."""

    def __init__(self, sample_rate: int, frames: int, *, loud: np.ndarray, resonance_hz: np.ndarray,
                 sibilant: np.ndarray, clip_levels: np.ndarray) -> None:
        self.freqs = frame_freqs(sample_rate)
        self.band = (self.freqs >= SIBILANCE_BAND_HZ[0]) & (self.freqs < SIBILANCE_BAND_HZ[1])
        self.loud, self.resonance_hz, self.sibilant = loud, resonance_hz, sibilant
        self.standing = np.zeros(resonance_hz.size, dtype=np.int64)
        self.sibilant_sum = np.zeros(int(self.band.sum()))
        self.clips = ClipRuns(clip_levels, frames, sample_rate)
        self._frames = FrameCarry(N_FFT, N_FFT)
        self._spectra = bool(resonance_hz.size) or bool(sibilant.any())

    @property
    def needed(self) -> bool:
        return self._spectra or self.clips.active

    def add(self, start: int, block: np.ndarray) -> None:
        self.clips.add(start, block)
        if not self._spectra:
            return
        first, chunk = self._frames.push(_mid(block[:2]))
        frame = first
        for power in _spectra(chunk, N_FFT, _SCALE):
            span = slice(frame, frame + power.shape[0])
            frame += power.shape[0]
            loud, sibilant = self.loud[span], self.sibilant[span]
            if self.resonance_hz.size and loud.any():
                self.standing += standing_counts(power[loud], self.freqs, self.resonance_hz)
            if sibilant.any():
                self.sibilant_sum += power[sibilant][:, self.band].sum(axis=0, dtype=np.float64)
