"""The terminal UI, driven with Textual's pilot (App.run_test) in an 80x24 screen.

Waits are on the app's own state (workers complete, screens change), never on
sleeps. Each test uses its own workspace under tmp_path.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

pytest.importorskip("textual")

from textual.widgets import DataTable, Input, Static  # noqa: E402

from stemmaster import pipeline  # noqa: E402
from stemmaster.audio_io import write_audio  # noqa: E402
from stemmaster.demo import demo_mix, make_demo_stems  # noqa: E402
from stemmaster.errors import StemmasterError  # noqa: E402
from stemmaster.workspace import Workspace  # noqa: E402
from tui.app import StemmasterApp  # noqa: E402
from tui.screens import HelpScreen, NewProjectScreen, ProjectScreen, ProjectsScreen, ReportScreen  # noqa: E402

SIZE = (80, 24)


@pytest.fixture(scope="module")
def demo_stems(tmp_path_factory) -> Path:
    """The demo song's four stems (10 s) as WAV files in a folder."""
    folder = tmp_path_factory.mktemp("demo") / "stems"
    folder.mkdir()
    for name, audio in make_demo_stems(duration_s=10).items():
        write_audio(folder / f"{name}.wav", audio, 44100)
    return folder


def run(coro):
    return asyncio.run(coro)


async def settle(app, pilot, until=lambda: True, tries: int = 200) -> None:
    """Let running workers finish and the UI handle what they posted, until ``until()`` holds
    (bounded: a failing condition fails the test instead of hanging)."""
    for _ in range(tries):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if until():
            return
    raise AssertionError("the UI never reached the expected state")


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


def messages(app, severity: str | None = None) -> list[str]:
    return [m for s, m in app.notices if severity is None or s == severity]


def report_of(ws, name: str, render_id: str) -> dict:
    return json.loads((ws.root / name / "renders" / render_id / "report.json").read_text(encoding="utf-8"))


async def open_project(app, pilot, name: str) -> ProjectScreen:
    screen = app.screen
    assert isinstance(screen, ProjectsScreen)
    table = screen.query_one("#projects", DataTable)
    table.move_cursor(row=[r.name for r in screen.rows].index(name))
    await pilot.press("enter")
    await settle(app, pilot, lambda: isinstance(app.screen, ProjectScreen))
    return app.screen


def test_create_edit_master_report(tmp_path, demo_stems):
    ws = Workspace(tmp_path / "ws")

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            assert "No projects yet" in text_of(app, "#empty")

            # n: the new-project modal; type the name, give the stems folder
            await pilot.press("n")
            await settle(app, pilot, lambda: isinstance(app.screen, NewProjectScreen))
            await pilot.press(*"song")
            await pilot.press("enter")  # to the path field
            path_field = app.screen.query_one("#path", Input)
            assert path_field.has_focus
            path_field.value = str(demo_stems)
            await pilot.press("enter")
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            project = ws.load("song")
            assert project.source_kind == "stems" and len(project.stems) == 4
            table = app.screen.query_one("#projects", DataTable)
            assert table.get_row("song")[:3] == ["song", "stems", "new"]

            # enter: the project screen; choose vocals, then its de-esser's max reduction
            screen = await open_project(app, pilot, "song")
            stems = screen.query_one("#stems", DataTable)
            stems.move_cursor(row=[s.name for s in screen.project.stems].index("vocals"))
            await pilot.press("enter")  # to the settings table
            chain = screen.query_one("#chain", DataTable)
            assert chain.has_focus
            assert "vocals" in text_of(app, "#chain-title")
            keys = [r.key for r in screen.setting_rows]
            chain.move_cursor(row=keys.index("deesser.max_reduction_db"))
            await pilot.press("enter")
            field = screen.query_one("#edit", Input)
            assert field.has_focus and field.display

            # a bad value: the repair module's one line, nothing saved, still editing
            field.value = "lots"
            await pilot.press("enter")
            await settle(app, pilot)
            assert messages(app, "error")[-1] == "deesser.max_reduction_db = 'lots': expected a number"
            assert ws.load("song").stem("vocals").chain["deesser"]["max_reduction_db"] != "lots"

            field.value = "8"
            await pilot.press("enter")
            await settle(app, pilot, lambda: not field.display)
            assert ws.load("song").stem("vocals").chain["deesser"]["max_reduction_db"] == 8.0
            assert chain.get_row("deesser.max_reduction_db")[2] == "8"

            # m: master in a worker; the report view opens with the loudness
            await pilot.press("m")
            await settle(app, pilot, lambda: isinstance(app.screen, ReportScreen))
            saved = ws.load("song")
            assert len(saved.renders) == 1
            record = saved.renders[0]
            assert saved.stem("vocals").chain["deesser"]["max_reduction_db"] == 8.0
            figures = text_of(app, "#figures")
            assert f"integrated loudness  {record.integrated_lufs:.1f} LUFS" in figures
            assert f"true peak            {record.true_peak_dbtp:.2f} dBTP" in figures
            assert "PLR" in figures and "LRA" in figures
            if "diagnosis" in report_of(ws, "song", "001"):  # the CLI's master records one (stemmaster.judge)
                assert text_of(app, "#verdict").startswith("verdict: ")
            files = text_of(app, "#files").splitlines()
            master = (ws.root / "song" / "renders" / "001" / "master_24bit.wav").absolute()
            assert str(master) in files
            assert all(Path(f).is_absolute() and Path(f).is_file() for f in files)

            # back to the projects list: the render's loudness and state
            await pilot.press("escape")
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectScreen))
            await pilot.press("escape")
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            row = app.screen.query_one("#projects", DataTable).get_row("song")
            verdict = (report_of(ws, "song", "001").get("diagnosis") or {}).get("verdict", "-")
            assert row == ["song", "stems", "mastered", f"{record.integrated_lufs:.1f}",
                           f"{record.true_peak_dbtp:.2f}", verdict]

    run(scenario())


