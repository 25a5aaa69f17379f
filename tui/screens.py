"""The screens of the terminal UI: projects, one project, a render's report, and the modals."""

from __future__ import annotations

import threading
from typing import Any, Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, ProgressBar, Sparkline, Static
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
    """A label and a progress bar, shown while a job runs."""

    DEFAULT_CSS = """
    JobPanel { height: 2; display: none; padding: 0 1; }
    JobPanel.running { display: block; }
    JobPanel Label { width: 1fr; color: $text-accent; }
    JobPanel ProgressBar { width: 1fr; }
    JobPanel Bar { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Label("", id="job-label")
        yield ProgressBar(total=100, show_eta=True, id="job-bar")

    def start(self, title: str) -> None:
        self.title_text = title
        self.query_one("#job-label", Label).update(f"{title}: starting")
        self.query_one("#job-bar", ProgressBar).update(total=100, progress=0)
        self.add_class("running")

    def show(self, fraction: float, text: str) -> None:
        self.query_one("#job-label", Label).update(f"{self.title_text}: {text}")
        self.query_one("#job-bar", ProgressBar).update(progress=round(100 * max(0.0, min(1.0, fraction)), 1))

    def note(self, text: str) -> None:
        self.query_one("#job-label", Label).update(f"{self.title_text}: {text}")

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
    """A stem's repair chain, one setting a row; enter edits the chosen one."""

    BINDINGS = [Binding("enter", "select_cursor", "Edit")]


# ------------------------------------------------------------------ modals

