"""What the screens show and the jobs they run, with no Textual in it.

Everything here calls stemmaster's and separation's public functions, the same
ones ``stemmaster.cli`` calls for each job, so the terminal UI and the command
line do the same work and print the same one-line errors (``str`` of a
``StemmasterError``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stemmaster.errors import ProjectError, SettingsError, StemmasterError
from stemmaster.project import Project, RenderRecord
from stemmaster.workspace import Workspace

Progress = Callable[[float, str], None]
CancelCheck = Callable[[], bool]

NONE = "-"


# ------------------------------------------------------------------ formatting

def fmt(value: Any, digits: int = 1, unit: str = "") -> str:
    """A number with ``digits`` decimals (and a unit), ``-`` for None, NaN or infinity."""
    if value is None or isinstance(value, bool):
        return NONE
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(value):
        return NONE
    return f"{value:.{digits}f}{(' ' + unit) if unit else ''}"


def fmt_setting(value: Any) -> str:
    """A chain setting as the text one would type to set it again."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_setting(v) for v in value)
    return str(value)


# ------------------------------------------------------------------ reports

def render_folder(ws: Workspace, project: Project, record: RenderRecord) -> Path:
    """The absolute folder of a recorded render."""
    return (ws.project_dir(project.name) / record.folder).absolute()


def read_report(ws: Workspace, project: Project, record: RenderRecord) -> dict[str, Any]:
    """``report.json`` of a render; ProjectError with one line when it is missing or unreadable."""
    path = render_folder(ws, project, record) / "report.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectError(f"{path}: cannot read the report ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: not a stemmaster report")
    return data


def verdict(report: dict[str, Any] | None) -> str:
    """``report["diagnosis"]["verdict"]`` when the report has one, else ``-``."""
    diagnosis = (report or {}).get("diagnosis")
    if isinstance(diagnosis, dict) and diagnosis.get("verdict") not in (None, ""):
        return str(diagnosis["verdict"])
    return NONE


def findings(report: dict[str, Any]) -> list[str]:
    """The diagnosis' findings, most severe first, one line each:
    ``[severity] stem: message (measured vs threshold unit)``."""
    diagnosis = report.get("diagnosis")
    if not isinstance(diagnosis, dict):
        return []
    items = diagnosis.get("findings") or []
    if not isinstance(items, list):
        items = [items]
    order = {"fix_mix": 0, "major": 1, "minor": 2, "info": 3}  # stemmaster.diagnosis.findings.SEVERITIES
    labels = {"fix_mix": "fix the mix"}
    items = sorted(items, key=lambda f: order.get(str(f.get("severity")).lower(), 9) if isinstance(f, dict) else 9)
    out = []
    for item in items:
        if not isinstance(item, dict):
            out.append(str(item))
            continue
        parts = []
        if item.get("severity"):
            parts.append(f"[{labels.get(item['severity'], item['severity'])}]")
        if item.get("stem"):
            parts.append(f"{item['stem']}:")
        parts.append(str(item.get("message") or item.get("summary") or item.get("kind") or item.get("id") or ""))
        if item.get("measured") is not None:
            unit = item.get("unit") or ""
            evidence = fmt(item.get("measured"), 1, unit)
            if item.get("threshold") is not None:
                evidence += f" vs {fmt(item.get('threshold'), 1, unit)}"
            parts.append(f"({evidence})")
        out.append(" ".join(p for p in parts if p))
    return out


def verdict_reasons(report: dict[str, Any]) -> list[str]:
    diagnosis = report.get("diagnosis")
    if not isinstance(diagnosis, dict):
        return []
    return [" ".join(str(r).split()) for r in diagnosis.get("reasons") or [] if r]