@pytest.fixture
def held_master(monkeypatch) -> threading.Event:
    """The real render, held at its first progress step until the job's cancel callback
    returns True; the event is set once the render has reached that step."""
    started = threading.Event()
    real = pipeline.render_project

    def held_render(project, project_dir, settings, render_id, *, progress=None, cancel=None, **options):
        def gate(fraction, message):
            if not started.is_set():
                started.set()
                for _ in range(2000):  # bounded: the test fails rather than hangs
                    if cancel():
                        break
                    threading.Event().wait(0.005)
            progress(fraction, message)

        return real(project, project_dir, settings, render_id, progress=gate, cancel=cancel, **options)

    monkeypatch.setattr(pipeline, "render_project", held_render)
    return started


async def start_held_master(app, pilot, started: threading.Event) -> ProjectScreen:
    await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
    screen = await open_project(app, pilot, "song")
    await pilot.press("m")
    for _ in range(400):
        await pilot.pause()
        if started.is_set():
            break
    assert screen.busy and started.is_set()
    return screen


def test_cancel_master_leaves_nothing(tmp_path, demo_stems, held_master):
    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("song", demo_stems)
    started = held_master

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            screen = await start_held_master(app, pilot, started)
            assert screen.query_one("#job").has_class("running")
            # the UI answers keys while the job's thread works
            stems = screen.query_one("#stems", DataTable)
            first = stems.cursor_row
            await pilot.press("down")
            assert stems.cursor_row == first + 1
            assert str(screen.project.stems[first + 1].name) in text_of(app, "#chain-title")
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert app.screen is screen and screen.busy
            await pilot.press("escape")  # leaving is refused while the job runs
            assert app.screen is screen
            await pilot.press("c")
            await settle(app, pilot, lambda: not screen.busy)
            assert isinstance(app.screen, ProjectScreen)
            assert "render cancelled; nothing was written" in messages(app, "warning")
            assert not screen.query_one("#job").has_class("running")

    run(scenario())
    assert ws.load("song").renders == []
    assert list((ws.root / "song" / "renders").iterdir()) == []


def test_quit_during_master_cancels_it_first(tmp_path, demo_stems, held_master):
    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("song", demo_stems)

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await start_held_master(app, pilot, held_master)
            await pilot.press("q")
            await settle(app, pilot, lambda: not app.is_running)
            assert messages(app, "warning") == ["cancelling the running job; quitting when it has stopped",
                                                "render cancelled; nothing was written"]

    run(scenario())
    assert ws.load("song").renders == []
    assert list((ws.root / "song" / "renders").iterdir()) == []


def test_new_project_bad_path_and_name(tmp_path, demo_stems):
    ws = Workspace(tmp_path / "ws")
    missing = tmp_path / "nowhere" / "song.wav"
    try:
        ws.create_from_render("song", missing)
    except StemmasterError as exc:
        expected_path = str(exc)
    try:
        ws.create_from_stems("bad/name", demo_stems)
    except StemmasterError as exc:
        expected_name = str(exc)

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            await pilot.press("n")
            await settle(app, pilot, lambda: isinstance(app.screen, NewProjectScreen))
            app.screen.query_one("#name", Input).value = "song"
            path = app.screen.query_one("#path", Input)
            path.value = str(missing)
            path.focus()
            await pilot.press("enter")
            await settle(app, pilot, lambda: bool(messages(app, "error")))
            assert messages(app, "error") == [expected_path]
            assert isinstance(app.screen, NewProjectScreen)  # stays open to fix it

            app.screen.query_one("#name", Input).value = "bad/name"
            path.value = str(demo_stems)
            await pilot.press("enter")
            await settle(app, pilot, lambda: len(messages(app, "error")) == 2)
            assert messages(app, "error")[-1] == expected_name
            await pilot.press("escape")
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            assert app.screen.rows == []

    run(scenario())
    assert ws.list_entries() == []


