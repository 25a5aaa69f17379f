"""project.toml save/load, atomic writes, and the workspace (names, listing, render ids)."""

from __future__ import annotations

import errno
import hashlib
import os
import tomllib

import numpy as np
import pytest

from stemmaster import atomic
from stemmaster.atomic import atomic_write_bytes, atomic_write_text, sha256_file
from stemmaster.errors import ProjectError
from stemmaster.project import (
    SCHEMA_VERSION,
    Project,
    RenderRecord,
    SeparationRecord,
    SourceFile,
    Stem,
    load_project,
    save_project,
)
from stemmaster.workspace import Workspace, check_project_name, default_workspace

SHA = "ab" * 32


def make_project(name: str = "Ünïcödé Sông (ソング)") -> Project:
    return Project(
        name=name,
        created="2024-05-01T12:00:00Z",
        source_kind="stems",
        sample_rate=48000,
        sources=[
            SourceFile("source/Lead Vox — take 2.wav", "Lead Vox — take 2.wav", SHA, 48000, 1, 96000),
            SourceFile("source/Drüms.flac", "Drüms.flac", "cd" * 32, 44100, 2, 88200),
        ],
        stems=[
            Stem("Lead Vox — take 2", "vocals", "stems/Lead Vox — take 2.wav", "source/Lead Vox — take 2.wav",
                 gain_db=-1.5, mute=False, solo=True,
                 chain={"deesser": {"threshold_db": 9.0, "enabled": True}, "highpass": {"highpass_hz": 80.0, "order": 4}}),
            Stem("Drüms", "drums", "stems/Drüms.wav", "source/Drüms.flac"),
        ],
        master={
            "tone_eq": {"low_shelf_db": 0.5, "tilt_db": -1.0},
            "true_peak_limiter": {"lookahead_ms": 5.0},
            "export": {"bit_depths": [24, 16], "dither": "tpdf"},
            "stereo_width": {},
        },
        renders=[
            RenderRecord("001", "2024-05-01T12:05:00Z", "streaming", -14.0, -1.0, -14.02, -1.03, "renders/001"),
            RenderRecord("002", "2024-05-01T12:10:00Z", None, -9.5, -0.3, -9.48, -0.31, "renders/002"),
        ],
    )


# ---------------------------------------------------------------- atomic writes

def test_atomic_write_and_hash(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "héllo\n")
    assert path.read_bytes() == "héllo\n".encode()
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert sha256_file(path) == hashlib.sha256(b"\x00\x01").hexdigest()
    assert os.listdir(tmp_path) == ["f.txt"]


def test_sha256_streams_large_file(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)
    (tmp_path / "big").write_bytes(data)
    assert sha256_file(tmp_path / "big") == hashlib.sha256(data).hexdigest()


def test_atomic_write_keeps_old_file_when_replace_fails(tmp_path, monkeypatch):
    path = tmp_path / "project.toml"
    path.write_text("old = 1\n")

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(ProjectError, match=r"cannot write .*project\.toml: disk full") as e:
        atomic_write_text(path, "new = 2\n")
    assert isinstance(e.value.__cause__, OSError) and e.value.__cause__.errno == errno.ENOSPC
    assert path.read_text() == "old = 1\n"
    assert os.listdir(tmp_path) == ["project.toml"]


def test_atomic_write_keeps_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "project.toml"
    path.write_text("old = 1\n")
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(ProjectError, match="disk full"):
        atomic_write_text(path, "new = 2\n")
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    assert path.read_text() == "old = 1\n"
    assert os.listdir(tmp_path) == ["project.toml"]


