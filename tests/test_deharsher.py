"""DeHarsher: a resonance is cut by the full depth and nothing else moves; contract; reconstruction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from stemmaster.demo import DEMO_FLAWS, make_demo_stems
from stemmaster.dsp.deharsher import (
    DeHarsher,
    frame_count,
    frame_length,
    overlap_add,
    pad_for_stft,
    stft_frames,
)
from stemmaster.errors import SettingsError
from stemmaster.meters.loudness import integrated_lufs

RATES = (44100, 48000, 96000)
RES_HZ = 3000.0


# ---------------------------------------------------------------- signals and measures


def _pink(n: int, seed: int, channels: int = 2) -> np.ndarray:
    """Pink noise (1/f power, shaped in the frequency domain), about -26 dBFS RMS."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal((channels, n)), axis=-1)
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    x = np.fft.irfft(spec / np.sqrt(f), n, axis=-1)
    return 0.05 * x / np.sqrt(np.mean(x * x))


def _peaking(x: np.ndarray, sample_rate: int, f0: float = RES_HZ, gain_db: float = 12.0, q: float = 8.0) -> np.ndarray:
    """RBJ-cookbook peaking EQ (the demo vocal's resonance is +12 dB, Q 8, at 3 kHz)."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * f0 / sample_rate
    alpha = math.sin(w0) / (2.0 * q)
    b = [1.0 + alpha * amp, -2.0 * math.cos(w0), 1.0 - alpha * amp]
    a = [1.0 + alpha / amp, -2.0 * math.cos(w0), 1.0 - alpha / amp]
    return signal.lfilter(b, a, x, axis=-1)


def _spectrum(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Long-term power spectrum (Welch, 8192-point Hann), mean over channels."""
    f, p = signal.welch(np.asarray(x, dtype=np.float64), sample_rate, nperseg=8192, axis=-1)
    return f, p.mean(axis=0)


def _band(f: np.ndarray, p: np.ndarray, lo: float, hi: float) -> float:
    return float(p[(f >= lo) & (f < hi)].sum())


def _db(ratio: float) -> float:
    return 10.0 * math.log10(ratio)


def _peak_over_flanks_db(x: np.ndarray, sample_rate: int, fc: float = RES_HZ) -> float:
    """Mean power within 1/12 octave of ``fc`` over that of the flanks (1/6-octave bands
    centred half an octave below and above, geometric mean), in dB."""
    f, p = _spectrum(x, sample_rate)

    def mean_in(lo: float, hi: float) -> float:
        m = (f >= lo) & (f < hi)
        return float(p[m].mean())

    peak = mean_in(fc * 2 ** (-1 / 12), fc * 2 ** (1 / 12))
    below = mean_in(fc * 2 ** (-7 / 12), fc * 2 ** (-5 / 12))
    above = mean_in(fc * 2 ** (5 / 12), fc * 2 ** (7 / 12))
    return _db(peak / math.sqrt(below * above))


