"""Block-wise helpers shared by the release checks: sources checked on the way in and one pass
feeding several meters (a resampled view of a source is ``audio_source.ResampledSource``).

Every check reads its audio a block at a time (``CHECK_BLOCK`` frames,
shaped ``(channels, frames)``), so what it holds does not grow with the
song's length. Arrays are still accepted everywhere: they are wrapped as an
``ArraySource`` (see :mod:`stemmaster.audio_source`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np

from stemmaster.audio_source import AudioSource, as_source
from stemmaster.errors import AudioError
from stemmaster.meters.loudness import MIN_SAMPLE_RATE

CHECK_BLOCK = 1 << 18  # frames per block: about 6 s at 44.1 kHz, 2 MB of stereo float32


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
        raise AudioError(f"{what}: mono or stereo audio shaped (channels, samples) needed, got {shape}")
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

