"""Meters: conformance against the EBU/ITU test files, plus synthetic checks with derived numbers."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import sosfreqz

from stemmaster.errors import AudioError
from stemmaster.meters.analysis import Metrics, measure
from stemmaster.meters.loudness import (
    channel_weights,
    integrated_lufs,
    k_weighted,
    k_weighting_sos,
    loudness_range_lu,
    momentary_lufs,
    short_term_lufs,
)
from stemmaster.meters.stereo import side_to_mid_db, stereo_correlation
from stemmaster.meters.truepeak import sample_peak_dbfs, true_peak_dbtp

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "loudness"
SR = 48000


def load(name: str) -> tuple[np.ndarray, int]:
    """A corpus file as float64 ``(channels, samples)``; skips when the corpus is absent."""
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus file {path} not present")
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return np.ascontiguousarray(data.T), sr


def sine(amplitude: float, seconds: float, sr: int = SR, freq: float = 997.0, channels: int = 2) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    one = amplitude * np.sin(2 * np.pi * freq * t)
    return np.tile(one, (channels, 1))


def k_gain_db(freq: float, sr: int) -> float:
    _, h = sosfreqz(k_weighting_sos(sr), worN=[freq], fs=sr)
    return float(20 * np.log10(np.abs(h[0])))


def expected_sine_lufs(amplitude: float, channels: int, sr: int, freq: float = 997.0) -> float:
    """BS.1770 reading of a steady sine of ``amplitude`` in each of ``channels`` front channels.

    Mean square per channel is A^2/2 (-3.01 dB), the channels add (+10 log10 channels),
    the K-weighting multiplies power by |H(f)|^2, and the -0.691 offset is added.
    """
    return 20 * math.log10(amplitude) - 10 * math.log10(2) + 10 * math.log10(channels) + k_gain_db(freq, sr) - 0.691


# --------------------------------------------------------------------------- conformance

corpus = pytest.mark.corpus


@corpus
@pytest.mark.parametrize(
    "name, expected_lufs",
    [
        ("seq-3341-1-16bit.wav", -23.0),
        ("seq-3341-2-16bit.wav", -33.0),
        ("1770-2_Comp_AbsGateTest.wav", -69.5),
        ("1770-2_Comp_RelGateTest.wav", -10.0),
    ],
)
def test_integrated_conformance(name, expected_lufs):
    audio, sr = load(name)
    assert integrated_lufs(audio, sr) == pytest.approx(expected_lufs, abs=0.1)
    assert measure(audio, sr).integrated_lufs == pytest.approx(expected_lufs, abs=0.1)


@corpus
def test_short_term_max_conformance_3341_10_1():
    audio, sr = load("seq-3341-10-1-24bit.wav")
    assert float(np.max(short_term_lufs(audio, sr))) == pytest.approx(-23.0, abs=0.1)
    assert measure(audio, sr).short_term_max_lufs == pytest.approx(-23.0, abs=0.1)


@corpus
def test_momentary_constant_conformance_3341_12():
    audio, sr = load("seq-3341-12-24bit.wav")
    m = momentary_lufs(audio, sr)
    end_s = np.arange(m.size) * 0.1 + 0.4  # each value is the reading at the end of its window
    after = m[end_s >= 1.0 - 1e-9]
    assert after.size >= 80
    assert np.all(np.abs(after - (-23.0)) <= 0.1)


@corpus
def test_momentary_max_conformance_3341_13_1():
    audio, sr = load("seq-3341-13-1-24bit.wav")
    assert float(np.max(momentary_lufs(audio, sr))) == pytest.approx(-23.0, abs=0.1)
    assert measure(audio, sr).momentary_max_lufs == pytest.approx(-23.0, abs=0.1)


@corpus
@pytest.mark.parametrize(
    "number, expected_dbtp",
    [(15, -6.0), (16, -6.0), (17, -6.0), (18, -6.0), (19, 3.0), (20, 0.0), (21, 0.0), (22, 0.0), (23, 0.0)],
)
def test_true_peak_conformance(number, expected_dbtp):
    audio, sr = load(f"seq-3341-{number}-24bit.wav")
    tp = true_peak_dbtp(audio, sr)
    assert expected_dbtp - 0.4 <= tp <= expected_dbtp + 0.2
    assert tp >= sample_peak_dbfs(audio) - 1e-9
    assert measure(audio, sr).true_peak_dbtp == pytest.approx(tp, abs=1e-12)


@corpus
def test_true_peak_above_sample_peak_3341_16():
    audio, _ = load("seq-3341-16-24bit.wav")
    assert sample_peak_dbfs(audio) == pytest.approx(-9.01, abs=0.05)


# --------------------------------------------------------------------------- K-weighting


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000, 96000, 192000])
def test_k_weighting_is_pyloudnorms_filter(sr):
    import pyloudnorm

    f = pyloudnorm.Meter(sr)._filters
    ref = np.stack([np.r_[f["high_shelf"].b, f["high_shelf"].a], np.r_[f["high_pass"].b, f["high_pass"].a]])
    np.testing.assert_allclose(k_weighting_sos(sr), ref, rtol=1e-12, atol=1e-14)


def test_k_weighting_response_shape():
    sr = 48000
    # +4 dB shelf at high frequencies, RLB high-pass cuts the lows, about +0.65 dB at 1 kHz
    assert k_gain_db(10000.0, sr) == pytest.approx(4.0, abs=0.1)
    assert k_gain_db(20.0, sr) < -10.0
    assert k_gain_db(997.0, sr) == pytest.approx(0.65, abs=0.02)
    # the BS.1770 table coefficients give +0.69 dB at 1 kHz; pyloudnorm's RBJ design is within 0.05 dB
    itu = np.array([[1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241, 0.73248077421585],
                    [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621]])
    _, h = sosfreqz(itu, worN=[997.0], fs=sr)
    assert abs(20 * np.log10(abs(h[0])) - k_gain_db(997.0, sr)) < 0.05


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_k_weighted_keeps_shape_and_dtype(dtype):
    audio = sine(0.5, 0.5).astype(dtype)
    out = k_weighted(audio, SR)
    assert out.shape == audio.shape and out.dtype == dtype
    assert k_weighted(np.zeros((2, 0), dtype=dtype), SR).shape == (2, 0)


# --------------------------------------------------------------------------- synthetic loudness


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_sine_reads_bs1770_expectation(sr, channels):
    amplitude = 10 ** (-23 / 20)  # -23 dBFS peak
    audio = sine(amplitude, 10.0, sr=sr, channels=channels)
    expected = expected_sine_lufs(amplitude, channels, sr)
    if channels == 2:  # the stereo case is -23 dBFS -> about -23 LUFS (0.65 - 0.691 = -0.04 dB)
        assert expected == pytest.approx(-23.04, abs=0.01)
    else:
        assert expected == pytest.approx(-26.05, abs=0.01)
    assert integrated_lufs(audio, sr) == pytest.approx(expected, abs=0.1)
    m = momentary_lufs(audio, sr)
    s = short_term_lufs(audio, sr)
    assert np.all(np.abs(m[2:] - expected) < 0.02)  # skip the filter's start-up transient
    assert np.all(np.abs(s - expected) < 0.02)
    assert integrated_lufs(audio.astype(np.float32), sr) == pytest.approx(integrated_lufs(audio, sr), abs=1e-3)
    assert np.allclose(momentary_lufs(audio.astype(np.float32), sr), m, atol=1e-3)


def test_window_counts_and_positions():
    sr = 44100
    n = int(10.05 * sr)
    audio = np.zeros((2, n))
    burst = slice(int(2.0 * sr), int(2.4 * sr))
    audio[:, burst] = sine(0.5, 0.4, sr=sr)
    m = momentary_lufs(audio, sr)
    s = short_term_lufs(audio, sr)
    assert m.size == 97  # complete 400 ms windows starting every 100 ms in 10.05 s
    assert s.size == 71  # complete 3 s windows
    assert int(np.argmax(m)) == 20  # the window [2.0 s, 2.4 s) holds the whole burst
    assert m[20] == pytest.approx(expected_sine_lufs(0.5, 2, sr), abs=0.05)
    assert np.isneginf(m[0]) and np.isneginf(m[-1])  # silent windows are -inf
    # a 3 s window holding the whole 400 ms burst reads 10*log10(0.4/3) lower
    assert float(np.max(s)) == pytest.approx(m[20] + 10 * math.log10(0.4 / 3.0), abs=0.05)


def test_momentary_gating_agrees_with_pyloudnorm_integrated():
    """BS.1770 gating over our 400 ms / 100 ms blocks reproduces pyloudnorm's integrated value."""
    rng = np.random.default_rng(1)
    sr = 44100
    seconds = 30
    noise = rng.standard_normal((2, seconds * sr))
    env_db = np.repeat(rng.uniform(-45, -8, seconds), sr)  # a new level every second
    audio = noise * 10 ** (env_db / 20)
    blocks = momentary_lufs(audio, sr)
    gated = blocks[blocks > -70]
    relative = 10 * np.log10(np.mean(10 ** (gated / 10))) - 10
    gated = gated[gated > relative]
    ours = 10 * np.log10(np.mean(10 ** (gated / 10)))
    assert ours == pytest.approx(integrated_lufs(audio, sr), abs=0.02)


