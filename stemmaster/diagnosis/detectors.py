"""One detector per finding: it takes a measurement off a ``SignalAnalysis``, judges it against
``thresholds.THRESHOLDS`` and words the finding with its evidence and repair.

Each detector returns ``(measurements, findings)``: the numbers it took (kept
in the diagnosis, so ``auto.compare`` can set before against after) and the
findings, none when the signal is clean. Which detectors run on which stem is
``STEM_DETECTORS`` (by role) and ``MIX_DETECTORS``.
"""

from __future__ import annotations

import math
from typing import Callable

from stemmaster.diagnosis import measures as M
from stemmaster.diagnosis.analysis import SignalAnalysis
from stemmaster.diagnosis.findings import Finding
from stemmaster.diagnosis.thresholds import THRESHOLDS as T

Result = tuple[dict[str, float], list[Finding]]
Detector = Callable[[SignalAnalysis, str], Result]


def _fmt(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}"


def harsh_resonance(a: SignalAnalysis, stem: str) -> Result:
    m = M.resonance(a)
    sev = T["harsh_resonance"].severity(m["excess_db"])
    out = {"resonance_excess_db": m["excess_db"], "resonance_hz": m["frequency_hz"]}
    if sev is None:
        return out, []
    f0 = m["frequency_hz"]
    depth = float(min(10.0, max(4.0, round(m["excess_db"] + 2.0))))
    repair = {"stem": stem, "processor": "deharsher", "settings": {"depth_db": depth}} if stem != "mix" else None
    text = (f"harsh resonance at {f0:.0f} Hz: the long-term spectrum stands {_fmt(m['peak_excess_db'])} dB over its "
            f"smoothed envelope there, in {m['persistence'] * 100:.0f} % of the loud frames")
    text += f"; de-harsh it with depth {depth:.0f} dB" if repair else "; separate it and de-harsh the stem that rings"
    return out, [Finding("harsh_resonance", stem, sev, m["excess_db"], T["harsh_resonance"].minor, "dB", text,
                         "resonance_excess_db", repair, details={"frequency_hz": f0, "persistence": m["persistence"]})]


def sibilance(a: SignalAnalysis, stem: str) -> Result:
    m = M.sibilance(a)
    sev = T["sibilance"].severity(m["sibilance_db"])
    out = {"sibilance_db": m["sibilance_db"]}
    if sev is None:
        return out, []
    settings = {"threshold_db": 6.0, "max_reduction_db": 8.0} if sev == "minor" else \
        {"threshold_db": 3.0, "max_reduction_db": 12.0}
    repair = {"stem": stem, "processor": "deesser", "settings": settings} if stem != "mix" else None
    text = (f"sibilance: the esses (4.5-11 kHz, peaking near {m['frequency_hz'] / 1000:.1f} kHz) come within "
            f"{-m['sibilance_db']:.1f} dB of the vowels")
    text += (f"; de-ess up to {settings['max_reduction_db']:.0f} dB" if repair
             else "; separate the vocal and de-ess it")
    return out, [Finding("sibilance", stem, sev, m["sibilance_db"], T["sibilance"].minor, "dB", text,
                         "sibilance_db", repair, details={"frequency_hz": m["frequency_hz"]})]


def muddy_low_mids(a: SignalAnalysis, stem: str) -> Result:
    m = M.low_mid_excess(a)
    sev = T["muddy_low_mids"].severity(m["low_mid_excess_db"])
    out = {"low_mid_excess_db": m["low_mid_excess_db"]}
    if sev is None:
        return out, []
    cut = float(min(4.0, max(1.5, round((m["low_mid_excess_db"] - 4.0) * 2.0) / 2.0)))
    repair = {"stem": "bus", "processor": "tone_eq",
              "settings": {"low_mid_hz": 300.0, "low_mid_db": -cut, "low_mid_q": 0.9}}
    text = (f"muddy low-mids: 200-500 Hz sits {_fmt(m['low_mid_excess_db'])} dB over its neighbours "
            f"(released mixes: 0-5 dB); cut {cut:.1f} dB around 300 Hz")
    return out, [Finding("muddy_low_mids", stem, sev, m["low_mid_excess_db"], T["muddy_low_mids"].minor, "dB",
                         text, "low_mid_excess_db", repair)]


