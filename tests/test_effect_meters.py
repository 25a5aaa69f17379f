"""EffectMeter: a repair's effect measured from consecutive blocks of its input and output equals
meters.effects.repair_effects on the whole arrays, on signals with known answers and on the demo stems,
and its memory does not grow with the song beyond its per-frame figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from stemmaster.audio_source import BlockWriter
from stemmaster.demo import make_demo_stems
from stemmaster.dsp.deesser import DeEsser
from stemmaster.dsp.deharsher import DeHarsher
from stemmaster.dsp.eq import _peaking
from stemmaster.dsp.low_end_mono import LowEndMono
from stemmaster.dsp.transient_shaper import TransientShaper
from stemmaster.meters.effects import EffectMeter, repair_effects
from stemmaster.meters.spectral import _HitCrest, _Sibilance, _top_frames, sibilant_frames
from stemmaster.repair import build_chain, default_chain
from tests.diagnosis_signals import SR, clean_stems

BLOCKS = (1 << 18, 5000, 4097, 1)
KNOWN_S = 3.0  # the known-answer signals' length (1-sample blocks cost a few microseconds each)
DEMO_S = 5.0  # the demo's shortest
DEMO_PREFIX_S = 2.0
TOLERANCE_DB = 1e-6
MEASURED = ("deesser", "deharsher", "low_end_mono", "transient_shaper")
BURST_STARTS_S = (0.6, 1.2, 1.8, 2.4)
BURST_S = 0.08


def _feed(meter: EffectMeter, before: np.ndarray, after: np.ndarray, block: int) -> dict:
    for start in range(0, before.shape[1], block):
        meter.add(before[:, start:start + block], after[:, start:start + block])
    return meter.result()


def _assert_same(got, want, path: str = "") -> float:
    """``got`` equals ``want`` (nested dicts of floats) within TOLERANCE_DB; returns the largest difference."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), path
        return max([_assert_same(got[k], want[k], f"{path}.{k}") for k in want], default=0.0)
    if math.isnan(want):
        assert math.isnan(got), path
        return 0.0
    if math.isinf(want):
        assert got == want, path
        return 0.0
    assert abs(got - want) <= TOLERANCE_DB, (path, got, want)
    return abs(got - want)


def _assert_blocks_read_the_whole(kind: str, before: np.ndarray, after: np.ndarray, sample_rate: int,
                                  blocks: tuple[int, ...] = BLOCKS) -> dict:
    want = repair_effects([(kind, before, after)], sample_rate)
    for block in blocks:
        got = _feed(EffectMeter(kind, sample_rate, before.shape[0]), before, after, block)
        _assert_same(got, want, f"{kind}[{block}]")
    return want


# ---------------------------------------------------------------- signals with known answers


@pytest.fixture(scope="module")
def clean():
    n = int(KNOWN_S * SR)
    return {k: v[:, :n] for k, v in clean_stems().items()}


def _sibilant_vocal(clean) -> np.ndarray:
    """The clean vocal with four 80 ms noise bursts (5-9 kHz), each 6 dB over the vocal's RMS."""
    voc = clean["vocals"].astype(np.float64)
    n = voc.shape[1]
    noise = signal.sosfiltfilt(signal.butter(4, [5000, 9000], "bandpass", fs=SR, output="sos"),
                               np.random.default_rng(7).standard_normal(n))
    envelope = np.zeros(n)
    for start_s in BURST_STARTS_S:
        a = int(start_s * SR)
        envelope[a:a + int(BURST_S * SR)] = np.hanning(int(BURST_S * SR)) ** 0.25
    noise *= 2.0 * np.sqrt(np.mean(voc ** 2) / np.mean(noise ** 2))
    return (voc + noise * envelope).astype(np.float32)


def test_deesser_effect_from_blocks(clean):
    before = _sibilant_vocal(clean)
    after = DeEsser().process(before, SR)
    effect = _assert_blocks_read_the_whole("deesser", before, after, SR)["sibilance_db"]
    assert effect["before"] - effect["after"] >= 6.0
    # the sibilant frames of the input are the bursts' frames (1024 samples, hop 512)
    frames = sibilant_frames(before, SR)
    spans = [(int(s * SR), int((s + BURST_S) * SR)) for s in BURST_STARTS_S]
    assert frames.size and all(any(f * 512 < b and f * 512 + 1024 > a for a, b in spans) for f in frames)


