"""`stemmaster export`: versions, stem masters and formats of a render, with a manifest (issue 7)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from stemmaster.audio_io import read_audio
from stemmaster.cli import main
from stemmaster.deliver.export import export_render
from stemmaster.deliver.formats import decode_file
from stemmaster.demo_job import write_demo_song
from stemmaster.errors import StemmasterError
from stemmaster.meters.loudness import gated_loudness_lufs
from stemmaster.meters.truepeak import true_peak_dbtp
from stemmaster.pipeline import project_settings, render_project
from stemmaster.workspace import Workspace


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    write_demo_song(root / "song", duration_s=14.0)
    ws = Workspace(root / "ws")
    project = ws.create_from_stems("Song", root / "song" / "stems")
    render_project(project, ws.project_dir("Song"), project_settings(project), "001", checks=False)
    return ws, ws.load("Song")


def test_versions_and_stem_masters_are_written_and_consistent(rendered):
    ws, project = rendered
    out = export_render(project, ws.project_dir("Song"), versions=["main", "instrumental", "acapella", "tv"],
                        formats=["wav24", "flac16", "mp3"], stem_masters=True,
                        metadata={"artist": "Test Artist", "isrc": "US-S1Z-99-00001"})
    folder = out.folder
    assert folder.name == "deliverables"
    manifest = json.loads((folder / "manifest.json").read_text())
    rows = {r["file"]: r for r in manifest["files"]}
    assert len(rows) == (4 + 4) * 3  # 4 versions and 4 stem masters, in 3 formats each
    main_audio, rate = read_audio(folder / "Song_main.wav")
    # the main deliverable is the render's master (same bus state), cleaned at the edges only
    render_master, _ = read_audio(ws.project_dir("Song") / "renders" / "001" / "master_24bit.wav")
    assert abs(gated_loudness_lufs(main_audio, rate) - gated_loudness_lufs(render_master, rate)) < 0.05
    # instrumental: no vocal energy above -60 dB relative. Per 100 ms block, fit the instrumental as
    # a * (main - vocal share) + b * vocal share (a is 1 except where the safety limiter caught a peak
    # that the vocal had cancelled in the full mix); the vocal left in it is b * vocal share.
    instrumental, _ = read_audio(folder / "Song_instrumental.wav")
    vocal_share, _ = read_audio(folder / "Song_stem-vocals.wav")
    backing = (main_audio - vocal_share).astype(np.float64)
    left_in = 0.0
    block = rate // 10
    for k in range(0, instrumental.shape[1] - block + 1, block):
        basis = np.stack([backing[:, k:k + block].ravel(), vocal_share[:, k:k + block].ravel()], axis=1)
        (a, b), *_ = np.linalg.lstsq(basis, instrumental[:, k:k + block].ravel().astype(np.float64), rcond=None)
        left_in += b * b * float(np.sum(vocal_share[:, k:k + block].astype(np.float64) ** 2))
    vocal_energy = float(np.sum(vocal_share.astype(np.float64) ** 2))
    assert 10 * np.log10(max(left_in, 1e-30) / vocal_energy) < -60.0
    assert out.versions[1]["safety_limiter_db"] < 1.0  # a few peaks at most
    # the versions share the main's bus gain: the instrumental is quieter, not pushed to the target
    assert gated_loudness_lufs(instrumental, rate) < gated_loudness_lufs(main_audio, rate) - 0.5
    # stem masters sum to the main master within -60 dB
    stems_sum = sum(read_audio(folder / f"Song_stem-{n}.wav")[0].astype(np.float64)
                    for n in ("vocals", "drums", "bass", "other"))
    assert 20 * np.log10(np.abs(stems_sum - main_audio).max() / np.abs(main_audio).max()) < -60.0
    for name, row in rows.items():
        audio, r = decode_file(folder / name)
        assert r == rate == row["sample_rate_hz"] and audio.shape[1] == row["length_samples"]
        assert row["integrated_lufs"] == pytest.approx(gated_loudness_lufs(audio, r), abs=0.01) or \
            row["integrated_lufs"] is None
        if "_stem-" not in name:
            assert true_peak_dbtp(audio, r) <= -1.0 + 1e-3, name
    info = sf.info(str(folder / "Song_main.flac"))
    assert info.subtype == "PCM_16"
    from mutagen.flac import FLAC

    tags = FLAC(str(folder / "Song_main.flac"))
    assert tags["ARTIST"] == ["Test Artist"] and tags["ISRC"] == ["USS1Z9900001"]
    assert "instrumental" in (folder / "versions.md").read_text()


def test_export_at_48k_and_a_bad_format_leave_earlier_deliverables(rendered):
    ws, project = rendered
    export_render(project, ws.project_dir("Song"), versions=["main"], formats=["wav16"], out_rate=48000)
    folder = ws.project_dir("Song") / "renders" / "001" / "deliverables"
    before = sorted(p.name for p in folder.iterdir())
    assert sf.info(str(folder / "Song_main.wav")).samplerate == 48000
    with pytest.raises(StemmasterError, match="unknown format"):
        export_render(project, ws.project_dir("Song"), versions=["main"], formats=["ogg"])
    with pytest.raises(StemmasterError, match="unknown version"):
        export_render(project, ws.project_dir("Song"), versions=["karaoke"], formats=["wav16"])
    assert sorted(p.name for p in folder.iterdir()) == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".deliverables")]


def test_cli_export_with_a_reference(rendered, tmp_path, capsys):
    ws, project = rendered
    ref = tmp_path / "ref.wav"
    audio, rate = read_audio(ws.project_dir("Song") / "renders" / "001" / "master_24bit.wav")
    sf.write(str(ref), (audio * 0.5).T, rate, subtype="PCM_24")  # 6 dB quieter
    code = main(["--workspace", str(ws.root), "export", "Song", "--versions", "main", "--mix",
                 "club=vocals:-2,drums:+1", "--formats", "wav24", "--reference", str(ref), "--title", "My Song"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "matched to" in out.out and "My_Song_club.wav" in out.out
    folder = ws.project_dir("Song") / "renders" / "001" / "deliverables"
    main_audio, _ = read_audio(folder / "My_Song_main.wav")
    assert gated_loudness_lufs(main_audio, rate) == pytest.approx(gated_loudness_lufs(audio * 0.5, rate), abs=0.15)
