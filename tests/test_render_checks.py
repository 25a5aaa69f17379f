"""Release checks of every render: translation, codec, level-matched A/B, plots, and the report.

The checks run as a second phase on the landed render: their failure,
cancelling or interruption never undoes the master, and never leaves a
partial ``ab/`` or ``plots/`` file behind.
"""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest

from stemmaster.audio_io import read_audio
from stemmaster.checks.translation import CHECKS
from stemmaster.demo_job import write_demo_song
from stemmaster.errors import AudioError
from stemmaster.meters.loudness import gated_loudness_lufs, short_term_lufs
from stemmaster.meters.truepeak import true_peak_dbtp
from stemmaster.pipeline import load_stems, project_settings, render_project, source_sum
from stemmaster.project import save_project
from stemmaster.release_checks import record_checks, run_release_checks, target_curve
from stemmaster.report import report_markdown
from stemmaster.workspace import Workspace

DURATION_S = 12.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MASTER_FILES = ("master_24bit.wav", "master_16bit.wav", "report.json", "report.md", "settings.toml")


def _new_project(root, name="song"):
    write_demo_song(root / "src", duration_s=DURATION_S)
    ws = Workspace(root / "ws")
    p = ws.create_from_stems(name, root / "src" / "stems")
    return ws, p


def _raw_sum(root) -> np.ndarray:
    """The demo stems as written by ``write_demo_song``, summed: the source as it arrived."""
    total = None
    for path in sorted((root / "src" / "stems").glob("*.wav")):
        audio, _ = read_audio(path)
        total = audio.astype(np.float64) if total is None else total + audio
    return total


def _leftovers(folder) -> list[str]:
    """Hidden entries (staging folders, temporary files) anywhere in a render folder."""
    return [str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.startswith(".")]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("checks")
    ws, p = _new_project(root)
    calls: list[tuple[float, str]] = []
    outcome = render_project(p, ws.project_dir("song"), project_settings(p), "001",
                             progress=lambda f, m: calls.append((f, m)))
    return root, ws, outcome, calls


def test_ab_pair_is_level_matched_source_against_written_master(rendered):
    root, _ws, outcome, _ = rendered
    folder = outcome.folder
    before, sr = read_audio(folder / "ab" / "before.wav")
    after, sr2 = read_audio(folder / "ab" / "after.wav")
    assert sr == sr2 == 44100 and before.shape == after.shape == (2, int(DURATION_S * 44100))
    lb, la = gated_loudness_lufs(before, sr), gated_loudness_lufs(after, sr)
    assert abs(lb - la) <= 0.1
    ab = outcome.report["checks"]["ab"]
    assert ab["before"]["path"] == "ab/before.wav" and ab["after"]["path"] == "ab/after.wav"
    # the quieter one (the unmastered source, about -17 LUFS) sets the level; the master is turned down
    assert ab["before"]["gain_db"] == pytest.approx(0.0, abs=1e-9)
    assert ab["after"]["gain_db"] == pytest.approx(ab["before"]["lufs_in"] - ab["after"]["lufs_in"], abs=1e-9)
    assert ab["after"]["lufs_in"] == pytest.approx(-14.0, abs=0.1)  # spotify's target, the master as written
    assert -20.0 < ab["before"]["lufs_in"] < -15.0
    assert la == pytest.approx(ab["target_lufs"], abs=0.02)
    # "after" is the written master, scaled; "before" is the stems' sum as imported, scaled
    master, _ = read_audio(folder / "master_24bit.wav")
    np.testing.assert_allclose(after, master * 10.0 ** (ab["after"]["gain_db"] / 20.0), atol=2e-6)
    np.testing.assert_allclose(before, _raw_sum(root) * 10.0 ** (ab["before"]["gain_db"] / 20.0), atol=2e-6)


def test_plots_are_pngs_in_the_render_folder(rendered):
    _, _, outcome, _ = rendered
    plots = outcome.report["checks"]["plots"]
    assert plots == ["plots/tonal_balance.png", "plots/short_term_loudness.png"]
    for rel in plots:
        data = (outcome.folder / rel).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 10_000
    listed = {f["path"]: f["role"] for f in outcome.report["files"]}
    assert {listed[p] for p in plots} == {"plot"}

    assert listed["ab/before.wav"] == listed["ab/after.wav"] == "ab"
    assert _leftovers(outcome.folder) == []


