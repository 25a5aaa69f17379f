"""Gain: a plain dB gain; 0 dB is an exact copy."""

from __future__ import annotations


import numpy as np
import pytest

from stemmaster.dsp.gain import Gain
from stemmaster.errors import SettingsError
from tests.helpers import assert_edge_signal_contract

RATES = (44100, 48000, 96000)


def test_six_db_doubles_the_amplitude():
    x = np.random.default_rng(0).uniform(-0.4, 0.4, (2, 10000))
    y = Gain(gain_db=20 * np.log10(2.0)).process(x, 44100)
    assert np.allclose(y, 2.0 * x, rtol=1e-14, atol=0)
    y = Gain(gain_db=6.02).process(x, 44100)
    assert np.allclose(y, 2.0 * x, rtol=1e-4, atol=0)  # 6.02 dB is 1.99986x
    assert abs(Gain(gain_db=6.02).linear - 2.0) < 1e-3


@pytest.mark.parametrize("gain_db", (-60.0, -12.0, -0.5, 3.0, 24.0))
def test_gain_matches_setting(gain_db):
    x = np.random.default_rng(1).uniform(-1, 1, (2, 5000))
    y = Gain(gain_db=gain_db).process(x, 48000)
    measured = 10 * np.log10(np.sum(y ** 2) / np.sum(x ** 2))
    assert abs(measured - gain_db) < 1e-9


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_zero_db_is_exact_identity(dtype):
    x = np.random.default_rng(2).uniform(-1, 1, (2, 5000)).astype(dtype)
    y = Gain().process(x, 44100)
    assert y.dtype == dtype and np.array_equal(y, x) and y is not x


@pytest.mark.parametrize("sample_rate", RATES)
def test_no_delay(sample_rate):
    x = np.random.default_rng(3).standard_normal((2, sample_rate // 4))
    y = Gain(gain_db=-7.0).process(x, sample_rate)
    for ch in (0, 1):
        xc = np.fft.irfft(np.fft.rfft(y[ch]) * np.conj(np.fft.rfft(x[ch])), x.shape[1])
        assert int(np.argmax(np.abs(xc))) == 0


@pytest.mark.parametrize("sample_rate", RATES)
def test_contract_shape_dtype_no_mutation_and_finite_edge_signals(sample_rate):
    n = sample_rate // 4
    noise_sign = np.sign(np.random.default_rng(4).standard_normal((2, n)))
    signals = [np.zeros((2, n)), np.full((2, n), 0.5), np.ones((1, n)), noise_sign]
    for proc in (Gain(gain_db=24.0), Gain(gain_db=-60.0)):
        assert_edge_signal_contract(proc, signals, sample_rate)
    mono = Gain(gain_db=-6.0).process(np.ones((1, 10), np.float32), sample_rate)
    assert mono.shape == (1, 10) and np.allclose(mono, 10 ** (-6.0 / 20))


@pytest.mark.parametrize("value", (-60.1, 24.5, float("nan"), float("-inf"), "3", True, None))
def test_settings_are_validated_with_the_field_named(value):
    with pytest.raises(SettingsError, match="gain_db"):
        Gain(gain_db=value)


def test_settings_round_trip():
    proc = Gain(gain_db=-3.5)
    assert Gain.kind == "gain"
    assert Gain.from_settings(proc.settings()) == proc
    assert proc.settings() == {"gain_db": -3.5}
    with pytest.raises(SettingsError, match="unknown"):
        Gain.from_settings({"db": 1.0})
