"""The diagnosis read block by block: sources read from files give what the same arrays give, any
block size gives the same, bad samples are found while reading, and the memory does not grow with
the song's length."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemmaster.audio_source import BlockWriter, FileSource
from stemmaster.demo import make_demo_stems
from stemmaster.diagnosis import diagnose
from stemmaster.errors import AudioError
from tests.diagnosis_signals import SR, clean_stems, mix_of

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("vocals", "drums", "bass", "other")


def _assert_same(d, e, tol=0.05):
    """Same verdict and findings (id, stem, severity, evidence counts); measurements within ``tol``."""
    assert d.verdict == e.verdict
    assert [(f.id, f.stem, f.severity) for f in d.findings] == [(f.id, f.stem, f.severity) for f in e.findings]
    for f, g in zip(d.findings, e.findings):
        assert f.measured == pytest.approx(g.measured, abs=tol), f.id
        if "clip_runs" in f.details:
            assert f.details["clip_runs"] == g.details["clip_runs"]
    assert d.measurements.keys() == e.measurements.keys()
    for stem, values in d.measurements.items():
        assert values.keys() == e.measurements[stem].keys(), stem
        for key, v in values.items():
            w = e.measurements[stem][key]
            if math.isnan(v) or math.isinf(v):
                assert (math.isnan(v) and math.isnan(w)) or v == w, (stem, key, v, w)
            else:
                assert v == pytest.approx(w, abs=tol), (stem, key)


@pytest.fixture(scope="module")
def demo():
    return make_demo_stems(SR, duration_s=20.0)


@pytest.fixture(scope="module")
def demo_files(demo, tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    for name, audio in demo.items():
        sf.write(str(folder / f"{name}.wav"), audio.T, SR, subtype="FLOAT")
    return folder


@pytest.fixture(scope="module")
def demo_diagnosis(demo):
    return diagnose([(k, k, v) for k, v in demo.items()], SR)


def test_file_sources_give_what_the_arrays_give(demo_files, demo_diagnosis):
    stems = [(k, k, FileSource(demo_files / f"{k}.wav")) for k in NAMES]
    d = diagnose(stems, SR)
    assert {("sibilance", "vocals"), ("harsh_resonance", "vocals"), ("wide_low_end", "bass")} <= \
        {(f.id, f.stem) for f in d.findings}
    _assert_same(d, demo_diagnosis)
    # a mix given as a source, as a render is
    mix = sum(a.astype(np.float64) for a in (sf.read(str(demo_files / f"{k}.wav"), dtype="float32")[0].T
                                             for k in NAMES))
    sf.write(str(demo_files / "mix.wav"), mix.T.astype(np.float32), SR, subtype="FLOAT")
    _assert_same(diagnose(stems, SR, mix=FileSource(demo_files / "mix.wav"), source="render"),
                 diagnose([(k, k, v) for k, v in zip(NAMES, (s.read_all() for _, _, s in stems))], SR,
                          mix=mix.astype(np.float32), source="render"))


@pytest.mark.parametrize("block_frames", [5000, 2047])
def test_odd_block_sizes_give_the_same(demo, demo_diagnosis, block_frames):
    _assert_same(diagnose([(k, k, v) for k, v in demo.items()], SR, block_frames=block_frames), demo_diagnosis)


def test_clipped_runs_across_block_boundaries_are_counted_once():
    clean = clean_stems()
    mix = mix_of(clean).astype(np.float64)
    clipped = np.clip(mix, -0.15, 0.15) / 0.15 * 0.98
    whole = diagnose([], SR, mix=clipped)
    assert [f.id for f in whole.findings if f.id == "clipping"]
    for block_frames in (5000, 4099):
        _assert_same(diagnose([], SR, mix=clipped, block_frames=block_frames), whole)


def test_bad_samples_are_found_while_reading_and_stay_one_line(tmp_path):
    audio = (np.random.default_rng(0).standard_normal((2, SR * 3)) * 0.1).astype(np.float32)
    late = audio.copy()
    late[1, -10] = np.nan  # in the last of many blocks
    with pytest.raises(AudioError, match=r"^vocals: NaN or Inf samples; cannot diagnose$"):
        diagnose([("vocals", "vocals", late)], SR, block_frames=5000)
    sf.write(str(tmp_path / "inf.wav"), np.where(late != late, np.inf, late).T, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"^drums: NaN or Inf"):
        diagnose([("drums", "drums", FileSource(tmp_path / "inf.wav"))], SR)
    with pytest.raises(AudioError, match=r"expected audio shaped \(1 or 2 channels, samples\), got \(3, 100\)"):
        diagnose([("bass", "bass", np.zeros((3, 100), np.float32))], SR)
    with pytest.raises(AudioError, match="expected float32 or float64 audio"):
        diagnose([("bass", "bass", np.zeros((2, 100), np.int16))], SR)
    with pytest.raises(AudioError, match="expected audio shaped"):
        diagnose([("bass", "bass", np.zeros((2, 0), np.float32))], SR)
    sf.write(str(tmp_path / "mono48k.wav"), audio[0], 48000, subtype="FLOAT")
    with pytest.raises(AudioError, match="48000 Hz, expected 44100 Hz"):
        diagnose([("bass", "bass", FileSource(tmp_path / "mono48k.wav"))], SR)


def test_a_mono_stem_among_stereo_ones_as_a_source(tmp_path):
    clean = clean_stems()
    sf.write(str(tmp_path / "vocals.wav"), clean["vocals"][0], SR, subtype="FLOAT")
    stems = [(k, k, v) for k, v in clean.items() if k != "vocals"]
    from_file = diagnose([("vocals", "vocals", FileSource(tmp_path / "vocals.wav"))] + stems, SR)
    from_array = diagnose([("vocals", "vocals", clean["vocals"][:1])] + stems, SR)
    _assert_same(from_file, from_array)
    assert "vocal_over_rest_lu" in from_file.measurements["mix"]


def _write_song(folder: Path, minutes: float) -> None:
    """Four synthetic stereo stems (float WAV), made and written 10 s at a time: a sung line, drum hits,
    a bass and a noisy pad."""
    folder.mkdir()
    block = 10 * SR
    frames = int(minutes * 60 * SR)
    writers = {k: BlockWriter(folder / f"{k}.wav", SR, 2, "FLOAT", frames_hint=frames) for k in NAMES}
    for start in range(0, frames, block):
        n = min(block, frames - start)
        t = (start + np.arange(n)) / SR
        rng = np.random.default_rng(start)
        f0 = 220.0 * 2.0 ** (np.floor(t * 2.0) % 7 / 12.0)
        vocals = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8)) * 0.1 * ((t % 2.0) < 1.6)
        hit = np.exp(-(t % 0.5) / 0.05)
        drums = (np.sin(2 * np.pi * 60 * t) + 0.3 * rng.standard_normal(n)) * hit * 0.6
        bass = np.sin(2 * np.pi * 55.0 * t) * 0.25
        other = rng.standard_normal((2, n)) * 0.02
        for name, x in (("vocals", vocals), ("drums", drums), ("bass", bass)):
            writers[name].write(np.vstack([x, x]).astype(np.float32))
        writers["other"].write(other.astype(np.float32))
    for w in writers.values():
        w.close()


_PEAK_RSS = """
import resource, sys
from pathlib import Path
from stemmaster.audio_source import FileSource
from stemmaster.diagnosis import diagnose
folder = Path(sys.argv[1])
d = diagnose([(k, k, FileSource(folder / f"{k}.wav")) for k in ("vocals", "drums", "bass", "other")], 44100)
assert d.measurements["mix"]["integrated_lufs"] > -40.0
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


# Started through a small Python in between: a process started straight from pytest would report
# pytest's own peak (Linux carries ``ru_maxrss`` across the fork and exec), and so hide ours under it.
_VIA = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


def _peak_rss_kb(folder: Path) -> int:
    done = subprocess.run([sys.executable, "-c", _VIA, sys.executable, "-c", _PEAK_RSS, str(folder)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def test_memory_does_not_grow_with_the_song(tmp_path):
    _write_song(tmp_path / "one", 1.0)
    _write_song(tmp_path / "six", 6.0)
    _peak_rss_kb(tmp_path / "one")  # numba's cache and the imports warm, not counted
    one = _peak_rss_kb(tmp_path / "one")
    six = _peak_rss_kb(tmp_path / "six")
    print(f"\npeak RSS diagnosing 4 stems from files: 1 minute {one / 1024:.1f} MB, 6 minutes {six / 1024:.1f} MB")
    # one 5-minute stereo float32 copy of a stem is 106 MB
    assert six - one < 40 * 1024, (one, six)
