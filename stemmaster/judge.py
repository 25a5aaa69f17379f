"""Diagnosis of projects, files and stem folders, and ``--auto``: the calls the CLI and the TUI share.

- ``diagnose_project``: a project's working stems (and, for a separated
  render, the render itself as the mix), cached in ``diagnosis.json`` in the
  project folder until a stem or its role changes.
- ``diagnose_path``: a stereo file (diagnosed as a mix) or a folder of stems
  (roles guessed from the file names), without a project.
- ``apply_auto``: the diagnosis' repairs written into the project's chains
  and bus settings, and saved.
- ``diagnose_render``: the repaired stems and master of a render, for the
  before/after comparison ``--auto`` reports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


from stemmaster.atomic import atomic_write_text
from stemmaster.audio_source import AudioSource, FileSource, ResampledSource, ResizedSource, StereoSource
from stemmaster.diagnosis import Diagnosis, diagnose
from stemmaster.diagnosis.auto import AutoResult, auto_chains
from stemmaster.diagnosis.findings import Finding
from stemmaster.errors import AudioError, ProjectError
from stemmaster.project import Project

CACHE_NAME = "diagnosis.json"
CACHE_SCHEMA = "stemmaster.diagnosis/1"


def _fingerprint(project: Project, project_dir: Path) -> str:
    """What the diagnosis depends on: each stem's name, role and file (size and modification time),
    and the source render's for a render project."""
    h = hashlib.sha256()
    files = [(s.name, s.role, s.path) for s in project.stems]
    if project.source_kind == "render" and project.sources:
        files.append(("source", "render", project.sources[0].path))
    for name, role, rel in files:
        st = (project_dir / rel).stat()
        h.update(f"{name}\0{role}\0{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def diagnosis_from_dict(data: dict[str, Any]) -> Diagnosis:
    """A ``Diagnosis`` back from its ``to_dict()`` (as stored in diagnosis.json or a report)."""
    def num(x):
        return float("nan") if x is None else float(x)

    findings = tuple(Finding(f["id"], f["stem"], f["severity"], num(f["measured"]), num(f["threshold"]), f["unit"],
                             f["message"], f["measure"], f.get("repair"), f.get("auto", True),
                             {k: num(v) for k, v in f.get("details", {}).items()}) for f in data["findings"])
    measurements = {s: {k: num(v) for k, v in m.items()} for s, m in data.get("measurements", {}).items()}
    return Diagnosis(data["verdict"], tuple(data["reasons"]), findings, data["source"], measurements)


def cached_diagnosis(project: Project, project_dir: Path) -> Diagnosis | None:
    """The stored diagnosis if it is still that of the project's current stems, else None."""
    path = project_dir / CACHE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != CACHE_SCHEMA or data.get("fingerprint") != _fingerprint(project, project_dir):
            return None
        return diagnosis_from_dict(data["diagnosis"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def diagnose_project(project: Project, project_dir: Path, *, use_cache: bool = True) -> Diagnosis:
    """Diagnose the project's working stems; for a separated render, the render is the mix."""
    from stemmaster.pipeline import load_stems
    from stemmaster.report import json_safe

    if use_cache:
        cached = cached_diagnosis(project, project_dir)
        if cached is not None:
            return cached
    stems = load_stems(project, project_dir)
    mix, source = None, "stems"
    if project.source_kind == "render" and project.sources:
        mix, source = render_source(project_dir / project.sources[0].path, project.sample_rate), "render"
    d = diagnose([(s.name, s.role, s.source(project.sample_rate)) for s in stems], project.sample_rate, mix=mix,
                 source=source)
    doc = {"schema": CACHE_SCHEMA, "fingerprint": _fingerprint(project, project_dir), "diagnosis": d.to_dict()}
    atomic_write_text(project_dir / CACHE_NAME, json.dumps(json_safe(doc), indent=1, allow_nan=False) + "\n")
    return d


def diagnose_path(path: Path) -> Diagnosis:
    """Diagnose a stereo file as a mix, or a folder of stems (roles from the file names)."""
    from stemmaster.roles import role_from_name
    from stemmaster.stem_import import scan_stems_dir, stem_name_from_file, unique_names

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file or folder")
    if path.is_file():
        mix = FileSource(path)
        return diagnose([], mix.sample_rate, mix=mix)
    files, _ = scan_stems_dir(path)
    if not files:
        raise AudioError(f"{path}: no audio files in the folder")
    sources = [FileSource(f) for f in files]
    rates = [s.sample_rate for s in sources]
    rate = max(set(rates), key=rates.count)
    sources = [StereoSource(s if s.sample_rate == rate else ResampledSource(s, rate)) for s in sources]
    n = max(s.frames for s in sources)
    names = unique_names([stem_name_from_file(f.name) for f in files])
    return diagnose([(name, role_from_name(f.name), ResizedSource(s, n)) for name, f, s in zip(names, files, sources)],
                    rate)


def apply_auto(project: Project, diagnosis: Diagnosis) -> AutoResult:
    """Write the diagnosis' repairs into ``project`` (chains and bus settings), in memory: the caller saves."""
    result = auto_chains(diagnosis, {s.name: s.chain for s in project.stems}, project.master)
    for stem in project.stems:
        stem.chain = result.chains[stem.name]
    project.master = result.master
    return result


def diagnose_render(stems: list[tuple[str, str]], render_folder: Path) -> Diagnosis:
    """The repaired stems (``stems/<name>.wav``, for each ``(name, role)``) of a render and its
    master (the deepest bit depth written) as the mix: the "after" of ``--auto``."""
    found = []
    for name, role in stems:
        path = render_folder / "stems" / f"{name}.wav"
        if path.is_file():
            found.append((name, role, StereoSource(FileSource(path))))
    masters = sorted(render_folder.glob("master_*bit.wav"), reverse=True)  # 24-bit before 16-bit
    if not masters:
        raise ProjectError(f"{render_folder}: no master file")
    mix = FileSource(masters[0])
    return diagnose(found, mix.sample_rate, mix=mix, source="stems")


def render_source(path: Path, sample_rate: int) -> AudioSource:
    """A render (the mix a project was separated from) as a stereo source at ``sample_rate``."""
    source: AudioSource = FileSource(path)
    if source.sample_rate != sample_rate:
        source = ResampledSource(source, sample_rate)
    return StereoSource(source)


def auto_report(result: AutoResult, before: Diagnosis, after: Diagnosis) -> dict[str, Any]:
    """What ``--auto`` applied and left, and each finding's measurement before and after (for the report)."""
    from stemmaster.diagnosis.auto import compare

    return {"applied": result.applied, "skipped": result.skipped, "compare": compare(before, after),
            "verdict_after": after.verdict}


def record_judgement(outcome, diagnosis: Diagnosis, auto: dict[str, Any] | None = None) -> None:
    """Put the source's diagnosis (and what ``--auto`` did and changed) into a landed render's report,
    rewriting ``report.json`` and ``report.md`` atomically."""
    from stemmaster.report import report_json, report_markdown

    outcome.report["diagnosis"] = diagnosis.to_dict()
    if auto is not None:
        outcome.report["auto"] = auto
    atomic_write_text(outcome.folder / "report.md", report_markdown(outcome.report))
    atomic_write_text(outcome.folder / "report.json", report_json(outcome.report))


def diagnosis_lines(d: Diagnosis) -> list[str]:
    """The diagnosis as plain lines for a terminal: the verdict, then each finding with its repair.

    The reasons are the deciding findings' own messages: listed under the verdict only when the
    mix must be fixed (as in report.md), otherwise the findings below say it once."""
    lines = [f"verdict: {d.verdict}"]
    if d.verdict == "fix the mix first":
        lines += [f"  - {r}" for r in d.reasons]
    if not d.findings:
        lines.append("no findings")
    for f in d.findings:
        lines.append(f"[{f.severity}] {f.stem}: {f.message}")
        if f.repair:
            settings = ", ".join(f"{k}={v}" for k, v in f.repair["settings"].items())
            lines.append(f"    repair: {f.repair['stem']} {f.repair['processor']} {settings}"
                         + ("" if f.auto else " (a mix decision: not applied by --auto)"))
    return lines


@dataclass
class JudgedRender:
    """A landed render with the source's diagnosis in its report, and what ``auto`` did."""

    outcome: Any  # pipeline.RenderOutcome
    before: Diagnosis
    auto: AutoResult | None = None
    auto_report: dict[str, Any] | None = None


def master_project(project: Project, project_dir: Path, render_id: str, *, save: Callable[[Project], Any],
                   settings_transform: Callable[[Any], Any] | None = None, auto: bool = False,
                   progress: Callable[[float, str], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> JudgedRender:
    """``stemmaster master``: diagnose the stems (cached), with ``auto`` record the repairs in the
    project (``save`` it) before rendering, render with the project's settings (through
    ``settings_transform``), and put the diagnosis (and the before/after comparison) in the report."""
    from stemmaster.lock import project_lock

    with project_lock(project_dir, f"master {render_id}"):
        return _master_project(project, project_dir, render_id, save=save, settings_transform=settings_transform,
                               auto=auto, progress=progress or (lambda f, m: None), cancel=cancel)


def _master_project(project: Project, project_dir: Path, render_id: str, *, save, settings_transform, auto,
                    progress, cancel) -> JudgedRender:
    from stemmaster.errors import Cancelled
    from stemmaster.pipeline import _sub, project_settings, render_project

    progress(0.0, "diagnosing the stems")
    before = diagnose_project(project, project_dir)
    result = None
    if auto:
        result = apply_auto(project, before)
        save(project)  # recorded before the render, visible to `stemmaster repair`
    if cancel is not None and cancel():
        raise Cancelled("render cancelled; nothing was written")
    settings = project_settings(project)
    if settings_transform is not None:
        settings = settings_transform(settings)
    outcome = render_project(project, project_dir, settings, render_id, progress=_sub(progress, 0.05, 1.0),
                             cancel=cancel)
    report = None
    if result is not None:
        after = diagnose_render([(s.name, s.role) for s in project.stems], outcome.folder)
        report = auto_report(result, before, after)
    record_judgement(outcome, before, report)
    return JudgedRender(outcome, before, result, report)
