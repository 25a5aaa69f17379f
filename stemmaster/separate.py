"""Separating a render project into stems, once: the glue between a project and ``separation``.

``separate_project`` reads the project's source render, separates it with
Demucs (``separation.engine``), folds the part the model left out (the
residual) into ``other`` or keeps it as a stem of its own, writes the stems
into ``stems/`` and records how they were made (``SeparationRecord``: the
model, its checksum, the input's sha256 and the settings that change the
result). Asked again with the same model, input and settings it does nothing:
a change of repair or master settings never separates again, a changed input
or model does.

The render is read block by block and each stem is written block by block as
the engine finishes it (``separation.engine.separate_stream``), so memory does
not grow with the song's length. Stems are written into a temporary folder
(each file landing only when complete) and moved into ``stems/`` only when all
are complete, then the project is saved: a failed or cancelled run leaves the
stems and the project as they were. The torch and demucs imports happen
only here, when a separation is asked for, so the rest of the tool starts fast.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from stemmaster.atomic import sha256_file
from stemmaster.audio_source import BlockWriter, FileSource
from stemmaster.lock import project_lock
from stemmaster.errors import Cancelled, ProjectError, SettingsError
from stemmaster.project import Project, SeparationRecord, Stem, utc_now_iso
from stemmaster.repair import default_chain
from stemmaster.roles import ROLES

Progress = Callable[[float, str], None]
CancelCheck = Callable[[], bool]

RESIDUAL_INTO = ("other", "stem")
RESIDUAL_STEM = "residual"
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class SeparationOptions:
    """How to separate. ``model_repo`` (or ``$STEMMASTER_MODEL_REPO``) is a local folder of
    checkpoints; without one, demucs' own ``get_model`` looks in its cache and downloads."""

    model: str = "htdemucs"
    model_repo: Path | None = None
    device: str = "auto"
    shifts: int = 1
    overlap: float = 0.25
    segment_s: float | None = None
    seed: int = 0
    residual_into: str = "other"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise SettingsError(f"separation device = {self.device!r} (allowed: {', '.join(DEVICES)})")
        if isinstance(self.shifts, bool) or not isinstance(self.shifts, int) or not 0 <= self.shifts <= 20:
            raise SettingsError(f"separation shifts = {self.shifts!r} must be a whole number from 0 to 20")
        if not 0.0 <= float(self.overlap) < 1.0:
            raise SettingsError(f"separation overlap = {self.overlap} must be from 0 up to (not including) 1")
        if self.segment_s is not None and not 1.0 <= float(self.segment_s) <= 600.0:
            raise SettingsError(f"separation segment_s = {self.segment_s} must be from 1 to 600 seconds")
        if self.residual_into not in RESIDUAL_INTO:
            raise SettingsError(f"separation residual_into = {self.residual_into!r} "
                                f"(allowed: {', '.join(RESIDUAL_INTO)})")

    def result_settings(self) -> dict[str, Any]:
        """The settings that change the stems (not where the model lives or what runs it)."""
        out = {"shifts": int(self.shifts), "overlap": float(self.overlap), "seed": int(self.seed),
               "residual_into": self.residual_into}
        if self.segment_s is not None:
            out["segment_s"] = float(self.segment_s)
        return out

    @classmethod
    def from_record(cls, record: SeparationRecord, **overrides: Any) -> "SeparationOptions":
        """The options a recorded separation used, with ``overrides`` (``model_repo``, ``device``)."""
        s = dict(record.settings)
        values = {"model": record.model, "shifts": s.get("shifts", 1), "overlap": s.get("overlap", 0.25),
                  "segment_s": s.get("segment_s"), "seed": s.get("seed", 0),
                  "residual_into": s.get("residual_into", "other")}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def source_render(project: Project, project_dir: Path) -> Path:
    """The render file a render project separates (ProjectError for a stems project)."""
    if project.source_kind != "render" or not project.sources:
        raise ProjectError(f"project {project.name!r} was made from stems; there is nothing to separate")
    return project_dir / project.sources[0].path


def needs_separation(project: Project, project_dir: Path) -> bool:
    """True for a render project whose stems are missing or were made from another input.

    Cheap (no model is loaded): what ``master`` asks before rendering. A change
    of model or settings is asked for with ``separate``, which compares those too.
    """
    if project.source_kind != "render":
        return False
    record = project.separation
    if record is None or not project.stems:
        return True
    if any(not (project_dir / s.path).is_file() for s in project.stems):
        return True
    return record.input_sha256 != sha256_file(source_render(project, project_dir))


