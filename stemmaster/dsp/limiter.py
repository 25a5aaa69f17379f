"""A lookahead true-peak limiter whose output never exceeds its ceiling in dBTP.

The peak detector is the meter's kernel (``true_peak_envelope``) at 8x
oversampling with the meter's own filter shape, so its grid contains every
point the 4x meter (BS.1770-4 Annex 2) reads: the meter can never read more
than the detector. The extra points matter: on a 4x grid a peak can hide
between points by up to 0.2 dB for 10-12 kHz content, which heavily limited
masters have, and a finer meter (ffmpeg's ebur128 at 192 kHz) then reads the
master over its ceiling. Measured on the demo mastered to -9 LUFS / -0.5 dBTP:
4x detector -> ffmpeg -0.3 dBTP; 8x -> ffmpeg -0.4 dBTP, our meter -0.501.
One pass, with ``L`` the lookahead and ``G`` = ``PEAK_GUARD`` in samples:

1. ``r[n] = min(1, target / env[n])``, the gain each sample needs;
2. ``h[n] = min(r[n-G .. n+L-1+G])``, the requirement held over the lookahead
   (and ``G`` samples either side, so the gain is flat across the
   interpolation filter around a peak);
3. ``g[n] = min(h[n], g[n-1] + (1 - g[n-1]) * k)``, a one-pole release
   rising toward 1 but never above the held requirement (numba);
4. ``s[n] = mean(g[n-L+1 .. n])``, a box average: each ``g[m]`` in that
   window holds a range ``[m-G, m+L-1+G]`` that contains ``n``, so
   ``s[n] <= r[n]``, and gain changes become ``L``-sample ramps that finish
   before the peak.

The curve is computed from the future (steps 2 and 4 look ``L-1+G`` samples
ahead), so the audio is not delayed and no latency needs compensating. A
gain that moves between samples can still lift the reconstructed waveform a
hair, so the output is measured again and, while it is over, corrected by
further passes (steps 1, 2 and 4 only, local, aiming as far under as it was
over; at most ``MAX_PASSES`` in all); were it still over after that, one
plain scale of the whole curve keeps the promise. In testing every signal
needed one pass (a few needed two before the guard was added).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.ndimage import maximum_filter1d

from stemmaster.dsp._recursive import limiter_pass
from stemmaster.dsp.processor import Processor, check_range
from stemmaster.errors import AudioError
from stemmaster.meters.truepeak import Interpolator, true_peak_envelope

MAX_PASSES = 4
# 8x with the meter's filter shape (a Kaiser-5 sinc spanning +-10 input samples):
# its even phases are the 4x meter's points, so the meter can never read more
# than the detector, and the odd phases catch peaks between the meter's points.
DETECTOR = Interpolator(oversampling=8, taps_half=10, beta=5.0)
# Aim this far under the ceiling; a pass is accepted within half of it (the
# other half is far more than float32 output rounding can add).
TARGET_MARGIN_DB = 0.001
# Hold each requirement this many samples either side of its sample as well,
# so the gain is flat across the interpolation filter's main lobe at a peak.
PEAK_GUARD = 12
# Samples of context either side when re-measuring part of a signal.
_ENV_CONTEXT = 40
_MERGE = 2048  # regions to re-measure are widened by this, merging nearby ones


def detector_envelope(audio: np.ndarray) -> np.ndarray:
    """The limiter's peak detector on ``audio`` ``(channels, samples)``: linear, shaped ``(samples,)``."""
    return true_peak_envelope(audio, DETECTOR)


def _remeasure(env: np.ndarray, out: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """``true_peak_envelope(out)``, recomputing only around the samples that ``changed``."""
    n = env.shape[0]
    if changed.mean() > 0.25:
        return true_peak_envelope(out, DETECTOR)
    near = maximum_filter1d(changed.astype(np.uint8), 2 * _MERGE + 1) > 0
    if near.mean() > 0.5:
        return true_peak_envelope(out, DETECTOR)
    env = env.copy()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], near.view(np.int8), [0]])))
    for a, b in zip(edges[0::2], edges[1::2]):
        lo, hi = max(0, a - _ENV_CONTEXT), min(n, b + _ENV_CONTEXT)
        env[a:b] = true_peak_envelope(out[:, lo:hi], DETECTOR)[a - lo:b - lo]
    return env


