"""A level-matched before/after pair for listening.

Louder sounds better to everyone, so a fair A/B plays both versions at the
same loudness. ``write_ab_pair`` writes ``<folder>/ab/before.wav`` and
``<folder>/ab/after.wav`` as 32-bit float WAV (``audio_source.BlockWriter``:
written a block at a time into a temporary file renamed into place) at one
integrated loudness (BS.1770-4, read by ``meters.stream.LoudnessMeter`` a
block at a time: the same value as ``gated_loudness_lufs``, EBU Tech 3341
conformant, within 0.02 LU of pyloudnorm). The inputs are arrays or
``AudioSource``s shaped ``(channels, samples)``; nothing held grows with
the song's length:

* by default both are brought to the quieter one's loudness: the louder one
  is turned down, the quieter one is left as it is;
* with ``reference_lufs`` both are brought to that loudness, except that no
  file is turned up so far that its true peak would pass 0 dBTP: then the
  common level is lowered until it does not (``limited_by_headroom``).

Nothing is ever turned up into clipping, and no limiting is applied: the
pair differs only by the processing being judged.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from stemmaster.audio_source import AudioSource, BlockWriter
from stemmaster.checks.blocks import check_source, feed, finite_blocks
from stemmaster.meters.stream import LoudnessMeter, PeakMeter
from stemmaster.errors import AudioError

AB_FOLDER = "ab"
MATCH_TOLERANCE_LU = 0.1
MAX_TRUE_PEAK_DBTP = 0.0  # a file turned up stops here


def _source(name: str, audio: np.ndarray | AudioSource, sample_rate: int) -> AudioSource:
    """``audio`` (an array ``(channels, samples)`` or a source) as a mono or stereo source at ``sample_rate``."""
    return check_source(audio, sample_rate, f"A/B: {name}")


def _loudness(name: str, source: AudioSource) -> float:
    meter = LoudnessMeter(source.sample_rate, source.channels)
    feed(source, [meter])
    lufs = meter.integrated_lufs()
    if not math.isfinite(lufs):
        raise AudioError(f"A/B: {name} is silent or shorter than 0.4 s; it has no loudness to match")
    return lufs


def _true_peak_dbtp(source: AudioSource) -> float:
    meter = PeakMeter()
    feed(source, [meter])
    return float(meter.true_peak_dbtp)


def _write_scaled(source: AudioSource, gain: float, path: Path) -> tuple[float, float]:
    """Write ``source`` times ``gain`` (float32) to ``path`` block by block (``BlockWriter``: it lands
    only when complete); returns the written samples' ``(integrated LUFS, true peak dBTP)``."""
    loudness, peak = LoudnessMeter(source.sample_rate, source.channels), PeakMeter()
    with BlockWriter(path, source.sample_rate, source.channels, "FLOAT", frames_hint=source.frames) as writer:
        for _, block in finite_blocks(source):
            x = np.multiply(block, gain, dtype=np.float32)
            loudness.add(x)
            peak.add(x)
            writer.write(x)
    return loudness.integrated_lufs(), float(peak.true_peak_dbtp)


def write_ab_pair(before: np.ndarray | AudioSource, after: np.ndarray | AudioSource, sample_rate: int,
                  folder: str | os.PathLike, *, reference_lufs: float | None = None) -> dict[str, Any]:
    """Write ``folder/ab/before.wav`` and ``folder/ab/after.wav`` at the same integrated loudness.

    ``before``/``after`` are float ``(channels, samples)`` arrays or
    ``AudioSource``s (mono or stereo, any lengths) at ``sample_rate``, read a
    block at a time. Returns::

        {"folder": ".../ab", "target_lufs": float, "reference": "quieter" | "fixed",
         "limited_by_headroom": bool, "matched_within_lu": float,
         "before": {"path", "lufs_in", "gain_db", "lufs_out", "true_peak_dbtp_out"},
         "after":  {... the same ...}}

    ``gain_db`` is how far that file was moved (negative: turned down);
    ``lufs_out`` is ``lufs_in + gain_db`` (BS.1770 loudness moves exactly
    with a scalar gain); ``matched_within_lu`` is the difference of the two
    files' loudness as written (float32), which must be at most 0.1 LU
    (else both files are removed again). Raises AudioError for bad or
    silent input (before anything is written) or a failed write.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"A/B: sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    items = {"before": _source("before", before, sample_rate), "after": _source("after", after, sample_rate)}
    with ThreadPoolExecutor(max_workers=2) as pool:  # the meter's kernel releases the GIL
        lufs_in = dict(zip(items, pool.map(lambda kv: _loudness(*kv), items.items())))
    if reference_lufs is None:
        target = min(lufs_in.values())
        reference = "quieter"
    else:
        if isinstance(reference_lufs, bool) or not isinstance(reference_lufs, (int, float)) \
                or not math.isfinite(reference_lufs):
            raise AudioError(f"A/B: reference_lufs must be a number of LUFS, got {reference_lufs!r}")
        target = float(reference_lufs)
        reference = "fixed"
    limited = False
    for name, source in items.items():
        gain = target - lufs_in[name]
        if gain > 0.0:  # turning up: keep the true peak under MAX_TRUE_PEAK_DBTP
            room = MAX_TRUE_PEAK_DBTP - _true_peak_dbtp(source)
            if gain > room:
                target = lufs_in[name] + max(room, 0.0)
                limited = True
    gains = {name: target - lufs_in[name] for name in items}
    # BS.1770 loudness moves exactly with a scalar gain (only the -70 LUFS absolute gate could
    # differ, for blocks near it), so the outputs read lufs_in + gain_db. That is checked on the
    # float32 samples as written: each file is scaled, measured and written a block at a time;
    # were the check to fail, both are removed again.
    lufs_out = {name: lufs_in[name] + gains[name] for name in items}
    out_dir = Path(folder) / AB_FOLDER
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AudioError(f"{out_dir}: cannot create the A/B folder ({exc.strerror or exc})") from exc
    result: dict[str, Any] = {"folder": str(out_dir), "target_lufs": float(target), "reference": reference,
                              "limited_by_headroom": limited}
    check: dict[str, float] = {}
    written: list[Path] = []
    try:
        for name, source in items.items():
            path = out_dir / f"{name}.wav"
            check[name], peak_out = _write_scaled(source, 10.0 ** (gains[name] / 20.0), path)
            written.append(path)
            result[name] = {"path": str(path), "lufs_in": float(lufs_in[name]), "gain_db": float(gains[name]),
                            "lufs_out": float(lufs_out[name]), "true_peak_dbtp_out": peak_out}
        spread = abs(check["after"] - check["before"])
        if not spread <= MATCH_TOLERANCE_LU:  # pragma: no cover - a scalar gain moves BS.1770 loudness exactly
            raise AudioError(f"A/B: level match failed ({spread:.3f} LU apart after gain)")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    result["matched_within_lu"] = float(spread)
    return result
