"""The render report: ``report.json`` (stable keys, units in the names) and ``report.md``."""

from __future__ import annotations

import json
import math
from typing import Any

REPORT_SCHEMA = "stemmaster.report/1"


def json_safe(value: Any) -> Any:
    """Replace non-finite floats with None, recursively, so the JSON is standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(json_safe(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}{(' ' + unit) if unit else ''}"
    return f"{value}{(' ' + unit) if unit else ''}"


def _effect_lines(effects: dict[str, Any]) -> list[str]:
    out = []
    if "sibilance_db" in effects:
        e = effects["sibilance_db"]
        out.append(f"sibilance band (4.5-11 kHz) in the sibilant frames: {_fmt(e['before'], 'dB')} -> "
                   f"{_fmt(e['after'], 'dB')} relative to the stem's level")
    if "resonance" in effects:
        e = effects["resonance"]
        out.append(f"largest cut {_fmt(e['cut_db'], 'dB')} at {_fmt(e['frequency_hz'], 'Hz', 0)}: the spectrum stood "
                   f"{_fmt(e['before_db'], 'dB')} over its smoothed envelope there, now {_fmt(e['after_db'], 'dB')}")
    if "side_low" in effects:
        e = effects["side_low"]
        out.append(f"side energy below {_fmt(e['below_hz'], 'Hz', 0)}: {_fmt(e['before_dbfs'], 'dBFS')} -> "
                   f"{_fmt(e['after_dbfs'], 'dBFS')}")
    if "hit_crest_db" in effects:
        e = effects["hit_crest_db"]
        out.append(f"crest factor of the hits: {_fmt(e['before'], 'dB')} -> {_fmt(e['after'], 'dB')}")
    return out


_SEVERITY_ORDER = {"fix_mix": 0, "major": 1, "minor": 2, "info": 3}
_SEVERITY_LABEL = {"fix_mix": "fix the mix", "major": "major", "minor": "minor", "info": "info"}
_BAND_SHORT = {"sub": "sub", "bass": "bass", "low_mids": "low mids", "presence": "presence", "air": "air"}


def _cell(text: Any) -> str:
    """Text for a Markdown table cell: pipes escaped, on one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _signed(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{float(value):+.{digits}f}{(' ' + unit) if unit else ''}"


def _repair_text(repair: dict[str, Any] | None) -> str:
    if not repair:
        return "—"
    settings = repair.get("settings") or {}
    args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())
    return f"{repair.get('processor', '?')} on {repair.get('stem', '?')}" + (f" ({args})" if args else "")


def _verdict_lines(report: dict[str, Any]) -> list[str]:
    diag = report.get("diagnosis")
    if not diag:
        return ["No verdict: the stems were not diagnosed for this render."]
    reasons = [r for r in diag.get("reasons") or [] if r]
    verdict = diag.get("verdict", "n/a")
    line = f"**Verdict: {verdict}.**"
    findings = diag.get("findings") or []
    if verdict == "fix the mix first":
        # the reasons are the point: each on its own line, before anything else
        return [line + " The master was made anyway; the source should be fixed first:", ""] + \
            [f"- {' '.join(str(r).split())}" for r in reasons]
    if findings:
        line += (f" {len(findings)} finding{'s' if len(findings) != 1 else ''} below, "
                 f"{sum(1 for f in findings if f.get('repair'))} with the repair that reaches it.")
    elif reasons:
        line += " " + "; ".join(" ".join(str(r).split()) for r in reasons) + "."
    return [line]


def _headline(report: dict[str, Any]) -> str:
    m = report["master"]
    return (f"Master: {_fmt(m.get('integrated_lufs'), 'LUFS')} integrated, {_fmt(m.get('true_peak_dbtp'), 'dBTP', 2)} "
            f"true peak; profile **{report['profile'] or 'custom'}** (target {_fmt(report['target_lufs'], 'LUFS')}, "
            f"ceiling {_fmt(report['ceiling_dbtp'], 'dBTP')}). Rendered {report['created']}.")


def _checks_headline(checks: dict[str, Any] | None) -> str | None:
    if not checks:
        return None
    if checks.get("status") != "done":
        return f"Release checks: not run ({checks.get('status', 'n/a')}: {checks.get('reason') or 'no reason given'})."
    parts = []
    for c in checks.get("codec") or []:
        if not c.get("available"):
            continue
        overs = "overs" if c.get("overs") else "no overs"
        parts.append(f"{str(c['codec']).upper()} decodes to {_fmt(c.get('decoded_true_peak_dbtp'), 'dBTP', 2)} ({overs})")
    warnings = sum(len(t.get("warnings") or []) for t in checks.get("translation") or [])
    parts.append(f"{warnings} translation warning{'' if warnings == 1 else 's'}")
    return "Release checks: " + "; ".join(parts) + "."