def test_deharsher_effect_from_blocks(clean):
    before = signal.sosfilt(_peaking(3000.0, 12.0, 8.0, SR), clean["vocals"].astype(np.float64),
                            axis=-1).astype(np.float32)  # a +12 dB, Q 8 ring at 3 kHz
    after = DeHarsher().process(before, SR)
    effect = _assert_blocks_read_the_whole("deharsher", before, after, SR)["resonance"]
    assert abs(effect["frequency_hz"] - 3000.0) < 300.0
    assert effect["cut_db"] >= 3.0 and effect["before_db"] - effect["after_db"] >= 3.0


def test_low_end_mono_effect_from_blocks(clean):
    bass = clean["bass"].astype(np.float64)  # mono: left = right
    n = bass.shape[1]
    low = signal.sosfiltfilt(signal.butter(4, [30, 80], "bandpass", fs=SR, output="sos"),
                             np.random.default_rng(8).standard_normal(n + 2 * SR))[SR:SR + n]  # no edges
    low *= 0.5 * np.sqrt(np.mean(bass ** 2) / np.mean(low ** 2))
    before = (bass + np.vstack([low, -low])).astype(np.float32)  # the side is the 30-80 Hz noise alone
    after = LowEndMono(crossover_hz=120.0).process(before, SR)
    effect = _assert_blocks_read_the_whole("low_end_mono", before, after, SR)["side_low"]
    assert effect["below_hz"] == 100.0
    assert effect["before_dbfs"] == pytest.approx(10.0 * np.log10(np.mean(low ** 2)), abs=1.0)
    assert effect["after_dbfs"] <= effect["before_dbfs"] - 30.0


def test_transient_shaper_effect_from_blocks(clean):
    before = clean["drums"]
    after = TransientShaper(attack_db=6.0).process(before, SR)
    effect = _assert_blocks_read_the_whole("transient_shaper", before, after, SR)["hit_crest_db"]
    assert effect["after"] - effect["before"] >= 1.0


def test_frame_and_window_selections_are_the_whole_signals(clean):
    """The per-frame figures fed in odd blocks are the whole signal's: the same sibilant frames and
    the same loud 50 ms windows."""
    audio = _sibilant_vocal(clean)
    whole, pieces = _Sibilance(SR), _Sibilance(SR)
    whole.add(audio)
    for start in range(0, audio.shape[1], 4097):
        pieces.add(audio[:, start:start + 4097])
    (band_w, total_w), (band_p, total_p) = whole.energies(), pieces.energies()
    assert band_p.shape == band_w.shape == (int((audio.shape[1] - 1024) // 512 + 1),)
    np.testing.assert_allclose(band_p, band_w, rtol=1e-12)
    np.testing.assert_allclose(total_p, total_w, rtol=1e-12)
    np.testing.assert_array_equal(_top_frames(band_p, total_p, 0.05), sibilant_frames(audio, SR))
    drums = clean["drums"]
    whole_hits, piece_hits = _HitCrest(SR), _HitCrest(SR)
    whole_hits.add(drums)
    for start in range(0, drums.shape[1], 5000):
        piece_hits.add(drums[:, start:start + 5000])
    assert piece_hits.crest_db() == whole_hits.crest_db()


# ---------------------------------------------------------------- the demo stems, default chains


def _demo_stages(duration_s: float) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(stem, kind, input, output) of every default repair on the demo stems, as the render runs them."""
    stages = []
    for role, audio in make_demo_stems(sample_rate=SR, duration_s=duration_s).items():
        before = np.ascontiguousarray(audio, dtype=np.float32)
        for processor in build_chain(default_chain(role)).processors:
            after = processor.process(before, SR)
            stages.append((role, processor.kind, before, after))
            before = after
    return stages


def test_demo_stems_through_their_default_repairs():
    stages = _demo_stages(DEMO_S)
    assert {kind for _, kind, _, _ in stages} >= set(MEASURED)
    for _role, kind, before, after in stages:
        effect = _assert_blocks_read_the_whole(kind, before, after, SR, BLOCKS[:-1])
        assert bool(effect) == (kind in MEASURED)
        # sample by sample on the first 2 s (1-sample blocks cost microseconds each), against those 2 s whole
        n = int(DEMO_PREFIX_S * SR)
        _assert_blocks_read_the_whole(kind, before[:, :n], after[:, :n], SR, BLOCKS[-1:])


# ---------------------------------------------------------------- edges


@pytest.mark.parametrize("kind", MEASURED)
@pytest.mark.parametrize("shape", [(2, 0), (2, 100), (2, 300), (2, 1500), (2, 5000), (2, 9000), (1, 20000)])
def test_short_and_mono_signals(kind, shape):
    """Under one frame of any analysis (the long-term spectrum then is one frame as long as the
    signal), and mono."""
    rng = np.random.default_rng(shape[1])
    before = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    after = (before * np.float32(0.5) + 0.01 * rng.standard_normal(shape)).astype(np.float32)
    _assert_blocks_read_the_whole(kind, before, after, SR)


@pytest.mark.parametrize("kind", ["highpass", "gain", "stereo_width", "tone_eq"])
def test_unmeasured_kinds_give_nothing(kind):
    x = np.ones((2, 3000), dtype=np.float32)
    meter = EffectMeter(kind, SR, 2)
    meter.add(x, x)
    assert meter.result() == {} == repair_effects([(kind, x, x)], SR)
    assert not meter.measured


def test_blocks_must_match():
    meter = EffectMeter("deesser", SR, 2)
    with pytest.raises(ValueError):
        meter.add(np.zeros((2, 10), np.float32), np.zeros((2, 11), np.float32))
    with pytest.raises(ValueError):
        meter.add(np.zeros((1, 10), np.float32), np.zeros((1, 10), np.float32))


# ---------------------------------------------------------------- memory

_CHILD = r"""
import json, resource, sys, tracemalloc
from pathlib import Path
from stemmaster.audio_source import FileSource
from stemmaster.meters.effects import EffectMeter

def status_mb(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0
    return float("nan")

before, after = FileSource(sys.argv[1]), FileSource(sys.argv[2])
kinds = sys.argv[3].split(",")
warm = [EffectMeter(k, before.sample_rate, before.channels) for k in kinds]  # compile and load the kernels
for m in warm:
    m.add(before.read(0, 20000), after.read(0, 20000))
    m.result()
del warm
try:  # restart the peak (VmHWM) from here: the imports' and compilers' peak would hide the run's
    Path("/proc/self/clear_refs").write_text("5")
    reset = True
except OSError:
    reset = False
start_mb = status_mb("VmRSS")
meters = [EffectMeter(k, before.sample_rate, before.channels) for k in kinds]
tracemalloc.start()
for (_, b), (_, a) in zip(before.blocks(), after.blocks()):
    for m in meters:
        m.add(b, a)
results = [m.result() for m in meters]
traced_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
peak_mb = status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"start_rss_mb": start_mb, "peak_rss_mb": peak_mb, "peak_reset": reset,
                  "traced_peak_mb": traced_peak / 2 ** 20, "results": results}))
