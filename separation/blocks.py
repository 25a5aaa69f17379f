"""A song read block by block at the model's rate.

The separation engine never holds a whole song: it reads the windows its
segments need (:class:`ModelInput`), resampled to the model's rate by
:class:`stemmaster.audio_source.ResampledSource` (the same samples as
:func:`stemmaster.audio_io.resample` of the whole song); the finished stems go
back to the song's rate through ``ResampledSource.stream`` (see
:mod:`separation.engine`).

Arrays are float32 ``(channels, samples)``; positions are sample indices.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Callable

import numpy as np

from stemmaster.audio_source import BLOCK_FRAMES, AudioSource, ResampledSource
from stemmaster.errors import Cancelled, SeparationError


class CachedSource:
    """Reads of an AudioSource through a few cached blocks of ``block`` frames (thread-safe).

    The engine reads each part of the song several times over (statistics,
    overlapping segments, shifted passes, the residual), nearly in order; a
    compressed file is then decoded about once per pass instead of once per read.
    """

    def __init__(self, source: AudioSource, block: int = BLOCK_FRAMES, blocks_kept: int = 8) -> None:
        self.source, self.block, self.blocks_kept = source, int(block), int(blocks_kept)
        self.frames, self.channels, self.sample_rate = source.frames, source.channels, source.sample_rate
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _chunk(self, k: int) -> np.ndarray:
        with self._lock:
            if k in self._cache:
                self._cache.move_to_end(k)
                return self._cache[k]
        data = self.source.read(k * self.block, min(self.frames, (k + 1) * self.block))
        with self._lock:
            self._cache[k] = data
            while len(self._cache) > self.blocks_kept:
                self._cache.popitem(last=False)
        return data

    def read(self, start: int, stop: int) -> np.ndarray:
        """float32 ``(channels, stop - start)`` for ``0 <= start <= stop <= frames`` (a new array)."""
        out = np.empty((self.channels, stop - start), dtype=np.float32)
        for k in range(start // self.block, -(-stop // self.block)):
            a, b = max(start, k * self.block), min(stop, (k + 1) * self.block)
            out[:, a - start:b - start] = self._chunk(k)[:, a - k * self.block:b - k * self.block]
        return out


class ModelInput:
    """The song as the model sees it: float32 ``(model channels, samples)`` at ``model_hz``.

    Stereo songs stay stereo, mono ones play on both channels; a mono model
    gets the mean of the two. ``measure()`` reads the song once for the
    normalisation (mean and standard deviation of the channel mean, as demucs
    does), after which ``read(start, stop)`` gives ``(x - mean) / std`` with
    zeros outside the song. Samples that are NaN or Inf raise SeparationError.
    """

    def __init__(self, source: AudioSource, model_channels: int, model_hz: int) -> None:
        self.song = CachedSource(source)
        self.song_hz = int(source.sample_rate)
        self.model_hz = int(model_hz)
        self.model_channels = int(model_channels)
        self._at_model_hz = ResampledSource(_ModelChannels(self, source.name), self.model_hz)
        self.frames = self._at_model_hz.frames
        self.mean = self.std = None  # 0-dim float32 tensors once measured

    def stereo(self, start: int, stop: int) -> np.ndarray:
        """Song samples ``[start, stop)`` as float32 ``(2, n)`` at the song's rate (checked finite)."""
        x = self.song.read(start, stop)
        finite = np.isfinite(x)
        if not finite.all():
            first = start + int(np.argmin(finite.all(axis=0)))
            raise SeparationError(f"audio contains NaN/Inf samples (first at {first / self.song_hz:.3f} s); "
                                  f"cannot separate it")
        return x if x.shape[0] == 2 else np.repeat(x, 2, axis=0)

    def _model_channels(self, start: int, stop: int) -> np.ndarray:
        x = self.stereo(start, stop)
        return x if self.model_channels == 2 else x.mean(axis=0, keepdims=True)

    def raw(self, start: int, stop: int) -> np.ndarray:
        """Model-rate samples ``[start, stop)`` (``0 <= start <= stop <= frames``), not normalised."""
        return self._at_model_hz.read(start, stop)

    def measure(self, should_stop: Callable[[], bool] = lambda: False, block: int = BLOCK_FRAMES) -> None:
        """Mean and standard deviation (N - 1) of the channel mean over the whole song, block by block.

        Combined in float64 per block (Chan et al.'s pairwise update), so they
        agree with torch's whole-tensor float32 figures to float32 rounding.
        Stops with :class:`~stemmaster.errors.Cancelled` when ``should_stop()``.
        """
        import torch

        count, mean, m2 = 0, 0.0, 0.0
        for start in range(0, self.frames, block):
            if should_stop():
                raise Cancelled("separation cancelled")
            ref = self.raw(start, min(self.frames, start + block))
            ref = ref[0] if ref.shape[0] == 1 else (ref[0] + ref[1]) / np.float32(2)
            k = ref.size
            block_mean = float(np.mean(ref, dtype=np.float64))
            block_m2 = float(np.sum(np.square(ref - block_mean, dtype=np.float64)))
            delta = block_mean - mean
            total = count + k
            mean += delta * k / total
            m2 += block_m2 + delta * delta * count * k / total
            count = total
        std = math.sqrt(m2 / (count - 1)) if count > 1 else float("nan")
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32) + 1e-8

    def read(self, start: int, stop: int):
        """Normalised model input ``[start, stop)`` as a float32 torch tensor, zeros outside the song."""
        import torch

        a, b = max(0, start), min(self.frames, stop)
        x = torch.zeros(self.model_channels, stop - start, dtype=torch.float32)
        if a < b:
            x[:, a - start:b - start] = (torch.from_numpy(self.raw(a, b)) - self.mean) / self.std
        return x



class _ModelChannels(AudioSource):
    """The song at its own rate in the model's channels (``ModelInput._model_channels``): the source
    ``ModelInput`` reads through ``ResampledSource``."""

    def __init__(self, model_input: ModelInput, name: str) -> None:
        self._input, self.name = model_input, name
        self.sample_rate, self.channels = model_input.song_hz, model_input.model_channels
        self.frames = model_input.song.frames

    def read(self, start: int, stop: int) -> np.ndarray:
        return self._input._model_channels(*self._span(start, stop))
