"""The demo song: shape, determinism, levels, and the measured size of each planted flaw."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from stemmaster.demo import DEMO_FLAWS, STEM_NAMES, demo_mix, demo_timeline, make_demo_stems
from stemmaster.errors import AudioError, SettingsError
from stemmaster.meters.truepeak import sample_peak_dbfs

DUR = 12.0
SEED = 7


@pytest.fixture(scope="module")
def song44():
    return make_demo_stems(sample_rate=44100, duration_s=DUR, seed=SEED)


@pytest.fixture(scope="module")
def song48():
    return make_demo_stems(sample_rate=48000, duration_s=DUR, seed=SEED)


@pytest.fixture(params=[44100, 48000])
def song(request, song44, song48):
    return request.param, (song44 if request.param == 44100 else song48)


def _db(power_ratio: float) -> float:
    return float(10.0 * np.log10(power_ratio))


# ------------------------------------------------------------------ shape and levels


def test_shapes_dtype_finite(song):
    sr, stems = song
    assert list(stems) == list(STEM_NAMES) == ["vocals", "drums", "bass", "other"]
    n = round(DUR * sr)
    for name, x in stems.items():
        assert x.dtype == np.float32, name
        assert x.shape == (2, n), name
        assert x.flags["C_CONTIGUOUS"], name
        assert np.all(np.isfinite(x)), name
        assert np.max(np.abs(x)) > 1e-3, f"{name} is silent"


def test_peaks(song):
    _, stems = song
    for name, x in stems.items():
        assert sample_peak_dbfs(x) <= -1.0, name
    mix = demo_mix(stems)
    assert sample_peak_dbfs(mix) < -0.5


def test_mix_loudness_is_an_unmastered_mix(song):
    pyln = pytest.importorskip("pyloudnorm")
    sr, stems = song
    lufs = pyln.Meter(sr).integrated_loudness(demo_mix(stems).T.astype(np.float64))
    assert -20.0 <= lufs <= -14.0


def test_96k_and_other_lengths_work():
    stems = make_demo_stems(sample_rate=96000, duration_s=10.0, seed=3)
    for x in stems.values():
        assert x.shape == (2, 960000) and x.dtype == np.float32
        assert np.all(np.isfinite(x)) and sample_peak_dbfs(x) <= -1.0
    assert sample_peak_dbfs(demo_mix(stems)) < -0.5
    odd = make_demo_stems(sample_rate=44100, duration_s=10.37, seed=1)
    assert odd["bass"].shape == (2, round(10.37 * 44100))


# ------------------------------------------------------------------ determinism


def test_same_seed_is_bit_identical(song44):
    again = make_demo_stems(sample_rate=44100, duration_s=DUR, seed=SEED)
    for name in STEM_NAMES:
        assert np.array_equal(again[name], song44[name]), name


def test_different_seed_differs():
    a = make_demo_stems(sample_rate=44100, duration_s=10.0, seed=1)
    b = make_demo_stems(sample_rate=44100, duration_s=10.0, seed=2)
    for name in STEM_NAMES:
        assert not np.array_equal(a[name], b[name]), name


def test_timeline_is_deterministic_and_rate_independent():
    assert demo_timeline(DUR, SEED) == demo_timeline(DUR, SEED)
    tl = demo_timeline(40.0, SEED)
    names = [s[0] for s in tl.sections]
    assert names == ["intro", "verse", "chorus"]
    assert tl.sections[0][1] == 0.0 and tl.sections[-1][2] == 40.0
    for (_, _, end), (_, start, _) in zip(tl.sections, tl.sections[1:]):
        assert end == start
    assert 100.0 <= tl.bpm <= 120.0
    assert {c[2] for c in tl.chords} == {"Am", "F", "C", "G"}
    lo, hi = DEMO_FLAWS["vocals"]["sibilance_duration_s"]
    assert len(tl.sibilants) >= 10
    for s0, s1 in tl.sibilants:
        assert lo - 1e-9 <= s1 - s0 <= hi + 1e-9
    # no voiced note overlaps a sibilant burst
    for s0, s1 in tl.sibilants:
        for n0, n1, _, _ in tl.vocal_notes:
            assert n1 <= s0 + 1e-9 or n0 >= s1 - 1e-9


# ------------------------------------------------------------------ planted flaws


def test_sibilant_bursts_are_loud_in_their_band(song):
    sr, stems = song
    tl = demo_timeline(DUR, SEED)
    lo, hi = DEMO_FLAWS["vocals"]["sibilance_band_hz"]
    assert lo <= DEMO_FLAWS["vocals"]["sibilance_hz"] <= hi
    v = stems["vocals"].astype(np.float64).mean(axis=0)
    band = signal.sosfiltfilt(signal.butter(4, [lo, hi], "bandpass", fs=sr, output="sos"), v)
    hop = int(0.01 * sr)
    nf = band.size // hop
    power = (band[: nf * hop].reshape(nf, hop) ** 2).mean(axis=1)
    tc = (np.arange(nf) + 0.5) * hop / sr
    in_burst = np.zeros(nf, bool)
    near_burst = np.zeros(nf, bool)
    for s0, s1 in tl.sibilants:
        in_burst |= (tc > s0 + 0.015) & (tc < s1 - 0.02)
        near_burst |= (tc > s0 - 0.2) & (tc < s1 + 0.2)
    voiced = np.zeros(nf, bool)
    for n0, n1, _, _ in tl.vocal_notes:
        voiced |= (tc > n0 + 0.05) & (tc < n1 - 0.05)
    voiced &= ~near_burst
    assert in_burst.sum() >= 10 and voiced.sum() >= 100
    ratio = _db(power[in_burst].mean() / power[voiced].mean())
    assert ratio >= 10.0, ratio


def _smoothed_spectrum_db(x: np.ndarray, sr: int, octave_fraction: float):
    """Welch PSD (5 Hz bins) averaged over a sliding ``octave_fraction`` window, in dB."""
    f, p = signal.welch(x, sr, nperseg=int(round(0.2 * sr)))
    c = np.cumsum(p)
    lo = np.searchsorted(f, f * 2.0 ** (-octave_fraction / 2.0))
    hi = np.searchsorted(f, f * 2.0 ** (octave_fraction / 2.0), side="right") - 1
    s = (c[hi] - np.where(lo > 0, c[np.maximum(lo - 1, 0)], 0.0)) / (hi - lo + 1)
    return f, 10.0 * np.log10(s + 1e-30)


def test_harsh_resonance_at_3k(song):
    sr, stems = song
    f0 = DEMO_FLAWS["vocals"]["resonance_hz"]
    v = stems["vocals"].astype(np.float64).mean(axis=0)
    f, s_db = _smoothed_spectrum_db(v, sr, 1.0 / 12.0)
    # the peak of the 2.4-3.8 kHz region is the planted resonance
    region = (f > 2400) & (f < 3800)
    assert abs(f[region][np.argmax(s_db[region])] - f0) <= 100.0
    peak = s_db[(f > f0 - 50) & (f < f0 + 50)].max()
    # the spectrum around it: a straight line (dB over log-frequency) fitted to the
    # flanks 0.2 to 0.5 octave either side, evaluated at 3 kHz
    lf = np.log2(np.maximum(f, 1.0) / f0)
    flanks = (np.abs(lf) >= 0.2) & (np.abs(lf) <= 0.5)
    baseline = np.polyval(np.polyfit(lf[flanks], s_db[flanks], 1), 0.0)
    assert peak - baseline >= 8.0, peak - baseline


def test_bass_low_end_is_wide(song):
    sr, stems = song
    b = stems["bass"].astype(np.float64)
    mid = np.fft.rfft((b[0] + b[1]) / 2.0)
    side = np.fft.rfft((b[0] - b[1]) / 2.0)
    f = np.fft.rfftfreq(b.shape[1], 1.0 / sr)

    def side_over_mid(lo, hi):
        sel = (f >= lo) & (f < hi)
        return _db(np.sum(np.abs(side[sel]) ** 2) / np.sum(np.abs(mid[sel]) ** 2))

    assert side_over_mid(20.0, 100.0) >= -6.0
    assert side_over_mid(20.0, 100.0) == pytest.approx(DEMO_FLAWS["bass"]["side_over_mid_below_100hz_db"], abs=1.5)
    assert side_over_mid(200.0, 2000.0) <= -30.0  # only the low end is wide


def test_drums_have_sharp_transients(song):
    _, stems = song
    d = stems["drums"].astype(np.float64)
    crest = 20.0 * np.log10(np.max(np.abs(d)) / np.sqrt(np.mean(d**2)))
    assert crest >= 12.0, crest


def test_hats_sit_slightly_right(song):
    sr, stems = song
    hp = signal.butter(4, 9000.0, "highpass", fs=sr, output="sos")
    d = signal.sosfilt(hp, stems["drums"].astype(np.float64), axis=-1)
    r_over_l = _db(np.mean(d[1] ** 2) / np.mean(d[0] ** 2))
    assert 1.0 <= r_over_l <= 6.0


def test_stereo_images(song):
    _, stems = song

    def side_over_mid(x):
        x = x.astype(np.float64)
        return _db(np.sum((x[0] - x[1]) ** 2) / np.sum((x[0] + x[1]) ** 2))

    assert side_over_mid(stems["vocals"]) <= -15.0  # centred
    assert side_over_mid(stems["other"]) >= -8.0  # a wide pad


def test_chorus_is_only_a_little_louder(song):
    sr, stems = song
    tl = demo_timeline(DUR, SEED)
    mix = demo_mix(stems).astype(np.float64)

    def rms_db(t0, t1):
        seg = mix[:, int(t0 * sr):int(t1 * sr)]
        return _db(np.mean(seg**2))

    verse = rms_db(*tl.section("verse"))
    c0, c1 = tl.section("chorus")
    chorus = rms_db(c0, c1 - 1.0)  # leave out the final fade
    assert 0.5 <= chorus - verse <= 4.0, chorus - verse


def test_vocal_pitch_follows_the_melody(song44):
    sr = 44100
    tl = demo_timeline(DUR, SEED)
    v = song44["vocals"].astype(np.float64).mean(axis=0)
    checked = 0
    for n0, n1, midi, _ in tl.vocal_notes:
        if n1 - n0 < 0.3:
            continue
        seg = v[int((n0 + 0.08) * sr):int((n0 + 0.08) * sr) + int(0.2 * sr)]
        seg = seg - seg.mean()
        ac = signal.correlate(seg, seg, mode="full", method="fft")[seg.size - 1:]
        expected = 440.0 * 2.0 ** ((midi - 69) / 12.0)
        lo, hi = int(sr / (expected * 1.5)), int(sr / (expected / 1.5))
        lag = lo + int(np.argmax(ac[lo:hi]))
        cents = 1200.0 * np.log2((sr / lag) / expected)
        assert abs(cents) <= 60.0, (n0, midi, cents)
        checked += 1
    assert checked >= 5


# ------------------------------------------------------------------ API edges


def test_demo_mix_is_the_plain_sum(song44):
    mix = demo_mix(song44)
    assert mix.dtype == np.float32 and mix.shape == song44["vocals"].shape
    expected = sum(song44[k].astype(np.float64) for k in STEM_NAMES)
    assert np.allclose(mix, expected, atol=1e-6)
    with pytest.raises(AudioError):
        demo_mix({"a": np.zeros((2, 10), np.float32), "b": np.zeros((2, 11), np.float32)})
    with pytest.raises(AudioError):
        demo_mix({})


@pytest.mark.parametrize("kwargs", [
    {"duration_s": 0.0}, {"duration_s": float("nan")}, {"duration_s": 1000.0},
    {"sample_rate": 8000}, {"sample_rate": 44100.5},
])
def test_bad_arguments_raise_settings_error(kwargs):
    with pytest.raises(SettingsError):
        make_demo_stems(**kwargs)


def test_flaw_table_documents_each_stem():
    assert set(DEMO_FLAWS) >= {"vocals", "bass", "drums", "other"}
    assert DEMO_FLAWS["vocals"]["sibilance_hz"] == 6500.0
    assert DEMO_FLAWS["vocals"]["resonance_hz"] == 3000.0
    assert 10.0 <= DEMO_FLAWS["vocals"]["resonance_gain_db"] <= 12.0
    assert 6.0 <= DEMO_FLAWS["vocals"]["resonance_q"] <= 10.0
    assert DEMO_FLAWS["bass"]["wide_low_end_below_hz"] == 120.0
    assert DEMO_FLAWS["drums"]["crest_factor_db_min"] == 12.0
