"""Shared helpers for tests: paths of the shared corpus, ffmpeg measurement."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"


def corpus_path(*parts: str) -> Path:
    """A path in ../shared/corpus; the test is skipped when it is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared corpus not present: {path}")
    return path


def need_ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        pytest.skip("ffmpeg not installed (.ci/run installs it)")
    return exe


def ffmpeg_ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of a file, measured by ffmpeg's ebur128 filter."""
    exe = need_ffmpeg()
    proc = subprocess.run(
        [exe, "-hide_banner", "-nostats", "-i", str(path), "-filter_complex", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True, text=True, check=True)
    text = proc.stderr
    summary = text[text.rfind("Summary:"):]
    integrated = float(re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary).group(1))
    peak = float(re.search(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))
    return integrated, peak


def assert_edge_signal_contract(proc, signals, sample_rate: int) -> list:
    """The processor contract on edge signals (each ``(channels, samples)``; the first sets the length).

    For every signal in float32 and float64: same shape and dtype out, finite, input not mutated.
    Then: silence in is silence out, and an empty input keeps its shape. Returns the outputs.
    """
    import numpy as np

    outputs = []
    for x in signals:
        for dtype in (np.float32, np.float64):
            xin = x.astype(dtype)
            before = xin.copy()
            y = proc.process(xin, sample_rate)
            assert y.shape == xin.shape and y.dtype == dtype
            assert np.all(np.isfinite(y))
            assert np.array_equal(xin, before), "input mutated"
            outputs.append(y)
    n = signals[0].shape[1]
    assert np.array_equal(proc.process(np.zeros((2, n)), sample_rate), np.zeros((2, n)))
    assert proc.process(np.zeros((2, 0), np.float32), sample_rate).shape == (2, 0)
    return outputs


def noise_stems(folder: Path, seconds: float = 1.0) -> Path:
    """A small stems folder (``vocals.wav`` and ``bass.wav``: stereo noise at -20 dBFS RMS, 44.1 kHz)
    for tests about projects, not sound."""
    import numpy as np

    from stemmaster.audio_io import write_audio

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("vocals", "bass"):
        write_audio(folder / f"{name}.wav", (rng.standard_normal((2, int(44100 * seconds))) * 0.1).astype(np.float32),
                    44100)
    return folder

