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

from textual.widgets import DataTable, Input, Sparkline, Static  # noqa: E402

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
    from textual.worker import WorkerFailed

    for _ in range(tries):
        try:
            await app.workers.wait_for_complete()
        except WorkerFailed:  # a job that failed or was cancelled: the UI tells it (asserted on by the tests)
            pass
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
            # the release checks: the short-term loudness sparkline, translation and codec tables
            checks = report_of(ws, "song", "001")["checks"]
            assert checks["status"] == "done"
            curve = checks["short_term"]["lufs"]
            spark = app.screen.query_one("#short-term", Sparkline)
            lowest = min(v for v in curve if v is not None)
            assert list(spark.data) == [max(lowest if v is None else v, -60.0) + 60.0 for v in curve]
            assert len(spark.data) >= 8  # 10 s of music, a value a second
            assert spark.region.height == 3 and spark.region.width > 40  # drawn, full width
            bars = "".join(strip.text for strip in spark.render_lines(spark.region.reset_offset))
            assert set(bars) - {" "} <= set("▁▂▃▄▅▆▇█") and "█" in bars
            assert "short-term loudness, once a second" in text_of(app, "#short-term-title")
            translation = app.screen.query_one("#translation", DataTable)
            assert [translation.get_row_at(i)[0] for i in range(translation.row_count)] == \
                [t["name"] for t in checks["translation"]]
            codec = app.screen.query_one("#codec", DataTable)
            available = [c for c in checks["codec"] if c["available"]]
            assert codec.row_count == len(checks["codec"]) and available
            mp3 = codec.get_row_at([c["codec"] for c in checks["codec"]].index("mp3"))
            assert mp3[0] == "MP3 320k" and mp3[1] == f"{available[0]['decoded_true_peak_dbtp']:.2f}"
            assert mp3[2] == ("no" if not available[0]["overs"] else mp3[2])

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
            # LU above -60; the silent second (None) is drawn at the curve's minimum (-20 LUFS)
            assert list(spark.data) == [40.0, 44.5, 40.0, 48.0, 46.0]
            assert text_of(app, "#files") == str((folder / "master_24bit.wav").absolute())

    run(scenario())


# ------------------------------------------------------------------ milestone 2: diagnosis, master, stems, rename

async def open_diagnosed(app, pilot, name: str) -> ProjectScreen:
    """Open project ``name`` and wait for its diagnosis (a thread worker started when it opens)."""
    await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
    screen = await open_project(app, pilot, name)
    await pilot.press("2")  # the diagnosis tab: measured in a thread (nothing stored yet)
    assert screen.diagnosis is None or screen.diagnosing is None
    await settle(app, pilot, lambda: screen.diagnosis is not None)
    assert screen.query_one("#findings", DataTable).has_focus
    return screen


def finding_index(screen: ProjectScreen, finding_id: str, stem: str) -> int:
    return [(f.id, f.stem) for f in screen.diagnosis.findings].index((finding_id, stem))


def test_apply_one_recommendation_then_all(tmp_path, demo_stems):
    from stemmaster import judge

    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("song", demo_stems)
    before = ws.load("song")

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_diagnosed(app, pilot, "song")
            findings = screen.query_one("#findings", DataTable)
            assert text_of(app, "#verdict-line").startswith(f"verdict: {screen.diagnosis.verdict} (")
            row = finding_index(screen, "wide_low_end", "bass")
            findings.move_cursor(row=row)
            assert findings.get_row_at(row)[:4] == ["major", "bass", "to apply", "bass low_end_mono crossover_hz=150"]
            assert "wide low end" in text_of(app, "#finding-detail")

            # a: this finding's repair only, as master --auto would make it
            await pilot.press("a")
            saved = ws.load("song")
            assert saved.stem("bass").chain["low_end_mono"] == {"enabled": True, "crossover_hz": 150.0}
            for stem in ("drums", "other", "vocals"):
                assert saved.stem(stem).chain == before.stem(stem).chain
            assert saved.master == before.master == {}  # the mix's own low-end finding is not this one
            assert messages(app)[-1] == "applied: bass low_end_mono crossover_hz=150.0 (wide_low_end)"
            assert findings.get_row_at(row)[2] == "applied"
            mix_row = finding_index(screen, "wide_low_end", "mix")
            assert findings.get_row_at(mix_row)[2] == "to apply"

            # A: every repair (judge.apply_auto), saved
            await pilot.press("A")
            saved = ws.load("song")
            expected = ws.load("song")
            expected.stems, expected.master = before.stems, before.master
            judge.apply_auto(expected, screen.diagnosis)
            assert {s.name: s.chain for s in saved.stems} == {s.name: s.chain for s in expected.stems}
            assert saved.master == expected.master
            assert saved.master["low_end_mono"]["crossover_hz"] == 150.0
            assert messages(app)[-1].startswith("applied 4 repairs: ")
            assert all(findings.get_row_at(i)[2] == "applied" for i in range(findings.row_count))
            # the stems tab shows the new chain
            await pilot.press("1")
            stems = screen.query_one("#stems", DataTable)
            stems.move_cursor(row=[s.name for s in screen.project.stems].index("bass"))
            await pilot.pause()
            assert screen.query_one("#chain", DataTable).get_row("low_end_mono.crossover_hz")[2] == "150"

    run(scenario())


