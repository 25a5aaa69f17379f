"""One-shot remastering: a stereo render (separated with Demucs) or a folder of stems to a
master, a report and the processed stems.

Everything is rendered into a temporary folder inside OUTDIR and moved into
place only when complete, so a failed run leaves an earlier result in OUTDIR as
it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from stemmaster import judge
from stemmaster.audio_source import FileSource
from stemmaster.diagnosis import diagnose
from stemmaster.diagnosis.auto import auto_chains
from stemmaster.errors import StemmasterError
from stemmaster.master import MasterSettings
from stemmaster.pipeline import Progress, RenderOutcome, StemAudio, _sub, render_stems, run_checks_phase
from stemmaster.project import Project, utc_now_iso
from stemmaster.separate import SeparationOptions, separate_project
from stemmaster.stem_import import import_render, import_stems


def remaster(src: Path, outdir: Path, *, settings_transform: Callable[[MasterSettings], MasterSettings] | None = None,
             progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
             separation: SeparationOptions | None = None, checks: bool = True,
             auto: bool = False, separate: Callable[..., bool] | None = None) -> RenderOutcome:
    """Master ``src`` into ``outdir`` (created if needed): a folder of stems as they are, or a
    render file separated first with ``separation`` (default options if None). ``checks``: run
    the release checks on OUTDIR once the master is in place (``pipeline.run_checks_phase``).
    The source's diagnosis goes into the report; ``auto`` applies its repairs first and reports
    each finding's measurement before and after. ``separate``: the separation step, with
    ``separate_project``'s signature (a batch wraps it to bound concurrent separations)."""
    progress = progress or (lambda f, m: None)
    if not src.exists():
        raise StemmasterError(f"{src}: no such file or folder")
    settings = MasterSettings()
    if settings_transform:
        settings = settings_transform(settings)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StemmasterError(f"{outdir}: cannot create the output folder ({exc.strerror})") from None
    with tempfile.TemporaryDirectory(prefix=".stemmaster-import-", dir=outdir) as work:
        work_dir = Path(work)
        project_dir = work_dir / "project"
        record = None
        if src.is_dir():
            rate, _sources, stems = import_stems(src, project_dir, progress=_sub(progress, 0.0, 0.2))
            render_from = 0.2
        else:
            project_dir.mkdir()
            rate, sources = import_render(src, project_dir, progress=_sub(progress, 0.0, 0.05))
            project = Project(name=src.stem, created=utc_now_iso(), source_kind="render", sample_rate=rate,
                              sources=sources, stems=[], master={}, renders=[])
            (separate or separate_project)(project, project_dir, separation or SeparationOptions(), save=lambda p: None,
                             progress=_sub(progress, 0.05, 0.7), cancel=cancel)
            stems, record = project.stems, project.separation
            render_from = 0.7
        audio_stems = [StemAudio(s.name, s.role, FileSource(project_dir / s.path), chain=dict(s.chain))
                       for s in stems]  # read a block at a time by every stage
        before = _diagnose_source(src, audio_stems, rate, separated=record is not None)
        result = None
        if auto:
            result = auto_chains(before, {s.name: s.chain for s in audio_stems}, settings.to_dict())
            for s in audio_stems:
                s.chain = result.chains[s.name]
            settings = MasterSettings.from_dict(result.master)
        render_dir = work_dir / "render"
        render_dir.mkdir()
        outcome = render_stems(audio_stems, rate, settings, render_dir, title=src.name, render_id="remaster",
                               progress=_sub(_sub(progress, render_from, 1.0), 0.0, 0.75 if checks else 1.0), cancel=cancel,
                               separation=asdict(record) if record else None, checks_pending=checks)
        _move_into(render_dir, outdir)
        outcome.folder = outdir
        outcome.master_files = [outdir / p.name for p in outcome.master_files]
        if checks:  # while the imported stems (the "before" of the A/B) are still on disk
            run_checks_phase(outcome, audio_stems, rate, settings,
                             progress=_sub(_sub(progress, render_from, 1.0), 0.75, 1.0), cancel=cancel)
    auto_info = None
    if result is not None:
        after = judge.diagnose_render([(s.name, s.role) for s in audio_stems], outdir)
        auto_info = judge.auto_report(result, before, after)
    judge.record_judgement(outcome, before, auto_info)
    return outcome


def _diagnose_source(src: Path, stems: list[StemAudio], rate: int, *, separated: bool):
    """The diagnosis of the stems; for a separated render, with the render itself as the mix."""
    mix = judge.render_source(src, rate) if separated else None
    return diagnose([(s.name, s.role, s.source(rate)) for s in stems], rate, mix=mix,
                    source="render" if separated else "stems")


def _move_into(src_dir: Path, dest: Path) -> None:
    """Move every file of ``src_dir`` into ``dest`` (same file system), replacing same-named files."""
    for path in sorted(src_dir.rglob("*")):
        if path.is_dir():
            continue
        target = dest / path.relative_to(src_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(path, target)
