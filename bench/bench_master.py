"""Benchmark: the stem-to-master path on a 4-minute, 4-stem song.

Prints seconds and the ratio to real time for: importing the stems into a
project (read, copy, convert, write working stems), and rendering a master
from the project (load stems, repair each with its role's default chain, bus
master with its loudness search, export at two bit depths, measure, report),
with the repair stage's own time (every chain run segment by segment, each
stem written and what each repair did measured as it goes).
The stem-to-master time runs until the master has landed (renamed into place,
project saved); the release checks that follow on the landed render
(translation, MP3/AAC codec round trips, level-matched A/B, plots) are timed
on a line of their own, with each check's seconds (they run side by side, so
those overlap and add up to more than the phase).

    .venv/bin/python bench/bench_master.py [--minutes 4] [--profile spotify]
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
from stemmaster.pipeline import project_settings, render_project  # noqa: E402
from stemmaster.workspace import Workspace  # noqa: E402


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
    print(f"song: {duration_s:.0f} s, {len(stems)} stereo stems at {sr} Hz "
          f"(synthesised in {time.perf_counter() - t0:.1f} s); {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "stems"
        folder.mkdir()
        for name, audio in stems.items():
            write_audio(folder / f"{name}.wav", audio, sr, subtype="PCM_24")
        ws = Workspace(Path(tmp) / "ws")

        # warm the numba caches on a short song so compile time is not counted
        short = Path(tmp) / "short"
        short.mkdir()
        for name, audio in stems.items():
            write_audio(short / f"{name}.wav", audio[:, sr * 20: sr * 26], sr, subtype="PCM_24")
        warm = ws.create_from_stems("warm", short)
        # (with the release checks, so matplotlib, lameenc and the checks' kernels are loaded too)
        render_project(warm, ws.project_dir("warm"), project_settings(warm).with_profile(args.profile), "001")

        t0 = time.perf_counter()
        project = ws.create_from_stems("bench", folder)
        t_import = time.perf_counter() - t0
        print(f"import:         {t_import:6.2f} s  ({duration_s / t_import:5.1f}x real time)")

        settings = project_settings(project).with_profile(args.profile)
        t0 = time.perf_counter()
        outcome = render_project(project, ws.project_dir("bench"), settings, "001")
        t_total = time.perf_counter() - t0
        t_render = outcome.landed_s  # until the master landed; the checks run after
        proc = outcome.report["processing"]
        m = outcome.report["master"]
        print(f"  repair stage: {proc['repair_s']:6.2f} s  (4 stems, default chains, segment by segment, each stem "
              f"written and what each repair did measured)")
        print(f"stem-to-master: {t_render:6.2f} s  ({duration_s / t_render:5.1f}x real time; repair, bus master, "
              f"export, report) -> {m['integrated_lufs']:.2f} LUFS, {m['true_peak_dbtp']:.2f} dBTP, "
              f"{proc['iterations']} loudness passes")
        checks = outcome.report["checks"]
        if checks["status"] == "done":
            each = ", ".join(f"{k} {v:.2f} s" for k, v in checks["check_seconds"].items())
            codec = ", ".join(f"{c['codec']} {c['seconds']:.2f} s" for c in checks["codec"] if c.get("available"))
            print(f"release checks: {checks['seconds']:6.2f} s  (after the master landed, side by side: {each}; "
                  f"codec round trips: {codec})")
        else:
            print(f"release checks: not run ({checks['status']}: {checks.get('reason')})")
        print(f"total:          {t_total:6.2f} s  (master and release checks)")


if __name__ == "__main__":
    main()
