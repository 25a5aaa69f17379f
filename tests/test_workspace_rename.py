"""Renaming and deleting projects: in the workspace only, atomically, through the API and the CLI."""

from __future__ import annotations

import os

import pytest

from stemmaster.cli import main
from stemmaster.errors import ProjectError
from stemmaster.workspace import Workspace
from tests.helpers import noise_stems


@pytest.fixture()
def ws(tmp_path):
    stems = noise_stems(tmp_path / "stems", 0.5)
    w = Workspace(tmp_path / "ws")
    w.create_from_stems("First", stems)
    w.create_from_stems("Second", stems)
    return w


def test_rename_moves_the_folder_and_the_recorded_name(ws):
    ws.rename("First", "Renamed one")
    assert not (ws.root / "First").exists()
    assert ws.load("Renamed one").name == "Renamed one"
    assert [p.name for p in ws.list_projects()] == ["Renamed one", "Second"]


@pytest.mark.parametrize("new, needle", [("Second", "already exists"), ("../out", "project name"),
                                         ("", "empty"), ("/abs", "project name")])
def test_rename_refuses_taken_and_bad_names(ws, new, needle):
    with pytest.raises(ProjectError, match=needle):
        ws.rename("First", new)
    assert ws.load("First").name == "First"
    assert not (ws.root.parent / "out").exists()


def test_rename_of_a_missing_project_is_an_error(ws):
    with pytest.raises(ProjectError, match="no project named 'Nope'"):
        ws.rename("Nope", "Other")


def test_delete_removes_only_the_project_folder(ws, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    os.symlink(outside, ws.root / "Link")
    with pytest.raises(ProjectError, match="resolves outside the workspace"):
        ws.delete("Link")
    os.symlink(ws.root / "Second", ws.root / "Alias")  # inside the workspace, still not a project folder
    with pytest.raises(ProjectError, match="symbolic link"):
        ws.delete("Alias")
    assert (outside / "keep.txt").is_file() and ws.exists("Second")
    ws.delete("First")
    assert not (ws.root / "First").exists()
    assert "First" not in [p.name for p in ws.list_projects()]
    assert not [e for e in ws.root.iterdir() if e.name.startswith(".deleting")]
    with pytest.raises(ProjectError, match="no project named 'First'"):
        ws.delete("First")


def test_cli_rename_and_delete_asks_for_yes(ws, capsys):
    assert main(["--workspace", str(ws.root), "rename", "First", "Third"]) == 0
    assert "renamed 'First' to 'Third'" in capsys.readouterr().out
    assert main(["--workspace", str(ws.root), "delete", "Third"]) == 1
    err = capsys.readouterr().err
    assert "--yes" in err and err.count("\n") == 1
    assert ws.exists("Third")
    assert main(["--workspace", str(ws.root), "delete", "Third", "--yes"]) == 0
    assert not ws.exists("Third")