def wide_low_end(a: SignalAnalysis, stem: str) -> Result:
    m = M.low_end_width(a)
    sev = T["wide_low_end"].severity(m["side_to_mid_low_db"])
    out = {"side_to_mid_low_db": m["side_to_mid_low_db"]}
    if sev is None:
        return out, []
    target = "bus" if stem == "mix" else stem
    repair = {"stem": target, "processor": "low_end_mono", "settings": {"crossover_hz": 150.0}}
    text = (f"wide low end: below 150 Hz the side is {_fmt(m['side_to_mid_low_db'])} dB against the mid "
            f"(correlation {m['correlation_low']:+.2f}); it cancels in mono and on cutting lathes: "
            "mono it below 150 Hz")
    return out, [Finding("wide_low_end", stem, sev, m["side_to_mid_low_db"], T["wide_low_end"].minor, "dB", text,
                         "side_to_mid_low_db", repair, details={"correlation_low": m["correlation_low"]})]


def excessive_width(a: SignalAnalysis, stem: str) -> Result:
    m = M.width(a)
    sev = T["excessive_width"].severity(m["side_to_mid_db"])
    out = {"side_to_mid_db": m["side_to_mid_db"]}
    if sev is None:
        return out, []
    width = float(max(0.5, min(0.95, round(10.0 ** ((-6.0 - m["side_to_mid_db"]) / 20.0), 2))))
    repair = {"stem": stem, "processor": "stereo_width", "settings": {"width": width}} if stem != "mix" else None
    text = (f"excessive width: the side is {_fmt(m['side_to_mid_db'])} dB against the mid (correlation "
            f"{m['correlation']:+.2f}); fake or phasey stereo that collapses in mono")
    text += f": narrow it to width {width:.2f}" if repair else ": narrow the stems that carry it"
    return out, [Finding("excessive_width", stem, sev, m["side_to_mid_db"], T["excessive_width"].minor, "dB", text,
                         "side_to_mid_db", repair, details={"correlation": m["correlation"]})]


def mono_incompatible(a: SignalAnalysis, stem: str) -> Result:
    m = M.mono_loss(a)
    sev = T["mono_incompatible"].severity(m["worst_loss_db"])
    out = {"mono_loss_db": m["worst_loss_db"]}
    if sev is None:
        return out, []
    band = m["worst_band_hz"]
    target = "bus" if stem == "mix" else stem
    if band <= 125.0:
        repair = {"stem": target, "processor": "low_end_mono", "settings": {"crossover_hz": 150.0}}
        fix = "mono the low end below 150 Hz"
    elif stem != "mix":
        repair = {"stem": stem, "processor": "stereo_width", "settings": {"width": 0.7}}
        fix = "narrow the stem to width 0.70"
    else:
        repair, fix = None, "find the out-of-phase part in the mix"
    text = (f"poor mono compatibility: folded to mono, the {band:.0f} Hz octave loses "
            f"{-m['worst_loss_db']:.1f} dB (uncorrelated stereo loses 3 dB); {fix}")
    return out, [Finding("mono_incompatible", stem, sev, m["worst_loss_db"], T["mono_incompatible"].minor, "dB",
                         text, "mono_loss_db", repair, details={"band_hz": band})]


def over_compressed(a: SignalAnalysis, stem: str) -> Result:
    m = M.dynamics(a)
    out = {"plr_db": m["plr_db"], "loudness_range_lu": m["loudness_range_lu"], "hit_crest_db": m["hit_crest_db"]}
    if stem == "mix" or a.role == "mix":
        sev = T["over_compressed"].severity(m["plr_db"])
        if sev is None:
            return out, []
        text = (f"over-compressed: peak-to-loudness ratio {_fmt(m['plr_db'])} dB (LRA {_fmt(m['loudness_range_lu'])} "
                "LU); the transients are already flattened: restore them on the drums (transient shaper) and "
                "master to a lower loudness, or get a less limited mix")
        return out, [Finding("over_compressed", stem, sev, m["plr_db"], T["over_compressed"].minor, "dB", text,
                             "plr_db", None, details={"loudness_range_lu": m["loudness_range_lu"],
                                                      "hit_crest_db": m["hit_crest_db"]})]
    sev = T["over_compressed_drums"].severity(m["hit_crest_db"])
    if sev is None:
        return out, []
    repair = {"stem": stem, "processor": "transient_shaper", "settings": {"attack_db": 6.0}}
    text = (f"over-compressed drums: the hits stand only {_fmt(m['hit_crest_db'])} dB over their own level "
            "(raw kits 6-8 dB); restore the attack by 6 dB")
    return out, [Finding("over_compressed", stem, sev, m["hit_crest_db"], T["over_compressed_drums"].minor, "dB",
                         text, "hit_crest_db", repair, details={"plr_db": m["plr_db"]})]


