"""Report plots: tonal balance (smoothed long-term spectra) and short-term loudness over time.

matplotlib is imported inside the plotting functions (with the ``Agg``
backend, no display needed), so importing this module, or stemmaster, stays
fast. PNGs are rendered into memory and written atomically
(``atomic.atomic_write_bytes``: a temporary file renamed into place).

``tonal_balance`` computes the curve to plot: the long-term power spectrum
(Hann frames of 32768 samples, 50 % overlap, channel mean: the Welch
estimate of ``translation.LongTermSpectrum``, accumulated a block at a time)
summed over fractional-octave
bands (1/3 octave by default) centred on a log grid from 20 Hz to 20 kHz
(or 0.45 x the rate). ``meters.spectral.resonance_profile`` has a
1/6-octave curve too, but of the mid channel only and from 50 Hz, which cuts
off the sub-bass a tonal-balance view is mostly about. ``short_term_curve`` is
a streaming loudness meter's short-term values. Both read their audio (an
array or an ``AudioSource``, shaped ``(channels, samples)``) in blocks and keep
only per-bin sums and per-hop figures, so their memory does not grow with
the song's length; ``tonal_balance_and_short_term`` does both in one pass.
"""

from __future__ import annotations

import io
import math
import os
from typing import Mapping

import numpy as np

from stemmaster.atomic import atomic_write_bytes
from stemmaster.audio_source import AudioSource, as_source
from stemmaster.checks.blocks import CHECK_BLOCK, feed
from stemmaster.meters.stream import LoudnessMeter
from stemmaster.checks.translation import LongTermSpectrum
from stemmaster.errors import AudioError
from stemmaster.meters.loudness import SHORT_TERM_S, HOP_S, check_meter_audio

_FLOOR_DB = -150.0
_N_FFT = 32768  # 1.3 Hz bins at 44.1 kHz: several per 1/3 octave down to 20 Hz
_PLOT_FLOOR_LUFS = -60.0  # short-term values below this (or -inf) are drawn at it
_DPI = 110
_SIZE_IN = (9.0, 4.5)
_COLOURS = ("#1f4e9c", "#d1495b", "#2a9d3f", "#8a4fbf", "#e07b00", "#444444")


