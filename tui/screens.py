"""The screens of the terminal UI: projects, one project, a render's report, and the modals."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import (DataTable, Footer, Header, Input, Label, OptionList, ProgressBar, Sparkline, Static,
                             TabbedContent, TabPane)
from textual.suggester import Suggester
from textual.worker import Worker, WorkerState

from stemmaster.errors import Cancelled, StemmasterError
from stemmaster.project import Project, RenderRecord
from stemmaster.workspace import Workspace

from tui import model


# ------------------------------------------------------------------ jobs

class JobProgress(Message):
    """Posted from a job's thread: how far it is and what it does (the callback's arguments)."""

    def __init__(self, fraction: float, text: str) -> None:
        super().__init__()
        self.fraction = fraction
        self.text = text


def thread_progress(target, cancel: threading.Event | None = None) -> Callable[[float, str], None]:
    """A progress callback for a job's thread that posts ``JobProgress`` to ``target``.

    ``post_message`` is Textual's thread-safe way to hand something to the UI
    thread and, unlike ``call_from_thread``, it never makes the job wait for
    the UI (nor hang when the app is leaving). Repeats are dropped: at most one
    message per half per cent or new text.
    """
    last: list[Any] = [None]

    def progress(fraction: float, text: str) -> None:
        key = (int(max(0.0, min(1.0, fraction)) * 200), text)
        if key == last[0] or (cancel is not None and cancel.is_set()):
            return
        last[0] = key
        target.post_message(JobProgress(fraction, text))

    return progress


class JobPanel(Vertical):
    """A label, a progress bar and its ETA, shown while a job runs.

    The ETA is the time so far scaled by what is left (``model.eta_text``),
    shown once the job is over 5 % done; ``clock`` is a monotonic clock.
    """

    DEFAULT_CSS = """
    JobPanel { height: 2; display: none; padding: 0 1; }
    JobPanel.running { display: block; }
    JobPanel Label { width: 1fr; color: $text-accent; }
    JobPanel Horizontal { height: 1; }
    JobPanel ProgressBar { width: 1fr; }
    JobPanel Bar { width: 1fr; }
    JobPanel #job-eta { width: 13; color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(id=id)
        self.clock = clock
        self.started = 0.0
        self.title_text = ""

    def compose(self) -> ComposeResult:
        yield Label("", id="job-label")
        with Horizontal():
            yield ProgressBar(total=100, show_eta=False, id="job-bar")
            yield Label("", id="job-eta")

    def start(self, title: str) -> None:
        self.title_text = title
        self.started = self.clock()
        self.query_one("#job-label", Label).update(f"{title}: starting")
        self.query_one("#job-eta", Label).update("")
        self.query_one("#job-bar", ProgressBar).update(total=100, progress=0)
        self.add_class("running")

    def show(self, fraction: float, text: str) -> None:
        fraction = max(0.0, min(1.0, fraction))
        self.query_one("#job-label", Label).update(f"{self.title_text}: {text}")
        self.query_one("#job-bar", ProgressBar).update(progress=round(100 * fraction, 1))
        self.query_one("#job-eta", Label).update(model.eta_text(self.clock() - self.started, fraction))

    @property
    def eta(self) -> str:
        return str(self.query_one("#job-eta", Label).content)

    def note(self, text: str) -> None:
        self.query_one("#job-label", Label).update(f"{self.title_text}: {text}")
        self.query_one("#job-eta", Label).update("")

    def stop(self) -> None:
        self.remove_class("running")


def tell_error(node, exc: BaseException) -> None:
    """A job's failure as a notification: the CLI's one line for a StemmasterError."""
    if isinstance(exc, Cancelled):
        node.app.notify(str(exc), title="cancelled", severity="warning", markup=False)
    elif isinstance(exc, StemmasterError):
        node.app.notify(str(exc), title="error", severity="error", timeout=12, markup=False)
    else:  # a bug: say what it is, keep the app alive
        node.app.notify(f"{type(exc).__name__}: {exc}", title="internal error", severity="error",
                        timeout=20, markup=False)


# ------------------------------------------------------------------ tables

class ProjectTable(DataTable):
    """The projects; enter opens one."""

    BINDINGS = [Binding("enter", "select_cursor", "Open")]


class StemTable(DataTable):
    """A project's stems; enter moves to the chosen stem's settings."""

    BINDINGS = [Binding("enter", "select_cursor", "Settings")]


class SettingTable(DataTable):
    """A stem's own settings and repair chain, one setting a row; enter edits the chosen one."""

    BINDINGS = [Binding("enter", "select_cursor", "Edit")]


class FindingTable(DataTable):
    """The diagnosis' findings; a applies the chosen one's repair, A all of them."""


class MasterTable(DataTable):
    """The bus master's profile, target and ceiling; enter edits the chosen one."""

    BINDINGS = [Binding("enter", "select_cursor", "Edit")]


class InfoTable(DataTable):
    """A small read-only table in the report (not focusable: the report scrolls as one)."""

    can_focus = False


# ------------------------------------------------------------------ modals

