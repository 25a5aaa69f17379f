"""Snapshots (SVG screenshots, pytest-textual-snapshot) of the projects, project and report screens, 80x24.

Deterministic: the workspace is always at the same path (the screens show absolute paths),
made afresh for each test; the demo stems are synthesised from a fixed seed; the report is
written here with fixed figures; no clock is shown. Skipped without pytest-textual-snapshot.
After a deliberate change of a screen: ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the SVGs in ``tests/__snapshots__/test_tui_snapshots/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("textual")
pytest.importorskip("pytest_textual_snapshot")

# The SVGs hold Textual's rendering, which changes between its releases; they were made with
# this version. With another, the tests skip and say so (update them with --snapshot-update).
SNAPSHOT_TEXTUAL = "8.2.8"
_installed = __import__("importlib.metadata").metadata.version("textual")
if _installed != SNAPSHOT_TEXTUAL:
    pytest.skip(f"snapshots made with textual {SNAPSHOT_TEXTUAL}, this is {_installed}: "
                "run pytest tests/test_tui_snapshots.py --snapshot-update and review the SVGs",
                allow_module_level=True)

from stemmaster.audio_io import write_audio  # noqa: E402
from stemmaster.demo import make_demo_stems  # noqa: E402
from stemmaster.project import RenderRecord  # noqa: E402
from stemmaster.workspace import Workspace  # noqa: E402
from tui.app import StemmasterApp  # noqa: E402
from tui.screens import ProjectScreen, ProjectsScreen, ReportScreen  # noqa: E402

ROOT = Path("/tmp/stemmaster-tui-snapshots")  # fixed: the screens show the workspace's path
SIZE = (80, 24)


@pytest.fixture(scope="module")
def stems_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("snapdemo") / "stems"
    folder.mkdir()
    for name, audio in make_demo_stems(duration_s=10).items():
        write_audio(folder / f"{name}.wav", audio, 44100)
    return folder


REPORT = {
    "render": "001", "profile": "spotify", "target_lufs": -14.0, "ceiling_dbtp": -1.0,
    "master": {"integrated_lufs": -14.02, "true_peak_dbtp": -1.01, "plr_db": 12.6, "loudness_range_lu": 4.8},
    "diagnosis": {"verdict": "ready with repairs", "reasons": ["bass: wide low end"], "source": "stems",
                  "findings": [{"id": "wide_low_end", "severity": "major", "stem": "bass",
                                "message": "wide low end below 150 Hz", "measured": 2.8, "threshold": 0.0,
                                "unit": "dB"}]},
    "checks": {
        "status": "done",
        "short_term": {"hop_s": 1.0, "start_s": 3.0,
                       "lufs": [None, -22.5, -18.0, -15.2, -14.1, -13.0, -12.4, -13.8, -14.6, -16.0, -12.1,
                                -11.8, -12.9, -14.0, -15.5, -17.9, -21.0, None]},
        "translation": [
            {"name": "mono", "loudness_lufs": -14.4, "loudness_change_lu": -0.3, "warnings": []},
            {"name": "phone", "loudness_lufs": -17.0, "loudness_change_lu": -2.9, "warnings": []},
            {"name": "earbuds", "loudness_lufs": -14.3, "loudness_change_lu": -0.2, "warnings": []},
            {"name": "car", "loudness_lufs": -12.9, "loudness_change_lu": 1.1, "warnings": ["bass +4 dB"]},
        ],
        "codec": [
            {"codec": "mp3", "bitrate_kbps": 320, "available": True, "decoded_true_peak_dbtp": -0.82,
             "overs": False, "peak_overs": 0, "glitch_overs": 0, "ceiling_dbtp": -1.0,
             "recommended_ceiling_dbtp": None},
            {"codec": "aac", "bitrate_kbps": 256, "available": True, "decoded_true_peak_dbtp": 0.31,
             "overs": True, "peak_overs": 2, "glitch_overs": 0, "ceiling_dbtp": -1.0,
             "recommended_ceiling_dbtp": -1.6},
        ],
    },
    "files": [{"path": "master_24bit.wav"}, {"path": "master_16bit.wav"}],
}


def workspace(stems_dir: Path) -> Workspace:
    """Two projects at the fixed path: "demo song" (stems, not mastered) and "mastered" (a written report)."""
    shutil.rmtree(ROOT, ignore_errors=True)
    ws = Workspace(ROOT / "ws")
    ws.create_from_stems("demo song", stems_dir)
    project = ws.create_from_stems("mastered", stems_dir)
    folder = ws.project_dir("mastered") / "renders" / "001"
    folder.mkdir(parents=True)
    for name in ("master_24bit.wav", "master_16bit.wav"):
        (folder / name).write_bytes(b"")
    (folder / "report.json").write_text(json.dumps(REPORT), encoding="utf-8")
    project.renders.append(RenderRecord(id="001", created="2026-01-01T00:00:00Z", profile="spotify",
                                        target_lufs=-14.0, ceiling_dbtp=-1.0, integrated_lufs=-14.02,
                                        true_peak_dbtp=-1.01, folder="renders/001"))
    ws.save(project)
    return ws


async def wait_for(pilot, condition, tries: int = 400) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause()
    raise AssertionError("the UI never reached the expected state")


async def open_row(pilot, name: str) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, ProjectsScreen) and app.screen.rows)
    table = app.screen.query_one("#projects")
    table.move_cursor(row=[r.name for r in app.screen.rows].index(name))
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, ProjectScreen))


def test_snapshot_projects(snap_compare, stems_dir):
    app = StemmasterApp(workspace(stems_dir))

    async def ready(pilot):
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectsScreen) and len(app.screen.rows) == 2)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_snapshot_project_diagnosis(snap_compare, stems_dir):
    app = StemmasterApp(workspace(stems_dir))

    async def ready(pilot):
        await open_row(pilot, "demo song")
        await pilot.press("2")
        screen = app.screen
        await wait_for(pilot, lambda: screen.diagnosis is not None and screen.diagnosing is None)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_snapshot_report(snap_compare, stems_dir):
    app = StemmasterApp(workspace(stems_dir))

    async def ready(pilot):
        await open_row(pilot, "mastered")
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)
