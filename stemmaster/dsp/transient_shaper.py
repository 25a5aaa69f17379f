"""A transient shaper: more or less attack, more or less sustain, level-independent.

Signal path (feed-forward, all channels share one gain; levels in dB):

1. detector: the magnitude of each channel's analytic signal, from a causal
   IIR "90-degree" allpass pair (Niemitalo's 4+4 section design: the two
   branches differ by 90 +- 0.7 degrees from 20 Hz to 22 kHz at 44.1 kHz,
   from ~45 Hz at 96 kHz); the loudest channel at each sample is the
   stereo-linked magnitude. Unlike a rectifier or a mean square, the
   magnitude of a steady tone is constant (no ripple at twice its
   frequency), so even a 1 ms envelope of a 100 Hz tone is flat. Under the
   pair's band the phase error grows and the envelope ripples: a steady
   tone still gets exactly 0 dB down to 15 Hz at 44.1/48 kHz, but only down
   to 30 Hz at 96 kHz (a 20 Hz tone there is modulated by a few dB);
2. fast envelope ``L``: a one-pole smoothing of that magnitude with
   ``fast_ms``, in dB;
3. attack: the slow envelope ``S`` is a one-pole smoothing of ``L`` (in dB)
   with ``slow_ms``, so it lags ``L`` at an onset; it is kept within
   ``ATTACK_FULL_DB`` below and ``SLOW_ABOVE_DB`` above ``L``, so a hit out
   of silence is not remembered longer than one out of a tail.
   ``Da = L - S`` is a high-pass of the log envelope: exactly 0 for a steady
   tone, positive while the level rises. The attack weight rises from 0 at
   ``Da = ATTACK_THRESHOLD_DB`` to 1 at ``ATTACK_FULL_DB`` (the threshold
   keeps the 1-2 dB flutter of noise-like sounds out); it lasts about
   ``slow_ms`` after a hit;
4. sustain: ``M``, ``L`` smoothed with ``SUSTAIN_SMOOTH_RATIO * fast_ms``,
   and ``P``, the peak of the latest hit: ``P`` follows ``M`` up at once,
   falls toward it with ``SUSTAIN_HOLD_RATIO * slow_ms``, and restarts at
   ``M`` while an attack is detected (``Da > ATTACK_THRESHOLD_DB``).
   ``Ds = P - M`` is how far the level has fallen since the hit: 0 for a
   steady tone, growing along a tail. The sustain weight rises from 0 at
   ``Ds = SUSTAIN_THRESHOLD_DB`` to 1 at ``SUSTAIN_FULL_DB``, faded out as
   ``Da`` rises from 0 to the attack threshold (so it never steps at a new
   hit);
5. gain: ``attack_db * attack weight + sustain_db * sustain weight``,
   limited to ``+-max_gain_db``, then smoothed by a ``GAIN_SMOOTH_MS``
   one-pole. Envelopes updated at every sample (no blocks, so no zipper
   noise); no step of the curve exceeds ~1/11 of the gain swing per sample
   at 44.1 kHz. A steady tone gets exactly 0 dB once settled;
6. lookahead: the gain curve is advanced by ``LOOKAHEAD_MS`` (the curve, not
   the audio: the output is not delayed), so the boost covers the very start
   of a hit instead of beginning where the 1 ms envelope has risen. The last
   ``LOOKAHEAD_MS`` hold the final gain.

The envelopes start from silence, so a signal loud from its first sample is
treated as a hit there (the gain of a steady tone is exactly 0 dB from
~60 ms on). The recursions are numba kernels in this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numba
import numpy as np

from stemmaster.dsp.processor import EDGE_DECAY_CONTEXT, Processor, check_range, time_constant_context_samples
from stemmaster.errors import SettingsError

# Attack weight: 0 at this difference of the fast over the slow envelope (dB) ...
ATTACK_THRESHOLD_DB = 2.0
# ... 1 at this one; the slow envelope is kept no further than this under the fast one.
ATTACK_FULL_DB = 6.0
# The slow envelope is kept no further than this over the fast one (dB).
SLOW_ABOVE_DB = 3.0
# Sustain weight: 0 when the level is this far under the latest hit's peak (dB) ...
SUSTAIN_THRESHOLD_DB = 1.0
# ... 1 this far under it (and the held peak is kept no further above the level).
SUSTAIN_FULL_DB = 3.0
# Smoothing of the level for the sustain detector, in multiples of fast_ms.
SUSTAIN_SMOOTH_RATIO = 3.0
# Fall time of the held peak, in multiples of slow_ms (240 ms by default).
SUSTAIN_HOLD_RATIO = 8.0
# One-pole smoothing of the gain curve (ms): a hit out of near-silence moves
# the 1 ms envelope tens of dB in one sample; this turns the step into a ramp.
GAIN_SMOOTH_MS = 0.25
# The gain curve is advanced by this much (see step 6).
LOOKAHEAD_MS = 1.0
# Level floor (dBFS) of the fast envelope, so silence has a finite level.
FLOOR_DB = -150.0

# Added to the detector's input: after a sound, the allpass states and the
# envelope decay toward 0 in digital silence and would stick at subnormal
# numbers (each operation ~100x slower); a constant this small (-600 dBFS)
# keeps them normal and changes no level that matters (the floor is FLOOR_DB).
_ANTI_SUBNORMAL = 1e-30

# Niemitalo's 90-degree allpass pair: each section is
# y[n] = c * (x[n] + y[n-2]) - x[n-2] with c = a**2; branch A is delayed one sample.
_BRANCH_A = np.array([0.6923878, 0.9360654322959, 0.9882295226860, 0.9987488452737]) ** 2
_BRANCH_B = np.array([0.4021921162426, 0.8561710882420, 0.9722909545651, 0.9952884791278]) ** 2


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _magnitude_pass(x: np.ndarray, ca: np.ndarray, cb: np.ndarray, acc: np.ndarray,
                    first: bool, last: bool, coef: float, floor: float) -> None:
    """One channel ``x`` of steps 1-2, into ``acc`` (zero initial state).

    The analytic signal's squared magnitude comes from two cascades of four
    sections ``y[n] = c * (x[n] + y[n-2]) - x[n-2]``: the output of branch A
    one sample late and that of branch B are 90 degrees apart. ``acc`` holds
    the running maximum over channels (written, not compared, by the
    ``first``); the ``last`` channel replaces it by the fast envelope,
    ``e[n] = coef * e[n-1] + (1 - coef) * sqrt(max)``, written no lower than ``floor``.
    """
    n = x.shape[0]
    a0, a1, a2, a3 = ca[0], ca[1], ca[2], ca[3]
    b0, b1, b2, b3 = cb[0], cb[1], cb[2], cb[3]
    x1 = x2 = 0.0
    p1 = p2 = q1 = q2 = r1 = r2 = s1 = s2 = 0.0
    u1 = u2 = v1 = v2 = w1 = w2 = z1 = z2 = 0.0
    late = 0.0
    env = 0.0
    k = 1.0 - coef
    for i in range(n):
        xi = x[i] + _ANTI_SUBNORMAL
        p = a0 * (xi + p2) - x2
        q = a1 * (p + q2) - p2
        r = a2 * (q + r2) - q2
        s = a3 * (r + s2) - r2
        u = b0 * (xi + u2) - x2
        v = b1 * (u + v2) - u2
        w = b2 * (v + w2) - v2
        z = b3 * (w + z2) - w2
        x2 = x1
        x1 = xi
        p2 = p1
        p1 = p
        q2 = q1
        q1 = q
        r2 = r1
        r1 = r
        s2 = s1
        s1 = s
        u2 = u1
        u1 = u
        v2 = v1
        v1 = v
        w2 = w1
        w1 = w
        z2 = z1
        z1 = z
        m = late * late + z * z
        late = s
        if not first:
            m = max(acc[i], m)  # branch-free: which channel is louder is unpredictable
        if last:
            env = coef * env + k * math.sqrt(m)
            acc[i] = max(env, floor)
        else:
            acc[i] = m


@numba.njit(cache=True, nogil=True)
def _linked_fast_envelope(audio: np.ndarray, ca: np.ndarray, cb: np.ndarray, coef: float,
                          floor: float) -> np.ndarray:
    """Steps 1-2 (linear): the fast envelope of the loudest channel's magnitude, from 0, floored."""
    channels, n = audio.shape
    acc = np.empty(n)
    if channels == 0:
        acc[:] = floor
    for ch in range(channels):
        _magnitude_pass(audio[ch], ca, cb, acc, ch == 0, ch == channels - 1, coef, floor)
    return acc


