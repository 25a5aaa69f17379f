"""A split-band de-esser: only the sibilance band is turned down, only while it is too loud.

Signal path (one gain curve for all channels):

1. **band**: a band-pass (Butterworth, 4th order: two second-order sections)
   ``bandwidth_oct`` wide, centred geometrically on the frequency; when its
   top edge would reach ``0.45 * sample_rate`` it becomes a 4th-order
   high-pass at the bottom edge. With ``frequency_hz = 0`` the frequency is
   found on the stem (``find_sibilance_hz``; ``FALLBACK_HZ`` if the stem has
   no sibilant frames).
2. **detector**: the band-pass run causally on every channel; the band's
   mean square per block of about 0.09 ms (``ENVELOPE_RATE_HZ``), the
   loudest channel's, smoothed zero-phase (a one-pole of ``DETECTOR_MS``
   run backward then forward, so a voice's glottal pulses in the band read
   near their mean power, not their peaks, and the level rises a couple of
   milliseconds ahead of a burst instead of lagging it).
3. **threshold, relative to the stem's own reference level**: the reference
   is the median detector level over the stem's active frames (10 ms frames
   whose broadband power is within ``ACTIVE_GATE_DB`` of the stem's
   95th-percentile frame), floored at ``REFERENCE_FLOOR_DB`` under the mean
   broadband power of those frames (so a stem with next to nothing in the
   band does not get an absurdly low threshold). The threshold is
   ``threshold_db`` over that reference. Both are ratios of levels measured
   on the stem itself, so the same signal at any level, and at any sample
   rate, gets the same reduction. Above the threshold the band is to be
   turned down by as much as the detector exceeds it (the band held at the
   threshold: an infinite ratio), at most ``max_reduction_db``.
4. **attack and release**: that reduction, in dB, is smoothed by a one-pole
   that moves with ``attack_ms`` while the reduction deepens and
   ``release_ms`` while it recovers (as the compressor's gain does);
   a recovering tail under ``MIN_REDUCTION_DB`` is dropped. The curve is
   moved earlier by the band-pass's group delay at the centre frequency so
   that it lines up with the zero-phase band of step 5, and interpolated
   linearly (in dB) from blocks to samples.
5. **split and sum**: where (and only where) the reduction is non-zero the
   band is taken again, zero-phase (the same cascade forward then backward:
   magnitude squared, no phase shift, no delay) over the region plus a
   run-up either side long enough for the filter's memory to fall under
   1e-12; the output there is ``x - (1 - g) * band``, i.e. the rest
   ``x - band`` plus the band times the gain ``g``. Everywhere else the
   output *is* the input, bit for bit: with no reduction the de-esser is the
   identity. At the band's centre the full reduction applies; at its edges
   (the zero-phase band's -6 dB points) the linear gain change is half as deep.

Segment by segment (``stemmaster.dsp.segmented``): the frequency (when
found) and the reference level are whole-stem measurements. ``statistics``
measures them on an array, ``pin_statistics`` by block-wise passes over a long
stem (the search's per-frame energies, then the sibilant frames' spectra
summed, then the detector's per-frame levels), and ``pinned`` makes a copy
that uses them instead of measuring what it is given: on the whole stem it
gives what the unpinned de-esser gives, bit for bit, and on a segment with
``context_samples`` either side (starting on the detector's block grid) what
the whole stem gives there. They are measurements, never settings: not in
``settings()`` nor the project file.

Steps 2 and 5 are split this way for speed: a full-length zero-phase band
costs two filter passes per channel, the detector one, and the zero-phase
band is only needed where the gain is below 1 (a third of the demo vocal,
release tails included).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable, Iterator, NamedTuple

import numba
import numpy as np
from scipy import fft as sfft
from scipy.signal import butter, sosfilt_zi, sosfreqz

from stemmaster.dsp.processor import (EDGE_DECAY_CONTEXT, InputPass, Processor, check_audio, check_range, round_up,
                                      time_constant_context_samples)
from stemmaster.errors import SettingsError

# -- the search for the sibilance band (frequency_hz = 0)
SEARCH_BAND_HZ = (4500.0, 11000.0)  # where sibilance is looked for
LOW_BAND_HZ = 4000.0  # "the voice": a frame's energy below this
FALLBACK_HZ = 6500.0  # used when the stem has no sibilant frames at all
SIBILANT_OVER_MEDIAN_DB = 10.0  # a sibilant frame's band energy is this far over the band's median...
SIBILANT_OVER_LOW_DB = -6.0  # ...and at least this loud relative to the frame's energy below 4 kHz
_SEARCH_FRAME_S = 0.02  # analysis frame (rounded to a power of two in samples), no overlap
_SEARCH_CHUNK_FRAMES = 128  # frames transformed at a time
_REGION_OCT = 1.0 / 3.0  # the region whose density locates the sibilance
_CENTROID_HALF_OCT = 0.5  # the centroid that refines it is taken this far either side
_GRID_PER_OCT = 48

# -- the detector
ENVELOPE_RATE_HZ = 11025.0  # the envelope is computed on blocks of round(sample_rate / this) samples
DETECTOR_MS = 2.5  # zero-phase mean-square smoothing, each way

# -- the reference level
ACTIVE_GATE_DB = -40.0  # active frames: broadband power within this of the 95th-percentile frame
REFERENCE_FLOOR_DB = -40.0  # the reference is never below the active frames' mean power plus this
_REF_FRAME_MS = 10.0
_SILENCE_POWER = 1e-15  # -150 dBFS: a frame below this is silent whatever the gate says

# A release tail never quite reaches 0 dB; reductions under this are dropped (a gain
# error under 1.2e-4 on the band alone), so the output is the input again soon after.
MIN_REDUCTION_DB = 0.001

_NYQUIST_FRACTION = 0.45
_RUN_UP_DECAY = 1e-12  # the zero-phase band's run-up lasts until the filter's memory decays this far

# Recursions fed silence decay into subnormal numbers (and a two-pole filter can then cycle
# there for ever), which are ~100x slower to compute; every _FLUSH_EVERY samples (or blocks)
# states smaller than these are set to exactly zero.
_TINY_STATE = 1e-100  # filter states (amplitudes)
_TINY_POWER = 1e-250  # smoother states (powers) and reductions (dB)
_FLUSH_EVERY = 64


def _coef(time_ms: float, rate_hz: float) -> float:
    """One-pole coefficient reaching 1 - 1/e of a step in ``time_ms`` at ``rate_hz``."""
    return math.exp(-1000.0 / (time_ms * rate_hz))


# ---------------------------------------------------------------- kernels


@numba.njit(cache=True, nogil=True)
def _block_powers(x: np.ndarray, sos: np.ndarray, zi: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Per block of ``block`` samples (the last one may be shorter): the mean square of the
    two-section cascade ``sos`` run causally over each channel (from the steady state for its
    first sample), the loudest channel's; and the broadband mean square over all channels.

    Channels are filtered two at a time (two independent recursions in one loop run nearly
    as fast as one); an odd channel out is paired with itself."""
    channels, n = x.shape
    nb = (n + block - 1) // block
    band = np.zeros(nb)
    broad = np.zeros(nb)
    b00, b01, b02, a01, a02 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    b10, b11, b12, a11, a12 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    flush = max(1, _FLUSH_EVERY // block)
    for c in range(0, channels, 2):
        d = min(c + 1, channels - 1)
        d_weight = 0.0 if d == c else 1.0
        x0 = x[c, 0]
        s01, s02, s11, s12 = zi[0, 0] * x0, zi[0, 1] * x0, zi[1, 0] * x0, zi[1, 1] * x0
        x0 = x[d, 0]
        t01, t02, t11, t12 = zi[0, 0] * x0, zi[0, 1] * x0, zi[1, 0] * x0, zi[1, 1] * x0
        for j in range(nb):
            i0 = j * block
            i1 = min(n, i0 + block)
            acc = 0.0
            acc2 = 0.0
            bcc = 0.0
            bcc2 = 0.0
            for i in range(i0, i1):
                v = x[c, i]
                w = x[d, i]
                acc2 += v * v
                bcc2 += w * w
                y0 = b00 * v + s01
                z0 = b00 * w + t01
                s01 = (b01 * v + s02) - a01 * y0
                t01 = (b01 * w + t02) - a01 * z0
                s02 = b02 * v - a02 * y0
                t02 = b02 * w - a02 * z0
                y1 = b10 * y0 + s11
                z1 = b10 * z0 + t11
                s11 = (b11 * y0 + s12) - a11 * y1
                t11 = (b11 * z0 + t12) - a11 * z1
                s12 = b12 * y0 - a12 * y1
                t12 = b12 * z0 - a12 * z1
                acc += y1 * y1
                bcc += z1 * z1
            m = max(acc, bcc) / (i1 - i0)
            if m > band[j]:
                band[j] = m
            broad[j] += (acc2 + d_weight * bcc2) / ((i1 - i0) * channels)
            if j % flush == 0:
                if max(abs(s01), abs(s02), abs(s11), abs(s12)) < _TINY_STATE:
                    s01, s02, s11, s12 = 0.0, 0.0, 0.0, 0.0
                if max(abs(t01), abs(t02), abs(t11), abs(t12)) < _TINY_STATE:
                    t01, t02, t11, t12 = 0.0, 0.0, 0.0, 0.0
    return band, broad


@numba.njit(cache=True, nogil=True)
def _windowed_frames(x: np.ndarray, f0: int, f1: int, window: np.ndarray, out: np.ndarray) -> None:
    """``out[f - f0] = window * mean over channels of x[:, f * len(window):][:len(window)]``
    for frames ``f0 .. f1-1`` (zero past the end of ``x``)."""
    channels, n = x.shape
    size = window.shape[0]
    scale = 1.0 / channels
    for f in range(f0, f1):
        base = f * size
        m = max(0, min(size, n - base))
        row = out[f - f0]
        for k in range(m):
            row[k] = x[0, base + k]
        for k in range(m, size):
            row[k] = 0.0
        for c in range(1, channels):
            for k in range(m):
                row[k] += x[c, base + k]
        for k in range(size):
            row[k] *= scale * window[k]


@numba.njit(cache=True, nogil=True)
def _frame_spectra(spec: np.ndarray, n_low: int, b0: int, b1: int, e_low: np.ndarray, e_all: np.ndarray,
                   hi_spec: np.ndarray) -> None:
    """Per frame (row of ``spec``): energy below bin ``n_low``, in all bins, and the power
    spectrum of bins ``b0 .. b1-1``."""
    frames, bins = spec.shape
    for f in range(frames):
        low = 0.0
        total = 0.0
        for k in range(bins):
            z = spec[f, k]
            p = float(z.real) * float(z.real) + float(z.imag) * float(z.imag)
            total += p
            if k < n_low:
                low += p
            if b0 <= k < b1:
                hi_spec[f, k - b0] = p
        e_low[f] = low
        e_all[f] = total


@numba.njit(cache=True, nogil=True)
def _add_rows(total: np.ndarray, rows: np.ndarray, mask: np.ndarray) -> None:
    """``total += rows[f]`` for each row ``f`` where ``mask[f]``, one after another (so a sum taken
    over any split of the rows into consecutive chunks is the same, bit for bit)."""
    for f in range(rows.shape[0]):
        if mask[f]:
            for k in range(rows.shape[1]):
                total[k] += rows[f, k]


@numba.njit(cache=True, nogil=True)
def _smooth(power: np.ndarray, coef: float) -> None:
    """In place: a zero-phase one-pole smoothing (run backward, then forward)."""
    n = power.shape[0]
    k = 1.0 - coef
    m = 0.0
    for start in range(n - 1, -1, -_FLUSH_EVERY):
        for i in range(start, max(-1, start - _FLUSH_EVERY), -1):
            m = coef * m + k * power[i]
            power[i] = m
        if m < _TINY_POWER:
            m = 0.0
    m = power[0] if n else 0.0
    for start in range(0, n, _FLUSH_EVERY):
        for i in range(start, min(n, start + _FLUSH_EVERY)):
            m = coef * m + k * power[i]
            power[i] = m
        if m < _TINY_POWER:
            m = 0.0


@numba.njit(cache=True, nogil=True)
def _attack_release(target: np.ndarray, attack_coef: float, release_coef: float) -> np.ndarray:
    """One-pole smoothing of a reduction curve in dB (``>= 0``), starting at 0: the attack
    coefficient while the target is above the smoothed value (deeper), else the release one."""
    n = target.shape[0]
    out = np.empty(n)
    r = 0.0
    for start in range(0, n, _FLUSH_EVERY):
        for i in range(start, min(n, start + _FLUSH_EVERY)):
            t = target[i]
            c = attack_coef if t > r else release_coef
            r = c * r + (1.0 - c) * t
            out[i] = r
        if r < _TINY_POWER:
            r = 0.0
    return out


@numba.njit(cache=True, nogil=True)
def _sample_reduction(red: np.ndarray, block: int, a: int, b: int) -> np.ndarray:
    """The per-block reduction ``red`` (dB) interpolated linearly to samples ``a .. b-1``
    (a block's value sits at its centre, ``(block - 1) / 2`` samples after its start)."""
    nb = red.shape[0]
    out = np.empty(b - a)
    half = 0.5 * (block - 1)
    for i in range(a, b):
        t = (i - half) / block
        j = int(math.floor(t))
        if j < 0:
            out[i - a] = red[0]
        elif j >= nb - 1:
            out[i - a] = red[nb - 1]
        else:
            f = t - j
            out[i - a] = red[j] + f * (red[j + 1] - red[j])
    return out


@numba.njit(cache=True, nogil=True)
def _fill_reduction(red: np.ndarray, block: int, starts: np.ndarray, ends: np.ndarray, out: np.ndarray) -> None:
    """``out[a:b] = -reduction`` over each region."""
    for r in range(starts.shape[0]):
        a, b = starts[r], ends[r]
        out[a:b] = -_sample_reduction(red, block, a, b)


@numba.njit(cache=True, nogil=True)
def _zero_phase_pair(x: np.ndarray, c: int, d: int, lo: int, hi: int, sos: np.ndarray, zi: np.ndarray,
                     buf: np.ndarray) -> None:
    """``buf[0, :hi-lo]`` and ``buf[1, :hi-lo]``: the cascade ``sos`` run forward then backward over
    ``x[c, lo:hi]`` and ``x[d, lo:hi]``, each pass starting from the steady state for its first sample."""
    b00, b01, b02, a01, a02 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    b10, b11, b12, a11, a12 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    m = hi - lo
    for backward in (False, True):
        if backward:
            u, w = buf[0, m - 1], buf[1, m - 1]
        else:
            u, w = x[c, lo], x[d, lo]
        s01, s02, s11, s12 = zi[0, 0] * u, zi[0, 1] * u, zi[1, 0] * u, zi[1, 1] * u
        t01, t02, t11, t12 = zi[0, 0] * w, zi[0, 1] * w, zi[1, 0] * w, zi[1, 1] * w
        for start in range(0, m, _FLUSH_EVERY):
            for j in range(start, min(m, start + _FLUSH_EVERY)):
                k = m - 1 - j if backward else j
                if backward:
                    v, w = buf[0, k], buf[1, k]
                else:
                    v, w = x[c, lo + k], x[d, lo + k]
                y0 = b00 * v + s01
                z0 = b00 * w + t01
                s01 = (b01 * v + s02) - a01 * y0
                t01 = (b01 * w + t02) - a01 * z0
                s02 = b02 * v - a02 * y0
                t02 = b02 * w - a02 * z0
                y1 = b10 * y0 + s11
                z1 = b10 * z0 + t11
                s11 = (b11 * y0 + s12) - a11 * y1
                t11 = (b11 * z0 + t12) - a11 * z1
                s12 = b12 * y0 - a12 * y1
                t12 = b12 * z0 - a12 * z1
                buf[0, k] = y1
                buf[1, k] = z1
            if max(abs(s01), abs(s02), abs(s11), abs(s12)) < _TINY_STATE:
                s01, s02, s11, s12 = 0.0, 0.0, 0.0, 0.0
            if max(abs(t01), abs(t02), abs(t11), abs(t12)) < _TINY_STATE:
                t01, t02, t11, t12 = 0.0, 0.0, 0.0, 0.0


@numba.njit(cache=True, nogil=True)
def _apply_regions(x: np.ndarray, out: np.ndarray, sos: np.ndarray, zi: np.ndarray, starts: np.ndarray,
                   ends: np.ndarray, margin: int, red: np.ndarray, block: int) -> None:
    """``out[:, a:b] = x[:, a:b] - (1 - g) * band`` over each region ``[a, b)``: ``band`` is the
    zero-phase (forward then backward) cascade ``sos`` over the region plus ``margin`` samples
    either side; ``g`` is ``10 ** (-reduction / 20)``, the per-block reduction ``red``
    interpolated to samples. Channels are filtered in pairs (an odd one out with itself)."""
    channels, n = x.shape
    longest = 0
    for r in range(starts.shape[0]):
        longest = max(longest, min(n, ends[r] + margin) - max(0, starts[r] - margin))
    buf = np.empty((2, longest))
    scale = -math.log(10.0) / 20.0
    for r in range(starts.shape[0]):
        a, b = starts[r], ends[r]
        lo, hi = max(0, a - margin), min(n, b + margin)
        cut = _sample_reduction(red, block, a, b)
        for i in range(b - a):
            cut[i] = 1.0 - math.exp(scale * cut[i]) if cut[i] > 0.0 else 0.0
        for c in range(0, channels, 2):
            d = min(c + 1, channels - 1)
            _zero_phase_pair(x, c, d, lo, hi, sos, zi, buf)
            for i in range(a, b):
                g = cut[i - a]
                if g > 0.0:
                    out[c, i] = x[c, i] - g * buf[0, i - lo]
                    out[d, i] = x[d, i] - g * buf[1, i - lo]


# ---------------------------------------------------------------- helpers


def _nyquist_limit(sample_rate: int) -> float:
    return _NYQUIST_FRACTION * sample_rate


def band_sos(frequency_hz: float, bandwidth_oct: float, sample_rate: int) -> np.ndarray:
    """The band's two second-order sections: a band-pass, or a high-pass at its bottom edge if
    its top edge would reach ``0.45 * sample_rate``."""
    lo = frequency_hz * 2.0 ** (-bandwidth_oct / 2.0)
    hi = frequency_hz * 2.0 ** (bandwidth_oct / 2.0)
    if hi >= _nyquist_limit(sample_rate):
        return butter(4, lo, btype="highpass", fs=sample_rate, output="sos")
    return butter(2, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")


def _group_delay_samples(sos: np.ndarray, frequency_hz: float, sample_rate: int) -> float:
    """The cascade's group delay at ``frequency_hz``, in samples."""
    df = frequency_hz * 1e-3
    w = 2.0 * np.pi * np.array([frequency_hz - df, frequency_hz + df]) / sample_rate
    _, h = sosfreqz(sos, worN=w)
    return max(0.0, float(-np.angle(h[1] / h[0]) / (w[1] - w[0])))


def _run_up_samples(sos: np.ndarray, decay: float = _RUN_UP_DECAY) -> int:
    """Samples for the cascade's slowest pole to decay by ``decay``."""
    radius = max(float(np.max(np.abs(np.roots(section[3:])))) for section in sos)
    radius = min(radius, 1.0 - 1e-9)
    return max(1, int(math.ceil(math.log(decay) / math.log(radius))))


def _frame_means(x: np.ndarray, hop: int) -> np.ndarray:
    """Mean of ``x`` (1-D) over consecutive frames of ``hop`` values (the last one may be shorter)."""
    n = x.shape[0]
    full = n // hop
    out = np.empty(full + (1 if n % hop else 0))
    if full:
        out[:full] = x[: full * hop].reshape(full, hop).mean(axis=1)
    if n % hop:
        out[full] = x[full * hop:].mean()
    return out


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in ``mask`` (1-D, not empty)."""
    change = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    edges = np.concatenate(([0] if mask[0] else [], change, [mask.shape[0]] if mask[-1] else []))
    return edges[0::2].astype(np.int64), edges[1::2].astype(np.int64)


def find_sibilance_hz(audio: np.ndarray, sample_rate: int) -> float | None:
    """The centre of the stem's sibilance, or ``None`` if it has no sibilant frames.

    Frames of about 20 ms (no overlap, Hann window) of the channels' mean are
    analysed by FFT. A frame is *active* when its energy is
    within ``ACTIVE_GATE_DB`` of the 95th-percentile frame, and *sibilant*
    when it is active, its 4.5-11 kHz energy is ``SIBILANT_OVER_MEDIAN_DB``
    over that band's median over active frames, and no more than
    ``-SIBILANT_OVER_LOW_DB`` under the frame's energy below 4 kHz. The
    4.5-11 kHz spectra of the sibilant frames are summed; the strongest
    1/3-octave region (highest mean power density) locates the sibilance, and
    the answer is the power-weighted log-frequency centroid of the summed
    spectrum within half an octave of that region's centre (the band a
    1-octave de-esser would process there): a narrow peak gives its own
    frequency, a broad plateau its middle.

    Two passes over the frames (their energies, then the sibilant frames'
    spectra summed), so the same search runs block by block over a long stem
    (``DeEsser.pin_statistics``) and gives the same answer.
    """
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[None, :]
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    grid = _sibilance_grid(int(sample_rate))
    if grid is None or x.shape[-1] == 0:
        return None
    return _find_sibilance(lambda: iter((x,)), grid, max(1, x.shape[-1] // grid.n_fft))


@dataclass(frozen=True)
class _SibilanceGrid:
    """The frames and bins of the sibilance search at one rate."""

    n_fft: int  # frame length (samples)
    lo_hz: float  # the searched band
    hi_hz: float
    n_low: int  # bins under LOW_BAND_HZ
    b0: int  # the searched bins: b0 .. b1-1
    b1: int
    freqs_hz: np.ndarray  # their frequencies
    window: np.ndarray  # float32, n_fft


def _sibilance_grid(sample_rate: int) -> _SibilanceGrid | None:
    """The search's frames and bins at ``sample_rate``; ``None`` when the rate is too low for it."""
    sr = int(sample_rate)
    lo_hz, hi_hz = SEARCH_BAND_HZ[0], min(SEARCH_BAND_HZ[1], _nyquist_limit(sr))
    if hi_hz < lo_hz * 2.0 ** _REGION_OCT:
        return None
    n_fft = 1 << max(6, int(round(math.log2(_SEARCH_FRAME_S * sr))))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    b0 = int(np.searchsorted(freqs, lo_hz))
    b1 = int(np.searchsorted(freqs, hi_hz, side="right"))
    return _SibilanceGrid(n_fft, lo_hz, hi_hz, int(np.searchsorted(freqs, LOW_BAND_HZ)), b0, b1, freqs[b0:b1],
                          np.hanning(n_fft + 2)[1:-1].astype(np.float32))


def _sibilance_frames(blocks: Iterable[np.ndarray], grid: _SibilanceGrid, frames: int
                      ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """``(first frame, e_low, e_all, hi_spec)`` for consecutive chunks of the search's ``frames``
    frames: per frame, the energy below ``LOW_BAND_HZ``, in all bins, and the power spectrum of the
    searched bins ``(frames in the chunk, b1 - b0)``. Frames of ``grid.n_fft`` samples run from the
    stem's first sample, read from ``blocks``: consecutive arrays ``(channels, samples)`` covering
    the stem (a stem shorter than a frame gives one frame, zero-padded)."""
    n_fft = grid.n_fft
    seg = np.empty((min(_SEARCH_CHUNK_FRAMES, frames), n_fft), dtype=np.float32)

    def chunks(x: np.ndarray, count: int, first: int):
        for f0 in range(0, count, _SEARCH_CHUNK_FRAMES):
            f1 = min(count, f0 + _SEARCH_CHUNK_FRAMES)
            e_low, e_all = np.empty(f1 - f0), np.empty(f1 - f0)
            hi_spec = np.empty((f1 - f0, grid.b1 - grid.b0))
            _windowed_frames(x, f0, f1, grid.window, seg)
            _frame_spectra(sfft.rfft(seg[:f1 - f0], axis=-1), grid.n_low, grid.b0, grid.b1, e_low, e_all, hi_spec)
            yield first + f0, e_low, e_all, hi_spec

    done = 0
    rest = None
    for block in blocks:
        x = block if rest is None else np.concatenate((rest, block), axis=1)
        count = min(frames - done, x.shape[1] // n_fft)
        yield from chunks(x, count, done)
        done += count
        rest = x[:, count * n_fft:] if done < frames else x[:, :0]
    if done < frames and rest is not None:
        yield from chunks(rest, frames - done, done)


def _sibilant(e_low: np.ndarray, e_all: np.ndarray, e_hi: np.ndarray) -> np.ndarray | None:
    """Which frames are sibilant (see ``find_sibilance_hz``), or ``None`` if none is."""
    active = (e_all >= float(np.quantile(e_all, 0.95)) * 10.0 ** (ACTIVE_GATE_DB / 10.0)) & (e_all > 0.0)
    if not active.any():
        return None
    median_hi = float(np.median(e_hi[active]))
    sibilant = (active
                & (e_hi >= median_hi * 10.0 ** (SIBILANT_OVER_MEDIAN_DB / 10.0))
                & (e_hi >= e_low * 10.0 ** (SIBILANT_OVER_LOW_DB / 10.0))
                & (e_hi > 0.0))
    return sibilant if sibilant.any() else None


def _find_sibilance(blocks: Callable[[], Iterable[np.ndarray]], grid: _SibilanceGrid, frames: int) -> float | None:
    """``find_sibilance_hz`` over a stem read twice from ``blocks()`` (consecutive ``(channels,
    samples)`` arrays covering it), ``frames`` frames long."""
    e_low, e_all, e_hi = np.empty(frames), np.empty(frames), np.empty(frames)
    for f0, low, total, hi_spec in _sibilance_frames(blocks(), grid, frames):
        f1 = f0 + hi_spec.shape[0]
        e_low[f0:f1], e_all[f0:f1], e_hi[f0:f1] = low, total, hi_spec.sum(axis=1)
    sibilant = _sibilant(e_low, e_all, e_hi)
    if sibilant is None:
        return None
    spectrum = np.zeros(grid.b1 - grid.b0)
    for f0, _, _, hi_spec in _sibilance_frames(blocks(), grid, frames):
        _add_rows(spectrum, hi_spec, sibilant[f0:f0 + hi_spec.shape[0]])
    return _sibilance_centre(spectrum, grid)


def _sibilance_centre(spectrum: np.ndarray, grid: _SibilanceGrid) -> float:
    """The centre of the summed sibilant ``spectrum`` (power per searched bin): the strongest
    1/3-octave region's log-frequency centroid within half an octave (``find_sibilance_hz``)."""
    lo_hz, hi_hz, f = grid.lo_hz, grid.hi_hz, grid.freqs_hz
    # mean density over each 1/3-octave region, centres on a 1/48-octave grid
    centres = lo_hz * 2.0 ** (np.arange(int(math.log2(hi_hz / lo_hz) * _GRID_PER_OCT) + 1) / _GRID_PER_OCT)
    cum = np.concatenate(([0.0], np.cumsum(spectrum)))
    ia = np.searchsorted(f, centres * 2.0 ** (-_REGION_OCT / 2.0), side="left")
    ib = np.searchsorted(f, centres * 2.0 ** (_REGION_OCT / 2.0), side="right")
    density = (cum[ib] - cum[ia]) / np.maximum(ib - ia, 1)
    j = int(np.argmax(density))
    sel = (f >= centres[j] * 2.0 ** -_CENTROID_HALF_OCT) & (f <= centres[j] * 2.0 ** _CENTROID_HALF_OCT)
    w = spectrum[sel]
    if not w.sum() > 0.0:
        return float(centres[j])
    return float(np.exp(np.sum(w * np.log(f[sel])) / w.sum()))


def _envelope_block(sample_rate: int) -> int:
    """Samples per detector block (``ENVELOPE_RATE_HZ``)."""
    return max(1, int(round(sample_rate / ENVELOPE_RATE_HZ)))


def _reference_hop(sample_rate: int) -> int:
    """Detector blocks per reference frame (``_REF_FRAME_MS``)."""
    return max(1, int(round(_REF_FRAME_MS * 1e-3 * sample_rate / _envelope_block(sample_rate))))


def _reference_power(frame_level: np.ndarray, frame_power: np.ndarray) -> float | None:
    """The reference level from per-frame means of the detector level and of the broadband power
    (step 3 of the module docstring), or ``None`` when no frame is active."""
    gate = float(np.quantile(frame_power, 0.95)) * 10.0 ** (ACTIVE_GATE_DB / 10.0)
    active = (frame_power >= gate) & (frame_power > _SILENCE_POWER)
    if not active.any():
        return None
    return max(float(np.median(frame_level[active])),
               float(np.mean(frame_power[active])) * 10.0 ** (REFERENCE_FLOOR_DB / 10.0))


class _Detector(NamedTuple):
    """The detector over one signal: the band, its block size, per block the smoothed band power
    (the loudest channel's) and the broadband power."""

    sos: np.ndarray
    block: int
    level: np.ndarray
    broad: np.ndarray


@dataclass(frozen=True)
class _Plan:
    """What the de-esser does to one signal: per-block reduction and the regions it touches."""

    reduction_db: np.ndarray  # per block, >= 0
    block: int
    starts: np.ndarray  # sample regions [start, end) outside which the reduction is 0
    ends: np.ndarray
    sos: np.ndarray
    margin: int


@dataclass(frozen=True)
class DeEsserStatistics:
    """What a de-esser measures on the whole stem, pinned so it can work a segment at a time.

    At ``sample_rate`` Hz: the band's centre ``frequency_hz`` (the setting, the one found on the
    stem, or ``FALLBACK_HZ``) and ``reference_power``, the reference level (a mean square in the
    band; ``None`` when the de-esser leaves the stem as it is: no active frames, or a band above
    0.45 x the rate). Measurements, never settings: they are not in the project file.
    """

    sample_rate: int
    frequency_hz: float
    reference_power: float | None


# ---------------------------------------------------------------- processor


@dataclass(frozen=True)
class DeEsser(Processor):
    """Split-band de-esser: turns the sibilance band down while it is over a level-relative threshold."""

    kind: ClassVar[str] = "deesser"
    native_dtypes: ClassVar[tuple[type, ...]] = (np.float32, np.float64)
    # the whole-stem statistics a copy made by ``pinned`` carries (an instance attribute set there,
    # not a dataclass field: never a setting, and not compared)
    _pinned: ClassVar[DeEsserStatistics | None] = None

    frequency_hz: float = 0.0  # 0 = find it on the stem
    bandwidth_oct: float = 1.0
    threshold_db: float = 6.0  # over the stem's reference level (see the module docstring)
    max_reduction_db: float = 12.0
    attack_ms: float = 0.5
    release_ms: float = 60.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_range(owner, "frequency_hz", self.frequency_hz, 0.0, 16000.0)
        if 0.0 < self.frequency_hz < 2000.0:
            raise SettingsError(f"{owner}.frequency_hz = {self.frequency_hz} is out of range "
                                f"(allowed 0 = find it on the stem, or 2000 to 16000)")
        check_range(owner, "bandwidth_oct", self.bandwidth_oct, 0.25, 3.0)
        check_range(owner, "threshold_db", self.threshold_db, 0.0, 40.0)
        check_range(owner, "max_reduction_db", self.max_reduction_db, 0.0, 40.0)
        check_range(owner, "attack_ms", self.attack_ms, 0.05, 50.0)
        check_range(owner, "release_ms", self.release_ms, 5.0, 2000.0)

    # -- public measurements

    def detect_frequency_hz(self, audio: np.ndarray, sample_rate: int) -> float:
        """The centre frequency this de-esser uses on ``audio``: the pinned one, or ``frequency_hz`` if
        set, else the one found on the stem, else ``FALLBACK_HZ`` (the stem has no sibilant frames)."""
        check_audio(audio, sample_rate)
        pinned = self._pinned_at(int(sample_rate))
        return pinned.frequency_hz if pinned is not None else self._frequency(audio, int(sample_rate))

    def reduction_db(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """The band's gain reduction in dB (``<= 0``), shaped ``(samples,)``, the same for all channels."""
        check_audio(audio, sample_rate)
        out = np.zeros(audio.shape[1])
        if audio.shape[1] == 0:
            return out
        plan = self._plan(audio.astype(np.float64, copy=False), int(sample_rate))
        if plan is not None:
            _fill_reduction(plan.reduction_db, plan.block, plan.starts, plan.ends, out)
        return out

    # -- whole-stem statistics, pinned for work segment by segment

    @property
    def pinned_statistics(self) -> DeEsserStatistics | None:
        """The statistics this de-esser uses instead of measuring the audio it gets, if pinned."""
        return self._pinned

    def pinned(self, statistics: DeEsserStatistics) -> "DeEsser":
        """A copy (same settings, equal to this one) that uses ``statistics`` instead of measuring the
        audio it is given. With the statistics of a whole stem, it processes that stem exactly as the
        unpinned de-esser does, and a segment of it (with its context) as the stem there."""
        out = dataclasses.replace(self)
        object.__setattr__(out, "_pinned", statistics)
        return out

    def statistics(self, audio: np.ndarray, sample_rate: int) -> DeEsserStatistics:
        """The whole-stem statistics ``process`` uses on ``audio`` ``(channels, samples)`` (the pinned
        ones if any), measured on the array in memory."""
        check_audio(audio, sample_rate)
        sr = int(sample_rate)
        pinned = self._pinned_at(sr)
        if pinned is not None:
            return pinned
        x = audio if audio.dtype in self.native_dtypes else audio.astype(np.float64)
        freq = self._frequency(x, sr)
        detector = self._detector(x, sr, freq) if x.shape[1] else None
        reference = None if detector is None else _reference_power(
            _frame_means(detector.level, _reference_hop(sr)), _frame_means(detector.broad, _reference_hop(sr)))
        return DeEsserStatistics(sr, freq, reference)

    def needs_statistics(self) -> bool:
        return self._pinned is None and self.max_reduction_db > 0.0

    def pin_statistics(self, passes: InputPass, sample_rate: int, frames: int) -> "DeEsser":
        """This de-esser pinned to the statistics of its whole input, read by block-wise passes: with an
        automatic frequency, the search's per-frame energies, then the sibilant frames' spectra
        summed (``find_sibilance_hz``); then the detector over each segment (with its context) for
        the per-frame levels of the reference. What is kept between blocks is per-frame figures."""
        if not self.needs_statistics():
            return self
        sr = int(sample_rate)
        freq = self._fixed_frequency(sr)
        if freq is None:
            grid = _sibilance_grid(sr)
            found = None if grid is None or frames == 0 else _find_sibilance(
                lambda: (segment.core() for segment in passes()), grid, max(1, frames // grid.n_fft))
            freq = FALLBACK_HZ if found is None else found
        reference = None
        if freq < _nyquist_limit(sr) and frames > 0:
            reference = self._reference_from_passes(passes, sr, frames, freq)
        return self.pinned(DeEsserStatistics(sr, freq, reference))

    def _reference_from_passes(self, passes: InputPass, sample_rate: int, frames: int, freq: float) -> float | None:
        """The reference level, the detector run over each segment and its blocks summed per frame."""
        sos = band_sos(freq, self.bandwidth_oct, sample_rate)
        zi = sosfilt_zi(sos)
        block, hop = _envelope_block(sample_rate), _reference_hop(sample_rate)
        n_frames = -(-(-(-frames // block)) // hop)
        level_sum, power_sum, count = np.zeros(n_frames), np.zeros(n_frames), np.zeros(n_frames)
        coef = _coef(DETECTOR_MS, sample_rate / block)
        for segment in passes():
            if segment.first % block or segment.start % block:
                raise ValueError(f"de-esser: segment at {segment.first}/{segment.start} is off its {block}-sample grid")
            level, broad = _block_powers(np.ascontiguousarray(segment.audio), sos, zi, block)
            _smooth(level, coef)
            a = (segment.start - segment.first) // block
            b = -(-(segment.stop - segment.first) // block)
            index = np.arange(segment.start // block, segment.start // block + b - a) // hop
            f0 = int(index[0])
            f1 = int(index[-1]) + 1
            local = index - f0
            level_sum[f0:f1] += np.bincount(local, weights=level[a:b])
            power_sum[f0:f1] += np.bincount(local, weights=broad[a:b])
            count[f0:f1] += np.bincount(local)
        return _reference_power(level_sum / count, power_sum / count)

    # -- segment by segment

    def context_samples(self, sample_rate: int) -> int:
        """The band's decay to ``EDGE_DECAY_CONTEXT`` (the causal detector and the zero-phase band
        start that far out), ``CONTEXT_TIME_CONSTANTS`` of the detector's smoothing plus the slower of
        attack and release, the curve's advance by the group delay and two blocks (interpolation),
        on the block grid; 0 when the de-esser does nothing. Unpinned with an automatic frequency,
        the lowest the search can find is assumed (the slowest band)."""
        sr = int(sample_rate)
        if self.max_reduction_db == 0.0:
            return 0
        pinned = self._pinned_at(sr)
        if pinned is not None:
            freq = pinned.frequency_hz
        else:
            freq = self.frequency_hz or SEARCH_BAND_HZ[0] * 2.0 ** -_CENTROID_HALF_OCT
        if freq >= _nyquist_limit(sr):
            return 0
        sos = band_sos(freq, self.bandwidth_oct, sr)
        block = _envelope_block(sr)
        smoothing = time_constant_context_samples(DETECTOR_MS + max(self.attack_ms, self.release_ms), sr)
        advance = int(math.ceil(_group_delay_samples(sos, freq, sr))) + 2 * block
        return round_up(_run_up_samples(sos, EDGE_DECAY_CONTEXT) + smoothing + advance, block)

    def grid_samples(self, sample_rate: int) -> int:
        """The detector's block: a segment's blocks must fall where the stem's do."""
        return _envelope_block(int(sample_rate))

    # -- internals

    def _pinned_at(self, sample_rate: int) -> DeEsserStatistics | None:
        pinned = self._pinned
        if pinned is not None and pinned.sample_rate != sample_rate:
            raise SettingsError(f"DeEsser: statistics pinned at {pinned.sample_rate} Hz, audio at {sample_rate} Hz")
        return pinned

    def _fixed_frequency(self, sample_rate: int) -> float | None:
        """``frequency_hz`` (checked against the rate), or ``None`` when it is found on the stem."""
        if self.frequency_hz > 0.0:
            if self.frequency_hz >= _nyquist_limit(sample_rate):
                raise SettingsError(
                    f"DeEsser.frequency_hz = {self.frequency_hz} must be below 0.45 x the sample rate "
                    f"({_nyquist_limit(sample_rate):g} Hz at {sample_rate} Hz)")
            return float(self.frequency_hz)
        return None

    def _frequency(self, x: np.ndarray, sample_rate: int) -> float:
        fixed = self._fixed_frequency(sample_rate)
        if fixed is not None:
            return fixed
        found = find_sibilance_hz(x, sample_rate)
        return FALLBACK_HZ if found is None else found

    def _detector(self, x: np.ndarray, sample_rate: int, freq: float) -> _Detector | None:
        """Step 2 over ``x``, or ``None`` when the de-esser does nothing at this rate or setting."""
        if freq >= _nyquist_limit(sample_rate) or self.max_reduction_db == 0.0:
            return None  # automatic at a rate too low for sibilance, or nothing to do
        sos = band_sos(freq, self.bandwidth_oct, sample_rate)
        block = _envelope_block(sample_rate)
        level, broad = _block_powers(np.ascontiguousarray(x), sos, sosfilt_zi(sos), block)
        _smooth(level, _coef(DETECTOR_MS, sample_rate / block))
        return _Detector(sos, block, level, broad)

    def _plan(self, x: np.ndarray, sample_rate: int) -> _Plan | None:
        """The reduction and where it applies, or None if this signal is left as it is."""
        pinned = self._pinned_at(sample_rate)
        freq = pinned.frequency_hz if pinned is not None else self._frequency(x, sample_rate)
        detector = self._detector(x, sample_rate, freq)
        if detector is None:
            return None
        n = x.shape[1]
        sos, block, level = detector.sos, detector.block, detector.level
        rate = sample_rate / block
        if pinned is not None:
            reference = pinned.reference_power
        else:  # the reference level, over the active frames
            hop = _reference_hop(sample_rate)
            reference = _reference_power(_frame_means(level, hop), _frame_means(detector.broad, hop))
        if reference is None:
            return None
        threshold = reference * 10.0 ** (self.threshold_db / 10.0)
        hot = level > threshold
        if not hot.any():
            return None
        target = np.zeros(level.shape[0])
        target[hot] = np.minimum(10.0 * np.log10(level[hot] / threshold), self.max_reduction_db)
        red = _attack_release(target, _coef(self.attack_ms, rate), _coef(self.release_ms, rate))
        red[red < MIN_REDUCTION_DB] = 0.0
        shift = min(int(round(_group_delay_samples(sos, freq, sample_rate) / block)), red.shape[0] - 1)
        if shift > 0:
            red[:-shift] = red[shift:].copy()
            red[-shift:] = red[-shift - 1]
        over = red > 0.0
        if not over.any():
            return None
        # sample regions: each run of reduced blocks and one block either side (the
        # interpolation's reach), runs closer than two run-ups merged
        margin = _run_up_samples(sos)
        starts, ends = _runs(over)
        starts = np.maximum((starts - 1) * block, 0)
        ends = np.minimum((ends + 1) * block, n)
        keep = np.concatenate(([True], starts[1:] - ends[:-1] > 2 * margin))
        starts, ends = starts[keep], np.concatenate((ends[:-1][keep[1:]], ends[-1:]))
        return _Plan(red, block, starts, ends, sos, margin)

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        out = audio.copy()
        plan = self._plan(audio, sample_rate)
        if plan is not None:
            _apply_regions(np.ascontiguousarray(audio), out, plan.sos, sosfilt_zi(plan.sos),
                           plan.starts, plan.ends, plan.margin, plan.reduction_db, plan.block)
        return out