def test_surround_channel_weight():
    sr = 48000
    tone = sine(0.1, 5.0, sr=sr, channels=1)[0]
    front = np.zeros((5, tone.size))
    front[0] = tone
    surround = np.zeros((5, tone.size))
    surround[3] = tone
    np.testing.assert_allclose(channel_weights(5), [1, 1, 1, 1.41, 1.41])
    gap = integrated_lufs(surround, sr) - integrated_lufs(front, sr)
    assert gap == pytest.approx(10 * math.log10(1.41), abs=0.01)
    m_gap = momentary_lufs(surround, sr)[5:] - momentary_lufs(front, sr)[5:]
    assert np.allclose(m_gap, 10 * math.log10(1.41), atol=0.01)


def test_short_audio():
    sr = 48000
    audio = sine(0.5, 0.3, sr=sr)
    assert integrated_lufs(audio, sr) == float("-inf")  # shorter than one gating block: no value
    assert momentary_lufs(audio, sr).size == 0
    two_s = sine(0.5, 2.0, sr=sr)
    assert momentary_lufs(two_s, sr).size == 17
    assert short_term_lufs(two_s, sr).size == 0
    assert loudness_range_lu(two_s, sr) == 0.0
    assert math.isfinite(integrated_lufs(sine(0.5, 0.4, sr=sr), sr))  # exactly one block is measured


