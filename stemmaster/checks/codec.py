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

Memory: nothing held grows with the master's length. The master (an array
or an ``AudioSource``, ``(channels, samples)``) is read a block at a time:
threads feed each encoder's stdin from source blocks (the MP3 through
``lameenc`` block by block into an ffmpeg decoder; the AAC as float into
ffmpeg's encoder, piped into its decoder), the decoded streams are read from
the decoders' stdout block by block, and one pass measures both against the
source read at the same positions (true-peak envelopes with the
interpolator's reach of context either side, streaming loudness meters,
over events kept as counts, the loudest :data:`MAX_EVENTS` and one pair of
numbers per event). The codec delay is found on a bounded stretch near the
start (:data:`ALIGN_SEARCH_S` from the source's first sound): only that much
decoded audio is buffered before the measurement starts. Without ffmpeg,
the MP3 is encoded into an anonymous temporary file (no name on disk, gone
when closed) and libsndfile decodes it from there.

Speed: the MP3 encode (about 30x real time for stereo 44.1 kHz; lameenc
holds the GIL) and ffmpeg's AAC round trip run at the same time, the
measurement keeping pace with both. The AAC is one encode of the whole
master however long it is, as a streaming service makes it: ffmpeg's native
encoder carries its state from frame to frame, and a piece encoded on its
own never rejoins the whole file's encode, even when it starts on the same
1024-sample frame grid with 5 s of warm-up (measured: a second and a minute
after the cut its samples still differ by up to 0.13 and 0.18; on 6-minute masters
the decoded true peak moved by up to 2.7 dB and the over counts by a third).
Pieces side by side encode faster (about 8-12 s against 13-17 s for a
6-minute master on two cores), but the check's wall time is set as much by
the MP3 encode and the measurement, and pieces report another encode's peaks.
"""

from __future__ import annotations

import math
import shutil
import time
from array import array
from typing import Any

import numpy as np
from scipy.signal import correlate

from stemmaster.audio_source import AudioSource, ResampledSource
from stemmaster.checks.blocks import check_source
from stemmaster.meters.stream import LoudnessMeter
from stemmaster.checks.roundtrip import (AAC_BITRATE_KBPS, MP3_BITRATE_KBPS, MP3_QUALITY, DecodedStream,
                                         aac_roundtrip, aac_stream, encode_mp3, mp3_stream)
from stemmaster.errors import AudioError
from stemmaster.meters.truepeak import true_peak_envelope

__all__ = ["AAC_BITRATE_KBPS", "MP3_BITRATE_KBPS", "MP3_QUALITY", "aac_roundtrip", "align", "codec_checks",
           "encode_mp3", "encode_rate", "find_delay", "over_events", "recommended_ceiling"]

MARGIN_DB = 0.5  # ffmpeg AAC overshoot varies by a few tenths with the limiting (measured); 0.2 fell short
MAX_LAG = 8192  # samples either side searched for the codec's delay
_ALIGN_SEGMENT = 1 << 16  # samples of source correlated (1.5 s at 44.1 kHz)
ALIGN_SEARCH_S = 10.0  # the delay is searched in this much of the source from its first sound
ALIGN_START_MAX_S = 60.0  # ... which is looked for this far into the source at most
_SOUND_LEVEL = 10.0 ** (-60.0 / 20.0)  # a sample above -60 dBFS is sound
EVENT_GAP_S = 0.05  # overs closer than this are one event
LOCAL_S = 0.005  # the source's peak is looked up within this of an over
PEAK_RANGE_DB = 3.0  # an over where the source is within this of its true peak is a "peak" over
MAX_EVENTS = 10  # events listed in a result
_CODEC_RATES = (44100, 48000)
_MEASURE_BLOCK = 1 << 16  # frames per measured block
_REACH = 32  # context either side for the true-peak envelope (the interpolator's 21 taps per phase, and more)


def encode_rate(sample_rate: int) -> int:
    """The rate the codecs are fed: the master's if 44.1 or 48 kHz, else 44.1 kHz for its multiples, else 48 kHz."""
    sample_rate = int(sample_rate)
    if sample_rate in _CODEC_RATES:
        return sample_rate
    return 44100 if sample_rate % 44100 == 0 else 48000


def find_delay(source: np.ndarray, decoded: np.ndarray, sample_rate: int, max_lag: int = MAX_LAG) -> int:
    """Samples by which ``decoded`` lags ``source`` (negative: it leads), by cross-correlation;
    both ``(channels, samples)``.

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
    if hops > 0:  # the energy of each 100 ms, a block of hops at a time
        per = max(1, (1 << 18) // hop)
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
    """``decoded`` ``(channels, samples)`` shifted back by ``delay`` samples and cut or zero-padded to ``length``."""
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


def _db(linear: float) -> float:
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


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


# ---------------------------------------------------------------- over events


class OverEvents:
    """The decoded signal's overs (true peak above 0 dBTP) gathered into events, block by block.

    ``add(start, decoded_env, source_env, source_start)`` takes the decoded
    true-peak envelope of samples ``start..`` and the source's envelope from
    ``source_start`` (covering ``LOCAL_S`` either side of the block). Overs
    closer than :data:`EVENT_GAP_S` are one event, also across blocks. Kept:
    the loudest ``keep`` events (all when ``None``) and, per event, its
    decoded and source peaks (two numbers: the counts by kind need the
    source's overall true peak, known only at the end).
    """

    def __init__(self, rate: int, keep: int | None = MAX_EVENTS) -> None:
        self.rate = int(rate)
        self.gap = int(EVENT_GAP_S * rate)
        self.local = int(LOCAL_S * rate)
        self.keep = keep
        self._open: list | None = None  # [last over, k, decoded peak at k, source peak near k]
        self._top: list[tuple[float, int, float]] = []  # (decoded dBTP rounded, k, source peak), loudest first
        self._decoded = array("d")
        self._source = array("d")

    def add(self, start: int, decoded_env: np.ndarray, source_env: np.ndarray, source_start: int) -> None:
        over = np.flatnonzero(decoded_env > 1.0)
        if over.size == 0:
            return
        for group in np.split(over, np.flatnonzero(np.diff(over) > self.gap) + 1):
            j = int(group[np.argmax(decoded_env[group])])
            k, value = start + j, float(decoded_env[j])
            near = source_env[max(0, k - self.local) - source_start:k + self.local + 1 - source_start]
            src = float(near.max())
            if self._open is not None and start + int(group[0]) - self._open[0] <= self.gap:
                if value > self._open[2]:  # the first of equal maxima stays
                    self._open[1:] = [k, value, src]
                self._open[0] = start + int(group[-1])
            else:
                self._close()
                self._open = [start + int(group[-1]), k, value, src]

    def _close(self) -> None:
        if self._open is None:
            return
        _, k, value, src = self._open
        self._open = None
        self._decoded.append(value)
        self._source.append(src)
        self._top.append((round(_db(value), 3), k, src))
        if self.keep is not None:
            self._top.sort(key=lambda e: -e[0])  # stable: equal ones stay in time order
            del self._top[self.keep:]

    def finish(self, source_tp_dbtp: float) -> tuple[list[dict[str, Any]], int, float | None]:
        """``(events loudest first, how many are "peak" overs, the loudest peak over's decoded dBTP)``;
        ``len`` of all events is :attr:`count`. An event is a "peak" over when the source within
        ``LOCAL_S`` of it is within :data:`PEAK_RANGE_DB` of ``source_tp_dbtp``, else a "glitch"."""
        self._close()
        threshold = source_tp_dbtp - PEAK_RANGE_DB
        self._top.sort(key=lambda e: -e[0])
        events = []
        for dbtp, k, src in self._top:
            src_db = _db(src)
            events.append({"time_s": round(k / self.rate, 3), "decoded_dbtp": dbtp,
                           "source_dbtp": round(src_db, 3) if math.isfinite(src_db) else None,
                           "kind": "peak" if src_db >= threshold else "glitch"})
        with np.errstate(divide="ignore"):
            src_db = 20.0 * np.log10(np.frombuffer(self._source, dtype=np.float64))
        is_peak = src_db >= threshold
        loudest = None
        if is_peak.any():
            loudest = round(_db(float(np.frombuffer(self._decoded, dtype=np.float64)[is_peak].max())), 3)
        return events, int(is_peak.sum()), loudest

    @property
    def count(self) -> int:
        return len(self._decoded) + (self._open is not None)


def over_events(decoded_env: np.ndarray, source_env: np.ndarray, rate: int,
                source_tp_dbtp: float) -> list[dict[str, Any]]:
    """The decoded signal's overs (true peak above 0 dBTP) as events, loudest first, from whole
    envelopes ``(samples,)`` (see :class:`OverEvents`).

    Each event is ``{"time_s", "decoded_dbtp", "source_dbtp", "kind"}`` where
    ``source_dbtp`` is the source's true peak within +-``LOCAL_S`` of it and
    ``kind`` is ``"peak"`` when that is within :data:`PEAK_RANGE_DB` of the
    source's overall true peak (the codec overshoots a limited peak: a lower
    ceiling cures it) or ``"glitch"`` otherwise (the codec spikes where the
    master is well below its ceiling: an encoder artefact no ceiling cures).
    """
    tracker = OverEvents(rate, keep=None)
    tracker.add(0, np.asarray(decoded_env), np.asarray(source_env), 0)
    return tracker.finish(source_tp_dbtp)[0]


# ---------------------------------------------------------------- aligned streams


class _Aligned:
    """A decoded stream shifted back by ``delay`` and cut or zero-padded to ``length`` frames, read
    in order; ``head`` holds the frames already read from the stream (from its start)."""

    def __init__(self, decoded: DecodedStream, head: np.ndarray, delay: int, length: int) -> None:
        self.decoded, self.length, self.position = decoded, length, 0
        if delay >= 0:
            skip = max(0, delay - head.shape[1])
            self._buf = head[:, delay:]
            while skip > 0 and not decoded.ended:
                skip -= decoded.read(min(skip, 1 << 16)).shape[1]
        else:
            self._buf = np.concatenate([np.zeros((head.shape[0], -delay), dtype=np.float32), head], axis=1)

    def read(self, n: int) -> np.ndarray:
        """The next ``min(n, frames left)`` aligned frames, float32 ``(channels, m)``."""
        n = min(n, self.length - self.position)
        while self._buf.shape[1] < n and not self.decoded.ended:
            more = self.decoded.read(max(n - self._buf.shape[1], 1 << 16))
            self._buf = np.concatenate([self._buf, more], axis=1)
        out = np.zeros((self._buf.shape[0], n), dtype=np.float32)
        m = min(n, self._buf.shape[1])
        out[:, :m] = self._buf[:, :m]
        self._buf = self._buf[:, m:]
        self.position += n
        return out


class _Window:
    """Windows ``y[a - reach, b + reach)`` (clipped to the signal) of an aligned stream, for
    consecutive blocks ``[a, b)``: the block with the context its true-peak envelope needs."""

    def __init__(self, stream: _Aligned, channels: int, reach: int = _REACH) -> None:
        self.stream, self.reach = stream, reach
        self._buf = np.zeros((channels, 0), dtype=np.float32)
        self._start = 0

    def get(self, a: int, b: int) -> tuple[int, np.ndarray]:
        lo, hi = max(0, a - self.reach), min(self.stream.length, b + self.reach)
        self._buf = self._buf[:, lo - self._start:]
        self._start = lo
        have = lo + self._buf.shape[1]
        if hi > have:
            self._buf = np.concatenate([self._buf, self.stream.read(hi - have)], axis=1)
        return lo, self._buf[:, :hi - lo]


def _search_end(source: AudioSource) -> int:
    """Where the stretch searched for the codec delay ends: :data:`ALIGN_SEARCH_S` after the
    source's first sound (looked for in its first :data:`ALIGN_START_MAX_S`)."""
    rate, n = source.sample_rate, source.frames
    limit = min(n, int(ALIGN_START_MAX_S * rate))
    first = 0
    for a in range(0, limit, _MEASURE_BLOCK):
        loud = np.flatnonzero(np.abs(source.read(a, min(limit, a + _MEASURE_BLOCK))).max(axis=0) > _SOUND_LEVEL)
        if loud.size:
            first = a + int(loud[0])
            break
    return min(n, first + int(ALIGN_SEARCH_S * rate))


def _align(source: AudioSource, streams: dict[str, DecodedStream]) -> tuple[dict[str, _Aligned], dict[str, int]]:
    """Each stream's delay, from the start of the source and of the decoded audio only."""
    end = _search_end(source)
    ref = source.read(0, end)
    aligned, delays = {}, {}
    for name, stream in streams.items():
        head = stream.read(end + MAX_LAG)
        delays[name] = find_delay(ref, head, source.sample_rate)
        aligned[name] = _Aligned(stream, head, delays[name], source.frames)
    return aligned, delays


# ---------------------------------------------------------------- measuring


def _measure(source: AudioSource, aligned: dict[str, _Aligned], block: int) -> tuple[dict[str, float], dict]:
    """One pass over the source and the aligned decoded streams, block by block: the source's
    true peak and loudness, and per stream its true peak, loudness, sample overs and over events."""
    rate, n = source.sample_rate, source.frames
    local = int(LOCAL_S * rate)
    source_meter = LoudnessMeter(rate, source.channels)
    source_peak = 0.0
    state = {name: {"window": _Window(stream, source.channels), "loudness": LoudnessMeter(rate, source.channels),
                    "peak": 0.0, "sample_overs": 0, "events": OverEvents(rate)} for name, stream in aligned.items()}
    for a in range(0, n, block):
        b = min(n, a + block)
        lo, hi = max(0, a - local - _REACH), min(n, b + local + _REACH)
        x = source.read(lo, hi)
        if not np.isfinite(x).all():
            raise AudioError(f"{source.name}: audio contains NaN or infinite samples")
        env = true_peak_envelope(x)
        source_meter.add(x[:, a - lo:b - lo])
        source_peak = max(source_peak, float(env[a - lo:b - lo].max()))
        near_lo = max(0, a - local)
        near = env[near_lo - lo:min(n, b + local) - lo]  # the source's envelope within LOCAL_S of the block
        for s in state.values():
            ylo, y = s["window"].get(a, b)
            y_env = true_peak_envelope(y)[a - ylo:b - ylo]
            y = y[:, a - ylo:b - ylo]
            s["loudness"].add(y)
            s["peak"] = max(s["peak"], float(y_env.max()))
            s["sample_overs"] += int(np.count_nonzero(y > 1.0) + np.count_nonzero(y < -1.0))
            s["events"].add(a, y_env, near, near_lo)
    return {"true_peak_dbtp": _db(source_peak), "lufs": source_meter.integrated_lufs()}, state


def _report(result: dict[str, Any], delay: int, source: dict[str, float], s: dict) -> None:
    source_tp, source_lufs = source["true_peak_dbtp"], source["lufs"]
    tp = _db(s["peak"])
    lufs = s["loudness"].integrated_lufs()
    count = s["events"].count
    events, peaks, loudest_peak = s["events"].finish(source_tp)
    result.update(
        available=True, delay_samples=int(delay),
        source_true_peak_dbtp=_finite(source_tp), decoded_true_peak_dbtp=_finite(tp),
        overshoot_db=_finite(tp - source_tp), overs=bool(tp > 0.0), sample_overs=s["sample_overs"],
        over_events=events, peak_overs=peaks, glitch_overs=count - peaks,
        recommended_ceiling_dbtp=recommended_ceiling(source_tp, loudest_peak) if loudest_peak is not None else None,
        source_lufs=_finite(source_lufs), decoded_lufs=_finite(lufs),
        loudness_change_lu=_finite(lufs - source_lufs),
    )
    if count and not peaks:
        result["note"] = _join(result["note"], "every over is a codec glitch where the master is well below "
                                               "its ceiling; lowering the ceiling would not remove it")


def _check_length(codec: str, decoded_frames: int, frames: int) -> None:
    if decoded_frames < frames // 2:
        raise AudioError(f"{codec} check: the decoder returned {decoded_frames} samples for {frames}")


def _join(a: str | None, b: str) -> str:
    return b if not a else f"{a}; {b}"


def _check_master(master: np.ndarray | AudioSource, sample_rate: int, ceiling_dbtp: float) -> AudioSource:
    channels = master.channels if isinstance(master, AudioSource) else (
        master.shape[0] if isinstance(master, np.ndarray) and master.ndim == 2 else None)
    if channels not in (1, 2):
        shape = (master.channels, master.frames) if isinstance(master, AudioSource) else getattr(master, "shape", type(master))
        raise AudioError(f"codec checks take mono or stereo audio shaped (channels, samples), got {shape}")
    source = check_source(master, sample_rate, "codec checks")
    if isinstance(ceiling_dbtp, bool) or not isinstance(ceiling_dbtp, (int, float)) or not math.isfinite(ceiling_dbtp):
        raise AudioError(f"codec checks: ceiling_dbtp must be a number of dBTP, got {ceiling_dbtp!r}")
    if source.frames < source.sample_rate:
        raise AudioError(f"master too short for codec checks ({source.frames / source.sample_rate:.2f} s; at least 1 s)")
    return source


def codec_checks(master: np.ndarray | AudioSource, sample_rate: int, *, ceiling_dbtp: float,
                 ffmpeg: str | None | bool = True, block: int = _MEASURE_BLOCK) -> list[dict[str, Any]]:
    """MP3 320 kbit/s and (with ffmpeg) AAC 256 kbit/s round trips of ``master``, measured.

    ``master`` is float ``(channels, samples)`` or an ``AudioSource``, mono or
    stereo, at least 1 s, read a block at a time (``block`` frames per
    measured block); ``ceiling_dbtp`` is the true-peak ceiling the master was
    limited to (the recommendation is for it). ``ffmpeg``: ``True`` finds it
    on the PATH, ``False``/``None`` does without it, a string is its path.

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
    ``loudness_change_lu``, ``seconds`` (wall time of the round trips and
    their measurement, which run together: the same for both) and ``note``
    (``None`` or one line); measures are ``None`` when ``available`` is
    false (AAC without ffmpeg). Raises AudioError for bad input or a failing
    encoder/decoder (one line, with ffmpeg's last error line).
    """
    source = _check_master(master, sample_rate, ceiling_dbtp)
    sample_rate = source.sample_rate
    exe = shutil.which("ffmpeg") if ffmpeg is True else (ffmpeg or None)
    rate = encode_rate(sample_rate)
    if rate != sample_rate:
        source = ResampledSource(source, rate)
    ceiling = float(ceiling_dbtp)
    results = {"mp3": _result("mp3", MP3_BITRATE_KBPS, f"lameenc (LAME), CBR, quality {MP3_QUALITY}, 16-bit input",
                              rate, ceiling),
               "aac": _result("aac", AAC_BITRATE_KBPS, "ffmpeg native aac (AAC-LC)", rate, ceiling)}
    if rate != sample_rate:
        for r in results.values():
            r["note"] = f"master resampled from {sample_rate} Hz to {rate} Hz for the codecs"
    if not exe:
        results["aac"]["note"] = _join(results["aac"]["note"], "ffmpeg not found: AAC check skipped")
    t0 = time.perf_counter()
    streams: dict[str, DecodedStream] = {}
    try:
        if exe:
            streams["aac"] = aac_stream(source, exe)  # one encode of the whole master, as a service makes it
        streams["mp3"] = mp3_stream(source, exe)
        aligned, delays = _align(source, streams)
        source_figures, state = _measure(source, aligned, block)
        for name, stream in streams.items():
            stream.drain()  # the rest (codec padding): the processes finish, errors surface
            _check_length(name.upper(), stream.frames, source.frames)
    finally:
        for stream in streams.values():
            stream.close()
    seconds = round(time.perf_counter() - t0, 3)
    for name in ("mp3", "aac"):
        if name in aligned:
            results[name]["decoder"] = streams[name].decoder
            _report(results[name], delays[name], source_figures, state[name])
            results[name]["seconds"] = seconds
    return [results["mp3"], results["aac"]]
