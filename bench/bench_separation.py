"""Benchmark: stemmaster's separation engine against demucs' own apply_model on a full-size HTDemucs.

    .venv/bin/python bench/bench_separation.py [--seconds 30] [--repeats 3]

The network is demucs' htdemucs architecture, built from the init arguments
stored in the released checkpoint (``../shared/models/htdemucs`` when present,
else the same values written below) with random weights (seed 0): 41,984,456
parameters, no download needed. The input is the built-in demo song.

Each measurement runs in a fresh Python process (so peak memory is that
method's own), after one short warm-up separation (oneDNN compiles its kernels
on first use); stock and ours alternate and the best of ``--repeats`` is
reported, because other work on a shared machine only ever slows a run down.
Both use torch's default thread count and the same shift offset (seed 0).

Figures: seconds of computing per second of audio; speedup; the largest
difference between the two outputs relative to the largest output sample, in
dB; peak resident memory of the process (``resource.getrusage`` ru_maxrss,
which counts torch's allocations too) and how much of it came after the
model was built and the audio made (resident memory then, from /proc). With the real weights present it
also prints the SDR of both on ``musdb18_mu_too_bright`` (the opt-in test).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
WEIGHTS = SHARED / "models" / "htdemucs"
SONG = SHARED / "corpus" / "multitrack" / "musdb18_mu_too_bright"
PARAMETERS = 41_984_456
# the init arguments of demucs' released htdemucs (955717e8), as stored in its checkpoint
HTDEMUCS_KWARGS = {"sources": ["drums", "bass", "other", "vocals"], "audio_channels": 2, "samplerate": 44100,
                   "segment": (39, 5), "bottom_channels": 512, "dconv_mode": 3}

sys.path.insert(0, str(REPO))


def rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    """Resident memory now (VmRSS), or the peak where /proc is unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return rss_mib()


def htdemucs_kwargs() -> tuple[dict, str]:
    """The released model's init arguments: read from the checkpoint when the shared folder has it."""
    from fractions import Fraction

    checkpoints = sorted(WEIGHTS.glob("955717e8-*.th"))
    if checkpoints:
        import torch
        from demucs.htdemucs import HTDemucs

        with torch.serialization.safe_globals([HTDemucs, Fraction]):
            package = torch.load(checkpoints[0], map_location="cpu", weights_only=True)
        return dict(package["kwargs"]), f"kwargs read from {checkpoints[0].name}"
    kwargs = dict(HTDEMUCS_KWARGS)
    kwargs["segment"] = Fraction(*kwargs["segment"])
    return kwargs, "kwargs of demucs' htdemucs (checkpoint not present)"


def random_htdemucs():
    import torch
    from demucs.htdemucs import HTDemucs

    from separation.models import LoadedModel

    kwargs, where = htdemucs_kwargs()
    torch.manual_seed(0)
    net = HTDemucs(**kwargs).eval()
    count = sum(p.numel() for p in net.parameters())
    if count != PARAMETERS:
        raise SystemExit(f"expected {PARAMETERS:,} parameters, built {count:,}")
    from demucs.apply import BagOfModels

    bag = BagOfModels([net]).eval()
    model = LoadedModel(model=bag, name="htdemucs-random", signature="random", checksum="random-seed0",
                        samplerate=44100, sources=tuple(net.sources), audio_channels=2, origin="bench")
    return model, count, where


def demo_audio(seconds: float):
    import numpy as np

    from stemmaster.demo import demo_mix, make_demo_stems

    mix = demo_mix(make_demo_stems(44100, max(5.0, min(120.0, seconds))))
    return np.ascontiguousarray(mix[:, :int(seconds * 44100)])


