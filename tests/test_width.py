"""StereoWidth: M/S scaling of the side; 0 = mono, 1 = identity, the mid left alone."""

from __future__ import annotations


import numpy as np
import pytest

from stemmaster.dsp.width import StereoWidth
from stemmaster.errors import AudioError, SettingsError
from tests.helpers import assert_edge_signal_contract

RATES = (44100, 48000, 96000)


def _mid_side(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = x.astype(np.float64)
    return 0.5 * (x[0] + x[1]), 0.5 * (x[0] - x[1])


def _energy_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(np.asarray(x, dtype=np.float64) ** 2)))


def _stereo(n: int = 20000, seed: int = 0) -> np.ndarray:
    """Partly correlated stereo: a shared part plus independent parts."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(n)
    return 0.2 * np.vstack([common + 0.7 * rng.standard_normal(n), common + 0.7 * rng.standard_normal(n)])


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_width_zero_is_mono(dtype):
    x = _stereo().astype(dtype)
    y = StereoWidth(width=0.0).process(x, 44100)
    assert np.array_equal(y[0], y[1])
    mid_in, _ = _mid_side(x)
    assert np.allclose(y[0], mid_in, rtol=0, atol=1e-6 if dtype == np.float32 else 1e-15)


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_width_one_is_exact_identity(dtype):
    x = _stereo().astype(dtype)
    y = StereoWidth(width=1.0).process(x, 48000)
    assert y.dtype == dtype and np.array_equal(y, x) and y is not x


@pytest.mark.parametrize("width, side_db", [(1.5, 3.5218), (2.0, 6.0206), (0.5, -6.0206), (0.25, -12.0412)])
def test_side_energy_scales_and_mid_is_unchanged(width, side_db):
    x = _stereo()
    y = StereoWidth(width=width).process(x, 44100)
    m_in, s_in = _mid_side(x)
    m_out, s_out = _mid_side(y)
    assert abs(_energy_db(s_out) - _energy_db(s_in) - side_db) < 1e-3
    assert abs(20 * np.log10(width) - side_db) < 1e-3
    assert np.allclose(m_out, m_in, rtol=0, atol=1e-15)
    assert np.allclose(s_out, width * s_in, rtol=0, atol=1e-15)


def test_mid_gain():
    x = _stereo()
    y = StereoWidth(width=1.0, mid_gain_db=-6.0206).process(x, 44100)
    m_in, s_in = _mid_side(x)
    m_out, s_out = _mid_side(y)
    assert np.allclose(m_out, 0.5 * m_in, rtol=1e-4, atol=0)
    assert np.allclose(s_out, s_in, rtol=0, atol=1e-15)


def test_mono_input_is_unchanged_and_surround_is_refused():
    x = np.random.default_rng(1).standard_normal((1, 3000)).astype(np.float32)
    for proc in (StereoWidth(width=0.0), StereoWidth(width=2.0, mid_gain_db=6.0)):
        y = proc.process(x, 44100)
        assert np.array_equal(y, x) and y is not x
    with pytest.raises(AudioError, match="channels"):
        StereoWidth(width=1.2).process(np.zeros((4, 10)), 44100)


@pytest.mark.parametrize("sample_rate", RATES)
def test_no_delay(sample_rate):
    x = _stereo(sample_rate // 4, seed=2)
    y = StereoWidth(width=1.7).process(x, sample_rate)
    for ch in (0, 1):
        xc = np.fft.irfft(np.fft.rfft(y[ch]) * np.conj(np.fft.rfft(x[ch])), x.shape[1])
        assert int(np.argmax(np.abs(xc))) == 0


@pytest.mark.parametrize("sample_rate", RATES)
def test_contract_shape_dtype_no_mutation_and_finite_edge_signals(sample_rate):
    n = sample_rate // 4
    noise_sign = np.sign(np.random.default_rng(3).standard_normal((2, n)))
    full_side = np.vstack([np.ones(n), -np.ones(n)])
    signals = [np.zeros((2, n)), np.full((2, n), 0.5), full_side, np.ones((1, n)), noise_sign]
    for proc in (StereoWidth(width=0.0), StereoWidth(width=2.0, mid_gain_db=12.0), StereoWidth(width=0.7)):
        assert_edge_signal_contract(proc, signals, sample_rate)


@pytest.mark.parametrize("n", (1, 2, 10))
def test_very_short_inputs_keep_their_length(n):
    x = np.random.default_rng(n).uniform(-1, 1, (2, n)).astype(np.float32)
    y = StereoWidth(width=1.4).process(x, 44100)
    assert y.shape == (2, n) and y.dtype == np.float32


@pytest.mark.parametrize("field, value", [
    ("width", -0.1), ("width", 2.01), ("width", float("nan")), ("width", "1"), ("width", None),
    ("mid_gain_db", 12.5), ("mid_gain_db", -13.0), ("mid_gain_db", float("inf")),
])
def test_settings_are_validated_with_the_field_named(field, value):
    with pytest.raises(SettingsError, match=field):
        StereoWidth(**{field: value})


def test_settings_round_trip():
    proc = StereoWidth(width=1.25, mid_gain_db=-1.0)
    assert StereoWidth.kind == "stereo_width"
    assert StereoWidth.from_settings(proc.settings()) == proc
    assert proc.settings() == {"width": 1.25, "mid_gain_db": -1.0}
    assert StereoWidth().is_identity
    with pytest.raises(SettingsError, match="unknown"):
        StereoWidth.from_settings({"amount": 1.0})