def test_report_json_holds_the_checks(rendered):
    _, _, outcome, _ = rendered
    report = json.loads((outcome.folder / "report.json").read_text())
    checks = report["checks"]
    assert checks["status"] == "done" and checks["seconds"] > 0.0
    assert set(checks["check_seconds"]) == {"codec", "translation", "ab", "plots"}
    assert all(v > 0.0 for v in checks["check_seconds"].values())
    translation = {t["name"]: t for t in checks["translation"]}
    assert [t["name"] for t in checks["translation"]] == list(CHECKS) == ["mono", "phone", "earbuds", "car"]
    # the demo's bass is widened below 120 Hz, but the master's low-end mono cures it: mono loses little
    assert -1.5 < translation["mono"]["loudness_change_lu"] <= 0.1
    assert translation["mono"]["warnings"] == []
    assert translation["phone"]["band_change_db"]["sub"] < -40.0  # 400 Hz high-pass, 4th order
    assert translation["phone"]["loudness_change_lu"] < -1.0
    assert translation["car"]["band_change_db"]["sub"] > 3.0  # +5 dB cabin shelf at 100 Hz
    assert translation["car"]["loudness_change_lu"] > 0.0
    codecs = {c["codec"]: c for c in checks["codec"]}
    assert list(codecs) == ["mp3", "aac"]
    master_tp = report["master"]["true_peak_dbtp"]
    mp3 = codecs["mp3"]
    assert mp3["available"] and mp3["ceiling_dbtp"] == -1.0
    assert mp3["source_true_peak_dbtp"] == pytest.approx(master_tp, abs=0.05)
    assert mp3["overshoot_db"] == pytest.approx(mp3["decoded_true_peak_dbtp"] - mp3["source_true_peak_dbtp"], abs=1e-6)
    assert -0.5 < mp3["overshoot_db"] < 1.0  # 320 kbit/s moves a limited peak by tenths of a dB
    assert abs(mp3["loudness_change_lu"]) < 0.1
    assert codecs["aac"]["available"] == (shutil.which("ffmpeg") is not None)
    if codecs["aac"]["available"]:
        assert abs(codecs["aac"]["loudness_change_lu"]) < 0.1
    # the report written to disk is the one returned
    assert report["checks"] == json.loads(json.dumps(outcome.report["checks"]))


def test_report_md_has_the_check_sections(rendered):
    _, _, outcome, _ = rendered
    md = (outcome.folder / "report.md").read_text()
    assert md == report_markdown(outcome.report)
    for heading in ("## Release checks", "### Translation", "### Codec", "### Level-matched A/B", "### Plots"):
        assert heading in md
    assert "| mono fold-down (L+R)/2 |" in md and "| MP3 320k |" in md
    assert "![tonal balance](plots/tonal_balance.png)" in md
    assert "![short term loudness](plots/short_term_loudness.png)" in md
    gain = outcome.report["checks"]["ab"]["after"]["gain_db"]
    assert f"`ab/after.wav`: after (the master), moved {gain:+.1f} LU" in md
    # the repairs are still reported (under "What was done")
    assert "## Repairs" in md and "sibilance band" in md


def test_progress_master_then_checks(rendered):
    _, _, _, calls = rendered
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    landed = next(i for i, (_, m) in enumerate(calls) if m.startswith("master landed"))
    assert calls[landed][0] == 0.75
    assert all(f <= 0.75 for f, _ in calls[:landed])
    assert all(f >= 0.75 and m.startswith("release checks") for f, m in calls[landed + 1:])
    assert {m for _, m in calls[landed + 1:]} >= {f"release checks: {n} done" for n in ("codec", "translation", "ab", "plots")}


def test_tonal_balance_target_slope():
    f = np.array([250.0, 500.0, 1000.0, 2000.0])
    np.testing.assert_allclose(target_curve(f), [3.0, 1.5, 0.0, -1.5])  # -4.5 dB/oct density = -1.5 in band power


