"""Stem and render import, and project creation in a workspace: real files on disk."""

from __future__ import annotations

import errno
import hashlib
import math
import os

import numpy as np
import pytest
import soundfile as sf

from stemmaster import stem_import
from stemmaster.audio_io import audio_info, read_audio
from stemmaster.errors import AudioError, ProjectError, SettingsError
from stemmaster.project import load_project
from stemmaster.stem_import import (
    check_lengths,
    choose_sample_rate,
    import_stems,
    scan_stems_dir,
    stem_name_from_file,
    unique_names,
)
from stemmaster.workspace import Workspace


def tone(freq: float, rate: int, seconds: float, channels: int, amp: float = 0.3) -> np.ndarray:
    """(samples, channels) float32, the layout soundfile writes."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    if channels == 1:
        return x[:, None]
    return np.stack([x, -0.5 * x], axis=1)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder):
    """Bytes and mtimes of every file, to prove the originals are untouched."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def stems_folder(tmp_path):
    folder = tmp_path / "my stems"
    folder.mkdir()
    sf.write(folder / "Lead Vox.wav", tone(440, 48000, 3.0, 1), 48000, subtype="PCM_24")  # mono 48k
    sf.write(folder / "Drums.flac", tone(1000, 44100, 3.0, 2), 44100, subtype="PCM_16")  # stereo 44.1k
    sf.write(folder / "808.wav", tone(55, 48000, 2.5, 2), 48000, subtype="FLOAT")  # shorter by 0.5 s
    (folder / "README.txt").write_text("stems from the session\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x01junk")
    (folder / "._Lead Vox.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / "Bounce.asd").write_bytes(b"ableton analysis")
    (folder / "old takes").mkdir()
    return folder


def test_scan_skips_non_audio(stems_folder):
    audio, skipped = scan_stems_dir(stems_folder)
    assert [p.name for p in audio] == ["808.wav", "Drums.flac", "Lead Vox.wav"]
    assert sorted(p.name for p in skipped) == sorted([".DS_Store", "._Lead Vox.wav", "Bounce.asd", "old takes", "README.txt"])


def test_import_folder(tmp_path, stems_folder):
    before = snapshot(stems_folder)
    progress = []
    project_dir = tmp_path / "proj"
    project_dir.mkdir()
    rate, sources, stems = import_stems(stems_folder, project_dir, progress=lambda f, m: progress.append((f, m)))

    # project rate: the most common (two 48k stems, one 44.1k)
    assert rate == 48000
    assert [s.name for s in stems] == ["808", "Drums", "Lead Vox"]
    assert [s.role for s in stems] == ["bass", "drums", "vocals"]
    assert [s.path for s in stems] == ["stems/808.wav", "stems/Drums.wav", "stems/Lead Vox.wav"]

    # sources: byte-identical copies, hashes of the originals, originals untouched
    assert [s.path for s in sources] == ["source/808.wav", "source/Drums.flac", "source/Lead Vox.wav"]
    for src in sources:
        original = stems_folder / src.original_name
        assert src.sha256 == digest(original)
        assert (project_dir / src.path).read_bytes() == original.read_bytes()
    assert snapshot(stems_folder) == before
    assert {s.original_name: (s.sample_rate, s.channels, s.frames) for s in sources} == {
        "808.wav": (48000, 2, 120000),
        "Drums.flac": (44100, 2, 132300),
        "Lead Vox.wav": (48000, 1, 144000),
    }
    assert sorted(os.listdir(project_dir / "source")) == ["808.wav", "Drums.flac", "Lead Vox.wav"]  # nothing skipped was copied

    # working stems: stereo float WAV at 48k, all the longest length
    longest = 144000
    loaded = {}
    for stem in stems:
        info = audio_info(project_dir / stem.path)
        assert (info.format, info.subtype, info.channels, info.sample_rate) == ("WAV", "FLOAT", 2, 48000)
        assert info.frames == longest
        loaded[stem.name], _ = read_audio(project_dir / stem.path)

    # mono became dual mono, unchanged
    vox = loaded["Lead Vox"]
    original_vox, _ = read_audio(stems_folder / "Lead Vox.wav")
    np.testing.assert_array_equal(vox[0], vox[1])
    np.testing.assert_array_equal(vox[0], original_vox[0])

    # 44.1k resampled: 132300 frames -> 144000 at 48k, level kept
    assert math.ceil(132300 * 48000 / 44100) == longest
    drums = loaded["Drums"]
    mid = drums[0, 36000:108000].astype(np.float64)
    assert 20 * math.log10(math.sqrt(2 * np.mean(mid**2)) / 0.3) == pytest.approx(0.0, abs=0.05)

    # shorter stem padded with silence at the end, the start untouched
    bass = loaded["808"]
    original_bass, _ = read_audio(stems_folder / "808.wav")
    np.testing.assert_array_equal(bass[:, :120000], original_bass)
    assert not np.any(bass[:, 120000:])

    # progress: fractions from 0 to 1, never going back, mentions the skipped files
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("README.txt" in m for _, m in progress)


def test_explicit_sample_rate_resamples_everything(tmp_path, stems_folder):
    (tmp_path / "p").mkdir()
    rate, sources, stems = import_stems(stems_folder, tmp_path / "p", sample_rate=44100)
    assert rate == 44100
    for stem in stems:
        info = audio_info(tmp_path / "p" / stem.path)
        assert info.sample_rate == 44100 and info.frames == 132300


def test_role_overrides(tmp_path, stems_folder):
    (tmp_path / "p").mkdir()
    _, _, stems = import_stems(stems_folder, tmp_path / "p", roles={"808.wav": "other", "lead vox": "OTHER"})
    assert [s.role for s in stems] == ["other", "drums", "other"]


def test_role_override_errors(tmp_path, stems_folder):
    (tmp_path / "p").mkdir()
    with pytest.raises(SettingsError, match=r"role override 'Guitar\.wav': no such stem \(stems: 808\.wav, Drums\.flac, Lead Vox\.wav\)"):
        import_stems(stems_folder, tmp_path / "p", roles={"Guitar.wav": "other"})
    with pytest.raises(SettingsError, match="allowed roles"):
        import_stems(stems_folder, tmp_path / "p", roles={"Drums": "percussion"})
    assert os.listdir(tmp_path / "p") == []  # settings are checked before anything is written


def test_bad_sample_rate_setting(tmp_path, stems_folder):
    with pytest.raises(SettingsError, match="sample_rate = 100"):
        import_stems(stems_folder, tmp_path, sample_rate=100)


def test_wildly_different_lengths_name_the_file(tmp_path):
    folder = tmp_path / "stems"
    folder.mkdir()
    sf.write(folder / "bass.wav", tone(55, 44100, 12.0, 2), 44100)
    sf.write(folder / "drums.wav", tone(100, 44100, 12.0, 2), 44100)
    sf.write(folder / "vocals.wav", tone(440, 44100, 3.0, 1), 44100)
    (tmp_path / "p").mkdir()
    with pytest.raises(AudioError, match=r"vocals\.wav: 3\.00 s long, but .*\.wav is 12\.00 s"):
        import_stems(folder, tmp_path / "p")


def test_one_overlong_stem_is_the_one_named():
    with pytest.raises(AudioError, match=r"^long\.wav: 600\.00 s long, but most stems are about 180\.00 s"):
        check_lengths([("a.wav", 180.0), ("b.wav", 180.0), ("long.wav", 600.0)])


def test_lengths_within_tolerance_pass():
    check_lengths([("a", 100.0), ("b", 90.5)])  # within 10 %
    check_lengths([("a", 10.0), ("b", 8.1)])  # within 2 s
    with pytest.raises(AudioError, match=r"^b: 7\.90 s"):
        check_lengths([("a", 10.0), ("b", 7.9)])


def test_rate_choice_and_names():
    assert choose_sample_rate([44100, 48000]) == 48000  # tie -> highest
    assert choose_sample_rate([44100, 44100, 96000]) == 44100
    assert unique_names(["vocals", "Vocals", "vocals", "drums"]) == ["vocals", "Vocals-2", "vocals-3", "drums"]
    assert stem_name_from_file("Lead: Vox|Take*2 .wav") == "Lead_ Vox_Take_2"
    assert stem_name_from_file("...wav") == "stem"
    assert stem_name_from_file("Güitar (DI).flac") == "Güitar (DI)"


def test_unreadable_stem_names_the_file(tmp_path):
    folder = tmp_path / "stems"
    folder.mkdir()
    sf.write(folder / "bass.wav", tone(55, 44100, 1.0, 2), 44100)
    (folder / "vocals.wav").write_text("not really audio")
    with pytest.raises(AudioError, match=r"vocals\.wav: not a readable audio file"):
        import_stems(folder, tmp_path)


def test_too_many_channels_names_the_file(tmp_path):
    folder = tmp_path / "stems"
    folder.mkdir()
    sf.write(folder / "surround.wav", np.zeros((4410, 6), np.float32), 44100)
    with pytest.raises(AudioError, match=r"surround\.wav: 6 channels; stemmaster takes mono or stereo"):
        import_stems(folder, tmp_path)


def test_folder_without_audio(tmp_path):
    folder = tmp_path / "stems"
    folder.mkdir()
    (folder / "README.txt").write_text("x")
    with pytest.raises(AudioError, match=r"stems: no audio files .*found only: README\.txt"):
        import_stems(folder, tmp_path / "p")
    with pytest.raises(AudioError, match="stems folder not found"):
        import_stems(tmp_path / "missing", tmp_path / "p")


def test_all_silent_stems_refused(tmp_path):
    folder = tmp_path / "stems"
    folder.mkdir()
    sf.write(folder / "a.wav", np.zeros((4410, 2), np.float32), 44100)
    (tmp_path / "p").mkdir()
    with pytest.raises(AudioError, match="every stem is silent"):
        import_stems(folder, tmp_path / "p")


# ---------------------------------------------------------------- workspace creation

def test_create_from_stems(tmp_path, stems_folder):
    ws = Workspace(tmp_path / "ws")
    project = ws.create_from_stems("Sông 1", stems_folder, roles={"808": "bass"})
    folder = tmp_path / "ws" / "Sông 1"
    assert sorted(os.listdir(tmp_path / "ws")) == ["Sông 1"]
    assert sorted(os.listdir(folder)) == ["project.toml", "renders", "source", "stems"]
    assert project.source_kind == "stems" and project.sample_rate == 48000
    assert project.created.endswith("Z")
    assert load_project(folder) == project
    assert ws.load("Sông 1") == project
    assert ws.next_render_id(project) == "001"
    with pytest.raises(ProjectError, match="already exists"):
        ws.create_from_stems("Sông 1", stems_folder)


def test_failed_creation_leaves_nothing(tmp_path):
    folder = tmp_path / "stems"
    folder.mkdir()
    sf.write(folder / "drums.wav", tone(100, 44100, 12.0, 2), 44100)
    sf.write(folder / "vocals.wav", tone(440, 44100, 12.0, 1), 44100)
    sf.write(folder / "bass.wav", tone(55, 44100, 2.0, 2), 44100)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(AudioError, match=r"bass\.wav"):
        ws.create_from_stems("song", folder)
    assert os.listdir(tmp_path / "ws") == []


def test_disk_full_during_creation_leaves_nothing(tmp_path, stems_folder, monkeypatch):
    real_copy = stem_import.shutil.copy2
    calls = []

    def copy_then_full(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(src, dst)

    monkeypatch.setattr(stem_import.shutil, "copy2", copy_then_full)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(ProjectError, match=r"cannot copy .*Drums\.flac.*disk full"):
        ws.create_from_stems("song", stems_folder)
    assert os.listdir(tmp_path / "ws") == []


def test_interrupted_creation_leaves_nothing(tmp_path, stems_folder):
    def cancel(fraction, message):
        if fraction > 0.5:
            raise KeyboardInterrupt

    ws = Workspace(tmp_path / "ws")
    with pytest.raises(KeyboardInterrupt):
        ws.create_from_stems("song", stems_folder, progress=cancel)
    assert os.listdir(tmp_path / "ws") == []


def test_stale_temp_folder_of_dead_process_is_removed(tmp_path, stems_folder):
    ws_root = tmp_path / "ws"
    stale = ws_root / ".tmp-song-999999999"
    stale.mkdir(parents=True)
    Workspace(ws_root).create_from_stems("song", stems_folder)
    assert os.listdir(ws_root) == ["song"]


def test_bad_name_is_rejected_before_any_work(tmp_path, stems_folder):
    with pytest.raises(ProjectError, match="project name"):
        Workspace(tmp_path / "ws").create_from_stems("../escape", stems_folder)
    assert not (tmp_path / "ws").exists()


def test_create_from_render(tmp_path):
    render = tmp_path / "Final Mix.wav"
    sf.write(render, tone(440, 44100, 2.0, 1), 44100, subtype="PCM_16")
    before = render.read_bytes()
    ws = Workspace(tmp_path / "ws")
    project = ws.create_from_render("mix", render)
    assert project.source_kind == "render" and project.sample_rate == 44100 and project.stems == []
    (src,) = project.sources
    assert (src.path, src.original_name, src.channels, src.frames) == ("source/Final Mix.wav", "Final Mix.wav", 1, 88200)
    assert src.sha256 == hashlib.sha256(before).hexdigest()
    assert (tmp_path / "ws" / "mix" / "source" / "Final Mix.wav").read_bytes() == before
    assert render.read_bytes() == before
    assert ws.load("mix") == project


def test_silent_or_corrupt_render_is_refused(tmp_path):
    ws = Workspace(tmp_path / "ws")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((44100, 2), np.float32), 44100)
    with pytest.raises(AudioError, match=r"silent\.wav: silent"):
        ws.create_from_render("a", silent)
    nan = tmp_path / "nan.wav"
    data = tone(440, 44100, 1.0, 2)
    data[22050, 0] = np.nan
    sf.write(nan, data, 44100, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: 1 NaN/Inf sample \(first at 0\.500 s\)"):
        ws.create_from_render("b", nan)
    assert os.listdir(tmp_path / "ws") == []
