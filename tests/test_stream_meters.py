"""Block-wise sources, writers and meters: fed in blocks of any size, they read what the
whole-signal meters read on the whole."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from stemmaster.audio_source import ArraySource, BlockWriter, FileSource, SumSource, as_source
from stemmaster.errors import AudioError
from stemmaster.meters import loudness
from stemmaster.meters.analysis import measure
from stemmaster.meters.stream import LoudnessMeter, MetricsMeter, PeakMeter, measure_source
from stemmaster.meters.truepeak import true_peak_dbtp

SIZES = [1, 4409, 4410, 4411, 100_000, 7, 1 << 18]  # across hop and block boundaries


def _signal(channels: int, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((channels, n)) * np.linspace(0.01, 0.3, n)
    x[:, n // 3] = 0.99  # one peak, for the true-peak meter
    return x.astype(np.float32)


def _feed(meters, x: np.ndarray) -> None:
    i = k = 0
    while i < x.shape[1]:
        b = SIZES[k % len(SIZES)]
        for m in meters:
            m.add(x[:, i:i + b])
        i, k = i + b, k + 1


@pytest.mark.parametrize("rate, channels, seconds", [(44100, 2, 20.3), (48000, 1, 7.1), (11025, 2, 9.01)])
def test_block_meters_equal_the_whole_signal_meters(rate, channels, seconds):
    x = _signal(channels, int(rate * seconds))
    lm, pm, mm = LoudnessMeter(rate, channels), PeakMeter(), MetricsMeter(rate, channels)
    _feed([lm, pm, mm], x)
    energy, lengths = lm.hop_energy()
    whole, whole_lengths = loudness._prepared_energy(x, rate)
    assert np.array_equal(lengths, whole_lengths)
    np.testing.assert_allclose(energy, whole, rtol=1e-12)
    assert lm.integrated_lufs() == pytest.approx(loudness.gated_loudness_lufs(x, rate), abs=1e-9)
    assert lm.loudness_range_lu() == pytest.approx(loudness.loudness_range_lu(x, rate), abs=1e-9)
    assert pm.true_peak_dbtp == pytest.approx(true_peak_dbtp(x), abs=1e-9)  # the same kernel, same neighbourhoods
    got, want = mm.metrics().to_dict(), measure(x, rate, pyloudnorm=False).to_dict()
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-9), key


@pytest.mark.parametrize("fold_mono", [False, True])
def test_loudness_through_a_filter_equals_the_whole_signal_reading(fold_mono):
    rate = 44100
    x = _signal(2, rate * 6)
    sos = np.array([[0.5, -0.9, 0.45, 1.0, -1.8, 0.85]])
    meter = LoudnessMeter(rate, 2, sos=sos, fold_mono=fold_mono)
    _feed([meter], x)
    assert meter.integrated_lufs() == pytest.approx(
        loudness.gated_loudness_through(x, rate, sos, fold_mono=fold_mono), abs=1e-9)


def test_a_peak_meter_once_read_refuses_more_audio():
    meter = PeakMeter()
    meter.add(np.full((2, 100), 0.5, np.float32))
    assert meter.sample_peak_dbfs == pytest.approx(-6.0206, abs=1e-4)
    assert meter.true_peak_dbtp >= meter.sample_peak_dbfs
    with pytest.raises(ValueError, match="ended"):
        meter.add(np.zeros((2, 10), np.float32))


def test_sources_read_what_the_files_and_arrays_hold(tmp_path):
    rate = 44100
    a, b = _signal(2, 50_000, 1), _signal(1, 50_000, 2)
    sf.write(tmp_path / "a.wav", a.T, rate, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", b.T, rate, subtype="FLOAT")
    fa, fb = FileSource(tmp_path / "a.wav"), FileSource(tmp_path / "b.wav")
    assert (fa.sample_rate, fa.channels, fa.frames) == (rate, 2, 50_000)
    assert np.array_equal(fa.read(1234, 40_000), a[:, 1234:40_000])
    total = SumSource([fa, fb])
    assert total.channels == 2
    np.testing.assert_allclose(total.read(0, 50_000), a + b, atol=1e-7)  # mono plays on both channels
    parts = [blk for _, blk in as_source(a, rate).blocks(7777)]
    assert np.array_equal(np.concatenate(parts, axis=1), a)
    assert measure_source(fa).to_dict() == pytest.approx(measure(a, rate, pyloudnorm=False).to_dict(), abs=1e-9)
    with pytest.raises(AudioError, match="differ"):
        SumSource([fa, ArraySource(a[:, :10], rate)])
    with pytest.raises(AudioError, match="nope.wav"):
        FileSource(tmp_path / "nope.wav")


def test_a_block_writer_lands_the_whole_file_or_nothing(tmp_path):
    rate = 48000
    x = _signal(2, 30_000)
    with BlockWriter(tmp_path / "out.wav", rate, 2, "PCM_24") as w:
        for start in range(0, x.shape[1], 7000):
            w.write(x[:, start:start + 7000])
    data, sr = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert sr == rate and data.shape == (30_000, 2)
    assert np.max(np.abs(data.T - np.clip(x, -1, 1))) < 2.0 ** -22
    before = (tmp_path / "out.wav").read_bytes()
    with pytest.raises(RuntimeError):
        with BlockWriter(tmp_path / "out.wav", rate, 2, "PCM_16") as w:
            w.write(x[:, :1000])
            raise RuntimeError("interrupted")
    assert (tmp_path / "out.wav").read_bytes() == before  # the earlier file stands
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]  # no temporary left behind
    with pytest.raises(AudioError, match="NaN"):
        with BlockWriter(tmp_path / "bad.wav", rate, 2) as w:
            w.write(np.full((2, 10), np.nan, np.float32))
    assert not (tmp_path / "bad.wav").exists()
