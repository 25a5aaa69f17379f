"""Start and end cleanup of a deliverable: leading silence, clicks at the edges, a cut-off tail.

``clean_edges`` (or ``plan_edges`` then ``apply_edges``, so a plan made on the
main master is applied sample for sample to its versions and stem masters,
which then still sum) does, in this order:

* **Leading silence.** Samples before the first one above
  ``threshold_dbfs`` (on any channel) are removed, down to ``preroll_s`` of
  them: a 3 s silent lead-in becomes 0.2 s. Audio already starting within
  ``preroll_s`` is not trimmed. Trailing silence is kept (a tail's reverb and
  the space after it are the mix's decision).
* **Start.** If the first sample (after the trim) is not exactly 0.0, a
  raised-cosine fade-in of ``fade_in_ms`` is applied: reason ``"mid-sound"``
  when it is above ``threshold_dbfs`` (the audio starts inside a sound, which
  would click), ``"dc step"`` when it is quieter (noise or a DC offset that
  the trim cut into: the jump from silence before playback to that value is a
  step). The first sample is then exactly 0.0.
* **End.** If the last 10 ms peak above ``tail_threshold_dbfs`` the tail was
  cut off: a raised-cosine fade-out of ``fade_out_ms``, by default
  ``min(2 s, 10 % of the audio)``, so the sound dies away over the last part
  instead of stopping dead (reason ``"cut-off tail"``). Otherwise, if only
  the last sample is not exactly 0.0 (noise floor, DC offset), a
  ``fade_in_ms``-long fade-out removes the step (reason ``"dc step"``). The
  last sample is then exactly 0.0.

Raised cosine (half a Hann window, ``0.5 - 0.5 cos``) for both fades: its
gain has zero slope where it meets the untouched audio and where it reaches
zero, so neither end of the fade is a corner in the envelope (no click, the
least spectral splatter of the simple shapes). An equal-power (sine) fade
keeps the *sum of powers* of two uncorrelated signals constant, which is what
a crossfade needs; a fade to silence has no partner, and the sine reaches
zero with a corner (slope pi/2), so it does not apply here.

Nothing else changes: the audio is never lengthened, and samples between the
fades are returned bit for bit (only the leading trim and the fades touch
anything). Audio that needs nothing (starts at 0.0 within the preroll, ends
at 0.0 with a quiet tail) comes back bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stemmaster.errors import AudioError, SettingsError

TAIL_WINDOW_S = 0.010  # the end window checked for a cut-off tail
AUTO_FADE_OUT_MAX_S = 2.0
AUTO_FADE_OUT_FRACTION = 0.10


@dataclass(frozen=True)
class EdgePlan:
    """What ``apply_edges`` does to audio of ``length_in`` samples at ``sample_rate``."""

    sample_rate: int
    length_in: int
    trim_start: int  # samples removed at the start
    fade_in: int  # samples of raised-cosine fade-in at the (new) start; 0: none
    fade_out: int  # samples of raised-cosine fade-out at the end; 0: none
    report: dict[str, Any] = field(default_factory=dict)


def _check(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] < 1 or not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(f"edge cleanup: audio must be float shaped (channels, samples), got {audio.dtype} {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioError("edge cleanup: audio contains NaN or infinite samples")
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or int(sample_rate) <= 0:
        raise SettingsError(f"edge cleanup: invalid sample rate {sample_rate!r}")
    return audio


def _non_negative(name: str, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not math.isfinite(value) or value < 0):
        raise SettingsError(f"edge cleanup: {name} = {value!r} must be a number >= 0")


def _db(x: float) -> float:
    return float(20.0 * math.log10(x)) if x > 0 else float("-inf")


def plan_edges(audio: np.ndarray, sample_rate: int, *, preroll_s: float = 0.2, threshold_dbfs: float = -60.0,
               fade_in_ms: float = 5.0, fade_out_ms: float | None = None,
               tail_threshold_dbfs: float = -60.0) -> EdgePlan:
    """Decide the trim and fades for ``audio`` (see the module docstring); nothing is changed yet."""
    audio = _check(audio, sample_rate)
    for name, value in (("preroll_s", preroll_s), ("fade_in_ms", fade_in_ms), ("fade_out_ms", fade_out_ms)):
        _non_negative(name, value)
    for name, value in (("threshold_dbfs", threshold_dbfs), ("tail_threshold_dbfs", tail_threshold_dbfs)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value <= 0:
            raise SettingsError(f"edge cleanup: {name} = {value!r} must be a level in dBFS (<= 0)")
    rate = int(sample_rate)
    n = audio.shape[1]
    report: dict[str, Any] = {"length_in_samples": n, "trimmed_start_s": 0.0, "trimmed_start_samples": 0,
                              "fade_in_ms": 0.0, "fade_in_reason": None, "fade_out_ms": 0.0,
                              "fade_out_reason": None, "tail_peak_dbfs": None}
    if n == 0:
        report.update(length_out_samples=0, summary="empty audio: nothing to clean")
        return EdgePlan(rate, 0, 0, 0, 0, report)
    thr = 10.0 ** (threshold_dbfs / 20.0)
    peak = np.max(np.abs(audio), axis=0)
    loud = np.flatnonzero(peak > thr)
    if loud.size == 0:
        report.update(length_out_samples=n, summary=f"silent (nothing above {threshold_dbfs:g} dBFS): left as it is")
        return EdgePlan(rate, n, 0, 0, 0, report)

    # leading silence
    preroll = int(round(preroll_s * rate))
    trim = max(0, int(loud[0]) - preroll)
    m = n - trim
    half = m // 2  # the fades never overlap: each has at most half of what is left

    # start
    fade_in = 0
    first = float(peak[trim])
    if first != 0.0:
        fade_in = min(half, max(2, int(round(fade_in_ms * rate / 1000.0))))
        report["fade_in_reason"] = "mid-sound" if first > thr else "dc step"

    # end
    fade_out = 0
    tail_n = max(1, int(round(TAIL_WINDOW_S * rate)))
    tail_peak = float(peak[n - min(tail_n, m):].max())
    report["tail_peak_dbfs"] = round(_db(tail_peak), 2) if tail_peak > 0 else None
    if tail_peak > 10.0 ** (tail_threshold_dbfs / 20.0):
        if fade_out_ms is None:
            length_s = min(AUTO_FADE_OUT_MAX_S, AUTO_FADE_OUT_FRACTION * m / rate)
        else:
            length_s = fade_out_ms / 1000.0
        fade_out = int(round(length_s * rate))
        report["fade_out_reason"] = "cut-off tail"
    elif float(peak[-1]) != 0.0:
        fade_out = int(round(fade_in_ms * rate / 1000.0))
        report["fade_out_reason"] = "dc step"
    if report["fade_out_reason"] is not None:
        fade_out = min(m - fade_in, max(2, fade_out))  # 2 samples at least: the last is 0.0

    report.update(
        trimmed_start_samples=trim,
        trimmed_start_s=round(trim / rate, 6),
        fade_in_ms=round(1000.0 * fade_in / rate, 3),
        fade_out_ms=round(1000.0 * fade_out / rate, 3),
        length_out_samples=m,
    )
    report["summary"] = _summary(report)
    return EdgePlan(rate, n, trim, fade_in, fade_out, report)


def _summary(report: dict[str, Any]) -> str:
    parts = []
    if report["trimmed_start_samples"]:
        parts.append(f"trimmed {report['trimmed_start_s']:.3f} s of leading silence")
    if report["fade_in_reason"]:
        parts.append(f"{report['fade_in_ms']:.1f} ms fade-in ({report['fade_in_reason']})")
    if report["fade_out_reason"]:
        parts.append(f"{report['fade_out_ms']:.1f} ms fade-out ({report['fade_out_reason']})")
    return "; ".join(parts) if parts else "clean: nothing changed"


def fade_in_curve(length: int) -> np.ndarray:
    """Raised-cosine gain rising from exactly 0.0 (first sample) toward 1.0, float64 ``(length,)``."""
    k = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(np.pi * k / length)


def fade_out_curve(length: int) -> np.ndarray:
    """Raised-cosine gain falling from just under 1.0 to exactly 0.0 (last sample), float64 ``(length,)``."""
    return fade_in_curve(length)[::-1].copy()


def apply_edges(audio: np.ndarray, plan: EdgePlan) -> np.ndarray:
    """``audio`` (as long as the plan's, any channel count) trimmed and faded as ``plan`` says; a new array
    of the same dtype. Samples between the fades are copied unchanged."""
    audio = _check(audio, plan.sample_rate)
    if audio.shape[1] != plan.length_in:
        raise AudioError(f"edge cleanup: the plan is for {plan.length_in} samples, the audio has {audio.shape[1]}")
    out = audio[:, plan.trim_start:].copy()
    if plan.fade_in:
        seg = out[:, :plan.fade_in]
        out[:, :plan.fade_in] = (seg.astype(np.float64) * fade_in_curve(plan.fade_in)).astype(out.dtype)
        out[:, 0] = 0.0  # +0.0, not the -0.0 a negative sample times 0 gives
    if plan.fade_out:
        seg = out[:, -plan.fade_out:]
        out[:, -plan.fade_out:] = (seg.astype(np.float64) * fade_out_curve(plan.fade_out)).astype(out.dtype)
        out[:, -1] = 0.0
    return out


def clean_edges(audio: np.ndarray, sample_rate: int, *, preroll_s: float = 0.2, threshold_dbfs: float = -60.0,
                fade_in_ms: float = 5.0, fade_out_ms: float | None = None,
                tail_threshold_dbfs: float = -60.0) -> tuple[np.ndarray, dict[str, Any]]:
    """Trim leading silence, fade a start inside a sound or a cut-off end, zero both edge samples.

    Returns ``(audio, report)``: the cleaned audio (same dtype, never longer)
    and what was done: ``trimmed_start_s``/``_samples``, ``fade_in_ms`` and
    ``fade_in_reason``, ``fade_out_ms`` and ``fade_out_reason`` (``None``
    and 0.0 when not applied), ``tail_peak_dbfs`` (peak of the last 10 ms),
    lengths in and out in samples and a one-line ``summary``.
    """
    plan = plan_edges(audio, sample_rate, preroll_s=preroll_s, threshold_dbfs=threshold_dbfs, fade_in_ms=fade_in_ms,
                      fade_out_ms=fade_out_ms, tail_threshold_dbfs=tail_threshold_dbfs)
    return apply_edges(audio, plan), dict(plan.report)