"""


def _long_pair(folder: Path, minutes: float, before: np.ndarray, after: np.ndarray) -> tuple[Path, Path]:
    """WAV files of ``minutes`` of ``before`` and ``after`` repeated, written block by block."""
    paths = folder / f"before_{minutes}.wav", folder / f"after_{minutes}.wav"
    frames = int(minutes * 60 * SR)
    for path, audio in zip(paths, (before, after)):
        with BlockWriter(path, SR, 2, "PCM_16") as writer:
            for start in range(0, frames, audio.shape[1]):
                writer.write(audio[:, :min(audio.shape[1], frames - start)])
    return paths


def test_memory_does_not_grow_with_the_song(tmp_path):
    """Every measured kind fed a 1-minute and a 6-minute song from files: the longer song's peak
    memory (the whole process' and numpy's) exceeds the shorter's by under 20 MB (its stereo
    float32 audio alone would be 127 MB)."""
    vocals = make_demo_stems(sample_rate=SR, duration_s=10.0)["vocals"]
    processed = DeEsser().process(vocals, SR)
    runs = {}
    for minutes in (1.0, 6.0):
        before, after = _long_pair(tmp_path, minutes, vocals, processed)
        out = subprocess.run([sys.executable, "-c", _CHILD, str(before), str(after), ",".join(MEASURED)],
                             capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
        runs[minutes] = json.loads(out.stdout)
        before.unlink()
        after.unlink()
    for minutes, run in runs.items():
        print(f"{minutes:.0f} min: peak RSS {run['peak_rss_mb']:.1f} MB (from {run['start_rss_mb']:.1f} MB before "
              f"the run{'' if run['peak_reset'] else '; peak not reset: since the start'}), "
              f"numpy/Python peak (tracemalloc) {run['traced_peak_mb']:.1f} MB")
        assert len(run["results"]) == len(MEASURED) and all(run["results"])
    assert runs[6.0]["peak_rss_mb"] - runs[1.0]["peak_rss_mb"] < 20.0
    assert runs[6.0]["traced_peak_mb"] - runs[1.0]["traced_peak_mb"] < 20.0
