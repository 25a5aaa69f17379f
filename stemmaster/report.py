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


def report_markdown(report: dict[str, Any]) -> str:
    """A short engineer's note of one render."""
    m = report["master"]
    mix = report["mix"]
    proc = report["processing"]
    lines = [
        f"# {report['project']} — render {report['render']}",
        "",
        f"Profile **{report['profile'] or 'custom'}**: target {_fmt(report['target_lufs'], 'LUFS')}, "
        f"ceiling {_fmt(report['ceiling_dbtp'], 'dBTP')}. Rendered {report['created']}.",
        "",
        "## Master",
        "",
        "| measure | before (stem sum) | master |",
        "|---|---|---|",
    ]
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
    lines += [
        "",
        "## What was done",
        "",
        f"- Staging gain {proc['staging_gain_db']:+.1f} dB, glue compression up to "
        f"{proc['compressor_max_reduction_db']:.1f} dB, limiter drive {proc['drive_gain_db']:+.1f} dB with up to "
        f"{proc['limiter_max_reduction_db']:.1f} dB of gain reduction "
        f"({proc['iterations']} loudness pass{'es' if proc['iterations'] != 1 else ''}).",
    ]
    if proc["limiter_max_reduction_db"] > 6.0:
        lines.append(f"- The limiter works hard ({proc['limiter_max_reduction_db']:.1f} dB at most): "
                     "expect flattened transients; a lower target would keep more punch.")
    sep = report.get("separation")
    if sep:
        settings = sep.get("settings", {})
        lines += ["", "## Separation", "",
                  f"- Stems separated from the render by **{sep['model']}** (checksum {sep['model_checksum']}), "
                  f"{settings.get('shifts', 1)} shift(s), overlap {settings.get('overlap', 0.25)}.",
                  f"- What the model left out (input minus the stems' sum) was {_fmt(sep['residual_db'], 'dB')} "
                  f"relative to the input; it was "
                  + ("added to `other`" if settings.get("residual_into", "other") == "other"
                     else "kept as the stem `residual`")
                  + ", so the stems sum back to the render and nothing of the song is lost."]
    lines += ["", "## Stems", "", "| stem | role | gain | loudness | sample peak |", "|---|---|---|---|---|"]
    for s in report["stems"]:
        state = "muted" if s["mute"] else _fmt(s["gain_db"], "dB")
        lines.append(f"| {s['name']} | {s['role']} | {state} | {_fmt(s['integrated_lufs'], 'LUFS')} | "
                     f"{_fmt(s['sample_peak_dbfs'], 'dBFS', 2)} |")
    lines += ["", "## Repairs", ""]
    for s in report["stems"]:
        rep = s.get("repair") or {}
        if not rep.get("chain"):
            lines.append(f"- **{s['name']}**: no repair")
            continue
        lines.append(f"- **{s['name']}** ({' -> '.join(rep['chain'])})")
        lines += [f"  - {text}" for text in _effect_lines(rep.get("effects", {}))]
    lines += ["", "## Files", ""]
    for f in report["files"]:
        lines.append(f"- `{f['path']}` ({f['role']}, {f['format']} {f['subtype']})")
    return "\n".join(lines) + "\n"
