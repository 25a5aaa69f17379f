"""Translation checks: mono fold-down, phone, earbuds and car models against the full-range master."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import butter, sosfilt, sosfreqz

from stemmaster.checks.translation import (BANDS, CAR_SHELF_DB, CHECKS, band_energies, check_sections,
                                          translation_checks)
from stemmaster.errors import AudioError

SR = 44100


def _band(noise: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if lo <= 0:
        sos = butter(8, hi, btype="lowpass", output="sos", fs=SR)
    elif hi >= SR / 2:
        sos = butter(8, lo, btype="highpass", output="sos", fs=SR)
    else:
        sos = butter(8, [lo, hi], btype="bandpass", output="sos", fs=SR)
    return sosfilt(sos, noise)


def _by_name(results):
    return {r.name: r.to_dict() for r in results}


@pytest.fixture(scope="module")
def wide_low_end() -> np.ndarray:
    """Stereo: low end (< 150 Hz) in opposite polarity in L and R, everything above 300 Hz identical."""
    rng = np.random.default_rng(1)
    n = 6 * SR
    low = _band(rng.standard_normal(n), 0, 150.0)
    high = _band(rng.standard_normal(n), 300.0, SR / 2)
    left = 0.2 * low + 0.05 * high
    right = -0.2 * low + 0.05 * high
    return np.stack([left, right]).astype(np.float32)


@pytest.fixture(scope="module")
def full_range() -> np.ndarray:
    """Stereo pink-ish noise, the same in both channels (mono-compatible), all bands populated."""
    rng = np.random.default_rng(2)
    n = 6 * SR
    x = rng.standard_normal(n)
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1.0 / SR)
    spec[1:] /= np.sqrt(f[1:])  # pink: equal energy per octave
    spec[f < 20.0] = 0.0  # nothing below 20 Hz, as in music
    y = np.fft.irfft(spec, n)
    y *= 0.1 / np.sqrt(np.mean(y ** 2))
    return np.stack([y, y]).astype(np.float32)


def test_out_of_phase_low_end_collapses_in_mono(wide_low_end):
    mono = _by_name(translation_checks(wide_low_end, SR))["mono"]
    bands = mono["band_change_db"]
    assert bands["sub"] < -30.0
    assert bands["bass"] < -20.0  # 60-250 Hz holds the 150 Hz edge's skirt, still deep
    assert abs(bands["low_mids"]) < 0.5  # 250-2k: the identical band from 300 Hz (plus a little skirt)
    assert abs(bands["presence"]) < 0.05
    assert abs(bands["air"]) < 0.05
    # K-weighting discounts the low end, so the loudness barely moves: the bands show the damage
    assert mono["loudness_change_lu"] < 0.0
    assert any("sub" in w for w in mono["warnings"])


def test_mono_compatible_signal_loses_nothing(full_range):
    mono = _by_name(translation_checks(full_range, SR, checks=("mono",)))["mono"]
    for band, value in mono["band_change_db"].items():
        assert abs(value) < 0.01, band
    assert abs(mono["loudness_change_lu"]) < 0.01
    assert mono["warnings"] == []


def test_phone_removes_sub_and_bass(full_range):
    phone = _by_name(translation_checks(full_range, SR))["phone"]
    bands = phone["band_change_db"]
    assert bands["sub"] < -50.0
    assert bands["bass"] < -15.0
    assert abs(bands["presence"]) < 1.0  # inside the 400 Hz - 9 kHz pass band
    assert phone["loudness_change_lu"] < -1.0
    assert phone["channels"] == 1


def test_car_lifts_low_end_by_the_shelf(full_range):
    car = _by_name(translation_checks(full_range, SR))["car"]
    bands = car["band_change_db"]
    # the sub band (< 60 Hz) gets nearly all of the shelf (+4.5 dB at 50 Hz, +5 dB below)
    assert CAR_SHELF_DB - 0.6 < bands["sub"] <= CAR_SHELF_DB + 0.01
    assert 0.5 < bands["bass"] < CAR_SHELF_DB  # the shelf's transition
    assert abs(bands["presence"]) < 0.1 and abs(bands["air"]) < 0.1
    assert car["loudness_change_lu"] > 0.0


def test_car_shelf_gain_on_a_40_hz_tone():
    t = np.arange(4 * SR) / SR
    x = 0.3 * np.sin(2 * np.pi * 40.0 * t) + 0.01 * np.sin(2 * np.pi * 1000.0 * t)
    audio = np.stack([x, x])
    car = _by_name(translation_checks(audio, SR, checks=("car",)))["car"]
    _, h = sosfreqz(check_sections("car", SR), worN=[40.0], fs=SR)
    shelf_at_40 = 20 * np.log10(abs(h[0]))
    assert 4.6 < shelf_at_40 < CAR_SHELF_DB
    assert car["band_change_db"]["sub"] == pytest.approx(shelf_at_40, abs=0.05)
    assert car["band_change_db"]["low_mids"] == pytest.approx(0.0, abs=0.05)


def test_earbuds_lose_sub_and_gain_presence(full_range):
    buds = _by_name(translation_checks(full_range, SR))["earbuds"]["band_change_db"]
    assert buds["sub"] < -3.0
    assert 0.5 < buds["presence"] < 3.0


def test_results_are_json_ready_and_complete(wide_low_end):
    results = [r.to_dict() for r in translation_checks(wide_low_end, SR)]
    assert [r["name"] for r in results] == list(CHECKS)
    for r in results:
        assert set(r["band_change_db"]) == {b[0] for b in BANDS}
    json.dumps(results, allow_nan=False)


def test_band_change_matches_time_domain_filtering(full_range):
    """The spectra-times-response shortcut agrees with filtering the signal and measuring it."""
    from stemmaster.checks.translation import render_check

    phone = _by_name(translation_checks(full_range, SR, checks=("phone",)))["phone"]["band_change_db"]
    rendered = render_check(full_range, SR, "phone")
    direct = 10 * np.log10(band_energies(rendered, SR) / band_energies(full_range, SR))
    for (name, _, _), value in zip(BANDS, direct):
        if value > -40:  # deep in the stop band the frame leakage floor differs
            assert phone[name] == pytest.approx(value, abs=0.1), name


@pytest.mark.parametrize("channels", [2, 1])
def test_loudness_through_a_check_is_the_rendered_checks_loudness(full_range, channels):
    """Each check's loudness comes from one sweep through its filter and the K-weighting:
    it must read what measuring the rendered check (render_check, dual mono) reads."""
    from stemmaster.checks.translation import check_sections, render_check
    from stemmaster.meters.loudness import gated_loudness_lufs, gated_loudness_through

    master = full_range[:channels]
    for name in CHECKS:
        rendered = render_check(master, SR, name)
        if rendered.shape[0] == 1:
            rendered = np.repeat(rendered, 2, axis=0)  # heard on two speakers
        expected = gated_loudness_lufs(rendered, SR)
        got = gated_loudness_through(master, SR, check_sections(name, SR),
                                     fold_mono=name in ("mono", "phone") or channels == 1)
        assert got == pytest.approx(expected, abs=1e-9), name


def test_empty_band_is_none():
    t = np.arange(2 * SR) / SR
    x = 0.3 * np.sin(2 * np.pi * 1000.0 * t)
    mono = _by_name(translation_checks(np.stack([x, x]), SR, checks=("mono",)))["mono"]
    assert mono["band_change_db"]["low_mids"] == pytest.approx(0.0, abs=0.01)
    assert mono["band_change_db"]["sub"] is None  # nothing there to compare
    json.dumps(mono, allow_nan=False)


def test_bad_input():
    with pytest.raises(AudioError, match="silent"):
        translation_checks(np.zeros((2, SR), dtype=np.float32), SR)
    with pytest.raises(AudioError, match="2-D"):
        translation_checks(np.zeros(SR, dtype=np.float32), SR)
    with pytest.raises(AudioError, match="mono or stereo"):
        translation_checks(np.zeros((3, SR), dtype=np.float32), SR)
    with pytest.raises(AudioError, match="too short"):
        translation_checks(np.ones((2, 100), dtype=np.float32) * 0.1, SR)
    with pytest.raises(AudioError, match="unknown translation check"):
        translation_checks(np.ones((2, SR), dtype=np.float32) * 0.1, SR, checks=("radio",))
