"""Benchmark: diagnosing a 4-minute, 4-stem song (each stem and the mix), and the same song's
mix alone as a file would be (`stemmaster diagnose FILE`).

Prints seconds and the ratio to real time. The diagnosis runs once per
change of the stems (`diagnosis.json` caches it in the project), not on every
render; `master` reads the cache.

    .venv/bin/python bench/bench_diagnosis.py [--minutes 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemmaster.demo import make_demo_stems  # noqa: E402
from stemmaster.diagnosis import diagnose  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=4.0)
    args = parser.parse_args()
    sr = 44100
    duration_s = args.minutes * 60.0
    base = make_demo_stems(sample_rate=sr, duration_s=60.0)
    reps = int(np.ceil(duration_s / 60.0))
    n = int(duration_s * sr)
    stems = [(k, k, np.tile(v, (1, reps))[:, :n]) for k, v in base.items()]
    mix = sum(a.astype(np.float64) for _, _, a in stems).astype(np.float32)
    print(f"song: {duration_s:.0f} s, {len(stems)} stereo stems at {sr} Hz; {os.cpu_count()} cores")
    diagnose([(k, r, a[:, : 5 * sr]) for k, r, a in stems], sr)  # numba caches warm, not counted
    best = {}
    for _ in range(2):
        t = time.perf_counter()
        d = diagnose(stems, sr)
        best["stems"] = min(best.get("stems", 1e9), time.perf_counter() - t)
        t = time.perf_counter()
        diagnose([], sr, mix=mix)
        best["mix"] = min(best.get("mix", 1e9), time.perf_counter() - t)
    print(f"diagnose stems + mix: {best['stems']:6.2f} s ({duration_s / best['stems']:5.1f}x real time) -> "
          f"{d.verdict}, {len(d.findings)} findings")
    print(f"diagnose a mix file:  {best['mix']:6.2f} s ({duration_s / best['mix']:5.1f}x real time)")


if __name__ == "__main__":
    main()
