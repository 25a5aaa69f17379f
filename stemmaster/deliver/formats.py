"""Deliverable files: WAV (16/24-bit PCM, 32-bit float), FLAC (16/24-bit) and MP3 320k, with tags.

``write_deliverable`` takes float ``(channels, samples)`` audio and writes one
file of one format:

1. **Rate.** Resampled with :func:`stemmaster.audio_io.resample` (Kaiser
   polyphase, ``ceil(n * to / from)`` samples out) when ``out_rate`` differs
   from the audio's rate. MP3 holds only 32/44.1/48 kHz: without ``out_rate``
   an MP3 of other audio is made at 44.1 kHz (rates of the 44.1 kHz family)
   or 48 kHz (the rest), as :func:`stemmaster.checks.codec.encode_rate` picks.
2. **Word length.** 16- and 24-bit PCM (and the 16-bit PCM fed to the MP3
   encoder) are TPDF-dithered by :func:`stemmaster.dsp.dither.quantize` with
   ``dither_seed``, as the render's masters are: same seed, same file, bit for
   bit. 32-bit float keeps the float32 values.
3. **Ceiling.** With ``ceiling_dbtp``, the float signal is first trimmed to
   the ceiling if its own true peak (after resampling, which can raise
   inter-sample peaks) is over it; then the samples *as written* (after dither) are
   measured with :func:`stemmaster.meters.truepeak.true_peak_dbtp` (4x, the
   meter the manifest and the reports use) and, while over, the float signal is
   trimmed by the overshoot plus 0.001 dB and quantised again (as
   ``pipeline.write_masters`` does). For MP3 the *decoded* file is measured
   (libsndfile, else ffmpeg; the decoder the manifest uses): a lossy encode
   overshoots its input by a few tenths of a dB, so the trim there takes the
   codec's overshoot into account. A file that cannot be brought under the
   ceiling in a few passes is an error, never written.
4. **Tags** (``metadata``: title, artist, album, year, genre, track, comment,
   copyright, isrc; ISRCs are checked and stored as 12 characters without
   hyphens):

   * FLAC: Vorbis comments TITLE, ARTIST, ALBUM, DATE, GENRE, TRACKNUMBER,
     COMMENT, COPYRIGHT, ISRC (written with mutagen).
   * MP3: an ID3v2.3 tag (TIT2, TPE1, TALB, TYER, TCON, TRCK, COMM, TCOP,
     TSRC) in front of the audio (mutagen builds it; v2.3 is what Windows and
     older players read).
   * WAV: a RIFF ``LIST/INFO`` chunk after the audio (INAM title, IART artist,
     IPRD album, ICRD year, IGNR genre, ITRK track, ICMT comment, ICOP
     copyright; UTF-8 text), and, when there is an ISRC, an ``id3 `` chunk
     holding the same ID3v2.3 tag as the MP3 (with TSRC). The ISRC is *not*
     put into INFO: the RIFF specification defines the INFO id ``ISRC`` as
     "Source" (who supplied the original), not the International Standard
     Recording Code, and readers disagree on it. An ``id3 `` chunk is the
     de-facto place for ID3 in WAV (TagLib, Mp3tag and mutagen read it; ffmpeg
     5.1 reads it only when the file has no INFO chunk, so it shows the
     INFO fields but not the ISRC).
5. **Gapless MP3.** LAME (``lameenc``) writes no Info/LAME tag when encoding
   in memory, so its 576 samples of encoder delay and the padding of the last
   frame would end up in the decoded audio. We put a CBR "Info" frame with the
   LAME extension (encoder delay 576, padding, CRC) in front of the audio
   frames: ffmpeg and mpg123 (libsndfile) then decode exactly the samples
   that were encoded, aligned, and the MP3 decodes to the same length as the
   WAV/FLAC.
6. **Atomic.** The file is made under a hidden temporary name in the same
   folder (audio, then tags, fsync) and renamed to its final name
   (``os.replace``); any failure or interruption removes the temporary file,
   so no partial file ever appears under the final name and an older file of
   that name is left as it was.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
from mutagen import MutagenError

from stemmaster.atomic import describe_os_error, land_file, remove_quietly
from stemmaster.audio_io import resample, write_audio
from stemmaster.checks.codec import MP3_QUALITY, encode_rate
from stemmaster.dsp.dither import quantize, tpdf_noise
from stemmaster.errors import AudioError, SettingsError
from stemmaster.meters.truepeak import true_peak_dbtp


@dataclass(frozen=True)
class FormatSpec:
    """One deliverable format: file extension, PCM subtype (None for MP3), bits of the dither grid (None: float)."""

    name: str
    extension: str
    subtype: str | None
    bits: int | None
    description: str


FORMATS: dict[str, FormatSpec] = {
    "wav16": FormatSpec("wav16", ".wav", "PCM_16", 16, "WAV 16-bit PCM, TPDF-dithered"),
    "wav24": FormatSpec("wav24", ".wav", "PCM_24", 24, "WAV 24-bit PCM, TPDF-dithered"),
    "wav32f": FormatSpec("wav32f", ".wav", "FLOAT", None, "WAV 32-bit float"),
    "flac16": FormatSpec("flac16", ".flac", "PCM_16", 16, "FLAC 16-bit, TPDF-dithered"),
    "flac24": FormatSpec("flac24", ".flac", "PCM_24", 24, "FLAC 24-bit, TPDF-dithered"),
    "mp3": FormatSpec("mp3", ".mp3", None, 16, "MP3 320 kbit/s CBR (LAME), gapless, from TPDF-dithered 16-bit"),
}
OUT_RATES = (44100, 48000)
MP3_BITRATE_KBPS = 320
MP3_ENCODER_DELAY = 576  # LAME's encoder delay (ENCDELAY) at any CBR setting
CEILING_MARGIN_DB = 0.001  # a trim lands this far under the ceiling (PCM), as write_masters
MP3_CEILING_MARGIN_DB = 0.05  # the codec's overshoot moves a little with the level: aim a bit lower
MAX_TRIM_PASSES = 4
_MP3_BLOCK = 1 << 16  # frames handed to the encoder per call

METADATA_KEYS = ("title", "artist", "album", "year", "genre", "track", "comment", "copyright", "isrc")
_VORBIS = {"title": "TITLE", "artist": "ARTIST", "album": "ALBUM", "year": "DATE", "genre": "GENRE",
           "track": "TRACKNUMBER", "comment": "COMMENT", "copyright": "COPYRIGHT", "isrc": "ISRC"}
_RIFF_INFO = {"title": b"INAM", "artist": b"IART", "album": b"IPRD", "year": b"ICRD", "genre": b"IGNR",
              "track": b"ITRK", "comment": b"ICMT", "copyright": b"ICOP"}
_ISRC = re.compile(r"^([A-Z]{2})-?([A-Z0-9]{3})-?([0-9]{2})-?([0-9]{5})$")


# ------------------------------------------------------------------ metadata


def normalize_isrc(value: Any) -> str:
    """An ISRC as its 12 characters (``CCXXXYYNNNNN``) from ``CC-XXX-YY-NNNNN`` or the bare form; SettingsError if not one.

    CC: two letters (the country of the registrant), XXX: three letters or digits
    (the registrant), YY: two digits (year of reference), NNNNN: five digits
    (designation). Lower case is accepted and upper-cased.
    """
    text = str(value).strip().upper()
    m = _ISRC.match(text)
    hyphens = text.count("-")
    if m is None or hyphens not in (0, 3):
        raise SettingsError(f"metadata isrc = {str(value)!r} is not an ISRC: expected CC-XXX-YY-NNNNN "
                            "(2 letters, 3 letters/digits, 2 digits, 5 digits; 12 characters without hyphens)")
    return "".join(m.groups())


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, str]:
    """The metadata as ``{key: text}`` with empty values dropped and the ISRC normalised; SettingsError for
    an unknown key, a non-text value or a bad ISRC."""
    out: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if key not in METADATA_KEYS:
            raise SettingsError(f"metadata key {key!r} is unknown (known: {', '.join(METADATA_KEYS)})")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise SettingsError(f"metadata {key} = {value!r} must be text")
        text = " ".join(str(value).split())  # one line: tags are single-line fields
        if "\x00" in text:
            raise SettingsError(f"metadata {key} contains a NUL character")
        if not text:
            continue
        out[key] = normalize_isrc(text) if key == "isrc" else text
    return out


def id3_bytes(tags: dict[str, str]) -> bytes:
    """An ID3v2.3 tag (no padding) holding ``tags`` (already checked): TIT2, TPE1, TALB, TYER, TCON, TRCK, COMM, TCOP, TSRC."""
    from mutagen.id3 import COMM, ID3, TALB, TCON, TCOP, TDRC, TIT2, TPE1, TRCK, TSRC

    frames = {"title": TIT2, "artist": TPE1, "album": TALB, "year": TDRC, "genre": TCON, "track": TRCK,
              "copyright": TCOP, "isrc": TSRC}
    id3 = ID3()
    for key, text in tags.items():
        if key == "comment":
            id3.add(COMM(encoding=1, lang="eng", desc="", text=[text]))
        else:
            id3.add(frames[key](encoding=1, text=[text]))  # UTF-16 with BOM: the Unicode encoding v2.3 has
    buf = io.BytesIO()
    id3.save(buf, v2_version=3, padding=lambda info: 0)  # TDRC is written as TYER in v2.3
    return buf.getvalue()


def riff_info_chunk(tags: dict[str, str]) -> bytes:
    """A ``LIST`` chunk of type ``INFO`` with the tags RIFF INFO has (no ISRC: see the module docstring)."""
    body = b"INFO"
    for key, cid in _RIFF_INFO.items():
        if key in tags:
            data = tags[key].encode("utf-8") + b"\x00"
            body += cid + len(data).to_bytes(4, "little") + data + (b"\x00" if len(data) & 1 else b"")
    return b"LIST" + len(body).to_bytes(4, "little") + body


def _append_riff_chunks(path: Path, chunks: list[bytes]) -> None:
    """Append whole chunks (each already even-sized) to a RIFF/RF64 WAVE file and fix its size field."""
    extra = b"".join(chunks)
    with open(path, "r+b") as f:
        head = f.read(12)
        if head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RF64"):
            raise AudioError(f"{path}: not a RIFF WAVE file; cannot add tags")
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size & 1:  # the data chunk of an odd size is followed by a pad byte
            f.write(b"\x00")
            size += 1
        f.write(extra)
        riff_size = size + len(extra) - 8
        if head[:4] == b"RIFF":
            if riff_size > 0xFFFFFFFF:
                raise AudioError(f"{path}: tags would push the WAV past RIFF's 4 GiB limit")
            f.seek(4)
            f.write(riff_size.to_bytes(4, "little"))
        else:  # RF64: the size lives in the ds64 chunk that follows the header
            f.seek(12)
            if f.read(4) != b"ds64":
                raise AudioError(f"{path}: RF64 without a ds64 chunk; cannot add tags")
            f.seek(20)
            f.write(riff_size.to_bytes(8, "little"))


def _tag_wav(path: Path, tags: dict[str, str]) -> None:
    chunks = []
    info = {k: v for k, v in tags.items() if k in _RIFF_INFO}
    if info:
        chunks.append(riff_info_chunk(info))
    if "isrc" in tags:
        tag = id3_bytes(tags)
        chunks.append(b"id3 " + len(tag).to_bytes(4, "little") + tag + (b"\x00" if len(tag) & 1 else b""))
    if chunks:
        _append_riff_chunks(path, chunks)


def _tag_flac(path: Path, tags: dict[str, str]) -> None:
    from mutagen.flac import FLAC

    flac = FLAC(str(path))
    if flac.tags is None:
        flac.add_tags()
    for key, text in tags.items():
        flac.tags[_VORBIS[key]] = [text]
    flac.save()


# ------------------------------------------------------------------ MP3


@numba.njit(cache=True)
def _crc16(data: np.ndarray, crc: int) -> int:
    """CRC-16/ARC (polynomial 0x8005 reflected, as LAME's Info tag and ffmpeg's ``AV_CRC_16_ANSI_LE``)."""
    for i in range(data.shape[0]):
        crc ^= int(data[i])
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc & 0xFFFF


def crc16(data: bytes, crc: int = 0) -> int:
    return int(_crc16(np.frombuffer(data, dtype=np.uint8), crc))


_MPEG1_L3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0)
_MPEG1_RATES = (44100, 48000, 32000, 0)


def _frame_length(header: bytes) -> int:
    """Bytes of an MPEG-1 Layer III frame from its 4-byte header; 0 if it is not one."""
    if len(header) < 4 or header[0] != 0xFF or (header[1] & 0xFE) != 0xFA:
        return 0
    kbps = _MPEG1_L3_KBPS[header[2] >> 4]
    rate = _MPEG1_RATES[(header[2] >> 2) & 3]
    if not kbps or not rate:
        return 0
    return 144000 * kbps // rate + ((header[2] >> 1) & 1)


def _count_frames(mp3: bytes) -> int:
    pos = frames = 0
    while pos < len(mp3):
        n = _frame_length(mp3[pos:pos + 4])
        if n == 0:
            raise AudioError(f"MP3 export: the encoder's output is not a clean MPEG-1 Layer III stream (at byte {pos})")
        pos += n
        frames += 1
    return frames


def lame_info_frame(mp3: bytes, samples: int) -> bytes:
    """A CBR "Info" frame with the LAME extension for the audio frames ``mp3`` that encode ``samples`` samples.

    Same header as the audio frames (no padding slot), silent side info, the
    Xing/Info fields (frames, bytes, TOC, quality), then the LAME tag: version,
    CBR method, encoder delay and padding (12 bits each), music length and CRC,
    and the tag's own CRC (CRC-16/ARC) over the frame's first bytes. Decoders that
    read it skip it and trim delay and padding (tested: libsndfile's mpg123 and
    ffmpeg reading a file; ffmpeg reading a pipe trims the delay, not the padding).
    """
    header = bytearray(mp3[:4])
    header[2] &= 0xFD  # no padding slot
    size = _frame_length(bytes(header))
    frames = _count_frames(mp3)
    padding = frames * 1152 - MP3_ENCODER_DELAY - samples
    if not 0 <= padding < 4096:
        raise AudioError(f"MP3 export: unexpected encoder padding ({padding} samples for {samples} samples in {frames} frames)")
    mono = (header[3] >> 6) == 3
    xing = 4 + (17 if mono else 32)
    frame = bytearray(size)
    frame[:4] = header
    pos = xing
    frame[pos:pos + 4] = b"Info"
    frame[pos + 4:pos + 8] = (0x0F).to_bytes(4, "big")  # frames, bytes, TOC, quality present
    frame[pos + 8:pos + 12] = frames.to_bytes(4, "big")
    frame[pos + 12:pos + 16] = (size + len(mp3)).to_bytes(4, "big")
    frame[pos + 16:pos + 116] = bytes(min(255, i * 256 // 100) for i in range(100))  # CBR: a straight line
    frame[pos + 116:pos + 120] = (100 - 10 * 4 - MP3_QUALITY).to_bytes(4, "big")  # LAME's formula, VBR_q 4 (default)
    lame = pos + 120
    frame[lame:lame + 9] = b"LAME3.100"
    frame[lame + 9] = 0x01  # tag revision 0, method 1: CBR
    # byte lame + 10 (lowpass / 100 Hz) stays 0, "unknown": lameenc does not report it
    frame[lame + 20] = min(255, MP3_BITRATE_KBPS)
    frame[lame + 21:lame + 24] = ((MP3_ENCODER_DELAY << 12) | padding).to_bytes(3, "big")
    frame[lame + 28:lame + 32] = (size + len(mp3)).to_bytes(4, "big")
    frame[lame + 32:lame + 34] = crc16(mp3).to_bytes(2, "big")
    frame[lame + 34:lame + 36] = crc16(bytes(frame[:lame + 34])).to_bytes(2, "big")
    return bytes(frame)


def _pcm16_bytes(q16: np.ndarray) -> bytes:
    """Interleaved little-endian int16 of audio already on the 16-bit grid (``quantize(.., 16)``)."""
    return np.clip(np.rint(q16.T.astype(np.float64) * 32768.0), -32768, 32767).astype("<i2").tobytes()


def encode_mp3_gapless(q16: np.ndarray, sample_rate: int) -> bytes:
    """320k CBR MP3 (an Info/LAME frame, then LAME's frames) of ``(channels, samples)`` 16-bit-grid audio."""
    import lameenc

    channels, samples = q16.shape
    if channels not in (1, 2):
        raise AudioError(f"MP3 export: mono or stereo only, got {channels} channels")
    try:
        enc = lameenc.Encoder()
        enc.set_bit_rate(MP3_BITRATE_KBPS)
        enc.set_in_sample_rate(int(sample_rate))
        enc.set_channels(channels)
        enc.set_quality(MP3_QUALITY)
        out = bytearray()
        for start in range(0, samples, _MP3_BLOCK):
            out += enc.encode(_pcm16_bytes(q16[:, start:start + _MP3_BLOCK]))
        out += enc.flush()
    except (RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"MP3 export: lameenc failed ({' '.join(str(exc).split()) or type(exc).__name__})") from exc
    mp3 = bytes(out)
    return lame_info_frame(mp3, samples) + mp3


def _ffmpeg_decode(path: Path, ffmpeg: str) -> tuple[np.ndarray, int]:
    """Decode a file with ffmpeg (from the file, so it honours the LAME tag's padding as well as its delay)."""
    import subprocess

    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:a:0",
           "-f", "wav", "-c:a", "pcm_f32le", "pipe:1"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AudioError(f"{path}: cannot run ffmpeg ({' '.join(str(exc).split())})") from exc
    lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0:
        raise AudioError(f"{path}: ffmpeg cannot decode it ({lines[-1] if lines else proc.returncode})")
    wav = proc.stdout
    pos, channels, rate = 12, 0, 0
    while pos + 8 <= len(wav):
        cid, size = wav[pos:pos + 4], int.from_bytes(wav[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            channels = int.from_bytes(wav[pos + 10:pos + 12], "little")
            rate = int.from_bytes(wav[pos + 12:pos + 16], "little")
        elif cid == b"data":
            data = wav[pos + 8:]  # a piped WAV's size field is not to be trusted: the rest is audio
            data = data[:len(data) // (4 * max(channels, 1)) * 4 * max(channels, 1)]
            if channels < 1 or rate < 1:
                break
            return np.frombuffer(data, dtype="<f4").reshape(-1, channels).T.copy(), rate
        pos += 8 + size + (size & 1)
    raise AudioError(f"{path}: ffmpeg's decode could not be parsed")


def decode_file(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a deliverable as float32 ``(channels, samples)`` and its rate: :func:`read_audio` (libsndfile,
    which reads MP3 since 1.1), or for an MP3 libsndfile cannot read, ffmpeg when it is installed."""
    import shutil

    from stemmaster.audio_io import read_audio

    path = Path(path)
    try:
        return read_audio(path)
    except AudioError:
        ffmpeg = shutil.which("ffmpeg")
        if path.suffix.lower() != ".mp3" or ffmpeg is None:
            raise
    return _ffmpeg_decode(path, ffmpeg)


# ------------------------------------------------------------------ samples


def _trim(audio: np.ndarray, tp_db: float, ceiling: float, margin: float) -> np.ndarray:
    return audio * 10.0 ** ((ceiling - tp_db - margin) / 20.0)


def _pcm_samples(audio: np.ndarray, spec: FormatSpec, rate: int, ceiling: float | None, seed: int) -> np.ndarray:
    """The samples the PCM file holds: float32 on the format's grid (float32 values for float), under the ceiling."""
    noise = tpdf_noise(audio.shape, seed) if spec.bits else None
    src = audio
    for _ in range(MAX_TRIM_PASSES):
        q = quantize(src, spec.bits, seed=seed, noise=noise) if spec.bits else src.astype(np.float32)
        if ceiling is None:
            return q
        tp = true_peak_dbtp(q, rate)
        if tp <= ceiling:
            return q
        src = _trim(src, tp, ceiling, CEILING_MARGIN_DB)
    raise AudioError(f"could not bring the file under the {ceiling:.2f} dBTP ceiling in {MAX_TRIM_PASSES} passes")


def _write_mp3(tmp: Path, audio: np.ndarray, rate: int, ceiling: float | None, seed: int, tags: dict[str, str]) -> None:
    """Write the MP3 (ID3 tag, Info frame, frames) to ``tmp``; with a ceiling, decode the file as the manifest
    will and trim the input until the decoded true peak is under it."""
    noise = tpdf_noise(audio.shape, seed)
    tag = id3_bytes(tags) if tags else b""
    src = audio
    for _ in range(MAX_TRIM_PASSES):
        data = tag + encode_mp3_gapless(quantize(src, 16, seed=seed, noise=noise), rate)
        with open(tmp, "wb") as f:
            f.write(data)
        if ceiling is None:
            return
        decoded, _ = decode_file(tmp)
        tp = true_peak_dbtp(decoded, rate)
        if tp <= ceiling:
            return
        src = _trim(src, tp, ceiling, MP3_CEILING_MARGIN_DB)
    raise AudioError(f"MP3 export: could not bring the decoded MP3 under the {ceiling:.2f} dBTP ceiling "
                     f"in {MAX_TRIM_PASSES} passes")


# ------------------------------------------------------------------ writing


def _temp_name(final: Path) -> Path:
    # the real extension last: write_audio picks the container by it
    return final.parent / f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.part{final.suffix}"


def _land(tmp: Path, final: Path) -> None:
    land_file(tmp, final)


def check_format(fmt: str) -> FormatSpec:
    spec = FORMATS.get(fmt) if isinstance(fmt, str) else None
    if spec is None:
        raise SettingsError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    return spec


def write_deliverable(path_without_ext: Path, audio: np.ndarray, sample_rate: int, fmt: str, *,
                      out_rate: int | None = None, ceiling_dbtp: float | None = None,
                      metadata: dict | None = None, dither_seed: int = 0) -> Path:
    """Write ``audio`` (float ``(channels, samples)`` at ``sample_rate``) as one deliverable; return its path.

    The path is ``path_without_ext`` plus the format's extension (``.wav``,
    ``.flac``, ``.mp3``). See the module docstring for resampling, dither, the
    ceiling, tags and the atomic write. Raises SettingsError for an unknown
    format, rate or metadata key, a bad ISRC or a non-finite ceiling; AudioError
    for unusable audio or a failed write (nothing is left under the final name).
    """
    spec = check_format(fmt)
    tags = check_metadata(metadata)
    if out_rate is not None and (isinstance(out_rate, bool) or out_rate not in OUT_RATES):
        raise SettingsError(f"out_rate = {out_rate!r} Hz (allowed: {', '.join(map(str, OUT_RATES))})")
    if ceiling_dbtp is not None and not (isinstance(ceiling_dbtp, (int, float)) and np.isfinite(ceiling_dbtp)
                                         and ceiling_dbtp <= 0.0):
        raise SettingsError(f"ceiling_dbtp = {ceiling_dbtp!r} (a number of dBTP, at most 0)")
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] < 1 or audio.shape[1] == 0 or not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(f"deliverable audio must be float shaped (channels, samples), got {audio.dtype} {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioError("deliverable audio contains NaN or infinite samples")
    sample_rate = int(sample_rate)
    rate = int(out_rate) if out_rate is not None else sample_rate
    if spec.extension == ".mp3" and out_rate is None:
        rate = encode_rate(sample_rate)
    if rate != sample_rate:
        audio = resample(audio.astype(np.float32), sample_rate, rate)
    audio = audio.astype(np.float64)
    if ceiling_dbtp is not None:  # a float signal over the ceiling (after resampling) is trimmed to it first
        tp = true_peak_dbtp(audio, rate)
        if tp > ceiling_dbtp:
            audio = _trim(audio, tp, ceiling_dbtp, CEILING_MARGIN_DB)

    final = Path(str(path_without_ext) + spec.extension)
    tmp = _temp_name(final)
    try:
        if spec.extension == ".mp3":
            _write_mp3(tmp, audio, rate, ceiling_dbtp, dither_seed, tags)
        else:
            samples = _pcm_samples(audio, spec, rate, ceiling_dbtp, dither_seed)
            write_audio(tmp, samples, rate, subtype=spec.subtype)
            if tags and spec.extension == ".wav":
                _tag_wav(tmp, tags)
            elif tags:
                _tag_flac(tmp, tags)
        _land(tmp, final)
        tmp = None
    except OSError as exc:
        raise AudioError(f"{final}: cannot write ({describe_os_error(exc)})") from exc
    except MutagenError as exc:
        raise AudioError(f"{final}: cannot write its tags ({' '.join(str(exc).split()) or type(exc).__name__})") from exc
    finally:
        if tmp is not None:
            remove_quietly(tmp)
    return final
