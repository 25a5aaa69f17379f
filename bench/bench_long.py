"""Benchmark: a 60-minute stereo file mastered by `stemmaster remaster`, in-process.

The file is synthetic: the demo song's four stems summed (60 s) and repeated to the
length asked, written block by block as a 24-bit WAV so the synthesis itself stays
small in memory. It goes in a stems folder of its own (one stereo stem, role
"other"): `remaster FILE` would send a render through Demucs first, which is a
separation benchmark (bench/bench_separation.py), not this one.

Prints the wall time of the whole `remaster` command (import, repair, bus master,
export, report, release checks) and the process's peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), before and after.

    .venv/bin/python bench/bench_long.py [--minutes 60] [--profile spotify] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemmaster.cli import main as cli_main  # noqa: E402
from stemmaster.demo import make_demo_stems  # noqa: E402


def peak_rss_mb() -> float:
    """Peak resident set of this process in MB (ru_maxrss is in KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def write_long_file(path: Path, minutes: float, sr: int = 44100) -> float:
    """A ``minutes``-long stereo 24-bit WAV at ``sr`` Hz; returns its length in seconds."""
    base = make_demo_stems(sample_rate=sr, duration_s=60.0)
    loop = sum(v.astype(np.float64) for v in base.values()).T.astype(np.float32)  # (samples, 2)
    del base
    total = int(round(minutes * 60.0 * sr))
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=2, format="WAV", subtype="PCM_24") as f:
        left = total
        while left > 0:
            n = min(left, loop.shape[0])
            f.write(loop[:n])
            left -= n
    return total / sr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--profile", default="spotify")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files (default: a temporary folder)")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-long-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        stems = work / "stems"
        stems.mkdir(exist_ok=True)
        t = time.perf_counter()
        seconds = write_long_file(stems / "long mix.wav", args.minutes)
        size_mb = (stems / "long mix.wav").stat().st_size / 1e6
        print(f"input: {seconds / 60:.1f} min stereo 44.1 kHz 24-bit WAV, {size_mb:.0f} MB "
              f"(written in {time.perf_counter() - t:.1f} s); {os.cpu_count()} cores")
        rss_before = peak_rss_mb()
        t = time.perf_counter()
        code = cli_main(["remaster", str(stems), "-o", str(work / "out"), "--profile", args.profile])
        wall = time.perf_counter() - t
        print(f"remaster exit code {code}")
        print(f"wall time: {wall:.1f} s ({seconds / wall:.1f}x real time)")
        print(f"peak RSS: {peak_rss_mb():.0f} MB (before the remaster: {rss_before:.0f} MB)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
