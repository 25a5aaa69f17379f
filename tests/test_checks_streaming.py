"""The release checks read their audio a block at a time: on an ArraySource, a FileSource or
blocks of odd sizes they give what the whole-signal meters give, and their memory does not
grow with the song's length."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfilt

from stemmaster.audio_source import ArraySource, FileSource
from stemmaster.checks.ab import write_ab_pair
from stemmaster.checks.codec import align, codec_checks, encode_mp3, find_delay
from stemmaster.checks.plots import short_term_curve, tonal_balance, tonal_balance_and_short_term
from stemmaster.checks.translation import CHECKS, check_sections, long_term_spectra, translation_checks
from stemmaster.meters.loudness import gated_loudness_lufs, gated_loudness_through, short_term_lufs
from stemmaster.meters.truepeak import true_peak_dbtp
from stemmaster.release_checks import run_release_checks

SR = 44100
ODD = (1 << 12) + 3
HAVE_FFMPEG = shutil.which("ffmpeg") is not None


class OddBlocks(ArraySource):
    """An array read in blocks of odd sizes whatever size is asked for."""

    def blocks(self, block: int = 0):
        sizes = (ODD, 3 * ODD + 1, 7)
        start, i = 0, 0
        while start < self.frames:
            stop = min(self.frames, start + sizes[i % 3])
            yield start, self.read(start, stop)
            start, i = stop, i + 1


def _sine(seconds: float = 8.0, dbfs: float = -20.0, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = 10.0 ** (dbfs / 20.0) * np.sin(2 * np.pi * hz * t)
    return np.stack([x, x]).astype(np.float32)


def _pink(seconds: float = 12.0, seed: int = 5) -> np.ndarray:
    """Stereo pink noise, partly correlated, with a slow level swell (loudness varies)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    white = rng.standard_normal((2, n))
    white[1] = 0.6 * white[0] + 0.8 * white[1]
    spec = np.fft.rfft(white, axis=1)
    f = np.fft.rfftfreq(n, 1.0 / SR)
    spec[:, 1:] /= np.sqrt(f[1:])
    spec[:, f < 20.0] = 0.0
    y = np.fft.irfft(spec, n, axis=1)
    y *= 0.1 / np.sqrt(np.mean(y ** 2))
    y *= 0.5 + 0.5 * np.sin(2 * np.pi * np.arange(n) / n) ** 2
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def pink() -> np.ndarray:
    return _pink()


@pytest.fixture(scope="module")
def pink_file(pink, tmp_path_factory):
    path = tmp_path_factory.mktemp("pink") / "pink.wav"
    sf.write(str(path), pink.T, SR, subtype="FLOAT")
    return path


