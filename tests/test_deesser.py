"""DeEsser: split-band reduction of sibilant bursts, frequency search, level independence, contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from stemmaster.demo import demo_timeline, make_demo_stems
from stemmaster.dsp.deesser import FALLBACK_HZ, DeEsser, band_sos, find_sibilance_hz
from stemmaster.errors import SettingsError

RATES = (44100, 48000, 96000)
BURST_BAND_HZ = (4500.0, 9000.0)  # where the drop is measured
FRAME_S = 0.01


def _voiced_with_bursts(sample_rate: int, seconds: float = 3.0, *, burst_band_hz=(5000.0, 7200.0),
                        burst_db: float = -3.0, seed: int = 1) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A sustained voiced tone (f0 200 Hz, harmonics to 4 kHz with 1/k and two formant bumps,
    -20 dBFS RMS) with 100 ms band-passed noise bursts (5-7.2 kHz, centred on 6 kHz, each
    ``burst_db`` under the voice's broadband RMS, far louder than the voice in their band),
    three a second. Stereo (right = 0.9 x left). Returns the audio and the bursts' sample spans."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    voice = np.zeros(n)
    for k in range(1, 21):
        f = 200.0 * k
        formants = 1.0 + 2.0 / (1.0 + ((f - 700.0) / 150.0) ** 2) + 1.0 / (1.0 + ((f - 1200.0) / 200.0) ** 2)
        voice += formants / k * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    voice *= 0.1 / np.sqrt(np.mean(voice ** 2))
    sos = signal.butter(4, burst_band_hz, btype="bandpass", fs=sample_rate, output="sos")
    noise = signal.sosfiltfilt(sos, rng.standard_normal(n))
    noise *= 0.1 * 10 ** (burst_db / 20) / np.sqrt(np.mean(noise ** 2))
    env = np.zeros(n)
    fade = int(0.01 * sample_rate)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    bursts = []
    for start_s in np.arange(0.3, seconds - 0.3, 1.0 / 3.0):
        a, b = int(start_s * sample_rate), int((start_s + 0.1) * sample_rate)
        e = np.ones(b - a)
        e[:fade], e[-fade:] = ramp, ramp[::-1]
        env[a:b] = e
        bursts.append((a, b))
    x = voice + noise * env
    return np.vstack([x, 0.9 * x]), bursts


def _band(x: np.ndarray, sample_rate: int, lo: float, hi: float) -> np.ndarray:
    sos = signal.butter(8, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
    return signal.sosfiltfilt(sos, np.asarray(x, np.float64), axis=-1)


def _frame_energy_db(x: np.ndarray, frame: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    nf = x.shape[1] // frame
    e = (x[:, :nf * frame].reshape(x.shape[0], nf, frame) ** 2).mean(axis=(0, 2))
    return 10 * np.log10(e + 1e-30)


def _energy_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-30))


def _octaves(a: float, b: float) -> float:
    return abs(math.log2(a / b))


# ---------------------------------------------------------------- the criterion


@pytest.mark.parametrize("sample_rate", RATES)
def test_bursts_drop_6_db_while_the_voice_between_them_moves_under_half_a_db(sample_rate):
    x, bursts = _voiced_with_bursts(sample_rate)
    y = DeEsser().process(x, sample_rate)
    frame = int(FRAME_S * sample_rate)
    bx, by = _band(x, sample_rate, *BURST_BAND_HZ), _band(y, sample_rate, *BURST_BAND_HZ)
    drops = [_energy_db(by[:, a:b]) - _energy_db(bx[:, a:b]) for a, b in bursts]
    assert max(drops) <= -6.0, drops
    assert max(drops) <= -10.0  # in fact close to the 12 dB maximum (-11.6 to -11.7 dB)
    # frames between the bursts (two frames clear of each), broadband
    near = np.zeros(x.shape[1] // frame, bool)
    for a, b in bursts:
        near[max(0, a // frame - 2):b // frame + 3] = True
    change = _frame_energy_db(y, frame) - _frame_energy_db(x, frame)
    assert np.abs(change[~near]).max() < 0.5
    assert np.abs(change[~near]).max() < 0.02  # in fact
    # split-band, not a wideband ducker: the voice under the bursts (80 Hz - 3 kHz) is untouched
    lx, ly = _band(x, sample_rate, 80.0, 3000.0), _band(y, sample_rate, 80.0, 3000.0)
    assert max(abs(_energy_db(ly[:, a:b]) - _energy_db(lx[:, a:b])) for a, b in bursts) < 0.1


@pytest.mark.parametrize("sample_rate", RATES)
def test_finds_the_bursts_frequency(sample_rate):
    x, _ = _voiced_with_bursts(sample_rate)
    found = DeEsser().detect_frequency_hz(x, sample_rate)
    assert _octaves(found, 6000.0) <= 1.0 / 3.0
    assert _octaves(found, 6000.0) <= 1.0 / 12.0  # in fact (6046-6064 Hz)


def test_finds_other_frequencies_too():
    sr = 48000
    for lo, hi, centre in ((3800.0, 5200.0, 4450.0), (7000.0, 9800.0, 8280.0)):
        x, _ = _voiced_with_bursts(sr, burst_band_hz=(lo, hi))
        found = find_sibilance_hz(x, sr)
        assert found is not None and _octaves(found, centre) <= 1.0 / 6.0, (centre, found)


# ---------------------------------------------------------------- the demo vocal


@pytest.fixture(scope="module")
def demo_vocal():
    return make_demo_stems(duration_s=12.0)["vocals"], 44100, demo_timeline(12.0)


def test_demo_vocal_frequency_is_found(demo_vocal):
    vocal, sr, _ = demo_vocal
    found = DeEsser().detect_frequency_hz(vocal, sr)
    assert _octaves(found, 6500.0) <= 1.0 / 3.0
    assert _octaves(found, 6500.0) <= 1.0 / 12.0  # in fact (6459 Hz)


def test_demo_vocal_sibilants_drop_and_voiced_frames_stay(demo_vocal):
    vocal, sr, timeline = demo_vocal
    out = DeEsser().process(vocal, sr)
    assert out.dtype == np.float32 and out.shape == vocal.shape
    bx, by = _band(vocal, sr, *BURST_BAND_HZ), _band(out, sr, *BURST_BAND_HZ)
    drops = []
    for s0, s1 in timeline.sibilants:
        a, b = int(s0 * sr), int(s1 * sr)
        drops.append(_energy_db(by[:, a:b]) - _energy_db(bx[:, a:b]))
    assert len(drops) >= 4
    assert max(drops) <= -6.0, drops  # measured -8.4 to -9.5 dB
    frame = int(FRAME_S * sr)
    change = _frame_energy_db(out, frame) - _frame_energy_db(vocal, frame)
    voiced = np.zeros(change.shape[0], bool)
    settled = np.zeros(change.shape[0], bool)
    for t0, t1, _, _ in timeline.vocal_notes:
        voiced[int(math.ceil(t0 / FRAME_S)):int(t1 / FRAME_S)] = True
        settled[int(math.ceil(t0 / FRAME_S)) + 5:int(t1 / FRAME_S)] = True
    assert voiced.sum() > 200
    assert np.abs(change[voiced]).max() < 0.5  # measured 0.24 dB: a note's first frame holds the
    # room's reflections of the sibilant just before it, which are sibilance and are turned down
    assert np.abs(change[settled]).max() < 0.05  # in fact, from 50 ms into each note


# ---------------------------------------------------------------- level, linking, timing


def test_same_signal_12_db_quieter_gets_the_same_reduction():
    sr = 44100
    x, _ = _voiced_with_bursts(sr)
    d = DeEsser()
    loud = d.reduction_db(x, sr)
    quiet = d.reduction_db(x * 10 ** (-12 / 20), sr)
    assert loud.min() < -6.0
    assert np.abs(loud - quiet).max() <= 0.5
    assert np.abs(loud - quiet).max() <= 1e-6  # in fact identical but for rounding
    y_loud, y_quiet = d.process(x, sr), d.process(x * 10 ** (-12 / 20), sr)
    np.testing.assert_allclose(y_quiet * 10 ** (12 / 20), y_loud, rtol=0, atol=1e-9)


def test_one_gain_curve_for_both_channels():
    # bursts only on the left; the right holds steady quiet noise in the band: it is turned
    # down by the same gain while the left's bursts are on
    sr = 48000
    x, bursts = _voiced_with_bursts(sr)
    rng = np.random.default_rng(9)
    right = 0.003 * _band(rng.standard_normal((1, x.shape[1])), sr, 5000.0, 7200.0)[0]
    voice_only, _ = _voiced_with_bursts(sr, burst_db=-200.0)
    x[1] = voice_only[0] + right
    d = DeEsser()
    y = d.process(x, sr)
    red = d.reduction_db(x, sr)
    bx, by = _band(x, sr, *BURST_BAND_HZ), _band(y, sr, *BURST_BAND_HZ)
    for a, b in bursts:
        inner = slice(a + int(0.02 * sr), b - int(0.02 * sr))
        left_drop = _energy_db(by[:1, inner]) - _energy_db(bx[:1, inner])
        right_drop = _energy_db(by[1:, inner]) - _energy_db(bx[1:, inner])
        assert red[inner].max() < -11.0
        assert right_drop < -9.0 and abs(right_drop - left_drop) < 1.5


@pytest.mark.parametrize("release_ms", (30.0, 60.0, 150.0))
def test_reduction_holds_through_a_burst_and_recovers_with_the_release(release_ms):
    sr = 44100
    x, bursts = _voiced_with_bursts(sr, seconds=2.0)
    x[:, bursts[0][1] + int(0.01 * sr):] = _voiced_with_bursts(sr, seconds=2.0, burst_db=-200.0)[0][
        :, bursts[0][1] + int(0.01 * sr):]  # keep only the first burst
    red = DeEsser(release_ms=release_ms).reduction_db(x, sr)
    a, b = bursts[0]
    steady = red[a + int(0.015 * sr):b - int(0.015 * sr)]
    assert np.all(steady < -11.0) and np.all(steady >= -12.0 - 1e-9)  # held at the maximum
    assert np.all(red <= 0.0)
    after = b + int(5 * release_ms * 1e-3 * sr)
    assert red[after:].min() > -0.2  # 12 dB * exp(-5) = 0.08 dB, plus the burst's fade-out
    one_tau = b + int(release_ms * 1e-3 * sr)
    assert -12.0 < red[one_tau] < -2.0  # recovering, about 12 / e = 4.4 dB to go
    # starts before the burst (the zero-phase detector) but not long before
    assert red[:a - int(0.01 * sr)].min() > -0.01


# ---------------------------------------------------------------- the split


def test_matches_a_full_length_zero_phase_split():
    # y = x - (1 - g) * band, band = sosfiltfilt of the whole signal: the regional
    # split agrees but for the last run-up before the end of the file (edge handling)
    sr = 44100
    x, _ = _voiced_with_bursts(sr)
    d = DeEsser()
    y = d.process(x, sr)
    g = 10 ** (d.reduction_db(x, sr) / 20)
    band = signal.sosfiltfilt(band_sos(d.detect_frequency_hz(x, sr), d.bandwidth_oct, sr), x, axis=-1)
    expected = x - (1 - g) * band
    body = slice(0, x.shape[1] - int(0.01 * sr))
    assert np.abs(y[:, body] - expected[:, body]).max() < 1e-9


@pytest.mark.parametrize("settings", [{"max_reduction_db": 0.0}, {"threshold_db": 40.0}])
def test_no_reduction_means_the_output_is_the_input(settings):
    sr = 44100
    x, _ = _voiced_with_bursts(sr)
    d = DeEsser(**settings)
    y = d.process(x, sr)
    assert np.array_equal(y, x)
    assert np.all(d.reduction_db(x, sr) == 0.0)


def test_samples_without_reduction_are_untouched():
    sr = 44100
    x, _ = _voiced_with_bursts(sr, seconds=4.0)
    x[:, int(1.3 * sr):] = _voiced_with_bursts(sr, seconds=4.0, burst_db=-200.0)[0][:, int(1.3 * sr):]
    d = DeEsser()
    y = d.process(x, sr)
    red = d.reduction_db(x, sr)
    still = red == 0.0
    assert 0.3 < still.mean() < 0.9
    assert np.array_equal(y[:, still], x[:, still])


def test_a_sine_without_sibilance_passes_within_a_tenth_of_a_db():
    sr = 48000
    t = np.arange(2 * sr) / sr
    s = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    x = np.vstack([s, s])
    y = DeEsser().process(x, sr)
    assert abs(_energy_db(y) - _energy_db(x)) < 0.1
    assert np.abs(y - x).max() <= 10 ** (-90 / 20)  # in fact untouched


def test_steady_band_noise_is_not_ducked():
    # the threshold is relative to the stem's own level in the band: steady hiss stays
    sr = 44100
    rng = np.random.default_rng(3)
    x = 0.1 * _band(rng.standard_normal((2, 3 * sr)), sr, 4000.0, 10000.0)
    y = DeEsser().process(x, sr)
    assert abs(_energy_db(y) - _energy_db(x)) < 0.1


def test_no_delay():
    sr = 44100
    x, _ = _voiced_with_bursts(sr)
    y = DeEsser().process(x, sr)
    for ch in range(2):
        xc = signal.correlate(y[ch], x[ch], mode="full", method="fft")
        assert int(np.argmax(xc)) - (x.shape[1] - 1) == 0
    # and the reduced band itself is not shifted: the removed part lines up with the band
    removed = x - y
    band = _band(x, sr, *BURST_BAND_HZ)
    xc = signal.correlate(removed[0], band[0], mode="full", method="fft")
    assert int(np.argmax(xc)) - (x.shape[1] - 1) == 0


# ---------------------------------------------------------------- the processor contract


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
@pytest.mark.parametrize("sample_rate", RATES)
def test_shape_dtype_length_kept_and_input_not_mutated(dtype, sample_rate):
    x, _ = _voiced_with_bursts(sample_rate, seconds=1.5)
    x = x.astype(dtype)
    before = x.copy()
    d = DeEsser()
    y = d.process(x, sample_rate)
    assert y.shape == x.shape and y.dtype == dtype and y.flags.c_contiguous
    assert np.array_equal(x, before)
    assert not np.array_equal(y, x)
    red = d.reduction_db(x, sample_rate)
    assert red.shape == (x.shape[1],) and red.dtype == np.float64 and np.all(red <= 0.0)
    assert np.array_equal(x, before)


def test_mono_works_and_matches_identical_stereo():
    sr = 44100
    x, bursts = _voiced_with_bursts(sr)
    mono = x[:1].copy()
    d = DeEsser()
    y = d.process(mono, sr)
    assert y.shape == mono.shape
    stereo = d.process(np.vstack([mono, mono]), sr)
    np.testing.assert_array_equal(y[0], stereo[0])
    a, b = bursts[0]
    assert _energy_db(_band(y, sr, *BURST_BAND_HZ)[:, a:b]) - _energy_db(_band(mono, sr, *BURST_BAND_HZ)[:, a:b]) < -6.0


@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_silence_stays_silence(dtype):
    x = np.zeros((2, 44100), dtype=dtype)
    d = DeEsser()
    y = d.process(x, 44100)
    assert y.dtype == dtype and np.all(y == 0.0)
    assert np.all(d.reduction_db(x, 44100) == 0.0)
    assert d.detect_frequency_hz(x, 44100) == FALLBACK_HZ


@pytest.mark.parametrize("name", ["dc", "full_scale_square", "full_scale_noise", "impulse", "tiny"])
def test_extreme_inputs_stay_finite(name):
    sr = 44100
    n = sr
    rng = np.random.default_rng(4)
    x = {
        "dc": np.full((2, n), 0.9),
        "full_scale_square": np.tile(np.sign(np.sin(2 * np.pi * 100.0 * np.arange(n) / sr)), (2, 1)),
        "full_scale_noise": np.clip(rng.standard_normal((2, n)), -1.0, 1.0),
        "impulse": np.eye(1, n, n // 2).repeat(2, axis=0),
        "tiny": 1e-9 * _voiced_with_bursts(sr, seconds=1.0)[0],
    }[name]
    d = DeEsser()
    for dtype in (np.float32, np.float64):
        y = d.process(x.astype(dtype), sr)
        assert np.isfinite(y).all() and np.abs(y).max() <= np.abs(x).max() * 1.5 + 1e-12
        assert np.isfinite(d.reduction_db(x.astype(dtype), sr)).all()


@pytest.mark.parametrize("n", (0, 1, 2, 7, 300))
def test_very_short_inputs(n):
    x = np.random.default_rng(n).standard_normal((2, n)) * 0.1
    d = DeEsser()
    y = d.process(x, 44100)
    assert y.shape == (2, n) and np.isfinite(y).all()
    assert d.reduction_db(x, 44100).shape == (n,)


def test_high_band_becomes_a_high_pass_and_still_works():
    sr = 44100
    x, bursts = _voiced_with_bursts(sr, burst_band_hz=(12000.0, 18000.0))
    d = DeEsser(frequency_hz=16000.0)  # top edge 22.6 kHz: a high-pass at 11.3 kHz
    y = d.process(x, sr)
    bx, by = _band(x, sr, 12000.0, 18000.0), _band(y, sr, 12000.0, 18000.0)
    assert max(_energy_db(by[:, a:b]) - _energy_db(bx[:, a:b]) for a, b in bursts) < -6.0


def test_low_sample_rate_without_room_for_sibilance_passes_through():
    x = np.random.default_rng(2).standard_normal((2, 8000)) * 0.1
    d = DeEsser()
    assert np.array_equal(d.process(x, 8000), x)  # automatic: nothing to look for under 3.6 kHz


def test_frequency_must_be_under_045_of_the_sample_rate():
    x = np.zeros((2, 1000))
    with pytest.raises(SettingsError, match="frequency_hz"):
        DeEsser(frequency_hz=12000.0).process(x, 22050)
    with pytest.raises(SettingsError, match="frequency_hz"):
        DeEsser(frequency_hz=12000.0).reduction_db(x, 22050)


def test_detect_frequency_reports_the_frequency_used():
    sr = 44100
    t = np.arange(sr) / sr
    sine = np.tile(0.5 * np.sin(2 * np.pi * 1000.0 * t), (2, 1))
    assert find_sibilance_hz(sine, sr) is None
    assert DeEsser().detect_frequency_hz(sine, sr) == FALLBACK_HZ
    assert DeEsser(frequency_hz=7200.0).detect_frequency_hz(sine, sr) == 7200.0


def test_settings_round_trip():
    d = DeEsser(frequency_hz=7000.0, bandwidth_oct=0.75, threshold_db=4.0, max_reduction_db=9.0,
                attack_ms=1.0, release_ms=80.0)
    assert DeEsser.kind == "deesser"
    assert DeEsser.from_settings(d.settings()) == d
    assert DeEsser.from_settings(DeEsser().settings()) == DeEsser()
    assert set(DeEsser().settings()) == {"frequency_hz", "bandwidth_oct", "threshold_db", "max_reduction_db",
                                         "attack_ms", "release_ms"}


def test_unknown_setting_is_refused():
    with pytest.raises(SettingsError, match="ratio"):
        DeEsser.from_settings({"ratio": 4.0})


@pytest.mark.parametrize("field, value", [
    ("frequency_hz", -1.0), ("frequency_hz", 1000.0), ("frequency_hz", 20000.0), ("frequency_hz", float("nan")),
    ("bandwidth_oct", 0.0), ("bandwidth_oct", 4.0),
    ("threshold_db", -1.0), ("threshold_db", 50.0),
    ("max_reduction_db", -3.0), ("max_reduction_db", 60.0),
    ("attack_ms", 0.0), ("attack_ms", 100.0),
    ("release_ms", 1.0), ("release_ms", 1e5), ("release_ms", "60"), ("attack_ms", True),
])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(SettingsError, match=field):
        DeEsser(**{field: value})