class HelpScreen(ModalScreen[None]):
    """The keys of every screen."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", key_display="esc")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 74; max-height: 22; border: round $primary; padding: 0 1;
                                   background: $surface; }
    """

    TEXT = """\
Projects
  up/down  choose a project        enter  open it
  n        new project (a render file or a folder of stems)
  r        rename the project      d  delete it (asks first)
Project: tabs 1 stems, 2 diagnosis, 3 master
  m  master (separates a render project first if needed)
  M  master --auto: apply every repair, master, measure each finding again
  s  separate a render project     c  cancel the running job
  v  the latest render's report    escape  back to projects
  x  export the latest render: versions, formats, rate (deliverables/)
 1 Stems: up/down a stem or setting; tab stems <-> settings
  enter/e  edit the chosen setting (enter saves, escape cancels):
           gain_db (-60..+24), mute, solo, role, or a repair setting
 2 Diagnosis: measured when the tab first shows, then stored
  a  apply the chosen finding's repair (not a mix decision)
  A  apply every repair, as master --auto does
  d  measure the stems again
 3 Master
  enter/e  edit: profile (from a list), target LUFS, ceiling dBTP
Report
  up/down/pgup/pgdn  scroll               escape  back
Everywhere
  ?  this help        q  quit (a running job is cancelled first)"""

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.TEXT, markup=False)
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y or enter confirms, n or escape declines."""

    BINDINGS = [Binding("y,enter", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 70; height: auto; border: thick $error; padding: 1 2; background: $surface; }
    ConfirmScreen #question { margin-bottom: 1; }
    ConfirmScreen #hint { color: $text-muted; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, id="question", markup=False)
            yield Static("y: yes    n / escape: no", id="hint")
        yield Footer()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class PathSuggester(Suggester):
    """Completes a typed path from the file system (right arrow or end accepts, as in a shell)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return model.complete_path(value)


class NewProjectScreen(ModalScreen[str | None]):
    """A name and a path (a render file or a folder of stems); the import runs in a thread.

    An error (bad name, missing file, unreadable audio) is notified with the
    CLI's one line and the modal stays open to fix it; on success it closes
    with the new project's name.
    """

    BINDINGS = [Binding("escape", "close", "Cancel")]

    DEFAULT_CSS = """
    NewProjectScreen { align: center middle; }
    NewProjectScreen > Vertical { width: 76; height: auto; border: thick $primary; padding: 0 1;
                                  background: $surface; }
    NewProjectScreen Label { margin-top: 1; }
    NewProjectScreen #hint { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, ws: Workspace) -> None:
        super().__init__()
        self.ws = ws
        self.importing = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("New project: name")
            yield Input(placeholder="song name", id="name")
            yield Label("Path: a render file (WAV/FLAC/MP3/OGG) or a folder of stems")
            yield Input(placeholder="/path/to/song.wav or /path/to/stems/", id="path", suggester=PathSuggester())
            yield Static("enter: next / create    right arrow: complete the path    escape: cancel", id="hint")
            yield JobPanel(id="import-job")
        yield Footer()

    @on(Input.Submitted, "#name")
    def _next(self) -> None:
        self.query_one("#path", Input).focus()

    @on(Input.Submitted, "#path")
    def _create(self) -> None:
        if self.importing:
            return
        name = self.query_one("#name", Input).value
        path = self.query_one("#path", Input).value
        self.importing = True
        self.query_one(JobPanel).start("import")
        progress = thread_progress(self)
        self.run_worker(lambda: model.create_project(self.ws, name, path, progress), name="import",
                        group="import", thread=True, exit_on_error=False)

    def on_job_progress(self, message: JobProgress) -> None:
        self.query_one(JobPanel).show(message.fraction, message.text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "import" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR,
                                                                WorkerState.CANCELLED):
            return
        self.importing = False
        self.query_one(JobPanel).stop()
        if event.state == WorkerState.SUCCESS:
            project: Project = event.worker.result
            self.app.notify(f"created project {project.name!r} ({project.source_kind}, {project.sample_rate} Hz, "
                            f"{len(project.stems)} stems)", markup=False)
            self.dismiss(project.name)
        elif event.worker.error is not None:
            tell_error(self, event.worker.error)

    def action_close(self) -> None:
        if self.importing:
            self.app.notify("the import is running; it cannot be interrupted", severity="warning")
            return
        self.dismiss(None)


class RenameScreen(ModalScreen[str | None]):
    """The project's new name: enter renames (the workspace's one-line error keeps it open), escape cancels."""

    BINDINGS = [Binding("escape", "close", "Cancel")]

    DEFAULT_CSS = """
    RenameScreen { align: center middle; }
    RenameScreen > Vertical { width: 70; height: auto; border: thick $primary; padding: 0 1; background: $surface; }
    RenameScreen Label { margin-top: 1; }
    RenameScreen #hint { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, ws: Workspace, name: str) -> None:
        super().__init__()
        self.ws = ws
        self.old = name

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Rename project {self.old!r} to", markup=False)
            yield Input(value=self.old, id="new-name")
            yield Static("enter: rename    escape: cancel", id="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#new-name", Input).focus()

    @on(Input.Submitted, "#new-name")
    def _rename(self, event: Input.Submitted) -> None:
        try:
            project = model.rename_project(self.ws, self.old, event.value)
        except StemmasterError as exc:
            tell_error(self, exc)
            return
        self.app.notify(f"renamed project {self.old!r} to {project.name!r}", markup=False)
        self.dismiss(project.name)

    def action_close(self) -> None:
        self.dismiss(None)


