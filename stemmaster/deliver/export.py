"""``stemmaster export``: a render's deliverables, in ``renders/NNN/deliverables/``.

From a landed render (its repaired stems and its recorded settings) this
makes the versions asked for (``versions.py``), optionally the stem masters,
optionally re-steered toward a reference track (``reference.py``), cleans the
start and end the same way in every file (``cleanup.py``: the plan is made on
the main master and applied to all, so stem masters still sum), writes every
format asked for (``formats.py``) and a manifest with each file's measured
loudness, true peak and sha256 (``manifest.py``).

The main master is made again from the render's stems and settings (the bus
is deterministic): its loudness is checked against the render's report, so
the versions carry exactly the bus state of the master that was approved.
Everything is written into a temporary folder and swapped in when complete:
an interrupted export leaves the previous deliverables as they were.
"""

from __future__ import annotations

import os
import shutil
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from stemmaster.atomic import atomic_write_text
from stemmaster.audio_io import read_audio
from stemmaster.errors import Cancelled, ProjectError, StemmasterError
from stemmaster.master import MasterSettings, master_bus
from stemmaster.project import Project

DELIVERABLES_DIR = "deliverables"
LOUDNESS_CHECK_LU = 0.05  # the re-made main master must read as the render's did

Progress = Callable[[float, str], None]


@dataclass
class ExportOutcome:
    folder: Path
    files: list[dict[str, Any]]
    versions: list[dict[str, Any]]
    reference: dict[str, Any] | None = None
    cleanup: dict[str, Any] | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _render_record(project: Project, render_id: str | None):
    if not project.renders:
        raise ProjectError(f"project {project.name!r} has no renders yet: run `stemmaster master {project.name}` first")
    if render_id is None:
        return project.renders[-1]
    for r in project.renders:
        if r.id == render_id:
            return r
    raise ProjectError(f"project {project.name!r} has no render {render_id!r} "
                       f"(renders: {', '.join(r.id for r in project.renders)})")


def _safe_file_part(text: str) -> str:
    cleaned = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in text).strip("._")
    return cleaned[:80] or "song"