def tonal_balance(audio: np.ndarray | AudioSource, sample_rate: int, *, fraction: int = 3,
                  points_per_octave: int = 12, block: int = CHECK_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Fractional-octave smoothed long-term spectrum: ``(frequencies_hz, level_db)``.

    ``audio`` is float ``(channels, samples)`` or an ``AudioSource``, read
    ``block`` frames at a time. ``level_db[i]`` is the power (mean square per
    channel, dB re full scale) in the 1/``fraction``-octave band centred on
    ``frequencies_hz[i]``; the centres are ``points_per_octave`` per octave
    from 20 Hz up to 20 kHz or 0.45 x ``sample_rate``. Bands with no energy read -150 dB.
    """
    source = _source(audio, sample_rate, "tonal balance")
    if fraction not in (1, 3, 6, 12, 24):
        raise AudioError(f"tonal balance: fraction must be 1, 3, 6, 12 or 24 (1/n octave), got {fraction!r}")
    if source.frames < 1024:
        raise AudioError(f"tonal balance: audio too short ({source.frames} samples; at least 1024)")
    spectrum = LongTermSpectrum(source.channels, source.sample_rate, source.frames, _N_FFT)
    feed(source, [spectrum], block)
    return _smoothed(*spectrum.result()[:2], source.sample_rate, fraction, points_per_octave)


def _smoothed(f: np.ndarray, auto: np.ndarray, sample_rate: int, fraction: int,
              points_per_octave: int) -> tuple[np.ndarray, np.ndarray]:
    """The channel mean of the spectra ``auto`` ``(channels, bins)`` summed in fractional-octave bands."""
    power = auto.mean(axis=0)
    top = min(20000.0, 0.45 * sample_rate)
    octaves = math.log2(top / 20.0)
    centres = 20.0 * 2.0 ** (np.arange(int(octaves * points_per_octave) + 1) / points_per_octave)
    half = 2.0 ** (0.5 / fraction)
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    lo = np.searchsorted(f, centres / half)
    hi = np.maximum(np.searchsorted(f, centres * half), lo + 1)  # at least one bin (low bands are narrow)
    hi = np.minimum(hi, power.shape[0])
    lo = np.minimum(lo, hi - 1)
    band = cumulative[hi] - cumulative[lo]
    with np.errstate(divide="ignore"):
        level = np.maximum(10.0 * np.log10(band), _FLOOR_DB)
    return centres, level


def short_term_curve(audio: np.ndarray | AudioSource, sample_rate: int, *,
                     block: int = CHECK_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Short-term loudness (EBU Tech 3341, 3 s windows every 100 ms): ``(times_s, lufs)``, from a
    streaming loudness meter fed ``block`` frames at a time.

    ``times_s[k]`` is the end of window ``k`` (when a meter shows the value).
    """
    source = _source(audio, sample_rate, "short-term loudness")
    meter = LoudnessMeter(source.sample_rate, source.channels)
    feed(source, [meter], block)
    lufs = np.asarray(meter.short_term_lufs(), dtype=np.float64)
    return SHORT_TERM_S + HOP_S * np.arange(lufs.shape[0]), lufs


def tonal_balance_and_short_term(audio: np.ndarray | AudioSource, sample_rate: int, *,
                                 block: int = CHECK_BLOCK) -> tuple[tuple[np.ndarray, np.ndarray],
                                                                    tuple[np.ndarray, np.ndarray]]:
    """``(tonal_balance(audio), short_term_curve(audio))`` in one pass over ``audio`` (1/3 octave,
    12 points per octave)."""
    source = _source(audio, sample_rate, "tonal balance")
    if source.frames < 1024:
        raise AudioError(f"tonal balance: audio too short ({source.frames} samples; at least 1024)")
    spectrum = LongTermSpectrum(source.channels, source.sample_rate, source.frames, _N_FFT)
    meter = LoudnessMeter(source.sample_rate, source.channels)
    feed(source, [spectrum, meter], block, threads=2)
    lufs = np.asarray(meter.short_term_lufs(), dtype=np.float64)
    curve = _smoothed(*spectrum.result()[:2], source.sample_rate, 3, 12)
    return curve, (SHORT_TERM_S + HOP_S * np.arange(lufs.shape[0]), lufs)


def _source(audio: np.ndarray | AudioSource, sample_rate: int, what: str) -> AudioSource:
    if isinstance(audio, np.ndarray):
        check_meter_audio(audio[:, :0] if audio.ndim == 2 else audio, sample_rate)  # shape, dtype, rate
        return as_source(audio, sample_rate)
    if not isinstance(audio, AudioSource):
        raise AudioError(f"{what}: audio must be an array shaped (channels, samples) or an AudioSource")
    check_meter_audio(np.zeros((audio.channels, 0), dtype=np.float32), audio.sample_rate)
    if int(sample_rate) != audio.sample_rate:
        raise AudioError(f"{what}: the audio is at {audio.sample_rate} Hz, not {sample_rate} Hz")
    return audio


# ---------------------------------------------------------------- validation


def _vector(name: str, values, *, allow_inf: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers ({exc})") from None
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"{name} must be a 1-D sequence of at least 2 numbers, got shape {arr.shape}")
    if np.isnan(arr).any() or (not allow_inf and not np.isfinite(arr).all()):
        raise ValueError(f"{name} contains NaN{'' if allow_inf else ' or infinite'} values")
    return arr


def _curve(label: str, curve) -> tuple[np.ndarray, np.ndarray]:
    try:
        freqs, level = curve
    except (TypeError, ValueError):
        raise ValueError(f"curve {label!r} must be a pair (freqs_hz, level_db)") from None
    freqs = _vector(f"curve {label!r} frequencies", freqs)
    level = _vector(f"curve {label!r} levels", level, allow_inf=True)
    if freqs.shape != level.shape:
        raise ValueError(f"curve {label!r}: {freqs.size} frequencies but {level.size} levels")
    if (freqs <= 0).any() or (np.diff(freqs) <= 0).any():
        raise ValueError(f"curve {label!r}: frequencies must be positive and increasing (log axis)")
    return freqs, np.maximum(level, _FLOOR_DB)


def _path(path: str | os.PathLike) -> str:
    p = os.fspath(path)
    if not str(p).lower().endswith(".png"):
        raise ValueError(f"plot path must end in .png, got {p!r}")
    return p


def _save(fig, path: str) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=_DPI, facecolor="white")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------- plots


