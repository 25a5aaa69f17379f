"""Time the DSP processors on 4 minutes of 44.1 kHz stereo noise (prints; asserts nothing).

    .venv/bin/python bench/bench_dsp.py [seconds]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from stemmaster.dsp.compressor import GlueCompressor
from stemmaster.dsp.dither import quantize
from stemmaster.dsp.eq import ToneEQ
from stemmaster.dsp.limiter import TruePeakLimiter
from stemmaster.meters.truepeak import true_peak_dbtp, true_peak_envelope

SAMPLE_RATE = 44100


def _time(label: str, fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    print(f"{label:<46s} {time.perf_counter() - t0:6.2f} s")
    return out


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 240.0
    n = int(seconds * SAMPLE_RATE)
    x = (0.3 * np.random.default_rng(0).standard_normal((2, n))).astype(np.float32)
    print(f"{seconds:.0f} s of {SAMPLE_RATE} Hz stereo noise, float32, ~{20 * np.log10(0.3 * 4.5):+.0f} dBTP peaks")

    eq = ToneEQ(low_shelf_db=2.0, high_shelf_db=-1.5, tilt_db=1.0)
    comp = GlueCompressor()
    lim = TruePeakLimiter(ceiling_dbtp=-1.0)
    warm = x[:, :4096]  # compile the numba kernels (cached after the first run)
    comp.process(warm, SAMPLE_RATE)
    lim.process(warm * 4, SAMPLE_RATE)

    _time("ToneEQ.process", eq.process, x, SAMPLE_RATE)
    _time("GlueCompressor.process", comp.process, x, SAMPLE_RATE)
    _time("true_peak_envelope (the meter, one pass)", true_peak_envelope, x)
    _, passes = lim._gain_and_passes(x[:, : SAMPLE_RATE * 10], SAMPLE_RATE)
    y = _time("TruePeakLimiter.process (ceiling -1 dBTP)", lim.process, x, SAMPLE_RATE)
    print(f"  output true peak {true_peak_dbtp(y):+.5f} dBTP (ceiling -1.0); passes on the first 10 s: {passes}")
    _time("quantize 16-bit TPDF", quantize, y, 16)
    _time("quantize 24-bit TPDF", quantize, y, 24)


if __name__ == "__main__":
    main()
