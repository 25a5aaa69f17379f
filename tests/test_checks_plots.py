"""Report plots: PNGs written atomically and decodable, helpers' numbers, clear errors on bad input."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

from stemmaster.checks.plots import plot_short_term_loudness, plot_tonal_balance, short_term_curve, tonal_balance
from stemmaster.errors import ProjectError

SR = 44100
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data[-8:-4] == b"IEND"
    return width, height


def _noise(seconds: float = 6.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((2, int(seconds * SR)))).astype(np.float32)


def test_tonal_balance_of_white_noise_rises_3_db_per_octave():
    freqs, level = tonal_balance(_noise(), SR)
    assert freqs[0] == pytest.approx(20.0) and freqs[-1] <= 20000.0
    assert np.all(np.diff(freqs) > 0)
    # 1/3-octave band power of white noise doubles per octave
    at = lambda hz: level[np.argmin(np.abs(freqs - hz))]  # noqa: E731
    assert at(2000.0) - at(1000.0) == pytest.approx(3.01, abs=0.3)
    assert at(8000.0) - at(1000.0) == pytest.approx(9.03, abs=0.3)
    # the bands' total is the signal's power: 0.01 per channel is -20 dB; a 1/3-octave band at 1 kHz
    # holds 231.6 Hz of 22.05 kHz of it
    assert at(1000.0) == pytest.approx(-20.0 + 10 * np.log10(231.6 / 22050.0), abs=0.5)


def test_tonal_balance_finds_a_tone():
    t = np.arange(4 * SR) / SR
    x = 0.5 * np.sin(2 * np.pi * 100.0 * t)
    freqs, level = tonal_balance(np.stack([x, x]).astype(np.float32), SR)
    assert abs(freqs[np.argmax(level)] - 100.0) < 100.0 * (2 ** (1 / 12) - 1)
    assert level.max() == pytest.approx(10 * np.log10(0.125), abs=0.3)  # mean square of a 0.5 sine


def test_plots_written_as_png(tmp_path):
    noise = _noise()
    before = tonal_balance(noise, SR)
    after = tonal_balance(noise * 0.5, SR)
    target = (np.array([20.0, 100.0, 1000.0, 10000.0, 20000.0]), np.array([3.0, 0.0, -6.0, -15.0, -20.0]))
    tb = tmp_path / "tonal_balance.png"
    plot_tonal_balance(tb, {"before": before, "after": after}, target=target)
    w, h = _png_size(tb)
    assert w >= 600 and h >= 300
    st = tmp_path / "short_term.png"
    times, lufs = short_term_curve(noise, SR)
    assert times[0] == pytest.approx(3.0) and times.shape == lufs.shape
    plot_short_term_loudness(st, times, lufs, target_lufs=-14.0)
    w, h = _png_size(st)
    assert w >= 600 and h >= 300
    # silence (-inf) is drawn at the floor rather than refused
    plot_short_term_loudness(st, [3.0, 3.1, 3.2], [-np.inf, -20.0, -19.0])
    _png_size(st)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short_term.png", "tonal_balance.png"]


def test_unnormalised_plot(tmp_path):
    path = tmp_path / "tb.png"
    plot_tonal_balance(path, {"master": tonal_balance(_noise(), SR)}, normalize=False)
    _png_size(path)


@pytest.mark.parametrize("curves, message", [
    ({}, "non-empty"),
    ([1, 2], "non-empty mapping"),
    ({"a": ([20.0, 100.0, 200.0], [0.0, 1.0])}, "3 frequencies but 2 levels"),
    ({"a": ([100.0, 20.0], [0.0, 1.0])}, "increasing"),
    ({"a": ([0.0, 20.0], [0.0, 1.0])}, "positive"),
    ({"a": ([20.0, 100.0], [np.nan, 1.0])}, "NaN"),
    ({"a": 5}, "pair"),
    ({"a": ([20.0], [1.0])}, "at least 2"),
])
def test_tonal_balance_plot_refuses_bad_input(tmp_path, curves, message):
    path = tmp_path / "x.png"
    with pytest.raises(ValueError, match=message):
        plot_tonal_balance(path, curves)
    assert not path.exists()


def test_short_term_plot_refuses_bad_input(tmp_path):
    path = tmp_path / "x.png"
    with pytest.raises(ValueError, match="3 values but lufs has 2"):
        plot_short_term_loudness(path, [3.0, 3.1, 3.2], [-20.0, -19.0])
    with pytest.raises(ValueError, match="increasing"):
        plot_short_term_loudness(path, [3.0, 3.0], [-20.0, -19.0])
    with pytest.raises(ValueError, match="target_lufs"):
        plot_short_term_loudness(path, [3.0, 3.1], [-20.0, -19.0], target_lufs=float("nan"))
    with pytest.raises(ValueError, match=r"\.png"):
        plot_short_term_loudness(tmp_path / "x.jpg", [3.0, 3.1], [-20.0, -19.0])
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_a_project_error(tmp_path):
    with pytest.raises(ProjectError, match="cannot write"):
        plot_short_term_loudness(tmp_path / "missing" / "x.png", [3.0, 3.1], [-20.0, -19.0])


def test_importing_checks_does_not_import_matplotlib():
    code = ("import sys, stemmaster.checks.plots, stemmaster.checks.codec, stemmaster.checks.ab, "
            "stemmaster.checks.translation; print('matplotlib' in sys.modules, 'lameenc' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
