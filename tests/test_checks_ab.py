"""Level-matched A/B pair: files on disk, same loudness, the reported moves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from stemmaster.audio_io import read_audio
from stemmaster.checks.ab import write_ab_pair
from stemmaster.demo import demo_mix, make_demo_stems
from stemmaster.errors import AudioError
from stemmaster.master import MasterSettings, master_bus
from stemmaster.meters.loudness import gated_loudness_lufs, integrated_lufs
from stemmaster.meters.truepeak import true_peak_dbtp

SR = 44100


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    mix = demo_mix(make_demo_stems(duration_s=10))
    settings = MasterSettings().with_bus(profile=None, target_lufs=-11.0, ceiling_dbtp=-1.0)
    return mix, master_bus(mix, SR, settings).audio


def test_pair_is_level_matched_on_disk(tmp_path, pair):
    before, after = pair
    lufs_before, lufs_after = gated_loudness_lufs(before, SR), gated_loudness_lufs(after, SR)
    assert lufs_after > lufs_before + 3.0  # the master is louder than the mix
    result = write_ab_pair(before, after, SR, tmp_path)
    json.dumps(result, allow_nan=False)
    folder = tmp_path / "ab"
    assert sorted(p.name for p in folder.iterdir()) == ["after.wav", "before.wav"]  # no temp files left
    measured = {}
    for name in ("before", "after"):
        path = folder / f"{name}.wav"
        assert result[name]["path"] == str(path)
        assert sf.info(str(path)).subtype == "FLOAT"
        audio, rate = read_audio(path)
        assert rate == SR
        measured[name] = integrated_lufs(audio, SR)  # pyloudnorm: a second meter, within 0.02 LU of ours
        assert measured[name] == pytest.approx(result[name]["lufs_out"], abs=0.03)
    assert abs(measured["before"] - measured["after"]) <= 0.1
    assert result["matched_within_lu"] <= 0.1
    # the quieter (the mix) stays put; the louder (the master) is turned down by the difference
    assert result["reference"] == "quieter" and result["limited_by_headroom"] is False
    assert result["before"]["gain_db"] == 0.0
    assert result["after"]["gain_db"] == pytest.approx(lufs_before - lufs_after, abs=1e-6)
    assert result["target_lufs"] == pytest.approx(lufs_before, abs=1e-6)
    assert result["before"]["lufs_in"] == pytest.approx(lufs_before, abs=1e-6)
    assert result["after"]["lufs_in"] == pytest.approx(lufs_after, abs=1e-6)
    # turning down lowers the peak by the same amount
    assert result["after"]["true_peak_dbtp_out"] == pytest.approx(
        true_peak_dbtp(after) + result["after"]["gain_db"], abs=0.01)


def test_order_does_not_matter(tmp_path, pair):
    before, after = pair
    result = write_ab_pair(after, before, SR, tmp_path)  # the louder one as "before"
    assert result["after"]["gain_db"] == 0.0 and result["before"]["gain_db"] < -3.0
    assert result["matched_within_lu"] <= 0.1


def test_fixed_reference_turns_down_both(tmp_path, pair):
    before, after = pair
    result = write_ab_pair(before, after, SR, tmp_path, reference_lufs=-24.0)
    assert result["reference"] == "fixed" and result["target_lufs"] == -24.0
    for name, audio in (("before", before), ("after", after)):
        assert result[name]["gain_db"] == pytest.approx(-24.0 - gated_loudness_lufs(audio, SR), abs=1e-6)
        on_disk, _ = read_audio(tmp_path / "ab" / f"{name}.wav")
        assert integrated_lufs(on_disk, SR) == pytest.approx(-24.0, abs=0.05)


def test_fixed_reference_never_turns_up_into_clipping(tmp_path, pair):
    before, after = pair
    # the master sits at -1 dBTP: asking for +6 LU would push it 5 dB over full scale
    target = gated_loudness_lufs(after, SR) + 6.0
    result = write_ab_pair(before, after, SR, tmp_path, reference_lufs=target)
    assert result["limited_by_headroom"] is True
    assert result["target_lufs"] < target
    for name in ("before", "after"):
        assert result[name]["true_peak_dbtp_out"] <= 0.0 + 0.01
        audio, _ = read_audio(tmp_path / "ab" / f"{name}.wav")
        assert np.max(np.abs(audio)) <= 1.0
    assert result["matched_within_lu"] <= 0.1


def test_rewrite_replaces_files(tmp_path, pair):
    before, after = pair
    write_ab_pair(before, after, SR, tmp_path)
    write_ab_pair(before[:, : 5 * SR], after[:, : 5 * SR], SR, tmp_path)
    assert sf.info(str(tmp_path / "ab" / "after.wav")).frames == 5 * SR
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == ["after.wav", "before.wav"]


def test_bad_input(tmp_path, pair):
    before, after = pair
    with pytest.raises(AudioError, match="silent"):
        write_ab_pair(np.zeros((2, SR), dtype=np.float32), after, SR, tmp_path)
    with pytest.raises(AudioError, match="mono or stereo"):
        write_ab_pair(before[0], after, SR, tmp_path)
    with pytest.raises(AudioError, match="sample rate"):
        write_ab_pair(before, after, 0, tmp_path)
    with pytest.raises(AudioError, match="reference_lufs"):
        write_ab_pair(before, after, SR, tmp_path, reference_lufs=float("inf"))
    assert not (tmp_path / "ab").exists()  # nothing written for bad input
