"""Audio read and written a block at a time, so a long song is never held whole.

A stage that measures or processes a whole song takes an ``AudioSource`` and
reads it in blocks (``blocks``); what it keeps between blocks is small (filter
states, per-hop or per-frame figures), so its memory does not grow with the
song. Sources:

- ``ArraySource``: an array already in memory ``(channels, samples)``;
- ``FileSource``: a sound file (WAV, FLAC, ...) read from disk on demand;
- ``SumSource``: the sum of equally long sources (stems into a mix), mono
  sources played on both channels of a stereo sum;
- ``ResampledSource``: a source at another rate, equal to ``audio_io.resample``
  of the whole (and ``ResampledSource.stream`` for a decoder's blocks).

Every read returns a new float32 array shaped ``(channels, frames)``, the
caller's to change. ``BlockWriter`` writes a file block by block and lands it
atomically, as ``audio_io.write_audio`` does for a whole array.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import soundfile as sf
from scipy.signal import upfirdn

from stemmaster.atomic import describe_os_error, land_file, remove_quietly, temp_path_for
from stemmaster.audio_io import _resample_filter, audio_info
from stemmaster.errors import AudioError

BLOCK_FRAMES = 1 << 18  # frames per block by default: about 6 s at 44.1 kHz, 2 MB of stereo float32


class AudioSource:
    """Audio that can be read a block at a time: ``read(start, stop)`` gives float32
    ``(channels, stop - start)`` (a new array); ``sample_rate`` Hz, ``channels``, ``frames``."""

    sample_rate: int
    channels: int
    frames: int
    name: str = "audio"

    def read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - every source implements it
        raise NotImplementedError

    def blocks(self, block: int = BLOCK_FRAMES) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, audio)`` for consecutive blocks of at most ``block`` frames, covering the source."""
        for start in range(0, self.frames, block):
            yield start, self.read(start, min(self.frames, start + block))

    def read_all(self) -> np.ndarray:
        """The whole source as one float32 array (for short signals and tests only)."""
        return self.read(0, self.frames)

    def _span(self, start: int, stop: int) -> tuple[int, int]:
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= self.frames:
            raise ValueError(f"{self.name}: cannot read frames {start}..{stop} of {self.frames}")
        return start, stop


@dataclass
class ArraySource(AudioSource):
    """An array ``(channels, samples)`` (float32 or float64) as a source; reads are float32 copies."""

    audio: np.ndarray
    sample_rate: int
    name: str = "audio"

    def __post_init__(self) -> None:
        if not isinstance(self.audio, np.ndarray) or self.audio.ndim != 2:
            raise AudioError(f"{self.name}: audio must be shaped (channels, samples), "
                             f"got {getattr(self.audio, 'shape', type(self.audio))}")
        self.channels, self.frames = (int(v) for v in self.audio.shape)
        self.sample_rate = int(self.sample_rate)

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._span(start, stop)
        return np.array(self.audio[:, start:stop], dtype=np.float32, order="C")


