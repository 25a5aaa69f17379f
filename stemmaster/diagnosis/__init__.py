"""Judgement: what is wrong with a song's stems and mix, what to do about it, and whether to master it.

``diagnose(stems, sample_rate, mix=...)`` measures every stem and the mix
once (``analysis.analyse``), runs the detectors that suit each stem's role
(``detectors``), judges them by one table (``thresholds.THRESHOLDS``) and
returns a ``Diagnosis``: a verdict (``ready``, ``ready with repairs``,
``fix the mix first``), the reasons, and the findings with their evidence and
recommended repairs. ``auto.auto_chains`` turns the findings into repair
settings; ``auto.compare`` sets a diagnosis after repair against the one before.

Audio is ``(channels, samples)`` float32/float64 at ``sample_rate`` Hz.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from stemmaster.diagnosis.analysis import SignalAnalysis, analyse
from stemmaster.diagnosis.detectors import MIX_DETECTORS, MIX_ONLY_DETECTORS, STEM_DETECTORS
from stemmaster.diagnosis.findings import (
    SEVERITIES,
    VERDICT_FIX_MIX,
    VERDICT_READY,
    VERDICT_REPAIRS,
    Diagnosis,
    Finding,
    verdict_of,
)
from stemmaster.diagnosis.thresholds import THRESHOLDS
from stemmaster.errors import AudioError

__all__ = ["diagnose", "Diagnosis", "Finding", "THRESHOLDS", "VERDICT_READY", "VERDICT_REPAIRS",
           "VERDICT_FIX_MIX"]

StemInput = tuple[str, str, np.ndarray]  # (name, role, audio)


def _loudness_of(analysis: SignalAnalysis) -> float:
    return analysis.integrated_lufs


def _vocal_balance(stems: Sequence[StemInput], sample_rate: int) -> tuple[dict[str, float], list[Finding]]:
    """The vocals' integrated loudness over the rest's (every other stem summed), in LU."""
    from stemmaster.meters.loudness import gated_loudness_lufs

    vocals = [a for _, role, a in stems if role == "vocals"]
    rest = [a for _, role, a in stems if role != "vocals"]
    if not vocals or not rest:
        return {}, []
    lv = gated_loudness_lufs(_sum(vocals), sample_rate)
    lr = gated_loudness_lufs(_sum(rest), sample_rate)
    if not (math.isfinite(lv) and math.isfinite(lr)):
        return {}, []
    over = lv - lr
    out = {"vocal_over_rest_lu": over}
    t = THRESHOLDS["vocal_balance"]
    sev = t.severity(over)
    if sev is None:
        return out, []
    name = next(n for n, role, _ in stems if role == "vocals")
    cut = round(over - 2.0, 1)
    repair = {"stem": name, "processor": "gain", "settings": {"gain_db": -cut}}
    if sev == "major":
        text = (f"vocal balance: the vocal is {over:.1f} LU louder than everything else together (pop mixes sit "
                f"at -2 to +4 LU); that is a mix decision, not a mastering one: fix the mix first "
                f"(or lower the vocal stem by {cut:.1f} dB if you own the balance)")
        return out, [Finding("vocal_balance", "mix", "fix_mix", over, t.major, "LU", text, "vocal_over_rest_lu",
                             repair, auto=False)]
    text = (f"vocal balance: the vocal is {over:.1f} LU over the rest (pop mixes: -2 to +4 LU); consider "
            f"lowering it by {cut:.1f} dB")
    return out, [Finding("vocal_balance", "mix", "minor", over, t.minor, "LU", text, "vocal_over_rest_lu", repair,
                         auto=False)]


def _sum(audios: list[np.ndarray]) -> np.ndarray:
    n = min(a.shape[1] for a in audios)
    channels = max(a.shape[0] for a in audios)
    out = np.zeros((channels, n), dtype=np.float64)
    for a in audios:
        out += a[:, :n] if a.shape[0] == channels else np.repeat(a[:1, :n], channels, axis=0)
    return out


def _check(name: str, audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] not in (1, 2) or audio.shape[1] == 0:
        raise AudioError(f"{name}: expected audio shaped (1 or 2 channels, samples), got {audio.shape}")
    if audio.dtype not in (np.float32, np.float64):
        raise AudioError(f"{name}: expected float32 or float64 audio, got {audio.dtype}")
    if not np.isfinite(audio).all():
        raise AudioError(f"{name}: NaN or Inf samples; cannot diagnose")
    return audio


def diagnose(stems: Sequence[StemInput], sample_rate: int, *, mix: np.ndarray | None = None,
             source: str = "stems") -> Diagnosis:
    """Diagnose ``stems`` (``(name, role, audio)`` each) and their ``mix``.

    ``mix`` defaults to the stems' sum; pass the render a project was
    separated from (``source="render"``). With no stems, ``mix`` alone is
    diagnosed, including what the stems would show (``source="mix"``).
    """
    stems = [(name, role, _check(name, audio)) for name, role, audio in stems]
    if mix is None:
        if not stems:
            raise AudioError("nothing to diagnose: no stems and no mix")
        mix = _sum([a for _, _, a in stems])
    mix = _check("mix", mix)
    if not stems:
        source = "mix"
    jobs: list[tuple[str, str, np.ndarray, tuple]] = [
        (name, role, audio, STEM_DETECTORS.get(role, ())) for name, role, audio in stems]
    jobs.append(("mix", "mix", mix, MIX_ONLY_DETECTORS if source == "mix" else MIX_DETECTORS))

    def run(job):
        name, role, audio, detectors = job
        a = analyse(name, role, audio, sample_rate)
        measured: dict[str, float] = {"integrated_lufs": _loudness_of(a)}
        found: list[Finding] = []
        for detect in detectors:
            values, findings = detect(a, name)
            measured.update(values)
            found += findings
        return name, measured, found

    with ThreadPoolExecutor(max_workers=2) as pool:  # FFTs and numba kernels release the GIL
        results = list(pool.map(run, jobs))
    measurements = {name: measured for name, measured, _ in results}
    findings = [f for _, _, found in results for f in found]
    if stems:
        values, found = _vocal_balance(stems, sample_rate)
        measurements["mix"].update(values)
        findings += found
    rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    order = {name: i for i, (name, _, _) in enumerate(stems)}
    findings.sort(key=lambda f: (rank[f.severity], order.get(f.stem, len(order))))
    verdict, reasons = verdict_of(findings)
    return Diagnosis(verdict, reasons, tuple(findings), source, measurements)