def test_atomic_write_keeps_permissions(tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    os.chmod(path, 0o640)
    atomic_write_text(path, "y")
    assert (os.stat(path).st_mode & 0o777) == 0o640


# ---------------------------------------------------------------- project.toml

def test_round_trip_is_exact(tmp_path):
    project = make_project()
    path = save_project(project, tmp_path)
    assert path == tmp_path / "project.toml"
    loaded = load_project(tmp_path)
    assert loaded == project
    # and saving again gives the same bytes
    first = path.read_bytes()
    save_project(loaded, tmp_path)
    assert path.read_bytes() == first


def test_separation_record_round_trips_and_is_checked(tmp_path):
    project = make_project()
    project.separation = SeparationRecord(
        model="htdemucs", model_checksum="b3e7da38", input_sha256=SHA,
        settings={"shifts": 1, "overlap": 0.25, "seed": 0, "residual_into": "other"},
        residual_db=-31.5, created="2024-05-01T12:01:00Z")
    save_project(project, tmp_path)
    assert load_project(tmp_path) == project
    text = (tmp_path / "project.toml").read_text()
    (tmp_path / "project.toml").write_text(text.replace('model = "htdemucs"', 'model = 3'))
    with pytest.raises(ProjectError, match=r"separation\.model"):
        load_project(tmp_path)
    (tmp_path / "project.toml").write_text(text.replace("residual_db = -31.5", "residual_db = -31.5\nwhat = 1"))
    with pytest.raises(ProjectError, match=r"separation\.what"):
        load_project(tmp_path)


def test_toml_is_plain_and_omits_none(tmp_path):
    save_project(make_project(), tmp_path)
    text = (tmp_path / "project.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert "profile" not in doc["renders"][1]
    assert doc["renders"][0]["profile"] == "streaming"
    assert doc["stems"][0]["chain"]["deesser"]["threshold_db"] == 9.0
    assert "null" not in text.lower()


def test_numpy_values_and_none_in_settings_are_saved_plainly(tmp_path):
    project = make_project()
    project.master = {"tone_eq": {"tilt_db": np.float32(1.5), "low_mid_db": None},
                      "export": {"dither_seed": np.int64(3), "bit_depths": np.array([24, 16]), "sample_rate": None}}
    project.stems[1].gain_db = 2  # an int in a float field
    save_project(project, tmp_path)
    loaded = load_project(tmp_path)
    assert loaded.master == {"tone_eq": {"tilt_db": 1.5}, "export": {"dither_seed": 3, "bit_depths": [24, 16]}}
    assert loaded.stems[1].gain_db == 2.0 and isinstance(loaded.stems[1].gain_db, float)


def test_unsavable_value_names_the_field(tmp_path):
    project = make_project()
    project.master = {"tone_eq": {"curve": object()}}
    with pytest.raises(ProjectError, match=r"master\.tone_eq\.curve is a object"):
        save_project(project, tmp_path)
    assert not (tmp_path / "project.toml").exists()


def _write(tmp_path, text: str):
    (tmp_path / "project.toml").write_text(text, "utf-8")


def _saved_text(tmp_path) -> str:
    save_project(make_project(), tmp_path)
    return (tmp_path / "project.toml").read_text("utf-8")


def test_malformed_toml_gives_line_and_column(tmp_path):
    _write(tmp_path, 'schema_version = 1\nname = "x"\ncreated = = "y"\n')
    with pytest.raises(ProjectError, match=r"project\.toml: invalid TOML at line 3, column 11") as e:
        load_project(tmp_path)
    assert "\n" not in str(e.value)


def test_wrong_type_names_the_field(tmp_path):
    text = _saved_text(tmp_path).replace("gain_db = -1.5", 'gain_db = "loud"')
    _write(tmp_path, text)
    with pytest.raises(ProjectError, match=r"project\.toml: stems\[0\]\.gain_db must be a number, got text 'loud'"):
        load_project(tmp_path)


def test_bool_is_not_an_integer(tmp_path):
    text = _saved_text(tmp_path).replace("sample_rate = 48000\n", "sample_rate = true\n", 1)
    _write(tmp_path, text)
    with pytest.raises(ProjectError, match=r"sample_rate must be an integer, got true"):
        load_project(tmp_path)


def test_missing_field_names_it(tmp_path):
    text = _saved_text(tmp_path).replace(f'sha256 = "{"cd" * 32}"\n', "")
    _write(tmp_path, text)
    with pytest.raises(ProjectError, match=r"sources\[1\]\.sha256 is missing"):
        load_project(tmp_path)


def test_optional_fields_default(tmp_path):
    text = _saved_text(tmp_path)
    text = text.replace("mute = false\n", "").replace("solo = true\n", "")
    _write(tmp_path, text)
    p = load_project(tmp_path)
    assert p.stems[0].mute is False and p.stems[0].solo is False


def test_unknown_key_is_reported(tmp_path):
    text = _saved_text(tmp_path).replace("gain_db = -1.5\n", "gain_db = -1.5\ncolour = \"red\"\n")
    _write(tmp_path, text)
    with pytest.raises(ProjectError, match=r"unknown key stems\[0\]\.colour"):
        load_project(tmp_path)


def test_unknown_top_level_key_is_reported(tmp_path):
    _write(tmp_path, "bpm = 120\n" + _saved_text(tmp_path))
    with pytest.raises(ProjectError, match=r"unknown key bpm"):
        load_project(tmp_path)


def test_newer_schema_is_refused(tmp_path):
    text = _saved_text(tmp_path).replace("schema_version = 1", "schema_version = 7")
    _write(tmp_path, text)
    with pytest.raises(ProjectError, match=r"newer stemmaster \(schema_version 7.*upgrade"):
        load_project(tmp_path)


@pytest.mark.parametrize(
    "old, new, match",
    [
        ('role = "vocals"', 'role = "singer"', r"stems\[0\]\.role = 'singer' is not a role"),
        ('source_kind = "stems"', 'source_kind = "vinyl"', r"source_kind = 'vinyl'"),
        ('path = "stems/Drüms.wav"', 'path = "../../etc/passwd"', r"stems\[1\]\.path = '\.\./\.\./etc/passwd' must be a path inside"),
        ('path = "source/Drüms.flac"', 'path = "/abs/Drüms.flac"', r"sources\[1\]\.path .* must be a path inside"),
        ('source = "source/Drüms.flac"', 'source = "source/other.wav"', r"stems\[1\]\.source .* is not one of the sources"),
        ('id = "002"', 'id = "001"', r"renders\[1\]\.id = '001' is used by another render"),
    ],
)
def test_semantic_errors_name_the_field(tmp_path, old, new, match):
    text = _saved_text(tmp_path)
    assert old in text
    _write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ProjectError, match=match):
        load_project(tmp_path)


def test_not_a_project(tmp_path):
    with pytest.raises(ProjectError, match="not a stemmaster project"):
        load_project(tmp_path)
    with pytest.raises(ProjectError, match="project folder not found"):
        load_project(tmp_path / "nope")


def test_invalid_utf8(tmp_path):
    (tmp_path / "project.toml").write_bytes(b'name = "ok"\nx = "\xff"\n')
    with pytest.raises(ProjectError, match="not valid UTF-8 text at line 2"):
        load_project(tmp_path)


# ---------------------------------------------------------------- workspace

@pytest.mark.parametrize(
    "bad",
    ["../x", "/abs", "a/b", "a\\b", ".hidden", "", "   ", ".", "..", "x" * 101, "tab\there", "nul\x00", "star*", "colon:", " lead"],
)
def test_bad_project_names_are_rejected(tmp_path, bad):
    with pytest.raises(ProjectError, match="project name"):
        Workspace(tmp_path).project_dir(bad)


@pytest.mark.parametrize("good", ["My Song", "Song (Mix 2)", "take_3-final.v2", "Ünïcödé ソング", "x" * 100, "a..b"])
def test_good_project_names(tmp_path, good):
    path = Workspace(tmp_path).project_dir(good)
    assert path.parent == tmp_path.absolute() and path.name == check_project_name(good)


def test_project_dir_must_stay_inside_root(tmp_path):
    (tmp_path / "ws").mkdir()
    os.symlink(tmp_path, tmp_path / "ws" / "escape")
    with pytest.raises(ProjectError, match="outside the workspace"):
        Workspace(tmp_path / "ws").project_dir("escape")


def test_default_workspace(tmp_path, monkeypatch):
    monkeypatch.delenv("STEMMASTER_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_workspace() == tmp_path / "projects"
    monkeypatch.setenv("STEMMASTER_WORKSPACE", str(tmp_path / "elsewhere"))
    assert default_workspace() == tmp_path / "elsewhere"
    assert Workspace().root == tmp_path / "elsewhere"


def test_list_and_load(tmp_path):
    ws = Workspace(tmp_path)
    assert ws.list_projects() == []
    for name in ("beta", "Alpha"):
        (tmp_path / name).mkdir()
        save_project(make_project(name), tmp_path / name)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "project.toml").write_text("name = \n")
    (tmp_path / "not a project").mkdir()
    (tmp_path / ".tmp-gamma-123").mkdir()
    (tmp_path / "stray.txt").write_text("x")
    assert [p.name for p in ws.list_projects()] == ["Alpha", "beta"]
    entries = ws.list_entries()
    assert [n for n, _ in entries] == ["Alpha", "beta", "broken", "not a project"]
    assert isinstance(entries[2][1], ProjectError) and "line 1" in str(entries[2][1])
    assert isinstance(entries[3][1], ProjectError) and "not a stemmaster project" in str(entries[3][1])
    assert ws.load("beta").name == "beta"
    with pytest.raises(ProjectError, match=r"no project named 'gamma'.*Alpha, beta"):
        ws.load("gamma")


def test_missing_workspace_lists_empty(tmp_path):
    assert Workspace(tmp_path / "none").list_entries() == []


def test_next_render_id(tmp_path):
    ws = Workspace(tmp_path)
    project = make_project("song")
    project.renders = []
    (tmp_path / "song" / "renders").mkdir(parents=True)
    save_project(project, tmp_path / "song")
    assert ws.next_render_id(project) == "001"
    project = make_project("song")  # records 001 and 002
    assert ws.next_render_id(project) == "003"
    (tmp_path / "song" / "renders" / "004").mkdir()  # a failed render left its folder
    assert ws.next_render_id(project) == "005"
    assert ws.render_folder(project, "005") == tmp_path / "song" / "renders" / "005"


def test_save_refuses_a_project_it_could_not_load(tmp_path):
    save_project(make_project(), tmp_path)
    before = (tmp_path / "project.toml").read_bytes()
    project = make_project()
    project.stems[0].role = "guitar"
    with pytest.raises(ProjectError, match=r"refusing to save an invalid project: .*stems\[0\]\.role = 'guitar'"):
        save_project(project, tmp_path)
    assert (tmp_path / "project.toml").read_bytes() == before