def _assert_master_intact(folder, status):
    for name in MASTER_FILES:
        assert (folder / name).is_file(), name
    report = json.loads((folder / "report.json").read_text())
    assert report["checks"]["status"] == status and report["checks"]["reason"]
    assert report["master"]["integrated_lufs"] == pytest.approx(-14.0, abs=0.05)
    assert not (folder / "ab").exists() and not (folder / "plots").exists()
    assert _leftovers(folder) == []
    assert not [f for f in report["files"] if f["path"].startswith(("ab/", "plots/"))]
    md = (folder / "report.md").read_text()
    assert f"Not run ({status})" in md and md == report_markdown(report)
    audio, sr = read_audio(folder / "master_24bit.wav")
    assert gated_loudness_lufs(audio, sr) == pytest.approx(report["master"]["integrated_lufs"], abs=0.01)
    return report


def test_cancelled_checks_leave_the_master_and_a_valid_report(tmp_path):
    ws, p = _new_project(tmp_path)
    state = {"checks": False, "asked": 0}

    def progress(fraction, message):
        if message.startswith("master landed"):
            state["checks"] = True

    def cancel():
        if state["checks"]:
            state["asked"] += 1
        return state["checks"]

    outcome = render_project(p, ws.project_dir("song"), project_settings(p), "001", progress=progress, cancel=cancel)
    assert state["asked"] >= 1
    report = _assert_master_intact(outcome.folder, "cancelled")
    assert "cancelled" in report["checks"]["reason"]
    assert outcome.report["checks"]["status"] == "cancelled"
    # the render is recorded in the project as any other
    assert [r.id for r in ws.load("song").renders] == ["001"]


def test_failed_check_leaves_the_master_and_says_why(tmp_path, monkeypatch):
    import stemmaster.checks.codec as codec

    def broken(*args, **kwargs):
        raise AudioError("MP3 check: lameenc failed to encode (test)")

    monkeypatch.setattr(codec, "codec_checks", broken)
    ws, p = _new_project(tmp_path)
    outcome = render_project(p, ws.project_dir("song"), project_settings(p), "001")
    report = _assert_master_intact(outcome.folder, "failed")
    assert report["checks"]["reason"] == "MP3 check: lameenc failed to encode (test)"


