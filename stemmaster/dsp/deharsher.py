"""Dynamic resonance suppression ("de-harsher"), default on vocals and other.

STFT engine
    sqrt-Hann analysis and synthesis windows (their product, a Hann window,
    sums to exactly 1 at 50 % overlap), frames of about 46 ms: 2048 samples
    at 44.1/48 kHz, 4096 at 88.2/96 kHz, so a bin is 21.5-23.4 Hz at every
    common rate and a hop about 23 ms. The signal is padded with one frame of
    zeros at both ends and cropped after, so every sample, the first and
    last included, lies under two complete frames. Only the *change* is
    synthesised: ``out = in + ISTFT((g - 1) * STFT(in))``, so wherever the
    gain is 1 the output is the input bit for bit, and elsewhere the
    (float32) transforms err by about -137 dB relative. Output length equals
    input length; no delay (the gains are real, zero-phase per frame).

Detector, per frame, on the power averaged over the channels (so one gain
goes to every channel and the stereo image stays put):

1. the power is smoothed over frames (one-pole, ``DETECTOR_MS``) and over
   ``POWER_SMOOTH_BINS`` bins (~110 Hz), then taken in dB;
2. its *upper envelope*: straight lines (in dB) between the local maxima
   (a bin louder than the ``PEAK_BINS`` around it), flat beyond the outer
   ones. The lines run from partial to partial of a voice or instrument
   whatever its pitch, so the single partials of a harmonic sound do not
   read as resonances, while a resonance lifts the partials (or the noise
   peaks) under it above the line joining its neighbours;
3. the *smoothed envelope* at each bin is built from the mean (in dB) of
   the upper envelope over its two flanks, from ``GUARD_FRACTION`` of the
   envelope width to half of it on each side (the bin's own neighbourhood
   is left out, so a resonance does not lift its own reference). A bin's
   *excess* is how far it stands above the mean of the two flanks beyond
   ``threshold_db``, but never more than it stands above the higher flank,
   so the top of a spectral cliff (a low-pass edge) is not taken for a peak;
4. reduction = ``slope`` x excess (a 2 dB soft knee at the threshold),
   capped at ``depth_db``, faded out by a raised cosine over the third of
   an octave outside ``low_hz`` .. ``high_hz``;
5. across frequency: a running max over ``GAIN_SPREAD_BINS`` then a 5-bin
   triangle (so the gain does not warble and its impulse response stays
   short); over frames: one-pole attack/release in dB (``attack_ms``,
   ``release_ms``). A hop is ~23 ms, so attacks shorter than that act
   within one hop.

The per-frame work is one numba kernel (a loop over frames, O(bins) work
per frame); 4 minutes of 44.1 kHz stereo take about 1.6 s.

``sharpness`` (0..1) sets how narrow the reduction is, two ways: the
envelope width is ``3 ** -sharpness`` octaves (1 octave at 0, so broad bumps
count as resonances; 1/3 octave at 1, so only narrow peaks stand out of an
envelope that follows anything wider; 0.58 octave at the default 0.5) and
the slope is ``1 + sharpness`` dB of cut per dB of excess (1 at 0: the peak
is brought back to the threshold; 1.5 at the default; 2 at 1).
Measured on pink noise through a +12 dB peaking filter at 3 kHz: with Q 8
the cut over 1 dB spans 0.33 / 0.26 / 0.18 octave at sharpness 0 / 0.5 / 1;
a broad Q 2 bump is cut 4.3 / 2.4 / 0.5 dB.

``depth_db = 0`` switches the processor off: the input is returned as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Iterator

import numba
import numpy as np
from scipy import fft as sfft

from stemmaster.dsp.processor import Processor, check_audio, check_range, round_up, time_constant_context_samples
from stemmaster.errors import SettingsError

FRAME_S = 0.0464  # frame length, rounded to a power of two in samples (2048 at 44.1/48 kHz)
OVERLAP = 2  # frames over each sample (50 % overlap)
DETECTOR_MS = 20.0  # one-pole smoothing of the detector power over frames
POWER_SMOOTH_BINS = 5  # moving average of the detector power across bins (~110 Hz)
PEAK_BINS = 5  # a local maximum is the loudest of this many bins around it
GUARD_FRACTION = 0.3  # the flanks start this fraction of the envelope width away from the bin
KNEE_DB = 2.0  # soft knee around the threshold
GAIN_SPREAD_BINS = 5  # running max of the reduction across bins, before its smoothing
GAIN_SMOOTH = np.array([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0  # triangle across bins
EDGE_OCTAVES = 1.0 / 3.0  # raised-cosine fade of the reduction outside the band
MIN_HZ, MAX_HZ = 20.0, 24000.0
_BLOCK_FRAMES = 512  # frames per block: bounds the memory on long files
_MIN_FRAME = 64
_FLOOR_REL = 1e-12  # detector floor relative to the frame's loudest bin (-120 dB)
_FLOOR_ABS = 1e-30  # and absolute, so silence has a finite level
_DB_PER_LN = 10.0 / math.log(10.0)  # power ratio: dB = _DB_PER_LN * ln(ratio)
_NEPER_PER_DB = -math.log(10.0) / 20.0  # amplitude: gain = exp(reduction_db * _NEPER_PER_DB)
_NEGLIGIBLE_DB = 1e-5  # smoothed reductions below this (a gain error of -118 dB) count as none


# ---------------------------------------------------------------- STFT


def frame_length(sample_rate: int) -> int:
    """STFT frame length in samples: the power of two nearest ``FRAME_S`` seconds (at least 64)."""
    return max(_MIN_FRAME, int(2 ** round(math.log2(FRAME_S * sample_rate))))


def _window(n_fft: int) -> np.ndarray:
    """sqrt of the periodic Hann window (analysis and synthesis), float32."""
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def pad_for_stft(audio: np.ndarray, n_fft: int, scale: float = 1.0) -> np.ndarray:
    """float32 copy of ``audio * scale`` with one frame of zeros before and at least one after.

    The padded length is ``n_fft`` plus a whole number of hops, so the frames
    tile it exactly and every input sample lies under ``OVERLAP`` frames.
    """
    hop = n_fft // OVERLAP
    n = audio.shape[1]
    total = n + 2 * n_fft
    total += (-total) % hop
    padded = np.zeros((audio.shape[0], total), dtype=np.float32)
    padded[:, n_fft:n_fft + n] = audio
    if scale != 1.0:
        padded *= np.float32(scale)
    return padded


def frame_count(padded_length: int, n_fft: int) -> int:
    """Number of frames tiling a signal padded by ``pad_for_stft``."""
    return (padded_length - n_fft) // (n_fft // OVERLAP) + 1


def stft_frames(padded: np.ndarray, n_fft: int, first: int, stop: int) -> np.ndarray:
    """Spectra of frames ``[first, stop)``: ``(channels, frames, n_fft // 2 + 1)`` complex64."""
    hop = n_fft // OVERLAP
    seg = padded[:, first * hop:(stop - 1) * hop + n_fft]
    view = np.lib.stride_tricks.sliding_window_view(seg, n_fft, axis=1)[:, ::hop]
    return sfft.rfft(view * _window(n_fft), axis=-1)


def overlap_add(out: np.ndarray, spec: np.ndarray, frames: np.ndarray, n_fft: int) -> None:
    """Add the synthesis-windowed inverse of ``spec`` (``(channels, len(frames), bins)``) into ``out``.

    ``frames`` are the frame indices of the spectra. The analysis window of
    ``stft_frames`` times the synthesis window is a Hann window, whose copies
    at the hop sum to ``OVERLAP / 2``; that gain is divided out, so analysis
    then synthesis of every frame gives back the padded signal.
    """
    win = (_window(n_fft) * (2.0 / OVERLAP)).astype(np.float32)
    _add_frames(out, sfft.irfft(spec, n_fft, axis=-1), win, np.asarray(frames, dtype=np.int64), n_fft // OVERLAP)


@numba.njit(cache=True, nogil=True)
def _add_frames(out: np.ndarray, frames: np.ndarray, win: np.ndarray, index: np.ndarray, hop: int) -> None:
    """``out[c, index[i] * hop + k] += frames[c, i, k] * win[k]`` for every channel, frame and sample."""
    n_ch, n_frames, n = frames.shape
    for c in range(n_ch):
        for i in range(n_frames):
            start = index[i] * hop
            for k in range(n):
                out[c, start + k] += frames[c, i, k] * win[k]


# ---------------------------------------------------------------- detector


@numba.njit(cache=True, nogil=True)
def _detect(spec: np.ndarray, p_state: np.ndarray, r_state: np.ndarray,
            left_a: np.ndarray, left_b: np.ndarray, right_a: np.ndarray, right_b: np.ndarray,
            weight: np.ndarray, offset: int, detector_coef: float, attack_coef: float,
            release_coef: float, threshold_db: float, slope: float, depth_db: float) -> np.ndarray:
    """Smoothed reduction in dB (``>= 0``), ``(frames, len(weight))``, from detector-range spectra.

    ``spec`` is ``(channels, frames, d bins)``; the reduced bins are
    ``[offset, offset + len(weight))`` of that range, their flanks
    ``[left_a, left_b)`` and ``[right_a, right_b)`` (indices into it).
    ``p_state`` (per d bin: the smoothed power) and ``r_state`` (per reduced
    bin: the smoothed reduction) carry over between blocks, updated in place.
    Steps 1-5 of the module doc; one loop over frames, O(bins) work in each.
    """
    n_ch, n_frames, n_d = spec.shape
    n_r = weight.shape[0]
    out = np.empty((n_frames, n_r), dtype=np.float32)
    smooth = np.empty(n_d)
    level = np.empty(n_d)
    upper = np.empty(n_d)
    cum = np.empty(n_d + 1)
    ps_half = POWER_SMOOTH_BINS // 2
    pk_half = PEAK_BINS // 2
    sp_half = GAIN_SPREAD_BINS // 2
    gk_width = GAIN_SMOOTH.shape[0]
    gk_half = gk_width // 2
    raw = np.zeros(n_r + 2 * sp_half)  # zero margins: no reduction beyond the ends
    wide = np.zeros(n_r + 2 * gk_half)
    left_w = 1.0 / (left_b - left_a)
    right_w = 1.0 / (right_b - right_a)
    half_knee = KNEE_DB / 2.0
    for t in range(n_frames):
        # 1. power: mean over channels, one-pole over frames, moving average over bins, dB
        for j in range(n_d):
            acc = 0.0
            for c in range(n_ch):
                z = spec[c, t, j]
                acc += z.real * z.real + z.imag * z.imag
            p_state[j] = detector_coef * p_state[j] + (1.0 - detector_coef) * (acc / n_ch)
        acc = p_state[0] * (ps_half + 1)  # running sum, edges extended
        for k in range(1, ps_half + 1):
            acc += p_state[min(k, n_d - 1)]
        top = 0.0
        for j in range(n_d):
            smooth[j] = acc / POWER_SMOOTH_BINS
            top = max(top, smooth[j])
            acc += p_state[min(j + ps_half + 1, n_d - 1)] - p_state[max(j - ps_half, 0)]
        floor = max(top * _FLOOR_REL, _FLOOR_ABS)
        for j in range(n_d):
            level[j] = _DB_PER_LN * math.log(smooth[j] + floor)
        # 2. upper envelope: lines between local maxima (whole neighbourhood in range), flat beyond
        prev = -1
        for j in range(pk_half, n_d - pk_half):
            v = level[j]
            is_peak = True
            for k in range(j - pk_half, j + pk_half + 1):
                if level[k] > v:
                    is_peak = False
                    break
            if not is_peak:
                continue
            if prev < 0:
                for k in range(j + 1):
                    upper[k] = max(v, level[k])
            else:
                a = level[prev]
                step = (v - a) / (j - prev)
                for k in range(prev + 1, j + 1):
                    upper[k] = max(a + step * (k - prev), level[k])
            prev = j
        if prev < 0:  # no local maximum: a range narrower than a neighbourhood
            prev = 0
            upper[0] = level[0]
        for k in range(prev + 1, n_d):
            upper[k] = max(level[prev], level[k])
        cum[0] = 0.0
        for j in range(n_d):
            cum[j + 1] = cum[j] + upper[j]
        # 3-4. excess over the flanks, soft knee, slope, depth, band fade
        for i in range(n_r):
            left = (cum[left_b[i]] - cum[left_a[i]]) * left_w[i]
            right = (cum[right_b[i]] - cum[right_a[i]]) * right_w[i]
            here = upper[offset + i]
            over = min(here - 0.5 * (left + right) - threshold_db, here - max(left, right))
            knee = min(max(over + half_knee, 0.0), KNEE_DB)
            red = knee * knee / (2.0 * KNEE_DB) + max(over - half_knee, 0.0)
            raw[sp_half + i] = min(red * slope, depth_db) * weight[i]
        # 5. across frequency: running max then a triangle; over frames: attack/release
        for i in range(n_r):
            m = 0.0
            for k in range(i, i + GAIN_SPREAD_BINS):
                m = max(m, raw[k])
            wide[gk_half + i] = m
        for i in range(n_r):
            acc = 0.0
            for k in range(gk_width):
                acc += GAIN_SMOOTH[k] * wide[i + k]
            y = r_state[i]
            c = attack_coef if acc > y else release_coef
            y = c * y + (1.0 - c) * acc
            r_state[i] = y
            out[t, i] = y if y >= _NEGLIGIBLE_DB else 0.0
    return out


@numba.njit(cache=True, nogil=True)
def _gain_change(spec: np.ndarray, red: np.ndarray, active: np.ndarray, first_bin: int) -> np.ndarray:
    """``(g - 1) * spec`` of the ``active`` frames, ``g = 10 ** (-red / 20)`` from ``first_bin`` on, 0 elsewhere."""
    n_ch, _, n_bins = spec.shape
    n_r = red.shape[1]
    out = np.zeros((n_ch, active.shape[0], n_bins), dtype=spec.dtype)
    for a in range(active.shape[0]):
        t = active[a]
        for i in range(n_r):
            r = red[t, i]
            if r > 0.0:
                g = math.expm1(r * _NEPER_PER_DB)
                for c in range(n_ch):
                    out[c, a, first_bin + i] = spec[c, t, first_bin + i] * g
    return out


# ---------------------------------------------------------------- processor


@dataclass(frozen=True)
class DeHarsher(Processor):
    """Cuts narrow resonances standing above each frame's smoothed spectrum (see the module doc).

    ``depth_db``: the largest cut (0 = off). ``threshold_db``: how far above
    the smoothed envelope a bin must stand before it is cut. ``sharpness``
    (0..1): how narrow the cut is (envelope width and slope). ``low_hz`` ..
    ``high_hz``: the band worked on (soft edges, a third of an octave
    outside). ``attack_ms`` / ``release_ms``: smoothing of each bin's cut.
    """

    kind: ClassVar[str] = "deharsher"
    native_dtypes: ClassVar[tuple[type, ...]] = (np.float32, np.float64)

    depth_db: float = 6.0
    threshold_db: float = 3.0
    sharpness: float = 0.5
    low_hz: float = 1000.0
    high_hz: float = 10000.0
    attack_ms: float = 10.0
    release_ms: float = 100.0

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_range(owner, "depth_db", self.depth_db, 0.0, 24.0)
        check_range(owner, "threshold_db", self.threshold_db, 0.0, 24.0)
        check_range(owner, "sharpness", self.sharpness, 0.0, 1.0)
        check_range(owner, "low_hz", self.low_hz, MIN_HZ, MAX_HZ)
        check_range(owner, "high_hz", self.high_hz, MIN_HZ, MAX_HZ)
        check_range(owner, "attack_ms", self.attack_ms, 0.1, 1000.0)
        check_range(owner, "release_ms", self.release_ms, 1.0, 5000.0)
        if self.high_hz <= self.low_hz:
            raise SettingsError(f"{owner}.high_hz = {self.high_hz} must be above low_hz = {self.low_hz}")

    @property
    def envelope_octaves(self) -> float:
        """Width of the smoothed envelope, in octaves: 1 at sharpness 0, 1/3 at 1."""
        return 3.0 ** -self.sharpness

    @property
    def slope(self) -> float:
        """dB of cut per dB of excess over the threshold: 1 at sharpness 0, 2 at 1."""
        return 1.0 + self.sharpness

    def context_samples(self, sample_rate: int) -> int:
        """A frame (the frames under a segment's first samples differ: they see zeros before it) and
        ``CONTEXT_TIME_CONSTANTS`` of the slowest smoothing over frames, on the hop grid; 0 when off.

        The peak that scales the STFT input (float32 precision) need not be the stem's: the gains
        are ratios of powers, so only the float32 rounding (~1e-7 of the change) depends on it."""
        if self.depth_db == 0.0 or self._plan(sample_rate) is None:
            return 0
        n_fft = frame_length(sample_rate)
        slowest_ms = max(DETECTOR_MS, self.attack_ms, self.release_ms)
        return round_up(n_fft + time_constant_context_samples(slowest_ms, sample_rate), self.grid_samples(sample_rate))

    def grid_samples(self, sample_rate: int) -> int:
        """The hop: a segment's frames must fall where the stem's do."""
        return frame_length(sample_rate) // OVERLAP

    def _plan(self, sample_rate: int) -> dict | None:
        """Bins, flanks, band weights and coefficients for a rate; ``None`` if the band is above Nyquist."""
        n_fft = frame_length(sample_rate)
        hop = n_fft // OVERLAP
        bin_hz = sample_rate / n_fft
        n_bins = n_fft // 2 + 1
        edge = 2.0 ** EDGE_OCTAVES
        reach = 2.0 ** (self.envelope_octaves / 2.0)
        guard = 2.0 ** (GUARD_FRACTION * self.envelope_octaves)
        # bins that may be cut (the band and its faded edges, below Nyquist) ...
        r_lo = max(1, int(math.floor(self.low_hz / edge / bin_hz)))
        r_hi = min(n_bins - 1, int(math.ceil(self.high_hz * edge / bin_hz)) + 1)
        if r_hi <= r_lo:
            return None
        # ... and the detector's range, wide enough for their flanks
        d_lo = max(1, int(math.floor(self.low_hz / edge / reach / bin_hz)) - 1)
        d_hi = min(n_bins, int(math.ceil(self.high_hz * edge * reach / bin_hz)) + 2)
        n_d = d_hi - d_lo
        f_r = np.arange(r_lo, r_hi) * bin_hz

        def flank(f_from: np.ndarray, f_to: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            a = np.clip(np.round(f_from / bin_hz).astype(np.int64) - d_lo, 0, n_d - 1)
            b = np.clip(np.round(f_to / bin_hz).astype(np.int64) - d_lo + 1, a + 1, n_d)
            return a, b

        below = np.clip(np.log2(f_r / self.low_hz) / EDGE_OCTAVES + 1.0, 0.0, 1.0)
        above = np.clip(1.0 - np.log2(f_r / self.high_hz) / EDGE_OCTAVES, 0.0, 1.0)
        return {
            "n_fft": n_fft, "r_lo": r_lo, "r_hi": r_hi, "d_lo": d_lo, "d_hi": d_hi,
            "left": flank(f_r / reach, f_r / guard), "right": flank(f_r * guard, f_r * reach),
            "weight": (0.5 - 0.5 * np.cos(np.pi * below)) * (0.5 - 0.5 * np.cos(np.pi * above)),
            "detector": math.exp(-hop / (DETECTOR_MS * 1e-3 * sample_rate)),
            "attack": math.exp(-hop / (self.attack_ms * 1e-3 * sample_rate)),
            "release": math.exp(-hop / (self.release_ms * 1e-3 * sample_rate)),
        }

    def _blocks(self, padded: np.ndarray, plan: dict) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(first frame, spectra (ch, frames, bins), reduction dB (frames, cut bins))`` per block.

        Blocks of ``_BLOCK_FRAMES`` frames bound the memory; the smoothing
        states carry over from block to block.
        """
        r_state = np.zeros(plan["r_hi"] - plan["r_lo"])
        p_state = np.zeros(plan["d_hi"] - plan["d_lo"])
        (la, lb), (ra, rb) = plan["left"], plan["right"]
        n_frames = frame_count(padded.shape[1], plan["n_fft"])
        for f0 in range(0, n_frames, _BLOCK_FRAMES):
            spec = stft_frames(padded, plan["n_fft"], f0, min(n_frames, f0 + _BLOCK_FRAMES))
            red = _detect(
                spec[:, :, plan["d_lo"]:plan["d_hi"]], p_state, r_state, la, lb, ra, rb,
                plan["weight"], plan["r_lo"] - plan["d_lo"], plan["detector"], plan["attack"],
                plan["release"], float(self.threshold_db), self.slope, float(self.depth_db))
            yield f0, spec, red

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        plan = None if self.depth_db == 0.0 else self._plan(sample_rate)
        peak = float(np.max(np.abs(audio)))
        if plan is None or peak == 0.0:
            return audio.copy()
        n_fft, r_lo = plan["n_fft"], plan["r_lo"]
        padded = pad_for_stft(audio, n_fft, 1.0 / peak)  # unit peak: float32 suits any level
        change = np.zeros(padded.shape, dtype=np.float32)  # ISTFT((g - 1) X), exactly 0 where g = 1
        for f0, spec, red in self._blocks(padded, plan):
            active = np.flatnonzero(red.max(axis=1) > 0.0)
            if active.size:
                overlap_add(change, _gain_change(spec, red, active, r_lo), f0 + active, n_fft)
        del padded  # before the output is made: a song's worth of float32 less at the peak
        n = audio.shape[1]
        change *= np.float32(peak)
        return audio + change[:, n_fft:n_fft + n]

    def mean_reduction_db_by_frequency(self, audio: np.ndarray, sample_rate: int
                                       ) -> tuple[np.ndarray, np.ndarray]:
        """Long-term cut per frequency, for reports: ``(freqs_hz, reduction_db)``, reduction ``>= 0``.

        Per STFT bin, ``10 * log10(sum(P) / sum(P * g ** 2))`` over all frames,
        ``P`` the bin's power (mean over channels) and ``g`` the gain applied:
        how far the long-term, energy-weighted spectrum is lowered at that
        frequency (silent frames weigh nothing). Bins run from 0 Hz to Nyquist
        every ``sample_rate / frame_length(sample_rate)`` Hz (21.5 Hz at
        44.1 kHz); outside the band, and for silence, the cut is 0.
        """
        check_audio(audio, sample_rate)
        sample_rate = int(sample_rate)
        n_fft = frame_length(sample_rate)
        freqs = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
        out = np.zeros(freqs.size)
        plan = None if self.depth_db == 0.0 else self._plan(sample_rate)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if plan is None or peak == 0.0:
            return freqs, out
        r_lo, r_hi = plan["r_lo"], plan["r_hi"]
        p_in = np.zeros(r_hi - r_lo)
        p_out = np.zeros(r_hi - r_lo)
        for _, spec, red in self._blocks(pad_for_stft(audio, n_fft, 1.0 / peak), plan):
            s = spec[:, :, r_lo:r_hi]
            p = (s.real * s.real + s.imag * s.imag).mean(axis=0, dtype=np.float64)
            p_in += p.sum(axis=0)
            p_out += (p * 10.0 ** (red / -10.0)).sum(axis=0)
        ok = p_out > 0.0
        out[r_lo:r_hi][ok] = 10.0 * np.log10(p_in[ok] / p_out[ok])
        return freqs, out
