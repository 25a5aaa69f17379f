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

Measuring the output again does not run the 8x detector over all of it: the
output's envelope is bounded from the input's and the gain's movement
(``_scaled_envelope``), and only where that bound could pass the ceiling
(around the peaks the limiter caught: 28 short regions on a 4-minute master)
is it measured exactly. On a 4-minute song that took the verified pass from
1.7 s to 0.5 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numba

from stemmaster.dsp._recursive import limiter_pass
from stemmaster.dsp.processor import Processor, check_range
from stemmaster.errors import AudioError
from stemmaster.meters.truepeak import Interpolator, interpolation_gain_bound, true_peak_envelope

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
# The detector's envelope at sample k reads the samples k - _REACH .. k + _REACH - 1 (its
# interpolator spans +-10 samples around an interval; the envelope joins two intervals).
_REACH = DETECTOR.taps_half + 1
# The detector's float32 kernel errs by about 3e-7 of full scale; bounds allow for ten times that.
_KERNEL_SLACK = 3e-6
_BOUND_BLOCK = 32  # samples per block of the envelope bound (at least _REACH)


def detector_envelope(audio: np.ndarray) -> np.ndarray:
    """The limiter's peak detector on ``audio`` ``(channels, samples)``: linear, float32 ``(samples,)``."""
    return true_peak_envelope(audio, DETECTOR)


@numba.njit(cache=True, nogil=True)
def _block_peaks(signal: np.ndarray, block: int) -> np.ndarray:
    """The largest magnitude over the channels of each ``block`` samples of ``signal``."""
    channels, n = signal.shape
    blocks = (n + block - 1) // block
    out = np.zeros(blocks)
    for b in range(blocks):
        m = 0.0
        for k in range(b * block, min(n, (b + 1) * block)):
            for c in range(channels):
                m = max(m, abs(signal[c, k]))
        out[b] = m
    return out


@numba.njit(cache=True, nogil=True)
def _bound(env: np.ndarray, peaks: np.ndarray, step: np.ndarray, scale: float, taps_abs: float,
           slack: float, block: int) -> np.ndarray:
    """An upper bound of the detector envelope of ``signal * scale * step`` from ``env``, that of
    ``signal`` (float32 ``(samples,)``): at sample k, in block b of ``block`` samples,
    ``scale * (step[k] * env[k] + T * M * D)``, with ``M`` the signal's largest magnitude
    (``peaks``: ``_block_peaks(signal, block)``) and ``D`` the range of ``step``, both over
    blocks b-1 .. b+1 (which hold the detector's reach when ``block >= _REACH``)."""
    n = env.shape[0]
    blocks = peaks.shape[0]
    hi = np.empty(blocks)
    lo = np.empty(blocks)
    for b in range(blocks):
        s_hi = -np.inf
        s_lo = np.inf
        for k in range(b * block, min(n, (b + 1) * block)):
            s_hi = max(s_hi, step[k])
            s_lo = min(s_lo, step[k])
        hi[b] = s_hi
        lo[b] = s_lo
    out = np.empty(n, dtype=np.float32)
    for b in range(blocks):
        p, s_hi, s_lo = peaks[b], hi[b], lo[b]
        for j in (b - 1, b + 1):
            if 0 <= j < blocks:
                p = max(p, peaks[j])
                s_hi = max(s_hi, hi[j])
                s_lo = min(s_lo, lo[j])
        extra = taps_abs * p * (s_hi - s_lo)
        for k in range(b * block, min(n, (b + 1) * block)):
            out[k] = scale * (step[k] * (env[k] + slack) + extra)
    return out


def _scaled_envelope(env: np.ndarray, peaks: np.ndarray, scaled: np.ndarray, step: np.ndarray,
                     accept: float, scale: float = 1.0) -> np.ndarray:
    """The detector envelope of ``scaled`` = ``signal * scale * step`` (``(channels, samples)``,
    ``step`` ``(samples,)``), given ``env``, the envelope of ``signal``, and ``peaks``, its
    ``_block_peaks``; exact wherever it could pass ``accept``, elsewhere an upper bound (so a
    ceiling check on it stays sound).

    Around sample k the scaled waveform is ``step[k]`` times the signal's plus the
    signal weighted by how far ``step`` moves from ``step[k]`` within the detector's
    reach: by the triangle inequality, its envelope is at most
    ``step[k] * env[k] + T * max|signal| * max|step - step[k]|`` there, ``T`` the largest
    sum of the interpolator's absolute taps (``_bound`` takes those maxima over a few
    dozen samples). A limiter's gain moves slowly on its release and is flat across
    every peak it acts on, so the bound passes ``accept`` only around the peaks, where
    the 8x detector runs again, instead of over the whole signal.
    """
    bound = _bound(env, peaks, step, scale, interpolation_gain_bound(DETECTOR), _KERNEL_SLACK, _BOUND_BLOCK)
    return _remeasure(bound, scaled, bound > accept, merge=_BOUND_BLOCK)


