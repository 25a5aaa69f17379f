"""The terminal UI in a real terminal: tmux, 80x24, keys sent as a user would type them.

Skipped without tmux. Runs on a private tmux server (its own socket), polls the
screen with capture-pane (bounded retries) and always kills the session.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tempfile
from pathlib import Path

import pytest

from stemmaster.audio_io import write_audio
from stemmaster.demo import make_demo_stems
from stemmaster.workspace import Workspace

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

REPO = Path(__file__).resolve().parents[1]


class Tmux:
    def __init__(self) -> None:
        # a private server on a socket of our own (short path: sockets are limited to ~100 bytes)
        self.dir = tempfile.mkdtemp(prefix="stm-tmux-")
        self.socket = os.path.join(self.dir, "sock")
        self.session = "tui"

    def run(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=20)
        if check and out.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def start(self, command: str) -> None:
        self.run("new-session", "-d", "-s", self.session, "-x", "80", "-y", "24", command)

    def screen(self, escapes: bool = False) -> str:
        """The pane's text; with ``escapes``, with the SGR sequences of its colours and attributes."""
        return self.run("capture-pane", "-p", *(["-e"] if escapes else []), "-t", self.session, check=False)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def wait_for(self, pattern: str, tries: int = 300, every_s: float = 0.1, squeeze: bool = False) -> str:
        """Poll the screen until ``pattern`` (a regex) shows; fail with the last screen after ``tries``.
        ``squeeze``: match against the screen with all whitespace removed (text that wraps)."""
        screen = ""
        for _ in range(tries):
            screen = self.screen()
            if re.search(pattern, "".join(screen.split()) if squeeze else screen):
                return screen
            time.sleep(every_s)
        raise AssertionError(f"{pattern!r} never showed; the screen was:\n{screen}")

    def alive(self) -> bool:
        out = subprocess.run(["tmux", "-S", self.socket, "has-session", "-t", self.session],
                             capture_output=True, timeout=20)
        return out.returncode == 0

    def kill(self) -> None:
        self.run("kill-session", "-t", self.session, check=False)
        self.run("kill-server", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_tui_in_tmux_opens_and_masters(tmp_path):
    stems = tmp_path / "stems"
    stems.mkdir()
    for name, audio in make_demo_stems(duration_s=10).items():
        write_audio(stems / f"{name}.wav", audio, 44100)
    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("tmux song", stems)

    command = app_command(ws, "TERM=xterm-256color")
    tmux = Tmux()
    try:
        tmux.start(command)
        screen = tmux.wait_for(r"tmux song")
        assert re.search(r"tmux song\s+stems\s+new", screen)
        assert "Quit" in screen  # the footer
        tmux.keys("Enter")
        tmux.wait_for(r"repair chain of")
        tmux.keys("m")
        screen = tmux.wait_for(r"integrated loudness\s+-?\d+\.\d LUFS")
        record = ws.load("tmux song").renders[-1]
        shown = re.search(r"integrated loudness\s+(-?\d+\.\d) LUFS", screen).group(1)
        assert shown == f"{record.integrated_lufs:.1f}"
        # the master's absolute path shows (however it wraps)
        master = ws.root / "tmux song" / "renders" / "001" / "master_24bit.wav"
        tmux.wait_for(re.escape("".join(str(master).split())), squeeze=True)
        tmux.keys("q")
        for _ in range(100):
            if not tmux.alive():
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the app did not quit on q; the screen was:\n{tmux.screen()}")
    finally:
        tmux.kill()


def app_command(ws: Workspace, env: str) -> str:
    """The shell command running the app on ``ws`` with the environment settings ``env`` (``A=1 -u B``)."""
    code = f"from tui.app import main; main({str(ws.root)!r})"
    return f"cd {REPO} && exec env {env} {sys.executable} -c {_quote(code)}"


def test_tui_in_tmux_16_colours(tmp_path):
    """16 colours (no COLORTERM, TEXTUAL_COLOR_SYSTEM=standard): the projects list shows, drawn with
    the 16 standard colours only (no 256-colour or RGB sequence on the screen), and q quits."""
    stems = tmp_path / "stems"
    stems.mkdir()
    for name, audio in make_demo_stems(duration_s=10).items():
        write_audio(stems / f"{name}.wav", audio, 44100)
    ws = Workspace(tmp_path / "ws")
    ws.create_from_stems("sixteen", stems)
    tmux = Tmux()
    try:
        tmux.start(app_command(ws, "-u COLORTERM TERM=xterm-256color TEXTUAL_COLOR_SYSTEM=standard"))
        screen = tmux.wait_for(r"sixteen\s+stems\s+new")
        assert "Quit" in screen
        coloured = tmux.screen(escapes=True)
        assert "\x1b[" in coloured  # it is drawn in colour...
        assert not re.search(r"\x1b\[[0-9;]*[34]8;[25];", coloured), "a 256-colour or RGB colour was used"
        tmux.keys("q")
        for _ in range(100):
            if not tmux.alive():
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the app did not quit on q; the screen was:\n{tmux.screen()}")
    finally:
        tmux.kill()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