# --------------------------------------------------------------------------- loudness range (Tech 3342)


def steps(levels_dbfs, seconds_each=20.0, sr=SR):
    return np.concatenate([sine(10 ** (lv / 20), seconds_each, sr=sr, freq=1000.0) for lv in levels_dbfs], axis=1)


@pytest.mark.parametrize(
    "levels, expected_lu",
    [
        ((-20, -30), 10.0),  # Tech 3342 case 1
        ((-20, -15), 5.0),  # case 2
        ((-40, -20), 20.0),  # case 3
        ((-50, -35, -20, -35, -50), 15.0),  # case 4
    ],
)
def test_loudness_range_tech3342(levels, expected_lu):
    audio = steps(levels)
    lra = loudness_range_lu(audio, SR)
    assert lra == pytest.approx(expected_lu, abs=1.0)
    if len(levels) == 2 and levels[1] == -30:  # measure() derives the same LRA from its shared K-weighting
        assert measure(audio, SR).loudness_range_lu == pytest.approx(lra, abs=1e-12)


def test_loudness_range_of_steady_tone_and_silence():
    assert loudness_range_lu(sine(0.3, 10.0), SR) == pytest.approx(0.0, abs=0.05)
    assert loudness_range_lu(np.zeros((2, 10 * SR)), SR) == 0.0
    assert loudness_range_lu(sine(10 ** (-80 / 20), 10.0), SR) == 0.0  # below the absolute gate


# --------------------------------------------------------------------------- stereo


def test_stereo_correlation_and_side_to_mid():
    rng = np.random.default_rng(2)
    a = rng.standard_normal(SR * 5)
    b = rng.standard_normal(SR * 5)
    identical = np.stack([a, a])
    inverted = np.stack([a, -a])
    independent = np.stack([a, b])
    assert stereo_correlation(identical) == pytest.approx(1.0, abs=1e-12)
    assert stereo_correlation(inverted) == pytest.approx(-1.0, abs=1e-12)
    assert abs(stereo_correlation(independent)) < 0.01
    assert stereo_correlation(a[None, :]) == 1.0
    assert stereo_correlation(np.stack([a, np.zeros_like(a)])) == 0.0
    assert stereo_correlation(np.zeros((2, 100))) == 0.0
    assert side_to_mid_db(identical) == float("-inf")
    assert side_to_mid_db(inverted) == float("inf")
    assert side_to_mid_db(a[None, :]) == float("-inf")
    assert side_to_mid_db(independent) == pytest.approx(0.0, abs=0.1)  # equal-level uncorrelated: S and M equal
    assert side_to_mid_db(np.stack([a, np.zeros_like(a)])) == pytest.approx(0.0, abs=1e-9)  # L only: S = M = L/2
    # L = a, R = 0.5 a: S = 0.25 a, M = 0.75 a -> 20 log10(1/3)
    assert side_to_mid_db(np.stack([a, 0.5 * a])) == pytest.approx(20 * math.log10(1 / 3), abs=1e-9)
    assert stereo_correlation(independent.astype(np.float32)) == pytest.approx(stereo_correlation(independent), abs=1e-5)


