"""Per-stem repair: which processors exist, the defaults per role (in one place),
and the stem chain as it is recorded in ``project.toml``.

A stem's chain is an ordered table ``{kind: {"enabled": bool, setting: value, ...}}``;
its order is the processing order. Every setting is recorded, so a render can
be reproduced and a setting changed with ``stemmaster repair``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stemmaster.dsp.chain import Chain
from stemmaster.dsp.deesser import DeEsser
from stemmaster.dsp.deharsher import DeHarsher
from stemmaster.dsp.gain import Gain
from stemmaster.dsp.highpass import HighPass
from stemmaster.dsp.low_end_mono import LowEndMono
from stemmaster.dsp.processor import Processor
from stemmaster.dsp.transient_shaper import TransientShaper
from stemmaster.dsp.width import StereoWidth
from stemmaster.errors import SettingsError

PROCESSORS: dict[str, type[Processor]] = {
    cls.kind: cls
    for cls in (HighPass, Gain, DeHarsher, DeEsser, LowEndMono, TransientShaper, StereoWidth)
}

# The repair each role gets by default, in processing order, with the settings
# that differ from the processor's own defaults. Reasons:
# - vocals: a 70 Hz high-pass takes rumble and plosive thumps no voice needs;
#   resonances are tamed before the de-esser so it judges the cleaned top.
# - drums: the low end is folded to mono (kick and floor tom belong in the
#   centre); +3 dB of attack restores some of the punch a render's limiter took.
# - bass: mono below 120 Hz; a wide low end cancels on mono systems and cuts.
# - other: a gentler de-harsher (pads, guitars and synths carry the resonances
#   of AI renders, but less than voices).
ROLE_DEFAULTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "vocals": [("highpass", {"highpass_hz": 70.0}), ("deharsher", {}), ("deesser", {})],
    "drums": [("low_end_mono", {"crossover_hz": 120.0}), ("transient_shaper", {"attack_db": 3.0})],
    "bass": [("low_end_mono", {"crossover_hz": 120.0})],
    "other": [("deharsher", {"depth_db": 4.0})],
}


def processor_class(kind: str) -> type[Processor]:
    if kind not in PROCESSORS:
        raise SettingsError(f"unknown processor {kind!r} (known: {', '.join(PROCESSORS)})")
    return PROCESSORS[kind]


def full_settings(kind: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every setting of ``kind``: its defaults updated with ``values`` (validated)."""
    return processor_class(kind).from_settings(dict(values or {})).settings()


def default_chain(role: str) -> dict[str, dict[str, Any]]:
    """The recorded chain a stem of ``role`` starts with (every setting written out)."""
    return {kind: {"enabled": True, **full_settings(kind, values)} for kind, values in ROLE_DEFAULTS.get(role, [])}


def build_chain(chain: dict[str, dict[str, Any]], *, stem: str = "") -> Chain:
    """The processors of a recorded chain, enabled ones only, in order; SettingsError names the stem."""
    processors = []
    for kind, entry in chain.items():
        values = dict(entry)
        enabled = values.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise SettingsError(f"stem {stem!r}: {kind}.enabled = {enabled!r} (allowed: true, false)")
        try:
            processor = processor_class(kind).from_settings(values)
        except SettingsError as exc:
            raise SettingsError(f"stem {stem!r}: {exc}") from None
        if enabled:
            processors.append(processor)
    return Chain(tuple(processors))


def _coerce(kind: str, name: str, text: str) -> Any:
    cls = processor_class(kind)
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    if name == "enabled":
        t = "bool"
    elif name not in types:
        raise SettingsError(f"{kind} has no setting {name!r} (known: enabled, {', '.join(types)})")
    else:
        t = str(types[name])
    lowered = text.strip().lower()
    if t == "bool":
        if lowered in ("true", "on", "yes", "1"):
            return True
        if lowered in ("false", "off", "no", "0"):
            return False
        raise SettingsError(f"{kind}.{name} = {text!r}: expected true or false")
    try:
        return int(text) if t == "int" else float(text)
    except ValueError:
        raise SettingsError(f"{kind}.{name} = {text!r}: expected a number") from None


def set_value(chain: dict[str, dict[str, Any]], key: str, text: str) -> dict[str, dict[str, Any]]:
    """A copy of ``chain`` with ``KIND.SETTING`` set from ``text``, validated.

    A processor not yet in the chain is appended (enabled) with its defaults.
    """
    if "." not in key:
        raise SettingsError(f"{key!r}: expected KIND.SETTING, e.g. deesser.max_reduction_db")
    kind, name = key.split(".", 1)
    value = _coerce(kind, name, text)
    out = {k: dict(v) for k, v in chain.items()}
    entry = out.setdefault(kind, {"enabled": True, **full_settings(kind)})
    entry[name] = value
    settings = {k: v for k, v in entry.items() if k != "enabled"}
    out[kind] = {"enabled": entry.get("enabled", True), **full_settings(kind, settings)}
    return out


def reorder(chain: dict[str, dict[str, Any]], order: list[str]) -> dict[str, dict[str, Any]]:
    """``chain`` in the order given; every kind in the chain must be named exactly once."""
    if sorted(order) != sorted(chain):
        raise SettingsError(f"--order must name each processor of the chain once: {', '.join(chain)}")
    return {k: dict(chain[k]) for k in order}


def remove(chain: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    if kind not in chain:
        raise SettingsError(f"{kind!r} is not in the chain ({', '.join(chain) or 'empty'})")
    return {k: dict(v) for k, v in chain.items() if k != kind}
