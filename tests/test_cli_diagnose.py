"""`stemmaster diagnose` (project, file, stems folder) and `stemmaster master --auto`, through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stemmaster.audio_io import write_audio
from stemmaster.cli import main
from stemmaster.demo_job import write_demo_song
from stemmaster.diagnosis.findings import FINDING_IDS


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    folder = tmp_path_factory.mktemp("song")
    write_demo_song(folder, duration_s=16.0)
    return folder


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_diagnose_a_stems_folder_and_a_file_without_a_project(tmp_path, song, capsys):
    code, out, err = run(capsys, "--workspace", tmp_path / "ws", "diagnose", song / "stems", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["verdict"] == "ready with repairs"
    keys = {(f["id"], f["stem"]) for f in data["findings"]}
    assert {("sibilance", "vocals"), ("harsh_resonance", "vocals"), ("wide_low_end", "bass")} <= keys
    for f in data["findings"]:
        assert set(f) >= {"id", "stem", "severity", "measured", "threshold", "message", "repair"}
        assert f["id"] in FINDING_IDS

    # a hard-clipped stereo file: fix the mix first, in words
    rng = np.random.default_rng(0)
    x = np.clip(rng.standard_normal((2, 44100 * 6)) * 0.5, -0.3, 0.3) / 0.3 * 0.99
    write_audio(tmp_path / "clipped.wav", x.astype(np.float32), 44100, subtype="PCM_16")
    code, out, err = run(capsys, "diagnose", tmp_path / "clipped.wav")
    assert code == 0, err
    assert "verdict: fix the mix first" in out and "clipped throughout" in out


def test_diagnose_a_missing_target_is_one_line(tmp_path, capsys):
    code, out, err = run(capsys, "--workspace", tmp_path / "ws", "diagnose", tmp_path / "nope.wav")
    assert code == 1 and err.count("\n") == 1 and "nope.wav" in err and "Traceback" not in err


def test_master_auto_records_repairs_and_reports_before_and_after(tmp_path, song, capsys):
    ws = tmp_path / "ws"
    assert run(capsys, "--workspace", ws, "new", "Demo", "--stems", song / "stems")[0] == 0
    code, out, err = run(capsys, "--workspace", ws, "diagnose", "Demo")
    assert code == 0, err
    assert out.splitlines()[1] == "verdict: ready with repairs"
    assert (ws / "Demo" / "diagnosis.json").is_file()  # cached until the stems change

    code, out, err = run(capsys, "--workspace", ws, "master", "Demo", "--auto")
    assert code == 0, err
    assert "--auto:" in out and "+ bass low_end_mono crossover_hz=150.0" in out
    for key in ("vocals/sibilance", "vocals/harsh_resonance", "bass/wide_low_end"):
        line = next(line for line in out.splitlines() if line.strip().startswith(key + ":"))
        assert "(resolved)" in line or "(improved)" in line, line
    # recorded in the project, visible to `stemmaster repair`
    code, out, _ = run(capsys, "--workspace", ws, "repair", "Demo", "--stem", "bass")
    assert "crossover_hz=150.0" in out
    report = json.loads((ws / "Demo" / "renders" / "001" / "report.json").read_text())
    assert report["diagnosis"]["verdict"] == "ready with repairs"
    rows = {(r["id"], r["stem"]): r for r in report["auto"]["compare"]}
    for key in (("sibilance", "vocals"), ("harsh_resonance", "vocals"), ("wide_low_end", "bass")):
        assert rows[key]["after"] < rows[key]["before"]
    md = (ws / "Demo" / "renders" / "001" / "report.md").read_text()
    assert "ready with repairs" in md.split("\n## ")[0]  # the verdict comes first


def test_remaster_auto_puts_the_diagnosis_and_the_comparison_in_the_report(tmp_path, song, capsys):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "remaster", song / "stems", "-o", out_dir, "--auto")
    assert code == 0, err
    assert "--auto:" in out and "verdict: ready with repairs" in out
    report = json.loads((out_dir / "report.json").read_text())
    assert report["diagnosis"]["verdict"] == "ready with repairs"
    rows = {(r["id"], r["stem"]): r for r in report["auto"]["compare"]}
    assert rows[("wide_low_end", "bass")]["after"] < -20.0 < rows[("wide_low_end", "bass")]["before"]
    assert report["settings"]["low_end_mono"]["crossover_hz"] == 150.0  # the bus repair, recorded
