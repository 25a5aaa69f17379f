"""What the screens show and the jobs they run, with no Textual in it.

Everything here calls stemmaster's and separation's public functions, the same
ones ``stemmaster.cli`` calls for each job, so the terminal UI and the command
line do the same work and print the same one-line errors (``str`` of a
``StemmasterError``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stemmaster.errors import ProjectError, StemmasterError
from stemmaster.project import PROJECT_FILE, Project, RenderRecord
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
    """The master's short-term loudness curve (LUFS) if the report carries one, else None.

    Looked for under the report's top level, ``master``, ``curves`` and ``plots``
    (a list of numbers, or a table with ``lufs``/``values``).
    """
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
    """The curve with silence (-inf, NaN, None) drawn at ``floor`` LUFS, relative to the floor."""
    return [max(v, floor) - floor if math.isfinite(v) else 0.0 for v in curve]


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
    """Remove project ``name``'s folder, only if it is a project folder directly inside the workspace.

    The workspace has no delete of its own (yet): the folder is first renamed to a
    hidden name (which listing ignores), so it disappears at once, then removed.
    """
    folder = ws.project_dir(name)  # ProjectError for a name that leaves the workspace
    root = ws.root.resolve()
    real = folder.resolve()
    if folder.is_symlink() or real.parent != root:
        raise ProjectError(f"{folder}: not a project folder of the workspace {ws.root}; not deleted")
    if not (real / PROJECT_FILE).is_file():
        raise ProjectError(f"{folder}: not a stemmaster project (no {PROJECT_FILE}); not deleted")
    hidden = root / f".deleting-{real.name}-{os.getpid()}"
    try:
        os.rename(real, hidden)
    except OSError as exc:
        raise ProjectError(f"cannot delete {folder}: {exc.strerror or exc}") from exc
    shutil.rmtree(hidden, ignore_errors=True)
    return folder


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


def master_job(ws: Workspace, project: Project, progress: Progress, cancel: CancelCheck) -> MasterDone:
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
    judged = judge.master_project(project, folder, render_id, save=ws.save, progress=render_progress, cancel=cancel)
    outcome = judged.outcome
    return MasterDone(render_id=render_id, folder=outcome.folder, separated=separated, report=outcome.report)
