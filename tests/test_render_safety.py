"""A failed or cancelled render leaves no trace: earlier renders, project file and sources untouched."""

from __future__ import annotations

import hashlib

import pytest

from stemmaster.demo_job import write_demo_song
from stemmaster.errors import Cancelled, StemmasterError
from stemmaster.master import MasterSettings
from stemmaster.pipeline import project_settings, render_project
from stemmaster.workspace import Workspace


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture()
def project(tmp_path):
    write_demo_song(tmp_path / "song", duration_s=10.0)
    ws = Workspace(tmp_path / "ws")
    p = ws.create_from_stems("safe", tmp_path / "song" / "stems")
    render_project(p, ws.project_dir("safe"), project_settings(p), "001")
    return ws, ws.load("safe")


# the render checks for cancellation once per stem while repairing, between stages and on every
# loudness pass: cancelling on the 1st, 6th and 13th check stops it in different stages
@pytest.mark.parametrize("checks_before_cancel", [0, 5, 12])
def test_cancelled_render_leaves_everything_as_it_was(project, checks_before_cancel):
    ws, p = project
    folder = ws.project_dir("safe")
    before = _digest(folder)
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > checks_before_cancel

    with pytest.raises(Cancelled):
        render_project(p, folder, project_settings(p), "002", cancel=cancel)
    assert _digest(folder) == before  # 001, project.toml, sources and stems byte for byte
    assert not (folder / "renders" / "002").exists()
    assert [q.name for q in (folder / "renders").iterdir()] == ["001"]


def test_failed_render_leaves_everything_as_it_was(project):
    ws, p = project
    folder = ws.project_dir("safe")
    before = _digest(folder)
    impossible = MasterSettings().with_bus(profile=None, target_lufs=-3.0, ceiling_dbtp=-20.0)
    with pytest.raises(StemmasterError):
        render_project(p, folder, impossible, "002")
    assert _digest(folder) == before
    assert [q.name for q in (folder / "renders").iterdir()] == ["001"]
    # and the next render takes the next free number
    assert ws.next_render_id(ws.load("safe")) == "002"
