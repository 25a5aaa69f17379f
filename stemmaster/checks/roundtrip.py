"""Codec round trips as streams: the source goes in a block at a time, the decoded audio comes
out a block at a time, and nothing in between holds the whole song.

* MP3: ``lameenc`` (in memory, fed block by block from a thread) into an
  ffmpeg decoder's stdin; without ffmpeg the MP3 goes into an anonymous
  temporary file (unlinked from the start: it never shows in a folder and
  is gone when closed) that libsndfile decodes.
* AAC-LC: float samples into ffmpeg's native ``aac`` encoder, its ADTS output
  piped straight into a second ffmpeg that decodes it (two processes chained
  by an OS pipe: no files written).

:class:`DecodedStream` ``read(n)`` gives the next decoded frames, float32
``(channels, m)``; ``m < n`` only at the end, when the processes are waited
for and a failure raises a one-line AudioError (ffmpeg's last error line).
``close()`` kills whatever still runs; use the streams as context managers.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from typing import Callable, Iterator

import numpy as np

from stemmaster.audio_source import AudioSource, as_source
from stemmaster.errors import AudioError

MP3_BITRATE_KBPS = 320
MP3_QUALITY = 3  # LAME's algorithm quality 0 (best, slowest) .. 9; 3 is the lame CLI's default
AAC_BITRATE_KBPS = 256
FEED_BLOCK = 1 << 15  # frames per encoder write: lameenc holds the GIL for one block at a time
FFMPEG_TIMEOUT_S = 600.0


def _one_line(text: str) -> str:
    return " ".join(text.split())


def ffmpeg_error(what: str, code: int, stderr: bytes) -> AudioError:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    reason = lines[-1] if lines else "no message"
    return AudioError(f"{what}: ffmpeg failed (exit {code}): {reason}")


def to_int16_bytes(audio: np.ndarray) -> bytes:
    """Interleaved little-endian 16-bit PCM of float audio ``(channels, n)`` (rounded, clipped to full scale)."""
    block = np.rint(np.asarray(audio, dtype=np.float64).T * 32767.0)
    return np.clip(block, -32768, 32767, out=block).astype("<i2").tobytes()


def mp3_chunks(source: AudioSource, bitrate_kbps: int = MP3_BITRATE_KBPS,
               quality: int = MP3_QUALITY) -> Iterator[bytes]:
    """MP3 (CBR, lameenc) of ``source`` (mono or stereo at 32, 44.1 or 48 kHz), a block at a time."""
    import lameenc

    if source.channels not in (1, 2):
        raise AudioError(f"MP3 check: mono or stereo only, got {source.channels} channels")
    try:
        enc = lameenc.Encoder()
        enc.set_bit_rate(int(bitrate_kbps))
        enc.set_in_sample_rate(int(source.sample_rate))
        enc.set_channels(source.channels)
        enc.set_quality(int(quality))
        for _, block in source.blocks(FEED_BLOCK):
            yield bytes(enc.encode(to_int16_bytes(block)))
        yield bytes(enc.flush())
    except AudioError:
        raise
    except Exception as exc:  # lameenc raises RuntimeError/ValueError with terse messages
        raise AudioError(f"MP3 check: lameenc failed to encode ({_one_line(str(exc)) or type(exc).__name__})") from exc


def float_chunks(source: AudioSource) -> Iterator[bytes]:
    """Interleaved little-endian float32 of ``source``, a block at a time."""
    for _, block in source.blocks(FEED_BLOCK):
        yield np.ascontiguousarray(block.T, dtype="<f4").tobytes()


class DecodedStream:
    """The decoded side of a codec round trip, read in order (see the module's docstring)."""

    def __init__(self, what: str, channels: int) -> None:
        self.what = what
        self.channels = channels
        self.frames = 0  # decoded frames read so far
        self.decoder = "ffmpeg"
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self._threads: list[threading.Thread] = []
        self._stderr: dict[str, bytes] = {}
        self._feed_error: BaseException | None = None
        self._out = None  # the last process's stdout (f32le)
        self._file = None  # or libsndfile reading a temporary file
        self._tmp = None
        self._ended = False

    # ---------------------------------------------------------------- starting

    def start_pipes(self, commands: list[tuple[str, list[str]]], produce: Callable[[], Iterator[bytes]]) -> None:
        """Run ``commands`` (``(role, argv)``) chained stdout to stdin, the first fed ``produce()``'s
        chunks from a thread; the last one's stdout is the decoded f32le stream."""
        prev = None
        try:
            for role, cmd in commands:
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if prev is None else prev.stdout,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                if prev is not None:
                    prev.stdout.close()  # the next process holds the pipe now
                self._procs.append((role, proc))
                prev = proc
        except OSError as exc:
            self.close()
            raise AudioError(f"{self.what}: cannot run ffmpeg ({_one_line(str(exc))})") from exc
        self._out = prev.stdout
        first = self._procs[0][1]

        def feed() -> None:
            try:
                for chunk in produce():
                    first.stdin.write(chunk)
            except (BrokenPipeError, OSError):
                pass  # the process exited early: its exit code and stderr say why
            except BaseException as exc:  # a source that cannot be read, an encoder error
                self._feed_error = exc
            finally:
                try:
                    first.stdin.close()
                except OSError:
                    pass

        def drain(role: str, stream) -> None:
            self._stderr[role] = stream.read()

        self._threads = [threading.Thread(target=feed, daemon=True)]
        self._threads += [threading.Thread(target=drain, args=(role, p.stderr), daemon=True) for role, p in self._procs]
        for t in self._threads:
            t.start()

    def start_file(self, produce: Callable[[], Iterator[bytes]]) -> None:
        """Write ``produce()``'s MP3 into an anonymous temporary file and decode it with libsndfile."""
        import soundfile as sf

        if "MP3" not in sf.available_formats():
            raise AudioError("MP3 check: no MP3 decoder (install ffmpeg, or soundfile with libsndfile >= 1.1)")
        self.decoder = "libsndfile"
        self._tmp = tempfile.TemporaryFile()
        for chunk in produce():
            self._tmp.write(chunk)
        self._tmp.seek(0)
        try:
            self._file = sf.SoundFile(self._tmp)
        except Exception as exc:
            raise AudioError(f"MP3 check: libsndfile cannot decode the MP3 ({_one_line(str(exc))})") from exc

    # ---------------------------------------------------------------- reading

    @property
    def ended(self) -> bool:
        """True once the decoded stream has been read to its end."""
        return self._ended

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` decoded frames, float32 ``(channels, m)``; ``m < n`` only at the end."""
        if self._ended:
            return np.zeros((self.channels, 0), dtype=np.float32)
        if self._file is not None:
            try:
                data = self._file.read(n, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError(f"MP3 check: libsndfile cannot decode the MP3 ({_one_line(str(exc))})") from exc
            out = np.ascontiguousarray(data.T)
        else:
            raw = self._out.read(n * self.channels * 4)  # blocks until n frames or the end
            m = len(raw) // (4 * self.channels)
            out = np.frombuffer(raw, dtype="<f4", count=m * self.channels).reshape(m, self.channels).T.copy()
        self.frames += out.shape[1]
        if out.shape[1] < n:
            self._end()
        return out

    def drain(self) -> None:
        """Read (and drop) the rest, so the processes finish; raises if they failed."""
        while not self._ended:
            self.read(1 << 16)

    def read_all(self) -> np.ndarray:
        """Everything (what is left) as one array: for short signals only."""
        parts = []
        while not self._ended:
            parts.append(self.read(1 << 18))
        return np.concatenate(parts, axis=1) if parts else np.zeros((self.channels, 0), dtype=np.float32)

    def _end(self) -> None:
        self._ended = True
        try:
            for _, proc in self._procs:
                proc.wait(timeout=FFMPEG_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise AudioError(f"{self.what}: ffmpeg did not finish ({_one_line(str(exc))})") from None
        for t in self._threads:
            t.join(timeout=FFMPEG_TIMEOUT_S)
        if self._feed_error is not None:
            raise self._feed_error
        for role, proc in self._procs:
            if proc.returncode != 0:
                raise ffmpeg_error(f"{self.what} ({role})", proc.returncode, self._stderr.get(role, b""))

    # ---------------------------------------------------------------- cleaning up

    def close(self) -> None:
        """Stop what still runs and release the pipes and the temporary file (idempotent)."""
        for _, proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:  # pragma: no cover - a killed process always ends
                pass
        for t in self._threads:
            t.join(timeout=5.0)
        for _, proc in self._procs:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        for f in (self._file, self._tmp):
            if f is not None:
                f.close()
        self._file = self._tmp = None
        self._ended = True

    def __enter__(self) -> "DecodedStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ffmpeg(exe: str) -> list[str]:
    return [exe, "-hide_banner", "-nostdin", "-loglevel", "error"]


def mp3_stream(source: AudioSource, ffmpeg: str | None) -> DecodedStream:
    """The MP3 (320 kbit/s CBR, lameenc) of ``source`` decoded again by ffmpeg, or without it by libsndfile."""
    stream = DecodedStream("MP3 check", source.channels)
    if ffmpeg:
        stream.start_pipes([("decoding", _ffmpeg(ffmpeg) + ["-f", "mp3", "-i", "pipe:0", "-f", "f32le",
                                                           "-ac", str(source.channels), "pipe:1"])],
                           lambda: mp3_chunks(source))
    else:
        try:
            stream.start_file(lambda: mp3_chunks(source))
        except BaseException:
            stream.close()
            raise
    return stream


def aac_stream(source: AudioSource, ffmpeg: str, bitrate_kbps: int = AAC_BITRATE_KBPS) -> DecodedStream:
    """The AAC-LC round trip of ``source`` through two chained ffmpeg processes."""
    channels, rate = source.channels, source.sample_rate
    enc = _ffmpeg(ffmpeg) + ["-f", "f32le", "-ar", str(rate), "-ac", str(channels), "-i", "pipe:0",
                             "-c:a", "aac", "-b:a", f"{int(bitrate_kbps)}k", "-f", "adts", "pipe:1"]
    dec = _ffmpeg(ffmpeg) + ["-f", "aac", "-i", "pipe:0", "-f", "f32le", "-ac", str(channels), "pipe:1"]
    stream = DecodedStream(f"AAC {int(bitrate_kbps)} kbit/s check", channels)
    stream.start_pipes([("encoding", enc), ("decoding", dec)], lambda: float_chunks(source))
    return stream


def aac_roundtrip(audio: np.ndarray | AudioSource, sample_rate: int, ffmpeg: str,
                  bitrate_kbps: int = AAC_BITRATE_KBPS) -> np.ndarray:
    """Encode to AAC-LC with ffmpeg and decode again, through pipes; the whole decoded signal,
    float32 ``(channels, samples)`` (for short signals)."""
    with aac_stream(as_source(audio, sample_rate), ffmpeg, bitrate_kbps) as stream:
        return stream.read_all()


def encode_mp3(audio: np.ndarray, sample_rate: int, bitrate_kbps: int = MP3_BITRATE_KBPS,
               quality: int = MP3_QUALITY) -> bytes:
    """MP3 (CBR) of ``(channels, samples)`` audio at 32, 44.1 or 48 kHz, encoded in memory with lameenc."""
    if not isinstance(audio, np.ndarray) or audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise AudioError(f"MP3 check: mono or stereo only, got {getattr(audio, 'shape', type(audio))}")
    return b"".join(mp3_chunks(as_source(audio, sample_rate), bitrate_kbps, quality))
