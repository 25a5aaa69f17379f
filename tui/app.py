"""The stemmaster terminal UI (Textual): projects, stems and repairs, master and separation jobs, reports.

Keyboard only and fit for an 80x24 terminal over SSH. ``main()`` runs it;
``stemmaster tui`` calls it. The core packages never import textual: this
package calls stemmaster's public functions, the same ones the CLI calls.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from stemmaster.workspace import Workspace, default_workspace

from tui.screens import HelpScreen, ProjectScreen, ProjectsScreen


class StemmasterApp(App):
    """The app: starts on the projects screen of ``workspace`` (default: as the CLI's)."""

    TITLE = "stemmaster"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(self, workspace: str | os.PathLike | Workspace | None = None) -> None:
        super().__init__()
        if isinstance(workspace, Workspace):
            self.ws = workspace
        else:
            self.ws = Workspace(Path(workspace) if workspace is not None else default_workspace())
        self.notices: list[tuple[str, str]] = []  # (severity, message) of every notification, oldest first
        self.quitting = False
        self.running_jobs: set[threading.Event] = set()  # the cancel events of the jobs running now
        # no animations (the tabs' underline slides, scrolling glides): less to send over SSH, keys answered at once
        self.animation_level = "none"

    def on_mount(self) -> None:
        self.push_screen(ProjectsScreen(self.ws))

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = True) -> None:
        self.notices.append((severity, message))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Quit; a running job is cancelled first and the app leaves when it has cleaned up."""
        busy = [s for s in self.screen_stack if isinstance(s, ProjectScreen) and s.busy]
        if busy and not self.quitting:
            self.quitting = True
            for screen in busy:
                screen.cancel_for_quit()
            self.notify("cancelling the running job; quitting when it has stopped", severity="warning")
            return
        if busy:
            return  # already waiting for the job to stop
        self.exit()


def main(workspace: str | os.PathLike | None = None) -> int:
    """Run the terminal UI on ``workspace`` (default ``$STEMMASTER_WORKSPACE`` or ./projects); exit status."""
    app = StemmasterApp(workspace)
    try:
        app.run()
    finally:
        for cancel in list(app.running_jobs):  # should the app leave another way, stop its jobs
            cancel.set()
    return app.return_code or 0
