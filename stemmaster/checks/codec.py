"""Codec checks: what a lossy encode does to the master's true peak and loudness.

A lossy codec removes and requantises spectral content, and the decoded
waveform overshoots the source's peaks (typically a few tenths of a dB at
high bit rates, more on dense, loud masters). A master limited right at
0 dBTP then clips on playback of the MP3/AAC. This module encodes the master
as a streaming service or a listener's player would, decodes it, aligns the
decoded signal with the source and measures it with the project's meters
(4x BS.1770 true peak, gated BS.1770 loudness).

* MP3: CBR 320 kbit/s with ``lameenc`` (LAME, in memory, quality 3: the LAME
  command line's default algorithm quality), decoded by ffmpeg when it is
  installed, else by libsndfile (``soundfile`` reads MP3 with libsndfile
  >= 1.1; both decode to float without clipping and agree).
* AAC-LC: 256 kbit/s with ffmpeg's native ``aac`` encoder, ADTS through a
  pipe into a second ffmpeg that decodes it to float (two processes chained
  by an OS pipe: no files written). Skipped (``available: False``) when
  ffmpeg is not installed. Services use other AAC encoders (Apple's, Fraunhofer's);
  their overshoot is of the same order but not identical.

Masters at rates other than 44.1/48 kHz are first resampled (to 44.1 kHz for
multiples of 44.1 kHz, else 48 kHz), as MP3 has no higher rates and
streaming services deliver at these; the source figures are then those of the
resampled master.

Alignment: the encoder delay and padding (LAME 576 + 529 samples, AAC 1024
priming samples, depending on how the decoder trims) are found by
cross-correlating 1.5 s of the loudest part of the source with the decoded
signal over +-8192 samples, so no encoder's figures are assumed.

Overs: ``overs`` is true when the decoded true peak exceeds 0 dBTP. Each
over is classified (``over_events``): a "peak" over happens where the
source is within 3 dB of its true peak (the codec overshoots a limited peak;
a lower ceiling cures it), a "glitch" where the source is well below its
ceiling (an encoder artefact: ffmpeg's native AAC encoder now and then
spikes 10-20 dB over a quiet passage; no ceiling cures that). The
recommended ceiling comes from the loudest "peak" over: the source true peak
minus that over's decoded true peak (the overshoot) minus a margin of
:data:`MARGIN_DB`, rounded down to 0.1 dB, so a master whose true peak sits
there decodes to about ``-MARGIN_DB`` dBTP if the overshoot stays the same
(it varies by a few tenths with the extra limiting, hence the margin;
re-check after re-mastering).

Speed: the MP3 encode (about 30x real time for stereo 44.1 kHz; lameenc
holds the GIL) is the floor; the AAC round trip runs at the same time in
ffmpeg processes. ffmpeg's AAC encoder is the slower of the two (about 13x
real time), so masters of a minute or more are encoded as overlapping pieces
(at least 30 s, one per CPU) side by side, each with 1 s of its
neighbours' audio at both ends for the encoder to settle, aligned on its own
and cut back to its span.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from scipy.signal import correlate

from stemmaster.audio_io import resample
from stemmaster.errors import AudioError
from stemmaster.meters.loudness import check_meter_audio, gated_loudness_lufs
from stemmaster.meters.truepeak import true_peak_envelope

MP3_BITRATE_KBPS = 320
MP3_QUALITY = 3  # LAME's algorithm quality 0 (best, slowest) .. 9; 3 is the lame CLI's default
AAC_BITRATE_KBPS = 256
MARGIN_DB = 0.5  # ffmpeg AAC overshoot varies by a few tenths with the limiting (measured); 0.2 fell short
MAX_LAG = 8192  # samples either side searched for the codec's delay
_ALIGN_SEGMENT = 1 << 16  # samples of source correlated (1.5 s at 44.1 kHz)
EVENT_GAP_S = 0.05  # overs closer than this are one event
LOCAL_S = 0.005  # the source's peak is looked up within this of an over
PEAK_RANGE_DB = 3.0  # an over where the source is within this of its true peak is a "peak" over
MAX_EVENTS = 10  # events listed in a result
MIN_CHUNK_S = 30.0  # AAC pieces are at least this long
CHUNK_OVERLAP_S = 1.0
_CODEC_RATES = (44100, 48000)
_FFMPEG_TIMEOUT_S = 600.0


def encode_rate(sample_rate: int) -> int:
    """The rate the codecs are fed: the master's if 44.1 or 48 kHz, else 44.1 kHz for its multiples, else 48 kHz."""
    sample_rate = int(sample_rate)
    if sample_rate in _CODEC_RATES:
        return sample_rate
    return 44100 if sample_rate % 44100 == 0 else 48000


