"""Loudness meters: ITU-R BS.1770-4 integrated, EBU Tech 3341 momentary and
short-term, EBU Tech 3342 loudness range.

Audio is shaped ``(channels, samples)``, float32 or float64; mono is ``(1, n)``.
Up to five channels in the BS.1770 order L, R, C, Ls, Rs (weights 1.0, 1.0,
1.0, 1.41, 1.41, the same as pyloudnorm uses).

Integrated loudness is pyloudnorm's ``Meter.integrated_loudness``. The
momentary and short-term meters use the very same K-weighting filter
(pyloudnorm's RBJ-cookbook design of the BS.1770 pre-filter shelf and RLB
high-pass, at any sample rate), so their numbers agree with its integrated
value. They are computed without Python loops over audio: K-weight once,
square, sum each 100 ms hop, then sum 4 (momentary) or 30 (short-term)
consecutive hops.

Windows and timing: only complete windows are measured (no zero padding at
either end, as libebur128 does for its loudness-range blocks). Value ``k`` of
``momentary_lufs`` covers the 400 ms starting at ``k * 0.1`` s, so it is the
meter reading at time ``k * 0.1 + 0.4`` s; ``short_term_lufs`` likewise with
3 s windows. Audio shorter than a window gives an empty array.

Audio shorter than one 400 ms gating block has no integrated loudness under
BS.1770: ``integrated_lufs`` returns ``-inf`` for it (it does not zero-pad,
which would lower the value).
"""

from __future__ import annotations

import math
import warnings

import numba
import numpy as np

from stemmaster.dsp.biquad import TINY, sos_filter
from stemmaster.errors import AudioError

BLOCK_S = 0.4  # momentary window and BS.1770 gating block
SHORT_TERM_S = 3.0
HOP_S = 0.1  # 10 Hz update rate (Tech 3341 / 3342)
ABSOLUTE_GATE_LUFS = -70.0
INTEGRATED_RELATIVE_GATE_LU = -10.0  # BS.1770-4 relative gate
LRA_RELATIVE_GATE_LU = -20.0
LRA_LOW_PERCENTILE = 10.0
LRA_HIGH_PERCENTILE = 95.0
LOUDNESS_OFFSET_DB = -0.691  # BS.1770 eq. 2 constant
MIN_SAMPLE_RATE = 8000
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)


