"""Versions and stem masters carry the main master's bus state (issue 7)."""

from __future__ import annotations

import numpy as np
import pytest

from stemmaster.demo import make_demo_stems
from stemmaster.deliver.versions import (StemShare, builtin_version, parse_version, render_version,
                                         stem_masters)
from stemmaster.errors import SettingsError
from stemmaster.master import MasterSettings, master_bus
from stemmaster.meters.loudness import gated_loudness_lufs
from stemmaster.meters.truepeak import true_peak_dbtp

SR = 44100


@pytest.fixture(scope="module")
def song():
    raw = make_demo_stems(SR, duration_s=16.0)
    stems = [StemShare(k, k, v.astype(np.float64)) for k, v in raw.items()]
    settings = MasterSettings()
    main = master_bus(sum(s.audio for s in stems), SR, settings)
    return stems, settings, main


def _db(x, ref):
    return 20.0 * np.log10(np.abs(x).max() / np.abs(ref).max())


def test_main_version_is_the_main_master(song):
    stems, settings, main = song
    v = render_version(builtin_version("main", stems), stems, SR, settings, main)
    assert v.safety_reduction_db == 0.0
    assert _db(v.audio - main.audio, main.audio) < -200.0  # the same samples, to rounding


def test_stem_masters_sum_to_the_main_master(song):
    stems, settings, main = song
    shares = stem_masters(stems, SR, settings, main)
    assert set(shares) == {s.name for s in stems}
    assert _db(sum(shares.values()) - main.audio, main.audio) < -60.0


def test_instrumental_is_the_main_minus_the_vocal_share(song):
    stems, settings, main = song
    v = render_version(builtin_version("instrumental", stems), stems, SR, settings, main)
    vocal_share = stem_masters(stems, SR, settings, main)["vocals"]
    # the same bus gain as the main: no vocal energy left, and not pushed up to the target
    if v.safety_reduction_db == 0.0:
        assert _db(v.audio - (main.audio - vocal_share), main.audio) < -60.0
    assert _db(v.audio - (main.audio - vocal_share), vocal_share) < -60.0 or v.safety_reduction_db > 0.0
    assert gated_loudness_lufs(v.audio, SR) < gated_loudness_lufs(main.audio, SR) - 0.5
    assert true_peak_dbtp(v.audio, SR) <= settings.bus.ceiling_dbtp + 1e-6


def test_tv_lowers_only_the_lead_vocal(song):
    stems, settings, main = song
    v = render_version(builtin_version("tv", stems), stems, SR, settings, main)
    shares = stem_masters(stems, SR, settings, main)
    expected = sum(a for k, a in shares.items() if k != "vocals") + shares["vocals"] * 10 ** (-6 / 20)
    assert v.stems["vocals"] == -6.0
    assert _db(v.audio - expected, main.audio) < -60.0


def test_acapella_has_the_mains_level_without_its_motion(song):
    stems, settings, main = song
    v = render_version(builtin_version("acapella", stems), stems, SR, settings, main)
    vocal_share = stem_masters(stems, SR, settings, main)["vocals"]
    # a constant gain: the acapella is the vocal through the linear bus scaled by one number
    ratio = np.mean(main.bus_gain)
    linear = vocal_share / main.bus_gain
    assert _db(v.audio - linear * ratio, v.audio) < -60.0
    # and it sits near the vocal's loudness in the main master (the average gain, not a fresh drive)
    assert abs(gated_loudness_lufs(v.audio, SR) - gated_loudness_lufs(vocal_share, SR)) < 1.5
    assert true_peak_dbtp(v.audio, SR) <= settings.bus.ceiling_dbtp + 1e-6


def test_custom_versions_parse_and_bad_ones_are_one_line(song):
    stems, settings, main = song
    v = parse_version("club=vocals:-3,drums:+2,other:mute", stems)
    assert v.gains_db == {"vocals": -3.0, "drums": 2.0, "bass": 0.0, "other": None}
    for spec, needle in [("x=nothing:0", "no stem 'nothing'"), ("x=vocals:loud", "STEM:DB"),
                         ("x=vocals:+40", "out of range"), ("karaoke", "unknown version"),
                         ("bad name=vocals:0", "version name")]:
        with pytest.raises(SettingsError, match=needle):
            parse_version(spec, stems)


def test_performance_keeps_backing_vocals():
    n = SR
    rng = np.random.default_rng(0)
    stems = [StemShare(name, role, rng.standard_normal((2, n)) * 0.05)
             for name, role in [("Lead Vox", "vocals"), ("Backing Vox", "vocals"), ("drums", "drums")]]
    v = builtin_version("performance", stems)
    assert v.gains_db == {"Lead Vox": None, "Backing Vox": 0.0, "drums": 0.0}
    assert builtin_version("instrumental", stems).gains_db == {"Lead Vox": None, "Backing Vox": None, "drums": 0.0}
