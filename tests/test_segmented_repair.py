"""A stem's repair chain segment by segment (stemmaster/dsp/segmented.py): the same output as the
whole stem within 1e-5 (exactly where the chain is the identity), pinned whole-stem statistics,
and memory bounded by the segment, not the song."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from stemmaster import repair
from stemmaster.audio_source import ArraySource, BlockWriter, FileSource
from stemmaster.demo import make_demo_stems
from stemmaster.dsp.chain import Chain
from stemmaster.dsp.deesser import DeEsser, DeEsserStatistics
from stemmaster.dsp.deharsher import DeHarsher, frame_length
from stemmaster.dsp.gain import Gain
from stemmaster.dsp.highpass import HighPass
from stemmaster.dsp.low_end_mono import LowEndMono
from stemmaster.dsp.processor import Processor
from stemmaster.dsp.segmented import MIN_SEGMENT_CONTEXTS, context_samples, prepare_chain, process_segments
from stemmaster.dsp.transient_shaper import TransientShaper
from stemmaster.dsp.width import StereoWidth
from tests.test_deesser import _voiced_with_bursts
from tests.test_deharsher import _peaking, _pink
from tests.test_transient_shaper import _isolated_hits

SR = 44100
TOLERANCE = 1e-5  # -100 dBFS


def _segmented(chain: Chain, x: np.ndarray, sample_rate: int, segment_s: float, min_segments: int = 1
               ) -> list[np.ndarray]:
    """Every stage of ``process_segments`` over ``x``, the segments joined; checks they tile it."""
    parts: list[list[np.ndarray]] = [[] for _ in range(len(chain.processors) + 1)]
    expected = 0
    for start, stages in process_segments(chain, ArraySource(x, sample_rate), segment_s=segment_s):
        assert start == expected and len(stages) == len(parts)
        for part, stage in zip(parts, stages):
            assert stage.dtype == np.float32 and stage.shape == stages[0].shape
            part.append(stage)
        expected += stages[0].shape[1]
    assert expected == x.shape[1]
    assert len(parts[0]) >= min_segments, f"{len(parts[0])} segments"
    return [np.concatenate(p, axis=1) for p in parts]


def _whole_stages(chain: Chain, x: np.ndarray, sample_rate: int) -> list[np.ndarray]:
    """Each processor on the whole stem in float32, as the render runs them today."""
    stages = [x]
    for p in chain.processors:
        stages.append(p.process(stages[-1], sample_rate))
    return stages


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - b))) if a.size else 0.0


def _check_equal(chain: Chain, x: np.ndarray, sample_rate: int, segment_s: float, min_segments: int = 1) -> float:
    """Segmented vs whole: the last stage against ``chain.process``, each stage against the float32
    whole-stem stage; returns the largest difference."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    seg = _segmented(chain, x, sample_rate, segment_s, min_segments)
    assert np.array_equal(seg[0], x)
    worst = _max_diff(seg[-1], chain.process(x, sample_rate))
    assert worst < TOLERANCE, worst
    for k, (s, w) in enumerate(zip(seg, _whole_stages(chain, x, sample_rate))):
        d = _max_diff(s, w)
        assert d < TOLERANCE, (k, d)
        worst = max(worst, d)
    return worst


# ---------------------------------------------------------------- the processors alone


def _vocal_bursts(sample_rate: int, seconds: float = 12.0) -> np.ndarray:
    return _voiced_with_bursts(sample_rate, seconds=seconds)[0]


def _resonant_pink(sample_rate: int, seconds: float = 10.0) -> np.ndarray:
    return _peaking(_pink(int(seconds * sample_rate), seed=3), sample_rate)


def _hits(sample_rate: int, seconds: float = 20.0) -> np.ndarray:
    return _isolated_hits(sample_rate, seconds=seconds)[0]


def _noise_with_dc(sample_rate: int, seconds: float = 8.0) -> np.ndarray:
    rng = np.random.default_rng(4)
    return 0.2 * rng.standard_normal((2, int(seconds * sample_rate))) + np.array([[0.1], [-0.05]])


