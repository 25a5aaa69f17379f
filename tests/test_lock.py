"""One writer per project: a second process gets a one-line "busy", a killed owner's lock is recovered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from stemmaster.cli import main
from stemmaster.errors import ProjectError
from stemmaster.lock import LOCK_NAME, project_lock
from stemmaster.workspace import Workspace
from tests.helpers import noise_stems

HOLD = """
import sys, time
from stemmaster.lock import project_lock
with project_lock(sys.argv[1], "master 007"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture()
def ws(tmp_path):
    w = Workspace(tmp_path / "ws")
    w.create_from_stems("Song", noise_stems(tmp_path / "stems", 1.0))
    return w


def _holder(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_told_the_project_is_busy(ws, capsys):
    proc = _holder(ws.project_dir("Song"))
    try:
        with pytest.raises(ProjectError, match=rf"project 'Song' is busy: master 007 by pid {proc.pid}"):
            with project_lock(ws.project_dir("Song"), "render 001"):
                pass
        before = ws.project_dir("Song").joinpath("project.toml").read_bytes()
        code = main(["--workspace", str(ws.root), "repair", "Song", "--stem", "vocals", "--gain-db", "-3"])
        err = capsys.readouterr().err
        assert code == 1 and "is busy" in err and err.count("\n") == 1
        assert ws.project_dir("Song").joinpath("project.toml").read_bytes() == before  # nothing changed
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_owners_lock_is_stale_and_taken_over(ws):
    proc = _holder(ws.project_dir("Song"))
    proc.kill()  # kill -9: no cleanup ran
    proc.wait()
    lock = ws.project_dir("Song") / LOCK_NAME
    assert json.loads(lock.read_text())["pid"] == proc.pid
    with project_lock(ws.project_dir("Song"), "render 001"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()  # released on the way out


def test_the_lock_is_reentrant_and_released_after_an_exception(ws):
    folder = ws.project_dir("Song")
    with pytest.raises(RuntimeError):
        with project_lock(folder, "outer"):
            with project_lock(folder, "inner"):
                assert (folder / LOCK_NAME).exists()
            assert (folder / LOCK_NAME).exists()  # still held by the outer
            raise RuntimeError("boom")
    assert not (folder / LOCK_NAME).exists()


def test_a_lock_from_another_host_is_never_taken_over(ws):
    lock = ws.project_dir("Song") / LOCK_NAME
    lock.write_text(json.dumps({"pid": 1, "host": "render-box-7", "purpose": "separation", "since": time.time()}))
    with pytest.raises(ProjectError, match="another host: delete .*\\.lock"):
        with project_lock(ws.project_dir("Song"), "render"):
            pass
