"""Codec checks: MP3 (lameenc) and AAC (ffmpeg) round trips of masters made by the project's bus master."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from stemmaster.checks.codec import (MARGIN_DB, align, codec_checks, encode_mp3, find_delay, over_events,
                                     recommended_ceiling)
from stemmaster.demo import demo_mix, make_demo_stems
from stemmaster.errors import AudioError
from stemmaster.master import MasterSettings, master_bus
from stemmaster.meters.truepeak import true_peak_dbtp, true_peak_envelope

SR = 44100
HAVE_FFMPEG = shutil.which("ffmpeg") is not None


@pytest.fixture(scope="module")
def mix() -> np.ndarray:
    return demo_mix(make_demo_stems(duration_s=20))


def _master(mix: np.ndarray, target_lufs: float, ceiling_dbtp: float) -> np.ndarray:
    settings = MasterSettings().with_bus(profile=None, target_lufs=target_lufs, ceiling_dbtp=ceiling_dbtp)
    return master_bus(mix, SR, settings).audio


@pytest.fixture(scope="module")
def loud_master(mix) -> np.ndarray:
    """-9 LUFS against a -0.1 dBTP ceiling: a club-loud master with no room for the codec."""
    return _master(mix, -9.0, -0.1)


@pytest.fixture(scope="module")
def safe_master(mix) -> np.ndarray:
    """The same loudness against -1.5 dBTP."""
    return _master(mix, -9.0, -1.5)


def _check(results, codec):
    (r,) = [r for r in results if r["codec"] == codec]
    return r


def test_mp3_finds_overs_on_a_loud_master(loud_master):
    mp3 = _check(codec_checks(loud_master, SR, ceiling_dbtp=-0.1, ffmpeg=False), "mp3")
    assert mp3["available"] and mp3["decoder"] == "libsndfile"
    assert mp3["source_true_peak_dbtp"] == pytest.approx(-0.1, abs=0.02)
    # measured: the decoded MP3 peaks at +0.34 dBTP (0.44 dB overshoot)
    assert mp3["overs"] is True
    assert mp3["decoded_true_peak_dbtp"] > 0.1
    assert 0.2 < mp3["overshoot_db"] < 1.5
    assert mp3["peak_overs"] >= 1 and mp3["over_events"][0]["kind"] == "peak"
    assert mp3["over_events"][0]["decoded_dbtp"] == pytest.approx(mp3["decoded_true_peak_dbtp"], abs=1e-3)
    expected = recommended_ceiling(mp3["source_true_peak_dbtp"], mp3["decoded_true_peak_dbtp"])
    assert mp3["recommended_ceiling_dbtp"] == pytest.approx(expected)
    assert mp3["recommended_ceiling_dbtp"] <= -0.1 - mp3["decoded_true_peak_dbtp"] - MARGIN_DB + 1e-9
    assert mp3["delay_samples"] == 1105  # LAME: 576 encoder delay + 529 decoder delay
    assert abs(mp3["loudness_change_lu"]) < 0.2
    assert mp3["seconds"] > 0


def test_mp3_no_overs_at_minus_1_5_dbtp(safe_master):
    mp3 = _check(codec_checks(safe_master, SR, ceiling_dbtp=-1.5, ffmpeg=False), "mp3")
    # measured: -0.87 dBTP decoded
    assert mp3["overs"] is False
    assert mp3["decoded_true_peak_dbtp"] < -0.3
    assert mp3["over_events"] == [] and mp3["sample_overs"] == 0
    assert mp3["recommended_ceiling_dbtp"] is None


def test_mp3_recommended_ceiling_removes_the_overs(mix, loud_master):
    """Re-mastering at the recommended ceiling, same loudness, leaves the decoded MP3 under 0 dBTP."""
    first = _check(codec_checks(loud_master, SR, ceiling_dbtp=-0.1, ffmpeg=False), "mp3")
    ceiling = first["recommended_ceiling_dbtp"]
    again = _check(codec_checks(_master(mix, -9.0, ceiling), SR, ceiling_dbtp=ceiling, ffmpeg=False), "mp3")
    assert again["overs"] is False
    assert again["decoded_true_peak_dbtp"] < 0.0


def test_aac_skipped_without_ffmpeg(safe_master):
    aac = _check(codec_checks(safe_master, SR, ceiling_dbtp=-1.5, ffmpeg=False), "aac")
    assert aac["available"] is False and aac["decoded_true_peak_dbtp"] is None
    assert "ffmpeg not found" in aac["note"]


def test_results_are_json_ready(loud_master):
    results = codec_checks(loud_master, SR, ceiling_dbtp=-0.1, ffmpeg=False)
    json.dumps(results, allow_nan=False)
    assert [r["codec"] for r in results] == ["mp3", "aac"]
    assert set(results[0]) == set(results[1])


@pytest.mark.ffmpeg
@pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg not installed")
def test_mp3_ffmpeg_decoder_agrees_with_libsndfile(loud_master):
    via_ffmpeg = _check(codec_checks(loud_master, SR, ceiling_dbtp=-0.1), "mp3")
    via_sndfile = _check(codec_checks(loud_master, SR, ceiling_dbtp=-0.1, ffmpeg=False), "mp3")
    assert via_ffmpeg["decoder"] == "ffmpeg"
    assert via_ffmpeg["decoded_true_peak_dbtp"] == pytest.approx(via_sndfile["decoded_true_peak_dbtp"], abs=0.01)
    assert via_ffmpeg["delay_samples"] == via_sndfile["delay_samples"]


@pytest.mark.ffmpeg
@pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg not installed")
def test_aac_finds_overs_on_a_loud_master(loud_master):
    aac = _check(codec_checks(loud_master, SR, ceiling_dbtp=-0.1), "aac")
    # measured (ffmpeg 5.1 native aac, 256k): +0.5 dBTP decoded
    assert aac["available"] and aac["decoder"] == "ffmpeg"
    assert aac["overs"] is True and aac["decoded_true_peak_dbtp"] > 0.1
    assert aac["peak_overs"] >= 1
    assert aac["recommended_ceiling_dbtp"] is not None and aac["recommended_ceiling_dbtp"] < -0.1 - MARGIN_DB
    assert 900 <= aac["delay_samples"] <= 2200  # 1024 priming samples (plus the decoder's, if any)
    assert abs(aac["loudness_change_lu"]) < 0.3


@pytest.mark.ffmpeg
@pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg not installed")
def test_aac_no_overs_with_room(mix):
    # ffmpeg's AAC overshoots more than LAME (1.5 dB on the -9 LUFS master at -1.5 dBTP, which then
    # just reaches +0.05 dBTP); a -14 LUFS master at -3 dBTP decodes to about -1.5 dBTP
    aac = _check(codec_checks(_master(mix, -14.0, -3.0), SR, ceiling_dbtp=-3.0), "aac")
    assert aac["overs"] is False and aac["decoded_true_peak_dbtp"] < -0.5
    assert aac["recommended_ceiling_dbtp"] is None


def _aac_whole_file(master: np.ndarray, ffmpeg: str) -> np.ndarray:
    """One ffmpeg AAC encode of the whole master (256 kbit/s, as the check makes it) and its decode,
    through pipes, aligned on the loudest part: the figures a streaming service's encode gives."""
    base = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    channels = str(master.shape[0])
    adts = subprocess.run(base + ["-f", "f32le", "-ar", str(SR), "-ac", channels, "-i", "pipe:0", "-c:a", "aac",
                                  "-b:a", "256k", "-f", "adts", "pipe:1"],
                          input=np.ascontiguousarray(master.T, dtype="<f4").tobytes(), capture_output=True,
                          check=True).stdout
    raw = subprocess.run(base + ["-f", "aac", "-i", "pipe:0", "-f", "f32le", "-ac", channels, "pipe:1"],
                         input=adts, capture_output=True, check=True).stdout
    decoded = np.frombuffer(raw, dtype="<f4").reshape(-1, master.shape[0]).T
    return align(decoded, find_delay(master, decoded, SR), master.shape[1])