def clipping(a: SignalAnalysis, stem: str) -> Result:
    m = M.clipping(a)
    out = {"clipped_fraction": m["clipped_fraction"], "true_peak_dbtp": m["true_peak_dbtp"]}
    if m["clip_runs"] > 0:
        sev = T["clipping"].severity(m["clipped_fraction"]) or "minor"
        if sev == "major":
            text = (f"clipped throughout: {m['clipped_fraction'] * 100:.0f} % of the seconds hold flat-topped "
                    f"runs at full level ({m['clip_runs']:.0f} runs); no repair restores the lost peaks: "
                    "get an unclipped export")
            return out, [Finding("clipping", stem, "fix_mix", m["clipped_fraction"], T["clipping"].major,
                                 "fraction of seconds", text, "clipped_fraction", None, auto=False,
                                 details={"clip_runs": m["clip_runs"]})]
        text = (f"clipping: {m['clip_runs']:.0f} flat-topped runs at full level in "
                f"{m['clipped_fraction'] * 100:.1f} % of the seconds; audible as crackle on loud hits")
        return out, [Finding("clipping", stem, "minor", m["clipped_fraction"], T["clipping"].minor,
                             "fraction of seconds", text, "clipped_fraction", None,
                             details={"clip_runs": m["clip_runs"]})]
    sev = T["inter_sample_overs"].severity(m["true_peak_dbtp"])
    if sev is None or m["true_peak_dbtp"] < 0.01:
        return out, []
    text = (f"inter-sample overs: the true peak is {m['true_peak_dbtp']:+.2f} dBTP (over full scale between "
            "samples: converters and codecs clip it); the bus limiter brings it under the ceiling")
    return out, [Finding("clipping", stem, "minor", m["true_peak_dbtp"], 0.0, "dBTP", text, "true_peak_dbtp", None)]


def band_limited(a: SignalAnalysis, stem: str) -> Result:
    m = M.spectral_cliff(a)
    out = {"cutoff_hz": m["cutoff_hz"]}
    sev = T["band_limited"].severity(m["cutoff_hz"])
    if sev is None:
        return out, []
    severity = "minor" if sev == "major" else "info"
    text = (f"band-limited source: the spectrum falls {m['drop_db']:.0f} dB at {m['cutoff_hz'] / 1000:.1f} kHz "
            "and nothing is above it (a lossy encode or a band-limited render); the air cannot be restored, "
            "so do not boost above it")
    return out, [Finding("band_limited", stem, severity, m["cutoff_hz"], T["band_limited"].minor, "Hz", text,
                         "cutoff_hz", None, details={"drop_db": m["drop_db"]})]


def dc_offset(a: SignalAnalysis, stem: str) -> Result:
    m = M.dc_offset(a)
    out = {"dc_dbfs": m["dc_dbfs"]}
    sev = T["dc_offset"].severity(m["dc_dbfs"])
    if sev is None:
        return out, []
    repair = {"stem": stem, "processor": "highpass", "settings": {"highpass_hz": 20.0}} if stem != "mix" else None
    text = f"DC offset of {m['dc_dbfs']:.0f} dBFS: it wastes headroom and thumps at the edges"
    text += "; a 20 Hz high-pass removes it" if repair else "; high-pass the source at 20 Hz"
    return out, [Finding("dc_offset", stem, sev, m["dc_dbfs"], T["dc_offset"].minor, "dBFS", text, "dc_dbfs",
                         repair)]