def separate_project(project: Project, project_dir: Path, options: SeparationOptions, *,
                     save: Callable[[Project], Any], progress: Progress | None = None,
                     cancel: CancelCheck | None = None) -> bool:
    """Separate ``project``'s render into stems unless the recorded separation already matches.

    ``save(project)`` is called once the new stems are in place. Returns True
    when it separated, False when the stems on disk were already made by the
    same model from the same input with the same settings. Raises
    SeparationError (missing weights, ...), Cancelled, AudioError, ProjectError.
    """
    with project_lock(project_dir, "separation"):
        return _separate_project(project, project_dir, options, save=save, progress=progress or (lambda f, m: None),
                                 cancel=cancel)


def _separate_project(project: Project, project_dir: Path, options: SeparationOptions, *,
                      save: Callable[[Project], Any], progress: Progress, cancel: CancelCheck | None) -> bool:
    from separation.engine import fold_residual, separate_stream  # torch: only when separating
    from separation.models import load_model

    source = source_render(project, project_dir)
    progress(0.0, f"loading model {options.model}")
    loaded = load_model(options.model, options.model_repo)
    input_sha = sha256_file(source)
    record = project.separation
    if (record is not None and record.model == loaded.name and record.model_checksum == loaded.checksum
            and record.input_sha256 == input_sha and record.settings == options.result_settings()
            and project.stems and all((project_dir / s.path).is_file() for s in project.stems)):
        progress(1.0, "stems already separated with these settings")
        return False

    render = FileSource(source)
    rate = render.sample_rate
    if rate != project.sample_rate:  # a project keeps its source's rate; refuse to guess otherwise
        raise ProjectError(f"{source}: {rate} Hz, but the project is at {project.sample_rate} Hz")
    into = "other" if options.residual_into == "other" else "own"
    names = [*loaded.sources, *(["residual"] if into == "own" else [])]

    stems_dir = project_dir / "stems"
    stems_dir.mkdir(exist_ok=True)
    tmp = stems_dir / f".tmp-separate-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        progress(0.02, f"separating with {loaded.name}")
        with contextlib.ExitStack() as files:
            writers = {name: files.enter_context(BlockWriter(tmp / f"{name}.wav", rate, 2, "FLOAT",
                                                             frames_hint=render.frames)) for name in names}

            def write(start: int, stems: dict, residual) -> None:
                for name, block in fold_residual(stems, residual, into).items():
                    writers[name].write(block)

            summary = separate_stream(render, loaded, write, device=options.device, shifts=options.shifts,
                                      overlap=options.overlap, segment_s=options.segment_s, seed=options.seed,
                                      progress=lambda f, m: progress(0.02 + 0.96 * f, m), cancel=cancel)
            if cancel and cancel():
                raise Cancelled("separation cancelled; the stems are as they were")
            progress(0.98, "stems written")
        if project.separation is not None:
            # from here until the new record is saved the stems are in flux:
            # a crash leaves no record, so the next run separates again
            project.separation = None
            save(project)
        old = {s.name: s for s in project.stems}
        new_stems = []
        for name in names:
            os.replace(tmp / f"{name}.wav", stems_dir / f"{name}.wav")
            role = name if name in ROLES else "other"
            kept = old.get(name)
            new_stems.append(Stem(
                name=name, role=kept.role if kept else role, path=f"stems/{name}.wav", source=project.sources[0].path,
                gain_db=kept.gain_db if kept else 0.0, mute=kept.mute if kept else False,
                solo=kept.solo if kept else False, chain=dict(kept.chain) if kept else default_chain(role)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for s in project.stems:  # stems of an earlier separation that this one does not have
        if s.name not in names:
            (project_dir / s.path).unlink(missing_ok=True)
    project.stems = new_stems
    project.separation = SeparationRecord(
        model=loaded.name, model_checksum=loaded.checksum, input_sha256=input_sha,
        settings=options.result_settings(), residual_db=float(summary.residual_db), created=utc_now_iso())
    save(project)
    progress(1.0, f"separated into {', '.join(names)} (residual {summary.residual_db:.1f} dB)")
    return True

