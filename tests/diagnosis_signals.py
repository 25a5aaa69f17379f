"""Synthetic songs for the diagnosis tests: a clean, balanced four-stem mix whose every measure sits
inside the thresholds, and single flaws added to it one at a time."""

from __future__ import annotations

import numpy as np
from scipy import signal

SR = 44100
DURATION_S = 12.0


def _fade(x: np.ndarray, sr: int = SR, fade_s: float = 0.3) -> np.ndarray:
    n = int(fade_s * sr)
    ramp = np.sin(np.linspace(0.0, np.pi / 2, n)) ** 2
    x = x.copy()
    x[..., :n] *= ramp
    x[..., -n:] *= ramp[::-1]
    return x


def _voice(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A sung line: notes gliding over an octave with vibrato, harmonics rolling off 3 dB/octave, 9 above
    1.5 kHz, breathy noise 10 dB down, phrases of 1.5 s with short gaps."""
    t = np.arange(n) / sr
    scale = np.array([262.0, 294.0, 330.0, 349.0, 392.0, 440.0, 494.0, 523.0])
    notes = np.concatenate([rng.permutation(scale) for _ in range(int(DURATION_S / 2) + 1)])  # every note as often
    f = np.repeat(notes, int(0.25 * sr) + 1)[:n]
    f = signal.lfilter([0.002], [1.0, -0.998], f - f[0]) + f[0]  # glides between notes
    f = f * (1.0 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = np.zeros(n)
    for k in range(1, 30):
        amp = 1.0 / np.sqrt(k) * np.minimum(1.0, 1500.0 / np.maximum(k * f, 1.0))
        x += amp * np.sin(k * phase) * (k * f < 0.45 * sr)
    breath = signal.sosfilt(signal.butter(2, [800, 5000], "bandpass", fs=sr, output="sos"), rng.standard_normal(n))
    x = x / np.abs(x).max() + 0.3 * breath / np.abs(breath).max()
    phrase = ((t % 2.0) < 1.6).astype(float)
    phrase = signal.sosfiltfilt(signal.butter(1, 8.0, fs=sr, output="sos"), phrase)
    return np.vstack([x * phrase] * 2)


def _drums(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    out = np.zeros((2, n))
    beat = int(0.5 * sr)
    k = np.arange(int(0.3 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 * k + 60 * (1 - np.exp(-k / 0.03)) * 0.03)) * np.exp(-k / 0.12)
    h = np.arange(int(0.06 * sr)) / sr
    hat = signal.sosfilt(signal.butter(4, 7000, "highpass", fs=sr, output="sos"),
                         rng.standard_normal(h.size)) * np.exp(-h / 0.015) * 0.25
    snare_n = signal.sosfilt(signal.butter(2, [1500, 6000], "bandpass", fs=sr, output="sos"),
                             rng.standard_normal(int(0.15 * sr)))
    s = np.arange(snare_n.size) / sr
    snare = (0.5 * np.sin(2 * np.pi * 190 * s) + 0.6 * snare_n / np.abs(snare_n).max()) * np.exp(-s / 0.05)
    for i, start in enumerate(range(0, n - kick.size, beat)):
        out[:, start:start + kick.size] += kick if i % 2 == 0 else 0.0
        if i % 2 == 1:
            out[:, start:start + snare.size] += snare
        for off in (0, beat // 2):
            a = start + off
            out[0, a:a + hat.size] += 0.8 * hat
            out[1, a:a + hat.size] += hat
    return out


def _bass(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    f = np.repeat(rng.choice([55.0, 65.4, 73.4, 82.4], size=int(DURATION_S) + 1), sr)[:n]
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    x = signal.sosfilt(signal.butter(2, 400, fs=sr, output="sos"), x)
    return np.vstack([x, x]) * (0.8 + 0.2 * np.cos(2 * np.pi * 2.0 * t))


def _pad(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Detuned saw chords changing every 2 s (Am F C G), a little wider than mono, low-passed at 4 kHz,
    with bow/room noise 30 dB down."""
    chords = [(440.0, 523.3, 659.3), (349.2, 440.0, 523.3), (523.3, 659.3, 784.0), (392.0, 493.9, 587.3)]
    seg = 2 * sr
    left, right = np.zeros(n), np.zeros(n)
    for i, start in enumerate(range(0, n, seg)):
        m = min(seg, n - start)
        t = np.arange(m) / sr
        for f in chords[i % 4]:
            for k in range(1, 16):
                if k * f > 0.45 * sr:
                    break
                left[start:start + m] += np.sin(2 * np.pi * k * f * t + rng.uniform(0, 6)) / k
                right[start:start + m] += np.sin(2 * np.pi * k * f * 1.004 * t + rng.uniform(0, 6)) / k
    common, spread = 0.5 * (left + right), 0.5 * (left - right)
    sos = signal.butter(2, 4000, fs=sr, output="sos")
    x = signal.sosfilt(sos, np.vstack([common + 0.3 * spread, common - 0.3 * spread]))
    air = signal.sosfilt(signal.butter(1, [300, 8000], "bandpass", fs=sr, output="sos"), rng.standard_normal((2, n)))
    air *= 0.03 * np.sqrt(np.mean(x ** 2)) / np.sqrt(np.mean(air ** 2))
    return x + air


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2)))


def clean_stems(seed: int = 1, sr: int = SR) -> dict[str, np.ndarray]:
    """Four clean stems, balanced like a pop mix (vocal about level with the rest), peaking near -6 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(DURATION_S * sr)
    raw = {"vocals": _voice(rng, n, sr), "drums": _drums(rng, n, sr), "bass": _bass(rng, n, sr),
           "other": _pad(rng, n, sr)}
    levels = {"vocals": 0.1, "drums": 0.08, "bass": 0.08, "other": 0.05}
    stems = {k: _fade(v / _rms(v) * levels[k], sr) for k, v in raw.items()}
    peak = np.abs(sum(stems.values())).max()
    return {k: (v * 0.5 / peak).astype(np.float32) for k, v in stems.items()}


def mix_of(stems: dict[str, np.ndarray]) -> np.ndarray:
    return sum(v.astype(np.float64) for v in stems.values()).astype(np.float32)


def as_input(stems: dict[str, np.ndarray]) -> list[tuple[str, str, np.ndarray]]:
    return [(k, k, v) for k, v in stems.items()]