def _check_findings(report: dict[str, Any]) -> list[str]:
    """Findings of the master and the release checks, one line each."""
    out = []
    proc = report.get("processing") or {}
    if (proc.get("limiter_max_reduction_db") or 0.0) > 6.0:
        out.append(f"The limiter works hard ({proc['limiter_max_reduction_db']:.1f} dB at most): "
                   "expect flattened transients; a lower target would keep more punch.")
    checks = report.get("checks") or {}
    if checks.get("status") == "done":
        for c in checks.get("codec") or []:
            if c.get("available") and c.get("overs"):
                rec = c.get("recommended_ceiling_dbtp")
                out.append(f"{str(c['codec']).upper()} {c.get('bitrate_kbps')}k decodes to "
                           f"{_fmt(c.get('decoded_true_peak_dbtp'), 'dBTP', 2)}, over full scale"
                           + (f": a ceiling of {_fmt(rec, 'dBTP')} would keep it under." if rec is not None
                              else " (encoder glitches, not the master's peaks)."))
        for t in checks.get("translation") or []:
            for w in t.get("warnings") or []:
                out.append(f"{t['name']}: {w}.")
    return out


def _findings_lines(report: dict[str, Any]) -> list[str]:
    lines = ["## Findings", ""]
    diag = report.get("diagnosis")
    findings = list((diag or {}).get("findings") or [])
    if findings:
        findings.sort(key=lambda f: _SEVERITY_ORDER.get(f.get("severity"), 9))
        lines += ["| severity | stem | evidence | finding | recommended repair |", "|---|---|---|---|---|"]
        for f in findings:
            unit = f.get("unit") or ""
            evidence = f"{_fmt(f.get('measured'), unit)} vs {_fmt(f.get('threshold'), unit)}"
            lines.append(f"| {_SEVERITY_LABEL.get(f.get('severity'), _cell(f.get('severity')))} | {_cell(f.get('stem', ''))} | "
                         f"{_cell(evidence)} | {_cell(f.get('message', ''))} | {_cell(_repair_text(f.get('repair')))} |")
    elif diag:
        lines.append("The diagnosis found nothing to flag.")
    else:
        lines.append("No diagnosis findings (no diagnosis was run).")
    extra = _check_findings(report)
    if extra:
        lines += ["", "From the master and the release checks:", ""] + [f"- {text}" for text in extra]
    auto = report.get("auto") or {}
    compare = auto.get("compare") or []
    if compare:
        lines += ["", "### Automatic repairs, measured before and after", "",
                  "| finding | stem | before | after | improved |", "|---|---|---|---|---|"]
        for c in compare:
            unit = c.get("unit") or ""
            lines.append(f"| {_cell(c.get('id', ''))} | {_cell(c.get('stem', ''))} | {_fmt(c.get('before'), unit)} | "
                         f"{_fmt(c.get('after'), unit)} | {'yes' if c.get('improved') else 'no'} |")
    return lines


def _done_lines(report: dict[str, Any]) -> list[str]:
    proc = report["processing"]
    lines = ["## What was done", ""]
    applied = (report.get("auto") or {}).get("applied") or []
    for text in applied:
        lines.append(f"- Automatic repair: {' '.join(str(text).split())}")
    lines.append(
        f"- Staging gain {proc['staging_gain_db']:+.1f} dB, glue compression up to "
        f"{proc['compressor_max_reduction_db']:.1f} dB, limiter drive {proc['drive_gain_db']:+.1f} dB with up to "
        f"{proc['limiter_max_reduction_db']:.1f} dB of gain reduction "
        f"({proc['iterations']} loudness pass{'es' if proc['iterations'] != 1 else ''}).")
    sep = report.get("separation")
    if sep:
        settings = sep.get("settings", {})
        lines += ["", "### Separation", "",
                  f"- Stems separated from the render by **{sep['model']}** (checksum {sep['model_checksum']}), "
                  f"{settings.get('shifts', 1)} shift(s), overlap {settings.get('overlap', 0.25)}.",
                  f"- What the model left out (input minus the stems' sum) was {_fmt(sep['residual_db'], 'dB')} "
                  f"relative to the input; it was "
                  + ("added to `other`" if settings.get("residual_into", "other") == "other"
                     else "kept as the stem `residual`")
                  + ", so the stems sum back to the render and nothing of the song is lost."]
    lines += ["", "### Repairs", ""]
    for s in report["stems"]:
        rep = s.get("repair") or {}
        if not rep.get("chain"):
            lines.append(f"- **{s['name']}**: no repair")
            continue
        lines.append(f"- **{s['name']}** ({' -> '.join(rep['chain'])})")
        lines += [f"  - {text}" for text in _effect_lines(rep.get("effects", {}))]
    return lines


