"""Judgement: what is wrong with a song's stems and mix, what to do about it, and whether to master it.

``diagnose(stems, sample_rate, mix=...)`` measures every stem and the mix
once (``analysis.analyse``), runs the detectors that suit each stem's role
(``detectors``), judges them by one table (``thresholds.THRESHOLDS``) and
returns a ``Diagnosis``: a verdict (``ready``, ``ready with repairs``,
``fix the mix first``), the reasons, and the findings with their evidence and
recommended repairs. ``auto.auto_chains`` turns the findings into repair
settings; ``auto.compare`` sets a diagnosis after repair against the one before.

Audio is an ``AudioSource`` or an array ``(channels, samples)`` float32/float64 at
``sample_rate`` Hz; each is read in blocks (twice at most), never held whole.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from stemmaster.audio_source import BLOCK_FRAMES, AudioSource
from stemmaster.diagnosis.analysis import SignalAnalysis, analyse
from stemmaster.diagnosis.detectors import MIX_DETECTORS, MIX_ONLY_DETECTORS, STEM_DETECTORS, second_pass_for
from stemmaster.diagnosis.findings import (
    SEVERITIES,
    VERDICT_FIX_MIX,
    VERDICT_READY,
    VERDICT_REPAIRS,
    Diagnosis,
    Finding,
    verdict_of,
)
from stemmaster.diagnosis.sources import checked_source, gated_loudness_lufs, sum_of
from stemmaster.diagnosis.thresholds import THRESHOLDS
from stemmaster.errors import AudioError

__all__ = ["diagnose", "Diagnosis", "Finding", "THRESHOLDS", "VERDICT_READY", "VERDICT_REPAIRS",
           "VERDICT_FIX_MIX"]

StemInput = tuple[str, str, "np.ndarray | AudioSource"]  # (name, role, audio)


def _loudness_of(analysis: SignalAnalysis) -> float:
    return analysis.integrated_lufs


def _vocal_balance(stems: Sequence[tuple[str, str, AudioSource]], vocals_lufs: float, rest_lufs: float
                   ) -> tuple[dict[str, float], list[Finding]]:
    """The vocals' integrated loudness over the rest's (every other stem summed), in LU."""
    if not (math.isfinite(vocals_lufs) and math.isfinite(rest_lufs)):
        return {}, []
    over = vocals_lufs - rest_lufs
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


def diagnose(stems: Sequence[StemInput], sample_rate: int, *, mix: np.ndarray | AudioSource | None = None,
             source: str = "stems", block_frames: int = BLOCK_FRAMES) -> Diagnosis:
    """Diagnose ``stems`` (``(name, role, audio)`` each) and their ``mix``.

    Each audio is an ``AudioSource`` or an array ``(channels, samples)`` at
    ``sample_rate`` Hz; every one is read ``block_frames`` at a time, so the
    memory does not grow with the song. ``mix`` defaults to the stems' sum
    (summed block by block as it is read); pass the render a project was
    separated from (``source="render"``). With no stems, ``mix`` alone is
    diagnosed, including what the stems would show (``source="mix"``).
    """
    stems = [(name, role, checked_source(name, audio, sample_rate)) for name, role, audio in stems]
    if mix is None:
        if not stems:
            raise AudioError("nothing to diagnose: no stems and no mix")
        mix = sum_of([a for _, _, a in stems], "mix")
    mix = checked_source("mix", mix, sample_rate)
    if not stems:
        source = "mix"
    jobs: list[tuple[str, str, AudioSource, tuple]] = [
        (name, role, audio, STEM_DETECTORS.get(role, ())) for name, role, audio in stems]
    jobs.append(("mix", "mix", mix, MIX_ONLY_DETECTORS if source == "mix" else MIX_DETECTORS))
    vocals = [a for _, role, a in stems if role == "vocals"]
    rest = [a for _, role, a in stems if role != "vocals"]
    balance = bool(vocals and rest)

    def run(job):
        name, role, audio, detectors = job
        a = analyse(name, role, audio, sample_rate, block_frames=block_frames,
                    second_pass=second_pass_for(detectors))
        measured: dict[str, float] = {"integrated_lufs": _loudness_of(a)}
        found: list[Finding] = []
        for detect in detectors:
            values, findings = detect(a, name)
            measured.update(values)
            found += findings
        return name, measured, found

    def loudness(group):  # the gated loudness of a group of stems' sum
        return gated_loudness_lufs(sum_of(group, "vocals" if group is vocals else "the other stems"), block_frames)

    with ThreadPoolExecutor(max_workers=2) as pool:  # FFTs and numba kernels release the GIL
        analyses = [pool.submit(run, job) for job in jobs]
        sums = [pool.submit(loudness, group) for group in ((rest,) + ((vocals,) if len(vocals) > 1 else ()))] \
            if balance else []
        try:
            results = [f.result() for f in analyses]
            group_lufs = [f.result() for f in sums]
        except BaseException:  # bad samples found while reading: the first job's error, the rest not started
            for f in analyses + sums:
                f.cancel()
            raise
    measurements = {name: measured for name, measured, _ in results}
    findings = [f for _, _, found in results for f in found]
    if balance:
        # one vocal stem: its own analysis' integrated loudness is the gated loudness of the vocals
        vocals_lufs = group_lufs[1] if len(vocals) > 1 else \
            next(m for (_, role, _), (_, m, _) in zip(stems, results) if role == "vocals")["integrated_lufs"]
        values, found = _vocal_balance(stems, vocals_lufs, group_lufs[0])
        measurements["mix"].update(values)
        findings += found
    rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    order = {name: i for i, (name, _, _) in enumerate(stems)}
    findings.sort(key=lambda f: (rank[f.severity], order.get(f.stem, len(order))))
    verdict, reasons = verdict_of(findings)
    return Diagnosis(verdict, reasons, tuple(findings), source, measurements)
