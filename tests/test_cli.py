"""Every CLI command, run on real files in a temporary workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stemmaster.cli import main
from stemmaster.demo_job import write_demo_song
from stemmaster.meters.loudness import integrated_lufs
from stemmaster.meters.truepeak import true_peak_dbtp
from stemmaster.audio_io import read_audio


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    folder = tmp_path_factory.mktemp("song")
    write_demo_song(folder, duration_s=12.0)
    return folder


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_new_list_master_report(tmp_path, song, capsys):
    ws = tmp_path / "ws"
    code, out, err = run(capsys, "--workspace", ws, "new", "Song One", "--stems", song / "stems")
    assert code == 0, err
    assert "4 stems" in out and "vocals" in out

    code, out, _ = run(capsys, "--workspace", ws, "list")
    assert code == 0 and "Song One" in out and "stems" in out

    code, out, err = run(capsys, "--workspace", ws, "master", "Song One", "--profile", "apple")
    assert code == 0, err
    assert "render 001" in out and "LUFS" in out
    master = ws / "Song One" / "renders" / "001" / "master_24bit.wav"
    assert master.is_file() and str(master) in out
    audio, rate = read_audio(master)
    assert abs(integrated_lufs(audio, rate) + 16.0) <= 0.1
    assert true_peak_dbtp(audio, rate) <= -1.0

    code, out, _ = run(capsys, "--workspace", ws, "master", "Song One", "--target-lufs", "-12", "--ceiling-dbtp", "-0.8")
    assert code == 0 and "render 002" in out
    assert (ws / "Song One" / "renders" / "001" / "report.json").is_file()  # the earlier render is kept

    code, out, _ = run(capsys, "--workspace", ws, "report", "Song One", "--json")
    report = json.loads(out)
    assert report["render"] == "002" and report["target_lufs"] == -12.0 and report["ceiling_dbtp"] == -0.8
    assert abs(report["master"]["integrated_lufs"] + 12.0) <= 0.1
    assert report["master"]["true_peak_dbtp"] <= -0.8
    roles = {f["role"] for f in report["files"]}
    assert {"master", "stem", "report"} <= roles
    for f in report["files"]:
        assert (ws / "Song One" / "renders" / "002" / f["path"]).is_file()
    assert {s["name"] for s in report["stems"]} == {"vocals", "drums", "bass", "other"}

    code, out, _ = run(capsys, "--workspace", ws, "report", "Song One", "--render", "001")
    assert code == 0 and "render 001" in out and "true peak" in out

    code, out, _ = run(capsys, "--workspace", ws, "list")
    assert "-12.0 LUFS" in out


def test_analyze(song, capsys):
    code, out, _ = run(capsys, "analyze", song / "demo-mix.wav", "--json")
    assert code == 0
    data = json.loads(out)
    audio, rate = read_audio(song / "demo-mix.wav")
    assert abs(data["integrated_lufs"] - integrated_lufs(audio, rate)) < 1e-6
    for key in ("true_peak_dbtp", "sample_peak_dbfs", "short_term_max_lufs", "loudness_range_lu",
                "plr_db", "crest_factor_db", "stereo_correlation"):
        assert isinstance(data[key], float)
    code, out, _ = run(capsys, "analyze", song / "demo-mix.wav")
    assert code == 0 and "integrated_lufs" in out


def test_remaster_one_shot(tmp_path, song, capsys):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "remaster", song / "stems", "-o", out_dir, "--profile", "club")
    assert code == 0, err
    masters = sorted(out_dir.glob("master*.wav"))
    assert masters, list(out_dir.iterdir())
    report = json.loads((out_dir / "report.json").read_text())
    assert abs(report["master"]["integrated_lufs"] + 9.0) <= 0.1
    assert (out_dir / "report.md").is_file()
    for stem in ("vocals", "drums", "bass", "other"):
        assert (out_dir / "stems" / f"{stem}.wav").is_file()
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]  # no temporary left


def test_demo_command_twice(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for render in ("001", "002"):
        code, out, err = run(capsys, "--workspace", tmp_path / "ws", "demo", "--duration-s", "10")
        assert code == 0, err
        assert f"render {render}" in out and "LUFS" in out and "dBTP" in out
    assert (tmp_path / "demo-song" / "demo-mix.wav").is_file()


@pytest.mark.parametrize("argv, needle", [
    (["master", "nope"], "nope"),
    (["report", "nope"], "nope"),
    (["analyze", "missing.wav"], "missing.wav"),
    (["new", "x", "--stems", "no-such-dir"], "no-such-dir"),
    (["remaster", "no-such-dir", "-o", "out"], "no-such-dir"),
    (["master", "x", "--target-lufs", "-14", "--ceiling-dbtp", "3"], "ceiling"),
])
def test_user_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    if argv[0] == "master" and argv[1] == "x":
        write_demo_song(tmp_path / "s", duration_s=10.0)
        assert main(["--workspace", "ws", "new", "x", "--stems", str(tmp_path / "s" / "stems")]) == 0
        capsys.readouterr()
    code, out, err = run(capsys, "--workspace", "ws", *argv)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stemmaster: error:") and needle in lines[0]
    assert "Traceback" not in err


def test_render_project_without_weights_says_how_to_provide_them(tmp_path, song, capsys, monkeypatch):
    empty = tmp_path / "no-models"
    empty.mkdir()
    monkeypatch.setenv("STEMMASTER_MODEL_REPO", str(empty))
    code, _, err = run(capsys, "--workspace", tmp_path / "ws", "new", "r", "--render", song / "demo-mix.wav")
    assert code == 0, err
    before = (tmp_path / "ws" / "r" / "project.toml").read_bytes()
    code, _, err = run(capsys, "--workspace", tmp_path / "ws", "master", "r")
    lines = [ln for ln in err.splitlines() if ln.startswith("stemmaster: error")]
    assert code == 1 and len(lines) == 1, err
    assert "htdemucs" in lines[0] and str(empty) in lines[0] and "Traceback" not in err
    assert (tmp_path / "ws" / "r" / "project.toml").read_bytes() == before  # nothing recorded


def test_console_script_imports_neither_torch_nor_textual():
    code = ("import sys, stemmaster.cli; stemmaster.cli.build_parser(); "
            "bad = [m for m in ('torch', 'textual', 'demucs') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exe = Path(sys.executable).with_name("stemmaster")
    if exe.exists():
        proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, env={**os.environ})
        assert proc.returncode == 0 and "remaster" in proc.stdout


def test_role_override_and_output_rate(tmp_path, song, capsys):
    ws = tmp_path / "ws"
    code, out, err = run(capsys, "--workspace", ws, "new", "roles", "--stems", song / "stems",
                         "--role", "other.wav=vocals")
    assert code == 0, err
    assert [line.split() for line in out.splitlines() if line.strip().startswith("other")] == [["other", "vocals"]]
    code, out, err = run(capsys, "--workspace", ws, "master", "roles", "--sample-rate", "48000")
    assert code == 0, err
    audio, rate = read_audio(ws / "roles" / "renders" / "001" / "master_24bit.wav")
    assert rate == 48000
    assert abs(audio.shape[1] / rate - 12.0) < 0.01
    assert abs(integrated_lufs(audio, rate) + 14.0) <= 0.1 and true_peak_dbtp(audio, rate) <= -1.0