def checks_line(report: dict[str, Any]) -> str | None:
    """The release checks in one line (None when the report has no ``checks``)."""
    checks = report.get("checks")
    if not isinstance(checks, dict) or not checks:
        return None
    status = checks.get("status", "n/a")
    if status != "done":
        return f"release checks: {status} ({checks.get('reason') or 'no reason given'})"
    parts = []
    for c in checks.get("codec") or []:
        if isinstance(c, dict) and c.get("available"):
            parts.append(f"{str(c.get('codec')).upper()} {fmt(c.get('decoded_true_peak_dbtp'), 2, 'dBTP')}"
                         f"{' OVERS' if c.get('overs') else ''}")
    warnings = sum(len(t.get("warnings") or []) for t in checks.get("translation") or [] if isinstance(t, dict))
    parts.append(f"{warnings} translation warning{'' if warnings == 1 else 's'}")
    return "release checks: " + "; ".join(parts)


_CURVE_KEYS = ("short_term_lufs", "short_term_curve", "short_term", "short_term_loudness")


def _numbers(value: Any) -> list[float] | None:
    if isinstance(value, dict):
        for key in ("lufs", "values", "loudness", "level", "y"):
            if key in value:
                return _numbers(value[key])
        return None
    if isinstance(value, list) and len(value) >= 2 and all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value):
        return [float(v) if v is not None else float("nan") for v in value]
    return None


def short_term_curve(report: dict[str, Any]) -> list[float] | None:
    """The master's short-term loudness (LUFS, once a second) if the report carries it, else None;
    silence (``None`` in the report) is NaN here.

    ``report["checks"]["short_term"]["lufs"]`` (the release checks') first; reports without it
    are also looked at under the top level, ``master``, ``curves`` and ``plots``.
    """
    checks = report.get("checks")
    if isinstance(checks, dict) and isinstance(checks.get("short_term"), dict):
        values = _numbers(checks["short_term"].get("lufs"))
        if values:
            return values
    places = [report, report.get("master"), report.get("curves"), report.get("plots")]
    for place in places:
        if not isinstance(place, dict):
            continue
        for key in _CURVE_KEYS:
            if key in place:
                values = _numbers(place[key])
                if values:
                    return values
    return None


def sparkline_data(curve: list[float], floor: float = -60.0) -> list[float]:
    """The curve for a sparkline: LU above ``floor`` (louder is higher); silence (None, NaN,
    -inf) is drawn at the curve's minimum, so the music's own range fills the sparkline."""
    finite = [v for v in curve if v is not None and math.isfinite(v)]
    if not finite:
        return [0.0 for _ in curve]
    low = min(finite)
    return [max(v if v is not None and math.isfinite(v) else low, floor) - floor for v in curve]


def curve_span(curve: list[float]) -> str:
    """``-20.1 to -12.0 LUFS`` (the finite values' range), ``silent`` when there is none."""
    finite = [v for v in curve if v is not None and math.isfinite(v)]
    return f"{min(finite):.1f} to {max(finite):.1f} LUFS" if finite else "silent"


def _done_checks(report: dict[str, Any]) -> dict[str, Any] | None:
    """The report's release checks when they ran to the end, else None."""
    checks = report.get("checks")
    return checks if isinstance(checks, dict) and checks.get("status") == "done" else None