class ExportScreen(ModalScreen[dict | None]):
    """Versions, formats and rate of an export of the latest render; enter starts it (a bad field's
    one-line error keeps the dialog open), escape cancels."""

    BINDINGS = [Binding("escape", "close", "Cancel")]

    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    ExportScreen > Vertical { width: 76; height: auto; border: thick $primary; padding: 0 1; background: $surface; }
    ExportScreen Label { margin-top: 1; }
    ExportScreen #hint { color: $text-muted; margin-top: 1; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Versions (main, instrumental, acapella, tv, performance)", markup=False)
            yield Input(value="main,instrumental", id="versions")
            yield Label("Formats (wav16, wav24, wav32f, flac16, flac24, mp3)", markup=False)
            yield Input(value="wav24,mp3", id="formats")
            yield Label("Sample rate (44100 or 48000; empty: the render's)", markup=False)
            yield Input(value="", id="rate")
            yield Static("enter: export    tab: next field    escape: cancel", id="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#versions", Input).focus()

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        try:
            request = model.parse_export_request(self.query_one("#versions", Input).value,
                                                 self.query_one("#formats", Input).value,
                                                 self.query_one("#rate", Input).value)
        except StemmasterError as exc:
            tell_error(self, exc)
            return
        self.dismiss(request)

    def action_close(self) -> None:
        self.dismiss(None)


class ProfileScreen(ModalScreen[str | None]):
    """The release profiles to choose from: enter chooses, escape cancels."""

    BINDINGS = [Binding("escape", "close", "Cancel")]

    DEFAULT_CSS = """
    ProfileScreen { align: center middle; }
    ProfileScreen > Vertical { width: 78; height: auto; max-height: 20; border: thick $primary; padding: 0 1;
                               background: $surface; }
    ProfileScreen OptionList { height: auto; max-height: 12; }
    """

    def __init__(self, current: str | None) -> None:
        super().__init__()
        self.current = current
        self.choices = model.profile_choices()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Release profile (target, true-peak ceiling)")
            yield OptionList(*[text for _, text in self.choices], id="profiles")
        yield Footer()

    def on_mount(self) -> None:
        options = self.query_one("#profiles", OptionList)
        names = [name for name, _ in self.choices]
        options.highlighted = names.index(self.current) if self.current in names else 0
        options.focus()

    @on(OptionList.OptionSelected, "#profiles")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[event.option_index][0])

    def action_close(self) -> None:
        self.dismiss(None)


# ------------------------------------------------------------------ projects

class ProjectsScreen(Screen):
    """The workspace's projects."""

    BINDINGS = [
        Binding("n", "new", "New"),
        Binding("d", "delete", "Delete"),
        Binding("r", "rename", "Rename"),
    ]

    DEFAULT_CSS = """
    ProjectsScreen #where { height: 1; padding: 0 1; color: $text-muted; }
    ProjectsScreen #projects { height: 1fr; }
    ProjectsScreen #empty { padding: 1 2; color: $text-muted; display: none; }
    ProjectsScreen.empty #empty { display: block; }
    """

    def __init__(self, ws: Workspace) -> None:
        super().__init__()
        self.ws = ws
        self.rows: list[model.ProjectRow] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"workspace {self.ws.root}", id="where", markup=False)
        table = ProjectTable(id="projects", cursor_type="row", zebra_stripes=True)
        table.add_columns("project", "source", "state", "LUFS", "dBTP", "last verdict")
        yield table
        yield Static("No projects yet: press n to create one from a render file or a folder of stems.", id="empty")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "projects"
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self, select: str | None = None) -> None:
        table = self.query_one("#projects", DataTable)
        current = select or self.selected_name()
        try:
            self.rows = model.project_rows(self.ws)
        except StemmasterError as exc:
            self.rows = []
            tell_error(self, exc)
        table.clear()
        for row in self.rows:
            table.add_row(*row.cells(), key=row.name)
        self.set_class(not self.rows, "empty")
        names = [r.name for r in self.rows]
        if current in names:
            table.move_cursor(row=names.index(current))
        table.focus()

    def selected(self) -> model.ProjectRow | None:
        table = self.query_one("#projects", DataTable)
        if not self.rows or table.cursor_row is None or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def selected_name(self) -> str | None:
        row = self.selected() if self.is_mounted and self.rows else None
        return row.name if row else None

    @on(DataTable.RowSelected, "#projects")
    def _row_selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        row = self.selected()
        if row is None:
            return
        try:
            project = self.ws.load(row.name)  # fresh from disk
        except StemmasterError as exc:
            tell_error(self, exc)
            return
        self.app.push_screen(ProjectScreen(self.ws, project))

    def action_new(self) -> None:
        def created(name: str | None) -> None:
            if name:
                self.reload(select=name)

        self.app.push_screen(NewProjectScreen(self.ws), created)

    def action_delete(self) -> None:
        row = self.selected()
        if row is None:
            return
        folder = self.ws.root / row.name

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            try:
                model.delete_project(self.ws, row.name)
            except StemmasterError as exc:
                tell_error(self, exc)
                return
            self.app.notify(f"deleted project {row.name!r} ({folder})", markup=False)
            self.reload()

        self.app.push_screen(ConfirmScreen(f"Delete project {row.name!r}?\n{folder}\n"
                                           "Its sources, stems and every render are removed."), answer)

    def action_rename(self) -> None:
        row = self.selected()
        if row is None:
            return

        def renamed(name: str | None) -> None:
            if name:
                self.reload(select=name)

        self.app.push_screen(RenameScreen(self.ws, row.name), renamed)


# ------------------------------------------------------------------ one project