def _remeasure(env: np.ndarray, out: np.ndarray, changed: np.ndarray, merge: int) -> np.ndarray:
    """``env`` with the detector envelope of ``out`` recomputed around the samples that ``changed``
    (widened by ``merge`` samples either side, which joins nearby regions; all of it when they
    are many)."""
    n = env.shape[0]
    idx = np.flatnonzero(changed)
    if idx.size == 0:
        return env
    if idx.size > 0.25 * n:
        return true_peak_envelope(out, DETECTOR)
    cut = np.flatnonzero(np.diff(idx) > 2 * merge) + 1  # gaps that separate regions
    starts = np.maximum(idx[np.concatenate([[0], cut])] - merge, 0)
    stops = np.minimum(idx[np.concatenate([cut - 1, [idx.size - 1]])] + merge + 1, n)
    if (stops - starts).sum() > 0.5 * n:
        return true_peak_envelope(out, DETECTOR)
    env = env.copy()
    for a, b in zip(starts, stops):
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
                         verify: bool = True, scale: float = 1.0, in_place: bool = False
                         ) -> tuple[np.ndarray, int, float, np.ndarray | None]:
        """The gain curve for ``audio * scale``, the number of passes it took (``MAX_PASSES + 1``:
        fallback used), the detector's peak of ``audio * scale * gain`` (linear; an upper bound
        of it, exact near the ceiling) and ``audio * scale * gain`` itself; the last two are NaN
        and None when ``verify`` is off (the output was not measured). ``envelope``, if given,
        is ``detector_envelope(audio)`` (of the unscaled audio). ``in_place``: the output is
        written over ``audio`` (float64, C-contiguous), which saves a copy of a whole song."""
        if in_place and not (isinstance(audio, np.ndarray) and audio.dtype == np.float64
                             and audio.flags.c_contiguous and audio.flags.writeable):
            raise ValueError("in_place needs a writeable, C-contiguous float64 array")
        audio = np.asarray(audio, dtype=np.float64)
        n = audio.shape[-1]
        if n == 0:
            return np.ones(n), 0, 0.0, audio if in_place else audio * scale
        if not np.isfinite(audio).all():
            raise AudioError("the limiter's input contains NaN or infinite samples")
        if envelope is None:
            env = detector_envelope(audio)
        else:
            env = np.asarray(envelope)
            if env.shape != (n,) or env.dtype not in (np.float32, np.float64):
                raise ValueError(f"envelope must be float shaped ({n},), got {env.dtype} {env.shape}")
        if not np.isfinite(env.max()):
            raise AudioError("the limiter's input contains NaN or infinite samples")
        if env.max() * scale <= 10.0 ** (self.ceiling_dbtp / 20.0):
            out = audio if in_place else audio.copy()
            if scale != 1.0:
                out *= scale
            return np.ones(n), 0, float(env.max()) * scale, out  # under the ceiling: untouched
        target = 10.0 ** ((self.ceiling_dbtp - TARGET_MARGIN_DB) / 20.0)
        accept = 10.0 ** ((self.ceiling_dbtp - TARGET_MARGIN_DB / 2) / 20.0)  # rounding slack
        length = min(n, self.lookahead_samples(sample_rate))
        rise = 1.0 - math.exp(-1000.0 / (self.release_ms * sample_rate))
        # the first pass asks for the ceiling (on the unscaled envelope: env * scale > t <=> env > t / scale)
        total = limiter_pass(env, target / scale, 1, PEAK_GUARD, length - 1 + PEAK_GUARD, True, rise, length)
        if not verify:
            return total, 1, float("nan"), None  # the first pass only: a loudness estimate
        peaks = _block_peaks(audio, _BOUND_BLOCK)  # of the input, before an in-place output replaces it
        out = audio if in_place else audio.copy()
        out *= total
        out *= scale
        env = _scaled_envelope(env, peaks, out, total, accept, scale)
        for done in range(2, MAX_PASSES + 2):
            if env.max() <= accept:
                return total, done - 1, float(env.max()), out
            if done > MAX_PASSES:
                break
            # correcting what moving gain added: aim as far under as the output was over
            step = limiter_pass(env, target, 2, PEAK_GUARD, length - 1 + PEAK_GUARD, False, rise, length)
            total *= step
            peaks = _block_peaks(out, _BOUND_BLOCK)
            out *= step
            env = _scaled_envelope(env, peaks, out, step, accept)
        fix = target / float(env.max())  # not reached in testing; keeps the promise regardless
        total *= fix
        out *= fix
        return total, MAX_PASSES + 1, target, out

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

    def limit(self, audio: np.ndarray, sample_rate: int, *, envelope: np.ndarray | None = None,
              scale: float = 1.0, in_place: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
        """``(output, gain, peak)`` for ``audio * scale``: ``audio * scale * gain`` (float64) with
        the verified gain curve (as ``gain``, ``scale`` not included), and the 8x detector's
        reading of its true peak (linear, ``<=`` the ceiling; exact near the ceiling, an upper
        bound elsewhere), which bounds the 4x meter's reading. ``envelope``, if given, is
        ``detector_envelope(audio)``: a caller trying several ``scale`` values measures it once.
        ``in_place``: the output overwrites ``audio`` (a writeable C-contiguous float64 array)."""
        total, _, peak, out = self._gain_and_passes(audio, int(sample_rate), envelope, True, float(scale), in_place)
        return out, total, peak

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return self._gain_and_passes(audio, int(sample_rate))[3]
