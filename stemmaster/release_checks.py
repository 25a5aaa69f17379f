"""Release checks of a landed render: translation, codec, a level-matched A/B pair and plots.

``run_release_checks`` runs the checks of :mod:`stemmaster.checks` on a
render that is already in place (``renders/NNN/`` or a remaster's OUTDIR):

* ``translation``: ``translation_checks`` of the master (mono, phone,
  earbuds, car);
* ``codec``: ``codec_checks`` of the master (MP3 320k, and AAC 256k when
  ffmpeg is installed) against the render's true-peak ceiling;
* ``ab``: ``write_ab_pair(before, after)`` into ``ab/before.wav`` and
  ``ab/after.wav``, level-matched; ``before`` is the source as it arrived
  (the loaded stems summed before any repair, stem gain or mute; for a
  separated render, the render), ``after`` the master as written;
* ``plots``: ``plots/tonal_balance.png`` (before and after against
  :func:`target_curve`) and ``plots/short_term_loudness.png`` (the master,
  with the target line).

``before`` and ``after`` are arrays or ``AudioSource``s; every check reads
them a block at a time, so the phase's memory does not grow with the song's
length (a 60-minute master is checked in a few tens of MB beyond the fixed
costs). The checks are independent and run side by side on a small thread pool
(the codec check, the longest, first; its MP3 encode and the meters release
the GIL and the AAC round trip runs in ffmpeg processes). Files are written
into a hidden staging folder inside the render folder and moved into place
(``ab/`` and ``plots/``) only when every check has passed, so a failed or
cancelled run leaves no partial file behind and an earlier ``ab/``/``plots/``
as it was. Cancelling waits for the checks already running to finish (the
codec round trip cannot be interrupted half way), then cleans up.

``record_checks`` then puts the result into the render's report
(``report["checks"]``, ``report["files"]``) and rewrites ``report.json`` and
``report.md`` atomically.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

import numpy as np

from stemmaster.atomic import atomic_write_text
from stemmaster.audio_source import AudioSource
from stemmaster.checks.blocks import check_source
from stemmaster.errors import AudioError, Cancelled

Progress = Callable[[float, str], None]
CancelCheck = Callable[[], bool]

AB_DIR = "ab"
PLOTS_DIR = "plots"
TONAL_BALANCE_PNG = "tonal_balance.png"
SHORT_TERM_PNG = "short_term_loudness.png"
SHORT_TERM_HOP_S = 1.0  # the short-term curve in the report (for sparklines): one value a second
# the tonal-balance reference: a spectral density falling 4.5 dB per octave (pink noise falls 3);
# in the plotted fractional-octave band powers (bandwidth grows with frequency) that is
# -1.5 dB per octave. A rough reference for a balanced full-range mix, not a genre target.
TARGET_DENSITY_SLOPE_DB_PER_OCT = -4.5
# relative cost of each check (a 4-minute master on 2 cores), to move the progress bar fairly
_WEIGHTS = {"codec": 9.0, "translation": 1.6, "ab": 3.1, "plots": 2.6}
_POLL_S = 0.05
CHECK_NAMES: tuple[str, ...] = ("codec", "translation", "ab", "plots")


def target_curve(freqs_hz: np.ndarray) -> np.ndarray:
    """The tonal-balance reference in fractional-octave band power: dB at ``freqs_hz``, 0 dB at 1 kHz.

    A spectral density slope of :data:`TARGET_DENSITY_SLOPE_DB_PER_OCT`
    (-4.5 dB/octave, a little steeper than pink noise) is
    ``slope + 3`` dB/octave in band powers, whose bandwidth doubles every
    octave: -1.5 dB/octave. The plot normalises it like the measured curves.
    """
    f = np.asarray(freqs_hz, dtype=np.float64)
    return (TARGET_DENSITY_SLOPE_DB_PER_OCT + 3.0) * np.log2(f / 1000.0)


def _noop(fraction: float, message: str) -> None:
    return None


def _check_audio(name: str, audio: np.ndarray | AudioSource, sample_rate: int) -> AudioSource:
    """``audio`` (an array ``(channels, samples)`` or a source) as a mono or stereo source at ``sample_rate``."""
    return check_source(audio, sample_rate, f"release checks: {name}")


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _land(staging: Path, folder: Path, names: tuple[str, ...]) -> None:
    """Move ``staging/<name>`` to ``folder/<name>`` for each name, replacing an earlier folder."""
    old = staging / ".old"
    old.mkdir()
    for name in names:
        dest = folder / name
        if dest.exists():
            os.replace(dest, old / name)
        os.replace(staging / name, dest)


def run_release_checks(folder: str | os.PathLike, before: np.ndarray | AudioSource,
                       after: np.ndarray | AudioSource, sample_rate: int, *,
                       ceiling_dbtp: float, target_lufs: float | None, progress: Progress | None = None,
                       cancel: CancelCheck | None = None, ffmpeg: str | None | bool = True,
                       workers: int = 2) -> dict[str, Any]:
    """Run the release checks on the render in ``folder`` and write ``ab/`` and ``plots/`` there.

    ``before``: the source as it arrived, ``after``: the master as written,
    both float arrays ``(channels, samples)`` or ``AudioSource``s (a
    ``FileSource`` of the written master, say) at ``sample_rate``. Every
    check reads them a block at a time, so what the checks hold does not
    grow with the song's length (arrays are wrapped as ``ArraySource``s and
    read the same way). ``ceiling_dbtp``
    and ``target_lufs`` are the render's. Returns (JSON-ready)::

        {"status": "done",
         "translation": [...],            # translation_checks, as dicts, in CHECKS order
         "codec": [mp3, aac],             # codec_checks
         "ab": {...},                     # write_ab_pair, paths relative to folder
         "plots": ["plots/tonal_balance.png", "plots/short_term_loudness.png"],
         "short_term": {"hop_s", "start_s", "lufs": [...]},  # the master's 3 s loudness every second
         "target_curve": "...",           # what the tonal-balance target is
         "seconds": float,                # wall time of the whole phase
         "check_seconds": {"codec": s, "translation": s, "ab": s, "plots": s}}

    Raises :class:`Cancelled` when ``cancel()`` turns true (checked while the
    checks run), a ``StemmasterError`` when a check fails; in both cases (and
    on ``KeyboardInterrupt``) nothing is left in ``folder``: the staging
    folder is removed and any earlier ``ab/``/``plots/`` stays as it was.
    ``ffmpeg`` is passed to ``codec_checks``; ``workers``: threads running
    checks side by side.
    """
    from stemmaster.checks.ab import write_ab_pair
    from stemmaster.checks.codec import codec_checks
    from stemmaster.checks.plots import (plot_short_term_loudness, plot_tonal_balance, tonal_balance,
                                         tonal_balance_and_short_term)
    from stemmaster.checks.translation import translation_checks

    progress = progress or _noop
    is_cancelled = cancel or (lambda: False)
    folder = Path(folder)
    before = _check_audio("before", before, sample_rate)
    after = _check_audio("after", after, sample_rate)
    if not folder.is_dir():
        raise AudioError(f"release checks: {folder} is not a render folder")
    t_start = time.perf_counter()
    staging = folder / f".checks-{os.getpid()}-{secrets.token_hex(4)}"
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            t0 = time.perf_counter()
            try:
                return fn()
            finally:
                seconds[name] = round(time.perf_counter() - t0, 3)
        return run

    def do_translation() -> list[dict[str, Any]]:
        return [c.to_dict() for c in translation_checks(after, sample_rate)]

    def do_codec() -> list[dict[str, Any]]:
        return codec_checks(after, sample_rate, ceiling_dbtp=ceiling_dbtp, ffmpeg=ffmpeg)

    def do_ab() -> dict[str, Any]:
        result = write_ab_pair(before, after, sample_rate, staging)
        result["folder"] = AB_DIR
        for side in ("before", "after"):
            result[side]["path"] = f"{AB_DIR}/{side}.wav"
        return result

    def do_plots() -> list[str]:
        after_curve, (times, lufs) = tonal_balance_and_short_term(after, sample_rate)
        curves = {"before (source)": tonal_balance(before, sample_rate), "after (master)": after_curve}
        freqs = curves["after (master)"][0]
        plot_tonal_balance(staging / PLOTS_DIR / TONAL_BALANCE_PNG, curves, target=(freqs, target_curve(freqs)),
                           title="Tonal balance (1/3-octave); target: -4.5 dB/oct density")
        step = max(1, int(round(SHORT_TERM_HOP_S / float(times[1] - times[0])))) if len(times) > 1 else 1
        curve["short_term"] = {"hop_s": round(float(times[1] - times[0]) * step, 3) if len(times) > 1 else None,
                               "start_s": round(float(times[0]), 3) if len(times) else None,
                               "lufs": [round(float(v), 2) for v in lufs[::step]]}
        plot_short_term_loudness(staging / PLOTS_DIR / SHORT_TERM_PNG, times, lufs, target_lufs,
                                 title="Short-term loudness of the master (3 s window)")
        return [f"{PLOTS_DIR}/{TONAL_BALANCE_PNG}", f"{PLOTS_DIR}/{SHORT_TERM_PNG}"]

    curve: dict[str, Any] = {}
    jobs = {"codec": do_codec, "translation": do_translation, "ab": do_ab, "plots": do_plots}
    total = sum(_WEIGHTS.values())
    results: dict[str, Any] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, int(workers)), thread_name_prefix="release-check")
    try:
        staging.mkdir()
        (staging / PLOTS_DIR).mkdir()
        progress(0.0, "release checks: codec, translation, A/B, plots")
        futures: dict[Future, str] = {pool.submit(timed(name, fn)): name for name, fn in jobs.items()}
        pending = set(futures)
        done_weight = 0.0
        while pending:
            if is_cancelled():
                raise Cancelled("release checks cancelled; the master is complete and unchanged")
            finished, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
            for future in finished:
                name = futures[future]
                results[name] = future.result()  # a failed check raises here
                done_weight += _WEIGHTS[name]
                progress(done_weight / total, f"release checks: {name} done")
        if is_cancelled():
            raise Cancelled("release checks cancelled; the master is complete and unchanged")
        _land(staging, folder, (AB_DIR, PLOTS_DIR))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # running checks finish writing into staging first
        _remove_tree(staging)
        raise
    pool.shutdown(wait=True)
    _remove_tree(staging)  # only the replaced earlier folders are left in it
    progress(1.0, "release checks done")
    return {
        "status": "done",
        "translation": results["translation"],
        "codec": results["codec"],
        "ab": results["ab"],
        "plots": results["plots"],
        "short_term": curve["short_term"],
        "target_curve": (f"spectral density {TARGET_DENSITY_SLOPE_DB_PER_OCT:+.1f} dB/octave "
                         f"({TARGET_DENSITY_SLOPE_DB_PER_OCT + 3.0:+.1f} dB/octave in 1/3-octave band power)"),
        "seconds": round(time.perf_counter() - t_start, 3),
        "check_seconds": {name: seconds.get(name) for name in CHECK_NAMES},
    }


def not_run(status: str, reason: str, seconds: float | None = None) -> dict[str, Any]:
    """``report["checks"]`` when the checks did not run (``status``: pending, skipped, failed, cancelled)."""
    out: dict[str, Any] = {"status": status, "reason": reason}
    if seconds is not None:
        out["seconds"] = round(seconds, 3)
    return out


def check_file_rows(checks: dict[str, Any]) -> list[dict[str, str]]:
    """The ``report["files"]`` rows of what the checks wrote (none unless they ran)."""
    if checks.get("status") != "done":
        return []
    rows = [{"path": checks["ab"][side]["path"], "role": "ab", "format": "WAV", "subtype": "FLOAT"}
            for side in ("before", "after")]
    rows += [{"path": p, "role": "plot", "format": "PNG", "subtype": "RGBA"} for p in checks["plots"]]
    return rows


def record_checks(folder: str | os.PathLike, report: dict[str, Any], checks: dict[str, Any]) -> None:
    """Put ``checks`` into ``report`` (``report["checks"]``, the files' rows) and rewrite
    ``report.md`` and ``report.json`` in ``folder`` atomically (the JSON last)."""
    from stemmaster.report import report_json, report_markdown

    prefixes = (f"{AB_DIR}/", f"{PLOTS_DIR}/")
    files = [f for f in report.get("files", []) if not str(f.get("path", "")).startswith(prefixes)]
    report["files"] = files + check_file_rows(checks)
    report["checks"] = checks
    folder = Path(folder)
    atomic_write_text(folder / "report.md", report_markdown(report))
    atomic_write_text(folder / "report.json", report_json(report))