def check_meter_audio(audio: np.ndarray, sample_rate: int | None = None) -> None:
    """Raise AudioError unless ``audio`` is float ``(channels, samples)``, finite, at a usable rate.

    ``sample_rate`` is checked when given (loudness meters need at least 8 kHz,
    so the 1.5 kHz shelf of the K-weighting lies below Nyquist).
    """
    if not isinstance(audio, np.ndarray) or audio.ndim != 2:
        raise AudioError(f"audio must be a 2-D array shaped (channels, samples), got {getattr(audio, 'shape', type(audio))}")
    if audio.dtype not in (np.float32, np.float64):
        raise AudioError(f"audio must be float32 or float64, got {audio.dtype}")
    if audio.shape[0] < 1:
        raise AudioError("audio has no channels")
    if audio.shape[0] > len(_CHANNEL_WEIGHTS):
        raise AudioError(f"loudness metering supports at most {len(_CHANNEL_WEIGHTS)} channels (L, R, C, Ls, Rs), got {audio.shape[0]}")
    if sample_rate is not None:
        if not isinstance(sample_rate, (int, np.integer, float)) or isinstance(sample_rate, bool) \
                or not math.isfinite(sample_rate) or int(sample_rate) != sample_rate:
            raise AudioError(f"sample rate must be a whole number of Hz, got {sample_rate!r}")
        if int(sample_rate) < MIN_SAMPLE_RATE:
            raise AudioError(f"sample rate must be at least {MIN_SAMPLE_RATE} Hz for loudness metering, got {sample_rate}")
    if audio.size and not np.isfinite(audio).all():
        raise AudioError("audio contains NaN or infinite samples")


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770 channel weights for ``channels`` channels in the order L, R, C, Ls, Rs, shape ``(channels,)``."""
    return np.asarray(_CHANNEL_WEIGHTS[:channels], dtype=np.float64)


def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """The BS.1770 K-weighting as second-order sections, shape ``(2, 6)``.

    Stage 1 is a high shelf (+4 dB, Q 1/sqrt(2), 1500 Hz), stage 2 the RLB
    high-pass (Q 0.5, 38 Hz), both designed with the RBJ audio-EQ cookbook
    formulas exactly as pyloudnorm's ``IIRfilter`` does, so the response is
    the one pyloudnorm's integrated loudness uses (within a few hundredths of
    a dB of the coefficients tabulated in BS.1770 for 48 kHz).
    """
    fs = float(sample_rate)
    # high shelf
    a_lin = 10.0 ** (4.0 / 40.0)
    w0 = 2.0 * np.pi * 1500.0 / fs
    cos_w0 = np.cos(w0)
    alpha = np.sin(w0) / (2.0 * (1.0 / np.sqrt(2.0)))
    sq = 2.0 * np.sqrt(a_lin) * alpha
    b0 = a_lin * ((a_lin + 1) + (a_lin - 1) * cos_w0 + sq)
    b1 = -2.0 * a_lin * ((a_lin - 1) + (a_lin + 1) * cos_w0)
    b2 = a_lin * ((a_lin + 1) + (a_lin - 1) * cos_w0 - sq)
    a0 = (a_lin + 1) - (a_lin - 1) * cos_w0 + sq
    a1 = 2.0 * ((a_lin - 1) - (a_lin + 1) * cos_w0)
    a2 = (a_lin + 1) - (a_lin - 1) * cos_w0 - sq
    shelf = np.array([b0, b1, b2, a0, a1, a2]) / a0
    # RLB high-pass
    w0 = 2.0 * np.pi * 38.0 / fs
    cos_w0 = np.cos(w0)
    alpha = np.sin(w0) / (2.0 * 0.5)
    a0 = 1.0 + alpha
    highpass = np.array([(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2, a0, -2.0 * cos_w0, 1.0 - alpha]) / a0
    return np.stack([shelf, highpass])


def _k_weighted64(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    return sos_filter(k_weighting_sos(sample_rate), audio)  # scipy's sosfilt, to the last bits


def k_weighted(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """K-weighted copy of ``audio`` (shape ``(channels, samples)``), same shape and dtype, full scale 1.0."""
    check_meter_audio(audio, sample_rate)
    if audio.shape[1] == 0:
        return audio.copy()
    return _k_weighted64(audio, int(sample_rate)).astype(audio.dtype, copy=False)


def _hop_bounds(n: int, sample_rate: int) -> np.ndarray:
    """Sample indices where the complete 100 ms hops of ``n`` samples start, and where the last ends."""
    hop = HOP_S * sample_rate
    hops = int(math.floor(n / hop + 1e-9))
    if hops == 0:
        return np.zeros(1, dtype=np.int64)
    bounds = np.round(np.arange(hops + 1) * hop).astype(np.int64)
    hops = int(np.searchsorted(bounds, n, side="right")) - 1  # guard against rounding past the end
    return bounds[: hops + 1]


def _window_lufs(energy: np.ndarray, lengths: np.ndarray, hops_per_window: int) -> np.ndarray:
    """Loudness in LUFS of every run of ``hops_per_window`` consecutive hops, shape ``(windows,)``."""
    if energy.shape[0] < hops_per_window:
        return np.zeros(0)
    view = np.lib.stride_tricks.sliding_window_view
    mean_square = view(energy, hops_per_window).sum(axis=-1) / view(lengths, hops_per_window).sum(axis=-1)
    with np.errstate(divide="ignore"):
        return LOUDNESS_OFFSET_DB + 10.0 * np.log10(mean_square)


def _hops_per(window_s: float) -> int:
    return int(round(window_s / HOP_S))


@numba.njit(cache=True, nogil=True)
def _k_hop_sums(x: np.ndarray, sos: np.ndarray, bounds: np.ndarray, weights: np.ndarray,
                per_sample: np.ndarray, state: np.ndarray, offset: int) -> np.ndarray:
    """Per hop ``k`` (samples ``bounds[k]`` to ``bounds[k + 1]``), ``sum_c weights[c] * sum_t
    sosfilt(sos, x[c])[t] ** 2``, without storing the filtered signal: both sections
    (transposed direct form II, zero start, as ``sosfilt``) run and square into the hop sums
    in one sweep, two channels interleaved. ``per_sample``, unless empty, receives each
    sample's channel-weighted square too (``(samples,)``; ``bounds`` must then span them all).
    ``state`` ``(channel pairs, 8)``: the filters' state, read at the start and left as it ends
    (zeros: from rest, as ``sosfilt``), so a signal can be fed in consecutive blocks;
    ``offset``: the index of ``x[:, 0]`` in the whole signal."""
    channels = x.shape[0]
    hops = bounds.shape[0] - 1
    out = np.zeros(hops)
    store = per_sample.shape[0] > 0
    b0, b1, b2, a1, a2 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    d0, d1, d2, e1, e2 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    for c in range(0, channels, 2):
        both = c + 1 < channels
        w = c + 1 if both else c
        wc = weights[c]
        ww = weights[w] if both else 0.0
        st = state[c // 2]
        p0, p1, q0, q1, r0, r1, s0, s1 = st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7]
        for k in range(hops):
            acc = 0.0
            for i in range(bounds[k], bounds[k + 1]):
                v = float(x[c, i])
                u = float(x[w, i])
                y = b0 * v + p0
                t = b0 * u + r0
                p0 = b1 * v - a1 * y + p1
                r0 = b1 * u - a1 * t + r1
                p1 = b2 * v - a2 * y
                r1 = b2 * u - a2 * t
                z = d0 * y + q0
                h = d0 * t + s0
                q0 = d1 * y - e1 * z + q1
                s0 = d1 * t - e1 * h + s1
                q1 = d2 * y - e2 * z
                s1 = d2 * t - e2 * h
                e = wc * z * z + ww * h * h
                acc += e
                if store:
                    per_sample[i] = e if c == 0 else per_sample[i] + e
                if ((i + offset) & 1023) == 0:  # a state decaying through silence is set to rest (see dsp/biquad.py)
                    if abs(p0) < TINY and abs(p1) < TINY and abs(q0) < TINY and abs(q1) < TINY:
                        p0 = p1 = q0 = q1 = 0.0
                    if abs(r0) < TINY and abs(r1) < TINY and abs(s0) < TINY and abs(s1) < TINY:
                        r0 = r1 = s0 = s1 = 0.0
            out[k] += acc
        st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7] = p0, p1, q0, q1, r0, r1, s0, s1
    return out


def k_state(channels: int) -> np.ndarray:
    """A rest state for ``_k_hop_sums`` on ``channels`` channels."""
    return np.zeros(((channels + 1) // 2, 8))


_NO_SAMPLES = np.zeros(0, dtype=np.float32)


def _prepared_energy(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The K-weighted, channel-weighted energy per complete 100 ms hop and the hops' lengths
    (in one sweep, without a K-weighted copy of the audio)."""
    check_meter_audio(audio, sample_rate)
    sample_rate = int(sample_rate)
    bounds = _hop_bounds(audio.shape[1], sample_rate)
    if bounds.shape[0] < 2:
        return np.zeros(0), np.zeros(0)
    energy = _k_hop_sums(np.ascontiguousarray(audio), k_weighting_sos(sample_rate), bounds,
                         channel_weights(audio.shape[0]), _NO_SAMPLES, k_state(audio.shape[0]), 0)
    return energy, np.diff(bounds).astype(np.float64)