class HelpScreen(ModalScreen[None]):
    """The keys of every screen."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", key_display="esc")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 72; max-height: 22; border: round $primary; padding: 0 1;
                                   background: $surface; }
    """

    TEXT = """\
Projects
  up/down  choose a project        enter  open it
  n        new project (a render file or a folder of stems)
  d        delete the project (asks first)
  r        rename: not available (the workspace has no rename yet)
Project
  up/down  choose a stem or a setting   tab  stems <-> settings
  enter/e  edit the chosen setting (enter saves, escape cancels)
  m        master (separates a render project first if needed)
  s        separate a render project into stems
  c        cancel the running job (nothing half-written is kept)
  v        the latest render's report     escape  back to projects
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
            yield Input(placeholder="/path/to/song.wav or /path/to/stems/", id="path")
            yield Static("enter: next / create    escape: cancel", id="hint")
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


# ------------------------------------------------------------------ projects

class ProjectsScreen(Screen):
    """The workspace's projects."""

    BINDINGS = [
        Binding("n", "new", "New"),
        Binding("d", "delete", "Delete"),
        Binding("r", "rename", "Rename", show=False),
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
        self.app.notify("rename is not available yet: the workspace has no rename API", severity="warning")


# ------------------------------------------------------------------ one project

class ProjectScreen(Screen):
    """A project's stems and repair chains, with master and separation jobs."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("e", "edit", "Edit", show=False),
        Binding("m", "master", "Master"),
        Binding("s", "separate", "Separate"),
        Binding("c", "cancel", "Cancel job"),
        Binding("v", "report", "Report"),
    ]

    DEFAULT_CSS = """
    ProjectScreen #info { height: 1; padding: 0 1; color: $text-muted; }
    ProjectScreen #stems { height: auto; max-height: 7; }
    ProjectScreen #chain-title { height: 1; padding: 0 1; color: $text-accent; }
    ProjectScreen #chain { height: 1fr; }
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
        self.editing: tuple[str, str] | None = None  # (stem, KIND.SETTING)
        self.setting_rows: list[model.SettingRow] = []

    @property
    def busy(self) -> bool:
        return self.job is not None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="info", markup=False)
        stems = StemTable(id="stems", cursor_type="row")
        stems.add_columns("stem", "role", "gain dB", "state", "level LUFS")
        yield stems
        yield Static("", id="chain-title", markup=False)
        chain = SettingTable(id="chain", cursor_type="row", zebra_stripes=True)
        chain.add_columns("processor", "setting", "value")
        yield chain
        yield JobPanel(id="job")
        yield Input(id="edit")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.project.name
        self.refresh_all()
        self.query_one("#stems", DataTable).focus()

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
        self.setting_rows = model.chain_rows(stem)
        title.update(f"repair chain of {stem.name} ({stem.role})" +
                     ("" if self.setting_rows else ": no repair"))
        for r in self.setting_rows:
            chain.add_row(r.kind, r.setting, r.value, key=r.key)
        if self.setting_rows:
            chain.move_cursor(row=min(row or 0, len(self.setting_rows) - 1))

    @on(DataTable.RowHighlighted, "#stems")
    def _stem_changed(self) -> None:
        self.refresh_chain()

    # -- editing

    @on(DataTable.RowSelected, "#stems")
    def _stem_chosen(self) -> None:
        self.query_one("#chain", DataTable).focus()

    @on(DataTable.RowSelected, "#chain")
    def _setting_chosen(self) -> None:
        self.action_edit()

    def action_edit(self) -> None:
        stem = self.current_stem()
        chain = self.query_one("#chain", DataTable)
        if stem is None or not self.setting_rows:
            return
        if self.busy:
            self.app.notify("a job is running: wait for it or cancel it (c) before editing", severity="warning")
            return
        row = self.setting_rows[max(0, min(chain.cursor_row or 0, len(self.setting_rows) - 1))]
        self.editing = (stem.name, row.key)
        field = self.query_one("#edit", Input)
        field.border_title = f"{stem.name}: {row.key} (enter saves, escape cancels)"
        field.value = row.value
        self.add_class("editing")
        field.focus()

    @on(Input.Submitted, "#edit")
    def _edit_submitted(self, event: Input.Submitted) -> None:
        if self.editing is None:
            return
        stem_name, key = self.editing
        try:
            value = model.set_chain_value(self.ws, self.project, stem_name, key, event.value)
        except StemmasterError as exc:
            tell_error(self, exc)
            return  # stay in the field to fix the value
        self.app.notify(f"saved {stem_name} {key} = {model.fmt_setting(value)}", markup=False)
        self.end_edit()
        self.refresh_chain()

    def end_edit(self) -> None:
        self.editing = None
        self.remove_class("editing")
        self.query_one("#chain", DataTable).focus()

    # -- jobs

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.busy
        if action == "separate":
            return self.project.source_kind == "render"
        if action in ("master", "edit") and self.busy:
            return None  # shown, disabled
        if action == "report":
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
        ws, project = self.ws, self.project

        def run() -> Any:
            from textual.worker import get_current_worker

            worker = get_current_worker()
            return fn(ws, project, progress, lambda: event.is_set() or worker.is_cancelled)

        self.job = self.run_worker(run, name=kind, group="job", thread=True, exit_on_error=False)
        self.app_jobs().add(event)
        self.refresh_bindings()

    def app_jobs(self) -> set:
        return getattr(self.app, "running_jobs", set())

    def action_master(self) -> None:
        self.start_job("master", model.master_job)

    def action_separate(self) -> None:
        if self.project.source_kind != "render":
            self.app.notify("this project was made from stems; there is nothing to separate", severity="warning")
            return
        self.start_job("separate", model.separate_job)

    def action_cancel(self) -> None:
        if not self.busy:
            return
        self.cancel_event.set()
        self.query_one(JobPanel).note("cancelling...")

    def on_job_progress(self, message: JobProgress) -> None:
        if self.busy and not self.cancel_event.is_set():
            self.query_one(JobPanel).show(message.fraction, message.text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self.job or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR,
                                                               WorkerState.CANCELLED):
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
            else:
                rec = self.project.separation
                self.app.notify((f"separated with {rec.model}: residual {rec.residual_db:.1f} dB" if result else
                                 "the stems were already separated with these settings; nothing to do")
                                if rec else "separated", markup=False)
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

class ReportScreen(Screen):
    """One render's figures, diagnosis, short-term loudness and files."""

    BINDINGS = [Binding("escape", "back", "Back")]

    DEFAULT_CSS = """
    ReportScreen VerticalScroll { height: 1fr; padding: 0 1; }
    ReportScreen .section { margin-top: 1; color: $text-accent; text-style: bold; }
    ReportScreen #verdict { margin-top: 1; text-style: bold; }
    ReportScreen #figures { height: auto; }
    ReportScreen #short-term { height: 3; margin: 0 0; }
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
                    finite = [v for v in curve if v == v and abs(v) != float("inf")]
                    span = f"{min(finite):.1f} to {max(finite):.1f} LUFS" if finite else "silent"
                    yield Static(f"short-term loudness ({span})", classes="section")
                    yield Sparkline(model.sparkline_data(curve), id="short-term")
                yield Static("files", classes="section")
                paths = model.output_files(self.ws, self.project, self.record, r)
                yield Static(Text("\n".join(str(p) for p in paths)), id="files")
                if found:
                    yield Static("findings", classes="section")
                    yield Static("\n".join(f"- {f}" for f in found), id="findings", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.project.name} render {self.record.id}"
        self.query_one("#report", VerticalScroll).focus()

    def action_back(self) -> None:
        self.app.pop_screen()
