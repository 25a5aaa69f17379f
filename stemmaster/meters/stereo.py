"""Stereo measures: inter-channel correlation and side-to-mid energy.

Audio is shaped ``(channels, samples)``; channel 0 is left and channel 1 is
right (further channels, e.g. C/Ls/Rs of a 5-channel file, are ignored).
Mono ``(1, n)`` is fully correlated and has no side signal.
"""

from __future__ import annotations

import numpy as np

from stemmaster.meters.loudness import check_meter_audio

_SILENT_MEAN_SQUARE = 1e-20  # below -200 dBFS RMS a channel counts as silent


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
    left = audio[0].astype(np.float64)
    right = audio[1].astype(np.float64)
    left -= left.mean()
    right -= right.mean()
    ll = float(np.dot(left, left))
    rr = float(np.dot(right, right))
    if ll <= _SILENT_MEAN_SQUARE * n or rr <= _SILENT_MEAN_SQUARE * n:
        return 0.0
    r = float(np.dot(left, right)) / float(np.sqrt(ll) * np.sqrt(rr))
    return float(min(1.0, max(-1.0, r)))


def side_to_mid_db(audio: np.ndarray) -> float:
    """Energy of side ``S = (L - R) / 2`` over mid ``M = (L + R) / 2``, in dB.

    ``-inf`` for mono, identical channels and silence (no side energy);
    ``+inf`` for polarity-inverted channels (side energy, no mid).
    """
    check_meter_audio(audio)
    if audio.shape[0] < 2 or audio.shape[1] == 0:
        return float("-inf")
    left = audio[0].astype(np.float64)
    right = audio[1].astype(np.float64)
    mid = 0.5 * (left + right)
    side = np.subtract(left, right, out=left)
    side *= 0.5
    side_energy = float(np.dot(side, side))
    mid_energy = float(np.dot(mid, mid))
    if side_energy <= 0.0:
        return float("-inf")
    if mid_energy <= 0.0:
        return float("inf")
    return float(10.0 * np.log10(side_energy / mid_energy))