_BLOCK = 1 << 18  # frames per block when converting or piping audio: the working set stays small


def _to_int16_bytes(audio: np.ndarray) -> bytes:
    """Interleaved little-endian 16-bit PCM of float audio (rounded, clipped to full scale)."""
    channels, n = audio.shape
    pcm = np.empty((n, channels), dtype="<i2")
    for a in range(0, n, _BLOCK):
        block = np.rint(np.asarray(audio[:, a:a + _BLOCK], dtype=np.float64).T * 32767.0)
        pcm[a:a + _BLOCK] = np.clip(block, -32768, 32767, out=block)
    return pcm.tobytes()


def encode_mp3(audio: np.ndarray, sample_rate: int, bitrate_kbps: int = MP3_BITRATE_KBPS,
               quality: int = MP3_QUALITY) -> bytes:
    """MP3 (CBR) of ``(channels, samples)`` audio at 32, 44.1 or 48 kHz, encoded in memory with lameenc."""
    import lameenc

    channels = audio.shape[0]
    if channels not in (1, 2):
        raise AudioError(f"MP3 check: mono or stereo only, got {channels} channels")
    try:
        enc = lameenc.Encoder()
        enc.set_bit_rate(int(bitrate_kbps))
        enc.set_in_sample_rate(int(sample_rate))
        enc.set_channels(channels)
        enc.set_quality(int(quality))
        return bytes(enc.encode(_to_int16_bytes(audio))) + bytes(enc.flush())
    except Exception as exc:  # lameenc raises RuntimeError/ValueError with terse messages
        raise AudioError(f"MP3 check: lameenc failed to encode ({' '.join(str(exc).split()) or type(exc).__name__})") from exc


def _ffmpeg_error(what: str, code: int, stderr: bytes) -> AudioError:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    reason = lines[-1] if lines else "no message"
    return AudioError(f"{what}: ffmpeg failed (exit {code}): {reason}")


def decode_mp3(data: bytes, channels: int, ffmpeg: str | None) -> tuple[np.ndarray, str]:
    """Decode MP3 bytes to float32 ``(channels, samples)`` (no clipping); returns ``(audio, decoder name)``."""
    if ffmpeg:
        cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "mp3", "-i", "pipe:0",
               "-f", "f32le", "-ac", str(channels), "pipe:1"]
        try:
            proc = subprocess.run(cmd, input=data, capture_output=True, timeout=_FFMPEG_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AudioError(f"MP3 check: cannot run ffmpeg ({' '.join(str(exc).split())})") from exc
        if proc.returncode != 0:
            raise _ffmpeg_error("MP3 check (decoding)", proc.returncode, proc.stderr)
        return np.frombuffer(proc.stdout, dtype="<f4").reshape(-1, channels).T, "ffmpeg"
    import soundfile as sf

    if "MP3" not in sf.available_formats():
        raise AudioError("MP3 check: no MP3 decoder (install ffmpeg, or soundfile with libsndfile >= 1.1)")
    try:
        audio, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"MP3 check: libsndfile cannot decode the MP3 ({' '.join(str(exc).split())})") from exc
    return np.ascontiguousarray(audio.T), "libsndfile"


