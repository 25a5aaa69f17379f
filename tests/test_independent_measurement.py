"""Masters measured by ffmpeg's ebur128 filter (an implementation that is not ours).

Done-when of the foundation: the demo master is within 0.5 LU of the profile's target
and at or under its ceiling (+0.1 dB measurement tolerance), and so are real stems.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stemmaster.demo_job import write_demo_song
from stemmaster.master import MasterSettings
from stemmaster.profiles import get_profile
from stemmaster.remaster import remaster
from tests.helpers import corpus_path, ffmpeg_ebur128, need_ffmpeg

PROFILES = ["spotify", "apple", "club"]


@pytest.fixture(scope="module")
def demo_stems(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    write_demo_song(folder, duration_s=30.0)
    return folder / "stems"


@pytest.mark.parametrize("profile", PROFILES)
def test_demo_master_by_ffmpeg(tmp_path, demo_stems, profile):
    need_ffmpeg()
    outcome = remaster(demo_stems, tmp_path / profile, settings_transform=lambda s: s.with_profile(profile))
    p = get_profile(profile)
    for master in outcome.master_files:
        lufs, tp = ffmpeg_ebur128(master)
        assert abs(lufs - p.target_lufs) <= 0.5, (master.name, lufs)
        assert tp <= p.ceiling_dbtp + 0.1, (master.name, tp)


@pytest.mark.parametrize("song", ["musdb18_mu_too_bright", "musdb18_80s_rock"])
@pytest.mark.parametrize("profile", PROFILES)
def test_real_stems_by_ffmpeg(tmp_path, song, profile):
    need_ffmpeg()
    folder = corpus_path("multitrack", song)
    stems = tmp_path / "stems"
    stems.mkdir()
    for name in ("vocals", "drums", "bass", "other"):  # not mixture.wav: it is the sum, not a stem
        shutil.copy(folder / f"{name}.wav", stems / f"{name}.wav")
    outcome = remaster(stems, tmp_path / "out", settings_transform=lambda s: s.with_profile(profile))
    p = get_profile(profile)
    lufs, tp = ffmpeg_ebur128(outcome.master_files[0])
    assert abs(lufs - p.target_lufs) <= 0.5, lufs
    assert tp <= p.ceiling_dbtp + 0.1, tp
