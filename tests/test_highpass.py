"""HighPass: zero-phase Butterworth, measured with sines against the design."""

from __future__ import annotations


import numpy as np
import pytest
from scipy.signal import sosfiltfilt

from stemmaster.dsp.highpass import HighPass, butter_sos, edge_pad_length, zero_phase_sos
from stemmaster.errors import SettingsError
from tests.helpers import assert_edge_signal_contract

RATES = (44100, 48000, 96000)


def _sine_gain_db(proc: HighPass, freq: float, sample_rate: int, seconds: float = 2.0) -> float:
    """Gain at ``freq``: RMS of the output's middle half over the input's (clear of the ends)."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    x = np.vstack([0.5 * np.sin(2 * np.pi * freq * t)] * 2)
    y = proc.process(x, sample_rate)
    mid = slice(n // 4, 3 * n // 4)
    return float(10 * np.log10(np.mean(y[:, mid] ** 2) / np.mean(x[:, mid] ** 2)))


def _xcorr_peak_lag(x: np.ndarray, y: np.ndarray) -> int:
    """The lag (samples, positive = ``y`` late) of the largest circular cross-correlation."""
    xc = np.fft.irfft(np.fft.rfft(y) * np.conj(np.fft.rfft(x)), len(x))
    lag = int(np.argmax(np.abs(xc)))
    return lag if lag <= len(x) // 2 else lag - len(x)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("order", (2, 4))
@pytest.mark.parametrize("cutoff", (30.0, 80.0, 250.0))
def test_response_at_the_cutoff_an_octave_below_and_in_the_passband(sample_rate, order, cutoff):
    proc = HighPass(highpass_hz=cutoff, order=order)
    # zero-phase Butterworth = |H|^2: -6.02 dB at the cutoff for any order
    assert abs(_sine_gain_db(proc, cutoff, sample_rate) - (-6.0206)) <= 0.2
    # one octave below: 10*log10(1 + 2**(2*order)) * 2 -> 24.6 dB (order 2), 48.2 dB (order 4)
    want_octave = -20.0 * np.log10(1.0 + 2.0 ** (2 * order))
    got_octave = _sine_gain_db(proc, cutoff / 2.0, sample_rate)
    assert abs(got_octave - want_octave) <= 0.3, (got_octave, want_octave)
    if order == 4:
        assert got_octave <= -20.0
    assert abs(_sine_gain_db(proc, 10.0 * cutoff, sample_rate)) <= 0.1


@pytest.mark.parametrize("sample_rate", (44100, 96000))
def test_measured_response_matches_response_db(sample_rate):
    proc = HighPass(highpass_hz=100.0, order=4)
    freqs = (40.0, 70.0, 100.0, 141.0, 200.0, 1000.0)
    design = proc.response_db(freqs, sample_rate)
    assert abs(design[2] + 6.0206) < 1e-3
    for f, want in zip(freqs, design):
        assert abs(_sine_gain_db(proc, f, sample_rate) - want) <= 0.1, f
    assert np.array_equal(HighPass().response_db(freqs, sample_rate), np.zeros(len(freqs)))


def test_zero_phase_helper_equals_scipy_sosfiltfilt_with_the_same_padding():
    x = np.random.default_rng(0).standard_normal((3, 20000))
    designs = (("highpass", 40.0, 2), ("highpass", 300.0, 4), ("lowpass", 120.0, 4), ("lowpass", 90.0, 6))
    for btype, hz, order in designs:
        sos = butter_sos(btype, hz, order, 48000)
        pad = min(edge_pad_length(sos), x.shape[1] - 1)
        ref = sosfiltfilt(sos, x, padtype="even", padlen=pad)
        assert np.allclose(zero_phase_sos(sos, x), ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("order", (2, 4))
def test_off_is_exact_identity_and_dc_is_removed(order):
    x = np.random.default_rng(1).uniform(-1, 1, (2, 5000)).astype(np.float32)
    y = HighPass(highpass_hz=0.0, order=order).process(x, 48000)
    assert y.dtype == np.float32 and np.array_equal(y, x) and y is not x
    dc = np.full((2, 48000), 0.5)
    out = HighPass(highpass_hz=20.0, order=order).process(dc, 48000)
    assert np.max(np.abs(out)) < 1e-6


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("order", (2, 4))
def test_no_delay(sample_rate, order):
    x = 0.3 * np.random.default_rng(2).standard_normal((2, sample_rate // 2))
    y = HighPass(highpass_hz=1000.0, order=order).process(x, sample_rate)
    for ch in (0, 1):
        assert _xcorr_peak_lag(x[ch], y[ch]) == 0
    # an impulse comes out symmetric about where it went in
    imp = np.zeros((1, 4001))
    imp[0, 2000] = 1.0
    h = HighPass(highpass_hz=200.0, order=order).process(imp, sample_rate)[0]
    assert int(np.argmax(np.abs(h))) == 2000
    assert np.allclose(h[2000 - 500:2000], h[2001:2501][::-1], atol=1e-12)


@pytest.mark.parametrize("sample_rate", RATES)
def test_contract_shape_dtype_no_mutation_and_finite_edge_signals(sample_rate):
    n = sample_rate // 2
    noise_sign = np.sign(np.random.default_rng(3).standard_normal((2, n)))
    signals = [np.zeros((2, n)), np.full((2, n), 0.5), np.ones((1, n)), noise_sign, -np.ones((2, n))]
    for proc in (HighPass(highpass_hz=10.0, order=4), HighPass(highpass_hz=1000.0, order=2)):
        assert_edge_signal_contract(proc, signals, sample_rate)


def test_mono_is_filtered_like_each_channel_of_stereo():
    x = np.random.default_rng(4).standard_normal((2, 30000))
    proc = HighPass(highpass_hz=60.0, order=4)
    stereo = proc.process(x, 44100)
    for ch in (0, 1):
        assert np.array_equal(proc.process(x[ch:ch + 1], 44100)[0], stereo[ch])


@pytest.mark.parametrize("n", (1, 2, 3, 10, 100))
@pytest.mark.parametrize("order", (2, 4))
def test_very_short_inputs_keep_their_length(n, order):
    x = np.random.default_rng(n).uniform(-1, 1, (2, n)).astype(np.float32)
    y = HighPass(highpass_hz=50.0, order=order).process(x, 44100)
    assert y.shape == (2, n) and y.dtype == np.float32 and np.all(np.isfinite(y))


def test_cutoff_is_clamped_below_nyquist_at_low_rates():
    proc = HighPass(highpass_hz=1000.0, order=4)
    x = np.random.default_rng(5).standard_normal((2, 2000))
    assert np.all(np.isfinite(proc.process(x, 2000)))  # 1000 Hz would be Nyquist: clamped to 900 Hz


@pytest.mark.parametrize("field, value", [
    ("highpass_hz", 5.0), ("highpass_hz", -1.0), ("highpass_hz", 1000.5), ("highpass_hz", float("nan")),
    ("highpass_hz", "80"), ("order", 3), ("order", 1), ("order", 8), ("order", 2.5), ("order", True), ("order", "2"),
    ("order", float("nan")),
])
def test_settings_are_validated_with_the_field_named(field, value):
    with pytest.raises(SettingsError, match=field):
        HighPass(**{field: value})


def test_settings_round_trip():
    proc = HighPass(highpass_hz=35.0, order=4)
    assert HighPass.kind == "highpass"
    assert HighPass() == HighPass(highpass_hz=0.0, order=2)
    assert HighPass.from_settings(proc.settings()) == proc
    assert proc.settings() == {"highpass_hz": 35.0, "order": 4}
    assert HighPass(highpass_hz=35.0, order=4.0).settings()["order"] == 4  # integral floats normalised
    assert isinstance(HighPass(highpass_hz=35.0, order=4.0).order, int)
    with pytest.raises(SettingsError, match="unknown"):
        HighPass.from_settings({"cutoff_hz": 35.0})