@pytest.fixture(scope="module")
def loud_vocal_stems(tmp_path_factory) -> Path:
    """The demo stems with everything but the vocals 15 dB down: a vocal far over the rest (a mix decision)."""
    folder = tmp_path_factory.mktemp("loudvox") / "stems"
    folder.mkdir()
    for name, audio in make_demo_stems(duration_s=10).items():
        write_audio(folder / f"{name}.wav", audio if name == "vocals" else audio * 10 ** (-15 / 20), 44100)
    return folder


def test_mix_decision_is_shown_not_applied(tmp_path, loud_vocal_stems):
    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("loud", loud_vocal_stems)
    toml = ws.root / "loud" / "project.toml"
    original = toml.read_bytes()

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_diagnosed(app, pilot, "loud")
            row = finding_index(screen, "vocal_balance", "mix")
            finding = screen.diagnosis.findings[row]
            assert not finding.auto
            findings = screen.query_one("#findings", DataTable)
            findings.move_cursor(row=row)
            assert findings.get_row_at(row)[2] == "mix decision"
            await pilot.press("a")
            warning = messages(app, "warning")[-1]
            assert warning.startswith("mix/vocal_balance is a mix decision, left to you: not applied")
            assert "vocals gain gain_db=" in warning
            assert toml.read_bytes() == original
            # A applies the rest and says which mix decision it left
            await pilot.press("A")
            assert messages(app, "warning")[-1].startswith("not applied: mix/vocal_balance: a mix decision")
            assert ws.load("loud").stem("vocals").gain_db == 0.0

    run(scenario())


def test_master_settings_profile_and_bad_ceiling(tmp_path, demo_stems):
    from stemmaster.errors import SettingsError
    from stemmaster.master import MasterSettings

    from tui.screens import ProfileScreen

    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("song", demo_stems)
    toml = ws.root / "song" / "project.toml"

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            screen = await open_project(app, pilot, "song")
            await pilot.press("3")
            table = screen.query_one("#master", DataTable)
            assert table.has_focus
            assert [table.get_row_at(i) for i in range(3)] == [["profile", "spotify"], ["target LUFS", "-14"],
                                                                 ["ceiling dBTP", "-1"]]
            # the profile: chosen from the list
            await pilot.press("enter")
            await settle(app, pilot, lambda: isinstance(app.screen, ProfileScreen))
            await pilot.press("down")  # spotify -> apple
            await pilot.press("enter")
            await settle(app, pilot, lambda: app.screen is screen)
            saved = ws.load("song").master
            assert saved == MasterSettings().with_profile("apple").to_dict()
            assert saved["bus"]["target_lufs"] == -16.0
            assert [table.get_row_at(i)[1] for i in range(3)] == ["apple", "-16", "-1"]

            # an out-of-range ceiling: MasterSettings' one line, nothing saved, still editing
            table.move_cursor(row=2)
            await pilot.press("enter")
            field = screen.query_one("#edit", Input)
            assert field.has_focus and field.value == "-1"
            saved_bytes = toml.read_bytes()
            field.value = "+3"
            await pilot.press("enter")
            try:
                MasterSettings.from_dict(saved).with_bus(profile=None, ceiling_dbtp=3.0)
            except SettingsError as exc:
                expected = str(exc)
            assert messages(app, "error")[-1] == expected
            assert "\n" not in expected and "ceiling_dbtp" in expected
            assert toml.read_bytes() == saved_bytes
            assert field.has_focus and screen.editing is not None
            field.value = "-2"
            await pilot.press("enter")
            assert not field.display
            bus = ws.load("song").master["bus"]
            assert bus["ceiling_dbtp"] == -2.0 and bus["target_lufs"] == -16.0 and "profile" not in bus
            assert [table.get_row_at(i)[1] for i in range(3)] == ["custom", "-16", "-2"]

    run(scenario())