def test_interrupted_checks_are_recorded_and_reraised(tmp_path, monkeypatch):
    import stemmaster.checks.translation as translation

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(translation, "translation_checks", interrupted)
    ws, p = _new_project(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        render_project(p, ws.project_dir("song"), project_settings(p), "001")
    report = _assert_master_intact(ws.project_dir("song") / "renders" / "001", "cancelled")
    assert "KeyboardInterrupt" in report["checks"]["reason"]


def test_checks_off(tmp_path):
    ws, p = _new_project(tmp_path)
    calls = []
    outcome = render_project(p, ws.project_dir("song"), project_settings(p), "001", checks=False,
                             progress=lambda f, m: calls.append(f))
    report = _assert_master_intact(outcome.folder, "skipped")
    assert report["checks"] == {"status": "skipped", "reason": "release checks were not requested for this render"}
    assert calls[-1] == 1.0 and outcome.landed_s > 0.0


def test_before_ignores_repairs_gain_and_mute(tmp_path):
    ws, p = _new_project(tmp_path)
    p.stems[0].gain_db = -6.0
    p.stems[1].mute = True
    save_project(p, ws.project_dir("song"))
    p = ws.load("song")
    outcome = render_project(p, ws.project_dir("song"), project_settings(p), "001")
    ab = outcome.report["checks"]["ab"]
    before, _ = read_audio(outcome.folder / "ab" / "before.wav")
    raw = _raw_sum(tmp_path)
    np.testing.assert_allclose(before, raw * 10.0 ** (ab["before"]["gain_db"] / 20.0), atol=2e-6)
    assert ab["before"]["lufs_in"] == pytest.approx(gated_loudness_lufs(raw.astype(np.float32), 44100), abs=0.02)


def test_rerun_replaces_the_files_and_a_cancelled_rerun_keeps_them(rendered, tmp_path):
    root, ws, outcome, _ = rendered
    folder = tmp_path / "copy"
    shutil.copytree(outcome.folder, folder)
    p = ws.load("song")
    before = source_sum(load_stems(p, ws.project_dir("song")), p.sample_rate)  # read a block at a time
    after, sr = read_audio(folder / "master_24bit.wav")
    old_ab = (folder / "ab" / "after.wav").read_bytes()
    old_png = (folder / "plots" / "tonal_balance.png").read_bytes()
    with pytest.raises(Exception) as info:
        run_release_checks(folder, before, after, sr, ceiling_dbtp=-1.0, target_lufs=-14.0, cancel=lambda: True)
    assert type(info.value).__name__ == "Cancelled"
    assert (folder / "ab" / "after.wav").read_bytes() == old_ab
    assert (folder / "plots" / "tonal_balance.png").read_bytes() == old_png
    assert _leftovers(folder) == []
    # a re-run at another target: the plots and the pair are replaced, the report rewritten
    checks = run_release_checks(folder, before, after, sr, ceiling_dbtp=-2.0, target_lufs=-16.0)
    assert [c["ceiling_dbtp"] for c in checks["codec"]] == [-2.0, -2.0]
    report = json.loads((folder / "report.json").read_text())
    record_checks(folder, report, checks)
    report = json.loads((folder / "report.json").read_text())
    assert report["checks"]["codec"][0]["ceiling_dbtp"] == -2.0
    assert sorted(f["path"] for f in report["files"] if f["role"] in ("ab", "plot")) == [
        "ab/after.wav", "ab/before.wav", "plots/short_term_loudness.png", "plots/tonal_balance.png"]
    assert sorted(p.name for p in (folder / "plots").iterdir()) == ["short_term_loudness.png", "tonal_balance.png"]
    assert _leftovers(folder) == []


# ---------------------------------------------------------------- report_markdown, by hand


def _report(**extra):
    report = {
        "schema": "stemmaster.report/1", "project": "song", "render": "007", "created": "2026-01-01T00:00:00+00:00",
        "profile": "spotify", "target_lufs": -14.0, "ceiling_dbtp": -1.0, "sample_rate": 44100,
        "master": {"integrated_lufs": -14.02, "true_peak_dbtp": -1.01, "sample_peak_dbfs": -1.2},
        "mix": {"integrated_lufs": -17.5, "true_peak_dbtp": -1.3},
        "separation": None,
        "stems": [{"name": "vocals", "role": "vocals", "gain_db": 0.0, "mute": False, "solo": False,
                   "integrated_lufs": -21.0, "sample_peak_dbfs": -12.0,
                   "repair": {"chain": ["deesser"], "effects": {"sibilance_db": {"before": -5.0, "after": -12.0}}}}],
        "processing": {"staging_gain_db": -0.5, "drive_gain_db": 5.0, "compressor_max_reduction_db": 1.0,
                       "limiter_max_reduction_db": 4.0, "iterations": 4, "repair_s": 0.1, "log": []},
        "settings": {},
        "files": [{"path": "master_24bit.wav", "role": "master", "format": "WAV", "subtype": "PCM_24"}],
    }
    report.update(extra)
    return report


DIAGNOSIS = {
    "verdict": "fix the mix first",
    "reasons": ["the bass is out of phase between channels below 100 Hz", "vocal sibilance is strong"],
    "findings": [
        {"id": "sibilance", "stem": "vocals", "severity": "minor", "measured": -5.04, "threshold": -8.0, "unit": "dB",
         "message": "sibilance | strong", "repair": {"stem": "vocals", "processor": "deesser",
                                                    "settings": {"max_reduction_db": 8.0}}},
        {"id": "bass_phase", "stem": "bass", "severity": "fix_mix", "measured": -0.62, "threshold": 0.0, "unit": "",
         "message": "bass cancels in mono", "repair": None},
        {"id": "level", "stem": "other", "severity": "info", "measured": -24.0, "threshold": -30.0, "unit": "LUFS",
         "message": "pad sits low", "repair": None},
    ],
}
AUTO = {"applied": ["deesser on vocals (max_reduction_db=8)"],
        "compare": [{"id": "sibilance", "stem": "vocals", "before": -5.04, "after": -12.3, "unit": "dB",
                     "improved": True}]}


def _first_block(md: str) -> str:
    return md[:md.index("\n## ")]


def test_markdown_verdict_first_then_findings_done_numbers():
    report = _report(diagnosis=DIAGNOSIS, auto=AUTO)
    frozen = copy.deepcopy(report)
    md = report_markdown(report)
    assert report == frozen and report_markdown(report) == md  # a pure function of the dict
    head = _first_block(md)
    assert head.startswith("# song — render 007")
    assert "**Verdict: fix the mix first.** The master was made anyway; the source should be fixed first:" in head
    assert "\n- the bass is out of phase between channels below 100 Hz\n- vocal sibilance is strong\n" in head
    # the verdict comes before the numbers, even in the first block
    assert head.index("Verdict") < head.index("-14.0 LUFS")
    order = [md.index(h) for h in ("**Verdict", "## Findings", "## What was done", "## Numbers")]
    assert order == sorted(order)
    findings = md[md.index("## Findings"):md.index("## What was done")]
    rows = [ln for ln in findings.splitlines() if ln.startswith("| ") and not ln.startswith(("| severity", "| finding"))]
    assert rows[0] == "| fix the mix | bass | -0.6 vs 0.0 | bass cancels in mono | — |"
    assert rows[1] == ("| minor | vocals | -5.0 dB vs -8.0 dB | sibilance \\| strong | "
                       "deesser on vocals (max_reduction_db=8) |")
    assert rows[2] == "| info | other | -24.0 LUFS vs -30.0 LUFS | pad sits low | — |"
    assert "### Automatic repairs, measured before and after" in findings
    assert rows[3] == "| sibilance | vocals | -5.0 dB | -12.3 dB | yes |"
    done = md[md.index("## What was done"):md.index("## Numbers")]
    assert "- Automatic repair: deesser on vocals (max_reduction_db=8)" in done
    assert "sibilance band (4.5-11 kHz)" in done
    numbers = md[md.index("## Numbers"):]
    assert "| integrated loudness | -17.5 LUFS | -14.0 LUFS |" in numbers
    # no checks in the dict: the section says so, nothing breaks
    assert "## Release checks\n\nNot recorded in this report." in md


def test_markdown_without_diagnosis_or_checks():
    md = report_markdown(_report())
    head = _first_block(md)
    assert "No verdict: the stems were not diagnosed for this render." in head
    assert "No diagnosis findings (no diagnosis was run)." in md
    assert "Automatic repairs" not in md and "Automatic repair:" not in md
    empty = report_markdown(_report(diagnosis={"verdict": "ready", "reasons": [], "findings": []}))
    assert "**Verdict: ready.**" in _first_block(empty) and "The diagnosis found nothing to flag." in empty


def test_markdown_check_tables_from_a_hand_made_dict():
    checks = {
        "status": "done", "seconds": 11.2, "target_curve": "spectral density -4.5 dB/octave",
        "translation": [{"name": "mono", "description": "mono fold-down (L+R)/2", "loudness_change_lu": -2.04,
                         "band_change_db": {"sub": -6.1, "bass": -0.5, "low_mids": None, "presence": 0.0, "air": 0.0},
                         "warnings": ["sub loses 6.1 dB in mono: wide or out-of-phase content cancels"]}],
        "codec": [{"codec": "mp3", "bitrate_kbps": 320, "available": True, "decoded_true_peak_dbtp": 0.31,
                   "overshoot_db": 0.56, "overs": True, "ceiling_dbtp": -0.25, "recommended_ceiling_dbtp": -1.4,
                   "note": None},
                  {"codec": "aac", "bitrate_kbps": 256, "available": False, "note": "ffmpeg not found: AAC check skipped"}],
        "ab": {"target_lufs": -17.2, "matched_within_lu": 0.0,
               "before": {"path": "ab/before.wav", "gain_db": 0.0, "lufs_in": -17.2},
               "after": {"path": "ab/after.wav", "gain_db": -3.2, "lufs_in": -14.0}},
        "plots": ["plots/tonal_balance.png"],
    }
    md = report_markdown(_report(checks=checks))
    head = _first_block(md)
    assert "Release checks: MP3 decodes to 0.31 dBTP (overs); 1 translation warning." in head
    assert "| mono fold-down (L+R)/2 | -2.0 LU | sub -6.1, bass -0.5, low mids n/a, presence +0.0, air +0.0 | " \
           "sub loses 6.1 dB in mono: wide or out-of-phase content cancels |" in md
    assert "| MP3 320k | 0.31 dBTP | +0.56 dB | yes | -1.4 dBTP | — |" in md
    assert "| AAC 256k | — | — | — | — | ffmpeg not found: AAC check skipped |" in md
    assert "- `ab/after.wav`: after (the master), moved -3.2 LU (from -14.0 LUFS)" in md
    assert "![tonal balance](plots/tonal_balance.png)" in md
    findings = md[md.index("## Findings"):md.index("## What was done")]
    assert "MP3 320k decodes to 0.31 dBTP, over full scale: a ceiling of -1.4 dBTP would keep it under." in findings
    assert "mono: sub loses 6.1 dB in mono" in findings
    failed = report_markdown(_report(checks={"status": "failed", "reason": "ffmpeg failed (exit 1)", "seconds": 0.2}))
    assert "Release checks: not run (failed: ffmpeg failed (exit 1))." in _first_block(failed)
    assert "Not run (failed): ffmpeg failed (exit 1)." in failed


def test_export_at_another_rate_checks_at_the_masters_rate(tmp_path):
    from dataclasses import replace

    ws, p = _new_project(tmp_path)
    settings = project_settings(p)
    settings = replace(settings, export=replace(settings.export, sample_rate=48000))
    outcome = render_project(p, ws.project_dir("song"), settings, "001")
    checks = outcome.report["checks"]
    assert checks["status"] == "done" and outcome.report["sample_rate"] == 48000
    before, sr = read_audio(outcome.folder / "ab" / "before.wav")
    after, sr2 = read_audio(outcome.folder / "ab" / "after.wav")
    assert sr == sr2 == 48000 and before.shape == after.shape == (2, int(DURATION_S * 48000))
    assert abs(gated_loudness_lufs(before, sr) - gated_loudness_lufs(after, sr)) <= 0.1
    assert checks["codec"][0]["sample_rate"] == 48000 and checks["codec"][0]["note"] is None
    # the source resampled keeps its loudness and peak level (within a resampler's tolerance)
    raw = _raw_sum(tmp_path).astype(np.float32)
    assert checks["ab"]["before"]["lufs_in"] == pytest.approx(gated_loudness_lufs(raw, 44100), abs=0.05)
    assert true_peak_dbtp(before) == pytest.approx(true_peak_dbtp(raw), abs=0.2)


def test_remaster_runs_the_checks_in_outdir(tmp_path):
    from stemmaster.remaster import remaster

    write_demo_song(tmp_path / "src", duration_s=DURATION_S)
    calls = []
    outcome = remaster(tmp_path / "src" / "stems", tmp_path / "out", progress=lambda f, m: calls.append((f, m)))
    out = tmp_path / "out"
    assert outcome.report["checks"]["status"] == "done"
    assert (out / "ab" / "before.wav").is_file() and (out / "plots" / "tonal_balance.png").is_file()
    assert json.loads((out / "report.json").read_text())["checks"]["ab"]["after"]["path"] == "ab/after.wav"
    assert not [q for q in out.rglob("*") if q.name.startswith(".")]
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    skipped = remaster(tmp_path / "src" / "stems", tmp_path / "out2", checks=False)
    assert skipped.report["checks"]["status"] == "skipped" and not (tmp_path / "out2" / "ab").exists()


def test_report_carries_the_short_term_curve_once_a_second(rendered):
    _, _, outcome, _ = rendered
    curve = outcome.report["checks"]["short_term"]
    master, rate = read_audio(outcome.folder / "master_24bit.wav")
    full = short_term_lufs(master, rate)
    assert curve["hop_s"] == pytest.approx(1.0) and curve["start_s"] == pytest.approx(3.0)
    assert len(curve["lufs"]) == len(full[::10])
    np.testing.assert_allclose(curve["lufs"], np.round(full[::10], 2), atol=0.011)
    # the loudest second of the curve is the master's short-term maximum within a 100 ms step
    assert max(curve["lufs"]) <= outcome.report["master"]["short_term_max_lufs"] + 0.01