def momentary_lufs(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Momentary loudness (EBU Tech 3341): 400 ms windows every 100 ms, LUFS, shape ``(windows,)``.

    Value ``k`` covers ``[k * 0.1 s, k * 0.1 s + 0.4 s)``; ``-inf`` where the
    window is silent; empty for audio shorter than 400 ms.
    """
    energy, lengths = _prepared_energy(audio, sample_rate)
    return _window_lufs(energy, lengths, _hops_per(BLOCK_S))


def short_term_lufs(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Short-term loudness (EBU Tech 3341): 3 s windows every 100 ms, LUFS, shape ``(windows,)``.

    Value ``k`` covers ``[k * 0.1 s, k * 0.1 s + 3 s)``; ``-inf`` where the
    window is silent; empty for audio shorter than 3 s.
    """
    energy, lengths = _prepared_energy(audio, sample_rate)
    return _window_lufs(energy, lengths, _hops_per(SHORT_TERM_S))


def loudness_range_from_short_term(short_term: np.ndarray) -> float:
    """EBU Tech 3342 loudness range in LU from short-term loudness values (LUFS, 10 Hz).

    Absolute gate -70 LUFS, relative gate 20 LU below the energy mean of the
    absolutely gated values, then the 95th minus the 10th percentile (nearest
    rank, as the Tech 3342 reference code). 0.0 when no value passes the gates.
    """
    st = np.asarray(short_term, dtype=np.float64)
    st = st[st >= ABSOLUTE_GATE_LUFS]
    if st.size == 0:
        return 0.0
    mean_lufs = 10.0 * np.log10(np.mean(10.0 ** (st / 10.0)))
    st = np.sort(st[st >= mean_lufs + LRA_RELATIVE_GATE_LU])
    if st.size == 0:  # pragma: no cover - the loudest value always passes
        return 0.0
    last = st.size - 1
    low = st[int(math.floor(last * LRA_LOW_PERCENTILE / 100.0 + 0.5))]
    high = st[int(math.floor(last * LRA_HIGH_PERCENTILE / 100.0 + 0.5))]
    return float(high - low)


def loudness_range_lu(audio: np.ndarray, sample_rate: int) -> float:
    """Loudness range (EBU Tech 3342) of ``audio`` shaped ``(channels, samples)``, in LU.

    Uses the short-term values of ``short_term_lufs`` (3 s every 100 ms).
    0.0 for audio shorter than 3 s or entirely below -70 LUFS.
    """
    return loudness_range_from_short_term(short_term_lufs(audio, sample_rate))


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, gated) of ``audio`` shaped ``(channels, samples)``, in LUFS.

    Measured by ``pyloudnorm.Meter(sample_rate)`` (400 ms blocks, 75 % overlap,
    -70 LUFS absolute and -10 LU relative gates). Returns ``-inf`` for silence,
    for audio entirely below the absolute gate, and for audio shorter than one
    400 ms block (BS.1770 defines no value for it; we do not zero-pad, which
    would lower the reading). Prints no warnings.
    """
    check_meter_audio(audio, sample_rate)
    return _integrated_lufs(audio, int(sample_rate))


def gated_loudness_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4) from our own K-weighted 100 ms hop energies, LUFS.

    The same definition as ``integrated_lufs`` (400 ms blocks every 100 ms,
    -70 LUFS absolute gate, -10 LU relative gate), vectorised on one
    K-weighting pass: about 4x faster than pyloudnorm, whose value it matches
    within 0.02 LU (tested; the difference is the blocks' sample alignment).
    The master's loudness search and the render report read it;
    ``integrated_lufs`` (pyloudnorm) is the second opinion in tests and
    ``stemmaster analyze``.
    """
    blocks = momentary_lufs(audio, sample_rate)
    return integrated_from_blocks(blocks)