@dataclass(frozen=True)
class TruePeakLimiter(Processor):
    """Brickwall limiter: output true peak (4x, ``true_peak_dbtp``) <= ``ceiling_dbtp``."""

    kind: ClassVar[str] = "true_peak_limiter"

    ceiling_dbtp: float = -1.0
    lookahead_ms: float = 5.0
    release_ms: float = 100.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_range(owner, "ceiling_dbtp", self.ceiling_dbtp, -20.0, 0.0)
        check_range(owner, "lookahead_ms", self.lookahead_ms, 0.5, 20.0)
        check_range(owner, "release_ms", self.release_ms, 1.0, 2000.0)

    def lookahead_samples(self, sample_rate: int) -> int:
        return max(1, int(round(self.lookahead_ms * 1e-3 * sample_rate)))

    def _gain_and_passes(self, audio: np.ndarray, sample_rate: int, envelope: np.ndarray | None = None,
                         verify: bool = True) -> tuple[np.ndarray, int, float, np.ndarray | None]:
        """The gain curve, the number of passes it took (``MAX_PASSES + 1``: fallback used), the
        detector's peak of ``audio * gain`` (linear) and ``audio * gain`` itself; the last two
        are NaN and None when ``verify`` is off (the output was not measured)."""
        audio = np.asarray(audio, dtype=np.float64)
        n = audio.shape[-1]
        if n == 0:
            return np.ones(n), 0, 0.0, audio.copy()
        if not np.isfinite(audio).all():
            raise AudioError("the limiter's input contains NaN or infinite samples")
        if envelope is None:
            env = detector_envelope(audio)
        else:
            env = np.asarray(envelope, dtype=np.float64)
            if env.shape != (n,):
                raise ValueError(f"envelope must be shaped ({n},), got {env.shape}")
        if not np.isfinite(env.max()):
            raise AudioError("the limiter's input contains NaN or infinite samples")
        if env.max() <= 10.0 ** (self.ceiling_dbtp / 20.0):
            return np.ones(n), 0, float(env.max()), audio.copy()  # already under the ceiling: untouched
        target = 10.0 ** ((self.ceiling_dbtp - TARGET_MARGIN_DB) / 20.0)
        accept = 10.0 ** ((self.ceiling_dbtp - TARGET_MARGIN_DB / 2) / 20.0)  # rounding slack
        length = min(n, self.lookahead_samples(sample_rate))
        rise = 1.0 - math.exp(-1000.0 / (self.release_ms * sample_rate))
        total = None
        for done in range(1, MAX_PASSES + 1):
            # the first pass asks for the ceiling; later ones, correcting what
            # moving gain added, aim as far under as the output was over
            step = limiter_pass(env, target, 1 if done == 1 else 2, PEAK_GUARD, length - 1 + PEAK_GUARD,
                                done == 1, rise, length)
            if total is None:
                total = step
            else:
                total *= step
            if not verify:
                return total, done, float("nan"), None  # the first pass only: a loudness estimate
            out = audio * total
            env = _remeasure(env, out, step < 1.0)
            if env.max() <= accept:
                return total, done, float(env.max()), out
        total *= target / float(env.max())  # not reached in testing; keeps the promise regardless
        return total, MAX_PASSES + 1, target, audio * total

    def gain(self, audio: np.ndarray, sample_rate: int, *, envelope: np.ndarray | None = None,
             verify: bool = True) -> np.ndarray:
        """The linear gain curve applied (``<= 1``), shaped ``(samples,)``, the same for all channels.

        ``audio * gain`` is exactly what ``process`` returns (before the cast
        back to the input dtype); apply it to stems to give them the master's limiting.
        ``envelope``, if given, must be ``detector_envelope(audio)``: a caller
        that tries several gains on one signal measures it once and scales the
        envelope (it is linear in the gain), which saves the costliest step.
        ``verify=False`` returns the first pass alone, without measuring the
        output and correcting it: no ceiling guarantee, but its loudness is
        within a few thousandths of a LU of the verified curve's, which is
        what a loudness search needs from every pass but the last.
        """
        return self._gain_and_passes(audio, int(sample_rate), envelope, verify)[0]

    def estimate_gain(self, envelope: np.ndarray, sample_rate: int, scale: float = 1.0) -> np.ndarray:
        """``gain(audio * scale, sample_rate, envelope=envelope * scale, verify=False)`` from the
        detector envelope alone (``detector_envelope(audio)``, finite, ``(samples,)``), without
        forming the scaled envelope: the first pass, no guarantee."""
        env = np.asarray(envelope, dtype=np.float64)
        n = env.shape[0]
        if n == 0 or env.max() * scale <= 10.0 ** (self.ceiling_dbtp / 20.0):
            return np.ones(n)
        target = 10.0 ** ((self.ceiling_dbtp - TARGET_MARGIN_DB) / 20.0) / scale  # env * scale > t <=> env > t / scale
        length = min(n, self.lookahead_samples(sample_rate))
        rise = 1.0 - math.exp(-1000.0 / (self.release_ms * sample_rate))
        return limiter_pass(env, target, 1, PEAK_GUARD, length - 1 + PEAK_GUARD, True, rise, length)

    def limit(self, audio: np.ndarray, sample_rate: int, *,
              envelope: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """``(output, gain, peak)``: ``audio * gain`` (float64) with the verified gain curve (as
        ``gain``), and its true peak as the 8x detector reads it (linear, ``<=`` the ceiling),
        which bounds the 4x meter's reading."""
        total, _, peak, out = self._gain_and_passes(audio, int(sample_rate), envelope, True)
        return out, total, peak

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return self._gain_and_passes(audio, int(sample_rate))[3]
