"""Stereo measures: inter-channel correlation and side-to-mid energy.

Audio is shaped ``(channels, samples)``; channel 0 is left and channel 1 is
right (further channels, e.g. C/Ls/Rs of a 5-channel file, are ignored).
Mono ``(1, n)`` is fully correlated and has no side signal.
"""

from __future__ import annotations

import numba
import numpy as np

from stemmaster.meters.loudness import check_meter_audio

_SILENT_MEAN_SQUARE = 1e-20  # below -200 dBFS RMS a channel counts as silent


@numba.njit(cache=True, nogil=True)
def _sums(left: np.ndarray, right: np.ndarray) -> tuple[float, float, float, float, float, float, float]:
    """``(sum L, sum R, sum L*L, sum R*R, sum L*R, sum (L-R)**2, sum (L+R)**2)`` in float64, one pass."""
    sl = sr = sll = srr = slr = sss = smm = 0.0
    for i in range(left.shape[0]):
        a = float(left[i])
        b = float(right[i])
        sl += a
        sr += b
        sll += a * a
        srr += b * b
        slr += a * b
        d = a - b
        m = a + b
        sss += d * d
        smm += m * m
    return sl, sr, sll, srr, slr, sss, smm


def _channel_sums(audio: np.ndarray) -> tuple[float, float, float, float, float, float, float]:
    return _sums(np.ascontiguousarray(audio[0]), np.ascontiguousarray(audio[1]))


def stereo_correlation(audio: np.ndarray) -> float:
    """Pearson correlation of left and right over the whole signal, in ``[-1, 1]``.

    1.0 for mono; 0.0 when either channel is silent (or constant), including
    all-silent stereo; +1 for identical channels, -1 for polarity-inverted ones.
    """
    check_meter_audio(audio)
    if audio.shape[0] < 2:
        return 1.0
    n = audio.shape[1]
    if n == 0:
        return 0.0
    sl, sr, sll, srr, slr, _, _ = _channel_sums(audio)
    ll = sll - sl * sl / n  # sums of squares about the means
    rr = srr - sr * sr / n
    if ll <= _SILENT_MEAN_SQUARE * n or rr <= _SILENT_MEAN_SQUARE * n:
        return 0.0
    r = (slr - sl * sr / n) / (np.sqrt(ll) * np.sqrt(rr))
    return float(min(1.0, max(-1.0, r)))


def side_to_mid_db(audio: np.ndarray) -> float:
    """Energy of side ``S = (L - R) / 2`` over mid ``M = (L + R) / 2``, in dB.

    ``-inf`` for mono, identical channels and silence (no side energy);
    ``+inf`` for polarity-inverted channels (side energy, no mid).
    """
    check_meter_audio(audio)
    if audio.shape[0] < 2 or audio.shape[1] == 0:
        return float("-inf")
    *_, side_energy, mid_energy = _channel_sums(audio)  # of 2S and 2M: the ratio is the same
    if side_energy <= 0.0:
        return float("-inf")
    if mid_energy <= 0.0:
        return float("inf")
    return float(10.0 * np.log10(side_energy / mid_energy))
