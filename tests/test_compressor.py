"""GlueCompressor: static curve, settling, attack/release timing, linking, makeup."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stemmaster.dsp.compressor import GlueCompressor
from stemmaster.errors import SettingsError
from tests.helpers import assert_edge_signal_contract

RATES = (44100, 48000, 96000)


def _sine(rms_db: np.ndarray | float, sample_rate: int, seconds: float, freq: float = 1000.0) -> np.ndarray:
    """A stereo sine whose RMS (the detector's measure) is ``rms_db``, per sample if an array."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    amp = np.sqrt(2.0) * 10.0 ** (np.asarray(rms_db) / 20.0)
    s = amp * np.sin(2 * np.pi * freq * t)
    return np.vstack([s, s])


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2)))


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("threshold_db, ratio", [(-18.0, 2.0), (-10.0, 2.0), (-24.0, 4.0)])
def test_steady_sine_settles_on_the_static_curve(sample_rate, threshold_db, ratio):
    # RMS detector: a sine's RMS is what is compared with the threshold
    comp = GlueCompressor(threshold_db=threshold_db, ratio=ratio)
    x = _sine(threshold_db + 12.0, sample_rate, 2.0)
    y = comp.process(x, sample_rate)
    settled = y[:, -sample_rate // 2:]
    want = threshold_db + 12.0 / ratio
    assert abs(_rms_db(settled) - want) <= 0.3
    assert abs(_rms_db(settled) - want) <= 0.05  # in fact much closer


@pytest.mark.parametrize("sample_rate", RATES)
def test_sine_under_the_knee_passes_unchanged(sample_rate):
    comp = GlueCompressor()  # threshold -18, knee 6: the knee starts at -21
    x = _sine(-18.0 - 3.0 - 10.0, sample_rate, 1.0)
    y = comp.process(x, sample_rate)
    assert abs(_rms_db(y) - _rms_db(x)) <= 0.01
    assert np.all(comp.gain_db(x, sample_rate) == 0.0)


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("attack_ms", (10.0, 30.0, 100.0))
def test_attack_reaches_63_percent_in_attack_time(sample_rate, attack_ms):
    comp = GlueCompressor(attack_ms=attack_ms)
    step_at = int(0.5 * sample_rate)
    level = np.where(np.arange(int(2.0 * sample_rate)) < step_at, -40.0, -18.0 + 12.0)
    g = comp.gain_db(_sine(level, sample_rate, 2.0), sample_rate)
    final = g[-1]
    assert abs(final - -6.0) < 0.1
    reached = np.argmax(g[step_at:] <= 0.632 * final) / sample_rate * 1000.0
    assert 0.5 * attack_ms <= reached <= 1.5 * attack_ms


@pytest.mark.parametrize("release_ms", (100.0, 250.0, 1000.0))
def test_release_recovers_63_percent_in_release_time(release_ms):
    sample_rate = 48000
    comp = GlueCompressor(release_ms=release_ms, attack_ms=10.0)
    step_at = int(1.0 * sample_rate)
    level = np.where(np.arange(int(6.0 * sample_rate)) < step_at, -6.0, -40.0)
    g = comp.gain_db(_sine(level, sample_rate, 6.0), sample_rate)
    start = g[step_at - 1]
    assert abs(start - -6.0) < 0.1
    recovered = np.argmax(g[step_at:] >= 0.368 * start) / sample_rate * 1000.0
    assert 0.5 * release_ms <= recovered <= 1.5 * release_ms
    five_tau = min(len(g) - 1, step_at + int(5 * release_ms * sample_rate / 1000))
    assert g[five_tau] > -0.05  # 6 dB * exp(-5) = 0.04 dB


def test_channels_are_linked_by_the_louder_one():
    sample_rate = 48000
    loud = _sine(0.0, sample_rate, 1.0)[0]
    quiet = _sine(-30.0, sample_rate, 1.0)[0]
    x = np.vstack([loud, quiet])
    comp = GlueCompressor()
    y = comp.process(x, sample_rate)
    g = 10 ** (comp.gain_db(x, sample_rate) / 20)
    assert np.allclose(y, x * g)
    assert g[-1] < 10 ** (-8 / 20)  # the quiet channel is turned down with the loud one
    # the same mix with channels swapped gets the same gain curve
    assert np.array_equal(comp.gain_db(x[::-1], sample_rate), comp.gain_db(x, sample_rate))


def test_makeup_is_applied_and_caps_the_gain_curve():
    sample_rate = 44100
    quiet = _sine(-40.0, sample_rate, 1.0)
    comp = GlueCompressor(makeup_db=4.0)
    assert np.allclose(comp.process(quiet, sample_rate), quiet * 10 ** (4.0 / 20))
    loud = _sine(-6.0, sample_rate, 1.0)
    g = comp.gain_db(loud, sample_rate)
    assert g.shape == (loud.shape[1],)
    assert np.all(g <= 4.0) and g[-1] < 0.0


def test_ratio_one_is_exact_identity():
    x = np.random.default_rng(0).uniform(-1, 1, (2, 20000)).astype(np.float32)
    y = GlueCompressor(ratio=1.0, threshold_db=-40.0).process(x, 48000)
    assert y.dtype == np.float32 and np.array_equal(y, x)


def test_static_curve_is_continuous_through_the_knee():
    comp = GlueCompressor(threshold_db=-20.0, ratio=4.0, knee_db=6.0)
    lv = np.array([-23.0 - 1e-9, -23.0, -20.0, -17.0, -17.0 + 1e-9, 0.0])
    gr = comp.static_gain_db(lv)
    slope = 1 / 4 - 1
    assert gr[0] == 0.0 and gr[1] == 0.0
    assert abs(gr[2] - slope * 3.0 ** 2 / 12.0) < 1e-12  # (W/2)^2 / (2W)
    assert abs(gr[3] - slope * 3.0) < 1e-12 and abs(gr[4] - gr[3]) < 1e-8
    assert abs(gr[5] - slope * 20.0) < 1e-12
    hard = GlueCompressor(threshold_db=-20.0, ratio=4.0, knee_db=0.0)
    assert np.allclose(hard.static_gain_db(np.array([-21.0, -20.0, -10.0])), [0.0, 0.0, slope * 10.0])


@pytest.mark.parametrize("sample_rate", RATES)
def test_contract_shape_dtype_no_mutation_and_finite_edge_signals(sample_rate):
    comp = GlueCompressor(threshold_db=-30.0, ratio=20.0, attack_ms=0.1, makeup_db=6.0)
    n = sample_rate // 2
    rng = np.random.default_rng(4)
    signals = [np.zeros((2, n)), np.full((2, n), -1.0), np.ones((1, n)), np.sign(rng.standard_normal((2, n)))]
    assert_edge_signal_contract(comp, signals, sample_rate)
    for x in signals:
        for dtype in (np.float32, np.float64):
            assert np.all(np.isfinite(comp.gain_db(x.astype(dtype), sample_rate)))
    assert comp.gain_db(np.zeros((2, 0)), sample_rate).shape == (0,)


@pytest.mark.parametrize("field, value", [
    ("ratio", 0.5), ("ratio", 21.0), ("attack_ms", 0.0), ("release_ms", -1.0), ("knee_db", -1.0),
    ("threshold_db", 3.0), ("makeup_db", float("inf")),
])
def test_settings_are_validated_with_the_field_named(field, value):
    with pytest.raises(SettingsError, match=field):
        GlueCompressor(**{field: value})


def test_settings_round_trip():
    comp = GlueCompressor(ratio=3.0, makeup_db=1.5)
    assert GlueCompressor.kind == "glue_compressor"
    assert GlueCompressor.from_settings(comp.settings()) == comp


def test_fused_gain_curve_matches_its_definition_step_by_step():
    """gain_db runs detector, knee and smoothing in one kernel; it must equal the
    documented steps (level_db -> static_gain_db -> one-pole attack/release) done apart."""
    sample_rate = 48000
    rng = np.random.default_rng(7)
    t = np.arange(sample_rate // 2) / sample_rate
    env = np.where((t * 4) % 1 < 0.5, 1.0, 0.05)  # bursts over and under the threshold
    x = (rng.standard_normal((2, t.size)) * env * [[0.5], [0.3]]).astype(np.float64)
    comp = GlueCompressor(threshold_db=-24.0, ratio=3.0, attack_ms=5.0, release_ms=80.0, knee_db=6.0, makeup_db=2.0)
    target = comp.static_gain_db(comp.level_db(x, sample_rate))
    attack = math.exp(-1000.0 / (comp.attack_ms * sample_rate))
    release = math.exp(-1000.0 / (comp.release_ms * sample_rate))
    smoothed = np.empty_like(target)
    y = 0.0
    for i, v in enumerate(target):  # the reference, one sample at a time
        c = attack if v < y else release
        y = c * y + (1.0 - c) * v
        smoothed[i] = y
    expected = np.minimum(smoothed, 0.0) + comp.makeup_db
    got = comp.gain_db(x, sample_rate)
    assert np.max(np.abs(got - expected)) < 1e-9
    assert got.min() < comp.makeup_db - 3.0  # it really compressed