def noise_floor(a: SignalAnalysis, stem: str) -> Result:
    m = M.noise_floor(a)
    out = {"noise_floor_db": m["floor_db"], "noise_flatness": m["flatness"]}
    sev = T["noise_floor"].severity(m["floor_db"])
    if sev is None or not (m["flatness"] >= T["noise_floor_flatness"].minor):
        return out, []
    text = (f"noise floor: the quietest moments are hiss {-m['floor_db']:.0f} dB under the music "
            f"(spectral flatness {m['flatness']:.2f}); the master's loudness will lift it: denoise or gate "
            "the source before mastering")
    return out, [Finding("noise_floor", stem, "minor" if sev == "minor" else "major", m["floor_db"],
                         T["noise_floor"].minor, "dB", text, "noise_floor_db", None,
                         details={"flatness": m["flatness"]})]


def loudness_jumps(a: SignalAnalysis, stem: str) -> Result:
    m = M.loudness_jumps(a)
    out = {"loudness_jump_lu": m["jump_lu"]}
    duration = a.duration_s
    inside = math.isfinite(m["at_s"]) and 0.1 * duration <= m["at_s"] <= 0.9 * duration
    sev = T["loudness_jumps"].severity(m["jump_lu"]) if inside else None
    if sev is None:
        return out, []
    minutes, seconds = divmod(m["at_s"], 60.0)
    text = (f"loudness jump: at {int(minutes)}:{seconds:04.1f} the level steps {_fmt(m['jump_lu'])} LU between "
            "neighbouring sections; the limiter will not level it: ride the sections' levels before mastering "
            "if it is not meant")
    return out, [Finding("loudness_jumps", stem, sev, m["jump_lu"], T["loudness_jumps"].minor, "LU", text,
                         "loudness_jump_lu", None, details={"at_s": m["at_s"]})]


def untidy_edges(a: SignalAnalysis, stem: str) -> Result:
    m = M.edges(a)
    out = dict(m)
    problems = []
    worst = None
    lead = T["leading_silence"].severity(m["leading_silence_s"])
    if lead:
        problems.append(f"{m['leading_silence_s']:.1f} s of silence before the music")
        worst = lead
    for where, key in (("starts", "start_dbfs"), ("stops", "end_dbfs")):
        sev = T["edge_level"].severity(m[key])
        if sev:
            problems.append(f"it {where} mid-sound at {m[key]:.0f} dBFS (a click)")
            worst = "major" if "major" in (worst, sev) else sev
    if not problems:
        return out, []
    measured = max(m["start_dbfs"], m["end_dbfs"])
    out["edge_dbfs"] = measured
    text = "untidy edges: " + "; ".join(problems) + ": trim to a short pre-roll and fade the ends at export"
    return out, [Finding("untidy_edges", stem, "minor" if worst == "minor" else "major", measured,
                         T["edge_level"].minor, "dBFS", text, "edge_dbfs", None,
                         details={"leading_silence_s": m["leading_silence_s"]})]


STEM_DETECTORS: dict[str, tuple[Detector, ...]] = {
    "vocals": (harsh_resonance, sibilance, wide_low_end, excessive_width, mono_incompatible, clipping, dc_offset,
               noise_floor),
    "drums": (over_compressed, wide_low_end, mono_incompatible, clipping, dc_offset),
    "bass": (wide_low_end, mono_incompatible, clipping, dc_offset),
    "other": (harsh_resonance, wide_low_end, excessive_width, mono_incompatible, clipping, dc_offset),
}
MIX_DETECTORS: tuple[Detector, ...] = (muddy_low_mids, wide_low_end, excessive_width, mono_incompatible,
                                       over_compressed, clipping, band_limited, dc_offset, noise_floor,
                                       loudness_jumps, untidy_edges)
# a mix with no stems to look into (``stemmaster diagnose FILE``): its resonances too (sibilance is
# judged on a vocal only: a mix's 4.5-11 kHz peaks are as often cymbals as esses)
MIX_ONLY_DETECTORS: tuple[Detector, ...] = (harsh_resonance,) + MIX_DETECTORS

# what each detector needs of ``analysis.analyse``'s second pass (the spectra of chosen frames)
_SECOND_PASS: dict[Detector, str] = {harsh_resonance: "resonance", sibilance: "sibilance"}


def second_pass_for(detectors: tuple[Detector, ...]) -> frozenset[str]:
    """The second-pass reductions ``detectors`` read (``analysis.SECOND_PASS`` names)."""
    return frozenset(_SECOND_PASS[d] for d in detectors if d in _SECOND_PASS)
