"""Separation quality: signal-to-distortion ratio of estimated stems against the true ones.

The plain SDR of the MUSDB/SiSEC "new SDR" (``10 log10(|s|^2 / |s - s_hat|^2)``
over the whole signal, all channels together), as demucs' own evaluation uses
(``demucs.evaluate.new_sdr``); no scale or filter allowances (not BSS-eval
v4's SDR). Arrays are ``(channels, samples)`` float32/float64; NumPy only.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-7  # demucs' new_sdr adds this to both energies, so silence against silence scores 0 dB


def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """SDR in dB of ``estimate`` against ``reference`` (same shape, ``(channels, samples)``)."""
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    if ref.shape != est.shape:
        raise ValueError(f"reference {ref.shape} and estimate {est.shape} must have the same shape")
    signal = float(np.sum(ref * ref))
    noise = float(np.sum((ref - est) ** 2))
    return 10.0 * math.log10((signal + _EPS) / (noise + _EPS))


def sdr_table(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray]) -> dict[str, float]:
    """SDR per stem for the stems present in both dicts (reference order), and their ``"mean"``."""
    names = [name for name in references if name in estimates]
    if not names:
        raise ValueError("no stem names in common between references and estimates")
    scores = {name: sdr_db(references[name], estimates[name]) for name in names}
    scores["mean"] = float(np.mean([scores[name] for name in names]))
    return scores


def load_multitrack(folder, stems: tuple[str, ...] = ("drums", "bass", "other", "vocals")
                    ) -> tuple[np.ndarray, int, dict[str, np.ndarray]]:
    """``mixture.wav`` and ``<stem>.wav`` of a MUSDB-style folder: (mixture, sample_rate, {stem: audio}).

    Arrays are float32 ``(channels, samples)``; every stem must match the
    mixture's rate and shape (ValueError otherwise).
    """
    from pathlib import Path

    from stemmaster.audio_io import read_audio

    folder = Path(folder)
    mixture, rate = read_audio(folder / "mixture.wav")
    out = {}
    for name in stems:
        audio, stem_rate = read_audio(folder / f"{name}.wav")
        if stem_rate != rate or audio.shape != mixture.shape:
            raise ValueError(f"{folder / (name + '.wav')}: {audio.shape} at {stem_rate} Hz does not match the "
                             f"mixture's {mixture.shape} at {rate} Hz")
        out[name] = audio
    return mixture, rate, out
