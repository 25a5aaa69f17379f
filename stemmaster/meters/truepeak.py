"""True-peak measurement by 4x oversampling (ITU-R BS.1770-4, Annex 2).

The standard estimates the peak of the reconstructed (analogue) waveform by
upsampling 4x with a low-pass interpolation filter and taking the largest
absolute value. It suggests a 48-tap polyphase FIR (12 taps per phase); we use
a longer Kaiser-windowed sinc (81 taps, about 20 per phase: the filter
``scipy.signal.resample_poly`` designs for 4x), which interpolates more
accurately. The fixed-point headroom step of Annex 2 (-12.04 dB before,
+12.04 dB after) is not needed in floating point.

The peak search runs as a numba polyphase kernel that never stores the 4x
signal, so it needs no more memory than the input and is about 3x faster than
upsampling with ``resample_poly`` and taking the maximum (which it equals to
rounding error; ``oversample_4x`` gives the upsampled signal itself).

Audio is shaped ``(channels, samples)``.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.signal import firwin, resample_poly

OVERSAMPLING = 4
_HALF_LEN = 10 * OVERSAMPLING  # resample_poly's default half length for up=4, down=1
# The interpolation filter resample_poly(x, 4, 1) uses: gain 4 restores the level lost to zero-stuffing.
_TAPS = firwin(2 * _HALF_LEN + 1, 1.0 / OVERSAMPLING, window=("kaiser", 5.0)) * OVERSAMPLING
# Polyphase layout: phase p, tap j multiplies x[k + 10 - j] for output sample 4k + p.
_PHASES = np.zeros((OVERSAMPLING, _TAPS.size // OVERSAMPLING + 1))
for _p in range(OVERSAMPLING):
    _c = _TAPS[_p::OVERSAMPLING]
    _PHASES[_p, :_c.size] = _c
_CENTER = _HALF_LEN // OVERSAMPLING
_N_TAP = _PHASES.shape[1]
_TAPS_BY_PHASE = np.ascontiguousarray(_PHASES[:, ::-1].T)  # (n_tap, 4), reversed: reading order


@numba.njit(cache=True, parallel=True, fastmath=True)
def _interval_peaks(xp: np.ndarray, taps_by_phase: np.ndarray) -> np.ndarray:
    """``out[k]`` = max |4x-oversampled x| over output samples 4k .. 4k+3 (interval [k, k+1)).

    ``taps_by_phase`` is ``(n_tap, 4)`` with the taps in reading order, and ``xp``
    the signal zero-padded so that output ``4k + p`` is
    ``sum_j taps_by_phase[j, p] * xp[k + j]``: the four phases read each input
    sample once and the loop needs no bounds checks (fastmath lets it vectorise;
    it changes results only by rounding).
    """
    n_tap = taps_by_phase.shape[0]
    n = xp.shape[0] - n_tap + 1
    out = np.empty(n)
    for k in numba.prange(n):
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for j in range(n_tap):
            v = xp[k + j]
            a0 += taps_by_phase[j, 0] * v
            a1 += taps_by_phase[j, 1] * v
            a2 += taps_by_phase[j, 2] * v
            a3 += taps_by_phase[j, 3] * v
        out[k] = max(abs(a0), abs(a1), abs(a2), abs(a3))
    return out


def oversample_4x(x: np.ndarray) -> np.ndarray:
    """Upsample a signal 4x along its last axis (output sample ``4k`` is input sample ``k``)."""
    return resample_poly(np.asarray(x, dtype=np.float64), OVERSAMPLING, 1, axis=-1)


def _channel_peaks(audio: np.ndarray) -> np.ndarray:
    audio = np.atleast_2d(np.asarray(audio))
    env = np.zeros(audio.shape[1])
    for ch in audio:
        xp = np.concatenate([np.zeros(_N_TAP - 1 - _CENTER), np.asarray(ch, dtype=np.float64), np.zeros(_CENTER)])
        np.maximum(env, _interval_peaks(xp, _TAPS_BY_PHASE), out=env)
    return env


def true_peak_envelope(audio: np.ndarray) -> np.ndarray:
    """Per-sample true-peak envelope, linear, shaped ``(samples,)``.

    Element ``k`` is the largest absolute value of the 4x-oversampled waveform,
    over all channels, on the interval from sample ``k-1`` to sample ``k+1``:
    a gain applied at sample ``k`` (and its neighbours) that brings this value
    under a ceiling keeps the reconstructed waveform under it too.
    """
    env = _channel_peaks(audio)
    if env.size > 1:
        env[1:] = np.maximum(env[1:], env[:-1].copy())  # add the interval [k-1, k)
    return env


def true_peak_linear(audio: np.ndarray) -> float:
    """Largest absolute value of the 4x-oversampled signal over all channels."""
    env = _channel_peaks(audio)
    return float(env.max()) if env.size else 0.0


def true_peak_dbtp(audio: np.ndarray, sample_rate: int | None = None) -> float:
    """True peak in dBTP of audio shaped ``(channels, samples)``; ``-inf`` for silence.

    ``sample_rate`` is accepted for a uniform meter signature; 4x oversampling
    is the same at any rate.
    """
    peak = true_peak_linear(audio)
    return float(20.0 * np.log10(peak)) if peak > 0 else float("-inf")


def sample_peak_dbfs(audio: np.ndarray) -> float:
    """Largest absolute sample value in dBFS; ``-inf`` for silence."""
    audio = np.asarray(audio)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return float(20.0 * np.log10(peak)) if peak > 0 else float("-inf")