@dataclass
class FileSource(AudioSource):
    """A sound file read on demand (each read opens it: safe from several threads at once). Its
    header is checked when the source is made (``audio_io.audio_info``: a missing, empty,
    truncated or unsupported file, more than two channels, no frames are one-line errors)."""

    path: Path
    sample_rate: int = field(init=False)
    channels: int = field(init=False)
    frames: int = field(init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.name = str(self.path)
        info = audio_info(self.path)  # the header checks every reader runs, with their one-line errors
        self.sample_rate, self.channels, self.frames = info.sample_rate, info.channels, info.frames

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._span(start, stop)
        try:
            with sf.SoundFile(str(self.path)) as f:
                f.seek(start)
                data = f.read(stop - start, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
            raise AudioError(f"{self.path}: cannot read ({str(exc).strip() or type(exc).__name__})") from None
        except OSError as exc:
            raise AudioError(f"{self.path}: cannot read ({describe_os_error(exc)})") from None
        if data.shape[0] != stop - start:
            raise AudioError(f"{self.path}: cut off: frames {start}..{stop} asked, {data.shape[0]} read")
        return np.ascontiguousarray(data.T)


class SumSource(AudioSource):
    """The sum of ``sources`` (equal rate and length), summed in float64 in the order given and
    returned float32; mono sources count on both channels when any source is stereo."""

    def __init__(self, sources: Sequence[AudioSource], name: str = "mix") -> None:
        if not sources:
            raise AudioError(f"{name}: nothing to sum")
        rates = {s.sample_rate for s in sources}
        lengths = {s.frames for s in sources}
        if len(rates) != 1 or len(lengths) != 1:
            raise AudioError(f"{name}: the sources differ in sample rate or length "
                             f"({sorted(rates)} Hz, {sorted(lengths)} frames)")
        self.sources = list(sources)
        self.name = name
        self.sample_rate = rates.pop()
        self.frames = lengths.pop()
        self.channels = max(s.channels for s in sources)

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._span(start, stop)
        total = np.zeros((self.channels, stop - start))
        for s in self.sources:
            total += s.read(start, stop)  # a mono source broadcasts over the channels
        return total.astype(np.float32)


class StereoSource(AudioSource):
    """A mono source played on two channels (dual mono, no level change); stereo passes through."""

    def __init__(self, source: AudioSource) -> None:
        if source.channels not in (1, 2):
            raise AudioError(f"{source.name}: {source.channels} channels; stemmaster takes mono or stereo")
        self.source, self.name = source, source.name
        self.sample_rate, self.frames, self.channels = source.sample_rate, source.frames, 2

    def read(self, start: int, stop: int) -> np.ndarray:
        block = self.source.read(start, stop)
        return block if block.shape[0] == 2 else np.repeat(block, 2, axis=0)


class ResizedSource(AudioSource):
    """``source`` cut to ``frames``, or followed by silence up to ``frames`` (stems of unequal length)."""

    def __init__(self, source: AudioSource, frames: int) -> None:
        self.source, self.name = source, source.name
        self.sample_rate, self.channels = source.sample_rate, source.channels
        self.frames = int(frames)

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._span(start, stop)
        end = min(stop, self.source.frames)
        if end == stop:  # all of it within the source
            return self.source.read(start, stop)
        out = np.zeros((self.channels, stop - start), dtype=np.float32)
        if end > start:
            out[:, :end - start] = self.source.read(start, end)
        return out


def as_source(audio: AudioSource | np.ndarray, sample_rate: int | None = None, name: str = "audio") -> AudioSource:
    """``audio`` as a source: a source as it is, an array ``(channels, samples)`` wrapped."""
    if isinstance(audio, AudioSource):
        return audio
    if sample_rate is None:
        raise ValueError("an array needs its sample rate to become a source")
    return ArraySource(np.asarray(audio), int(sample_rate), name=name)


class BlockWriter:
    """Write a WAV or FLAC file block by block; it lands (atomically, as ``audio_io.write_audio``)
    only when ``close()`` is reached without an error, and nothing is left otherwise.

    Use as a context manager: ``with BlockWriter(path, rate, channels, "PCM_24") as w: w.write(block)``.
    PCM blocks are clipped to full scale; NaN/Inf samples are refused.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int, subtype: str = "PCM_24",
                 *, frames_hint: int = 0) -> None:
        self.path = Path(path)
        fmt = {".wav": "WAV", ".flac": "FLAC"}.get(self.path.suffix.lower())
        if fmt is None:
            raise AudioError(f"{self.path}: cannot write {self.path.suffix or 'extension-less'} files; use .wav or .flac")
        if subtype not in ("PCM_16", "PCM_24", "FLOAT") or (fmt == "FLAC" and subtype == "FLOAT"):
            raise AudioError(f"{self.path}: cannot write {fmt} as {subtype}")
        width = {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4}[subtype]
        if fmt == "WAV" and channels * max(0, frames_hint) * width > 0xFFFFFFFF - (1 << 20):
            fmt = "RF64"  # RIFF cannot hold 4 GiB
        self.subtype = subtype
        self.frames = 0
        self._tmp: Path | None = None
        with self._failing():
            fd, self._tmp = temp_path_for(self.path)
            os.close(fd)
            self._file = sf.SoundFile(str(self._tmp), "w", samplerate=int(sample_rate), channels=int(channels),
                                      format=fmt, subtype=subtype)

    @contextlib.contextmanager
    def _failing(self) -> Iterator[None]:
        """Any failure inside becomes a one-line AudioError naming the file, and the write is abandoned."""
        try:
            yield
        except AudioError:
            self._discard()
            raise
        except OSError as exc:
            self._discard()
            raise AudioError(f"{self.path}: cannot write ({describe_os_error(exc)})") from None
        except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
            self._discard()
            raise AudioError(f"{self.path}: cannot write ({str(exc).strip() or type(exc).__name__})") from None

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` ``(channels, frames)``."""
        if not np.isfinite(block).all():
            self._discard()
            raise AudioError(f"{self.path}: refusing to write NaN/Inf samples")
        data = block.astype(np.float32) if self.subtype == "FLOAT" else np.clip(block, -1.0, 1.0)
        with self._failing():
            self._file.write(np.ascontiguousarray(data.T))
        self.frames += block.shape[1]

    def close(self) -> Path:
        """Finish the file and land it at ``path``; returns the path."""
        if self._tmp is None:
            raise AudioError(f"{self.path}: the write was abandoned")
        with self._failing():
            self._file.close()
            if self.frames == 0:
                raise AudioError(f"{self.path}: no audio to write (0 frames)")
            written = sf.info(str(self._tmp)).frames
            if written != self.frames:
                raise AudioError(f"{self.path}: write incomplete ({written} of {self.frames} frames; is the disk full?)")
            land_file(self._tmp, self.path)
            self._tmp = None
        return self.path

    def abandon(self) -> None:
        """Give up the file: nothing lands and the temporary file is removed."""
        self._discard()

    def _discard(self) -> None:
        if self._tmp is not None:
            try:
                self._file.close()
            except Exception:
                pass
            remove_quietly(self._tmp)
            self._tmp = None

    def __enter__(self) -> "BlockWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._discard()


class ResampledSource(AudioSource):
    """``source`` resampled to ``to_hz`` Hz, a block at a time: ``read(start, stop)`` equals
    ``audio_io.resample(source.read_all(), source.sample_rate, to_hz)[:, start:stop]`` bit for bit.

    Same Kaiser filter (``audio_io._resample_filter``), same alignment (the filter's delay
    compensated) and length ``ceil(frames * up / down)`` at the reduced ratio ``up : down``. Each
    read filters only the input stretch its outputs reach (``input_span``), started on a multiple of
    ``down`` input frames so the polyphase grid is the whole signal's. Reads are float32
    ``(channels, frames)``; equal rates pass the source's blocks through.
    """

    def __init__(self, source: AudioSource, to_hz: int) -> None:
        from_hz, to_hz = int(source.sample_rate), int(to_hz)
        if from_hz <= 0 or to_hz <= 0:
            raise AudioError(f"invalid sample rates for resampling: {from_hz} Hz -> {to_hz} Hz")
        g = math.gcd(from_hz, to_hz)
        self.source, self.name = source, source.name
        self.up, self.down = to_hz // g, from_hz // g
        self.sample_rate, self.channels = to_hz, source.channels
        self.frames = -(-source.frames * self.up // self.down)
        h = _resample_filter(self.up, self.down)
        self._half = (len(h) - 1) // 2  # the filter's reach each side of its centre, in samples at up x the input rate
        lead = self.down - self._half % self.down  # zeros before the filter, as resample_poly puts them
        self._taps = np.concatenate((np.zeros(lead), h * self.up))
        self._skip = (self._half + lead) // self.down  # upfirdn outputs before the aligned first one

    def input_span(self, start: int, stop: int) -> tuple[int, int]:
        """The input frames ``[first, end)`` that outputs ``[start, stop)`` are made of; ``first`` is a
        multiple of ``down``, both lie within the source."""
        first = max(0, (start * self.down - self._half) // self.up)
        return first - first % self.down, min(self.source.frames, self._reach(start, stop))

    def _reach(self, start: int, stop: int) -> int:
        """One past the last input frame the filter reaches for outputs ``[start, stop)`` (may pass the end)."""
        return (max(start, stop - 1) * self.down + self._half) // self.up + 1

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._span(start, stop)
        if self.up == self.down:
            return self.source.read(start, stop)
        if start == stop:
            return np.zeros((self.channels, 0), dtype=np.float32)
        first, end = self.input_span(start, stop)
        x = np.zeros((self.channels, self._reach(start, stop) - first))  # zeros past the source's end
        x[:, :end - first] = self.source.read(first, end)
        y = upfirdn(self._taps, x, self.up, self.down, axis=1)
        at = start - first * self.up // self.down + self._skip
        return y[:, at:at + stop - start].astype(np.float32)

    def _settled(self) -> int:
        """How many outputs are final whatever follows the source: those whose filter stays within it."""
        ready = (self.source.frames * self.up - 1 - self._half) // self.down + 1
        return max(0, min(self.frames, ready))

    @classmethod
    def stream(cls, blocks: Iterable[np.ndarray], from_hz: int, to_hz: int) -> Iterator[np.ndarray]:
        """Resample consecutive float32 ``(channels, frames)`` blocks whose total length is known only
        when they end (a decoder's output): the blocks yielded (at most ``BLOCK_FRAMES`` each) join up
        to ``audio_io.resample`` of the whole input, bit for bit. Holds one input block and the
        filter's reach, never the signal."""
        if int(from_hz) == int(to_hz):
            for block in blocks:
                yield block.astype(np.float32, copy=False)
            return
        held: np.ndarray | None = None  # the input from frame held_at (a multiple of down) on
        held_at = done = 0  # done: output frames yielded so far
        for block in itertools.chain(blocks, [None]):
            if block is not None:
                held = block if held is None else np.concatenate((held, block), axis=1)
            if held is None:
                return
            part = cls(ArraySource(held, from_hz), to_hz)
            start = done - held_at * part.up // part.down  # part's frame of the next output
            stop = part.frames if block is None else part._settled()
            if stop > start:
                for a in range(start, stop, BLOCK_FRAMES):  # an upsampled block can be much longer than its input
                    yield part.read(a, min(stop, a + BLOCK_FRAMES))
                done += stop - start
                first, _ = part.input_span(stop, stop)
                held, held_at = held[:, first:], held_at + first
