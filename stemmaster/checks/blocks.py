"""Block-wise helpers shared by the release checks: sources checked on the way in, one pass
feeding several meters, and a resampled view of a source.

Every check reads its audio a block at a time (``CHECK_BLOCK`` frames,
shaped ``(channels, frames)``), so what it holds does not grow with the
song's length. Arrays are still accepted everywhere: they are wrapped as an
``ArraySource`` (see :mod:`stemmaster.audio_source`).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np
from scipy.signal import resample_poly

from stemmaster.audio_source import AudioSource, as_source
from stemmaster.errors import AudioError
from stemmaster.meters.loudness import MIN_SAMPLE_RATE

CHECK_BLOCK = 1 << 18  # frames per block: about 6 s at 44.1 kHz, 2 MB of stereo float32


def stream_meters():
    """The streaming meters module (imported on use)."""
    from stemmaster.meters import stream

    return stream


def check_source(audio: AudioSource | np.ndarray, sample_rate: int, what: str) -> AudioSource:
    """``audio`` (a source or a float array ``(channels, samples)``) as a mono or stereo source at
    ``sample_rate``; raises AudioError (``what`` names the check) otherwise."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"{what}: sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    if isinstance(audio, AudioSource):
        channels = audio.channels
    elif isinstance(audio, np.ndarray) and audio.ndim == 2:
        if audio.dtype not in (np.float32, np.float64):
            raise AudioError(f"{what}: audio must be float32 or float64, got {audio.dtype}")
        channels = audio.shape[0]
    else:
        channels = None
    if channels not in (1, 2):
        shape = (audio.channels, audio.frames) if isinstance(audio, AudioSource) else getattr(audio, "shape", type(audio))
        raise AudioError(f"{what} take mono or stereo audio shaped (channels, samples), got {shape}")
    source = as_source(audio, int(sample_rate))
    if source.sample_rate != int(sample_rate):
        raise AudioError(f"{what}: the audio is at {source.sample_rate} Hz, not {int(sample_rate)} Hz")
    if source.sample_rate < MIN_SAMPLE_RATE:
        raise AudioError(f"{what}: sample rate must be at least {MIN_SAMPLE_RATE} Hz, got {source.sample_rate}")
    return source


def finite_blocks(source: AudioSource, block: int = CHECK_BLOCK) -> Iterator[tuple[int, np.ndarray]]:
    """``source.blocks(block)``, refusing NaN or infinite samples (AudioError, one line)."""
    for start, audio in source.blocks(block):
        if not np.isfinite(audio).all():
            raise AudioError(f"{source.name}: audio contains NaN or infinite samples")
        yield start, audio


def feed(source: AudioSource, meters: Sequence, block: int = CHECK_BLOCK, threads: int = 1) -> None:
    """One pass over ``source``: every block goes to ``m.add(block)`` of each meter in ``meters``,
    with ``threads`` > 1 side by side (the meter kernels release the GIL)."""
    if threads <= 1 or len(meters) < 2:
        for _, audio in finite_blocks(source, block):
            for m in meters:
                m.add(audio)
        return
    with ThreadPoolExecutor(max_workers=min(threads, len(meters))) as pool:
        for _, audio in finite_blocks(source, block):
            list(pool.map(lambda m: m.add(audio), meters))


class ResampledSource(AudioSource):
    """``source`` resampled to ``to_hz``, read a block at a time: the same samples as
    ``audio_io.resample`` of the whole signal (its Kaiser polyphase filter), because each block is
    computed from the input it needs plus the filter's reach on both sides, starting on an input
    sample where the polyphase grid lines up with the whole signal's."""

    def __init__(self, source: AudioSource, to_hz: int) -> None:
        from stemmaster.audio_io import _resample_filter

        self.source = source
        self.name = source.name
        self.channels = source.channels
        self.sample_rate = int(to_hz)
        g = math.gcd(source.sample_rate, self.sample_rate)
        self.up, self.down = self.sample_rate // g, source.sample_rate // g
        self.frames = -(-source.frames * self.up // self.down)
        self._filter = _resample_filter(self.up, self.down)
        self._reach = (self._filter.size - 1) // 2  # taps each side, at the upsampled rate

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._span(start, stop)
        out = np.empty((self.channels, stop - start), dtype=np.float32)
        if stop == start:
            return out
        # input samples reaching outputs start..stop-1 (output m sits at input m * down / up)
        lo = max(0, (start * self.down - self._reach) // self.up - 1)
        lo -= lo % self.down  # the grid of a piece starting at ``lo`` is the whole signal's
        hi = min(self.source.frames, -(-(stop * self.down + self._reach) // self.up) + 1)
        x = self.source.read(lo, hi)
        offset = lo * self.up // self.down
        for ch in range(self.channels):
            y = resample_poly(x[ch].astype(np.float64), self.up, self.down, window=self._filter)
            out[ch] = y[start - offset:stop - offset]
        return out
