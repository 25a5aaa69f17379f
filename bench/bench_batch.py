"""Benchmark: `stemmaster batch` throughput, in songs per hour, with 1 and 2 worker processes.

A library of short songs as stems folders (the demo song's four stems, a different
seed each, so no separation) is remastered into a fresh OUT_DIR once per worker
count, release checks included (``--no-checks`` to leave them out). The time is
the whole batch as the user waits for it: the process pool starting, every song,
the summary written.

    .venv/bin/python bench/bench_batch.py [--songs 6] [--seconds 20] [--workers 1,2] [--no-checks]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemmaster.audio_io import write_audio  # noqa: E402
from stemmaster.batch import BatchOptions, batch  # noqa: E402
from stemmaster.demo import make_demo_stems  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--songs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--no-checks", action="store_true")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        library = Path(tmp) / "songs"
        for i in range(args.songs):
            folder = library / f"song{i:02d}"
            folder.mkdir(parents=True)
            for stem, audio in make_demo_stems(44100, args.seconds, seed=100 + i).items():
                write_audio(folder / f"{stem}.wav", audio, 44100)
        print(f"{args.songs} songs of {args.seconds:.0f} s (4 stems each), checks {'off' if args.no_checks else 'on'}, "
              f"{os.cpu_count()} CPUs")
        for workers in counts:
            out = Path(tmp) / f"out-{workers}"
            t0 = time.perf_counter()
            result = batch(library, out, BatchOptions(checks=not args.no_checks), workers=workers)
            wall = time.perf_counter() - t0
            done = sum(1 for r in result.rows if r["status"] == "done")
            per_song = sum(r["seconds"] for r in result.rows if r["status"] == "done") / max(1, done)
            print(f"workers {workers}: {done}/{args.songs} songs in {wall:.1f} s = {3600 * done / wall:.0f} songs/hour "
                  f"({per_song:.1f} s per song inside a worker)")


if __name__ == "__main__":
    main()
