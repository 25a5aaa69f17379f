"""LowEndMono: side removed below the crossover, mid untouched, everything above unchanged."""

from __future__ import annotations


import numpy as np
import pytest

from stemmaster.demo import make_demo_stems
from stemmaster.dsp.low_end_mono import LowEndMono
from stemmaster.errors import AudioError, SettingsError
from tests.helpers import assert_edge_signal_contract

RATES = (44100, 48000, 96000)


def _bands_db(x: np.ndarray, sample_rate: int, bands) -> np.ndarray:
    """Energy of ``x`` (1-D) in each ``[lo, hi)`` Hz band, in dB, from a Hann-windowed FFT (low leakage)."""
    x = np.asarray(x, dtype=np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    cum = np.concatenate([[0.0], np.cumsum(spec)])
    freqs = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    out = []
    for lo, hi in bands:
        i0, i1 = np.searchsorted(freqs, lo), np.searchsorted(freqs, hi)
        out.append(10 * np.log10(cum[i1] - cum[i0] + 1e-300))
    return np.array(out)


def _band_db(x: np.ndarray, sample_rate: int, lo: float, hi: float) -> float:
    return float(_bands_db(x, sample_rate, [(lo, hi)])[0])


def _xcorr_peak_lag(x: np.ndarray, y: np.ndarray) -> int:
    """The lag (samples, positive = ``y`` late) of the largest circular cross-correlation."""
    xc = np.fft.irfft(np.fft.rfft(y) * np.conj(np.fft.rfft(x)), len(x))
    lag = int(np.argmax(np.abs(xc)))
    return lag if lag <= len(x) // 2 else lag - len(x)


def _mid_side(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = x.astype(np.float64)
    return 0.5 * (x[0] + x[1]), 0.5 * (x[0] - x[1])


def _third_octaves(lo: float, hi: float) -> list[tuple[float, float]]:
    edges = lo * 2.0 ** (np.arange(0, 40) / 3.0)
    edges = edges[edges <= hi]
    return list(zip(edges[:-1], edges[1:]))


def _noise(sample_rate: int, seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    """Independent white noise in L and R (the side as loud as the mid at every frequency)."""
    return 0.25 * np.random.default_rng(seed).standard_normal((2, int(seconds * sample_rate)))


@pytest.fixture(scope="module")
def demo_bass() -> np.ndarray:
    return make_demo_stems(duration_s=12)["bass"]


@pytest.mark.parametrize("sample_rate", RATES)
def test_side_below_80hz_drops_by_30db(sample_rate):
    x = _noise(sample_rate)
    y = LowEndMono(crossover_hz=120.0).process(x, sample_rate)
    _, s_in = _mid_side(x)
    _, s_out = _mid_side(y)
    drop = _band_db(s_in, sample_rate, 1.0, 80.0) - _band_db(s_out, sample_rate, 1.0, 80.0)
    assert drop >= 30.0, drop


@pytest.mark.parametrize("sample_rate", RATES)
def test_above_400hz_output_matches_input_within_0p1db(sample_rate):
    x = _noise(sample_rate)
    y = LowEndMono().process(x, sample_rate)
    bands = _third_octaves(400.0, 0.45 * sample_rate)
    for ch in (0, 1):
        diff = _bands_db(y[ch], sample_rate, bands) - _bands_db(x[ch], sample_rate, bands)
        assert np.max(np.abs(diff)) <= 0.1, (ch, diff)


@pytest.mark.parametrize("sample_rate", RATES)
def test_mid_is_untouched_and_flat(sample_rate):
    x = _noise(sample_rate)
    y = LowEndMono(crossover_hz=200.0).process(x, sample_rate)
    m_in, _ = _mid_side(x)
    m_out, _ = _mid_side(y)
    assert np.max(np.abs(m_out - m_in)) <= 1e-12
    bands = _third_octaves(10.0, 0.45 * sample_rate)
    assert np.max(np.abs(_bands_db(m_out, sample_rate, bands) - _bands_db(m_in, sample_rate, bands))) <= 0.1


def test_the_split_sums_back_flat():
    """Low band + high band of the side = the side: what leaves L arrives, negated, in R."""
    x = _noise(48000, 2.0, seed=3)
    proc = LowEndMono()
    low = proc.side_low(x, 48000)
    y = proc.process(x, 48000)
    _, s_in = _mid_side(x)
    _, s_out = _mid_side(y)
    assert np.allclose(s_out + low, s_in, rtol=0, atol=1e-13)
    assert np.allclose(y[0] + y[1], x[0] + x[1], rtol=0, atol=1e-13)


def test_demo_bass_low_end_becomes_mono(demo_bass):
    sr = 44100
    y = LowEndMono().process(demo_bass, sr)
    m_in, s_in = _mid_side(demo_bass)
    m_out, s_out = _mid_side(y)
    # the planted flaw: side louder than the mid below 100 Hz
    assert _band_db(s_in, sr, 1.0, 100.0) > _band_db(m_in, sr, 1.0, 100.0)
    drop_100 = _band_db(s_in, sr, 1.0, 100.0) - _band_db(s_out, sr, 1.0, 100.0)
    drop_80 = _band_db(s_in, sr, 1.0, 80.0) - _band_db(s_out, sr, 1.0, 80.0)
    assert drop_100 >= 20.0, drop_100
    assert drop_80 >= 30.0, drop_80
    assert np.max(np.abs(m_out - m_in)) <= 1e-6  # float32 output
    bands = _third_octaves(400.0, 2500.0)
    for ch in (0, 1):
        diff = _bands_db(y[ch], sr, bands) - _bands_db(demo_bass[ch], sr, bands)
        assert np.max(np.abs(diff)) <= 0.1, (ch, diff)


@pytest.mark.parametrize("sample_rate", RATES)
def test_side_response_matches_the_design(sample_rate):
    proc = LowEndMono(crossover_hz=120.0)
    freqs = (50.0, 80.0, 100.0, 120.0, 150.0, 240.0, 1000.0)
    want = proc.side_response_db(freqs, sample_rate)
    assert abs(want[3] + 6.0206) < 1e-3  # -6.02 dB at the crossover (LR magnitude)
    assert -0.04 < want[5] < 0.0 and want[6] > -1e-6  # 2x the crossover: -0.034 dB
    t = np.arange(2 * sample_rate) / sample_rate
    mid = slice(sample_rate // 2, 3 * sample_rate // 2)
    for f, w in zip(freqs, want):
        s = 0.5 * np.sin(2 * np.pi * f * t)
        y = proc.process(np.vstack([s, -s]), sample_rate)  # pure side
        got = 10 * np.log10(np.mean(y[0, mid] ** 2) / np.mean(s[mid] ** 2))
        assert abs(got - w) <= (0.5 if w < -30 else 0.05), (f, got, w)


def test_mono_input_is_unchanged_and_surround_is_refused():
    x = np.random.default_rng(4).standard_normal((1, 3000)).astype(np.float32)
    y = LowEndMono().process(x, 44100)
    assert np.array_equal(y, x) and y is not x and y.dtype == np.float32
    with pytest.raises(AudioError, match="channels"):
        LowEndMono().process(np.zeros((6, 100)), 44100)


def test_side_dc_is_removed_to_the_edges():
    n = 5000
    x = np.vstack([np.full(n, 0.7), np.full(n, -0.3)])  # mid 0.2, side 0.5 (DC)
    y = LowEndMono().process(x, 44100)
    assert np.allclose(y, 0.2, atol=1e-9)


@pytest.mark.parametrize("sample_rate", RATES)
def test_no_delay(sample_rate):
    x = _noise(sample_rate, 1.0, seed=5)
    y = LowEndMono(crossover_hz=500.0).process(x, sample_rate)
    for ch in (0, 1):
        assert _xcorr_peak_lag(x[ch], y[ch]) == 0


@pytest.mark.parametrize("sample_rate", RATES)
def test_contract_shape_dtype_no_mutation_and_finite_edge_signals(sample_rate):
    proc = LowEndMono(crossover_hz=20.0)
    n = sample_rate // 2
    noise_sign = np.sign(np.random.default_rng(3).standard_normal((2, n)))
    full_side = np.vstack([np.ones(n), -np.ones(n)])
    signals = [np.zeros((2, n)), np.full((2, n), 0.5), full_side, np.ones((1, n)), noise_sign]
    assert_edge_signal_contract(proc, signals, sample_rate)


@pytest.mark.parametrize("n", (1, 2, 3, 10, 100))
def test_very_short_inputs_keep_their_length(n):
    x = np.random.default_rng(n).uniform(-1, 1, (2, n)).astype(np.float32)
    y = LowEndMono().process(x, 44100)
    assert y.shape == (2, n) and y.dtype == np.float32 and np.all(np.isfinite(y))
    assert np.allclose(y[0] + y[1], x[0] + x[1], atol=1e-6)


@pytest.mark.parametrize("value", (19.9, 501.0, float("nan"), float("inf"), "120", True, None))
def test_settings_are_validated_with_the_field_named(value):
    with pytest.raises(SettingsError, match="crossover_hz"):
        LowEndMono(crossover_hz=value)


def test_settings_round_trip():
    proc = LowEndMono(crossover_hz=90.0)
    assert LowEndMono.kind == "low_end_mono"
    assert LowEndMono().crossover_hz == 120.0
    assert LowEndMono.from_settings(proc.settings()) == proc
    assert proc.settings() == {"crossover_hz": 90.0}
    with pytest.raises(SettingsError, match="unknown"):
        LowEndMono.from_settings({"crossover": 90.0})
