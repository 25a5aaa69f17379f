"""Repair chains in projects: defaults per role, the repair command, and their effect on the demo."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

from stemmaster.audio_io import read_audio
from stemmaster.cli import main
from stemmaster.demo import make_demo_stems
from stemmaster.demo_job import write_demo_song
from stemmaster.errors import SettingsError
from stemmaster.repair import ROLE_DEFAULTS, build_chain, default_chain, set_value


@pytest.fixture(scope="module")
def mastered(tmp_path_factory):
    """The demo song as a project, mastered once with the default repairs."""
    root = tmp_path_factory.mktemp("repair")
    write_demo_song(root / "song", duration_s=15.0)
    ws = root / "ws"
    assert main(["--workspace", str(ws), "new", "demo", "--stems", str(root / "song" / "stems")]) == 0
    assert main(["--workspace", str(ws), "master", "demo"]) == 0
    return ws


def test_import_records_every_default_setting(mastered):
    doc = tomllib.loads((mastered / "demo" / "project.toml").read_text())
    chains = {s["name"]: s["chain"] for s in doc["stems"]}
    for role, defaults in ROLE_DEFAULTS.items():
        assert list(chains[role]) == [k for k, _ in defaults]
        assert chains[role] == default_chain(role)
    assert chains["vocals"]["deesser"]["enabled"] is True
    assert "max_reduction_db" in chains["vocals"]["deesser"]  # every setting written, not only overrides


def test_demo_report_shows_the_repairs(mastered):
    report = json.loads((mastered / "demo" / "renders" / "001" / "report.json").read_text())
    stems = {s["name"]: s for s in report["stems"]}
    vocal = stems["vocals"]["repair"]["effects"]
    assert vocal["sibilance_db"]["before"] - vocal["sibilance_db"]["after"] >= 3.0
    # the de-harsher's own largest cut is the planted 3 kHz resonance, and it no longer stands out
    assert abs(vocal["resonance"]["frequency_hz"] - 3000.0) < 300.0
    assert vocal["resonance"]["cut_db"] >= 3.0
    assert vocal["resonance"]["before_db"] - vocal["resonance"]["after_db"] >= 3.0
    bass = stems["bass"]["repair"]["effects"]["side_low"]
    # the wide low end is gone: 28 dB down below 100 Hz (the 120 Hz crossover is -6 dB at 120 Hz,
    # so 80-100 Hz is not fully folded; below 80 Hz it is 45 dB down, see test_low_end_mono)
    assert bass["before_dbfs"] - bass["after_dbfs"] >= 25.0 and bass["after_dbfs"] <= -50.0
    drums = stems["drums"]["repair"]["effects"]["hit_crest_db"]
    assert drums["after"] > drums["before"]
    md = (mastered / "demo" / "renders" / "001" / "report.md").read_text()
    assert "## Repairs" in md and "sibilance band" in md and "side energy below 100 Hz" in md


def test_rendered_stems_are_the_repaired_stems(mastered):
    project_dir = mastered / "demo"
    doc = tomllib.loads((project_dir / "project.toml").read_text())
    vocal = next(s for s in doc["stems"] if s["name"] == "vocals")
    raw, sr = read_audio(project_dir / vocal["path"])
    rendered, _ = read_audio(project_dir / "renders" / "001" / "stems" / "vocals.wav")
    expected = build_chain(vocal["chain"]).process(raw, sr)
    assert np.max(np.abs(rendered - expected)) < 1e-6
    assert np.max(np.abs(rendered - raw)) > 1e-3  # and the repair really changed it


def test_repair_command_changes_one_setting(mastered, capsys):
    ws = str(mastered)
    assert main(["--workspace", ws, "repair", "demo", "--stem", "vocals", "--set", "deesser.max_reduction_db=8"]) == 0
    out = capsys.readouterr().out
    assert "max_reduction_db=8.0" in out
    doc = tomllib.loads((mastered / "demo" / "project.toml").read_text())
    vocal = next(s for s in doc["stems"] if s["name"] == "vocals")
    assert vocal["chain"]["deesser"]["max_reduction_db"] == 8.0
    assert main(["--workspace", ws, "repair", "demo"]) == 0
    assert "bass (bass" in capsys.readouterr().out
    # order, removal, adding, mute, reset
    assert main(["--workspace", ws, "repair", "demo", "--stem", "vocals", "--order", "deesser,deharsher,highpass"]) == 0
    doc = tomllib.loads((mastered / "demo" / "project.toml").read_text())
    assert list(next(s for s in doc["stems"] if s["name"] == "vocals")["chain"]) == ["deesser", "deharsher", "highpass"]
    assert main(["--workspace", ws, "repair", "demo", "--stem", "other", "--set", "stereo_width.width=0.8",
                 "--remove", "deharsher", "--gain-db", "-2"]) == 0
    doc = tomllib.loads((mastered / "demo" / "project.toml").read_text())
    other = next(s for s in doc["stems"] if s["name"] == "other")
    assert list(other["chain"]) == ["stereo_width"] and other["gain_db"] == -2.0
    assert main(["--workspace", ws, "repair", "demo", "--stem", "other", "--reset"]) == 0
    doc = tomllib.loads((mastered / "demo" / "project.toml").read_text())
    assert next(s for s in doc["stems"] if s["name"] == "other")["chain"] == default_chain("other")
    capsys.readouterr()


@pytest.mark.parametrize("argv, needle", [
    (["--stem", "vocals", "--set", "deesser.max_reduction_db=loud"], "expected a number"),
    (["--stem", "vocals", "--set", "deesser.max_reduction_db=500"], "max_reduction_db"),
    (["--stem", "vocals", "--set", "reverb.size=3"], "unknown processor"),
    (["--stem", "vocals", "--set", "deesser.colour=3"], "no setting"),
    (["--stem", "kazoo", "--set", "gain.gain_db=1"], "no stem"),
    (["--set", "gain.gain_db=1"], "--stem"),
    (["--stem", "vocals", "--order", "deesser"], "--order"),
])
def test_repair_errors_are_one_line_and_change_nothing(mastered, capsys, argv, needle):
    before = (mastered / "demo" / "project.toml").read_bytes()
    assert main(["--workspace", str(mastered), "repair", "demo", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert (mastered / "demo" / "project.toml").read_bytes() == before


def test_set_value_validates_and_adds():
    chain = set_value({}, "highpass.highpass_hz", "90")
    assert chain["highpass"]["highpass_hz"] == 90.0 and chain["highpass"]["enabled"] is True
    with pytest.raises(SettingsError):
        set_value(chain, "highpass.highpass_hz", "-5")
    off = set_value(chain, "highpass.enabled", "off")
    assert build_chain(off).kinds() == []


def test_sibilance_change_reads_both_signals_on_the_frames_sibilant_before():
    from stemmaster.meters.spectral import sibilance_change_db, sibilance_db, sibilant_frames

    sr = 44100
    stems = make_demo_stems(sample_rate=sr, duration_s=8.0)
    before = stems["vocals"]
    after = before * np.float32(0.5)  # 6.02 dB down everywhere: the ratio to the mean is unchanged
    frames = sibilant_frames(before, sr)
    change = sibilance_change_db(before, after, sr)
    assert change["before"] == pytest.approx(sibilance_db(before, sr, frames), abs=1e-9)
    assert change["after"] == pytest.approx(sibilance_db(after, sr, frames), abs=1e-9)
    assert change["after"] == pytest.approx(change["before"], abs=1e-3)