def _numbers_lines(report: dict[str, Any]) -> list[str]:
    m = report["master"]
    mix = report["mix"]
    lines = ["## Numbers", "", "### Master", "",
             "| measure | stem sum (after repairs) | master |", "|---|---|---|"]
    rows = [
        ("integrated loudness", "integrated_lufs", "LUFS"),
        ("short-term max", "short_term_max_lufs", "LUFS"),
        ("loudness range", "loudness_range_lu", "LU"),
        ("sample peak", "sample_peak_dbfs", "dBFS"),
        ("true peak (4x)", "true_peak_dbtp", "dBTP"),
        ("PLR", "plr_db", "dB"),
        ("crest factor", "crest_factor_db", "dB"),
        ("stereo correlation", "stereo_correlation", ""),
    ]
    for label, key, unit in rows:
        digits = 2 if key in ("true_peak_dbtp", "stereo_correlation", "sample_peak_dbfs") else 1
        lines.append(f"| {label} | {_fmt(mix.get(key), unit, digits)} | {_fmt(m.get(key), unit, digits)} |")
    lines += ["", "### Stems", "", "| stem | role | gain | loudness | sample peak |", "|---|---|---|---|---|"]
    for s in report["stems"]:
        state = "muted" if s["mute"] else _fmt(s["gain_db"], "dB")
        lines.append(f"| {s['name']} | {s['role']} | {state} | {_fmt(s['integrated_lufs'], 'LUFS')} | "
                     f"{_fmt(s['sample_peak_dbfs'], 'dBFS', 2)} |")
    return lines


def _checks_lines(checks: dict[str, Any] | None) -> list[str]:
    lines = ["## Release checks", ""]
    if not checks:
        return lines + ["Not recorded in this report."]
    if checks.get("status") != "done":
        return lines + [f"Not run ({checks.get('status', 'n/a')}): {checks.get('reason') or 'no reason given'}. "
                        "The master above is complete; the checks can be run again on this render."]
    lines.append(f"Run after the master landed, in {_fmt(checks.get('seconds'), 's')}.")
    lines += ["", "### Translation", "",
              "| playback | loudness change | band changes (dB) | warnings |", "|---|---|---|---|"]
    for t in checks.get("translation") or []:
        bands = ", ".join(f"{_BAND_SHORT.get(b, b)} {_signed(v)}" for b, v in (t.get("band_change_db") or {}).items())
        warnings = "; ".join(t.get("warnings") or []) or "—"
        lines.append(f"| {_cell(t.get('description') or t.get('name'))} | {_signed(t.get('loudness_change_lu'), 'LU')} | "
                     f"{_cell(bands)} | {_cell(warnings)} |")
    lines += ["", "### Codec", "",
              "| codec | decoded true peak | overshoot | overs | recommended ceiling | note |", "|---|---|---|---|---|---|"]
    for c in checks.get("codec") or []:
        name = f"{str(c.get('codec', '?')).upper()} {c.get('bitrate_kbps')}k"
        if not c.get("available"):
            lines.append(f"| {name} | — | — | — | — | {_cell(c.get('note') or 'not available')} |")
            continue
        rec = c.get("recommended_ceiling_dbtp")
        ceiling = _fmt(rec, "dBTP") if rec is not None else f"keep {_fmt(c.get('ceiling_dbtp'), 'dBTP')}"
        lines.append(f"| {name} | {_fmt(c.get('decoded_true_peak_dbtp'), 'dBTP', 2)} | "
                     f"{_signed(c.get('overshoot_db'), 'dB', 2)} | {'yes' if c.get('overs') else 'no'} | "
                     f"{ceiling} | {_cell(c.get('note') or '—')} |")
    ab = checks.get("ab") or {}
    if ab:
        lines += ["", "### Level-matched A/B", "",
                  f"Both files play at {_fmt(ab.get('target_lufs'), 'LUFS')} (matched within "
                  f"{_fmt(ab.get('matched_within_lu'), 'LU', 2)}); only the processing differs.", ""]
        for side, label in (("before", "before (the source as it arrived)"), ("after", "after (the master)")):
            row = ab.get(side) or {}
            lines.append(f"- `{row.get('path')}`: {label}, moved {_signed(row.get('gain_db'), 'LU')} "
                         f"(from {_fmt(row.get('lufs_in'), 'LUFS')})")
    plots = checks.get("plots") or []
    if plots:
        lines += ["", "### Plots", ""]
        if checks.get("target_curve"):
            lines += [f"The tonal-balance target is a reference slope: {checks['target_curve']}.", ""]
        for path in plots:
            name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0].replace("_", " ")
            lines.append(f"![{name}]({path})")
    return lines


def report_markdown(report: dict[str, Any]) -> str:
    """A short engineer's note of one render: the verdict first, then the findings, what was
    done, and the numbers (master, stems, release checks, files). A pure function of ``report``;
    the diagnosis, automatic repairs and release checks are shown when present."""
    lines = [f"# {report['project']} — render {report['render']}", ""]
    lines += _verdict_lines(report)
    lines += ["", _headline(report)]
    checks_line = _checks_headline(report.get("checks"))
    if checks_line:
        lines += ["", checks_line]
    lines += [""] + _findings_lines(report)
    lines += [""] + _done_lines(report)
    lines += [""] + _numbers_lines(report)
    lines += [""] + _checks_lines(report.get("checks"))
    lines += ["", "## Files", ""]
    for f in report["files"]:
        lines.append(f"- `{f['path']}` ({f['role']}, {f['format']} {f['subtype']})")
    return "\n".join(lines) + "\n"