# --------------------------------------------------------------------------- analysis

EXPECTED_KEYS = [
    "integrated_lufs", "short_term_max_lufs", "momentary_max_lufs", "loudness_range_lu",
    "sample_peak_dbfs", "true_peak_dbtp", "plr_db", "crest_factor_db", "rms_dbfs",
    "stereo_correlation", "side_to_mid_db", "duration_s", "sample_rate", "channels",
]


def test_measure_sine():
    amplitude = 0.5
    audio = sine(amplitude, 10.0).astype(np.float32)
    m = measure(audio, SR)
    expected = expected_sine_lufs(amplitude, 2, SR)
    assert m.integrated_lufs == pytest.approx(expected, abs=0.1)
    assert m.short_term_max_lufs == pytest.approx(expected, abs=0.02)
    assert m.momentary_max_lufs == pytest.approx(expected, abs=0.05)
    assert m.loudness_range_lu == pytest.approx(0.0, abs=0.05)
    assert m.sample_peak_dbfs == pytest.approx(20 * math.log10(amplitude), abs=0.01)
    assert m.true_peak_dbtp == pytest.approx(20 * math.log10(amplitude), abs=0.01)
    assert m.rms_dbfs == pytest.approx(20 * math.log10(amplitude) - 10 * math.log10(2), abs=0.01)
    assert m.crest_factor_db == pytest.approx(10 * math.log10(2), abs=0.01)
    assert m.plr_db == pytest.approx(m.true_peak_dbtp - m.integrated_lufs, abs=1e-12)
    assert m.stereo_correlation == pytest.approx(1.0)
    assert m.side_to_mid_db == float("-inf")
    assert (m.duration_s, m.sample_rate, m.channels) == (10.0, SR, 2)
    d = m.to_dict()
    assert list(d) == EXPECTED_KEYS
    assert d["side_to_mid_db"] is None
    assert d["integrated_lufs"] == m.integrated_lufs  # full precision kept
    json.dumps(d, allow_nan=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.integrated_lufs = 0.0  # type: ignore[misc]


def test_measure_silence_gives_none_and_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = measure(np.zeros((2, 5 * SR), dtype=np.float32), SR)
        d = m.to_dict()
        assert integrated_lufs(np.zeros((1, SR)), SR) == float("-inf")
        assert np.all(np.isneginf(momentary_lufs(np.zeros((2, SR)), SR)))
    for key in ["integrated_lufs", "short_term_max_lufs", "momentary_max_lufs", "sample_peak_dbfs",
                "true_peak_dbtp", "plr_db", "crest_factor_db", "rms_dbfs", "side_to_mid_db"]:
        assert d[key] is None, key
    assert d["loudness_range_lu"] == 0.0
    assert d["stereo_correlation"] == 0.0
    assert d["duration_s"] == 5.0
    json.dumps(d, allow_nan=False)


def test_measure_clipping_prints_no_warnings():
    audio = np.clip(sine(2.0, 2.0), -1.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = measure(audio, SR)
    assert m.sample_peak_dbfs == pytest.approx(0.0, abs=1e-9)
    assert math.isfinite(m.integrated_lufs)


def test_measure_mono_and_empty():
    mono = sine(0.25, 4.0, channels=1)
    m = measure(mono, SR)
    assert m.channels == 1
    assert m.integrated_lufs == pytest.approx(expected_sine_lufs(0.25, 1, SR), abs=0.1)
    assert m.stereo_correlation == 1.0 and m.side_to_mid_db == float("-inf")
    assert isinstance(m, Metrics)
    empty = measure(np.zeros((2, 0)), SR).to_dict()
    assert empty["duration_s"] == 0.0 and empty["integrated_lufs"] is None


@pytest.mark.parametrize(
    "audio, sr",
    [
        (np.zeros(SR), SR),  # 1-D
        (np.zeros((2, SR), dtype=np.int16), SR),
        (np.full((2, SR), np.nan), SR),
        (np.zeros((6, SR)), SR),  # more than 5 channels
        (np.zeros((2, SR)), 0),
        (np.zeros((2, SR)), 4000),
        (np.zeros((2, SR)), 44100.5),
    ],
)
def test_bad_input_raises_audio_error(audio, sr):
    with pytest.raises(AudioError):
        measure(audio, sr)
    with pytest.raises(AudioError):
        integrated_lufs(audio, sr)


# -- the fast gated meter against pyloudnorm ---------------------------------

def _pyloudnorm(audio, sr):
    import pyloudnorm

    return pyloudnorm.Meter(sr).integrated_loudness(audio.T.astype(np.float64))


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
def test_gated_loudness_matches_pyloudnorm(sr):
    from stemmaster.demo import demo_mix, make_demo_stems
    from stemmaster.meters.loudness import gated_loudness_lufs

    rng = np.random.default_rng(5)
    mix = demo_mix(make_demo_stems(sample_rate=sr, duration_s=12.0)).astype(np.float64)
    quiet_then_loud = np.concatenate([rng.standard_normal((2, 3 * sr)) * 0.01, rng.standard_normal((2, 5 * sr)) * 0.3], axis=1)
    for signal in (mix, quiet_then_loud, mix[:1]):
        assert abs(gated_loudness_lufs(signal, sr) - _pyloudnorm(signal, sr)) <= 0.02


@pytest.mark.corpus
@pytest.mark.parametrize("name, expected", [
    ("seq-3341-1-16bit.wav", -23.0), ("seq-3341-2-16bit.wav", -33.0),
    ("1770-2_Comp_AbsGateTest.wav", -69.5), ("1770-2_Comp_RelGateTest.wav", -10.0),
])
def test_gated_loudness_conformance(name, expected):
    import soundfile as sf

    from stemmaster.meters.loudness import gated_loudness_lufs
    from tests.helpers import corpus_path

    data, sr = sf.read(corpus_path("loudness", name), always_2d=True)
    assert abs(gated_loudness_lufs(data.T, sr) - expected) <= 0.1


def test_gated_loudness_of_silence_is_minus_inf():
    from stemmaster.meters.loudness import gated_loudness_lufs

    assert gated_loudness_lufs(np.zeros((2, 48000)), 48000) == float("-inf")
    assert gated_loudness_lufs(np.zeros((2, 100)), 48000) == float("-inf")


def test_k_weight_once_then_gain_reads_like_measuring_the_limited_signal():
    # the master's loudness search relies on K(x) * g ~ K(x * g) for a limiter's gain curve
    from stemmaster.demo import demo_mix, make_demo_stems
    from stemmaster.dsp.limiter import TruePeakLimiter
    from stemmaster.meters.loudness import gated_loudness_lufs, gated_loudness_of_energy, k_weighted_energy

    sr = 44100
    x = demo_mix(make_demo_stems(sample_rate=sr, duration_s=12.0)).astype(np.float64)
    e = k_weighted_energy(x, sr)
    assert e.dtype == np.float32 and e.shape == (x.shape[1],)
    # the per-sample energy is the K-weighted signal squared and summed over the channels
    kx = k_weighted(x, sr)
    assert np.allclose(e, (kx ** 2).sum(axis=0), rtol=1e-6, atol=1e-12)
    assert gated_loudness_of_energy(e, sr) == pytest.approx(gated_loudness_lufs(x, sr), abs=1e-5)
    assert gated_loudness_of_energy(e, sr, 0.5) == pytest.approx(gated_loudness_lufs(x * 0.5, sr), abs=1e-5)
    for drive_db in (6.0, 12.0, 18.0):
        d = 10 ** (drive_db / 20)
        g = TruePeakLimiter(ceiling_dbtp=-1.0).gain(x * d, sr)
        assert g.min() < 10 ** (-3 / 20)  # it really limits
        exact = gated_loudness_lufs(x * d * g, sr)
        assert abs(gated_loudness_of_energy(e, sr, d * g) - exact) < 0.02


def test_true_peak_blocks_read_exactly_what_the_whole_signal_reads(monkeypatch):
    # the envelope is computed a block at a time (each with its filter's reach of neighbours):
    # block edges must not change a single value
    import stemmaster.meters.truepeak as tp
    from stemmaster.dsp.limiter import DETECTOR

    x = np.random.default_rng(0).standard_normal((2, 10007)).astype(np.float32)
    whole = {spec: tp._channel_peaks(x, spec) for spec in (tp.METER_INTERPOLATOR, DETECTOR)}
    for span in (997, 1000, 4096):
        monkeypatch.setattr(tp, "_SPAN", span)
        for spec, expected in whole.items():
            assert np.array_equal(tp._channel_peaks(x, spec), expected)