def aac_roundtrip(audio: np.ndarray, sample_rate: int, ffmpeg: str,
                  bitrate_kbps: int = AAC_BITRATE_KBPS) -> np.ndarray:
    """Encode to AAC-LC with ffmpeg and decode again, through pipes; float32 ``(channels, samples)``.

    Two ffmpeg processes, the encoder's ADTS output piped straight into the
    decoder; the source is written to the encoder's stdin from a thread while
    the decoded float samples are read here. Nothing touches the disk.
    """
    channels = audio.shape[0]
    enc_cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
               "-f", "f32le", "-ar", str(sample_rate), "-ac", str(channels), "-i", "pipe:0",
               "-c:a", "aac", "-b:a", f"{int(bitrate_kbps)}k", "-f", "adts", "pipe:1"]
    dec_cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "aac", "-i", "pipe:0",
               "-f", "f32le", "-ac", str(channels), "pipe:1"]
    what = f"AAC {int(bitrate_kbps)} kbit/s check"
    errors: dict[str, bytes] = {}
    try:
        enc = subprocess.Popen(enc_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise AudioError(f"{what}: cannot run ffmpeg ({' '.join(str(exc).split())})") from exc
    try:
        dec = subprocess.Popen(dec_cmd, stdin=enc.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        enc.kill()
        enc.communicate()
        raise AudioError(f"{what}: cannot run ffmpeg ({' '.join(str(exc).split())})") from exc
    enc.stdout.close()  # the decoder holds the pipe now; the encoder sees EPIPE if the decoder dies

    def feed() -> None:
        try:
            for a in range(0, audio.shape[1], _BLOCK):  # interleaved float32, a block at a time
                enc.stdin.write(np.ascontiguousarray(audio[:, a:a + _BLOCK].T, dtype="<f4").tobytes())
        except (BrokenPipeError, OSError):
            pass  # the encoder exited early: its exit code and stderr say why
        finally:
            try:
                enc.stdin.close()
            except OSError:
                pass

    def drain(name: str, stream) -> None:
        errors[name] = stream.read()

    threads = [threading.Thread(target=feed, daemon=True),
               threading.Thread(target=drain, args=("encoder", enc.stderr), daemon=True),
               threading.Thread(target=drain, args=("decoder", dec.stderr), daemon=True)]
    for t in threads:
        t.start()
    try:
        out = dec.stdout.read()
        dec.wait(timeout=_FFMPEG_TIMEOUT_S)
        enc.wait(timeout=_FFMPEG_TIMEOUT_S)
    except BaseException:
        for p in (enc, dec):
            p.kill()
            p.wait()
        raise
    finally:
        for t in threads:
            t.join(timeout=5.0)
        dec.stdout.close()
    if enc.returncode != 0:
        raise _ffmpeg_error(f"{what} (encoding)", enc.returncode, errors.get("encoder", b""))
    if dec.returncode != 0:
        raise _ffmpeg_error(f"{what} (decoding)", dec.returncode, errors.get("decoder", b""))
    usable = len(out) - len(out) % (4 * channels)
    return np.frombuffer(out[:usable], dtype="<f4").reshape(-1, channels).T


def find_delay(source: np.ndarray, decoded: np.ndarray, sample_rate: int, max_lag: int = MAX_LAG) -> int:
    """Samples by which ``decoded`` lags ``source`` (negative: it leads), by cross-correlation.

    The 1.5 s of the source around its loudest 100 ms (mono sum) are
    correlated with the decoded signal over ``+-max_lag`` samples; the largest
    positive correlation wins (polarity is kept).
    """
    def mono(x: np.ndarray, a: int, b: int) -> np.ndarray:  # the mono sum of x[:, a:b], float64
        return np.asarray(x[:, a:b], dtype=np.float64).sum(axis=0)

    n = source.shape[1]
    seg = min(_ALIGN_SEGMENT, n)
    hop = max(1, int(0.1 * sample_rate))
    hops = n // hop
    if hops > 0:  # the energy of each 100 ms, a block of hops at a time (no whole-song copy)
        per = max(1, _BLOCK // hop)
        energy = np.concatenate([(mono(source, k * hop, min(hops, k + per) * hop).reshape(-1, hop) ** 2).sum(axis=1)
                                 for k in range(0, hops, per)])
        centre = int(np.argmax(energy)) * hop + hop // 2
    else:
        centre = n // 2
    start = min(max(0, centre - seg // 2), n - seg)
    ref = mono(source, start, start + seg)
    lo = start - max_lag
    window = np.zeros(seg + 2 * max_lag)
    a, b = max(lo, 0), min(lo + window.shape[0], decoded.shape[1])
    if b > a:
        window[a - lo:b - lo] = mono(decoded, a, b)
    c = correlate(window, ref, mode="valid", method="fft")  # c[k]: decoded shifted by k - max_lag
    return int(np.argmax(c)) - max_lag


def align(decoded: np.ndarray, delay: int, length: int) -> np.ndarray:
    """``decoded`` shifted back by ``delay`` samples and cut or zero-padded to ``length``."""
    out = np.zeros((decoded.shape[0], length), dtype=np.float32)
    src0 = max(delay, 0)
    dst0 = max(-delay, 0)
    m = max(0, min(length - dst0, decoded.shape[1] - src0))
    out[:, dst0:dst0 + m] = decoded[:, src0:src0 + m]
    return out


def recommended_ceiling(source_tp_dbtp: float, decoded_tp_dbtp: float, margin_db: float = MARGIN_DB) -> float:
    """The ceiling at which the decoded true peak would sit ``margin_db`` under 0 dBTP, rounded down to 0.1 dB."""
    value = source_tp_dbtp - decoded_tp_dbtp - margin_db
    return math.floor(round(value * 10.0, 6)) / 10.0


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _result(codec: str, bitrate: int, encoder: str, rate: int, ceiling: float) -> dict[str, Any]:
    return {
        "codec": codec, "bitrate_kbps": bitrate, "encoder": encoder, "decoder": None,
        "available": False, "sample_rate": rate, "delay_samples": None,
        "source_true_peak_dbtp": None, "decoded_true_peak_dbtp": None, "overshoot_db": None,
        "overs": None, "sample_overs": None, "over_events": None, "peak_overs": None, "glitch_overs": None,
        "ceiling_dbtp": ceiling, "recommended_ceiling_dbtp": None,
        "source_lufs": None, "decoded_lufs": None, "loudness_change_lu": None,
        "seconds": None, "note": None,
    }


def over_events(decoded_env: np.ndarray, source_env: np.ndarray, rate: int,
                source_tp_dbtp: float) -> list[dict[str, Any]]:
    """The decoded signal's overs (true peak above 0 dBTP) as events, loudest first.

    Overs closer than :data:`EVENT_GAP_S` are one event. Each event is
    ``{"time_s", "decoded_dbtp", "source_dbtp", "kind"}`` where
    ``source_dbtp`` is the source's true peak within +-``LOCAL_S`` of it and
    ``kind`` is ``"peak"`` when that is within :data:`PEAK_RANGE_DB` of the
    source's overall true peak (the codec overshoots a limited peak: a lower
    ceiling cures it) or ``"glitch"`` otherwise (the codec spikes where the
    master is well below its ceiling: an encoder artefact no ceiling cures).
    """
    over = np.flatnonzero(decoded_env > 1.0)
    if over.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(over) > int(EVENT_GAP_S * rate)) + 1
    local = int(LOCAL_S * rate)
    events = []
    for group in np.split(over, breaks):
        k = int(group[np.argmax(decoded_env[group])])
        src = float(source_env[max(0, k - local):k + local + 1].max())
        src_db = 20.0 * math.log10(src) if src > 0 else -math.inf
        events.append({
            "time_s": round(k / rate, 3),
            "decoded_dbtp": round(20.0 * math.log10(float(decoded_env[k])), 3),
            "source_dbtp": round(src_db, 3) if math.isfinite(src_db) else None,
            "kind": "peak" if src_db >= source_tp_dbtp - PEAK_RANGE_DB else "glitch",
        })
    events.sort(key=lambda e: -e["decoded_dbtp"])
    return events


def _measure(result: dict[str, Any], source: np.ndarray, source_env: np.ndarray, decoded: np.ndarray,
             delay: int, rate: int, source_tp: float, source_lufs: float) -> dict[str, Any]:
    y = align(decoded, delay, source.shape[1])
    env = true_peak_envelope(y)
    tp = 20.0 * math.log10(float(env.max())) if env.size and env.max() > 0 else -math.inf
    lufs = gated_loudness_lufs(y, rate)
    events = over_events(env, source_env, rate, source_tp)
    peaks = [e for e in events if e["kind"] == "peak"]
    overs = bool(tp > 0.0)
    recommended = recommended_ceiling(source_tp, peaks[0]["decoded_dbtp"]) if peaks else None
    result.update(
        available=True, delay_samples=int(delay),
        source_true_peak_dbtp=_finite(source_tp), decoded_true_peak_dbtp=_finite(tp),
        overshoot_db=_finite(tp - source_tp), overs=overs,
        sample_overs=int(np.count_nonzero(y > 1.0) + np.count_nonzero(y < -1.0)),
        over_events=events[:MAX_EVENTS], peak_overs=len(peaks), glitch_overs=len(events) - len(peaks),
        recommended_ceiling_dbtp=recommended,
        source_lufs=_finite(source_lufs), decoded_lufs=_finite(lufs),
        loudness_change_lu=_finite(lufs - source_lufs),
    )
    if events and not peaks:
        result["note"] = _join(result["note"], "every over is a codec glitch where the master is well below "
                                               "its ceiling; lowering the ceiling would not remove it")
    return result


def _check_length(codec: str, decoded: np.ndarray, source: np.ndarray) -> None:
    if decoded.shape[1] < source.shape[1] // 2:
        raise AudioError(f"{codec} check: the decoder returned {decoded.shape[1]} samples for {source.shape[1]}")


def _join(a: str | None, b: str) -> str:
    return b if not a else f"{a}; {b}"


def _aac_chunked(source: np.ndarray, rate: int, ffmpeg: str, chunks: int) -> tuple[np.ndarray, int]:
    """AAC round trip of ``source`` in ``chunks`` overlapping pieces, each in its own ffmpeg pair, run
    side by side: ``(decoded aligned to the source, delay of the first piece)``.

    Each piece carries :data:`CHUNK_OVERLAP_S` of the neighbouring audio at both ends (the encoder's
    warm-up, and its lookahead at the cut), is aligned to its own source by cross-correlation, and
    contributes only its own span, so the result is the same as one long encode up to the codec noise.
    """
    n = source.shape[1]
    edges = np.linspace(0, n, chunks + 1).round().astype(int)
    pad = int(CHUNK_OVERLAP_S * rate)

    out = np.empty((source.shape[0], n), dtype=np.float32)

    def one(i: int) -> int:
        a, b = max(0, edges[i] - pad), min(n, edges[i + 1] + pad)
        piece = source[:, a:b]
        decoded = aac_roundtrip(piece, rate, ffmpeg)
        _check_length("AAC", decoded, piece)
        delay = find_delay(piece, decoded, rate)
        out[:, edges[i]:edges[i + 1]] = align(decoded, delay, b - a)[:, edges[i] - a:edges[i + 1] - a]
        return delay

    with ThreadPoolExecutor(max_workers=chunks) as pool:
        delays = list(pool.map(one, range(chunks)))
    return out, delays[0]


def codec_checks(master: np.ndarray, sample_rate: int, *, ceiling_dbtp: float,
                 ffmpeg: str | None | bool = True) -> list[dict[str, Any]]:
    """MP3 320 kbit/s and (with ffmpeg) AAC 256 kbit/s round trips of ``master``, measured.

    ``master`` is float ``(channels, samples)``, mono or stereo, at least 1 s;
    ``ceiling_dbtp`` is the true-peak ceiling the master was limited to (the
    recommendation is for it). ``ffmpeg``: ``True`` finds it on the PATH,
    ``False``/``None`` does without it, a string is its path.

    Returns ``[mp3, aac]`` dicts with the keys ``codec``, ``bitrate_kbps``,
    ``encoder``, ``decoder``, ``available``, ``sample_rate`` (the encoded
    rate), ``delay_samples``, ``source_true_peak_dbtp``,
    ``decoded_true_peak_dbtp``, ``overshoot_db`` (decoded minus source),
    ``overs`` (decoded true peak above 0 dBTP), ``sample_overs`` (decoded
    samples beyond full scale), ``over_events`` (up to 10 events, loudest
    first, see :func:`over_events`), ``peak_overs`` and ``glitch_overs``
    (how many events of each kind), ``ceiling_dbtp``,
    ``recommended_ceiling_dbtp`` (``None`` without "peak" overs),
    ``source_lufs``, ``decoded_lufs``,
    ``loudness_change_lu``, ``seconds`` (wall time of that round trip and its
    measurement; the two run at the same time, so the check takes about the
    larger) and ``note`` (``None`` or one line); measures are ``None`` when ``available`` is
    false (AAC without ffmpeg). Raises AudioError for bad input or a failing
    encoder/decoder (one line, with ffmpeg's last error line).
    """
    if not isinstance(master, np.ndarray) or master.ndim != 2 or master.shape[0] not in (1, 2):
        raise AudioError(f"codec checks take mono or stereo audio shaped (channels, samples), "
                         f"got {getattr(master, 'shape', type(master))}")
    check_meter_audio(master, sample_rate)
    if isinstance(ceiling_dbtp, bool) or not isinstance(ceiling_dbtp, (int, float)) or not math.isfinite(ceiling_dbtp):
        raise AudioError(f"codec checks: ceiling_dbtp must be a number of dBTP, got {ceiling_dbtp!r}")
    sample_rate = int(sample_rate)
    if master.shape[1] < sample_rate:
        raise AudioError(f"master too short for codec checks ({master.shape[1] / sample_rate:.2f} s; at least 1 s)")
    exe = shutil.which("ffmpeg") if ffmpeg is True else (ffmpeg or None)
    rate = encode_rate(sample_rate)
    source = resample(master, sample_rate, rate) if rate != sample_rate else np.asarray(master, dtype=np.float32)
    ceiling = float(ceiling_dbtp)
    mp3 = _result("mp3", MP3_BITRATE_KBPS, f"lameenc (LAME), CBR, quality {MP3_QUALITY}, 16-bit input", rate, ceiling)
    aac = _result("aac", AAC_BITRATE_KBPS, "ffmpeg native aac (AAC-LC)", rate, ceiling)
    if rate != sample_rate:
        note = f"master resampled from {sample_rate} Hz to {rate} Hz for the codecs"
        mp3["note"] = aac["note"] = note

    seconds = master.shape[1] / sample_rate
    chunks = max(1, min(os.cpu_count() or 1, int(seconds // MIN_CHUNK_S)))

    def run_aac() -> tuple[np.ndarray, int, bool, float]:
        """(decoded, the codec's delay, whether ``decoded`` is already aligned, start time)."""
        t0 = time.perf_counter()
        if chunks == 1:
            decoded = aac_roundtrip(source, rate, exe)
            _check_length("AAC", decoded, source)
            return decoded, find_delay(source, decoded, rate), False, t0
        decoded, delay = _aac_chunked(source, rate, exe, chunks)
        return decoded, delay, True, t0

    with ThreadPoolExecutor(max_workers=1) as pool:
        aac_future = pool.submit(run_aac) if exe else None  # ffmpeg processes, on the other cores
        t0 = time.perf_counter()
        source_env = true_peak_envelope(source)
        source_tp = 20.0 * math.log10(float(source_env.max())) if source_env.max() > 0 else -math.inf
        source_lufs = gated_loudness_lufs(source, rate)
        shared_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        mp3_bytes = encode_mp3(source, rate)
        decoded, decoder = decode_mp3(mp3_bytes, source.shape[0], exe)
        _check_length("MP3", decoded, source)
        mp3["decoder"] = decoder
        _measure(mp3, source, source_env, decoded, find_delay(source, decoded, rate), rate, source_tp, source_lufs)
        mp3["seconds"] = round(time.perf_counter() - t0 + shared_s, 3)
        del decoded, mp3_bytes  # a whole song each: gone before the AAC result arrives
        if aac_future is not None:
            decoded, delay, aligned, t_aac = aac_future.result()
            aac["decoder"] = "ffmpeg"
            if aligned:
                _measure(aac, source, source_env, decoded, 0, rate, source_tp, source_lufs)
                aac["delay_samples"] = delay
                aac["note"] = _join(aac["note"], f"encoded in {chunks} overlapping pieces side by side")
            else:
                _measure(aac, source, source_env, decoded, delay, rate, source_tp, source_lufs)
            aac["seconds"] = round(time.perf_counter() - t_aac + shared_s, 3)
        else:
            aac["note"] = _join(aac["note"], "ffmpeg not found: AAC check skipped")
    return [mp3, aac]