def test_stem_gain_mute_role(tmp_path, demo_stems):
    from stemmaster.errors import SettingsError
    from stemmaster.roles import validate_role

    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("song", demo_stems)
    toml = ws.root / "song" / "project.toml"
    try:
        validate_role("kazoo")
    except SettingsError as exc:
        bad_role = str(exc)

    async def edit(app, pilot, screen, key: str, text: str) -> None:
        chain = screen.query_one("#chain", DataTable)
        chain.move_cursor(row=[r.key for r in screen.setting_rows].index(key))
        chain.focus()
        await pilot.press("enter")
        screen.query_one("#edit", Input).value = text
        await pilot.press("enter")

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_diagnosed(app, pilot, "song")
            await pilot.press("1")
            stems = screen.query_one("#stems", DataTable)
            assert stems.has_focus
            stems.move_cursor(row=[s.name for s in screen.project.stems].index("other"))
            await pilot.pause()
            assert [r.key for r in screen.setting_rows][:4] == ["stem.gain_db", "stem.mute", "stem.solo", "stem.role"]
            original = toml.read_bytes()
            await edit(app, pilot, screen, "stem.gain_db", "30")
            assert messages(app, "error")[-1] == "other.gain_db = 30.0 is out of range (allowed -60.0 to 24.0)"
            assert toml.read_bytes() == original
            screen.query_one("#edit", Input).value = "-3.5"
            await pilot.press("enter")
            assert ws.load("song").stem("other").gain_db == -3.5
            assert stems.get_row("other")[2] == "-3.5"
            await edit(app, pilot, screen, "stem.mute", "yes")
            assert ws.load("song").stem("other").mute is True
            assert stems.get_row("other")[3] == "muted"
            await edit(app, pilot, screen, "stem.role", "kazoo")
            assert messages(app, "error")[-1] == bad_role
            screen.query_one("#edit", Input).value = "Vocals"
            await pilot.press("enter")
            saved = ws.load("song").stem("other")
            assert saved.role == "vocals" and saved.chain == ws.load("song").stem("other").chain
            assert stems.get_row("other")[1] == "vocals"
            # the stored diagnosis was of the old roles: measured again when the tab shows
            assert screen.diagnosis is None
            await pilot.press("2")
            await settle(app, pilot, lambda: screen.diagnosis is not None)
            assert "vocals" in [f.stem for f in screen.diagnosis.findings] or screen.diagnosis.measurements

    run(scenario())


def test_rename_and_taken_name(tmp_path, demo_stems):
    from tui.screens import RenameScreen

    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("alpha", demo_stems)
    ws.create_from_stems("beta", demo_stems)
    try:
        ws.rename("alpha", "beta")
    except StemmasterError as exc:
        taken = str(exc)

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            projects = app.screen
            projects.query_one("#projects", DataTable).move_cursor(row=0)
            await pilot.press("r")
            await settle(app, pilot, lambda: isinstance(app.screen, RenameScreen))
            field = app.screen.query_one("#new-name", Input)
            assert field.has_focus and field.value == "alpha"
            field.value = "beta"
            await pilot.press("enter")
            assert messages(app, "error")[-1] == taken
            assert isinstance(app.screen, RenameScreen)  # stays open to fix it
            field.value = "gamma"
            await pilot.press("enter")
            await settle(app, pilot, lambda: app.screen is projects)
            assert [r.name for r in projects.rows] == ["beta", "gamma"]
            assert projects.selected_name() == "gamma"
            assert messages(app)[-1] == "renamed project 'alpha' to 'gamma'"

    run(scenario())
    assert [p.name for p in ws.list_projects()] == ["beta", "gamma"]
    assert ws.load("gamma").name == "gamma"