# (name, processor, signal, seconds): long enough for three segments or more at segment_s = 2
# (a core is at least MIN_SEGMENT_CONTEXTS contexts)
CASES = [
    ("deesser", DeEsser(), _vocal_bursts, 12.0),
    ("deesser_fixed", DeEsser(frequency_hz=6000.0, threshold_db=3.0, release_ms=200.0), _vocal_bursts, 30.0),
    ("deharsher", DeHarsher(), _resonant_pink, 18.0),
    ("deharsher_slow", DeHarsher(depth_db=12.0, attack_ms=50.0, release_ms=250.0), _resonant_pink, 32.0),
    ("transient_attack", TransientShaper(attack_db=6.0), _hits, 10.0),
    ("transient_sustain", TransientShaper(attack_db=3.0, sustain_db=-6.0), _hits, 32.0),
    ("highpass", HighPass(highpass_hz=70.0), _noise_with_dc, 8.0),
    ("highpass4", HighPass(highpass_hz=30.0, order=4), _noise_with_dc, 8.0),
    ("low_end_mono", LowEndMono(crossover_hz=120.0), _noise_with_dc, 8.0),
    ("gain", Gain(gain_db=-4.5), _noise_with_dc, 8.0),
    ("width", StereoWidth(width=1.4, mid_gain_db=-1.0), _noise_with_dc, 8.0),
]


@pytest.mark.parametrize("segment_s", [2.0, 30.0])
@pytest.mark.parametrize("name,processor,make,seconds", CASES, ids=[c[0] for c in CASES])
def test_each_processor_segmented_equals_whole(name, processor, make, seconds, segment_s):
    worst = _check_equal(Chain((processor,)), make(SR, seconds), SR, segment_s, 3 if segment_s == 2.0 else 1)
    print(f"{name} segment_s={segment_s}: largest difference {worst:.2e}")


@pytest.mark.parametrize("sample_rate", [48000, 96000])
def test_processors_segmented_at_other_rates(sample_rate):
    x = _vocal_bursts(sample_rate)
    _check_equal(Chain((HighPass(highpass_hz=70.0), DeHarsher(), DeEsser())), x, sample_rate, 2.0, 2)


def test_identity_chains_are_exact():
    x = make_demo_stems(duration_s=6.0)["vocals"]
    for chain in (Chain(()), Chain((DeHarsher(depth_db=0.0), Gain(), StereoWidth(), HighPass(),
                                    TransientShaper(), DeEsser(max_reduction_db=0.0)))):
        assert context_samples(chain, SR) == 0
        for stage in _segmented(chain, x, SR, 2.0):
            assert np.array_equal(stage, x)


def test_a_stem_shorter_than_a_segment_is_processed_whole():
    x = np.ascontiguousarray(_vocal_bursts(SR)[:, :int(1.5 * SR)], dtype=np.float32)
    chain = Chain((HighPass(highpass_hz=70.0), DeHarsher(), DeEsser()))
    segments = list(process_segments(chain, ArraySource(x, SR)))
    assert len(segments) == 1 and segments[0][0] == 0
    for got, want in zip(segments[0][1], _whole_stages(chain, x, SR)):
        assert _max_diff(got, want) < 1e-7
    assert _max_diff(segments[0][1][-1], chain.process(x, SR)) < TOLERANCE
    assert list(process_segments(chain, ArraySource(x[:, :0], SR))) == []


