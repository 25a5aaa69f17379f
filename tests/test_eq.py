"""ToneEQ: RBJ shelves and tilt, measured with sines against the settings."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import sosfreqz

from stemmaster.dsp.eq import ToneEQ
from stemmaster.errors import SettingsError
from tests.helpers import assert_edge_signal_contract

RATES = (44100, 48000, 96000)


def _sine_gain_db(eq: ToneEQ, freq: float, sample_rate: int) -> float:
    """Steady-state gain at ``freq``: RMS of the output's second half over the input's."""
    n = sample_rate  # 1 s; the filters settle in well under half of it
    t = np.arange(n) / sample_rate
    x = np.vstack([0.25 * np.sin(2 * np.pi * freq * t)] * 2)
    y = eq.process(x, sample_rate)
    half = slice(n // 2, None)
    return float(10 * np.log10(np.mean(y[:, half] ** 2) / np.mean(x[:, half] ** 2)))


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("low_db, high_db, tilt_db", [
    (6.0, 0.0, 0.0), (0.0, -4.0, 0.0), (0.0, 0.0, 6.0), (-8.0, 9.0, -3.0), (12.0, 12.0, 0.0), (-12.0, -12.0, 0.0),
    (3.0, -3.0, 12.0), (0.0, 0.0, -12.0),
])
def test_response_matches_settings(sample_rate, low_db, high_db, tilt_db):
    # A second-order shelf reaches its full gain about two octaves past its
    # corner: 30 Hz is 1.7 octaves under 100 Hz; 16 kHz is 1.7 octaves over 5 kHz.
    eq = ToneEQ(low_shelf_hz=100.0, low_shelf_db=low_db, high_shelf_hz=5000.0, high_shelf_db=high_db, tilt_db=tilt_db)
    expected = {30.0: low_db - tilt_db / 2, 1000.0: 0.0, 16000.0: high_db + tilt_db / 2}
    for freq, want in expected.items():
        got = _sine_gain_db(eq, freq, sample_rate)
        assert abs(got - want) <= 0.3, (freq, got, want)


@pytest.mark.parametrize("sample_rate", (44100, 48000))
def test_response_with_default_frequencies(sample_rate):
    eq = ToneEQ(low_shelf_db=-5.0, high_shelf_db=4.0, tilt_db=2.0)
    assert abs(_sine_gain_db(eq, 30.0, sample_rate) - (-5.0 - 1.0)) <= 0.3
    assert abs(_sine_gain_db(eq, 1000.0, sample_rate)) <= 0.3
    assert abs(_sine_gain_db(eq, 16000.0, sample_rate) - (4.0 + 1.0)) <= 0.3


@pytest.mark.parametrize("sample_rate", RATES)
def test_shelf_is_half_gain_at_its_corner_and_tilt_is_unity_at_pivot(sample_rate):
    for kind, freq in (("low", 250.0), ("high", 6000.0)):
        eq = ToneEQ(**{f"{kind}_shelf_hz": freq, f"{kind}_shelf_db": 10.0})
        _, h = sosfreqz(eq.sections(sample_rate), worN=[freq], fs=sample_rate)
        assert abs(20 * np.log10(abs(h[0])) - 5.0) < 1e-6  # the RBJ shelf midpoint
    eq = ToneEQ(tilt_db=8.0, tilt_pivot_hz=700.0)
    _, h = sosfreqz(eq.sections(sample_rate), worN=[700.0, 1e-3, sample_rate / 2], fs=sample_rate)
    assert np.allclose(20 * np.log10(np.abs(h)), [0.0, -4.0, 4.0], atol=1e-3)


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_flat_settings_are_exact_identity(dtype):
    x = np.random.default_rng(1).uniform(-1, 1, (2, 5000)).astype(dtype)
    eq = ToneEQ(low_shelf_hz=60.0, high_shelf_hz=12000.0, tilt_pivot_hz=500.0)
    y = eq.process(x, 48000)
    assert y.dtype == dtype and np.array_equal(y, x) and y is not x


def test_high_frequencies_are_clamped_at_low_rates():
    eq = ToneEQ(high_shelf_hz=20000.0, high_shelf_db=6.0, tilt_pivot_hz=19000.0, tilt_db=3.0, low_shelf_db=2.0)
    for sample_rate in (22050, 32000, 44100):
        sos = eq.sections(sample_rate)
        poles = np.concatenate([np.roots(s[3:]) for s in sos])
        assert np.all(np.abs(poles) < 1)
        x = np.random.default_rng(2).standard_normal((2, sample_rate)) * 0.1
        assert np.all(np.isfinite(eq.process(x, sample_rate)))
    assert abs(_sine_gain_db(ToneEQ(high_shelf_hz=20000.0, high_shelf_db=6.0), 500.0, 22050)) < 0.3


@pytest.mark.parametrize("sample_rate", RATES)
def test_contract_shape_dtype_no_mutation_and_finite_edge_signals(sample_rate):
    eq = ToneEQ(low_shelf_db=12.0, high_shelf_db=12.0, tilt_db=12.0)
    n = sample_rate // 2
    noise_sign = np.sign(np.random.default_rng(3).standard_normal((2, n)))
    signals = [np.zeros((2, n)), np.full((2, n), 0.5), np.ones((1, n)), noise_sign]
    assert_edge_signal_contract(eq, signals, sample_rate)


@pytest.mark.parametrize("field, value", [
    ("low_shelf_db", 12.5), ("high_shelf_db", -13.0), ("tilt_db", 20.0), ("low_shelf_hz", 10.0),
    ("high_shelf_hz", 25000.0), ("tilt_pivot_hz", float("nan")), ("low_shelf_db", "3"),
])
def test_settings_are_validated_with_the_field_named(field, value):
    with pytest.raises(SettingsError, match=field):
        ToneEQ(**{field: value})


def test_settings_round_trip():
    eq = ToneEQ(low_shelf_db=2.0, tilt_db=-1.5)
    assert ToneEQ.kind == "tone_eq"
    assert ToneEQ.from_settings(eq.settings()) == eq
    with pytest.raises(SettingsError, match="unknown"):
        ToneEQ.from_settings({"bass_db": 1.0})


@pytest.mark.parametrize("sample_rate", [44100, 48000, 96000])
def test_low_mid_bell_cuts_its_centre_and_leaves_the_ends(sample_rate):
    eq = ToneEQ(low_mid_hz=300.0, low_mid_db=-3.0, low_mid_q=0.9)
    assert _sine_gain_db(eq, 300.0, sample_rate) == pytest.approx(-3.0, abs=0.05)
    # a broad bell: about half its cut an octave away (RBJ Q 0.9), nothing at the ends
    assert -2.2 < _sine_gain_db(eq, 150.0, sample_rate) < -0.8
    assert abs(_sine_gain_db(eq, 30.0, sample_rate)) < 0.1
    assert abs(_sine_gain_db(eq, 8000.0, sample_rate)) < 0.05
