"""Versions of one master from its stems (main, instrumental, acapella, TV, performance, custom),
and stem masters, all carrying the main master's bus state.

How the versions stay consistent with the main master: the bus is a linear
part (staging gain, low-end mono, EQ, width: ``master.bus_linear``) followed
by one gain curve shared by both channels (compressor x drive x limiter:
``MasterResult.bus_gain``). A version is its stems' mix through the same
linear part, times the *main master's* gain curve: the same staging, the
same drive, the same compression and limiting at the same moments. So an
instrumental is exactly the main master minus the vocal's share of it, and
never comes out louder merely because it has less in it (a version mastered
on its own would be driven up to the target). Where a version's peaks stand
higher than the main's (parts that cancelled in the full mix), a safety
true-peak limiter at the same ceiling catches them; how much it did is
reported per version (usually nothing).

The acapella is the exception by design: the main's gain curve moves with
the drums and the bass, and on a voice alone that movement is audible as
pumping. It gets the main's staging, linear part and drive, with the
compressor's and limiter's *average* gain over the song as a constant, then
the safety limiter: the same level relation to the main, none of its motion.

Stem masters: each stem through the linear part times the gain curve; they
sum to the main master (before dither) to floating-point precision.

All audio is float ``(channels, samples)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from stemmaster.errors import SettingsError
from stemmaster.master import MasterResult, MasterSettings, bus_linear

BUILTIN = ("main", "instrumental", "acapella", "tv", "performance")
TV_VOCAL_DB = -6.0
_BACKING = re.compile(r"(backing|bgv|bv|harmon|choir|double|dbl|adlib|ad lib|bgs)", re.IGNORECASE)


@dataclass(frozen=True)
class StemShare:
    """A stem of the render (repaired, as in the main master) and its role."""

    name: str
    role: str
    audio: np.ndarray


@dataclass(frozen=True)
class Version:
    """A version: a gain in dB per stem (``None``: muted); ``gentle`` for the acapella treatment."""

    name: str
    gains_db: dict[str, float | None]
    gentle: bool = False
    description: str = ""


@dataclass
class VersionAudio:
    name: str
    audio: np.ndarray
    safety_reduction_db: float
    description: str
    stems: dict[str, float | None] = field(default_factory=dict)


def _lead_vocals(stems: list[StemShare]) -> list[str]:
    """The lead vocal stems: vocals whose names do not say backing/harmony/choir (all vocals if none qualify)."""
    vocals = [s.name for s in stems if s.role == "vocals"]
    lead = [n for n in vocals if not _BACKING.search(n)]
    return lead or vocals


def builtin_version(name: str, stems: list[StemShare], *, tv_vocal_db: float = TV_VOCAL_DB) -> Version:
    """One of ``BUILTIN`` for these stems."""
    names = [s.name for s in stems]
    vocals = [s.name for s in stems if s.role == "vocals"]
    lead = _lead_vocals(stems)
    if name == "main":
        return Version("main", {n: 0.0 for n in names}, description="every stem as mixed")
    if name == "instrumental":
        return Version("instrumental", {n: (None if n in vocals else 0.0) for n in names},
                       description="vocals muted")
    if name == "acapella":
        if not vocals:
            raise SettingsError("an acapella needs a stem with the role vocals; there is none")
        return Version("acapella", {n: (0.0 if n in vocals else None) for n in names}, gentle=True,
                       description="vocals alone, the main's level without its compression and limiting motion")
    if name == "tv":
        return Version("tv", {n: (tv_vocal_db if n in lead else 0.0) for n in names},
                       description=f"lead vocal at {tv_vocal_db:+.1f} dB")
    if name == "performance":
        return Version("performance", {n: (None if n in lead else 0.0) for n in names},
                       description="backing track: lead vocal out, backing vocals and instruments kept")
    raise SettingsError(f"unknown version {name!r} (built in: {', '.join(BUILTIN)}; or NAME=STEM:DB,STEM:mute,...)")


def parse_version(spec: str, stems: list[StemShare]) -> Version:
    """A built-in name, or a custom mix ``NAME=STEM:DB,STEM:mute,...`` (stems not named stay at 0 dB)."""
    spec = spec.strip()
    if "=" not in spec:
        return builtin_version(spec, stems)
    name, _, body = spec.partition("=")
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name):
        raise SettingsError(f"version name {name!r}: use 1-40 letters, digits, - or _")
    gains: dict[str, float | None] = {s.name: 0.0 for s in stems}
    by_lower = {s.name.lower(): s.name for s in stems}
    for item in filter(None, (p.strip() for p in body.split(","))):
        stem, _, value = item.partition(":")
        key = by_lower.get(stem.strip().lower())
        if key is None:
            raise SettingsError(f"version {name!r}: no stem {stem.strip()!r} (stems: {', '.join(gains)})")
        value = value.strip().lower()
        if value in ("mute", "off", "out"):
            gains[key] = None
            continue
        try:
            db = float(value.removesuffix("db"))
        except ValueError:
            raise SettingsError(f"version {name!r}: {item!r} should be STEM:DB or STEM:mute") from None
        if not -60.0 <= db <= 12.0:
            raise SettingsError(f"version {name!r}: {stem.strip()} at {db} dB is out of range (allowed -60 to +12)")
        gains[key] = db
    return Version(name, gains, description="custom: " + ", ".join(
        f"{k} {'muted' if v is None else f'{v:+.1f} dB'}" for k, v in gains.items() if v != 0.0) or "custom")


def _mix(stems: list[StemShare], gains_db: dict[str, float | None]) -> np.ndarray:
    out = np.zeros(stems[0].audio.shape, dtype=np.float64)
    for s in stems:
        g = gains_db.get(s.name, 0.0)
        if g is None:
            continue
        out += s.audio * (10.0 ** (g / 20.0)) if g != 0.0 else s.audio
    return out


def _safety(audio: np.ndarray, sample_rate: int, settings: MasterSettings) -> tuple[np.ndarray, float]:
    """The bus limiter at the ceiling, acting only where the version exceeds it."""
    limiter = replace(settings.true_peak_limiter, ceiling_dbtp=settings.bus.ceiling_dbtp)
    out, gain, _ = limiter.limit(audio, sample_rate)
    reduction = float(-20.0 * math.log10(gain.min())) if gain.size and gain.min() > 0 else 0.0
    return out, max(0.0, reduction)


def render_version(version: Version, stems: list[StemShare], sample_rate: int, settings: MasterSettings,
                   main: MasterResult) -> VersionAudio:
    """``version`` with the main master's bus state (see the module doc)."""
    if main.bus_gain is None:
        raise SettingsError("the main master's gain curve is needed for versions (master_bus returns it)")
    x = bus_linear(_mix(stems, version.gains_db), sample_rate, settings, main.staging_gain_db)
    if version.gentle:
        x *= float(np.mean(main.bus_gain))  # the main's average bus gain, without its motion
    else:
        x *= main.bus_gain
    audio, reduction = _safety(x, sample_rate, settings)
    return VersionAudio(version.name, audio, reduction, version.description, dict(version.gains_db))


def stem_masters(stems: list[StemShare], sample_rate: int, settings: MasterSettings,
                 main: MasterResult) -> dict[str, np.ndarray]:
    """Each stem's share of the main master: they sum to ``main.audio`` (float64 precision)."""
    if main.bus_gain is None:
        raise SettingsError("the main master's gain curve is needed for stem masters (master_bus returns it)")
    return {s.name: bus_linear(s.audio, sample_rate, settings, main.staging_gain_db) * main.bus_gain
            for s in stems}


def version_summary(v: VersionAudio, sample_rate: int) -> dict[str, Any]:
    from stemmaster.meters.loudness import gated_loudness_lufs
    from stemmaster.meters.truepeak import true_peak_dbtp

    return {"version": v.name, "description": v.description, "integrated_lufs": gated_loudness_lufs(v.audio, sample_rate),
            "true_peak_dbtp": true_peak_dbtp(v.audio, sample_rate), "safety_limiter_db": v.safety_reduction_db,
            "stems_db": v.stems}
