"""SIGINT and SIGTERM in the middle of a real `stemmaster master` subprocess: the project still
loads, the previous render is intact, nothing temporary is left, and the next run starts clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stemmaster.demo_job import write_demo_song
from stemmaster.workspace import Workspace


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    folder = tmp_path_factory.mktemp("song")
    write_demo_song(folder, duration_s=30.0)  # long enough to be caught mid-render
    return folder


def _cli(ws: Path, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "stemmaster.cli", "--workspace", str(ws), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


def _wait_for(predicate, timeout_s: float = 120.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the job to reach the point under test")


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_mid_render_keeps_the_project_and_the_previous_render(tmp_path, song, sig, code, word):
    ws = tmp_path / "ws"
    first = _cli(ws, "new", "Song", "--stems", str(song / "stems"))
    assert first.wait(120) == 0, first.stderr.read()
    done = _cli(ws, "master", "Song")
    assert done.wait(300) == 0, done.stderr.read()
    renders = ws / "Song" / "renders"
    kept = {p.relative_to(renders): p.read_bytes() for p in (renders / "001").rglob("*") if p.is_file()}

    proc = _cli(ws, "master", "Song")
    _wait_for(lambda: any(p.name.startswith(".tmp-002") for p in renders.iterdir()))  # mid-render
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"stemmaster: {word}; the job was stopped")

    assert sorted(p.name for p in renders.iterdir()) == ["001"]  # no temporary folder, no half render
    assert {p.relative_to(renders): p.read_bytes() for p in (renders / "001").rglob("*") if p.is_file()} == kept
    assert not (ws / "Song" / ".lock").exists()
    project = Workspace(ws).load("Song")
    assert [r.id for r in project.renders] == ["001"]

    again = _cli(ws, "master", "Song")  # the next run starts clean and takes the next number
    assert again.wait(300) == 0, again.stderr.read()
    assert sorted(p.name for p in renders.iterdir()) == ["001", "002"]


def test_a_signal_mid_separation_leaves_no_stems_and_no_lock(tmp_path):
    """SIGTERM while Demucs (a tiny random-weight model) is separating a render: exit 143, the
    project loads with no stems recorded, no temporary stems folder, no lock; separating again works."""
    import numpy as np

    pytest.importorskip("demucs")
    from separation.testing import tiny_model_repo
    from stemmaster.audio_io import write_audio
    from stemmaster.demo import demo_mix, make_demo_stems

    models = tmp_path / "models"
    tiny_model_repo(models, "htdemucs", kind="htdemucs", seed=0)
    render = tmp_path / "song.wav"
    write_audio(render, np.tile(demo_mix(make_demo_stems(duration_s=5)), (1, 36)), 44100)  # 3 minutes
    ws = tmp_path / "ws"
    assert _cli(ws, "new", "Song", "--render", str(render)).wait(120) == 0
    proc = _cli(ws, "separate", "Song", "--model-repo", str(models))
    seen = []
    for line in proc.stderr:  # the progress bar's lines (not a terminal: one per step)
        seen.append(line)
        if "separat" in line and "%" in line and not line.split("%")[0].strip().endswith(" 0"):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, "".join(seen) + err
    assert "Traceback" not in err and "terminated" in err.strip().splitlines()[-1]
    folder = ws / "Song"
    assert Workspace(ws).load("Song").stems == []
    assert not [p for p in (folder / "stems").iterdir()]  # no stems, no .tmp-separate-*
    assert not (folder / ".lock").exists()
    again = _cli(ws, "separate", "Song", "--model-repo", str(models))
    assert again.wait(300) == 0, again.stderr.read()
    assert len(Workspace(ws).load("Song").stems) == 4
