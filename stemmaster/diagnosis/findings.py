"""What the diagnosis says: findings, each with its evidence and repair, and the verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "minor", "major", "fix_mix")
VERDICT_READY = "ready"
VERDICT_REPAIRS = "ready with repairs"
VERDICT_FIX_MIX = "fix the mix first"

FINDING_IDS = ("harsh_resonance", "sibilance", "muddy_low_mids", "wide_low_end", "excessive_width",
               "mono_incompatible", "over_compressed", "clipping", "band_limited", "dc_offset", "noise_floor",
               "loudness_jumps", "untidy_edges", "vocal_balance")


@dataclass(frozen=True)
class Finding:
    """One problem on one stem (or ``"mix"``).

    ``measured`` crossed ``threshold`` (both in ``unit``); ``measure`` names the
    number (``"sibilance_db"``...) so it can be taken again after a repair.
    ``repair`` is what stemmaster would do about it, ``{"stem", "processor",
    "settings"}`` in the terms of ``stemmaster repair`` (``stem == "bus"`` for
    the bus master), or None when no repair of ours reaches it (then the
    message says what to do instead). ``auto``: whether ``master --auto``
    applies the repair (never for a mix decision such as a stem's balance).
    """

    id: str
    stem: str
    severity: str
    measured: float
    threshold: float
    unit: str
    message: str
    measure: str
    repair: dict[str, Any] | None = None
    auto: bool = True
    details: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.id not in FINDING_IDS:
            raise ValueError(f"unknown finding id {self.id!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "stem": self.stem, "severity": self.severity, "measured": _num(self.measured),
                "threshold": _num(self.threshold), "unit": self.unit, "message": self.message,
                "measure": self.measure, "repair": self.repair, "auto": self.auto,
                "details": {k: _num(v) for k, v in self.details.items()}}


def _num(x: float) -> float | None:
    return round(float(x), 3) if x is not None and math.isfinite(float(x)) else None


@dataclass(frozen=True)
class Diagnosis:
    """The verdict, its reasons in plain words, the findings (worst first) and the
    measurements taken (``measurements[stem][measure]``) for comparing after repair."""

    verdict: str
    reasons: tuple[str, ...]
    findings: tuple[Finding, ...]
    source: str
    measurements: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": list(self.reasons), "source": self.source,
                "findings": [f.to_dict() for f in self.findings],
                "measurements": {s: {k: _num(v) for k, v in m.items()} for s, m in self.measurements.items()}}

    def ids(self) -> set[tuple[str, str]]:
        """``(id, stem)`` of every finding."""
        return {(f.id, f.stem) for f in self.findings}


def verdict_of(findings: list[Finding]) -> tuple[str, tuple[str, ...]]:
    """``fix the mix first`` if any finding is a mix decision; ``ready with repairs`` if any minor or
    major finding has a repair of ours; else ``ready``. The reasons are the deciding findings' messages."""
    fix = [f for f in findings if f.severity == "fix_mix"]
    if fix:
        return VERDICT_FIX_MIX, tuple(f"{f.stem}: {f.message}" for f in fix)
    repairable = [f for f in findings if f.severity in ("minor", "major") and f.repair is not None]
    if repairable:
        return VERDICT_REPAIRS, tuple(f"{f.stem}: {f.message}" for f in repairable)
    notes = [f for f in findings if f.severity in ("minor", "major")]
    return VERDICT_READY, tuple(f"{f.stem}: {f.message} (no repair needed from us)" for f in notes)
