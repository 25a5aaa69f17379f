"""A song read block by block at the model's rate, and stems resampled back block by block.

The separation engine never holds a whole song: it reads the windows its
segments need (:class:`ModelInput`) and resamples the finished stems back to
the song's rate as they come (:class:`BlockResampler`). Both give the same
samples as resampling the whole signal with :func:`stemmaster.audio_io.resample`
(a symmetric FIR filter whose output sample ``j`` sits at input position
``j * down / up``): a span of the output is computed from a slice of the input
that starts on a multiple of ``down`` (so its output grid is the whole
signal's) and reaches a filter half-length past the span on both sides.

Arrays are float32 ``(channels, samples)``; positions are sample indices.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Callable

import numpy as np

from stemmaster.audio_io import _resample_filter, resample
from stemmaster.audio_source import BLOCK_FRAMES, AudioSource
from stemmaster.errors import Cancelled, SeparationError

Reader = Callable[[int, int], np.ndarray]  # read(start, stop) -> float32 (channels, stop - start)


def _ratio(from_hz: int, to_hz: int) -> tuple[int, int]:
    g = math.gcd(int(from_hz), int(to_hz))
    return int(to_hz) // g, int(from_hz) // g


def resampled_length(n_samples: int, from_hz: int, to_hz: int) -> int:
    """Length of ``n_samples`` resampled from ``from_hz`` to ``to_hz`` (``ceil(n * to / from)``)."""
    up, down = _ratio(from_hz, to_hz)
    return -(-int(n_samples) * up // down)


class _Span:
    """Which input samples an output span needs, for one rate pair."""

    def __init__(self, from_hz: int, to_hz: int) -> None:
        self.from_hz, self.to_hz = int(from_hz), int(to_hz)
        self.up, self.down = _ratio(from_hz, to_hz)
        self.half = (len(_resample_filter(self.up, self.down)) - 1) // 2  # at up * from_hz

    def first_input(self, start: int) -> int:
        """First input sample that output ``start`` needs, rounded down to a multiple of ``down`` (>= 0)."""
        lo = (start * self.down - self.half) // self.up - 1
        return max(0, lo // self.down * self.down)

    def end_input(self, stop: int) -> int:
        """One past the last input sample that outputs before ``stop`` need."""
        return -(-((stop - 1) * self.down + self.half) // self.up) + 2

    def last_output(self, available: int) -> int:
        """One past the last output computable from the first ``available`` input samples (more may follow)."""
        return max(0, ((available - 2) * self.up - self.half) // self.down)

    def compute(self, read: Reader, n_in: int, start: int, stop: int) -> np.ndarray:
        """Outputs ``[start, stop)`` of the ``n_in``-sample signal ``read`` gives, resampled."""
        i0, i1 = self.first_input(start), min(n_in, self.end_input(stop))
        y = resample(read(i0, i1), self.from_hz, self.to_hz)
        base = i0 // self.down * self.up
        return y[:, start - base:stop - base]


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
        self.frames = resampled_length(source.frames, self.song_hz, self.model_hz)
        self._span = None if self.song_hz == self.model_hz else _Span(self.song_hz, self.model_hz)
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
        if self._span is None:
            return self._model_channels(start, stop)
        return self._span.compute(self._model_channels, self.song.frames, start, stop)

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


class BlockResampler:
    """Resample a signal that arrives in consecutive blocks ``(rows, n)``, as if resampled whole.

    ``push(block)`` returns the output samples that are now final (possibly
    none); ``finish()`` the rest, up to ``ceil(total * to_hz / from_hz)``.
    Holds one filter length of input between calls.
    """

    def __init__(self, from_hz: int, to_hz: int, rows: int) -> None:
        self._span = _Span(from_hz, to_hz)
        self._held = np.zeros((rows, 0), dtype=np.float32)
        self._held_start = 0  # input position of _held[:, 0]
        self._received = 0
        self._done = 0  # outputs handed out

    def _read(self, start: int, stop: int) -> np.ndarray:
        return self._held[:, start - self._held_start:stop - self._held_start]

    def _emit(self, stop: int, n_in: int) -> np.ndarray:
        if stop <= self._done:
            return self._held[:, :0]
        out = self._span.compute(self._read, n_in, self._done, stop)
        self._done = stop
        keep = self._span.first_input(stop)
        if keep > self._held_start:
            self._held = self._held[:, keep - self._held_start:]
            self._held_start = keep
        return out

    def push(self, block: np.ndarray) -> np.ndarray:
        self._held = np.concatenate([self._held, block.astype(np.float32, copy=False)], axis=1)
        self._received += block.shape[1]
        return self._emit(self._span.last_output(self._received), self._received)

    def finish(self) -> np.ndarray:
        return self._emit(resampled_length(self._received, self._span.from_hz, self._span.to_hz), self._received)