def test_job_eta(tmp_path, demo_stems):
    from tui import model
    from tui.screens import JobPanel

    assert model.eta_text(10.0, 0.05) == ""  # not before 5 %
    assert model.eta_text(10.0, 0.25) == "ETA 0:30"
    assert model.eta_text(600.0, 0.1) == "ETA 1:30:00"
    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("song", demo_stems)

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            screen = await open_project(app, pilot, "song")
            panel = screen.query_one(JobPanel)
            now = [100.0]
            panel.clock = lambda: now[0]
            panel.start("master")
            now[0] = 103.0
            panel.show(0.04, "diagnosing")
            assert panel.eta == ""
            now[0] = 120.0
            panel.show(0.5, "rendering")
            assert panel.eta == "ETA 0:20"

    run(scenario())


def send_key(app, key: str, char: str | None = None) -> None:
    """Deliver a key as the terminal driver does (``pilot.press`` also waits for the process to be
    idle, up to a second or two while a job's thread keeps a core busy: no measure of the UI)."""
    from textual import events

    event = events.Key(key, char)
    event.set_sender(app)
    app.post_message(event)


async def until(pilot, condition, tries: int = 20000) -> bool:
    """Poll ``condition`` between turns of the UI's loop (no sleeping), at most ``tries`` turns."""
    for _ in range(tries):
        if condition():
            return True
        await pilot.pause(0)
    return condition()


def test_ui_answers_within_100ms_while_separating(tmp_path, tiny_models, monkeypatch):
    """A separation runs on the tiny model (a 240 s render: long enough on a quiet machine too); '?'
    opens the help screen within 100 ms of the key, measured from the key's delivery to the help
    screen being the app's screen, three times, while the job still runs.

    Between samples the UI is let settle (``pilot.pause(0)`` a few times: going back to the
    project screen repaints it). The measurement itself polls with ``asyncio.sleep(0)``, not
    ``pilot.pause(0)``: that one posts a callback to every widget on the screen and waits for
    them all, which under a busy core costs 50-130 ms by itself and would measure the harness.
    """
    import time

    import numpy as np

    from tui.screens import JobPanel

    monkeypatch.setenv("STEMMASTER_MODEL_REPO", str(tiny_models))
    render = tmp_path / "long.wav"
    write_audio(render, np.tile(demo_mix(make_demo_stems(duration_s=5)), (1, 48)), 44100)
    ws = Workspace(tmp_path / "ws")
    ws.create_from_render("long", render)

    async def turns_until(condition, tries: int = 100000) -> bool:
        for _ in range(tries):
            if condition():
                return True
            await asyncio.sleep(0)
        return condition()

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            screen = await open_project(app, pilot, "long")
            panel = screen.query_one(JobPanel)
            bar = panel.query_one("#job-bar")
            send_key(app, "s", "s")
            assert await until(pilot, lambda: screen.busy)
            # until the model is separating segments (past 5 %: the ETA shows)
            end = time.monotonic() + 180.0  # bounded by time: the model's speed depends on the machine
            while not (bar.progress > 8 or not screen.busy) and time.monotonic() < end:
                await pilot.pause(0.05)
            assert screen.busy and bar.progress > 8
            assert panel.eta.startswith("ETA ")
            delays = []
            for _ in range(3):
                for _ in range(5):
                    await pilot.pause(0)
                t0 = time.perf_counter()
                send_key(app, "question_mark", "?")
                assert await turns_until(lambda: isinstance(app.screen, HelpScreen))
                delays.append(time.perf_counter() - t0)
                send_key(app, "escape")
                assert await until(pilot, lambda: app.screen is screen)
            assert screen.busy and bar.progress < 95, (delays, bar.progress)  # the separation ran throughout
            assert max(delays) < 0.1, delays
            send_key(app, "c", "c")
            end = time.monotonic() + 120.0  # the model stops at its next segment
            while screen.busy and time.monotonic() < end:
                await pilot.pause(0.05)
            assert not screen.busy
            assert ws.load("long").stems == []
            assert "separation cancelled" in messages(app, "warning")

    run(scenario())