def _whole_welch(x: np.ndarray, n_fft: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The long-term spectra of the whole signal at once (the former array path), for reference."""
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), n_fft, axis=-1)[:, ::n_fft // 2]
    w = np.hanning(n_fft + 1)[:-1]
    z = np.fft.rfft(frames * w, axis=-1)
    scale = np.full(n_fft // 2 + 1, 2.0 / (frames.shape[1] * n_fft * np.sum(w ** 2)))
    scale[0] /= 2.0
    scale[-1] /= 2.0
    auto = (np.abs(z) ** 2).sum(axis=1) * scale
    cross = (z[0] * np.conj(z[1])).real.sum(axis=0) * scale if x.shape[0] == 2 else None
    return auto, cross


def _db(x):
    return 10.0 * np.log10(np.maximum(x, 1e-30))


# ---------------------------------------------------------------- spectra, translation, plots


@pytest.mark.parametrize("n_fft", [8192, 32768])
def test_long_term_spectra_by_blocks_equal_the_whole(pink, n_fft):
    auto_ref, cross_ref = _whole_welch(pink, n_fft)
    for source, block in ((pink, 1 << 18), (ArraySource(pink, SR), ODD), (OddBlocks(pink, SR), 0)):
        f, auto, cross = long_term_spectra(source, SR, n_fft=n_fft, **({"block": block} if block else {}))
        band = (f > 20.0) & (f < 20000.0)
        np.testing.assert_allclose(_db(auto[:, band]), _db(auto_ref[:, band]), atol=0.05)
        np.testing.assert_allclose(cross[band], cross_ref[band], atol=1e-3 * np.abs(cross_ref[band]).max())


def test_translation_on_sources_equals_the_whole_signal_meters(pink, pink_file):
    expected_ref = gated_loudness_through(pink, SR, np.zeros((0, 6)))
    expected = {name: gated_loudness_through(pink, SR, check_sections(name, SR), fold_mono=name in ("mono", "phone"))
                for name in CHECKS}
    results = {}
    for label, source, block in (("array", pink, 1 << 18), ("file", FileSource(pink_file), ODD),
                                 ("odd", OddBlocks(pink, SR), 1 << 18)):
        rows = {r.name: r.to_dict() for r in translation_checks(source, SR, block=block)}
        results[label] = rows
        for name in CHECKS:
            assert rows[name]["loudness_lufs"] == pytest.approx(expected[name], abs=0.01), (label, name)
            assert rows[name]["loudness_change_lu"] == pytest.approx(expected[name] - expected_ref, abs=0.01)
    for label in ("file", "odd"):
        for name in CHECKS:
            for band, value in results["array"][name]["band_change_db"].items():
                assert results[label][name]["band_change_db"][band] == pytest.approx(value, abs=0.05), (label, name)
    # known answers: pink noise half correlated loses about 1 dB in mono; the phone drops the sub
    mono = results["file"]["mono"]["band_change_db"]
    assert -2.0 < mono["bass"] < -0.5 and results["file"]["phone"]["band_change_db"]["sub"] < -40.0
    print("translation (file, odd blocks):", json.dumps({n: results["file"][n]["loudness_change_lu"] for n in CHECKS}))


def test_plots_curves_on_sources(pink, pink_file):
    freqs, level = tonal_balance(pink, SR)
    lufs_ref = short_term_lufs(pink, SR)
    for source, block in ((FileSource(pink_file), ODD), (OddBlocks(pink, SR), 1 << 18)):
        f2, l2 = tonal_balance(source, SR, block=block)
        np.testing.assert_array_equal(f2, freqs)
        np.testing.assert_allclose(l2, level, atol=0.05)
        times, lufs = short_term_curve(source, SR, block=block)
        np.testing.assert_allclose(lufs, lufs_ref, atol=0.01)
        assert times[0] == pytest.approx(3.0) and len(times) == len(lufs_ref)
        (f3, l3), (t3, s3) = tonal_balance_and_short_term(source, SR, block=block)
        np.testing.assert_allclose(l3, level, atol=0.05)
        np.testing.assert_allclose(s3, lufs_ref, atol=0.01)
    # known answer: the 1/3-octave band power of a -20 dBFS sine is its mean square, -23 dB
    f, level = tonal_balance(ArraySource(_sine(), SR), SR, block=ODD)
    assert level.max() == pytest.approx(-23.01, abs=0.3) and abs(f[np.argmax(level)] - 1000.0) < 60.0


# ---------------------------------------------------------------- A/B


def test_ab_pair_from_sources(tmp_path, pink, pink_file):
    quiet = (pink * 0.25).astype(np.float32)
    by_array = write_ab_pair(quiet, pink, SR, tmp_path / "a")
    by_file = write_ab_pair(OddBlocks(quiet, SR), FileSource(pink_file), SR, tmp_path / "b")
    assert by_file["before"]["lufs_in"] == pytest.approx(gated_loudness_lufs(quiet, SR), abs=0.01)
    assert by_file["after"]["lufs_in"] == pytest.approx(gated_loudness_lufs(pink, SR), abs=0.01)
    for side in ("before", "after"):
        for key in ("lufs_in", "gain_db", "lufs_out", "true_peak_dbtp_out"):
            assert by_file[side][key] == pytest.approx(by_array[side][key], abs=0.01), (side, key)
    after, rate = sf.read(str(tmp_path / "b" / "ab" / "after.wav"), dtype="float32", always_2d=True)
    assert rate == SR and sf.info(str(tmp_path / "b" / "ab" / "after.wav")).subtype == "FLOAT"
    np.testing.assert_allclose(after.T, pink * 10.0 ** (by_file["after"]["gain_db"] / 20.0), atol=1e-6)
    assert by_file["after"]["true_peak_dbtp_out"] == pytest.approx(
        true_peak_dbtp(pink) + by_file["after"]["gain_db"], abs=0.01)
    assert sorted(p.name for p in (tmp_path / "b" / "ab").iterdir()) == ["after.wav", "before.wav"]


# ---------------------------------------------------------------- codec


def _decoded_whole_mp3(master: np.ndarray, ffmpeg: str) -> np.ndarray:
    """The former whole-array path: encode all, decode all, align on the loudest part."""
    data = encode_mp3(master, SR)
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "mp3", "-i", "pipe:0",
           "-f", "f32le", "-ac", str(master.shape[0]), "pipe:1"]
    out = subprocess.run(cmd, input=data, capture_output=True, check=True).stdout
    decoded = np.frombuffer(out, dtype="<f4").reshape(-1, master.shape[0]).T
    return align(decoded, find_delay(master, decoded, SR), master.shape[1])


@pytest.mark.ffmpeg
@pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg not installed")
def test_codec_checks_on_a_sine_and_on_sources(pink, pink_file):
    # known answer: a -20 dBFS 1 kHz sine reads -20 LUFS, -20 dBTP, and survives both codecs
    sine = _sine()
    mp3, aac = codec_checks(ArraySource(sine, SR), SR, ceiling_dbtp=-1.0, block=ODD)
    for r in (mp3, aac):
        assert r["available"] and r["overs"] is False and r["over_events"] == [] and r["sample_overs"] == 0
        assert r["source_true_peak_dbtp"] == pytest.approx(-20.0, abs=0.01)
        assert r["source_lufs"] == pytest.approx(-20.0, abs=0.05)
        assert r["decoded_true_peak_dbtp"] == pytest.approx(-20.0, abs=0.1)
        assert abs(r["loudness_change_lu"]) < 0.05
    print("codec sine:", {r["codec"]: (r["decoded_true_peak_dbtp"], r["decoded_lufs"]) for r in (mp3, aac)})

    # pink noise pushed into overs: the whole-array path against file and odd-block sources
    hot = np.clip(pink * 6.0, -0.97, 0.97).astype(np.float32)  # flat tops: the codecs overshoot
    path = pink_file.parent / "hot.wav"
    sf.write(str(path), hot.T, SR, subtype="FLOAT")
    whole = _decoded_whole_mp3(hot, shutil.which("ffmpeg"))
    runs = {"file": codec_checks(FileSource(path), SR, ceiling_dbtp=-0.2),
            "odd": codec_checks(OddBlocks(hot, SR), SR, ceiling_dbtp=-0.2, block=ODD)}
    for label, (m, a) in runs.items():
        assert m["decoded_true_peak_dbtp"] == pytest.approx(true_peak_dbtp(whole), abs=0.05), label
        assert m["decoded_lufs"] == pytest.approx(gated_loudness_lufs(whole, SR), abs=0.05), label
        assert m["source_true_peak_dbtp"] == pytest.approx(true_peak_dbtp(hot), abs=0.01), label
        assert m["source_lufs"] == pytest.approx(gated_loudness_lufs(hot, SR), abs=0.01), label
        assert m["sample_overs"] == int(np.count_nonzero(np.abs(whole) > 1.0)), label
        assert m["overs"] is True and m["peak_overs"] >= 1
        assert m["delay_samples"] == 1105 and a["delay_samples"] == 1024  # (a sine's delay is ambiguous)
    m_file, m_odd = runs["file"][0], runs["odd"][0]
    assert m_file["over_events"] == m_odd["over_events"]
    assert m_file["recommended_ceiling_dbtp"] == m_odd["recommended_ceiling_dbtp"]
    assert (m_file["peak_overs"], m_file["glitch_overs"]) == (m_odd["peak_overs"], m_odd["glitch_overs"])
    a_file, a_odd = runs["file"][1], runs["odd"][1]
    assert a_file["decoded_true_peak_dbtp"] == pytest.approx(a_odd["decoded_true_peak_dbtp"], abs=0.05)
    assert a_file["decoded_lufs"] == pytest.approx(a_odd["decoded_lufs"], abs=0.05)


def test_codec_checks_without_ffmpeg_leave_no_files(tmp_path, monkeypatch, pink):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    mp3, aac = codec_checks(OddBlocks(pink[:, : 5 * SR], SR), SR, ceiling_dbtp=-1.0, ffmpeg=False)
    assert mp3["decoder"] == "libsndfile" and mp3["delay_samples"] == 1105 and aac["available"] is False
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the whole phase


def test_release_checks_on_sources_equal_arrays(tmp_path, pink, pink_file):
    before = (pink * 0.3).astype(np.float32)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    by_array = run_release_checks(tmp_path / "a", before, pink, SR, ceiling_dbtp=-1.0, target_lufs=-14.0, ffmpeg=False)
    by_source = run_release_checks(tmp_path / "b", OddBlocks(before, SR), FileSource(pink_file), SR,
                                   ceiling_dbtp=-1.0, target_lufs=-14.0, ffmpeg=False)
    assert set(by_source) == set(by_array)
    for a, b in zip(by_array["translation"], by_source["translation"]):
        assert b["loudness_lufs"] == pytest.approx(a["loudness_lufs"], abs=0.01)
    for a, b in zip(by_array["codec"], by_source["codec"]):
        assert set(a) == set(b)
        for key in ("source_true_peak_dbtp", "decoded_true_peak_dbtp", "decoded_lufs", "source_lufs"):
            assert (a[key] is None) == (b[key] is None)
            if a[key] is not None:
                assert b[key] == pytest.approx(a[key], abs=0.05), key
    assert by_source["ab"]["after"]["gain_db"] == pytest.approx(by_array["ab"]["after"]["gain_db"], abs=0.01)
    np.testing.assert_allclose(by_source["short_term"]["lufs"], by_array["short_term"]["lufs"], atol=0.011)
    np.testing.assert_allclose(by_source["short_term"]["lufs"], np.round(short_term_lufs(pink, SR)[::10], 2),
                               atol=0.011)


_MEMORY_RUN = textwrap.dedent("""
    import resource, sys
    from pathlib import Path
    from stemmaster.audio_source import FileSource
    from stemmaster.release_checks import run_release_checks
    folder = Path(sys.argv[1])
    checks = run_release_checks(folder, FileSource(folder / "before.wav"), FileSource(folder / "after.wav"), 44100,
                                ceiling_dbtp=-1.0, target_lufs=-14.0)
    assert checks["status"] == "done"
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def _write_master(folder, minutes: float) -> None:
    """A synthetic stereo master (band-limited noise with a beat, soft-limited) and a quieter
    'before', written a block at a time."""
    folder.mkdir()
    sos = butter(2, [40.0, 12000.0], btype="bandpass", output="sos", fs=SR)
    rng = np.random.default_rng(7)
    zi = np.zeros((sos.shape[0], 2, 2))
    n = int(minutes * 60 * SR)
    with sf.SoundFile(str(folder / "after.wav"), "w", SR, 2, subtype="FLOAT") as after, \
            sf.SoundFile(str(folder / "before.wav"), "w", SR, 2, subtype="FLOAT") as before:
        for a in range(0, n, 1 << 18):
            m = min(n, a + (1 << 18)) - a
            x, zi = sosfilt(sos, rng.standard_normal((2, m)), axis=1, zi=zi)
            beat = 0.6 + 0.4 * (np.sin(2 * np.pi * 2.0 * (a + np.arange(m)) / SR) > 0)
            y = np.tanh(0.5 * x * beat) * 0.85
            after.write(y.T.astype(np.float32))
            before.write((0.3 * y).T.astype(np.float32))


def _peak_rss_mb(folder) -> float:
    out = subprocess.run([sys.executable, "-c", _MEMORY_RUN, str(folder)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0  # ru_maxrss is in KiB on Linux


def test_memory_does_not_grow_with_the_song(tmp_path):
    _write_master(tmp_path / "one", 1.0)
    _write_master(tmp_path / "six", 6.0)
    one, six = _peak_rss_mb(tmp_path / "one"), _peak_rss_mb(tmp_path / "six")
    print(f"peak RSS of run_release_checks on FileSources: 1 minute {one:.1f} MB, 6 minutes {six:.1f} MB "
          f"(+{six - one:.1f} MB; 5 minutes of stereo float32 is 106 MB)")
    assert six - one < 40.0
    assert (tmp_path / "six" / "ab" / "after.wav").is_file() and (tmp_path / "six" / "plots").is_dir()