@pytest.mark.ffmpeg
@pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg not installed")
def test_aac_figures_are_the_whole_file_encodes():
    """A minute of club-loud master: the reported AAC figures are those of one encode of the whole
    file (a streaming service's), not of pieces encoded apart (ffmpeg's encoder state never rejoins)."""
    master = _master(demo_mix(make_demo_stems(duration_s=60)), -9.0, -0.1).astype(np.float32)
    aac = _check(codec_checks(master, SR, ceiling_dbtp=-0.1), "aac")
    whole = _aac_whole_file(master, shutil.which("ffmpeg"))
    source_tp = true_peak_dbtp(master)
    events = over_events(true_peak_envelope(whole), true_peak_envelope(master), SR, source_tp)
    peaks = [e for e in events if e["kind"] == "peak"]
    print("AAC, whole-file encode:", round(true_peak_dbtp(whole), 3), int(np.count_nonzero(np.abs(whole) > 1.0)),
          len(peaks), len(events) - len(peaks), "; reported:", aac["decoded_true_peak_dbtp"], aac["sample_overs"],
          aac["peak_overs"], aac["glitch_overs"], aac["recommended_ceiling_dbtp"], aac["note"])
    assert peaks, "the master should overshoot in AAC"
    assert aac["decoded_true_peak_dbtp"] == pytest.approx(true_peak_dbtp(whole), abs=0.1)
    assert aac["sample_overs"] == int(np.count_nonzero(np.abs(whole) > 1.0))
    assert (aac["peak_overs"], aac["glitch_overs"]) == (len(peaks), len(events) - len(peaks))
    assert aac["recommended_ceiling_dbtp"] == pytest.approx(
        recommended_ceiling(source_tp, max(e["decoded_dbtp"] for e in peaks)))
    assert aac["delay_samples"] == 1024 and aac["note"] is None


