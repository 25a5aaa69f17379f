"""Benchmark: the whole stem-to-master path on a 4-minute, 4-stem song.

Prints seconds and the ratio to real time for: import (read, convert, write working
stems), the bus master (EQ, compressor, limiter with its loudness search), and the
whole one-shot `remaster` (import, mix, master, export, measure, report).

    .venv/bin/python bench/bench_master.py [--minutes 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemmaster.audio_io import write_audio  # noqa: E402
from stemmaster.demo import make_demo_stems  # noqa: E402
from stemmaster.master import MasterSettings, master_bus  # noqa: E402
from stemmaster.remaster import remaster  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--profile", default="spotify")
    args = parser.parse_args()
    sr = 44100
    duration_s = args.minutes * 60.0
    t0 = time.perf_counter()
    base = make_demo_stems(sample_rate=sr, duration_s=60.0)
    reps = int(np.ceil(duration_s / 60.0))
    n = int(duration_s * sr)
    stems = {k: np.tile(v, (1, reps))[:, :n] for k, v in base.items()}
    print(f"song: {duration_s:.0f} s, {len(stems)} stereo stems at {sr} Hz (synthesised in {time.perf_counter() - t0:.1f} s)")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "stems"
        folder.mkdir()
        for name, audio in stems.items():
            write_audio(folder / f"{name}.wav", audio, sr, subtype="PCM_24")

        mix = sum(v.astype(np.float64) for v in stems.values())
        settings = MasterSettings().with_profile(args.profile)
        t0 = time.perf_counter()
        result = master_bus(mix, sr, settings)
        t_bus = time.perf_counter() - t0
        print(f"bus master:     {t_bus:6.2f} s  ({duration_s / t_bus:5.1f}x real time, "
              f"{result.iterations} loudness passes, limiter up to {result.limiter_max_reduction_db:.1f} dB)")

        t0 = time.perf_counter()
        outcome = remaster(folder, Path(tmp) / "out", settings_transform=lambda s: s.with_profile(args.profile))
        t_all = time.perf_counter() - t0
        m = outcome.report["master"]
        print(f"stem-to-master: {t_all:6.2f} s  ({duration_s / t_all:5.1f}x real time) "
              f"-> {m['integrated_lufs']:.2f} LUFS, {m['true_peak_dbtp']:.2f} dBTP")
    print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