def plot_tonal_balance(path: str | os.PathLike, curves: Mapping[str, tuple], target=None, *,
                       title: str = "Tonal balance (1/3-octave long-term spectrum)",
                       normalize: bool = True) -> None:
    """Plot ``curves`` ``{label: (freqs_hz, level_db)}`` (e.g. before/after) against an optional
    ``target`` ``(freqs_hz, level_db)`` on a log frequency axis; write a PNG to ``path``.

    ``normalize`` shifts each curve so its power mean over 100 Hz-10 kHz is
    0 dB, so versions at different loudness compare by shape (the y label
    says so). Raises ValueError for bad input (empty ``curves``, mismatched
    lengths, non-positive or unsorted frequencies, NaN, a path not ending in
    .png) and ProjectError when the file cannot be written.
    """
    out = _path(path)
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty mapping {label: (freqs_hz, level_db)}")
    data = {str(label): _curve(str(label), c) for label, c in curves.items()}
    tgt = _curve("target", target) if target is not None else None

    def shift(freqs: np.ndarray, level: np.ndarray) -> np.ndarray:
        if not normalize:
            return level
        mid = (freqs >= 100.0) & (freqs <= 10000.0)
        ref = level[mid] if mid.any() else level
        return level - 10.0 * np.log10(np.mean(10.0 ** (ref / 10.0)))

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=_SIZE_IN)
    try:
        if tgt is not None:
            ax.plot(tgt[0], shift(*tgt), color="#888888", linestyle="--", linewidth=2.0, label="target")
        for i, (label, (freqs, level)) in enumerate(data.items()):
            ax.plot(freqs, shift(freqs, level), color=_COLOURS[i % len(_COLOURS)], linewidth=1.6, label=label)
        ax.set_xscale("log")
        lo = min(c[0][0] for c in data.values())
        hi = max(c[0][-1] for c in data.values())
        ax.set_xlim(max(lo, 10.0), hi)
        ticks = [t for t in (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000) if lo <= t <= hi]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t // 1000}k" if t >= 1000 else str(t) for t in ticks])
        levels = np.concatenate([shift(f, v) for f, v in data.values()])
        top = float(np.max(levels))
        ax.set_ylim(max(float(np.min(levels)), top - 60.0) - 3.0, top + 3.0)
        ax.set_xlabel("Frequency (Hz)")
        ax.set_ylabel("Level (dB, 0 dB = 100 Hz-10 kHz mean)" if normalize else "Level (dB re full scale)")
        ax.set_title(title)
        ax.grid(True, which="both", color="#dddddd", linewidth=0.6)
        ax.legend(loc="lower left", frameon=True)
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    _save(fig, out)


def plot_short_term_loudness(path: str | os.PathLike, times_s, lufs, target_lufs: float | None = None, *,
                             title: str = "Short-term loudness (3 s window)") -> None:
    """Plot short-term loudness ``lufs`` (LUFS, ``-inf`` allowed for silence) against ``times_s``
    (seconds, increasing), with an optional horizontal ``target_lufs`` line; write a PNG to ``path``.

    Raises ValueError for bad input (lengths differ, fewer than 2 points,
    NaN, unsorted times, a non-finite target, a path not ending in .png) and
    ProjectError when the file cannot be written.
    """
    out = _path(path)
    t = _vector("times_s", times_s)
    v = _vector("lufs", lufs, allow_inf=True)
    if t.shape != v.shape:
        raise ValueError(f"times_s has {t.size} values but lufs has {v.size}")
    if (np.diff(t) <= 0).any():
        raise ValueError("times_s must be increasing")
    if (v == np.inf).any():
        raise ValueError("lufs contains +inf")
    if target_lufs is not None and (isinstance(target_lufs, bool) or not isinstance(target_lufs, (int, float))
                                    or not math.isfinite(target_lufs)):
        raise ValueError(f"target_lufs must be a finite number of LUFS, got {target_lufs!r}")
    shown = np.maximum(v, _PLOT_FLOOR_LUFS)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=_SIZE_IN)
    try:
        ax.plot(t, shown, color=_COLOURS[0], linewidth=1.4, label="short-term")
        if target_lufs is not None:
            ax.axhline(float(target_lufs), color=_COLOURS[1], linestyle="--", linewidth=1.4,
                       label=f"target {float(target_lufs):.1f} LUFS")
        lo = float(np.min(shown))
        hi = float(np.max(shown))
        if target_lufs is not None:
            lo, hi = min(lo, float(target_lufs)), max(hi, float(target_lufs))
        ax.set_ylim(lo - 3.0, hi + 3.0)
        ax.set_xlim(float(t[0]), float(t[-1]))
        ax.set_xlabel("Time (s)")
        ax.set_ylabel("Loudness (LUFS)")
        ax.set_title(title)
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.legend(loc="lower right", frameon=True)
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    _save(fig, out)