def test_the_deharsher_does_not_need_the_stems_peak():
    # the STFT input is scaled to unit peak (float32 precision): a quiet segment of a loud stem is
    # scaled by its own peak (here 40 dB more), which changes nothing beyond float32 rounding
    x = _resonant_pink(SR, 18.0)
    x[:, :x.shape[1] // 2] *= 0.01
    assert _check_equal(Chain((DeHarsher(),)), x, SR, 2.0, 3) < 1e-6


# ---------------------------------------------------------------- the default chains


@pytest.fixture(scope="module")
def demo_stems():
    return make_demo_stems()


@pytest.mark.parametrize("segment_s", [2.0, 30.0])
@pytest.mark.parametrize("role", ["vocals", "drums", "bass", "other"])
def test_default_chains_segmented_equal_whole(demo_stems, role, segment_s):
    chain = repair.build_chain(repair.default_chain(role))
    worst = _check_equal(chain, demo_stems[role], SR, segment_s, 4 if segment_s == 2.0 else 2)
    print(f"{role} segment_s={segment_s}: largest difference {worst:.2e}")


def test_small_segments_split_sibilant_bursts_and_hits(demo_stems):
    # with segment_s = 2 the cores are as short as the context allows: many boundaries, some of
    # them inside a burst (the de-esser's reduction is non-zero across the boundary)
    x = demo_stems["vocals"]
    chain = repair.build_chain(repair.default_chain("vocals"))
    ctx = context_samples(chain, SR)
    starts = [start for start, _ in process_segments(chain, ArraySource(x, SR), segment_s=2.0)]
    assert len(starts) >= 4 and starts[1] == MIN_SEGMENT_CONTEXTS * ctx
    reduction = DeEsser().reduction_db(_whole_stages(chain, x, SR)[2], SR)
    assert any(reduction[s] < -1.0 for s in starts[1:])


# ---------------------------------------------------------------- contexts and pinned statistics


def test_contexts_at_44k():
    contexts = {p.kind: p.context_samples(SR) for p in (
        HighPass(highpass_hz=70.0), DeHarsher(), DeEsser(), LowEndMono(), TransientShaper(attack_db=3.0),
        Gain(gain_db=-3.0), StereoWidth(width=1.5))}
    print(contexts)
    assert contexts["gain"] == contexts["stereo_width"] == 0
    assert 0 < contexts["highpass"] < 0.1 * SR and 0 < contexts["low_end_mono"] < 0.1 * SR
    assert contexts["deharsher"] % (frame_length(SR) // 2) == 0
    assert 14 * 0.1 * SR < contexts["deharsher"] < 1.6 * SR  # 14 x release_ms, a frame, on the hop grid
    assert 14 * 0.06 * SR < contexts["deesser"] < 1.0 * SR  # 14 x release_ms and a little
    assert contexts["deesser"] % DeEsser().grid_samples(SR) == 0
    # the held peak reaches the gain only with a sustain setting
    assert TransientShaper(attack_db=3.0, sustain_db=-3.0).context_samples(SR) > 3 * SR
    assert Processor().context_samples(SR) == 10 * SR  # the conservative default
    chain = repair.build_chain(repair.default_chain("vocals"))
    assert context_samples(chain, SR) >= sum(p.context_samples(SR) for p in chain.processors)


def test_pinned_statistics_equal_the_whole_stem_ones(demo_stems):
    x = demo_stems["vocals"]
    # the de-esser alone: the block-wise passes read the stem itself
    whole = DeEsser().statistics(x, SR)
    pinned = prepare_chain(Chain((DeEsser(),)), ArraySource(x, SR), segment_s=2.0).processors[0].pinned_statistics
    assert pinned.sample_rate == SR and whole.sample_rate == SR
    assert pinned.frequency_hz == pytest.approx(whole.frequency_hz, rel=1e-12)
    assert pinned.reference_power == pytest.approx(whole.reference_power, rel=1e-12)
    assert 5500.0 < whole.frequency_hz < 7500.0
    # after the high-pass and the de-harsher, which the passes run segment by segment
    chain = repair.build_chain(repair.default_chain("vocals"))
    deesser_input = _whole_stages(chain, x, SR)[2]
    whole = chain.processors[2].statistics(deesser_input, SR)
    prepared = prepare_chain(chain, ArraySource(x, SR), segment_s=2.0)
    pinned = prepared.processors[2].pinned_statistics
    assert pinned.frequency_hz == pytest.approx(whole.frequency_hz, rel=1e-6)
    assert pinned.reference_power == pytest.approx(whole.reference_power, rel=1e-6)
    # a prepared chain needs nothing more, and is equal to the chain it came from
    assert prepared == chain and not prepared.needs_statistics() and chain.needs_statistics()
    assert prepare_chain(prepared, ArraySource(x, SR)) is prepared


def test_a_pinned_deesser_on_the_whole_stem_is_the_unpinned_one_bit_for_bit():
    for x in (_vocal_bursts(SR), np.ascontiguousarray(_vocal_bursts(SR), dtype=np.float32)):
        for d in (DeEsser(), DeEsser(frequency_hz=7000.0, threshold_db=2.0)):
            pinned = d.pinned(d.statistics(x, SR))
            assert np.array_equal(pinned.process(x, SR), d.process(x, SR))
            assert np.array_equal(pinned.reduction_db(x, SR), d.reduction_db(x, SR))
            assert pinned.detect_frequency_hz(x, SR) == d.detect_frequency_hz(x, SR)


def test_pinned_statistics_are_not_settings():
    d = DeEsser(threshold_db=4.0)
    pinned = d.pinned(DeEsserStatistics(SR, 6100.0, 1e-4))
    assert pinned == d and pinned.settings() == d.settings()
    assert set(pinned.settings()) == set(DeEsser().settings())
    assert DeEsser.from_settings(pinned.settings()).pinned_statistics is None
    assert d.pinned_statistics is None and pinned.pinned_statistics.frequency_hz == 6100.0
    assert repair.full_settings("deesser", pinned.settings()) == d.settings()
    with pytest.raises(Exception, match="48000"):
        pinned.process(np.zeros((2, 100), np.float32), 48000)
    # a stem with no active frames pins "leave it as it is"
    silent = np.zeros((2, SR), np.float32)
    assert prepare_chain(Chain((d,)), ArraySource(silent, SR)).processors[0].pinned_statistics.reference_power is None


# ---------------------------------------------------------------- memory


_MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    from stemmaster.audio_source import FileSource
    from stemmaster.dsp.chain import Chain
    from stemmaster.dsp.deesser import DeEsser
    from stemmaster.dsp.deharsher import DeHarsher
    from stemmaster.dsp.highpass import HighPass
    from stemmaster.dsp.segmented import process_segments
    chain = Chain((HighPass(highpass_hz=70.0), DeHarsher(), DeEsser()))
    source = FileSource(sys.argv[1])
    frames = 0
    for start, stages in process_segments(chain, source):
        frames += stages[-1].shape[1]
    assert frames == source.frames
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


# Linux keeps ru_maxrss across exec: a child started straight from this (large) test process
# would report this process's peak. A small launcher in between starts it from a small one.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


def _write_long_vocal(path, minutes: float, vocal: np.ndarray) -> None:
    frames = int(minutes * 60 * SR)
    with BlockWriter(path, SR, 2, "FLOAT", frames_hint=frames) as writer:
        for start in range(0, frames, vocal.shape[1]):
            writer.write(vocal[:, :min(vocal.shape[1], frames - start)])


def test_memory_is_bounded_by_the_segment_not_the_song(tmp_path, demo_stems):
    vocal = demo_stems["vocals"]
    peaks_kb = {}
    for minutes in (1, 6):
        path = tmp_path / f"vocal_{minutes}min.wav"
        _write_long_vocal(path, minutes, vocal)
        assert FileSource(path).frames == minutes * 60 * SR
        out = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, "-c", _MEMORY_SCRIPT, str(path)],
                             capture_output=True, text=True, check=True)
        peaks_kb[minutes] = int(out.stdout.split()[-1])
        path.unlink()
    growth_mb = (peaks_kb[6] - peaks_kb[1]) / 1024.0
    print(f"peak RSS: 1 min {peaks_kb[1] / 1024:.1f} MB, 6 min {peaks_kb[6] / 1024:.1f} MB, growth {growth_mb:.1f} MB")
    assert growth_mb < 40.0
