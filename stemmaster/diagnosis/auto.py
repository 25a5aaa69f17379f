"""From a diagnosis to repair settings (``master --auto``), and what the repairs changed.

``auto_chains`` applies each finding's recommended repair to the stems'
recorded chains and the bus settings, the same edits ``stemmaster repair``
makes, so every one is visible in ``project.toml`` and can be changed. A
recommendation never weakens a setting already stronger (a deeper de-harsher,
a higher crossover stays). Mix decisions (``auto=False``: a vocal's balance)
and findings no repair reaches are left alone and reported as such.

``compare`` takes each finding of the diagnosis before and reads the same
measurement in the diagnosis after: improved, resolved (no longer crosses
its threshold), or not.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from stemmaster import repair as repair_mod
from stemmaster.diagnosis.findings import Diagnosis, Finding
from stemmaster.diagnosis.thresholds import THRESHOLDS

# settings where a smaller value is the stronger repair; for every other one, larger is stronger
_SMALLER_IS_STRONGER = {("deesser", "threshold_db"), ("stereo_width", "width"), ("tone_eq", "low_mid_db")}
_BUS_SECTIONS = {"low_end_mono": "low_end_mono", "tone_eq": "tone_eq"}


@dataclass
class AutoResult:
    chains: dict[str, dict[str, dict[str, Any]]]
    master: dict[str, dict[str, Any]]
    applied: list[str]
    skipped: list[str]


def _stronger(kind: str, name: str, old: Any, new: Any) -> Any:
    if not isinstance(old, (int, float)) or isinstance(old, bool):
        return new
    if (kind, name) in _SMALLER_IS_STRONGER:
        return min(old, new)
    return max(old, new)


def auto_chains(diagnosis: Diagnosis, chains: dict[str, dict[str, dict[str, Any]]],
                master: dict[str, dict[str, Any]] | None = None) -> AutoResult:
    """New stem chains and bus settings with the diagnosis' repairs applied.

    ``chains``: stem name -> recorded chain (as in ``project.toml``);
    ``master``: the recorded bus settings (``MasterSettings.to_dict()`` form,
    possibly partial). Neither argument is modified.
    """
    chains = {k: {kind: dict(entry) for kind, entry in v.items()} for k, v in chains.items()}
    master = copy.deepcopy(master or {})
    applied: list[str] = []
    skipped: list[str] = []
    for f in diagnosis.findings:
        rep = f.repair
        if rep is not None and not f.auto:
            skipped.append(f"{f.stem}/{f.id}: a mix decision, left to you "
                           f"({rep['stem']} {rep['processor']} {_settings_text(rep['settings'])})")
            continue
        if rep is None or f.severity not in ("minor", "major"):
            if f.severity != "info":
                skipped.append(f"{f.stem}/{f.id}: no repair of ours reaches it")
            continue
        kind, settings = rep["processor"], rep["settings"]
        if rep["stem"] == "bus":
            section = master.setdefault(_BUS_SECTIONS[kind], {})
            changes = []
            for name, value in settings.items():
                old = section.get(name)
                new = _stronger(kind, name, old, value) if old is not None else value
                section[name] = new
                changes.append(f"{name}={new}")
            if "enabled" in _enabled_sections(kind):
                section["enabled"] = True
            applied.append(f"bus {kind} {', '.join(changes)} ({f.id})")
            continue
        if rep["stem"] not in chains:
            skipped.append(f"{f.stem}/{f.id}: no stem named {rep['stem']!r}")
            continue
        chain = chains[rep["stem"]]
        changes = []
        for name, value in settings.items():
            old = chain.get(kind, {}).get(name) if chain.get(kind, {}).get("enabled", True) else None
            new = _stronger(kind, name, old, value) if old is not None else value
            chain = repair_mod.set_value(chain, f"{kind}.{name}", str(new))
            changes.append(f"{name}={new}")
        if not chain[kind].get("enabled", True):
            chain = repair_mod.set_value(chain, f"{kind}.enabled", "true")
        chains[rep["stem"]] = chain
        applied.append(f"{rep['stem']} {kind} {', '.join(changes)} ({f.id})")
    return AutoResult(chains, master, applied, skipped)


def _enabled_sections(kind: str) -> set[str]:
    return {"enabled"} if kind == "low_end_mono" else set()


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def compare(before: Diagnosis, after: Diagnosis) -> list[dict[str, Any]]:
    """For each finding before: its measurement after, whether it moved the right way and whether
    the finding is gone; then the findings that are new after (``new: True``)."""
    rows = []
    after_ids = after.ids()
    for f in before.findings:
        value = after.measurements.get(f.stem, {}).get(f.measure, float("nan"))
        key = _threshold_key(f)
        direction = THRESHOLDS[key].direction if key in THRESHOLDS else "above"
        improved = math.isfinite(value) and (value < f.measured if direction == "above" else value > f.measured)
        rows.append({"id": f.id, "stem": f.stem, "measure": f.measure, "unit": f.unit, "before": f.measured,
                     "after": value if math.isfinite(value) else None, "improved": bool(improved),
                     "resolved": (f.id, f.stem) not in after_ids, "new": False})
    before_ids = before.ids()
    for f in after.findings:
        if (f.id, f.stem) not in before_ids:
            rows.append({"id": f.id, "stem": f.stem, "measure": f.measure, "unit": f.unit, "before": None,
                         "after": f.measured, "improved": False, "resolved": False, "new": True})
    return rows


def _threshold_key(f: Finding) -> str:
    if f.id == "over_compressed" and f.stem != "mix":
        return "over_compressed_drums"
    if f.id == "clipping" and f.measure == "true_peak_dbtp":
        return "inter_sample_overs"
    if f.id == "untidy_edges":
        return "edge_level"
    return f.id
