"""TruePeakLimiter: output true peak under the ceiling, transparency, no delay, recovery."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate

from stemmaster.dsp import limiter as limiter_module
from stemmaster.dsp._recursive import moving_average_past as _moving_average_past
from stemmaster.dsp._recursive import limiter_pass, release_under
from stemmaster.dsp._recursive import window_min as _window_min
from stemmaster.dsp.limiter import DETECTOR, TruePeakLimiter, detector_envelope
from stemmaster.errors import AudioError, SettingsError
from stemmaster.meters.truepeak import true_peak_dbtp, true_peak_linear
from tests.helpers import assert_edge_signal_contract

RATES = (44100, 48000, 96000)
CEILINGS = (-1.0, -0.1)


def _square(sample_rate: int, ceiling_dbtp: float) -> np.ndarray:
    """A 100 Hz square 12 dB over the ceiling, hard-clipped to ±1 (the clip edges ring)."""
    t = np.arange(sample_rate) / sample_rate
    s = np.clip(10 ** ((ceiling_dbtp + 12.0) / 20) * np.sign(np.sin(2 * np.pi * 100.0 * t + 0.1)), -1.0, 1.0)
    return np.vstack([s, 0.9 * s])


def _quarter_rate_sine(sample_rate: int, ceiling_dbtp: float) -> np.ndarray:
    """fs/4 sine at 45° phase: samples at ±1 (0 dBFS) but the waveform peaks at +3.01 dBTP."""
    k = np.arange(sample_rate)
    s = np.sin(np.pi / 2 * k + np.pi / 4) / np.sin(np.pi / 4)
    return np.vstack([s, s])


def _noise_bursts(sample_rate: int, ceiling_dbtp: float) -> np.ndarray:
    rng = np.random.default_rng(sample_rate)
    n = sample_rate
    gate = (np.arange(n) // (n // 8)) % 2 == 0  # 8 bursts of 1/8 s
    return rng.standard_normal((2, n)) * 0.5 * gate


def _click_train(sample_rate: int, ceiling_dbtp: float) -> np.ndarray:
    """Drum-like hits: decaying 3 kHz bursts, 8 per second, peaking near +6 dBFS."""
    n = sample_rate
    hit_len = int(0.02 * sample_rate)
    th = np.arange(hit_len) / sample_rate
    hit = np.exp(-th / 0.003) * np.sin(2 * np.pi * 3000.0 * th)
    impulses = np.zeros(n)
    impulses[:: sample_rate // 8] = 1.0
    s = np.convolve(impulses, hit)[:n]
    s *= 2.0 / np.abs(s).max()
    return np.vstack([s, -0.7 * s])


SIGNALS = {"square": _square, "fs4_sine": _quarter_rate_sine, "noise_bursts": _noise_bursts, "clicks": _click_train}


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("ceiling", CEILINGS)
@pytest.mark.parametrize("signal", sorted(SIGNALS))
def test_output_true_peak_is_under_the_ceiling(sample_rate, ceiling, signal):
    x = SIGNALS[signal](sample_rate, ceiling)
    assert true_peak_dbtp(x) > ceiling + 1.0  # the test signal really is over
    lim = TruePeakLimiter(ceiling_dbtp=ceiling)
    for dtype in (np.float64, np.float32):
        y = lim.process(x.astype(dtype), sample_rate)
        assert y.dtype == dtype and y.shape == x.shape
        assert true_peak_dbtp(y) <= ceiling  # by the BS.1770 4x meter
        # and it is not over-limited, read on the detector's finer 8x grid (a
        # square's Gibbs peaks fall between the 4x points: 4x reads them 0.055 dB low)
        detector_db = 20 * np.log10(true_peak_linear(y.astype(np.float64), DETECTOR))
        assert ceiling - 0.01 < detector_db <= ceiling
    gain, passes, _, _ = lim._gain_and_passes(x, sample_rate)
    assert passes <= 2  # no fallback; in fact one pass for all of these
    assert np.all(gain <= 1.0) and np.all(gain > 0.0)
    # the peak it reports bounds the detector's reading of its output (it is that reading
    # near the ceiling, a bound elsewhere), and so the 4x meter's
    out, gain2, peak = lim.limit(x, sample_rate)
    assert np.array_equal(gain2, gain) and np.array_equal(out, x * gain)
    assert true_peak_linear(x * gain, DETECTOR) <= peak * (1 + 1e-6) and peak <= 10 ** (ceiling / 20)
    assert true_peak_linear(x * gain) <= peak * (1 + 1e-6)
    # a scale folded in is the same as scaling the input first
    out2, gain3, peak2 = lim.limit(x * 0.5, sample_rate, envelope=detector_envelope(x * 0.5), scale=2.0)
    assert np.allclose(out2, out, rtol=0, atol=1e-12) and np.allclose(gain3, gain, rtol=0, atol=1e-12)


@pytest.mark.parametrize("signal", sorted(SIGNALS))
def test_bounded_envelope_never_reads_below_the_detector(signal):
    # after a pass the limiter measures its output exactly only where it could be near the
    # ceiling; elsewhere it keeps a bound: the bound must never be under the real reading
    x = SIGNALS[signal](44100, -1.0)
    env = detector_envelope(x)
    rng = np.random.default_rng(3)
    for scale in (1.0, 0.7):
        for step in (TruePeakLimiter(ceiling_dbtp=-1.0).gain(x * scale, 44100, verify=False),
                     np.clip(1.0 - np.abs(np.cumsum(rng.standard_normal(x.shape[1]))) * 1e-3, 0.05, 1.0)):
            scaled = x * scale * step
            exact = detector_envelope(scaled)
            for accept in (10 ** (-1.0 / 20), 10.0):  # 10: nothing re-measured, the bound alone
                got = limiter_module._scaled_envelope(env, limiter_module._block_peaks(x, limiter_module._BOUND_BLOCK),
                                                     scaled, step, accept, scale)
                assert np.all(got >= exact - 1e-6)
                near = exact > accept
                assert np.allclose(got[near], exact[near], rtol=0, atol=1e-6)


@pytest.mark.parametrize("lookahead_ms, release_ms",
                         [(0.5, 1.0), (0.5, 2000.0), (20.0, 1.0), (20.0, 50.0), (1.3, 10.0)])
def test_guarantee_holds_at_extreme_timings(lookahead_ms, release_ms):
    lim = TruePeakLimiter(ceiling_dbtp=-0.1, lookahead_ms=lookahead_ms, release_ms=release_ms)
    for make in SIGNALS.values():
        x = make(48000, -0.1)
        gain, passes, _, _ = lim._gain_and_passes(x, 48000)
        assert passes <= limiter_module.MAX_PASSES
        assert true_peak_dbtp((x * gain).astype(np.float32)) <= -0.1


def test_heavy_limiting_of_loud_noise():
    x = np.random.default_rng(7).standard_normal((2, 3 * 44100))  # ~+12 dBTP
    for ceiling in (-20.0, -1.0, 0.0):
        lim = TruePeakLimiter(ceiling_dbtp=ceiling, lookahead_ms=1.0, release_ms=20.0)
        y = lim.process(x.astype(np.float32), 44100)
        assert true_peak_dbtp(y) <= ceiling


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_signal_under_the_ceiling_is_unchanged(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 48000))
    x *= 10 ** (-1.05 / 20) / 10 ** (true_peak_dbtp(x) / 20)  # true peak -1.05 dBTP
    x = x.astype(dtype)
    y = TruePeakLimiter(ceiling_dbtp=-1.0).process(x, 48000)
    assert np.max(np.abs(y.astype(np.float64) - x)) < 1e-7
    assert np.array_equal(TruePeakLimiter(ceiling_dbtp=-1.0).gain(x, 48000), np.ones(48000))


def test_limited_stretch_does_not_disturb_quiet_stretches_elsewhere():
    x = 0.1 * np.random.default_rng(6).standard_normal((2, 4 * 48000))
    x[:, 2 * 48000] = 3.0  # one loud sample in the middle
    lim = TruePeakLimiter(release_ms=50.0)
    g = lim.gain(x, 48000)
    assert np.all(g[: 2 * 48000 - lim.lookahead_samples(48000) - 2 * limiter_module.PEAK_GUARD] == 1.0)
    assert g[2 * 48000] < 0.5


@pytest.mark.parametrize("sample_rate", RATES)
def test_no_delay(sample_rate):
    x = _click_train(sample_rate, -1.0)
    y = TruePeakLimiter(ceiling_dbtp=-1.0, lookahead_ms=5.0).process(x, sample_rate)
    assert true_peak_dbtp(x) - true_peak_dbtp(y) > 5.0  # it really limited
    for ch in range(2):
        corr = correlate(y[ch], x[ch], mode="full", method="fft")
        lag = int(np.argmax(corr)) - (x.shape[1] - 1)
        assert lag == 0
    # and each hit's own peak stays where it was
    assert np.argmax(np.abs(y[0, : sample_rate // 8])) == np.argmax(np.abs(x[0, : sample_rate // 8]))


def test_gain_recovers_after_a_single_peak():
    sample_rate = 48000
    release_ms = 100.0
    x = 0.05 * np.random.default_rng(8).standard_normal((2, 2 * sample_rate))
    peak_at = sample_rate // 2
    x[:, peak_at] = 4.0  # ~+13 dB over a -1 dBTP ceiling
    lim = TruePeakLimiter(ceiling_dbtp=-1.0, release_ms=release_ms)
    g = lim.gain(x, sample_rate)
    assert g[peak_at] < 0.3
    after = peak_at + int(5 * release_ms * sample_rate / 1000) + lim.lookahead_samples(sample_rate)
    assert np.all(g[after:] > 0.99)
    assert np.all(g <= 1.0)


def test_gain_curve_is_what_process_applies():
    x = _noise_bursts(44100, -1.0)
    lim = TruePeakLimiter()
    assert np.array_equal(lim.process(x, 44100), x * lim.gain(x, 44100))
    assert lim.gain(x, 44100).shape == (x.shape[1],)


@pytest.mark.parametrize("sample_rate", RATES)
def test_edge_signals_are_finite_and_under_the_ceiling(sample_rate):
    lim = TruePeakLimiter(ceiling_dbtp=-1.0)
    n = sample_rate // 2
    cases = [np.zeros((2, n)), np.full((2, n), 0.99), np.full((2, n), -1.0), np.ones((1, n)),
             np.sign(np.random.default_rng(9).standard_normal((2, n))), np.ones((2, 1)), np.ones((2, 5))]
    for y in assert_edge_signal_contract(lim, cases, sample_rate):
        assert true_peak_dbtp(y) <= -1.0


def test_non_finite_input_is_refused():
    x = np.zeros((2, 1000))
    x[1, 500] = np.nan
    with pytest.raises(AudioError):
        TruePeakLimiter().process(x, 48000)


def test_gain_alignment_keeps_every_sample_under_its_requirement():
    rng = np.random.default_rng(10)
    for length in (1, 2, 7, 64, 700):
        for guard in (0, 3):
            r = np.minimum(1.0, rng.uniform(0.2, 1.6, 500))
            held = _window_min(r, guard, length - 1 + guard)
            brute = np.array([np.min(np.r_[np.ones(guard), r, np.ones(length + guard)][i:i + length + 2 * guard])
                              for i in range(len(r))])
            assert np.array_equal(held, brute)
            s = _moving_average_past(held, length)
            assert np.all(s <= r + 1e-12)
            # with guard, the smoothed gain is under each requirement for guard samples either side too
            for shift in range(-guard, guard + 1):
                lo, hi = max(0, shift), min(len(r), len(r) + shift)
                assert np.all(s[lo:hi] <= r[lo - shift:hi - shift] + 1e-12)


def test_fused_pass_equals_its_steps_composed():
    rng = np.random.default_rng(12)
    env = np.abs(rng.standard_normal(3000)) * np.repeat(rng.uniform(0.2, 2.0, 30), 100)
    env[:150] = 0.1  # an idle start, a busy middle, idle stretches between
    target = 0.9
    for power, release in ((1, True), (2, False), (1, False)):
        for length, guard in ((1, 0), (5, 2), (64, 12), (400, 12)):
            r = np.where(env > target, (target / np.maximum(env, target)) ** power, 1.0)
            held = _window_min(r, guard, length - 1 + guard)
            if release:
                held = release_under(held, 0.01)
            expected = np.minimum(_moving_average_past(held, length), 1.0)
            got = limiter_pass(env, target, power, guard, length - 1 + guard, release, 0.01, length)
            assert np.array_equal(got, expected), (power, release, length, guard)
            assert got.min() < 1.0


def test_moving_average_is_exactly_one_when_idle():
    g = np.ones(10000)
    g[100:200] = 0.3
    s = _moving_average_past(g, 37)
    assert np.all(s[:100] == 1.0) and np.all(s[236:] == 1.0) and np.all(s[100:200] < 1.0)
    rng = np.random.default_rng(11)
    for length in (1, 5, 64):
        x = rng.uniform(0.1, 1.0, 300)
        padded = np.r_[np.full(length - 1, x[0]), x]
        brute = np.array([padded[i:i + length].mean() for i in range(len(x))])
        assert np.allclose(_moving_average_past(x, length), brute, rtol=0, atol=1e-12)


@pytest.mark.parametrize("field, value", [
    ("ceiling_dbtp", 0.5), ("ceiling_dbtp", -21.0), ("lookahead_ms", 0.1), ("lookahead_ms", 25.0),
    ("release_ms", 0.5), ("release_ms", 3000.0), ("release_ms", float("nan")),
])
def test_settings_are_validated_with_the_field_named(field, value):
    with pytest.raises(SettingsError, match=field):
        TruePeakLimiter(**{field: value})


def test_settings_round_trip():
    lim = TruePeakLimiter(ceiling_dbtp=-0.3, release_ms=60.0)
    assert TruePeakLimiter.kind == "true_peak_limiter"
    assert TruePeakLimiter.from_settings(lim.settings()) == lim


def test_precomputed_envelope_gives_the_same_gain():

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 20000)) * 0.3
    lim = TruePeakLimiter(ceiling_dbtp=-1.0)
    env = detector_envelope(x)
    for drive in (1.0, 2.0, 4.0):
        a = lim.gain(x * drive, 44100)
        b = lim.gain(x * drive, 44100, envelope=env * drive)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_unverified_first_pass_has_the_verified_loudness():
    # the master's loudness search steers on verify=False passes; their loudness must match
    from stemmaster.demo import demo_mix, make_demo_stems
    from stemmaster.meters.loudness import gated_loudness_lufs

    x = demo_mix(make_demo_stems(sample_rate=44100, duration_s=10.0)).astype(np.float64) * 10 ** (9 / 20)
    lim = TruePeakLimiter(ceiling_dbtp=-1.0)
    fast = x * lim.gain(x, 44100, verify=False)
    sure = x * lim.gain(x, 44100)
    assert true_peak_dbtp(sure) <= -1.0
    assert abs(gated_loudness_lufs(fast, 44100) - gated_loudness_lufs(sure, 44100)) < 0.01


def test_estimate_from_the_envelope_alone_matches_the_first_pass():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 48000)) * 0.4
    lim = TruePeakLimiter(ceiling_dbtp=-1.0)
    env = limiter_module.detector_envelope(x)
    for scale in (1.0, 2.0, 4.0):
        first = lim.gain(x * scale, 48000, envelope=env * scale, verify=False)
        est = lim.estimate_gain(env, 48000, scale=scale)
        assert np.max(np.abs(est - first)) < 1e-12
        assert est.min() < 0.9  # it really limited
