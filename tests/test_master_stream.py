"""The bus master segment by segment (stemmaster.master_stream): the whole-song bus's samples
to float32 rounding, the ceiling kept, and memory that does not grow with the song."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemmaster.audio_source import ArraySource
from stemmaster.demo import make_demo_stems
from stemmaster.errors import AudioError, Cancelled
from stemmaster.master import MasterSettings, master_bus
from stemmaster.master_stream import bus_context, master_source, segments
from stemmaster.meters.loudness import gated_loudness_lufs, gated_loudness_of_energy, k_weighted_energy
from stemmaster.meters.stream import EnergyHops
from stemmaster.meters.truepeak import true_peak_dbtp

SR = 44100


@pytest.fixture(scope="module")
def demo_mix() -> np.ndarray:
    stems = make_demo_stems(sample_rate=SR, duration_s=40.0)
    return sum(v.astype(np.float64) for v in stems.values()).astype(np.float32)


@pytest.mark.parametrize("profile", ["spotify", "club"])
def test_segments_give_the_whole_song_bus_samples(demo_mix, tmp_path, profile):
    settings = MasterSettings().with_profile(profile)
    whole = master_bus(demo_mix, SR, settings)
    parts = list(segments(demo_mix.shape[1], SR, bus_context(settings, SR), segment_s=5.0))
    assert len(parts) >= 2  # segments join inside the song, where the limiter works
    result, master, mix_metrics = master_source(ArraySource(demo_mix, SR), settings, tmp_path, segment_s=5.0)
    y = master.read_all()
    assert np.max(np.abs(y - whole.audio)) < 1e-6  # float32 storage is the difference
    assert result.drive_gain_db == pytest.approx(whole.drive_gain_db, abs=1e-6)
    assert result.integrated_lufs == pytest.approx(whole.integrated_lufs, abs=1e-4)
    assert abs(result.integrated_lufs - settings.bus.target_lufs) <= settings.bus.tolerance_lu / 2
    assert true_peak_dbtp(y) <= settings.bus.ceiling_dbtp
    assert result.limiter_max_reduction_db == pytest.approx(whole.limiter_max_reduction_db, abs=1e-4)
    assert result.compressor_max_reduction_db == pytest.approx(whole.compressor_max_reduction_db, abs=1e-4)
    assert mix_metrics.integrated_lufs == pytest.approx(gated_loudness_lufs(demo_mix, SR), abs=1e-9)
    assert result.audio.size == 0 and result.bus_gain is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.wav"]  # the scratch signals are gone


def test_energy_hops_fed_in_blocks_equal_the_whole_measure(demo_mix):
    energy = k_weighted_energy(demo_mix, SR)
    gain = np.linspace(0.5, 1.0, energy.shape[0])
    hops = EnergyHops(SR)
    for start in range(0, energy.shape[0], 12345):
        hops.add_energy(energy[start:start + 12345], gain[start:start + 12345])
    assert hops.integrated_lufs() == pytest.approx(gated_loudness_of_energy(energy, SR, gain), abs=1e-9)


def test_bad_mixes_and_cancelling_leave_nothing(tmp_path):
    settings = MasterSettings()
    with pytest.raises(AudioError, match="silent"):
        master_source(ArraySource(np.zeros((2, SR * 2), np.float32), SR), settings, tmp_path)
    bad = np.full((2, SR * 2), 0.1, np.float32)
    bad[1, SR] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        master_source(ArraySource(bad, SR), settings, tmp_path)
    noise = (np.random.default_rng(0).standard_normal((2, SR * 10)) * 0.1).astype(np.float32)
    calls = []
    with pytest.raises(Cancelled):
        master_source(ArraySource(noise, SR), settings, tmp_path, cancel=lambda: len(calls) > 3 or calls.append(1))
    assert list(tmp_path.iterdir()) == []


_PEAK_SCRIPT = """
import json, sys
from pathlib import Path
from stemmaster.audio_source import FileSource
from stemmaster.master import MasterSettings
from stemmaster.master_stream import master_source
def hwm_kb():  # this address space's peak (ru_maxrss would carry the parent's over exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
result, master, _ = master_source(FileSource(Path(sys.argv[1])), MasterSettings(), Path(sys.argv[2]), segment_s=10.0)
print(json.dumps({"peak_kb": hwm_kb(), "lufs": result.integrated_lufs}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_memory_does_not_grow_with_the_song(tmp_path):
    loop = make_demo_stems(sample_rate=SR, duration_s=20.0)
    loop = sum(v.astype(np.float64) for v in loop.values()).T.astype(np.float32)
    peaks = {}
    for minutes in (1, 3):  # segments of about 20 s (at least 4x the context): both songs have several
        path = tmp_path / f"mix{minutes}.wav"
        with sf.SoundFile(path, "w", SR, 2, subtype="FLOAT") as f:
            for _ in range(minutes * 3):
                f.write(loop)
        work = tmp_path / f"work{minutes}"
        work.mkdir()
        out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(path), str(work)], capture_output=True,
                             text=True, check=True, cwd=Path(__file__).resolve().parents[1])
        peaks[minutes] = json.loads(out.stdout.strip().splitlines()[-1])
    grow_mb = (peaks[3]["peak_kb"] - peaks[1]["peak_kb"]) / 1024
    print(f"peak RSS: 1 min {peaks[1]['peak_kb'] / 1024:.0f} MB, 3 min {peaks[3]['peak_kb'] / 1024:.0f} MB "
          f"(+{grow_mb:.0f} MB; 2 minutes of stereo float32 are 42 MB)")
    assert grow_mb < 32
