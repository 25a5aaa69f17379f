"""``stemmaster demo``: synthesise the demo song, make it a project, master it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from stemmaster.atomic import sha256_file
from stemmaster.audio_io import write_audio
from stemmaster.demo import demo_mix, make_demo_stems
from stemmaster.errors import ProjectError
from stemmaster.master import MasterSettings
from stemmaster.judge import master_project
from stemmaster.pipeline import Progress, RenderOutcome, _sub
from stemmaster.workspace import Workspace

DEMO_PROJECT = "demo"
DEMO_SAMPLE_RATE = 44100


def write_demo_song(song_dir: Path, *, duration_s: float = 40.0, sample_rate: int = DEMO_SAMPLE_RATE) -> dict[str, Path]:
    """Write the demo stems (``stems/<role>.wav``) and their sum (``demo-mix.wav``), 24-bit WAV."""
    stems = make_demo_stems(sample_rate=sample_rate, duration_s=duration_s)
    paths = {}
    (song_dir / "stems").mkdir(parents=True, exist_ok=True)
    for role, audio in stems.items():
        paths[role] = song_dir / "stems" / f"{role}.wav"
        write_audio(paths[role], audio, sample_rate, subtype="PCM_24")
    paths["mix"] = song_dir / "demo-mix.wav"
    write_audio(paths["mix"], demo_mix(stems), sample_rate, subtype="PCM_24")
    return paths


def run_demo(ws: Workspace, song_dir: Path, *, duration_s: float = 40.0,
             settings_transform: Callable[[MasterSettings], MasterSettings] | None = None,
             progress: Progress | None = None) -> RenderOutcome:
    """Write the demo song, create (or reuse) the ``demo`` project from its stems, and master it."""
    progress = progress or (lambda f, m: None)
    progress(0.0, "synthesising the demo song")
    paths = write_demo_song(song_dir, duration_s=duration_s)
    project_dir = ws.project_dir(DEMO_PROJECT)
    if (project_dir / "project.toml").is_file():
        project = ws.load(DEMO_PROJECT)
        have = sorted(s.sha256 for s in project.sources)
        want = sorted(sha256_file(paths[r]) for r in ("vocals", "drums", "bass", "other"))
        if have != want:
            raise ProjectError(
                f"project {DEMO_PROJECT!r} in {ws.root} holds other stems (a different --duration-s?); "
                f"delete {project_dir} or use another --workspace")
    else:
        progress(0.1, "importing the demo stems")
        project = ws.create_from_stems(DEMO_PROJECT, song_dir / "stems")
    judged = master_project(project, project_dir, ws.next_render_id(project), save=ws.save,
                            settings_transform=settings_transform, progress=_sub(progress, 0.15, 1.0))
    return judged.outcome