def gated_loudness_through(audio: np.ndarray, sample_rate: int, sos: np.ndarray, *,
                           fold_mono: bool = False) -> float:
    """``gated_loudness_lufs`` of ``audio`` ``(channels, samples)`` played through the filter
    ``sos`` ``(k, 6)`` (from a zero state; ``k = 0``: no filter), in LUFS; with
    ``fold_mono`` the channels are first averaged into one signal heard on two
    speakers (dual mono: twice its energy, as L and R of a stereo meter).

    One sweep over the audio, the filter and the K-weighting cascaded per sample:
    no filtered copy of the song is made, so the memory does not grow with its length.
    """
    check_meter_audio(audio, sample_rate)
    sample_rate = int(sample_rate)
    bounds = _hop_bounds(audio.shape[1], sample_rate)
    if bounds.shape[0] < 2:
        return float("-inf")
    sos = np.asarray(sos, dtype=np.float64).reshape(-1, 6)
    cascade = np.vstack([sos / sos[:, 3:4], k_weighting_sos(sample_rate)])
    channels = 1 if fold_mono else audio.shape[0]
    weights = np.full(1, 2.0) if fold_mono else channel_weights(channels)
    energy = _cascade_hop_sums(np.ascontiguousarray(audio), np.ascontiguousarray(cascade), bounds, weights,
                               fold_mono, np.zeros((channels, cascade.shape[0], 2)))
    return integrated_from_blocks(_window_lufs(energy, np.diff(bounds).astype(np.float64), _hops_per(BLOCK_S)))