@numba.njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _detect(level_log10: np.ndarray, slow_coef: float, smooth_coef: float, hold_coef: float, gain_coef: float,
            attack_db: float, sustain_db: float, max_gain_db: float, ahead: int,
            gain_out: np.ndarray, attack_out: np.ndarray, sustain_out: np.ndarray) -> None:
    """Steps 3-6 of the module docstring, one pass, from ``log10`` of the fast envelope.

    Writes the gain in dB, advanced by ``ahead`` samples (the last value
    held), into ``gain_out``, or, when ``gain_out`` is empty, ``Da`` and
    ``Ds`` into ``attack_out`` and ``sustain_out`` (not advanced).
    """
    n = level_log10.shape[0]
    want_gain = gain_out.shape[0] == n
    slow = FLOOR_DB
    smooth = FLOOR_DB
    peak = FLOOR_DB
    a_span = 1.0 / (ATTACK_FULL_DB - ATTACK_THRESHOLD_DB)
    s_span = 1.0 / (SUSTAIN_FULL_DB - SUSTAIN_THRESHOLD_DB)
    g = 0.0
    gs = 0.0
    for i in range(n):
        level = 20.0 * level_log10[i]
        # attack: the slow envelope, kept within [level - FULL, level + ABOVE]
        # (branches, not min/max: rarely taken, so predicted, and the recursion stays short)
        slow = slow_coef * slow + (1.0 - slow_coef) * level
        if slow < level - ATTACK_FULL_DB:
            slow = level - ATTACK_FULL_DB
        elif slow > level + SLOW_ABOVE_DB:
            slow = level + SLOW_ABOVE_DB
        da = level - slow
        # sustain: the held peak of the smoothed level, restarted by an attack
        smooth = smooth_coef * smooth + (1.0 - smooth_coef) * level
        # (min/max: whether the peak is passed is unpredictable on noisy material)
        peak = min(max(hold_coef * peak + (1.0 - hold_coef) * smooth, smooth), smooth + SUSTAIN_FULL_DB)
        if da > ATTACK_THRESHOLD_DB:
            peak = smooth
        ds = peak - smooth
        if not want_gain:
            attack_out[i] = da
            sustain_out[i] = ds
            continue
        # branch-free from here (the sign of da is unpredictable on noisy material)
        wa = min(max(da - ATTACK_THRESHOLD_DB, 0.0) * a_span, 1.0)
        ws = min(max(ds - SUSTAIN_THRESHOLD_DB, 0.0) * s_span, 1.0)
        ws *= 1.0 - min(max(da, 0.0) * (1.0 / ATTACK_THRESHOLD_DB), 1.0)
        g = min(max(attack_db * wa + sustain_db * ws, -max_gain_db), max_gain_db)
        gs = gain_coef * gs + (1.0 - gain_coef) * g
        if abs(gs) < 1e-12:
            gs = 0.0  # a decay toward 0 dB would otherwise stick at the smallest subnormal, ~100x slower
        if i >= ahead:
            gain_out[i - ahead] = gs
    if want_gain:
        for j in range(max(0, n - ahead), n):
            gain_out[j] = gs


