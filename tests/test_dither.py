"""quantize: the PCM grid, TPDF error statistics, low-level signals, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import welch

from stemmaster.dsp.dither import lsb, quantize
from stemmaster.errors import AudioError, SettingsError


def _program(n: int, seed: int = 0) -> np.ndarray:
    """Noise-like programme at a moderate level, stereo."""
    return 0.2 * np.random.default_rng(seed).standard_normal((2, n))


@pytest.mark.parametrize("bits", (16, 24))
@pytest.mark.parametrize("dither", ("tpdf", "none"))
def test_values_are_on_the_pcm_grid(bits, dither):
    x = _program(100_000)
    q = quantize(x, bits, dither=dither)
    assert q.dtype == np.float32 and q.shape == x.shape
    k = q.astype(np.float64) * 2.0 ** (bits - 1)
    assert np.array_equal(k, np.round(k))
    assert k.min() >= -(2 ** (bits - 1)) and k.max() <= 2 ** (bits - 1) - 1


def test_full_scale_is_clipped_to_the_pcm_range():
    x = np.array([[1.0, 1.5, -1.0, -2.0, 1.0 - 1e-9, 0.0]])
    for dither in ("tpdf", "none"):
        q = quantize(x, 16, dither=dither)
        assert q.max() <= 1.0 - lsb(16) and q.min() >= -1.0
        assert q[0, 1] == np.float32(1.0 - lsb(16)) and q[0, 3] == -1.0


@pytest.mark.parametrize("bits", (16, 24))
def test_tpdf_error_is_zero_mean_with_variance_a_quarter_lsb_squared(bits):
    x = _program(500_000)
    q = quantize(x, bits)
    e = (q.astype(np.float64) - x) / lsb(bits)  # in LSB
    assert abs(e.mean()) < 0.005
    assert abs(e.var() / 0.25 - 1.0) < 0.10
    assert abs(e.var() / 0.25 - 1.0) < 0.02  # in fact much closer
    assert np.abs(e).max() <= 1.5  # ±1 LSB of dither plus ±0.5 of rounding


def test_tpdf_error_is_white():
    x = _program(1 << 20)[0]
    e = quantize(x[None], 16)[0].astype(np.float64) - x
    f, p = welch(e, fs=48000, nperseg=4096)
    bands = np.array_split(p[1:-1], 16)
    levels = 10 * np.log10([b.mean() for b in bands])
    assert np.ptp(levels) < 1.0  # flat within a dB across 16 bands from 0 to 24 kHz


def _component_db(y: np.ndarray, freq: float, sample_rate: int) -> float:
    """Peak amplitude in dBFS of the ``freq`` component (least-squares sine/cosine fit)."""
    t = np.arange(y.shape[-1]) / sample_rate
    c = 2 * np.mean(y * np.cos(2 * np.pi * freq * t))
    s = 2 * np.mean(y * np.sin(2 * np.pi * freq * t))
    return float(20 * np.log10(np.hypot(c, s)))


def test_a_sine_far_under_one_lsb_survives_with_dither_only():
    sample_rate = 48000  # 1 kHz: a whole number of periods, no leakage
    t = np.arange(10 * sample_rate) / sample_rate
    x = (10 ** (-100 / 20) * np.sin(2 * np.pi * 1000.0 * t))[None]  # a third of a 16-bit LSB
    with_dither = quantize(x, 16, dither="tpdf", seed=3)[0].astype(np.float64)
    assert abs(_component_db(with_dither, 1000.0, sample_rate) - -100.0) < 1.0
    without = quantize(x, 16, dither="none")[0]
    assert not np.any(without)  # rounded away entirely


def test_truncation_distortion_without_dither_is_gone_with_it():
    # a sine of a few LSB: plain rounding makes odd harmonics; dither turns them into noise
    sample_rate = 48000
    t = np.arange(4 * sample_rate) / sample_rate
    x = (1.6 * lsb(16) * np.sin(2 * np.pi * 1000.0 * t + 0.3))[None]

    def harmonics_db(dither: str) -> float:
        y = quantize(x, 16, dither=dither, seed=1)[0].astype(np.float64)
        power = sum(10 ** (_component_db(y, h * 1000.0, sample_rate) / 10) for h in (3, 5, 7, 9))
        return float(10 * np.log10(power))

    plain, dithered = harmonics_db("none"), harmonics_db("tpdf")
    assert plain > -105.0  # measured -98.4 dB
    assert dithered < plain - 25.0  # measured -137 dB: only the noise floor in those bins


def test_same_seed_same_output_other_seed_other_output():
    x = _program(10_000)
    a = quantize(x, 16, seed=42)
    assert np.array_equal(a, quantize(x, 16, seed=42))
    assert not np.array_equal(a, quantize(x, 16, seed=43))
    assert np.array_equal(quantize(x, 24, dither="none"), quantize(x, 24, dither="none", seed=9))


def test_input_is_not_mutated_and_shape_kept():
    x = _program(1000).astype(np.float32)
    before = x.copy()
    q = quantize(x, 16)
    assert np.array_equal(x, before) and q.shape == x.shape and q is not x
    assert quantize(np.zeros((2, 0)), 16).shape == (2, 0)


def test_none_is_plain_rounding():
    x = _program(10_000)
    q = quantize(x, 16, dither="none").astype(np.float64)
    assert np.array_equal(q, np.rint(x * 32768) / 32768)
    assert np.abs(q - x).max() <= lsb(16) / 2


@pytest.mark.parametrize("bits, subtype", [(16, "PCM_16"), (24, "PCM_24")])
def test_soundfile_writes_exactly_these_values(tmp_path, bits, subtype):
    x = _program(20_000)
    x[0, :4] = [1.0, -1.0, 0.99999, -0.99999]
    q = quantize(x, bits)
    path = tmp_path / "q.wav"
    sf.write(path, q.T, 48000, subtype=subtype)
    back, _ = sf.read(path, dtype="int32", always_2d=True)
    k = back.T.astype(np.int64) >> (32 - bits)
    assert np.array_equal(k, (q.astype(np.float64) * 2 ** (bits - 1)).astype(np.int64))


@pytest.mark.parametrize("bits", (0, 1, 25, 32, 16.0, True))
def test_bad_bit_depth_is_refused(bits):
    with pytest.raises(SettingsError, match="bit_depth"):
        quantize(np.zeros((1, 4)), bits)


def test_bad_dither_and_non_finite_audio_are_refused():
    with pytest.raises(SettingsError, match="dither"):
        quantize(np.zeros((1, 4)), 16, dither="shaped")
    with pytest.raises(AudioError):
        quantize(np.array([[0.0, np.nan]]), 16)


@pytest.mark.parametrize("dither", ["tpdf", "none"])
def test_quantize_measured_reports_the_largest_change(dither):
    from stemmaster.dsp.dither import quantize_measured

    x = np.random.default_rng(5).uniform(-1.2, 1.2, (2, 50000))  # some samples clip
    q, error = quantize_measured(x, 16, dither=dither, seed=3)
    assert np.array_equal(q, quantize(x, 16, dither=dither, seed=3))
    assert error == pytest.approx(float(np.max(np.abs(q - x))), rel=0, abs=1e-12)
    q, error = quantize_measured(x * 0.5, 24, dither=dither, seed=3)
    assert 0 < error <= 2.0 ** -23 * (1.5 if dither == "tpdf" else 0.5) + 1e-12