def _rms_db(x: np.ndarray) -> float:
    return _db(float(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def _error_db(y: np.ndarray, x: np.ndarray) -> float:
    """Relative error of ``y`` against ``x`` in dB (``-inf`` when identical)."""
    err = float(np.sum((np.asarray(y, np.float64) - x) ** 2))
    return -math.inf if err == 0.0 else _db(err / float(np.sum(np.asarray(x, np.float64) ** 2)))


def _harmonic_tone(f0: float, sample_rate: int, seconds: float) -> np.ndarray:
    """A plain harmonic tone (partials 1/k up to 18 kHz), no resonance, stereo."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, int(min(18000.0, 0.45 * sample_rate) / f0) + 1))
    return 0.1 * np.vstack([x, x])


@pytest.fixture(scope="module")
def demo_vocal() -> np.ndarray:
    return make_demo_stems(duration_s=12)["vocals"]


# ---------------------------------------------------------------- the resonance


@pytest.mark.parametrize("sample_rate", RATES)
def test_resonance_is_cut_and_the_rest_is_left_alone(sample_rate):
    floor = _pink(sample_rate * 8, seed=sample_rate)
    x = _peaking(floor, sample_rate)  # +12 dB, Q 8 at 3 kHz over a pink floor
    dh = DeHarsher()
    y = dh.process(x, sample_rate)
    f, p_floor = _spectrum(floor, sample_rate)
    _, p_in = _spectrum(x, sample_rate)
    _, p_out = _spectrum(y, sample_rate)
    lo, hi = RES_HZ * 2 ** (-1 / 12), RES_HZ * 2 ** (1 / 12)
    # the resonance: the energy standing above the pink floor within 1/12 octave of 3 kHz
    res_in = _band(f, p_in, lo, hi) - _band(f, p_floor, lo, hi)
    res_out = _band(f, p_out, lo, hi) - _band(f, p_floor, lo, hi)
    assert res_in > 0.0
    assert res_out <= 0.0 or _db(res_in / res_out) >= 6.0
    # at its centre the cut reaches the full depth (6 dB), and no more
    centre = (RES_HZ * 2 ** (-1 / 48), RES_HZ * 2 ** (1 / 48))
    cut = _db(_band(f, p_in, *centre) / _band(f, p_out, *centre))
    assert dh.depth_db - 0.2 <= cut <= dh.depth_db + 0.05
    # outside +-1/3 octave of 3 kHz: the broadband level moves less than 1 dB ...
    outside = (f > 20.0) & ((f < RES_HZ * 2 ** (-1 / 3)) | (f > RES_HZ * 2 ** (1 / 3)))
    assert abs(_db(p_out[outside].sum() / p_in[outside].sum())) < 1.0
    assert abs(_db(p_out[outside].sum() / p_in[outside].sum())) < 0.05  # in fact it barely moves
    # ... and so does every third-octave band out there (100 Hz up)
    for k in range(-10, 14):
        c = 1000.0 * 2 ** (k / 3)
        b_lo, b_hi = c * 2 ** (-1 / 6), c * 2 ** (1 / 6)
        if b_hi > 0.45 * sample_rate or (b_hi > RES_HZ * 2 ** (-1 / 3) and b_lo < RES_HZ * 2 ** (1 / 3)):
            continue
        assert abs(_db(_band(f, p_out, b_lo, b_hi) / _band(f, p_in, b_lo, b_hi))) < 0.5, c


def test_depth_zero_returns_the_input():
    sr = 44100
    x = _peaking(_pink(sr * 4, seed=3), sr)
    y = DeHarsher(depth_db=0.0).process(x, sr)
    assert _error_db(y, x) <= -90.0
    assert np.array_equal(y, x)  # in fact bit for bit: depth 0 is off


def test_unity_gain_leaves_the_input_bit_for_bit():
    # only the change is synthesised: where no bin is cut the output is the input
    sr = 48000
    t = np.arange(sr * 2) / sr
    low = 0.3 * np.sin(2 * np.pi * 200 * t) + 0.2 * np.sin(2 * np.pi * 450 * t)  # below the band
    x = np.vstack([low, 0.5 * low])
    y = DeHarsher().process(x, sr)
    assert np.array_equal(y, x)
    pink = _pink(sr * 2, seed=5)
    y = DeHarsher(threshold_db=24.0).process(pink, sr)  # nothing stands 24 dB above its envelope
    assert _error_db(y, pink) <= -90.0


@pytest.mark.parametrize("sample_rate", RATES)
@pytest.mark.parametrize("n", (1, 100, 1023, 2048, 2049, 12345))
def test_stft_analysis_then_synthesis_reconstructs_the_edges_too(sample_rate, n):
    rng = np.random.default_rng(n)
    x = rng.uniform(-1.0, 1.0, (2, n))
    x[:, 0] = x[:, -1] = 0.9  # the first and last samples are loud
    n_fft = frame_length(sample_rate)
    padded = pad_for_stft(x, n_fft)
    n_frames = frame_count(padded.shape[1], n_fft)
    out = np.zeros(padded.shape)
    spec = stft_frames(padded, n_fft, 0, n_frames)
    overlap_add(out, spec, np.arange(n_frames), n_fft)
    y = out[:, n_fft:n_fft + n]
    assert _error_db(y, x) <= -90.0
    assert np.max(np.abs(y[:, [0, -1]] - x[:, [0, -1]])) < 1e-5
    # and in blocks, as the processor does it
    out[:] = 0.0
    for f0 in range(0, n_frames, 3):
        stop = min(n_frames, f0 + 3)
        overlap_add(out, stft_frames(padded, n_fft, f0, stop), np.arange(f0, stop), n_fft)
    assert _error_db(out[:, n_fft:n_fft + n], x) <= -90.0


def test_frame_length_is_about_46_ms():
    assert frame_length(44100) == 2048 and frame_length(48000) == 2048
    assert frame_length(96000) == 4096 and frame_length(22050) == 1024
    assert frame_length(100) == 64


# ---------------------------------------------------------------- the demo vocal


def test_demo_vocal_resonance_is_tamed(demo_vocal):
    sr = 44100
    assert DEMO_FLAWS["vocals"]["resonance_hz"] == RES_HZ
    y = DeHarsher().process(demo_vocal, sr)
    before = _peak_over_flanks_db(demo_vocal, sr)
    after = _peak_over_flanks_db(y, sr)
    assert before > 8.0  # the planted flaw is there to fix
    assert before - after >= 4.0
    assert abs(integrated_lufs(y, sr) - integrated_lufs(demo_vocal, sr)) < 1.5
    assert abs(integrated_lufs(y, sr) - integrated_lufs(demo_vocal, sr)) < 1.0  # in fact about 0.5 LU


def test_report_shows_the_cut_at_the_resonance(demo_vocal):
    sr = 44100
    dh = DeHarsher()
    freqs, red = dh.mean_reduction_db_by_frequency(demo_vocal, sr)
    assert freqs.shape == red.shape == (frame_length(sr) // 2 + 1,)
    assert freqs[0] == 0.0 and freqs[-1] == sr / 2
    assert np.all(red >= 0.0) and np.all(red <= dh.depth_db + 1e-9)
    near = (freqs > RES_HZ * 2 ** (-1 / 12)) & (freqs < RES_HZ * 2 ** (1 / 12))
    assert red[near].max() > 4.0
    assert red[freqs < 1000.0 * 2 ** (-1 / 3) - 100.0].max() == 0.0  # nothing below the band's fade
    assert red[freqs > 10000.0 * 2 ** (1 / 3) + 100.0].max() == 0.0  # nor above it
    # depth 0 and silence report no cut
    assert not np.any(DeHarsher(depth_db=0.0).mean_reduction_db_by_frequency(demo_vocal, sr)[1])
    assert not np.any(dh.mean_reduction_db_by_frequency(np.zeros((2, sr)), sr)[1])
    # the report agrees with what the processor does to the long-term spectrum at 3 kHz
    x = _peaking(_pink(sr * 6, seed=11), sr)
    f, p_in = _spectrum(x, sr)
    _, p_out = _spectrum(dh.process(x, sr), sr)
    freqs, red = dh.mean_reduction_db_by_frequency(x, sr)
    measured = _db(_band(f, p_in, 2950.0, 3050.0) / _band(f, p_out, 2950.0, 3050.0))
    reported = float(np.interp(RES_HZ, freqs, red))
    assert abs(measured - reported) < 0.5


# ---------------------------------------------------------------- smooth signals pass


@pytest.mark.parametrize("sample_rate", (44100, 96000))
def test_pink_noise_alone_passes(sample_rate):
    x = _pink(sample_rate * 6, seed=21)
    y = DeHarsher().process(x, sample_rate)
    assert abs(_rms_db(y) - _rms_db(x)) < 0.5
    f, p_in = _spectrum(x, sample_rate)
    _, p_out = _spectrum(y, sample_rate)
    assert abs(_db(_band(f, p_out, 1000.0, 10000.0) / _band(f, p_in, 1000.0, 10000.0))) < 0.1  # in band too


@pytest.mark.parametrize("f0", (110.0, 220.0, 440.0, 1000.0, 2000.0))
def test_plain_harmonic_tone_passes(f0):
    # the upper envelope runs from partial to partial whatever the pitch
    sr = 44100
    x = _harmonic_tone(f0, sr, 3.0)
    y = DeHarsher().process(x, sr)
    assert abs(_rms_db(y) - _rms_db(x)) < 0.5
    f, p_in = _spectrum(x, sr)
    _, p_out = _spectrum(y, sr)
    assert abs(_db(_band(f, p_out, 1000.0, 10000.0) / _band(f, p_in, 1000.0, 10000.0))) < 0.5


def test_spectral_cliff_is_not_a_peak():
    # pink noise low-passed steeply at 6 kHz: the top of the cliff stands above the
    # mean of its flanks but not above its higher flank, so it is not cut
    sr = 44100
    x = signal.sosfilt(signal.butter(12, 6000.0, fs=sr, output="sos"), _pink(sr * 4, seed=8), axis=-1)
    freqs, red = DeHarsher().mean_reduction_db_by_frequency(x, sr)
    assert red.max() < 1.0


# ---------------------------------------------------------------- behaviour


def test_reduction_is_dynamic():
    # the resonance sounds for the first 3 s only; after the release the audio is untouched
    sr = 44100
    floor = _pink(sr * 6, seed=4)
    x = floor.copy()
    x[:, : 3 * sr] = _peaking(floor[:, : 3 * sr], sr)
    y = DeHarsher().process(x, sr)
    f, p_in = _spectrum(x[:, : 3 * sr], sr)
    _, p_out = _spectrum(y[:, : 3 * sr], sr)
    assert _db(_band(f, p_in, 2950.0, 3050.0) / _band(f, p_out, 2950.0, 3050.0)) > 5.0
    late = slice(int(3.5 * sr), None)  # 0.5 s = 5 release time constants later
    f, p_in = _spectrum(x[:, late], sr)
    _, p_out = _spectrum(y[:, late], sr)
    assert abs(_db(_band(f, p_out, 2500.0, 3500.0) / _band(f, p_in, 2500.0, 3500.0))) < 0.3


def test_channels_share_one_gain():
    sr = 48000
    left = _peaking(_pink(sr * 3, seed=6, channels=1), sr)[0]
    x = np.vstack([left, 0.5 * left])
    y = DeHarsher().process(x, sr)
    np.testing.assert_allclose(y[1], 0.5 * y[0], rtol=0, atol=1e-6)
    assert _error_db(y, x) > -30.0  # something was cut


def test_side_only_resonance_is_cut_too():
    # the detector is the channels' mean power, not the mid, so out-of-phase content counts
    sr = 44100
    side = _peaking(_pink(sr * 4, seed=9, channels=1), sr)[0]
    x = np.vstack([side, -side])
    y = DeHarsher().process(x, sr)
    f, p_in = _spectrum(x, sr)
    _, p_out = _spectrum(y, sr)
    assert _db(_band(f, p_in, 2950.0, 3050.0) / _band(f, p_out, 2950.0, 3050.0)) > 5.0
    np.testing.assert_allclose(y[1], -y[0], rtol=0, atol=1e-9)


def test_resonance_outside_the_band_is_left_alone():
    sr = 44100
    x = _peaking(_pink(sr * 4, seed=12), sr, f0=500.0)  # under the band's fade (794 Hz)
    freqs, red = DeHarsher().mean_reduction_db_by_frequency(x, sr)
    assert red[freqs < 1000.0 * 2 ** (-1 / 3) - 100.0].max() == 0.0
    f, p_in = _spectrum(x, sr)
    _, p_out = _spectrum(DeHarsher().process(x, sr), sr)
    assert abs(_db(_band(f, p_out, 400.0, 600.0) / _band(f, p_in, 400.0, 600.0))) < 0.01
    x = _peaking(_pink(sr * 4, seed=13), sr)  # 3 kHz, with the band moved to 6-12 kHz
    freqs, red = DeHarsher(low_hz=6000.0, high_hz=12000.0).mean_reduction_db_by_frequency(x, sr)
    assert red[freqs < 6000.0 * 2 ** (-1 / 3) - 100.0].max() == 0.0


def test_sharper_means_narrower():
    sr = 44100
    x = _peaking(_pink(sr * 5, seed=14), sr)
    spans = []
    for sharpness in (0.0, 0.5, 1.0):
        freqs, red = DeHarsher(sharpness=sharpness).mean_reduction_db_by_frequency(x, sr)
        cut = freqs[red > 1.0]
        spans.append(math.log2(cut.max() / cut.min()))
        assert red[np.argmin(np.abs(freqs - RES_HZ))] > 5.0  # a Q 8 resonance is cut at any sharpness
    assert spans[0] > spans[1] > spans[2]
    # a broad bump (Q 2) counts as a resonance only at low sharpness
    broad = _peaking(_pink(sr * 5, seed=15), sr, q=2.0)
    at_3k = [float(np.interp(RES_HZ, *DeHarsher(sharpness=s).mean_reduction_db_by_frequency(broad, sr)))
             for s in (0.0, 1.0)]
    assert at_3k[0] > 3.0 > 1.0 > at_3k[1]


def test_deeper_setting_cuts_more():
    sr = 44100
    x = _peaking(_pink(sr * 4, seed=16), sr)
    f, p_in = _spectrum(x, sr)
    cuts = []
    for depth in (3.0, 6.0, 9.0):
        _, p_out = _spectrum(DeHarsher(depth_db=depth).process(x, sr), sr)
        cuts.append(_db(_band(f, p_in, 2980.0, 3020.0) / _band(f, p_out, 2980.0, 3020.0)))
        assert cuts[-1] <= depth + 0.05
    assert cuts[0] < cuts[1] < cuts[2] and cuts[0] > 2.5


# ---------------------------------------------------------------- contract


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_shape_dtype_and_purity(dtype):
    sr = 44100
    x = _peaking(_pink(sr * 2, seed=17), sr).astype(dtype)
    keep = x.copy()
    y = DeHarsher().process(x, sr)
    assert y.shape == x.shape and y.dtype == dtype
    assert np.array_equal(x, keep)
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("sample_rate", RATES)
def test_silence_dc_full_scale_and_mono(sample_rate):
    dh = DeHarsher()
    assert not np.any(dh.process(np.zeros((2, sample_rate)), sample_rate))
    dc = np.full((2, sample_rate), 0.5)
    y = dh.process(dc, sample_rate)
    assert np.all(np.isfinite(y)) and np.max(np.abs(y - dc)) < 1e-3
    full = np.sign(_peaking(_pink(sample_rate, seed=18), sample_rate))  # +-1 square-ish, harsh
    assert np.all(np.isfinite(dh.process(full, sample_rate)))
    mono = _peaking(_pink(sample_rate * 2, seed=19, channels=1), sample_rate)
    y = dh.process(mono, sample_rate)
    assert y.shape == mono.shape
    f, p_in = _spectrum(mono, sample_rate)
    _, p_out = _spectrum(y, sample_rate)
    assert _db(_band(f, p_in, 2950.0, 3050.0) / _band(f, p_out, 2950.0, 3050.0)) > 5.0


def test_no_delay():
    sr = 48000
    x = _peaking(_pink(sr * 2, seed=20), sr)
    y = DeHarsher().process(x, sr)
    c = signal.correlate(y[0], x[0], mode="full", method="fft")
    assert int(np.argmax(np.abs(c))) - (x.shape[1] - 1) == 0


@pytest.mark.parametrize("n", (1, 2, 100, 2047, 2048, 4097))
def test_length_is_kept_even_under_one_frame(n):
    sr = 44100
    x = np.random.default_rng(n).uniform(-0.5, 0.5, (2, n))
    y = DeHarsher().process(x, sr)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    assert DeHarsher().process(np.zeros((2, 0)), sr).shape == (2, 0)


def test_band_above_nyquist_is_a_no_op():
    x = _pink(8000, seed=22)
    assert np.array_equal(DeHarsher(low_hz=6000.0, high_hz=9000.0).process(x, 8000), x)


def test_settings_round_trip():
    dh = DeHarsher(depth_db=4.0, threshold_db=2.0, sharpness=0.8, low_hz=1500.0, high_hz=9000.0,
                   attack_ms=5.0, release_ms=250.0)
    assert DeHarsher.kind == "deharsher"
    assert DeHarsher.from_settings(dh.settings()) == dh
    assert DeHarsher.from_settings(DeHarsher().settings()) == DeHarsher()
    assert DeHarsher().settings() == {"depth_db": 6.0, "threshold_db": 3.0, "sharpness": 0.5, "low_hz": 1000.0,
                                      "high_hz": 10000.0, "attack_ms": 10.0, "release_ms": 100.0}


@pytest.mark.parametrize("field, value", [
    ("depth_db", -1.0), ("depth_db", 30.0), ("depth_db", float("nan")), ("threshold_db", -0.5),
    ("threshold_db", 40.0), ("sharpness", -0.1), ("sharpness", 1.5), ("low_hz", 5.0), ("high_hz", 30000.0),
    ("attack_ms", 0.0), ("release_ms", 0.0), ("release_ms", 1e5), ("depth_db", "6"), ("sharpness", True),
])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(SettingsError, match=field):
        DeHarsher(**{field: value})


def test_band_must_be_ordered_and_settings_known():
    with pytest.raises(SettingsError, match="high_hz"):
        DeHarsher(low_hz=5000.0, high_hz=4000.0)
    with pytest.raises(SettingsError, match="ratio"):
        DeHarsher.from_settings({"ratio": 2.0})