def _allpass_context_samples() -> int:
    """Samples for the allpass pair's slowest pole (radius: the largest coefficient's square root,
    the same at every rate) to decay by ``EDGE_DECAY_CONTEXT``."""
    radius = float(np.sqrt(max(_BRANCH_A.max(), _BRANCH_B.max())))
    return int(math.ceil(math.log(EDGE_DECAY_CONTEXT) / math.log(radius)))


def _coef(time_ms: float, sample_rate: int) -> float:
    """One-pole coefficient reaching 1 - 1/e of a step in ``time_ms``."""
    return math.exp(-1000.0 / (time_ms * sample_rate))


@dataclass(frozen=True)
class TransientShaper(Processor):
    """Attack/sustain shaper driven by the difference of a fast and a slow envelope (stereo-linked)."""

    kind: ClassVar[str] = "transient_shaper"
    native_dtypes: ClassVar[tuple[type, ...]] = (np.float32, np.float64)

    attack_db: float = 0.0
    sustain_db: float = 0.0
    fast_ms: float = 1.0
    slow_ms: float = 30.0
    max_gain_db: float = 12.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_range(owner, "attack_db", self.attack_db, -12.0, 12.0)
        check_range(owner, "sustain_db", self.sustain_db, -12.0, 12.0)
        check_range(owner, "fast_ms", self.fast_ms, 0.1, 10.0)
        check_range(owner, "slow_ms", self.slow_ms, 5.0, 300.0)
        check_range(owner, "max_gain_db", self.max_gain_db, 0.0, 24.0)
        if self.slow_ms < 2.0 * self.fast_ms:
            raise SettingsError(
                f"{owner}.slow_ms = {self.slow_ms} must be at least twice fast_ms = {self.fast_ms}")

    @property
    def is_neutral(self) -> bool:
        """True when the shaper leaves audio untouched (``process`` returns an exact copy)."""
        return (self.attack_db == 0.0 and self.sustain_db == 0.0) or self.max_gain_db == 0.0

    def _level_log10(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """``log10`` of the fast envelope (floored at ``FLOOR_DB``), shaped ``(samples,)``: dBFS / 20."""
        if audio.dtype not in (np.float32, np.float64):
            audio = audio.astype(np.float64)
        env = _linked_fast_envelope(np.ascontiguousarray(audio), _BRANCH_A, _BRANCH_B,
                                    _coef(self.fast_ms, int(sample_rate)), 10.0 ** (FLOOR_DB / 20.0))
        return np.log10(env, out=env)

    def level_db(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """The fast envelope ``L`` in dBFS (floored at ``FLOOR_DB``), shaped ``(samples,)``."""
        audio = np.atleast_2d(np.asarray(audio, dtype=np.float64))
        if audio.shape[-1] == 0:
            return np.zeros(0)
        return 20.0 * self._level_log10(audio, sample_rate)

    def _coefs(self, sample_rate: int) -> tuple[float, float, float, float]:
        sr = int(sample_rate)
        return (_coef(self.slow_ms, sr), _coef(SUSTAIN_SMOOTH_RATIO * self.fast_ms, sr),
                _coef(SUSTAIN_HOLD_RATIO * self.slow_ms, sr), _coef(GAIN_SMOOTH_MS, sr))

    def detector_db(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """``(Da, Ds)`` in dB, each shaped ``(samples,)``, before the lookahead.

        ``Da``: the fast over the slow envelope (attack when over
        ``ATTACK_THRESHOLD_DB``; 0 for a steady tone). ``Ds``: how far the
        level is under the latest hit's peak (sustain when over
        ``SUSTAIN_THRESHOLD_DB``; 0 for a steady tone).
        """
        audio = np.atleast_2d(np.asarray(audio, dtype=np.float64))
        n = audio.shape[-1]
        da, ds = np.zeros(n), np.zeros(n)
        if n:
            _detect(self._level_log10(audio, sample_rate), *self._coefs(sample_rate),
                    0.0, 0.0, 0.0, 0, np.zeros(0), da, ds)
        return da, ds

    def context_samples(self, sample_rate: int) -> int:
        """The allpass pair's decay, ``CONTEXT_TIME_CONSTANTS`` of the longest envelope time constant
        that reaches the gain, and the lookahead; 0 when neutral. The held peak (``SUSTAIN_HOLD_RATIO
        * slow_ms``) reaches the gain only through ``sustain_db``: at 0 it is left out."""
        if self.is_neutral:
            return 0
        times_ms = [self.slow_ms, SUSTAIN_SMOOTH_RATIO * self.fast_ms, GAIN_SMOOTH_MS]
        if self.sustain_db != 0.0:
            times_ms.append(SUSTAIN_HOLD_RATIO * self.slow_ms)
        return (_allpass_context_samples() + time_constant_context_samples(max(times_ms), sample_rate)
                + self.lookahead_samples(sample_rate))

    def lookahead_samples(self, sample_rate: int) -> int:
        """How far the gain curve is advanced (``LOOKAHEAD_MS``), in samples."""
        return int(round(LOOKAHEAD_MS * 1e-3 * sample_rate))

    def gain_db(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """The gain curve applied, in dB, shaped ``(samples,)``, the same for all channels.

        ``audio * 10 ** (gain_db / 20)`` is what ``process`` returns (to
        rounding, before the cast back to the input dtype). All zeros when
        the settings are neutral.
        """
        audio = np.atleast_2d(np.asarray(audio))  # float32 or float64 (the envelope kernel reads either)
        n = audio.shape[-1]
        if n == 0 or self.is_neutral:
            return np.zeros(n)
        g = np.empty(n)
        _detect(self._level_log10(audio, sample_rate), *self._coefs(sample_rate),
                float(self.attack_db), float(self.sustain_db), float(self.max_gain_db),
                min(n - 1, self.lookahead_samples(sample_rate)), g, np.zeros(0), np.zeros(0))
        return g

    def gain(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """The linear gain curve, shaped ``(samples,)``: ``process`` returns ``audio * gain``."""
        g = self.gain_db(audio, sample_rate)
        g *= math.log(10.0) / 20.0
        return np.exp(g, out=g)

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        if self.is_neutral:
            return audio.copy()
        return np.multiply(audio, self.gain(audio, sample_rate), dtype=audio.dtype)