def child(method: str, seconds: float, out_path: str) -> None:
    """One measurement in this process: build, warm up, separate, save the stems, print JSON."""
    import numpy as np

    from separation.engine import separate
    from separation.reference import apply_model_reference

    model, count, where = random_htdemucs()
    audio = demo_audio(seconds)
    run = ((lambda a: separate(a, 44100, model, seed=0).stems) if method == "ours"
           else (lambda a: apply_model_reference(model, a, seed=0)))
    before = current_rss_mib()  # model built, audio made, nothing separated yet
    run(audio[:, :44100])  # warm-up: one segment
    t0, c0 = time.perf_counter(), time.process_time()
    stems = run(audio)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.save(out_path, np.stack([stems[name] for name in model.sources]))
    print(json.dumps({"method": method, "wall_s": wall, "cpu_s": cpu, "peak_mib": rss_mib(),
                      "before_mib": before, "parameters": count, "where": where}))


def measure(method: str, seconds: float, out_path: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", method, "--seconds", str(seconds),
                           "--out", out_path], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{method} run failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sdr_comparison() -> None:
    if not (WEIGHTS / "htdemucs.yaml").is_file() or not (SONG / "mixture.wav").is_file():
        print("\nreal weights or musdb18_mu_too_bright not present: SDR comparison skipped")
        return
    from separation.engine import separate
    from separation.models import load_model
    from separation.reference import apply_model_reference
    from separation.scoring import load_multitrack, sdr_table

    model = load_model("htdemucs", repo=WEIGHTS)
    mixture, rate, truth = load_multitrack(SONG)
    ours = sdr_table(truth, separate(mixture, rate, model, seed=0).stems)
    theirs = sdr_table(truth, apply_model_reference(model, mixture, seed=0))
    print(f"\nSDR on {SONG.name} (real htdemucs weights, seed 0), dB:")
    print(f"  {'stem':8s} {'demucs':>8s} {'ours':>8s}")
    for name in ours:
        print(f"  {name:8s} {theirs[name]:8.3f} {ours[name]:8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the demo audio (default 30)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each method; the best counts (default 3)")
    parser.add_argument("--child", choices=["ours", "stock"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.seconds, args.out)
        return

    import numpy as np
    import torch

    print(f"separation benchmark: {args.seconds:.0f} s of the demo song at 44.1 kHz, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    runs: dict[str, list[dict]] = {"stock": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for method in ("ours", "stock"):
                r = measure(method, args.seconds, os.path.join(tmp, f"{method}.npy"))
                runs[method].append(r)
                print(f"  run {i + 1} {method:5s}: {r['wall_s'] / args.seconds:.3f} s/s "
                      f"(cpu {r['cpu_s'] / args.seconds:.3f} s/s)", flush=True)
        ours_out = np.load(os.path.join(tmp, "ours.npy")).astype(np.float64)
        stock_out = np.load(os.path.join(tmp, "stock.npy")).astype(np.float64)
    best = {m: min(rs, key=lambda r: r["wall_s"]) for m, rs in runs.items()}
    diff_db = 20 * np.log10(np.max(np.abs(ours_out - stock_out)) / np.max(np.abs(stock_out)))
    print(f"\nmodel: HTDemucs, {best['ours']['parameters']:,} parameters, random weights "
          f"({best['ours']['where']})")
    print(f"{'':28s} {'stock apply_model':>18s} {'ours':>10s}")
    print(f"{'s per s of audio (best)':28s} {best['stock']['wall_s'] / args.seconds:18.3f} "
          f"{best['ours']['wall_s'] / args.seconds:10.3f}")
    print(f"{'s per s of audio (median)':28s} "
          f"{np.median([r['wall_s'] for r in runs['stock']]) / args.seconds:18.3f} "
          f"{np.median([r['wall_s'] for r in runs['ours']]) / args.seconds:10.3f}")
    print(f"{'peak RSS, MiB (ru_maxrss)':28s} {best['stock']['peak_mib']:18.0f} {best['ours']['peak_mib']:10.0f}")
    print(f"{'  of which separating':28s} {best['stock']['peak_mib'] - best['stock']['before_mib']:18.0f} "
          f"{best['ours']['peak_mib'] - best['ours']['before_mib']:10.0f}")
    print(f"speedup (best vs best): {best['stock']['wall_s'] / best['ours']['wall_s']:.2f}x")
    print(f"max |ours - stock| relative to max |stock|: {diff_db:.1f} dB")
    sdr_comparison()


if __name__ == "__main__":
    main()