def test_export_from_the_project_screen(tmp_path, demo_stems):
    """x: the export dialog (a bad format is refused in place), then the deliverables of the latest
    render are written by a worker and their folder is named in a notification."""
    from stemmaster.pipeline import project_settings, render_project
    from tui.screens import ExportScreen

    ws = Workspace(tmp_path / "ws")
    project = ws.create_from_stems("song", demo_stems)
    render_project(project, ws.project_dir("song"), project_settings(project), "001", checks=False)

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            await open_project(app, pilot, "song")
            await pilot.press("x")
            await settle(app, pilot, lambda: isinstance(app.screen, ExportScreen))
            app.screen.query_one("#formats", Input).value = "wav24,ogg"
            await pilot.press("enter")
            await settle(app, pilot)
            assert isinstance(app.screen, ExportScreen)  # kept open
            assert any("unknown format(s) ogg" in m for m in messages(app, "error"))
            app.screen.query_one("#formats", Input).value = "wav24,flac16"
            app.screen.query_one("#versions", Input).value = "main,instrumental"
            await pilot.press("enter")
            folder = ws.root / "song" / "renders" / "001" / "deliverables"
            await settle(app, pilot, lambda: any("manifest.json lists them" in m for m in messages(app)))
            assert any(str(folder) in m and m.startswith("4 files") for m in messages(app))
            manifest = json.loads((folder / "manifest.json").read_text())
            assert sorted(r["file"] for r in manifest["files"]) == [
                "song_instrumental.flac", "song_instrumental.wav", "song_main.flac", "song_main.wav"]

    run(scenario())


def test_path_completion_in_the_new_project_dialog(tmp_path, demo_stems):
    from tui.model import complete_path

    (tmp_path / "Songs").mkdir()
    (tmp_path / "Songs" / "take one.wav").write_bytes(b"")
    (tmp_path / ".hidden").mkdir()
    assert complete_path(str(tmp_path / "So")) == str(tmp_path / "Songs") + "/"
    assert complete_path(str(tmp_path / "Songs" / "t")) == str(tmp_path / "Songs" / "take one.wav")
    assert complete_path(str(tmp_path / "nothing")) is None
    assert complete_path(str(tmp_path) + "/.h") == str(tmp_path / ".hidden") + "/"
    assert complete_path(str(tmp_path) + "/") == str(tmp_path / "Songs") + "/"  # hidden ones not offered

    ws = Workspace(tmp_path / "ws")

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            await pilot.press("n")
            await settle(app, pilot, lambda: isinstance(app.screen, NewProjectScreen))
            await pilot.press(*"song", "enter")
            await pilot.press(*(str(demo_stems.parent) + "/st"))
            await settle(app, pilot)
            await pilot.press("right")  # accept the suggestion, as in a shell
            await settle(app, pilot, lambda: app.screen.query_one("#path", Input).value == str(demo_stems) + "/")
            await pilot.press("enter")
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen) and ws.exists("song"))
            assert len(ws.load("song").stems) == 4

    run(scenario())


def test_stem_spectrum_view_follows_the_selected_stem(tmp_path, demo_stems):
    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("song", demo_stems)

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            screen = await open_project(app, pilot, "song")
            spark = screen.query_one("#stem-spectrum", Sparkline)
            first = screen.current_stem().name
            await settle(app, pilot, lambda: first in text_of(app, "#spectrum-title"))
            assert len(spark.data) == 30 and max(spark.data) == pytest.approx(60.0)
            shown = list(spark.data)
            await pilot.press("down")
            second = screen.current_stem().name
            assert second != first
            await settle(app, pilot, lambda: second in text_of(app, "#spectrum-title"))
            assert list(spark.data) != shown  # another stem, another spectrum
            if second == "bass":  # the bass's loudest band is low
                assert int(text_of(app, "#spectrum-title").split("near ")[1].split(" Hz")[0]) < 300

    run(scenario())


def test_master_auto_shows_before_and_after_in_the_report(tmp_path, demo_stems):
    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("song", demo_stems)

    async def scenario():
        app = StemmasterApp(ws)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot, lambda: isinstance(app.screen, ProjectsScreen))
            await open_project(app, pilot, "song")
            await pilot.press("M")
            await settle(app, pilot, lambda: isinstance(app.screen, ReportScreen))
            report = report_of(ws, "song", "001")
            assert report["auto"]["applied"]  # the repairs were recorded in the project
            assert ws.load("song").stem("bass").chain["low_end_mono"]["crossover_hz"] == 150.0
            table = app.screen.query_one("#auto", DataTable)
            rows = [table.get_row_at(i) for i in range(table.row_count)]
            by_key = {(r[0], r[1]): r for r in rows}
            assert by_key[("bass", "wide_low_end")][4] in ("resolved", "improved")
            assert len(rows) == len(report["auto"]["compare"])

    run(scenario())