@pytest.mark.ffmpeg
@pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg not installed")
def test_no_temp_files_left(safe_master):
    before = set(os.listdir(tempfile.gettempdir()))
    codec_checks(safe_master, SR, ceiling_dbtp=-1.5)
    assert set(os.listdir(tempfile.gettempdir())) - before == set()


@pytest.mark.ffmpeg
@pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg not installed")
def test_ffmpeg_failure_is_one_clear_line(safe_master, tmp_path):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho 'Unknown encoder aac' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(AudioError) as info:
        codec_checks(safe_master, SR, ceiling_dbtp=-1.5, ffmpeg=str(fake))
    message = str(info.value)
    assert "ffmpeg failed (exit 1)" in message and "\n" not in message


def test_resampled_for_the_codec(safe_master):
    from stemmaster.audio_io import resample

    hi = resample(safe_master[:, : 5 * SR], SR, 96000)
    mp3 = _check(codec_checks(hi, 96000, ceiling_dbtp=-1.5, ffmpeg=False), "mp3")
    assert mp3["sample_rate"] == 48000 and "resampled from 96000 Hz" in mp3["note"]
    assert mp3["available"] and mp3["decoded_true_peak_dbtp"] is not None


def test_mono_master(safe_master):
    mono = np.ascontiguousarray(safe_master[:1, : 5 * SR])
    mp3 = _check(codec_checks(mono, SR, ceiling_dbtp=-1.5, ffmpeg=False), "mp3")
    assert mp3["available"] and mp3["delay_samples"] == 1105


def test_find_delay_and_align():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3 * SR)) * 0.1
    for delay in (0, 1105, -300):
        y = np.zeros_like(x)
        if delay >= 0:
            y[:, delay:] = x[:, : x.shape[1] - delay]
        else:
            y[:, :delay] = x[:, -delay:]
        assert find_delay(x, y, SR) == delay
        back = align(y, delay, x.shape[1])
        inner = slice(2000, x.shape[1] - 2000)
        assert np.allclose(back[:, inner], x[:, inner], atol=1e-6)


def test_over_events_classify_peak_and_glitch():
    env_src = np.full(SR, 10 ** (-12 / 20))
    env_src[1000] = 10 ** (-0.1 / 20)
    env_dec = env_src.copy()
    env_dec[1000] = 10 ** (0.4 / 20)  # a limited peak overshoots
    env_dec[30000] = 10 ** (2.0 / 20)  # a spike where the source is at -12 dBTP
    events = over_events(env_dec, env_src, SR, -0.1)
    assert [e["kind"] for e in events] == ["glitch", "peak"]
    assert events[0]["time_s"] == pytest.approx(30000 / SR, abs=1e-3)
    assert events[1]["source_dbtp"] == pytest.approx(-0.1, abs=1e-6)


def test_recommended_ceiling_rounds_down():
    assert recommended_ceiling(-0.1, 0.337) == pytest.approx(-1.0)  # -0.1 - 0.337 - 0.5 = -0.937
    assert recommended_ceiling(-1.0, 0.0, margin_db=0.5) == pytest.approx(-1.5)


def test_bad_input(safe_master):
    with pytest.raises(AudioError, match="mono or stereo"):
        codec_checks(np.zeros((3, SR), dtype=np.float32), SR, ceiling_dbtp=-1.0)
    with pytest.raises(AudioError, match="ceiling_dbtp"):
        codec_checks(safe_master, SR, ceiling_dbtp=float("nan"))
    with pytest.raises(AudioError, match="too short"):
        codec_checks(safe_master[:, :1000], SR, ceiling_dbtp=-1.0)
    with pytest.raises(AudioError, match="mono or stereo"):
        encode_mp3(np.zeros((3, 1000)), SR)