@numba.njit(cache=True, nogil=True)
def _cascade_hop_sums(x: np.ndarray, sos: np.ndarray, bounds: np.ndarray, weights: np.ndarray,
                      fold_mono: bool, z: np.ndarray) -> np.ndarray:
    """Per hop, ``sum_c weights[c] * sum_t y_c[t] ** 2`` where ``y_c`` is channel c (or, with
    ``fold_mono``, the channels' mean) through the sections ``sos`` (a0 = 1; transposed
    direct form II, as ``sosfilt``). ``z`` ``(rows, sections, 2)``: the filter state, read at the
    start and left as it ends (zeros: from rest), so a signal can be fed in consecutive blocks."""
    sections = sos.shape[0]
    rows = 1 if fold_mono else x.shape[0]
    hops = bounds.shape[0] - 1
    out = np.zeros(hops)
    inv = 1.0 / x.shape[0]
    for k in range(hops):
        for t in range(bounds[k], bounds[k + 1]):
            for r in range(rows):
                if fold_mono:
                    v = 0.0
                    for c in range(x.shape[0]):
                        v += float(x[c, t])
                    v *= inv
                else:
                    v = float(x[r, t])
                for s in range(sections):
                    y = sos[s, 0] * v + z[r, s, 0]
                    z[r, s, 0] = sos[s, 1] * v - sos[s, 4] * y + z[r, s, 1]
                    z[r, s, 1] = sos[s, 2] * v - sos[s, 5] * y
                    v = y
                out[k] += weights[r] * v * v
        # a state decaying through silence toward subnormal numbers is set to rest (see dsp/biquad.py)
        for r in range(rows):
            for s in range(sections):
                if abs(z[r, s, 0]) < TINY and abs(z[r, s, 1]) < TINY:
                    z[r, s, 0] = 0.0
                    z[r, s, 1] = 0.0
    return out


