"""Reference matching (stemmaster.deliver.reference): tone, loudness and width toward a reference.

The main case: the demo mix darkened by a -6 dB high shelf at 6 kHz, matched
to the master of the undarkened mix. Figures measured on the 12 s demo at
44.1 kHz (they are deterministic): the darkened mix's master is 2.2 dB (RMS
over the 40 Hz-16 kHz 1/3-octave bands) from the reference; after matching
with the default +-3 dB bound, 0.73 dB. The remainder is the bound's cost:
the same fit allowed +-6 dB lands at 0.34 dB (the fitted shelf sits at 8 kHz,
the damage at 6 kHz, so even unbounded it cannot reach 0), and at +-1 dB at
1.39 dB. The assertions leave about 0.25 dB of margin above the measured values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stemmaster.deliver.reference import (
    MAX_WIDTH, MIN_WIDTH, TONAL_BANDS_HZ, ReferenceProfile, eq_band_response_db, match_settings,
    measure_reference, spectral_distance_db, tonal_curve)
from stemmaster.demo import demo_mix, make_demo_stems
from stemmaster.dsp.biquad import sos_filter
from stemmaster.dsp.eq import ToneEQ, _shelf
from stemmaster.dsp.width import StereoWidth
from stemmaster.errors import AudioError, SettingsError
from stemmaster.master import MasterSettings, master_bus
from stemmaster.meters.loudness import gated_loudness_lufs
from stemmaster.meters.stereo import side_to_mid_db

SR = 44100
GAINS = ("low_shelf_db", "high_shelf_db", "low_mid_db", "tilt_db")


@pytest.fixture(scope="module")
def song():
    """(mix, darkened mix, the mix's master, its ReferenceProfile), 12 s of the demo at 44.1 kHz."""
    mix = demo_mix(make_demo_stems(SR, 12.0)).astype(np.float64)
    dark = sos_filter(_shelf("high", 6000.0, -6.0, SR)[None, :], mix)
    master = master_bus(mix, SR, MasterSettings()).audio
    return mix, dark, master, measure_reference(master, SR, name="demo master")


def _pink(seconds: float, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal((2, n)), axis=-1)
    f = np.fft.rfftfreq(n, 1.0 / SR)
    spec[:, 1:] /= np.sqrt(f[1:])
    spec[:, f < 20.0] = 0.0  # from 20 Hz: below, 1/f would pile the power on a few random bins
    x = np.fft.irfft(spec, n, axis=-1)
    return 0.1 * x / np.sqrt(np.mean(x ** 2))


def test_darkened_mix_matched_to_the_original_master_comes_closer(song):
    mix, dark, _, ref = song
    settings = MasterSettings()
    new, report = match_settings(settings, dark, SR, ref)
    before = spectral_distance_db(tonal_curve(master_bus(dark, SR, settings).audio, SR), ref)
    result = master_bus(dark, SR, new)
    after = spectral_distance_db(tonal_curve(result.audio, SR), ref)
    assert before > 2.0  # measured 2.21 dB
    assert after < 1.0  # measured 0.73 dB (the +-3 dB bound's floor; see the module docstring)
    assert before - after > 1.2
    # the report's linear-bus estimates agree with the real masters (compressor and limiter included)
    assert abs(report["spectral_distance_before_db"] - before) < 0.1
    assert abs(report["spectral_distance_after_db"] - after) < 0.1
    # the fit brightens: the high shelf and the tilt go up, every gain within the bound
    eq = new.tone_eq
    assert eq.high_shelf_db > 1.5 and eq.tilt_db > 0.0
    for name in GAINS:
        assert abs(getattr(eq, name)) <= 3.0
        assert report["tone_eq"][name] == getattr(eq, name)
    assert eq.low_mid_q <= 1.0  # the bell stays broad
    assert (eq.low_shelf_hz, eq.high_shelf_hz, eq.low_mid_hz, eq.tilt_pivot_hz) == (100.0, 8000.0, 300.0, 1000.0)
    # loudness: the reference's; ceiling kept, profile cleared
    assert new.bus.profile is None and new.bus.ceiling_dbtp == settings.bus.ceiling_dbtp
    assert new.bus.target_lufs == pytest.approx(ref.integrated_lufs, abs=0.01)
    assert result.integrated_lufs == pytest.approx(ref.integrated_lufs, abs=0.06)
    # the settings survive the project file (all but the cleared profile label: to_dict drops None,
    # from_dict restores the default profile's name; the target and ceiling themselves survive)
    again = MasterSettings.from_dict(new.to_dict())
    assert again.with_bus(profile=None) == new


def test_every_gain_stays_within_max_eq_db(song):
    _, dark, _, ref = song
    new, report = match_settings(MasterSettings(), dark, SR, ref, max_eq_db=1.0)
    for name in GAINS:
        assert abs(getattr(new.tone_eq, name)) <= 1.0
    assert max(abs(getattr(new.tone_eq, n)) for n in GAINS) == pytest.approx(1.0)  # it wanted more
    # measured 2.22 -> 1.42 dB: less than with +-3 dB, still closer
    assert report["spectral_distance_after_db"] < report["spectral_distance_before_db"] - 0.5
    with pytest.raises(SettingsError):
        match_settings(MasterSettings(), dark, SR, ref, max_eq_db=0.0)
    with pytest.raises(SettingsError):
        match_settings(MasterSettings(), dark, SR, ref, max_eq_db=13.0)


def test_a_mix_matched_to_its_own_master_barely_changes(song):
    mix, _, _, ref = song
    new, report = match_settings(MasterSettings(), mix, SR, ref)
    assert report["spectral_distance_before_db"] < 0.15  # measured 0.05
    for name in GAINS:
        assert abs(getattr(new.tone_eq, name)) <= 0.2  # measured at most 0.07
    assert new.stereo_width.width == pytest.approx(1.0, abs=0.03)


def test_loudness_target_follows_the_reference_within_the_clamp(song):
    _, dark, master, ref = song
    new, report = match_settings(MasterSettings(), dark, SR, ref)
    assert report["target_lufs"] == new.bus.target_lufs == pytest.approx(ref.integrated_lufs, abs=0.01)
    assert report["target_clamped"] is False
    for gain_db, expected in ((-10.0, ref.integrated_lufs - 10.0), (+10.0, -6.0), (-35.0, -40.0)):
        quiet_or_loud = measure_reference(master * 10.0 ** (gain_db / 20.0), SR)
        assert quiet_or_loud.integrated_lufs == pytest.approx(ref.integrated_lufs + gain_db, abs=0.01)
        new, report = match_settings(MasterSettings().with_profile("club"), dark, SR, quiet_or_loud)
        assert new.bus.target_lufs == pytest.approx(expected, abs=0.01)
        assert report["target_clamped"] is (gain_db != -10.0)
        assert new.bus.ceiling_dbtp == -0.5 and new.bus.profile is None  # club's ceiling kept


def test_width_moves_the_side_toward_the_reference(song):
    mix, _, _, ref = song
    # a narrowed mix (side x 0.85, -1.41 dB side/mid) is widened by the inverse, and lands on the reference
    new, report = match_settings(MasterSettings(), StereoWidth(width=0.85).process(mix, SR), SR, ref)
    assert new.stereo_width.width == pytest.approx(1.0 / 0.85, abs=0.03)
    assert report["width_clamped"] is False
    assert report["side_to_mid_db"]["mix_before"] < ref.side_to_mid_db - 1.0
    assert report["side_to_mid_db"]["mix_after"] == pytest.approx(ref.side_to_mid_db, abs=0.25)
    # far narrower: as wide as allowed; far wider: as narrow as allowed
    new, report = match_settings(MasterSettings(), StereoWidth(width=0.5).process(mix, SR), SR, ref)
    assert new.stereo_width.width == MAX_WIDTH and report["width_clamped"] is True
    new, _ = match_settings(MasterSettings(), StereoWidth(width=1.6).process(mix, SR), SR, ref)
    assert new.stereo_width.width == MIN_WIDTH
    # a mono reference narrows as far as allowed; a mono mix cannot be widened, so width stays 1
    mono_ref = measure_reference(np.repeat(mix[:1], 2, axis=0), SR)
    assert mono_ref.side_to_mid_db == float("-inf")
    assert match_settings(MasterSettings(), mix, SR, mono_ref)[0].stereo_width.width == MIN_WIDTH
    assert match_settings(MasterSettings(), np.repeat(mix[:1], 2, axis=0), SR, ref)[0].stereo_width.width == 1.0


@pytest.mark.parametrize("audio, words", [
    (np.zeros((2, 5 * SR)), "silent"),
    (np.full((2, 5 * SR), 1e-6), "silent"),  # -120 dBFS: below the -70 LUFS gate
    (0.1 * np.ones((2, SR)), "too short"),
    (np.full((2, 5 * SR), np.nan), "NaN"),
    (np.ones((2, 5 * SR), dtype=np.int16), "float"),
    (np.zeros((3, 5 * SR)), "mono or stereo"),
])
def test_an_unusable_reference_is_refused_in_one_line(audio, words):
    with pytest.raises(AudioError) as info:
        measure_reference(audio, SR)
    message = str(info.value)
    assert words in message and "\n" not in message


def test_a_silent_mix_is_refused(song):
    *_, ref = song
    with pytest.raises(AudioError, match="silent"):
        match_settings(MasterSettings(), np.zeros((2, 5 * SR)), SR, ref)
    with pytest.raises(SettingsError):
        match_settings(MasterSettings(), np.zeros((2, 5 * SR)), SR, ref.to_dict())


def test_profile_of_pink_noise_is_flat_and_plain():
    noise = _pink(10.0)
    ref = measure_reference(noise, SR, name="pink")
    assert TONAL_BANDS_HZ[0] == pytest.approx(31.62, abs=0.01) and TONAL_BANDS_HZ[-1] == pytest.approx(15849, abs=1)
    # equal power per octave: the 1/3-octave bands read within 0.4 dB of the 100 Hz-10 kHz mean from
    # 50 Hz up (measured <= 0.26); the two lowest, estimated from ~5 FFT bins each, within 1.5 (measured 1.03)
    assert np.max(np.abs(ref.curve_db[2:])) < 0.4
    assert np.max(np.abs(ref.curve_db)) < 1.5
    assert ref.integrated_lufs == pytest.approx(gated_loudness_lufs(noise, SR), abs=1e-9)
    assert ref.side_to_mid_db == pytest.approx(side_to_mid_db(noise))
    assert abs(ref.side_to_mid_db) < 0.1  # independent channels: as much side as mid
    d = ref.to_dict()
    assert d["name"] == "pink" and len(d["curve_db"]) == 28 and d["bands_hz"][0] == 31.5
    assert isinstance(ref, ReferenceProfile)


def test_spectral_distance():
    flat = np.zeros(TONAL_BANDS_HZ.size)
    assert spectral_distance_db(flat, flat) == 0.0
    assert spectral_distance_db(flat, flat + 1.0) == pytest.approx(1.0)
    only_31 = flat.copy()
    only_31[0] = 20.0  # 31.5 Hz lies outside 40 Hz-16 kHz
    assert spectral_distance_db(flat, only_31) == 0.0
    one_band = flat.copy()
    one_band[10] = 3.0  # one of the 27 bands 3 dB off: 3 / sqrt(27)
    assert spectral_distance_db(one_band, flat) == pytest.approx(3.0 / math.sqrt(27))
    nan_top = flat.copy()
    nan_top[-1] = np.nan  # above 0.45 x a low rate: left out
    assert spectral_distance_db(nan_top, flat + 0.0) == 0.0
    with pytest.raises(ValueError):
        spectral_distance_db(flat[:-1], flat[:-1])


def test_eq_model_is_the_eq_itself():
    # the fit's model of a section (band-averaged |H|^2 of ToneEQ.sections) is what filtering pink noise measures
    noise = _pink(10.0, seed=5)
    eq = ToneEQ(low_shelf_db=2.0, high_shelf_db=-3.0, low_mid_db=1.5, tilt_db=2.5)
    measured = tonal_curve(eq.process(noise, SR), SR) - tonal_curve(noise, SR)
    from stemmaster.deliver.reference import _band_levels, _curve_from_levels
    predicted = _curve_from_levels(_band_levels(noise, SR) + eq_band_response_db(eq, SR)) - tonal_curve(noise, SR)
    assert np.max(np.abs(measured - predicted)) < 0.1
    response = eq_band_response_db(ToneEQ(high_shelf_db=3.0), SR)
    assert response[-1] == pytest.approx(3.0, abs=0.2) and abs(response[5]) < 0.05  # 16 kHz, 100 Hz
