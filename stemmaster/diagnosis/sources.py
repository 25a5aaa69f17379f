"""The diagnosis' inputs as ``AudioSource``s: arrays wrapped and checked, stems summed block by block.

Audio is ``(channels, samples)``: an array (float32 or float64) or a source.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from stemmaster.audio_source import BLOCK_FRAMES, ArraySource, AudioSource, ResizedSource, SumSource
from stemmaster.errors import AudioError
from stemmaster.meters.stream import LoudnessMeter


def checked_source(name: str, audio: AudioSource | np.ndarray, sample_rate: int) -> AudioSource:
    """``audio`` as a source of 1 or 2 channels and at least one sample at ``sample_rate`` Hz, or a
    one-line AudioError naming ``name``. (Samples are checked for NaN/Inf as they are read.)"""
    if isinstance(audio, AudioSource):
        source = audio
        shape = (source.channels, source.frames)
    else:
        audio = np.asarray(audio)
        shape = audio.shape
        if audio.ndim == 2 and audio.dtype not in (np.float32, np.float64):
            raise AudioError(f"{name}: expected float32 or float64 audio, got {audio.dtype}")
        source = None
    if len(shape) != 2 or shape[0] not in (1, 2) or shape[1] == 0:
        raise AudioError(f"{name}: expected audio shaped (1 or 2 channels, samples), got {tuple(shape)}")
    if source is None:
        source = ArraySource(audio, int(sample_rate), name=name)
    if source.sample_rate != int(sample_rate):
        raise AudioError(f"{name}: {source.sample_rate} Hz, expected {sample_rate} Hz")
    return source


def sum_of(sources: Sequence[AudioSource], name: str) -> AudioSource:
    """The sum of ``sources`` read block by block (as ``SumSource``; cut to the shortest when their
    lengths differ); a single source as it is."""
    if len(sources) == 1:
        return sources[0]
    shortest = min(s.frames for s in sources)
    return SumSource([s if s.frames == shortest else ResizedSource(s, shortest) for s in sources], name=name)


def gated_loudness_lufs(source: AudioSource, block_frames: int = BLOCK_FRAMES) -> float:
    """``meters.loudness.gated_loudness_lufs`` of ``source``, read block by block, LUFS."""
    meter = LoudnessMeter(source.sample_rate, source.channels)
    for _start, block in source.blocks(block_frames):
        if not np.isfinite(block).all():
            raise AudioError(f"{source.name}: NaN or Inf samples; cannot diagnose")
        meter.add(block)
    return meter.integrated_lufs()