def _check_entries(report: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The entries (dicts) of one release check (``"translation"``, ``"codec"``) when the checks
    ran to the end, else none."""
    checks = _done_checks(report)
    if checks is None:
        return []
    return [entry for entry in checks.get(key) or [] if isinstance(entry, dict)]


def translation_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The translation checks: (check, loudness LUFS, change LU, warnings) per playback model."""
    rows = []
    for t in _check_entries(report, "translation"):
        change = t.get("loudness_change_lu")
        warnings = [" ".join(str(w).split()) for w in t.get("warnings") or [] if w]
        rows.append((str(t.get("name") or NONE), fmt(t.get("loudness_lufs")),
                     NONE if fmt(change) == NONE else f"{float(change):+.1f}",
                     "; ".join(warnings) if warnings else "ok"))
    return rows


def codec_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The codec round trips: (codec and bitrate, decoded true peak dBTP, overs, recommended ceiling dBTP)."""
    rows = []
    for c in _check_entries(report, "codec"):
        name = f"{str(c.get('codec') or '?').upper()} {c.get('bitrate_kbps') or ''}k".strip()
        if not c.get("available"):
            rows.append((name, NONE, "not run", " ".join(str(c.get("note") or "unavailable").split())))
            continue
        if c.get("overs"):
            peaks, glitches = c.get("peak_overs") or 0, c.get("glitch_overs") or 0
            overs = f"yes ({peaks} peak, {glitches} glitch)"
        else:
            overs = "no"
        rec = c.get("recommended_ceiling_dbtp")
        rows.append((name, fmt(c.get("decoded_true_peak_dbtp"), 2), overs,
                     fmt(rec, 1) if rec is not None else f"{fmt(c.get('ceiling_dbtp'), 1)} (keep)"))
    return rows


def output_files(ws: Workspace, project: Project, record: RenderRecord, report: dict[str, Any]) -> list[Path]:
    """The absolute path of every file the render wrote (as its report lists them)."""
    folder = render_folder(ws, project, record)
    paths = []
    for entry in report.get("files") or []:
        rel = entry.get("path") if isinstance(entry, dict) else entry
        if isinstance(rel, str) and rel:
            paths.append(folder / rel)
    return paths or sorted(p for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------ projects list

@dataclass
class ProjectRow:
    """One line of the projects table."""

    name: str  # the folder name
    project: Project | None
    error: str = ""  # why the project did not load
    source: str = NONE
    state: str = NONE
    lufs: str = NONE
    peak: str = NONE
    verdict: str = NONE

    def cells(self) -> tuple[str, ...]:
        return (self.name, self.source, self.state, self.lufs, self.peak, self.verdict)


def project_state(project: Project) -> str:
    """``mastered`` once rendered, ``separated`` for a render project with stems, else ``new``."""
    if project.renders:
        return "mastered"
    if project.source_kind == "render" and project.separation is not None and project.stems:
        return "separated"
    return "new"


def project_rows(ws: Workspace) -> list[ProjectRow]:
    """Every project folder of the workspace, as ``stemmaster list`` sees them."""
    rows = []
    for name, project in ws.list_entries():
        if not isinstance(project, Project):
            rows.append(ProjectRow(name, None, error=str(project), state="unreadable"))
            continue
        row = ProjectRow(name, project, source=project.source_kind, state=project_state(project))
        if project.renders:
            last = project.renders[-1]
            row.lufs, row.peak = fmt(last.integrated_lufs), fmt(last.true_peak_dbtp, 2)
            try:
                row.verdict = verdict(read_report(ws, project, last))
            except StemmasterError:
                row.verdict = NONE
        rows.append(row)
    return rows


def input_kind(path: Path) -> str:
    """``stems`` for a folder, ``render`` for anything else (the import says what is wrong with it)."""
    return "stems" if path.is_dir() else "render"


def create_project(ws: Workspace, name: str, path_text: str, progress: Progress | None = None) -> Project:
    """``stemmaster new NAME --stems DIR`` for a folder, ``--render FILE`` otherwise."""
    text = path_text.strip()
    if not text:
        raise ProjectError("give the path of a render file or of a folder of stems")
    path = Path(text).expanduser()
    if input_kind(path) == "stems":
        return ws.create_from_stems(name, path, progress=progress)
    return ws.create_from_render(name, path, progress=progress)


def delete_project(ws: Workspace, name: str) -> Path:
    """``stemmaster delete NAME --yes``: the workspace removes the project's folder; returns where it was."""
    folder = ws.project_dir(name)
    ws.delete(name)
    return folder


def rename_project(ws: Workspace, old: str, new: str) -> Project:
    """``stemmaster rename OLD NEW`` (the workspace checks the new name and that it is free)."""
    return ws.rename(old, new)


# ------------------------------------------------------------------ stems and chains

@dataclass
class SettingRow:
    key: str  # "deesser.max_reduction_db"
    kind: str
    setting: str
    value: str


def stem_levels(ws: Workspace, project: Project) -> dict[str, float]:
    """Each stem's integrated loudness in the latest render's report (empty before any render)."""
    if not project.renders:
        return {}
    try:
        report = read_report(ws, project, project.renders[-1])
    except StemmasterError:
        return {}
    return {row["name"]: row.get("integrated_lufs") for row in report.get("stems") or []
            if isinstance(row, dict) and "name" in row}


def stem_state(stem) -> str:
    return "muted" if stem.mute else ("solo" if stem.solo else "on")


def chain_rows(stem) -> list[SettingRow]:
    """A stem's repair chain, one row per setting (``enabled`` first), in processing order."""
    rows = []
    for kind, entry in stem.chain.items():
        rows.append(SettingRow(f"{kind}.enabled", kind, "enabled", fmt_setting(entry.get("enabled", True))))
        for name, value in entry.items():
            if name != "enabled":
                rows.append(SettingRow(f"{kind}.{name}", kind, name, fmt_setting(value)))
    return rows


def set_chain_value(ws: Workspace, project: Project, stem_name: str, key: str, text: str) -> Any:
    """``stemmaster repair NAME --stem S --set KEY=TEXT``: validate, then save; returns the value set."""
    from stemmaster import repair

    stem = project.stem(stem_name)
    chain = repair.set_value(stem.chain, key, text)
    repair.build_chain(chain, stem=stem.name)  # every setting valid before anything is saved
    old = stem.chain
    stem.chain = chain
    try:
        ws.save(project)
    except BaseException:
        stem.chain = old
        raise
    kind, name = key.split(".", 1)
    return chain[kind][name]


# ------------------------------------------------------------------ a stem's own settings

STEM_FIELDS = ("gain_db", "mute", "solo", "role")
STEM_KIND = "stem"  # the kind of the stem's own rows in the settings table ("stem.gain_db", ...)
GAIN_RANGE_DB = (-60.0, 24.0)  # as ``stemmaster repair --gain-db``


def stem_rows(stem) -> list[SettingRow]:
    """The stem's own settings (level into the mix, mute, solo, role) as rows before its chain."""
    values = {"gain_db": f"{stem.gain_db:g}", "mute": fmt_setting(bool(stem.mute)),
              "solo": fmt_setting(bool(stem.solo)), "role": stem.role}
    return [SettingRow(f"{STEM_KIND}.{name}", STEM_KIND, name, values[name]) for name in STEM_FIELDS]


def _parse_bool(owner: str, name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "on", "yes", "1"):
        return True
    if lowered in ("false", "off", "no", "0"):
        return False
    raise SettingsError(f"{owner}.{name} = {text!r}: expected true or false")


def _parse_number(owner: str, name: str, text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise SettingsError(f"{owner}.{name} = {text!r}: expected a number") from None


def set_stem_value(ws: Workspace, project: Project, stem_name: str, name: str, text: str) -> Any:
    """``stemmaster repair NAME --stem S --gain-db X / --mute / --solo / --role R``: validate, then save.

    A role change keeps the stem's chain, as the CLI's ``--role`` does (``--reset`` is separate).
    """
    from stemmaster.dsp.processor import check_range
    from stemmaster.roles import validate_role

    stem = project.stem(stem_name)
    if name == "gain_db":
        value: Any = _parse_number(stem.name, name, text)
        check_range(stem.name, "gain_db", value, *GAIN_RANGE_DB)
    elif name in ("mute", "solo"):
        value = _parse_bool(stem.name, name, text)
    elif name == "role":
        value = validate_role(text)
    else:
        raise SettingsError(f"a stem has no setting {name!r} (known: {', '.join(STEM_FIELDS)})")
    old = getattr(stem, name)
    setattr(stem, name, value)
    try:
        ws.save(project)
    except BaseException:
        setattr(stem, name, old)
        raise
    return value


def set_setting(ws: Workspace, project: Project, stem_name: str, key: str, text: str) -> Any:
    """A row of the settings table: the stem's own (``stem.gain_db``...) or a chain setting."""
    kind, name = key.split(".", 1)
    if kind == STEM_KIND:
        return set_stem_value(ws, project, stem_name, name, text)
    return set_chain_value(ws, project, stem_name, key, text)


# ------------------------------------------------------------------ the bus master's settings

@dataclass
class MasterRow:
    key: str  # "profile", "target_lufs", "ceiling_dbtp"
    label: str
    value: str


def master_settings(project: Project):
    """The project's recorded bus master settings (``MasterSettings``; defaults where nothing is recorded)."""
    from stemmaster.master import MasterSettings

    return MasterSettings.from_dict(project.master)


def master_rows(project: Project) -> list[MasterRow]:
    """Profile, target and ceiling of the project's master (SettingsError if project.toml's are bad)."""
    return [MasterRow("profile", "profile", profile_label(project)),
            MasterRow("target_lufs", "target LUFS", f"{master_settings(project).bus.target_lufs:g}"),
            MasterRow("ceiling_dbtp", "ceiling dBTP", f"{master_settings(project).bus.ceiling_dbtp:g}")]


def profile_label(project: Project) -> str:
    """The bus's profile, ``custom`` when there is none (a target or ceiling of one's own) or when
    the recorded target and ceiling are not the profile's (a hand-edited project.toml)."""
    from stemmaster.profiles import PROFILES

    bus = master_settings(project).bus
    p = PROFILES.get(bus.profile or "")
    if p is None or (p.target_lufs, p.ceiling_dbtp) != (bus.target_lufs, bus.ceiling_dbtp):
        return "custom"
    return p.name


def profile_choices() -> list[tuple[str, str]]:
    """Every release profile: (name, ``name  -14 LUFS  -1 dBTP  description``, one line of 70 characters)."""
    from stemmaster.profiles import PROFILES

    def short(text: str, width: int = 34) -> str:
        return text if len(text) <= width else text[:width - 3].rstrip() + "..."

    return [(p.name, f"{p.name:<10} {p.target_lufs:>4g} LUFS {p.ceiling_dbtp:>4g} dBTP  {short(p.description)}")
            for p in PROFILES.values()]


def _save_master(ws: Workspace, project: Project, settings) -> None:
    old = project.master
    project.master = settings.to_dict()
    try:
        ws.save(project)
    except BaseException:
        project.master = old
        raise


def set_master_value(ws: Workspace, project: Project, key: str, text: str):
    """Set the profile (its target and ceiling with it), or the target or ceiling alone (then the
    master no longer follows a profile, as ``stemmaster master --target-lufs`` says); validated
    by ``MasterSettings`` before anything is saved. Returns the new settings."""
    settings = master_settings(project)
    if key == "profile":
        settings = settings.with_profile(text)
    elif key in ("target_lufs", "ceiling_dbtp"):
        settings = settings.with_bus(profile=None, **{key: _parse_number("bus", key, text)})
    else:
        raise SettingsError(f"the bus has no setting {key!r} (known: profile, target_lufs, ceiling_dbtp)")
    _save_master(ws, project, settings)
    return settings


# ------------------------------------------------------------------ diagnosis

class NotApplied(StemmasterError):
    """A finding whose repair is not applied (a mix decision, or no repair of ours reaches it)."""


SEVERITY_LABELS = {"fix_mix": "fix mix", "major": "major", "minor": "minor", "info": "info"}


def diagnose(ws: Workspace, project: Project, *, fresh: bool = False):
    """``stemmaster diagnose NAME``: the project's diagnosis (cached in diagnosis.json unless ``fresh``)."""
    from stemmaster import judge

    if not project.stems:
        raise ProjectError(f"project {project.name!r} has no stems yet: separate it first (s)")
    return judge.diagnose_project(project, ws.project_dir(project.name), use_cache=not fresh)


def cached_diagnosis(ws: Workspace, project: Project):
    """The diagnosis stored in diagnosis.json if it is still that of the project's stems, else None."""
    from stemmaster import judge

    if not project.stems:
        return None
    return judge.cached_diagnosis(project, ws.project_dir(project.name))


def repair_text(finding) -> str:
    """The recommended repair in ``stemmaster repair`` terms: ``bass low_end_mono crossover_hz=150``."""
    rep = finding.repair
    if not rep:
        return NONE
    settings = ", ".join(f"{k}={fmt_setting(v)}" for k, v in rep["settings"].items())
    return f"{rep['stem']} {rep['processor']} {settings}"


def _one(diagnosis, finding):
    from stemmaster.diagnosis import Diagnosis

    return Diagnosis(diagnosis.verdict, diagnosis.reasons, (finding,), diagnosis.source, diagnosis.measurements)


def _auto_one(project: Project, diagnosis, finding):
    from stemmaster.diagnosis.auto import auto_chains

    return auto_chains(_one(diagnosis, finding), {s.name: s.chain for s in project.stems}, project.master)


def finding_state(project: Project, diagnosis, finding) -> str:
    """``mix decision``, ``no repair``, ``applied`` (the chains already hold it) or ``to apply``."""
    if finding.repair is not None and not finding.auto:
        return "mix decision"
    result = _auto_one(project, diagnosis, finding)
    if not result.applied:
        return "no repair"
    same = all(result.chains[s.name] == s.chain for s in project.stems)
    from stemmaster.master import MasterSettings

    try:
        same = same and MasterSettings.from_dict(result.master) == MasterSettings.from_dict(project.master)
    except StemmasterError:
        same = False
    return "applied" if same else "to apply"


@dataclass
class FindingRow:
    severity: str
    stem: str
    message: str
    repair: str
    state: str

    def cells(self) -> tuple[str, ...]:
        return (self.severity, self.stem, self.state, self.repair, self.message)


def finding_rows(project: Project, diagnosis) -> list[FindingRow]:
    """The diagnosis' findings (worst first, as the diagnosis orders them), one row each."""
    return [FindingRow(SEVERITY_LABELS.get(f.severity, f.severity), f.stem, " ".join(f.message.split()),
                       repair_text(f), finding_state(project, diagnosis, f)) for f in diagnosis.findings]


def _store(ws: Workspace, project: Project, result) -> None:
    old = ({s.name: s.chain for s in project.stems}, project.master)
    for stem in project.stems:
        stem.chain = result.chains[stem.name]
    project.master = result.master
    try:
        ws.save(project)
    except BaseException:
        for stem in project.stems:
            stem.chain = old[0][stem.name]
        project.master = old[1]
        raise


def apply_finding(ws: Workspace, project: Project, diagnosis, index: int):
    """What ``master --auto`` does for this one finding, recorded in project.toml; the AutoResult.

    NotApplied (one line saying why) for a mix decision or a finding no repair of ours reaches."""
    finding = diagnosis.findings[index]
    if finding.repair is not None and not finding.auto:
        raise NotApplied(f"{finding.stem}/{finding.id} is a mix decision, left to you: not applied "
                         f"(recommended: {repair_text(finding)})")
    result = _auto_one(project, diagnosis, finding)
    if not result.applied:
        why = result.skipped[0] if result.skipped else f"{finding.stem}/{finding.id}: nothing to apply"
        raise NotApplied(f"{why}: not applied")
    _store(ws, project, result)
    return result


def apply_all(ws: Workspace, project: Project, diagnosis):
    """``master --auto``'s repairs (``judge.apply_auto``), recorded in project.toml; the AutoResult."""
    from stemmaster import judge

    old = ({s.name: s.chain for s in project.stems}, project.master)
    result = judge.apply_auto(project, diagnosis)
    try:
        ws.save(project)
    except BaseException:
        for stem in project.stems:
            stem.chain = old[0][stem.name]
        project.master = old[1]
        raise
    return result


# ------------------------------------------------------------------ progress

ETA_AFTER = 0.05  # no estimate before the job is 5 % done


def eta_text(elapsed_s: float, fraction: float) -> str:
    """``ETA 1:05`` from the time so far and the fraction done (once over 5 %), else ``""``."""
    if not (math.isfinite(elapsed_s) and math.isfinite(fraction)) or fraction <= ETA_AFTER or elapsed_s < 0:
        return ""
    left = max(0.0, elapsed_s * (1.0 - min(fraction, 1.0)) / fraction)
    minutes, seconds = divmod(int(round(left)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"ETA {hours}:{minutes:02d}:{seconds:02d}" if hours else f"ETA {minutes}:{seconds:02d}"


# ------------------------------------------------------------------ jobs

def _sub(progress: Progress, lo: float, hi: float) -> Progress:
    return lambda f, m: progress(lo + (hi - lo) * max(0.0, min(1.0, f)), m)


def separation_options(project: Project):
    """The options the project was last separated with, else the defaults (as ``stemmaster master``)."""
    from stemmaster.separate import SeparationOptions

    if project.separation is not None:
        return SeparationOptions.from_record(project.separation)
    return SeparationOptions()


def needs_separation(ws: Workspace, project: Project) -> bool:
    from stemmaster.separate import needs_separation as needs

    return needs(project, ws.project_dir(project.name))


def separate_job(ws: Workspace, project: Project, progress: Progress, cancel: CancelCheck) -> bool:
    """``stemmaster separate NAME``: True when it separated, False when the stems were current."""
    from stemmaster.separate import separate_project

    return separate_project(project, ws.project_dir(project.name), separation_options(project),
                            save=ws.save, progress=progress, cancel=cancel)


@dataclass
class MasterDone:
    render_id: str
    folder: Path
    separated: bool = False
    report: dict[str, Any] = field(default_factory=dict)


def master_job(ws: Workspace, project: Project, progress: Progress, cancel: CancelCheck, *,
               auto: bool = False) -> MasterDone:
    """``stemmaster master NAME``: separate a render project first if it needs it, diagnose the
    stems, render, and record the diagnosis in the render's report."""
    from stemmaster import judge

    folder = ws.project_dir(project.name)
    separated = False
    render_progress = progress
    if needs_separation(ws, project):
        separate_job(ws, project, _sub(progress, 0.0, 0.6), cancel)
        separated = True
        render_progress = _sub(progress, 0.6, 1.0)
    if not project.stems:
        raise StemmasterError(f"project {project.name!r} has no stems")
    render_id = ws.next_render_id(project)
    judged = judge.master_project(project, folder, render_id, save=ws.save, progress=render_progress, cancel=cancel,
                                  auto=auto)
    outcome = judged.outcome
    return MasterDone(render_id=render_id, folder=outcome.folder, separated=separated, report=outcome.report)


def export_job(ws: Workspace, project: Project, progress: Progress, cancel: CancelCheck, *,
               versions: list[str], formats: list[str], out_rate: int | None = None):
    """``stemmaster export NAME --versions ... --formats ... [--rate R]`` of the latest render."""
    from stemmaster.deliver.export import export_render

    return export_render(project, ws.project_dir(project.name), versions=versions, formats=formats,
                         out_rate=out_rate, progress=progress, cancel=cancel)


def parse_export_request(versions: str, formats: str, rate: str) -> dict[str, Any]:
    """The export dialog's three fields, checked: lists of names and an optional rate (44100/48000)."""
    from stemmaster.deliver.formats import FORMATS

    vs = [v.strip() for v in versions.split(",") if v.strip()]
    fs = [f.strip() for f in formats.split(",") if f.strip()]
    if not vs:
        raise StemmasterError("name at least one version (main, instrumental, acapella, tv, performance)")
    unknown = [f for f in fs if f not in FORMATS]
    if unknown or not fs:
        raise StemmasterError(f"unknown format(s) {', '.join(unknown) or '(none given)'} (known: {', '.join(FORMATS)})")
    out_rate = None
    if rate.strip():
        try:
            out_rate = int(rate.strip())
        except ValueError:
            out_rate = -1
        if out_rate not in (44100, 48000):
            raise StemmasterError(f"export rate {rate.strip()!r}: allowed 44100 or 48000 (empty: the render's)")
    return {"versions": vs, "formats": fs, "out_rate": out_rate}


def complete_path(text: str, *, limit: int = 200) -> str | None:
    """The first completion of a typed path (a file or folder whose name starts with what follows
    the last '/'), folders ending in '/'; hidden entries only when the typed part starts with '.';
    ``~`` expanded. None when nothing matches or the folder cannot be listed."""
    import os

    if not text:
        return None
    expanded = os.path.expanduser(text)
    folder, _, prefix = expanded.rpartition(os.sep)
    base = folder if folder or expanded.startswith(os.sep) else "."
    base = base or os.sep
    try:
        with os.scandir(base) as entries:
            names = sorted((e.name + (os.sep if e.is_dir() else "")) for _, e in zip(range(limit), entries)
                           if e.name.startswith(prefix) and (prefix.startswith(".") or not e.name.startswith(".")))
    except OSError:
        return None
    if not names:
        return None
    done = (folder + os.sep if folder or expanded.startswith(os.sep) else "") + names[0]
    # keep what the user typed before the completion ("~/" stays "~/")
    return text + done[len(expanded):] if done.startswith(expanded) else None


_SPECTRA: dict[tuple[str, int, int], list[float]] = {}


def stem_spectrum(ws: Workspace, project: Project, stem_name: str, *, bands: int = 30) -> tuple[list[float], str]:
    """The working stem's long-term tonal balance, 1/3-octave from 20 Hz up, as ``bands`` values in
    dB (for a sparkline), and a one-line caption (its loudest band). Cached per file and
    modification time, so moving the cursor over the stems reads each file once."""
    from stemmaster.audio_source import FileSource
    from stemmaster.checks.plots import tonal_balance

    stem = next(s for s in project.stems if s.name == stem_name)
    path = ws.project_dir(project.name) / stem.path
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SPECTRA:
        source = FileSource(path)  # read a block at a time: a long stem is never held whole
        freqs, level = tonal_balance(source, source.sample_rate)
        idx = [int(round(i)) for i in __import__("numpy").linspace(0, len(freqs) - 1, bands)]
        _SPECTRA[key] = [float(freqs[i]) for i in idx] + [float(level[i]) for i in idx]
    values = _SPECTRA[key]
    freqs, level = values[:bands], values[bands:]
    top = max(range(bands), key=lambda i: level[i])
    floor = max(level) - 60.0
    shown = [max(v, floor) - floor for v in level]
    return shown, f"spectrum of {stem_name}, 20 Hz-20 kHz (1/3 octave; loudest near {freqs[top]:.0f} Hz)"


def auto_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """What ``--auto`` changed (report["auto"]["compare"]): stem, finding, before, after, state."""
    auto = report.get("auto")
    if not isinstance(auto, dict):
        return []
    rows = []
    for r in auto.get("compare") or []:
        unit = r.get("unit") or ""
        before = "-" if r.get("before") is None else f"{r['before']:.1f} {unit}".strip()
        after = "-" if r.get("after") is None else f"{r['after']:.1f} {unit}".strip()
        state = ("new" if r.get("new") else "resolved" if r.get("resolved")
                 else "improved" if r.get("improved") else "not improved")
        rows.append((str(r.get("stem", "")), str(r.get("id", "")), before, after, state))
    return rows