def k_weighted_energy(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The channel-weighted K-weighted power of ``audio`` ``(channels, samples)`` per sample:
    ``sum_c G_c * K(x_c)[t] ** 2``, float32 ``(samples,)``.

    What a loudness search needs from a signal it will try many gains on
    (``gated_loudness_of_energy``): a quarter of the bytes of the K-weighted
    stereo signal in float64, made in one sweep without storing that signal.
    """
    check_meter_audio(audio, sample_rate)
    out = np.empty(audio.shape[1], dtype=np.float32)
    if audio.shape[1]:
        _k_hop_sums(np.ascontiguousarray(audio), k_weighting_sos(int(sample_rate)),
                    np.array([0, audio.shape[1]], dtype=np.int64), channel_weights(audio.shape[0]), out,
                    k_state(audio.shape[0]), 0)
    return out


def gated_loudness_of_energy(energy: np.ndarray, sample_rate: int, gain: np.ndarray | float | None = None) -> float:
    """``gated_loudness_lufs`` of the signal whose ``k_weighted_energy`` is ``energy``, times
    ``gain`` (``(samples,)`` linear, or a scalar) if given, in LUFS.

    K-weighting is linear, so a caller that tries many slowly varying gains
    ``g`` on one signal ``x`` can K-weight ``x`` once and measure ``K(x) * g``
    (whose energy is ``energy * g ** 2``): for a limiter's gain curve that
    reads within 0.01 LU of ``K(x * g)`` (measured up to 15 dB of gain reduction).
    """
    energy = np.ascontiguousarray(energy)
    bounds = _hop_bounds(energy.shape[0], int(sample_rate))
    if bounds.shape[0] < 2:
        return float("-inf")
    if gain is None or np.ndim(gain) == 0:
        scale = 1.0 if gain is None else float(gain) ** 2
        hops = _energy_hop_sums(energy, np.zeros(0), bounds) * scale
    else:
        gain = np.ascontiguousarray(gain, dtype=np.float64)
        if gain.shape != energy.shape:
            raise ValueError(f"gain must be shaped {energy.shape}, got {gain.shape}")
        hops = _energy_hop_sums(energy, gain, bounds)
    return integrated_from_blocks(_window_lufs(hops, np.diff(bounds).astype(np.float64), _hops_per(BLOCK_S)))


@numba.njit(cache=True, nogil=True)
def _energy_hop_sums(energy: np.ndarray, gain: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``sum_{t in hop k} energy[t] * gain[t] ** 2`` per hop (``gain`` empty: 1)."""
    hops = bounds.shape[0] - 1
    out = np.zeros(hops)
    scaled = gain.shape[0] > 0
    for k in range(hops):
        acc = 0.0
        for t in range(bounds[k], bounds[k + 1]):
            if scaled:
                g = gain[t]
                acc += energy[t] * (g * g)
            else:
                acc += energy[t]
        out[k] = acc
    return out


def integrated_from_blocks(blocks_lufs: np.ndarray) -> float:
    """BS.1770-4 gating of 400 ms block loudness values (LUFS) into integrated loudness."""
    blocks = np.asarray(blocks_lufs, dtype=np.float64)
    blocks = blocks[blocks > ABSOLUTE_GATE_LUFS]
    if blocks.size == 0:
        return float("-inf")
    energy = 10.0 ** ((blocks - LOUDNESS_OFFSET_DB) / 10.0)
    relative_gate = LOUDNESS_OFFSET_DB + 10.0 * np.log10(energy.mean()) + INTEGRATED_RELATIVE_GATE_LU
    kept = energy[blocks > relative_gate]
    return float(LOUDNESS_OFFSET_DB + 10.0 * np.log10(kept.mean()))


def _integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    import pyloudnorm  # imported here: it is only needed for this meter

    if audio.shape[1] < math.ceil(BLOCK_S * sample_rate) or not np.any(audio):
        return float("-inf")
    data = np.ascontiguousarray(audio.T, dtype=np.float64)  # pyloudnorm wants (samples, channels)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # pyloudnorm warns on clipping and on empty gates
        value = float(pyloudnorm.Meter(sample_rate).integrated_loudness(data))
    if math.isnan(value):  # defensive: nothing passed the gates
        return float("-inf")
    return value
