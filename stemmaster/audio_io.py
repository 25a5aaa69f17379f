"""Reading, writing and resampling audio files.

This is the only module that talks to soundfile, and so the only place that
converts between soundfile's ``(samples, channels)`` layout and stemmaster's
``(channels, samples)`` float32 arrays.

Every problem the user can cause (a missing, empty, corrupt, truncated or
unsupported file, NaN/Inf samples, more than two channels, a full disk) is
raised as :class:`~stemmaster.errors.AudioError` whose one-line message starts
with the file's path and says what is wrong.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
from scipy.signal import firwin, resample_poly

from stemmaster.atomic import describe_os_error, land_file, remove_quietly, temp_path_for
from stemmaster.errors import AudioError

log = logging.getLogger(__name__)
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".aif", ".aiff", ".mp3", ".ogg", ".oga")
WRITE_SUBTYPES: tuple[str, ...] = ("PCM_16", "PCM_24", "FLOAT")
_WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
_WRITE_CHUNK = 1 << 18  # frames per block when writing
_READ_BLOCK = 1 << 18  # frames per block when reading block by block
_WAV_LIMIT = 0xFFFFFFFF - (1 << 20)  # bytes: beyond this a RIFF WAV is written as RF64
_SUPPORTED = "WAV, FLAC, AIFF, MP3 or OGG"
_DECODE_SHORTFALL = 1152  # frames (one MPEG frame) a decode may fall short of the header's length before it counts as cut off
_TRUNCATION_SLACK = 1024  # bytes a WAV's data chunk may fall short of its header (sloppy writers) before it counts as cut off


def is_audio_file(path: str | os.PathLike) -> bool:
    """True when the file name has one of :data:`AUDIO_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _libsndfile_reason(exc: Exception, path: Path) -> str:
    """libsndfile's reason without its "Error opening '<path>': " prefix."""
    msg = _one_line(str(exc))
    prefix = f"Error opening {str(path)!r}: "
    if msg.startswith(prefix):
        msg = msg[len(prefix):]
    msg = msg.rstrip(".")
    if msg == "Format not recognised":
        return f"not a readable audio file (format not recognised; stemmaster reads {_SUPPORTED})"
    return f"corrupt or unreadable audio file ({msg or type(exc).__name__})"


def _check_file(path: Path) -> None:
    """The checks that come before libsndfile: exists, is a file, not empty, readable."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioError(f"{path}: file not found") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot open ({describe_os_error(exc)})") from exc
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if st.st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: cannot open (permission denied)")


def _wav_truncation(path: Path) -> str | None:
    """For RIFF/WAVE files, a message when the data chunk is shorter than the header says.

    libsndfile quietly reads what is there; a stem cut short by an interrupted
    copy would then be padded with silence without anyone noticing. The size
    sentinels recorders leave while still recording (0 and 0xFFFFFFFF) are
    accepted, as libsndfile does.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            pos = 12
            byte_rate = 0
            while pos + 8 <= size:
                f.seek(pos)
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(min(csize, 16))
                    if len(fmt) >= 12:
                        byte_rate = struct.unpack("<I", fmt[8:12])[0]
                elif cid == b"data":
                    if csize in (0, 0xFFFFFFFF):
                        return None
                    have = max(0, size - (pos + 8))
                    if csize - have > _TRUNCATION_SLACK:
                        if byte_rate > 0:
                            amounts = f"{csize / byte_rate:.2f} s of audio but the file holds only {have / byte_rate:.2f} s"
                        else:
                            amounts = f"{csize} bytes of audio but the file holds only {have}"
                        return f"truncated: the header promises {amounts} (cut short by an interrupted copy or export?)"
                    return None
                pos += 8 + csize + (csize & 1)
    except OSError:
        return None
    return None


def _open_error(path: Path, exc: Exception) -> AudioError:
    hint = ""
    suffix = path.suffix.lower()
    if suffix and suffix not in AUDIO_EXTENSIONS:
        hint = f" ({suffix} files are not supported; stemmaster reads {_SUPPORTED})"
    return AudioError(f"{path}: {_libsndfile_reason(exc, path)}{hint}")


@contextmanager
def _decoder_chatter(path: Path):
    """While an MP3 is opened or decoded, keep libmpg123's own messages ("Note: Illegal
    Audio-MPEG-Header ...", written straight to file descriptor 2) off the terminal, so an
    error stays one line.

    Yields a list that holds, afterwards, what the decoder said (one line, or nothing).
    """
    said: list[str] = []
    if path.suffix.lower() != ".mp3":
        yield said
        return
    with _CHATTER_LOCK:  # file descriptor 2 is the process's: one redirection at a time
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield said
            return
        with tempfile.TemporaryFile() as sink:
            try:
                os.dup2(sink.fileno(), 2)
                yield said
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                text = _one_line(sink.read(4096).decode("utf-8", "replace"))
                if text:
                    said.append(text[:300])


_CHATTER_LOCK = threading.Lock()


def _check_channels(path: Path, channels: int) -> None:
    if channels > 2:
        raise AudioError(f"{path}: {channels} channels; stemmaster takes mono or stereo")
    if channels < 1:
        raise AudioError(f"{path}: no audio channels")


@contextmanager
def _read_errors(path: Path):
    """Turn what soundfile or the OS raises while a file is opened or read into one-line AudioErrors."""
    try:
        yield
    except AudioError:
        raise
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        raise _open_error(path, exc) from exc
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({describe_os_error(exc)})") from exc
    except MemoryError:
        raise AudioError(f"{path}: too large to read into memory") from None


class AudioReader:
    """A sound file opened for reading from start to end a block at a time, with every check of
    :func:`read_audio`; memory follows the block, not the file.

    ``with AudioReader(path) as reader: for block in reader.blocks(): ...``: each block is a new
    float32 ``(channels, frames)`` array. Opening checks the file (missing, empty, truncated,
    unreadable, unsupported, more than two channels); ``blocks`` raises, when it reaches the end,
    what only the whole file shows (zero frames, a decode that stopped short of the header's
    length, NaN/Inf samples with their count and the first one's time). It never yields a block
    holding NaN/Inf: from the first one on, it reads on only to count them.
    ``sample_rate`` (Hz), ``channels`` and ``header_frames`` come from the header (a decode may
    fall a little short of the last), ``frames_read`` counts the frames decoded so far.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = _checked_path(path)
        self.frames_read = 0
        self._decoder_said: list[str] = []
        with _read_errors(self.path), _decoder_chatter(self.path) as said:
            self._file = sf.SoundFile(str(self.path))
        self._decoder_said += said
        try:
            _check_channels(self.path, self._file.channels)
            self.sample_rate = int(self._file.samplerate)
            if self.sample_rate <= 0:
                raise AudioError(f"{self.path}: invalid sample rate {self.sample_rate} Hz")
        except AudioError:
            self.close()
            raise
        self.channels = int(self._file.channels)
        self.header_frames = int(self._file.frames)

    def blocks(self, block_frames: int = _READ_BLOCK) -> Iterator[np.ndarray]:
        """The file from its first frame, as float32 ``(channels, frames)`` blocks of at most ``block_frames``."""
        bad, first_bad = 0, 0
        while True:
            data = self._read(max(1, int(block_frames)))  # (frames, channels)
            if data.shape[0] == 0:
                break
            finite = np.isfinite(data)
            if not finite.all():
                if bad == 0:
                    first_bad = self.frames_read + int(np.argmin(finite.all(axis=1)))
                bad += int(data.size - np.count_nonzero(finite))
            self.frames_read += data.shape[0]
            if bad == 0:
                yield np.ascontiguousarray(data.T)
        self._check_whole(bad, first_bad)

    def _read(self, frames: int) -> np.ndarray:
        with _read_errors(self.path), _decoder_chatter(self.path) as said:
            try:
                data = self._file.read(frames, dtype="float32", always_2d=True)
            except (sf.SoundFileError, RuntimeError) as exc:
                raise AudioError(
                    f"{self.path}: corrupt: the decoder failed part-way through ({_one_line(str(exc)).rstrip('.')}); "
                    "damaged data in the file? re-export or re-download it"
                ) from exc
        self._decoder_said += said
        return data

    def _check_whole(self, bad: int, first_bad: int) -> None:
        """The checks that need the whole file, once it has been read."""
        rate, decoded, expected = self.sample_rate, self.frames_read, self.header_frames
        if decoded == 0:
            raise AudioError(f"{self.path}: contains no audio (0 frames)")
        if expected > 0 and expected - decoded > _DECODE_SHORTFALL:
            # libmpg123 stops at damage it cannot resync past and returns what it had: the song,
            # cut off there, with nothing to say so.
            raise AudioError(
                f"{self.path}: corrupt: decoding stopped at {decoded / rate:.2f} s of "
                f"{expected / rate:.2f} s (damaged data in the file? re-export or re-download it)"
            )
        if self._decoder_said:  # damage the decoder resynced past: the file is whole, with a glitch
            log.warning("%s: the MP3 decoder reported damaged data and skipped it: %s", self.path, self._decoder_said[0])
        if bad:
            raise AudioError(
                f"{self.path}: {bad} NaN/Inf sample{'s' if bad != 1 else ''} "
                f"(first at {first_bad / rate:.3f} s); re-export the file"
            )

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a whole file as float32 ``(channels, samples)`` at full scale 1.0; return ``(audio, sample_rate)``.

    Raises AudioError for a missing or empty file, an unreadable, unsupported or
    truncated file, zero frames, more than two channels, or NaN/Inf samples
    (giving how many and, in seconds, where the first is). A compressed file
    whose decoding fails or stops short of the length its header gives (an MP3
    with garbage in the middle: libmpg123 gives up at the damage) is refused as
    corrupt rather than returned cut off; damage the decoder resyncs past
    (a short glitch, full length) is read, and logged as a warning.
    (:class:`AudioReader` reads a file block by block with the same checks.)
    """
    with AudioReader(path) as reader, _read_errors(reader.path):
        # one block of the header's length: soundfile never reads past it
        blocks = list(reader.blocks(reader.header_frames))
        audio = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
    return audio, reader.sample_rate


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, without decoding the audio."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    format: str  # soundfile's major format: "WAV", "FLAC", "AIFF", "MP3", "OGG", ...
    subtype: str  # e.g. "PCM_24", "FLOAT", "MPEG_LAYER_III", "VORBIS"


def _checked_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, after the checks every reader runs: it exists, is not empty, is not a cut-off WAV."""
    path = Path(path)
    _check_file(path)
    truncated = _wav_truncation(path)
    if truncated:
        raise AudioError(f"{path}: {truncated}")
    return path


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header (rate, channels, length, format); AudioError as for :func:`read_audio`.

    More than two channels or zero frames are errors here too, so a folder of
    stems can be checked before anything is decoded.
    """
    path = _checked_path(path)
    try:
        with _decoder_chatter(path):
            info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        raise _open_error(path, exc) from exc
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({describe_os_error(exc)})") from exc
    _check_channels(path, info.channels)
    if info.samplerate <= 0:
        raise AudioError(f"{path}: invalid sample rate {info.samplerate} Hz")
    if info.frames <= 0:
        raise AudioError(f"{path}: contains no audio (0 frames)")
    return AudioInfo(
        path=str(path),
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        duration_s=info.frames / info.samplerate,
        format=str(info.format),
        subtype=str(info.subtype),
    )


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, *, subtype: str = "PCM_24") -> None:
    """Write ``(channels, samples)`` audio as WAV or FLAC (chosen by the extension), atomically.

    ``subtype`` is ``"PCM_16"``, ``"PCM_24"`` or ``"FLOAT"`` (FLOAT is WAV only).
    PCM output is clipped to full scale (libsndfile would otherwise wrap
    overs around); FLOAT keeps overs. The file is written to a temporary file
    in the same folder, checked, fsynced and renamed into place, so a failure
    (a full disk, Ctrl-C) leaves no partial file and any previous file intact.
    A WAV too large for RIFF's 4 GiB limit is written as RF64. Raises
    AudioError naming the path for bad arguments, zero frames, NaN/Inf
    samples, or any failure to write.
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"{path}: cannot write {path.suffix or 'extension-less'} files; use .wav or .flac")
    if subtype not in WRITE_SUBTYPES:
        raise AudioError(f"{path}: unsupported subtype {subtype!r} (use one of {', '.join(WRITE_SUBTYPES)})")
    if fmt == "FLAC" and subtype == "FLOAT":
        raise AudioError(f"{path}: FLAC cannot hold 32-bit float; use PCM_16 or PCM_24, or a .wav file")
    if not isinstance(audio, np.ndarray) or audio.ndim != 2 or audio.shape[0] < 1:
        raise AudioError(f"{path}: audio must be shaped (channels, samples), got {getattr(audio, 'shape', type(audio))}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(f"{path}: audio must be floating point, got {audio.dtype}")
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or int(sample_rate) <= 0:
        raise AudioError(f"{path}: invalid sample rate {sample_rate!r}")
    sample_rate = int(sample_rate)
    channels, frames = audio.shape
    if frames == 0:
        raise AudioError(f"{path}: no audio to write (0 frames)")
    if fmt == "FLAC" and channels > 8:
        raise AudioError(f"{path}: FLAC holds at most 8 channels, got {channels}")
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: refusing to write NaN/Inf samples")
    if fmt == "WAV":
        width = {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4}[subtype]
        if channels * frames * width > _WAV_LIMIT:
            fmt = "RF64"
    tmp: Path | None = None
    try:
        fd, tmp = temp_path_for(path)
        os.close(fd)
        with sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=channels, format=fmt, subtype=subtype) as f:
            for start in range(0, frames, _WRITE_CHUNK):
                block = audio[:, start:start + _WRITE_CHUNK]
                if subtype == "FLOAT":
                    block = block.astype(np.float32)
                else:
                    block = np.clip(block, -1.0, 1.0)
                f.write(np.ascontiguousarray(block.T))
        written = sf.info(str(tmp)).frames
        if written != frames:
            raise AudioError(f"{path}: write incomplete ({written} of {frames} frames; is the disk full?)")
        land_file(tmp, path)
        tmp = None
    except AudioError:
        raise
    except OSError as exc:
        raise AudioError(f"{path}: cannot write ({describe_os_error(exc)})") from exc
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"{path}: cannot write ({_one_line(str(exc)) or type(exc).__name__})") from exc
    finally:
        if tmp is not None:
            remove_quietly(tmp)


# ---------------------------------------------------------------- resampling

# The anti-alias / anti-image filter is a Kaiser-windowed sinc, designed once
# per rate pair. Kaiser's beta trades side-lobe level against transition
# width; beta = 9 puts the stop band about 90 dB down, below the noise floor of
# 16-bit audio and well past the 80 dB at which aliasing is inaudible under
# music, while keeping the transition narrow. scipy's default (beta = 5,
# +-10 zero crossings) only reaches about 45 dB and rolls off above ~18 kHz.
# The filter spans +-64 zero crossings of the lower rate, which makes the
# transition band 9 % of that rate's Nyquist: pass band flat (< 0.01 dB) to
# 91 % of the lower Nyquist (20.07 kHz at 44.1 kHz) and fully attenuated at
# Nyquist, so nothing aliases into the audible band.
KAISER_BETA = 9.0
_ZERO_CROSSINGS = 64
_PASSBAND = 0.91  # pass-band edge as a fraction of the lower rate's Nyquist


@lru_cache(maxsize=8)
def _resample_filter(up: int, down: int) -> np.ndarray:
    m = max(up, down)
    cutoff = (1.0 + _PASSBAND) / 2.0 / m  # -6 dB point, as a fraction of the high rate's Nyquist
    h = firwin(2 * _ZERO_CROSSINGS * m + 1, cutoff, window=("kaiser", KAISER_BETA))
    h.setflags(write=False)
    return h


def resample(audio: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample ``(channels, samples)`` audio from ``from_hz`` to ``to_hz``; float32 out.

    Polyphase (``scipy.signal.resample_poly``) at the reduced ratio
    ``to/gcd : from/gcd`` with the Kaiser-windowed filter described above; the
    filter is symmetric and its delay compensated, so the output is aligned
    with the input and ``ceil(samples * to / from)`` long. Equal rates return a
    float32 copy.
    """
    audio = np.asarray(audio)
    if audio.ndim != 2:
        raise AudioError(f"audio must be shaped (channels, samples), got {audio.shape}")
    from_hz, to_hz = int(from_hz), int(to_hz)
    if from_hz <= 0 or to_hz <= 0:
        raise AudioError(f"invalid sample rates for resampling: {from_hz} Hz -> {to_hz} Hz")
    if from_hz == to_hz:
        return audio.astype(np.float32, copy=True)
    g = math.gcd(from_hz, to_hz)
    up, down = to_hz // g, from_hz // g
    n_out = -(-audio.shape[1] * up // down)
    out = np.empty((audio.shape[0], n_out), dtype=np.float32)
    if audio.shape[1] == 0:
        return out
    h = _resample_filter(up, down)
    for ch in range(audio.shape[0]):  # one channel at a time keeps the float64 working set small
        out[ch] = resample_poly(audio[ch].astype(np.float64), up, down, window=h)
    return out


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """Mono ``(1, n)`` becomes dual mono ``(2, n)`` (same signal, no level change); stereo is returned as is."""
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise AudioError(f"expected mono or stereo audio shaped (channels, samples), got {audio.shape}")
    if audio.shape[0] == 2:
        return audio
    return np.repeat(audio, 2, axis=0)
