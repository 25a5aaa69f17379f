"""Diagnosis: each detector on a signal with its flaw and on the clean song without it, the verdicts,
and the JSON shape. The clean song (tests/diagnosis_signals.py) is balanced like a pop mix; each flaw
is added to it alone, so a finding can only come from the flaw."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal
from scipy.ndimage import maximum_filter1d, uniform_filter1d

from stemmaster.diagnosis import VERDICT_FIX_MIX, VERDICT_READY, VERDICT_REPAIRS, diagnose
from stemmaster.diagnosis.findings import FINDING_IDS
from stemmaster.diagnosis.thresholds import THRESHOLDS
from stemmaster.dsp.eq import ToneEQ, _peaking
from stemmaster.errors import AudioError
from tests.diagnosis_signals import SR, as_input, clean_stems, mix_of


@pytest.fixture(scope="module")
def clean():
    return clean_stems()


@pytest.fixture(scope="module")
def clean_diagnosis(clean):
    return diagnose(as_input(clean), SR)


def _ids(d, stem=None):
    return {f.id for f in d.findings if stem is None or f.stem == stem}


def _finding(d, fid, stem):
    found = [f for f in d.findings if f.id == fid and f.stem == stem]
    assert found, f"no {fid} on {stem}: {[(f.stem, f.id) for f in d.findings]}"
    return found[0]


def _with(clean, **changed):
    out = dict(clean)
    out.update({k: v.astype(np.float32) for k, v in changed.items()})
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_clean_balanced_mix_is_ready_with_no_finding(seed):
    d = diagnose(as_input(clean_stems(seed)), SR)
    assert d.findings == (), [(f.stem, f.id, f.measured) for f in d.findings]
    assert d.verdict == VERDICT_READY


def test_harsh_resonance_found_on_the_ringing_vocal_only(clean, clean_diagnosis):
    ring = signal.sosfilt(_peaking(3000.0, 12.0, 8.0, SR)[None, :], clean["vocals"].astype(np.float64), axis=1)
    d = diagnose(as_input(_with(clean, vocals=ring)), SR)
    f = _finding(d, "harsh_resonance", "vocals")
    assert f.measured >= THRESHOLDS["harsh_resonance"].minor
    assert abs(f.details["frequency_hz"] - 3000.0) < 300.0
    assert f.repair == {"stem": "vocals", "processor": "deharsher", "settings": {"depth_db": pytest.approx(
        f.repair["settings"]["depth_db"])}} and 4.0 <= f.repair["settings"]["depth_db"] <= 10.0
    assert "harsh_resonance" not in _ids(clean_diagnosis)
    assert clean_diagnosis.measurements["vocals"]["resonance_excess_db"] < THRESHOLDS["harsh_resonance"].minor


def _sibilant(vocals: np.ndarray, level: float, seed: int = 5) -> np.ndarray:
    """Esses: 4.5-9 kHz noise bursts of 60-150 ms at every phrase onset and in between."""
    rng = np.random.default_rng(seed)
    out = vocals.astype(np.float64).copy()
    sos = signal.butter(4, [4500, 9000], "bandpass", fs=SR, output="sos")
    vowel_rms = np.sqrt(np.mean(vocals[0][np.abs(vocals[0]) > 1e-4] ** 2))
    for start_s in np.arange(0.3, vocals.shape[1] / SR - 0.5, 0.7):
        n = int(rng.uniform(0.06, 0.15) * SR)
        burst = signal.sosfilt(sos, rng.standard_normal(n)) * np.hanning(n)
        burst *= level * vowel_rms / np.sqrt(np.mean(burst ** 2))
        a = int(start_s * SR)
        out[:, a:a + n] += burst
    return out


def test_sibilance_found_on_loud_esses_not_on_soft_ones(clean):
    loud = diagnose(as_input(_with(clean, vocals=_sibilant(clean["vocals"], 2.0))), SR)
    f = _finding(loud, "sibilance", "vocals")
    assert f.measured >= THRESHOLDS["sibilance"].minor
    assert f.repair["processor"] == "deesser"
    soft = diagnose(as_input(_with(clean, vocals=_sibilant(clean["vocals"], 0.1))), SR)
    assert "sibilance" not in _ids(soft)


def test_muddy_low_mids_found_on_a_build_up_at_300_hz(clean, clean_diagnosis):
    boost = ToneEQ(low_mid_hz=320.0, low_mid_db=9.0, low_mid_q=0.9)
    muddy = {k: boost.process(v, SR) for k, v in clean.items()}
    d = diagnose(as_input(_with(clean, **muddy)), SR)
    f = _finding(d, "muddy_low_mids", "mix")
    assert f.measured >= THRESHOLDS["muddy_low_mids"].minor
    assert f.repair["stem"] == "bus" and f.repair["processor"] == "tone_eq"
    assert -4.0 <= f.repair["settings"]["low_mid_db"] < 0.0
    assert "muddy_low_mids" not in _ids(clean_diagnosis)


def _phase_skew(x: np.ndarray, degrees: float) -> np.ndarray:
    """Right channel = left rotated by ``degrees`` (Hilbert): same spectrum, partly out of phase."""
    left = x[0].astype(np.float64)
    h = np.imag(signal.hilbert(left))
    th = np.radians(degrees)
    return np.vstack([left, np.cos(th) * left + np.sin(th) * h])


def test_wide_low_end_and_mono_loss_found_on_the_skewed_bass(clean, clean_diagnosis):
    d = diagnose(as_input(_with(clean, bass=_phase_skew(clean["bass"], 110.0))), SR)
    f = _finding(d, "wide_low_end", "bass")
    assert f.measured >= THRESHOLDS["wide_low_end"].minor
    assert f.repair == {"stem": "bass", "processor": "low_end_mono", "settings": {"crossover_hz": 150.0}}
    m = _finding(d, "mono_incompatible", "bass")
    assert m.measured <= THRESHOLDS["mono_incompatible"].minor and m.details["band_hz"] <= 125.0
    assert not {"wide_low_end", "mono_incompatible"} & _ids(clean_diagnosis)
    assert clean_diagnosis.measurements["bass"]["side_to_mid_low_db"] < -30.0


def test_excessive_width_found_on_uncorrelated_channels(clean, clean_diagnosis):
    rng = np.random.default_rng(3)
    pad = clean["other"].astype(np.float64)
    # the right channel from another take: uncorrelated, so the side is as loud as the mid
    other_take = np.roll(pad[0], int(0.37 * SR)) * rng.choice([1.0, -1.0])
    wide = np.vstack([pad[0], other_take])
    d = diagnose(as_input(_with(clean, other=wide)), SR)
    f = _finding(d, "excessive_width", "other")
    assert f.measured >= THRESHOLDS["excessive_width"].minor
    assert f.repair["processor"] == "stereo_width" and 0.5 <= f.repair["settings"]["width"] < 1.0
    assert "excessive_width" not in _ids(clean_diagnosis)


def test_mono_incompatible_found_on_a_polarity_flipped_mid_band(clean):
    pad = clean["other"].astype(np.float64)
    sos = signal.butter(2, [700, 1400], "bandpass", fs=SR, output="sos")
    band = signal.sosfiltfilt(sos, pad, axis=1)
    flipped = pad.copy()
    flipped[1] -= 2.0 * band[1]  # the right channel's 1 kHz octave inverted
    d = diagnose(as_input(_with(clean, other=flipped)), SR)
    f = _finding(d, "mono_incompatible", "other")
    assert f.measured <= THRESHOLDS["mono_incompatible"].minor
    assert 500.0 <= f.details["band_hz"] <= 2000.0
    assert f.repair["processor"] == "stereo_width"


def test_over_compressed_found_on_a_squashed_mix_and_drums(clean, clean_diagnosis):
    drive = 10.0 ** (18.0 / 20.0)
    drums = clean["drums"].astype(np.float64)
    # a fast compressor: each sample divided by its 20 ms peak envelope to the power 0.8
    env = uniform_filter1d(maximum_filter1d(np.abs(drums).max(axis=0), int(0.02 * SR)), int(0.02 * SR))
    squashed = drums / np.maximum(env, 0.05 * env.max()) ** 0.8
    squashed *= 0.5 / np.abs(squashed).max()
    d = diagnose([], SR, mix=np.tanh(mix_of(clean).astype(np.float64) * drive) / drive * 0.9)
    f = _finding(d, "over_compressed", "mix")
    assert f.measured <= THRESHOLDS["over_compressed"].minor
    d2 = diagnose(as_input(_with(clean, drums=squashed)), SR)
    g = _finding(d2, "over_compressed", "drums")
    assert g.measured <= THRESHOLDS["over_compressed_drums"].minor
    assert g.repair == {"stem": "drums", "processor": "transient_shaper", "settings": {"attack_db": 6.0}}
    assert "over_compressed" not in _ids(clean_diagnosis)


def test_a_hard_clipped_source_is_fix_the_mix_first(clean):
    mix = mix_of(clean).astype(np.float64)
    clipped = np.clip(mix, -0.15, 0.15) / 0.15 * 0.98
    d = diagnose([], SR, mix=clipped)
    f = _finding(d, "clipping", "mix")
    assert f.severity == "fix_mix" and f.measured >= THRESHOLDS["clipping"].major
    assert d.verdict == VERDICT_FIX_MIX
    assert any("clipped throughout" in r for r in d.reasons)


def test_a_few_clipped_hits_are_a_minor_finding(clean):
    mix = mix_of(clean).astype(np.float64) / np.abs(mix_of(clean)).max() * 0.7
    peak_at = np.argmax(np.abs(mix[0]))
    mix[:, peak_at - 3:peak_at + 3] = np.sign(mix[0, peak_at]) * 0.99
    d = diagnose([], SR, mix=mix)
    f = _finding(d, "clipping", "mix")
    assert f.severity == "minor" and f.details["clip_runs"] >= 1


def test_inter_sample_overs_in_the_source_are_reported(clean):
    t = np.arange(SR * 4) / SR
    # a sine at fs/4 phased 45 degrees: samples at 0.707 of its crest, scaled to full scale
    x = np.sin(2 * np.pi * SR / 4 * t + np.pi / 4) / np.sin(np.pi / 4) * 0.999
    d = diagnose([], SR, mix=np.vstack([x, x]).astype(np.float32))
    f = _finding(d, "clipping", "mix")
    assert f.unit == "dBTP" and f.measured > 2.0


def test_band_limited_found_on_a_16_khz_lowpass(clean, clean_diagnosis):
    sos = signal.ellip(12, 0.1, 90, 16000, fs=SR, output="sos")
    d = diagnose([], SR, mix=signal.sosfiltfilt(sos, mix_of(clean).astype(np.float64), axis=1))
    f = _finding(d, "band_limited", "mix")
    assert 15000.0 <= f.measured <= 16500.0
    assert f.repair is None
    assert "band_limited" not in _ids(clean_diagnosis)


def test_dc_offset_found_on_the_stem_that_carries_it(clean, clean_diagnosis):
    d = diagnose(as_input(_with(clean, vocals=clean["vocals"] + 0.01)), SR)
    f = _finding(d, "dc_offset", "vocals")
    assert f.measured == pytest.approx(-40.0, abs=0.5)
    assert f.repair == {"stem": "vocals", "processor": "highpass", "settings": {"highpass_hz": 20.0}}
    assert "dc_offset" not in _ids(clean_diagnosis)


def _with_gap(stems, start_s=5.0, end_s=7.0):
    out = {}
    a, b = int(start_s * SR), int(end_s * SR)
    for k, v in stems.items():
        v = v.astype(np.float64).copy()
        v[:, a:b] = 0.0
        out[k] = v
    return out


def test_noise_floor_found_when_hiss_shows_in_the_pauses(clean):
    gapped = _with_gap(clean)
    rng = np.random.default_rng(9)
    hiss = rng.standard_normal(gapped["vocals"].shape) * 10.0 ** (-52.0 / 20.0)
    d = diagnose(as_input(_with(clean, **{**gapped, "vocals": gapped["vocals"] + hiss})), SR)
    f = _finding(d, "noise_floor", "vocals")
    assert f.measured >= THRESHOLDS["noise_floor"].minor and f.details["flatness"] >= 0.35
    quiet = diagnose(as_input(_with(clean, **gapped)), SR)  # the same pause, digitally silent
    assert "noise_floor" not in _ids(quiet)


def test_loudness_jump_found_between_sections(clean, clean_diagnosis):
    half = clean["drums"].shape[1] // 2
    jumped = {k: np.concatenate([v[:, :half] * 0.3, v[:, half:]], axis=1) for k, v in clean.items()}
    d = diagnose(as_input(_with(clean, **jumped)), SR)
    f = _finding(d, "loudness_jumps", "mix")
    assert f.measured == pytest.approx(20 * np.log10(1 / 0.3), abs=1.5)
    assert abs(f.details["at_s"] - half / SR) < 1.0
    assert "loudness_jumps" not in _ids(clean_diagnosis)


def test_untidy_edges_found_on_silence_before_and_a_cut_after(clean, clean_diagnosis):
    mix = mix_of(clean).astype(np.float64)
    cut = mix[:, : int(mix.shape[1] * 0.55)]  # stops mid-note
    padded = np.concatenate([np.zeros((2, 3 * SR)), cut], axis=1)
    d = diagnose([], SR, mix=padded)
    f = _finding(d, "untidy_edges", "mix")
    assert "3.0 s of silence" in f.message and "stops mid-sound" in f.message
    assert f.details["leading_silence_s"] == pytest.approx(3.0, abs=0.05)
    assert "untidy_edges" not in _ids(clean_diagnosis)


def test_a_vocal_10_db_over_the_rest_is_fix_the_mix_first(clean):
    d = diagnose(as_input(_with(clean, vocals=clean["vocals"] * 10.0 ** (10.0 / 20.0))), SR)
    f = _finding(d, "vocal_balance", "mix")
    assert f.severity == "fix_mix" and f.measured == pytest.approx(10.0 + 0.8, abs=1.0)  # the clean song's vocal sits 0.8 LU over the rest
    assert f.auto is False and f.repair["processor"] == "gain" and f.repair["settings"]["gain_db"] < -6.0
    assert d.verdict == VERDICT_FIX_MIX


def test_repairable_findings_make_ready_with_repairs(clean):
    d = diagnose(as_input(_with(clean, bass=_phase_skew(clean["bass"], 110.0))), SR)
    assert d.verdict == VERDICT_REPAIRS
    assert any("wide low end" in r for r in d.reasons)


def test_json_shape_has_the_issue_keys_and_known_ids(clean):
    d = diagnose(as_input(_with(clean, bass=_phase_skew(clean["bass"], 110.0),
                                vocals=clean["vocals"] * 10.0 ** (10.0 / 20.0))), SR)
    data = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert data["verdict"] == VERDICT_FIX_MIX
    for f in data["findings"]:
        assert {"id", "stem", "severity", "measured", "threshold", "message", "repair"} <= set(f)
        assert f["id"] in FINDING_IDS
    assert [f["severity"] for f in data["findings"]][0] == "fix_mix"  # worst first


def test_bad_input_is_a_one_line_audio_error(clean):
    with pytest.raises(AudioError, match="vocals: NaN or Inf"):
        diagnose([("vocals", "vocals", np.full((2, SR), np.nan, np.float32))], SR)
    with pytest.raises(AudioError, match="nothing to diagnose"):
        diagnose([], SR)


def test_silence_and_very_short_audio_give_no_findings_and_no_errors():
    d = diagnose([("vocals", "vocals", np.zeros((2, SR * 2), np.float32))], SR)
    assert d.findings == ()
    d = diagnose([], SR, mix=np.zeros((2, 100), np.float32) + 0.001)
    assert all(f.id in ("dc_offset", "untidy_edges") for f in d.findings)