def export_render(project: Project, project_dir: Path, *, render_id: str | None = None,
                  versions: list[str] | tuple[str, ...] = ("main",), formats: list[str] | tuple[str, ...] = ("wav24",),
                  out_rate: int | None = None, reference: Path | None = None, stem_masters: bool = False,
                  metadata: dict[str, str] | None = None, clean_edges: bool = True,
                  progress: Progress | None = None, cancel: Callable[[], bool] | None = None) -> ExportOutcome:
    """Write the deliverables of one render of ``project`` (the latest unless ``render_id``)."""
    from stemmaster.deliver import cleanup as cleanup_mod
    from stemmaster.deliver.formats import FORMATS, write_deliverable
    from stemmaster.deliver.manifest import manifest_row, write_manifest
    from stemmaster.deliver.versions import StemShare, parse_version, render_version, stem_masters as shares_of
    from stemmaster.meters.loudness import gated_loudness_lufs

    progress = progress or (lambda f, m: None)
    is_cancelled = cancel or (lambda: False)
    t0 = time.perf_counter()
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise StemmasterError(f"unknown format(s) {', '.join(unknown) or '(none given)'} (known: {', '.join(FORMATS)})")
    if out_rate is not None and out_rate not in (44100, 48000):
        raise StemmasterError(f"export rate {out_rate} Hz: allowed 44100 or 48000")
    record = _render_record(project, render_id)
    folder = project_dir / record.folder
    try:
        recorded = tomllib.loads((folder / "settings.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProjectError(f"{folder / 'settings.toml'}: cannot read the render's settings ({exc})") from None
    settings = MasterSettings.from_dict(recorded["master"])
    roles = {s["name"]: s["role"] for s in recorded.get("stems", [])}

    progress(0.0, "reading the render's stems")
    stems = []
    rate = None
    for name, role in roles.items():
        path = folder / "stems" / f"{name}.wav"
        if not path.is_file():
            raise ProjectError(f"{path}: missing; the render's stems are needed for deliverables")
        audio, r = read_audio(path)
        rate = rate or r
        stems.append(StemShare(name, role, audio.astype(np.float64)))
    if not stems:
        raise ProjectError(f"{folder}: the render has no stems")
    specs = [parse_version(v, stems) for v in versions]  # every name valid before any work
    mix = sum(s.audio for s in stems)

    progress(0.1, "re-making the main master")
    main = master_bus(mix, rate, settings)
    report_lufs = record.integrated_lufs
    made = gated_loudness_lufs(main.audio, rate)
    if abs(made - report_lufs) > LOUDNESS_CHECK_LU + settings.bus.tolerance_lu:
        raise ProjectError(f"{folder}: the master made again reads {made:.2f} LUFS, the render {report_lufs:.2f} LUFS; "
                           "its stems or settings were changed after the render")
    ref_report = None
    if reference is not None:
        from stemmaster.deliver.reference import match_settings, measure_reference

        progress(0.2, f"matching {Path(reference).name}")
        ref_audio, ref_rate = read_audio(Path(reference))
        profile = measure_reference(ref_audio, ref_rate)
        settings, ref_report = match_settings(settings, mix, rate, profile)
        main = master_bus(mix, rate, settings)
        ref_report = {"file": str(reference), **ref_report}

    title = (metadata or {}).get("title") or project.name
    base = _safe_file_part(title)
    deliver_dir = folder / DELIVERABLES_DIR
    tmp = folder / f".{DELIVERABLES_DIR}-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    try:
        plan = None
        if clean_edges:
            plan = cleanup_mod.plan_edges(main.audio, rate)
        jobs: list[tuple[str, np.ndarray, bool]] = []
        for spec in specs:
            v = render_version(spec, stems, rate, settings, main)
            summaries.append({"version": v.name, "description": v.description,
                              "safety_limiter_db": round(v.safety_reduction_db, 3), "stems_db": v.stems})
            jobs.append((v.name, v.audio, True))
        if stem_masters:
            for name, audio in shares_of(stems, rate, settings, main).items():
                jobs.append((f"stem-{_safe_file_part(name)}", audio, False))
        total = len(jobs) * len(formats)
        done = 0
        for name, audio, is_version in jobs:
            if plan is not None:
                audio = cleanup_mod.apply_edges(audio, plan)
            for fmt in formats:
                if is_cancelled():
                    raise Cancelled("export cancelled; the earlier deliverables are unchanged")
                # stem masters keep no ceiling of their own: trimming one would break their sum
                path = write_deliverable(tmp / f"{base}_{name}", audio, rate, fmt, out_rate=out_rate,
                                         ceiling_dbtp=settings.bus.ceiling_dbtp if is_version else None,
                                         metadata={**(metadata or {}), "title": f"{title} ({name})"
                                                   if name != "main" else title})
                files.append(manifest_row(path, version=name, fmt=fmt))
                done += 1
                progress(0.3 + 0.7 * done / total, f"wrote {path.name}")
        for row in files:  # paths relative to the deliverables folder
            row["file"] = Path(row["file"]).name
        write_manifest(tmp, files)
        atomic_write_text(tmp / "versions.md", _versions_markdown(summaries, ref_report, plan))
        old = folder / f".{DELIVERABLES_DIR}-old-{os.getpid()}"
        if deliver_dir.exists():
            os.replace(deliver_dir, old)
        os.replace(tmp, deliver_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportOutcome(deliver_dir, files, summaries, ref_report, plan if plan is None else dict(plan.report),
                         time.perf_counter() - t0)


def _versions_markdown(versions: list[dict[str, Any]], reference: dict[str, Any] | None, plan) -> str:
    lines = ["# Deliverables", "", "Every version carries the main master's bus state: the same staging, EQ, "
             "drive, compression and limiting curve (see stemmaster/deliver/versions.py).", "",
             "| version | what | safety limiter |", "|---|---|---|"]
    for v in versions:
        lines.append(f"| {v['version']} | {v['description']} | {v['safety_limiter_db']:.2f} dB |")
    if plan is not None:
        lines += ["", f"Edges: {plan.report.get('summary', 'cleaned')}"]
    if reference:
        lines += ["", f"Reference: `{reference['file']}`", ""]
        lines += [f"- {k}: {v}" for k, v in reference.items() if k != "file"]
    return "\n".join(lines) + "\n"