class ProjectScreen(Screen):
    """A project in three tabs: stems (level, role, repair chain), the diagnosis and its repairs,
    and the bus master's settings; with master and separation jobs."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("1", "tab('tab-stems')", "Stems", show=False),
        Binding("2", "tab('tab-diagnosis')", "Diagnosis", show=False),
        Binding("3", "tab('tab-master')", "Master settings", show=False),
        Binding("e", "edit", "Edit", show=False),
        Binding("m", "master", "Master"),
        Binding("M", "master_auto", "Master --auto", key_display="M", show=False),
        Binding("s", "separate", "Separate"),
        Binding("c", "cancel", "Cancel job"),
        Binding("v", "report", "Report"),
        Binding("x", "export", "Export"),
        Binding("a", "apply", "Apply"),
        Binding("A", "apply_all", "Apply all", key_display="A"),
        Binding("d", "diagnose", "Diagnose", show=False),
    ]

    DEFAULT_CSS = """
    ProjectScreen #info { height: 1; padding: 0 1; color: $text-muted; }
    ProjectScreen #tabs { height: 1fr; }
    ProjectScreen TabPane { padding: 0; }
    ProjectScreen #stems { height: auto; max-height: 7; }
    ProjectScreen #chain-title, ProjectScreen #verdict-line, ProjectScreen #master-title {
        height: 1; padding: 0 1; color: $text-accent; }
    ProjectScreen #chain { height: 1fr; }
    ProjectScreen #spectrum-title { height: 1; padding: 0 1; color: $text-muted; }
    ProjectScreen #stem-spectrum { height: 2; margin: 0 1; }
    ProjectScreen #findings { height: 1fr; }
    ProjectScreen #finding-detail { height: auto; max-height: 4; padding: 0 1; color: $text-muted; }
    ProjectScreen #master { height: auto; }
    ProjectScreen #master-hint { padding: 0 1; color: $text-muted; }
    ProjectScreen #edit { display: none; }
    ProjectScreen.editing #edit { display: block; }
    """

    def __init__(self, ws: Workspace, project: Project) -> None:
        super().__init__()
        self.ws = ws
        self.project = project
        self.cancel_event = threading.Event()
        self.job: Worker | None = None
        self.job_kind = ""
        self.editing: tuple[str, str, str] | None = None  # ("stem", stem name, KEY) or ("master", "", KEY)
        self.setting_rows: list[model.SettingRow] = []
        self.diagnosis = None  # stemmaster.diagnosis.Diagnosis once measured
        self.diagnosing: Worker | None = None
        self.diagnosis_idle = threading.Event()  # set while no diagnosis runs (a job waits for it)
        self.diagnosis_idle.set()
        self.diagnosis_error = ""
        self.finding_rows: list[model.FindingRow] = []
        self.master_rows: list[model.MasterRow] = []

    @property
    def busy(self) -> bool:
        return self.job is not None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="info", markup=False)
        with TabbedContent(id="tabs", initial="tab-stems"):
            with TabPane("1 Stems", id="tab-stems"):
                stems = StemTable(id="stems", cursor_type="row")
                stems.add_columns("stem", "role", "gain dB", "state", "level LUFS")
                yield stems
                yield Static("", id="spectrum-title", markup=False)
                yield Sparkline([], id="stem-spectrum")
                yield Static("", id="chain-title", markup=False)
                chain = SettingTable(id="chain", cursor_type="row", zebra_stripes=True)
                chain.add_columns("processor", "setting", "value")
                yield chain
            with TabPane("2 Diagnosis", id="tab-diagnosis"):
                yield Static("", id="verdict-line", markup=False)
                findings = FindingTable(id="findings", cursor_type="row", zebra_stripes=True)
                findings.add_columns("severity", "stem", "state", "repair", "finding")
                yield findings
                yield Static("", id="finding-detail", markup=False)
            with TabPane("3 Master", id="tab-master"):
                yield Static("bus master (enter edits; a target or ceiling of your own leaves the profile)",
                             id="master-title", markup=False)
                table = MasterTable(id="master", cursor_type="row")
                table.add_columns("setting", "value")
                yield table
                yield Static("", id="master-hint", markup=False)
        yield JobPanel(id="job")
        yield Input(id="edit")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.project.name
        self.refresh_all()
        self.query_one("#stems", DataTable).focus()
        self.load_cached_diagnosis()

    # -- display

    def refresh_all(self) -> None:
        p = self.project
        last = p.renders[-1] if p.renders else None
        last_txt = (f"last {model.fmt(last.integrated_lufs)} LUFS {model.fmt(last.true_peak_dbtp, 2)} dBTP"
                    if last else "not mastered yet")
        n = len(p.renders)
        self.query_one("#info", Static).update(
            f"{p.name} | {p.source_kind} | {p.sample_rate} Hz | {len(p.stems)} stems | "
            f"{n} render{'' if n == 1 else 's'} | {last_txt}")
        table = self.query_one("#stems", DataTable)
        row = table.cursor_row
        levels = model.stem_levels(self.ws, p)
        table.clear()
        for s in p.stems:
            table.add_row(s.name, s.role, f"{s.gain_db:+.1f}", model.stem_state(s),
                          model.fmt(levels.get(s.name)), key=s.name)
        if p.stems:
            table.move_cursor(row=min(row or 0, len(p.stems) - 1))
        self.refresh_chain()
        self.refresh_findings()
        self.refresh_master()
        self.refresh_bindings()

    def current_stem(self):
        table = self.query_one("#stems", DataTable)
        if not self.project.stems:
            return None
        return self.project.stems[max(0, min(table.cursor_row or 0, len(self.project.stems) - 1))]

    def refresh_chain(self) -> None:
        stem = self.current_stem()
        title = self.query_one("#chain-title", Static)
        chain = self.query_one("#chain", DataTable)
        row = chain.cursor_row
        chain.clear()
        if stem is None:
            title.update("no stems yet: s separates the render, m separates and masters"
                         if self.project.source_kind == "render" else "no stems")
            self.setting_rows = []
            return
        repairs = model.chain_rows(stem)
        self.setting_rows = model.stem_rows(stem) + repairs
        title.update(f"repair chain of {stem.name} ({stem.role})" + ("" if repairs else ": no repair"))
        for r in self.setting_rows:
            chain.add_row(r.kind, r.setting, r.value, key=r.key)
        if self.setting_rows:
            chain.move_cursor(row=min(row or 0, len(self.setting_rows) - 1))

    def refresh_findings(self) -> None:
        line = self.query_one("#verdict-line", Static)
        table = self.query_one("#findings", DataTable)
        row = table.cursor_row
        table.clear()
        self.finding_rows = []
        if self.diagnosis is None:
            if self.diagnosing is not None:
                line.update("diagnosing the stems...")
            elif self.diagnosis_error:
                line.update(f"no diagnosis: {self.diagnosis_error}")
            else:
                line.update("no diagnosis yet" + (": the project has no stems" if not self.project.stems
                                                  else ": 2 (this tab) or d measures the stems"))
            self.query_one("#finding-detail", Static).update("")
            return
        try:
            self.finding_rows = model.finding_rows(self.project, self.diagnosis)
        except StemmasterError as exc:
            line.update(f"no diagnosis: {exc}")
            return
        n = len(self.finding_rows)
        line.update(f"verdict: {self.diagnosis.verdict} ({n} finding{'' if n == 1 else 's'}; "
                    "a applies the chosen repair, A all)" if n else f"verdict: {self.diagnosis.verdict} (no findings)")
        for i, r in enumerate(self.finding_rows):
            table.add_row(*r.cells(), key=str(i))
        if self.finding_rows:
            table.move_cursor(row=min(row or 0, n - 1))
        self.refresh_finding_detail()

    def current_finding(self) -> int | None:
        if not self.finding_rows:
            return None
        table = self.query_one("#findings", DataTable)
        return max(0, min(table.cursor_row or 0, len(self.finding_rows) - 1))

    def refresh_finding_detail(self) -> None:
        index = self.current_finding()
        detail = self.query_one("#finding-detail", Static)
        if index is None:
            detail.update("")
            return
        r = self.finding_rows[index]
        detail.update(f"{r.message}\nrepair: {r.repair} ({r.state})")

    @on(DataTable.RowHighlighted, "#findings")
    def _finding_changed(self) -> None:
        self.refresh_finding_detail()

    def refresh_master(self) -> None:
        table = self.query_one("#master", DataTable)
        hint = self.query_one("#master-hint", Static)
        row = table.cursor_row
        table.clear()
        try:
            self.master_rows = model.master_rows(self.project)
        except StemmasterError as exc:
            self.master_rows = []
            hint.update(f"the recorded master settings are not valid: {exc}")
            return
        for r in self.master_rows:
            table.add_row(r.label, r.value, key=r.key)
        table.move_cursor(row=min(row or 0, len(self.master_rows) - 1))
        hint.update("profiles: " + ", ".join(name for name, _ in model.profile_choices()))

    @on(DataTable.RowHighlighted, "#stems")
    def _stem_changed(self) -> None:
        self.refresh_chain()
        self.refresh_spectrum()

    def refresh_spectrum(self) -> None:
        """The selected stem's spectrum, measured in a thread (a file read) and drawn when it is done."""
        stem = self.current_stem()
        if stem is None:
            return
        ws, project, name = self.ws, self.project, stem.name

        def measure():
            return name, model.stem_spectrum(ws, project, name)

        self.run_worker(measure, name="spectrum", group="spectrum", thread=True, exclusive=True,
                        exit_on_error=False)

    def action_tab(self, pane: str) -> None:
        if self.editing:
            self.end_edit()
        self.query_one("#tabs", TabbedContent).active = pane
        target = {"tab-stems": "#stems", "tab-diagnosis": "#findings", "tab-master": "#master"}[pane]
        self.query_one(target, DataTable).focus()

    # -- the diagnosis

    def load_cached_diagnosis(self) -> None:
        """The stored diagnosis when it is that of the current stems (diagnosis.json: a quick read)."""
        if self.diagnosis is None and self.project.stems:
            try:
                self.diagnosis = model.cached_diagnosis(self.ws, self.project)
            except (StemmasterError, OSError):
                self.diagnosis = None
        self.refresh_findings()

    def ensure_diagnosis(self) -> None:
        """The stored diagnosis, else (when the diagnosis tab shows) a new one measured in a thread."""
        self.load_cached_diagnosis()
        if self.diagnosis is None and self.query_one("#tabs", TabbedContent).active == "tab-diagnosis":
            self.start_diagnosis()

    @on(TabbedContent.TabActivated, "#tabs")
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()
        if event.pane.id == "tab-diagnosis":
            self.ensure_diagnosis()

    def start_diagnosis(self, fresh: bool = False) -> None:
        """Diagnose the stems in a thread (diagnosis.json answers at once while the stems are unchanged)."""
        if not self.project.stems or self.diagnosing is not None:
            self.refresh_findings()
            return
        ws, project, idle = self.ws, self.project, self.diagnosis_idle
        self.diagnosis_error = ""
        idle.clear()

        def run():
            try:
                return model.diagnose(ws, project, fresh=fresh)
            finally:
                idle.set()

        self.diagnosing = self.run_worker(run, name="diagnose", group="diagnose", thread=True, exit_on_error=False)
        self.refresh_findings()

    def action_diagnose(self) -> None:
        if self.diagnosing is not None:
            return
        if not self.project.stems:
            self.app.notify("the project has no stems yet: separate it first (s)", severity="warning")
            return
        self.start_diagnosis(fresh=True)

    def diagnosis_done(self, worker: Worker) -> None:
        self.diagnosing = None
        if worker.state == WorkerState.SUCCESS:
            self.diagnosis = worker.result
        elif worker.error is not None:
            self.diagnosis_error = " ".join(str(worker.error).split())
            tell_error(self, worker.error)
        self.refresh_findings()

    def _refuse_while_busy(self, what: str) -> bool:
        if self.busy:
            self.app.notify(f"a {self.job_kind} job is running: wait for it or cancel it (c) before {what}",
                            severity="warning")
            return True
        return False

    def action_apply(self) -> None:
        index = self.current_finding()
        if index is None:
            self.app.notify("no finding to apply" + ("" if self.diagnosis else ": the stems are not diagnosed yet"
                                                     " (2 shows the diagnosis)"), severity="warning")
            return
        if self._refuse_while_busy("applying a repair"):
            return
        try:
            result = model.apply_finding(self.ws, self.project, self.diagnosis, index)
        except model.NotApplied as exc:
            self.app.notify(str(exc), title="not applied", severity="warning", timeout=10, markup=False)
            return
        except StemmasterError as exc:
            tell_error(self, exc)
            return
        self.app.notify("applied: " + "; ".join(result.applied), markup=False)
        self.refresh_chain()
        self.refresh_findings()
        self.refresh_master()

    def action_apply_all(self) -> None:
        if self.diagnosis is None:
            self.app.notify("the stems are not diagnosed yet (2 shows the diagnosis)", severity="warning")
            return
        if self._refuse_while_busy("applying repairs"):
            return
        try:
            result = model.apply_all(self.ws, self.project, self.diagnosis)
        except StemmasterError as exc:
            tell_error(self, exc)
            return
        n = len(result.applied)
        self.app.notify(f"applied {n} repair{'' if n == 1 else 's'}" + (": " + "; ".join(result.applied) if n else ""),
                        markup=False)
        decisions = [s for s in result.skipped if "mix decision" in s]
        if decisions:
            self.app.notify("not applied: " + "; ".join(decisions), title="mix decisions", severity="warning",
                            timeout=10, markup=False)
        self.refresh_chain()
        self.refresh_findings()
        self.refresh_master()

    # -- editing

    @on(DataTable.RowSelected, "#stems")
    def _stem_chosen(self) -> None:
        self.query_one("#chain", DataTable).focus()

    @on(DataTable.RowSelected, "#chain")
    def _setting_chosen(self) -> None:
        self.action_edit()

    @on(DataTable.RowSelected, "#master")
    def _master_chosen(self) -> None:
        self.edit_master()

    def action_edit(self) -> None:
        if self.query_one("#tabs", TabbedContent).active == "tab-master":
            self.edit_master()
            return
        stem = self.current_stem()
        chain = self.query_one("#chain", DataTable)
        if stem is None or not self.setting_rows:
            return
        if self._refuse_while_busy("editing"):
            return
        row = self.setting_rows[max(0, min(chain.cursor_row or 0, len(self.setting_rows) - 1))]
        self.begin_edit(("stem", stem.name, row.key), f"{stem.name}: {row.key}", row.value)

    def edit_master(self) -> None:
        if not self.master_rows or self._refuse_while_busy("editing"):
            return
        table = self.query_one("#master", DataTable)
        row = self.master_rows[max(0, min(table.cursor_row or 0, len(self.master_rows) - 1))]
        if row.key == "profile":
            def chosen(name: str | None) -> None:
                if name:
                    self.save_master("profile", name)

            self.app.push_screen(ProfileScreen(row.value), chosen)
            return
        self.begin_edit(("master", "", row.key), f"bus {row.label}", row.value)

    def begin_edit(self, target: tuple[str, str, str], title: str, value: str) -> None:
        self.editing = target
        field = self.query_one("#edit", Input)
        field.border_title = f"{title} (enter saves, escape cancels)"
        field.value = value
        self.add_class("editing")
        field.focus()

    def save_master(self, key: str, text: str) -> bool:
        try:
            settings = model.set_master_value(self.ws, self.project, key, text)
        except StemmasterError as exc:
            tell_error(self, exc)
            return False
        bus = settings.bus
        self.app.notify(f"saved bus: profile {model.profile_label(self.project)}, target {bus.target_lufs:g} LUFS, "
                        f"ceiling {bus.ceiling_dbtp:g} dBTP", markup=False)
        self.refresh_master()
        return True

    @on(Input.Submitted, "#edit")
    def _edit_submitted(self, event: Input.Submitted) -> None:
        if self.editing is None:
            return
        scope, stem_name, key = self.editing
        if scope == "master":
            if self.save_master(key, event.value):
                self.end_edit()
            return  # else stay in the field to fix the value
        try:
            value = model.set_setting(self.ws, self.project, stem_name, key, event.value)
        except StemmasterError as exc:
            tell_error(self, exc)
            return  # stay in the field to fix the value
        self.app.notify(f"saved {stem_name} {key} = {model.fmt_setting(value)}", markup=False)
        self.end_edit()
        if key.startswith(f"{model.STEM_KIND}."):
            self.refresh_all()
            if key == f"{model.STEM_KIND}.role":  # the diagnosis depends on the roles
                self.diagnosis = None
                self.ensure_diagnosis()
        else:
            self.refresh_chain()
            self.refresh_findings()

    def end_edit(self) -> None:
        scope = self.editing[0] if self.editing else "stem"
        self.editing = None
        self.remove_class("editing")
        self.query_one("#master" if scope == "master" else "#chain", DataTable).focus()

    # -- jobs

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.busy
        if action == "separate":
            return self.project.source_kind == "render"
        if action in ("apply", "apply_all") and self.is_mounted:
            if self.query_one("#tabs", TabbedContent).active != "tab-diagnosis":
                return False  # the findings are on the diagnosis tab
        if action in ("master", "master_auto", "edit", "apply", "apply_all", "export") and self.busy:
            return None  # shown, disabled
        if action in ("report", "export"):
            return bool(self.project.renders)
        return True

    def start_job(self, kind: str, fn: Callable[..., Any]) -> None:
        if self.busy:
            self.app.notify(f"a {self.job_kind} job is running (c cancels it)", severity="warning")
            return
        if self.editing:
            self.end_edit()
        self.cancel_event = threading.Event()
        event = self.cancel_event
        self.job_kind = kind
        self.query_one(JobPanel).start(kind)
        progress = thread_progress(self, event)
        ws, project, diagnosis_idle = self.ws, self.project, self.diagnosis_idle

        def run() -> Any:
            from textual.worker import get_current_worker

            worker = get_current_worker()
            # a diagnosis running now writes diagnosis.json, which the master reads: not measured twice
            while not diagnosis_idle.wait(0.05):
                if event.is_set() or worker.is_cancelled:
                    break
            return fn(ws, project, progress, lambda: event.is_set() or worker.is_cancelled)

        self.job = self.run_worker(run, name=kind, group="job", thread=True, exit_on_error=False)
        self.app_jobs().add(event)
        self.refresh_bindings()

    def app_jobs(self) -> set:
        return getattr(self.app, "running_jobs", set())

    def action_master(self) -> None:
        self.start_job("master", model.master_job)

    def action_master_auto(self) -> None:
        """As `stemmaster master --auto`: the diagnosis' repairs recorded, then the master, then
        each finding measured again (the report view shows before -> after)."""
        self.start_job("master", lambda ws, project, progress, cancel: model.master_job(
            ws, project, progress, cancel, auto=True))

    def action_separate(self) -> None:
        if self.project.source_kind != "render":
            self.app.notify("this project was made from stems; there is nothing to separate", severity="warning")
            return
        self.start_job("separate", model.separate_job)

    def action_export(self) -> None:
        if not self.project.renders:
            self.app.notify("master the project first: an export takes a render's stems", severity="warning")
            return

        def start(request: dict | None) -> None:
            if request is not None:
                self.start_job("export", lambda ws, project, progress, cancel: model.export_job(
                    ws, project, progress, cancel, **request))

        self.app.push_screen(ExportScreen(), start)

    def action_cancel(self) -> None:
        if not self.busy:
            return
        self.cancel_event.set()
        self.query_one(JobPanel).note("cancelling...")

    def on_job_progress(self, message: JobProgress) -> None:
        if self.busy and not self.cancel_event.is_set():
            self.query_one(JobPanel).show(message.fraction, message.text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if event.worker.name == "spectrum":
            stem = self.current_stem()
            if event.state == WorkerState.SUCCESS and stem is not None and event.worker.result[0] == stem.name:
                data, caption = event.worker.result[1]
                self.query_one("#stem-spectrum", Sparkline).data = data
                self.query_one("#spectrum-title", Static).update(caption)
            return
        if event.worker is self.diagnosing:
            self.diagnosis_done(event.worker)
            return
        if event.worker is not self.job:
            return
        kind = self.job_kind
        self.job = None
        self.app_jobs().discard(self.cancel_event)
        self.query_one(JobPanel).stop()
        # the job changed the project object on success; reload so the screen shows what is on disk
        try:
            self.project = self.ws.load(self.project.name)
        except StemmasterError as exc:
            tell_error(self, exc)
        if event.state == WorkerState.SUCCESS:
            result = event.worker.result
            self.refresh_all()
            if kind == "master":
                m = result.report.get("master", {})
                self.app.notify(f"render {result.render_id}: {model.fmt(m.get('integrated_lufs'))} LUFS, "
                                f"{model.fmt(m.get('true_peak_dbtp'), 2)} dBTP", markup=False)
                checks = result.report.get("checks") or {}
                if checks.get("status") in ("cancelled", "failed"):
                    self.app.notify(f"the master landed; release checks {checks['status']}: "
                                    f"{checks.get('reason') or ''}", severity="warning", markup=False)
                if not getattr(self.app, "quitting", False):
                    self.open_report(result.render_id)
            elif kind == "export":
                self.app.notify(f"{len(result.files)} files in {result.folder} (manifest.json lists them)",
                                title="deliverables", timeout=15, markup=False)
            else:
                rec = self.project.separation
                self.app.notify((f"separated with {rec.model}: residual {rec.residual_db:.1f} dB" if result else
                                 "the stems were already separated with these settings; nothing to do")
                                if rec else "separated", markup=False)
            if result and (kind == "separate" or getattr(result, "separated", False)):
                self.diagnosis = None  # new stems: diagnose them
            if self.diagnosis is None and not getattr(self.app, "quitting", False):
                self.ensure_diagnosis()
        else:
            self.refresh_all()
            error = event.worker.error
            if error is None or event.state == WorkerState.CANCELLED:
                error = Cancelled(f"{kind} cancelled; nothing was written")
            tell_error(self, error)
        if getattr(self.app, "quitting", False):
            self.app.exit()

    def open_report(self, render_id: str | None = None) -> None:
        if not self.project.renders:
            return
        record = next((r for r in self.project.renders if r.id == render_id), self.project.renders[-1])
        self.app.push_screen(ReportScreen(self.ws, self.project, record))

    def action_report(self) -> None:
        self.open_report()

    def action_back(self) -> None:
        if self.editing:
            self.end_edit()
            return
        if self.busy:
            self.app.notify(f"a {self.job_kind} job is running: cancel it (c) or wait", severity="warning")
            return
        self.app.pop_screen()

    def cancel_for_quit(self) -> bool:
        """Cancel a running job because the app quits; True if there was one (the app exits when it ends)."""
        if not self.busy:
            return False
        self.action_cancel()
        return True


# ------------------------------------------------------------------ report

def _table_section(title: str, table_id: str, columns: tuple[str, ...], rows: list[tuple]) -> ComposeResult:
    """A report section: its title and a read-only table of ``rows``; nothing when there are none."""
    if not rows:
        return
    yield Static(title, classes="section")
    table = InfoTable(id=table_id, show_cursor=False)
    table.add_columns(*columns)
    for row in rows:
        table.add_row(*row)
    yield table


class ReportScreen(Screen):
    """One render's figures, diagnosis, short-term loudness and files."""

    BINDINGS = [Binding("escape", "back", "Back")]

    DEFAULT_CSS = """
    ReportScreen VerticalScroll { height: 1fr; padding: 0 1; }
    ReportScreen .section { margin-top: 1; color: $text-accent; text-style: bold; }
    ReportScreen #verdict { margin-top: 1; text-style: bold; }
    ReportScreen #figures { height: auto; }
    ReportScreen #short-term { height: 3; margin: 0 0; }
    ReportScreen InfoTable { height: auto; }
    ReportScreen #files { height: auto; }
    """

    def __init__(self, ws: Workspace, project: Project, record: RenderRecord) -> None:
        super().__init__()
        self.ws = ws
        self.project = project
        self.record = record
        try:
            self.report: dict[str, Any] = model.read_report(ws, project, record)
            self.error = ""
        except StemmasterError as exc:
            self.report, self.error = {}, str(exc)

    def compose(self) -> ComposeResult:
        yield Header()
        r, m = self.report, self.report.get("master") or {}
        with VerticalScroll(id="report"):
            if self.error:
                yield Static(self.error, id="figures", markup=False)
            else:
                head = (f"render {self.record.id} of {self.project.name!r}: {r.get('profile') or 'custom'} "
                        f"(target {model.fmt(r.get('target_lufs'))} LUFS, ceiling {model.fmt(r.get('ceiling_dbtp'))} dBTP)")
                figures = "\n".join([
                    head,
                    f"integrated loudness  {model.fmt(m.get('integrated_lufs'), 1, 'LUFS')}",
                    f"true peak            {model.fmt(m.get('true_peak_dbtp'), 2, 'dBTP')}",
                    f"PLR                  {model.fmt(m.get('plr_db'), 1, 'dB')}",
                    f"LRA                  {model.fmt(m.get('loudness_range_lu'), 1, 'LU')}",
                ])
                yield Static(figures, id="figures", markup=False)
                found = model.findings(r)
                if isinstance(r.get("diagnosis"), dict):
                    # the reasons repeat the findings' messages: shown only when there is no finding to list
                    reasons = "" if found else "; ".join(model.verdict_reasons(r))
                    tail = (f" ({len(found)} finding{'' if len(found) == 1 else 's'} below)" if found
                            else (f" ({reasons})" if reasons else ""))
                    yield Static(f"verdict: {model.verdict(r)}{tail}", id="verdict", markup=False)
                checks = model.checks_line(r)
                if checks:
                    yield Static(checks, id="checks", markup=False)
                curve = model.short_term_curve(r)
                if curve:
                    yield Static(f"short-term loudness, once a second ({model.curve_span(curve)})",
                                 classes="section", id="short-term-title")
                    yield Sparkline(model.sparkline_data(curve), id="short-term")
                yield Static("files", classes="section")
                paths = model.output_files(self.ws, self.project, self.record, r)
                yield Static(Text("\n".join(str(p) for p in paths)), id="files")
                yield from _table_section("translation", "translation", ("check", "LUFS", "change LU", "warnings"),
                                          model.translation_rows(r))
                yield from _table_section("codec round trips", "codec",
                                          ("codec", "decoded dBTP", "overs", "recommended ceiling dBTP"),
                                          model.codec_rows(r))
                if found:
                    yield Static("findings", classes="section")
                    yield Static("\n".join(f"- {f}" for f in found), id="findings", markup=False)
                yield from _table_section("automatic repairs: before -> after", "auto",
                                          ("stem", "finding", "before", "after", ""), model.auto_rows(r))
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.project.name} render {self.record.id}"
        self.query_one("#report", VerticalScroll).focus()

    def action_back(self) -> None:
        self.app.pop_screen()
