"""Start and end cleanup (stemmaster/deliver/cleanup.py)."""

from __future__ import annotations

import numpy as np
import pytest

from stemmaster.deliver.cleanup import apply_edges, clean_edges, fade_in_curve, fade_out_curve, plan_edges
from stemmaster.errors import SettingsError

SR = 44100


def tone(seconds: float, freq: float = 220.0, level: float = 0.5, channels: int = 2) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return np.repeat((level * np.sin(2 * np.pi * freq * t + 0.3))[None], channels, axis=0)


def first_above(audio: np.ndarray, dbfs: float = -60.0) -> int:
    return int(np.flatnonzero(np.max(np.abs(audio), axis=0) > 10 ** (dbfs / 20))[0])


def test_three_seconds_of_leading_silence_become_0_2_s():
    x = np.concatenate([np.zeros((2, 3 * SR)), tone(4.0)], axis=1)
    y, report = clean_edges(x, SR)
    assert first_above(y) == round(0.2 * SR)  # 0.2 s of silence left before the sound
    assert report["trimmed_start_samples"] == 3 * SR - round(0.2 * SR)
    assert report["trimmed_start_s"] == pytest.approx(2.8, abs=1e-6)
    assert y.shape[1] == x.shape[1] - report["trimmed_start_samples"]
    assert report["fade_in_reason"] is None and report["fade_in_ms"] == 0.0  # it starts in silence
    # the sound itself is untouched up to the fade-out
    keep = y.shape[1] - round(report["fade_out_ms"] * SR / 1000)
    assert np.array_equal(y[:, :keep], x[:, report["trimmed_start_samples"]:][:, :keep])


def test_a_hard_cut_at_the_end_gets_a_fade_and_ends_at_zero():
    x = tone(5.0)  # cut at full level
    y, report = clean_edges(x, SR)
    assert report["fade_out_reason"] == "cut-off tail"
    assert report["fade_out_ms"] == pytest.approx(500.0, abs=0.05)  # auto: 10 % of 5 s (< 2 s)
    fade = round(0.5 * SR)
    assert y.shape == x.shape
    assert y[0, -1] == 0.0 and y[1, -1] == 0.0 and not np.signbit(y[:, -1]).any()
    assert np.array_equal(y[:, fade_in(report):-fade], x[:, fade_in(report):-fade])  # the middle is bit-identical
    assert np.allclose(y[:, -fade:], x[:, -fade:] * fade_out_curve(fade))
    assert np.max(np.abs(y[:, -round(0.01 * SR):])) < 0.01  # the last 10 ms now die away
    # it started mid-sound too (sin(0.3) * 0.5 is far above -60 dBFS): a 5 ms fade-in from exactly 0
    assert report["fade_in_reason"] == "mid-sound" and report["fade_in_ms"] == pytest.approx(5.0, abs=0.02)
    assert y[0, 0] == 0.0 and y[1, 0] == 0.0


def fade_in(report: dict) -> int:
    return round(report["fade_in_ms"] * SR / 1000)


def test_auto_fade_out_is_at_most_2_s_and_can_be_set():
    x = tone(30.0, channels=1)
    _, report = clean_edges(x, SR)
    assert report["fade_out_ms"] == pytest.approx(2000.0, abs=0.05)
    y, report = clean_edges(x, SR, fade_out_ms=750.0)
    assert report["fade_out_ms"] == pytest.approx(750.0, abs=0.05)
    n = round(0.75 * SR)
    assert np.array_equal(y[:, 1000:-n], x[:, 1000:-n]) and y[0, -1] == 0.0


def test_clean_audio_is_returned_bit_identical():
    t = np.arange(3 * SR) / SR
    env = np.sin(np.pi * t / t[-1]) ** 2  # starts and ends at 0
    x = np.stack([0.5 * np.sin(2 * np.pi * 330 * t) * env, 0.4 * np.sin(2 * np.pi * 220 * t) * env])
    x[:, 0] = x[:, -1] = 0.0
    x = np.concatenate([np.zeros((2, 100)), x, np.zeros((2, 2000))], axis=1)
    for dtype in (np.float32, np.float64):
        xin = x.astype(dtype)
        y, report = clean_edges(xin, SR)
        assert y.dtype == dtype and np.array_equal(y, xin) and y is not xin
        assert report["summary"] == "clean: nothing changed"
        assert (report["trimmed_start_samples"], report["fade_in_ms"], report["fade_out_ms"]) == (0, 0.0, 0.0)


def test_noise_floor_and_dc_edges_end_at_exactly_zero():
    rng = np.random.default_rng(1)
    floor = 10 ** (-75 / 20) * rng.standard_normal((2, 2 * SR)) + 1e-4  # hiss plus a DC offset, below -60 dBFS
    x = np.concatenate([floor, tone(2.0) + floor, floor], axis=1)
    y, report = clean_edges(x, SR)
    assert report["fade_in_reason"] == "dc step"  # the trim cut into the floor: a step from 0
    assert report["fade_out_reason"] == "dc step"  # the end is quiet but not 0
    assert report["fade_in_ms"] == pytest.approx(5.0, abs=0.02) and report["fade_out_ms"] == pytest.approx(5.0, abs=0.02)
    assert y[:, 0].tolist() == [0.0, 0.0] and y[:, -1].tolist() == [0.0, 0.0]
    assert first_above(y) == round(0.2 * SR)
    assert np.array_equal(y[:, 300:-300], x[:, report["trimmed_start_samples"] + 300:-300])


@pytest.mark.parametrize("case", range(8))
def test_length_never_grows(case):
    rng = np.random.default_rng(case)
    n = [1, 2, 7, 50, 441, 4410, 3 * SR, 5 * SR][case]
    x = rng.standard_normal((1 + case % 2, n)) * rng.choice([0.0, 1e-5, 0.3])
    x[:, : rng.integers(0, n + 1)] = 0.0
    y, report = clean_edges(x, SR)
    assert y.shape[0] == x.shape[0] and y.shape[1] <= x.shape[1]
    assert report["length_out_samples"] == y.shape[1]
    assert np.all(np.isfinite(y))
    if np.any(np.abs(x) > 1e-3):  # anything audible: both edges end at exactly 0
        assert not np.any(y[:, 0]) and not np.any(y[:, -1])


def test_a_plan_made_on_the_sum_keeps_stems_summing():
    rng = np.random.default_rng(2)
    a = np.concatenate([np.zeros((2, SR)), 0.3 * rng.standard_normal((2, 3 * SR))], axis=1)
    b = np.concatenate([np.zeros((2, SR)), tone(3.0)], axis=1)
    plan = plan_edges(a + b, SR)
    assert np.allclose(apply_edges(a, plan) + apply_edges(b, plan), apply_edges(a + b, plan), atol=1e-12)
    assert apply_edges(a, plan).shape[1] == a.shape[1] - plan.trim_start


def test_curves():
    up = fade_in_curve(220)
    assert up[0] == 0.0 and np.all(np.diff(up) > 0) and up[-1] < 1.0
    down = fade_out_curve(220)
    assert down[-1] == 0.0 and np.all(np.diff(down) < 0)
    assert np.allclose(up[110], 0.5)


def test_settings_are_checked():
    with pytest.raises(SettingsError, match="preroll_s"):
        clean_edges(tone(1.0), SR, preroll_s=-1)
    with pytest.raises(SettingsError, match="threshold_dbfs"):
        clean_edges(tone(1.0), SR, threshold_dbfs=6.0)