def test_delete_asks_first(tmp_path, demo_stems):
    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("keep", demo_stems)
    ws.create_from_stems("drop", demo_stems)

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            table = app.screen.query_one("#projects", DataTable)
            table.move_cursor(row=[r.name for r in app.screen.rows].index("drop"))
            await pilot.press("d")
            await pilot.press("n")  # declined: nothing happens
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            assert ws.exists("drop")
            await pilot.press("d")
            await pilot.press("y")
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            assert [r.name for r in app.screen.rows] == ["keep"]

    run(scenario())
    assert [p.name for p in ws.list_projects()] == ["keep"]
    assert [p.name for p in ws.root.iterdir()] == ["keep"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    """A tiny random-weight HTDemucs saved as "htdemucs": the default model, found through
    $STEMMASTER_MODEL_REPO without any download."""
    pytest.importorskip("demucs")
    from separation.testing import tiny_model_repo

    folder = tmp_path_factory.mktemp("models")
    tiny_model_repo(folder, "htdemucs", kind="htdemucs", seed=0)
    return folder


def test_render_project_separates_then_masters(tmp_path, tiny_models, monkeypatch):
    monkeypatch.setenv("STEMMASTER_MODEL_REPO", str(tiny_models))
    render = tmp_path / "song.wav"
    write_audio(render, demo_mix(make_demo_stems(duration_s=5)), 44100)
    ws = Workspace(tmp_path / "ws")
    ws.create_from_render("mix", render)

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            assert app.screen.query_one("#projects", DataTable).get_row("mix")[:3] == ["mix", "render", "new"]
            screen = await open_project(app, pilot, "mix")
            assert screen.query_one("#stems", DataTable).row_count == 0
            assert "no stems yet" in text_of(app, "#chain-title")
            # m on a render project without stems: separates first, then masters (as `stemmaster master`)
            await pilot.press("m")
            await settle(app, pilot, lambda: isinstance(app.screen, ReportScreen))
            saved = ws.load("mix")
            assert saved.separation is not None and len(saved.renders) == 1
            assert f"{saved.renders[0].integrated_lufs:.1f} LUFS" in text_of(app, "#figures")
            await pilot.press("escape")
            await settle(app, pilot, lambda: app.screen is screen)
            assert sorted(s.name for s in screen.project.stems) == ["bass", "drums", "other", "vocals"]
            assert screen.query_one("#stems", DataTable).row_count == 4
            # s: the same model, input and settings: nothing to do
            await pilot.press("s")
            await settle(app, pilot, lambda: not screen.busy)
            assert messages(app)[-1] == "the stems were already separated with these settings; nothing to do"
            await pilot.press("escape")
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            assert app.screen.query_one("#projects", DataTable).get_row("mix")[2] == "mastered"

    run(scenario())
    assert ws.load("mix").separation.model == "htdemucs"


def test_verdict_findings_and_curve_from_report(tmp_path, demo_stems):
    """A report with a diagnosis and a short-term curve: the list's verdict column, the report
    view's verdict, findings and sparkline (the report is written here, as a render would)."""
    from textual.widgets import Sparkline

    from stemmaster.project import RenderRecord

    ws = Workspace(tmp_path / "ws")
    project = ws.create_from_stems("judged", demo_stems)
    folder = ws.project_dir("judged") / "renders" / "001"
    folder.mkdir(parents=True)
    (folder / "master_24bit.wav").write_bytes(b"")
    report = {
        "render": "001", "profile": "spotify", "target_lufs": -14.0, "ceiling_dbtp": -1.0,
        "master": {"integrated_lufs": -14.02, "true_peak_dbtp": -1.01, "plr_db": 13.0, "loudness_range_lu": 4.8,
                   "short_term_lufs": [-20.0, -15.5, None, -12.0, -14.0]},
        "diagnosis": {"verdict": "fix the mix first", "reasons": ["sibilant vocals"],
                      "findings": [{"severity": "minor", "stem": "bass", "message": "wide low end",
                                    "measured": 2.9, "threshold": 0.0, "unit": "dB"},
                                   {"severity": "fix_mix", "stem": "vocals", "message": "clipped takes"}]},
        "files": [{"path": "master_24bit.wav"}],
    }
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    project.renders.append(RenderRecord(id="001", created="2026-01-01T00:00:00Z", profile="spotify",
                                        target_lufs=-14.0, ceiling_dbtp=-1.0, integrated_lufs=-14.02,
                                        true_peak_dbtp=-1.01, folder="renders/001"))
    ws.save(project)

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            row = app.screen.query_one("#projects", DataTable).get_row("judged")
            assert row == ["judged", "stems", "mastered", "-14.0", "-1.01", "fix the mix first"]
            await open_project(app, pilot, "judged")
            await pilot.press("v")
            await settle(app, pilot, lambda: isinstance(app.screen, ReportScreen))
            assert text_of(app, "#verdict") == "verdict: fix the mix first (2 findings below)"
            assert text_of(app, "#findings").splitlines() == ["- [fix the mix] vocals: clipped takes",
                                                              "- [minor] bass: wide low end (2.9 dB vs 0.0 dB)"]
            spark = app.screen.query_one("#short-term", Sparkline)
            assert list(spark.data) == [40.0, 44.5, 0.0, 48.0, 46.0]
            assert text_of(app, "#files") == str((folder / "master_24bit.wav").absolute())

    run(scenario())
