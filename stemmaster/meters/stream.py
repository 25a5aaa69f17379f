"""The meters fed a block at a time, for signals too long to hold whole.

``LoudnessMeter`` and ``PeakMeter`` take consecutive blocks ``(channels, n)``
of one signal (``add``) and give what the whole-signal meters give on the
whole: the same kernels run with their state carried from block to block, so
the readings agree to the last few bits (a 100 ms hop split across two blocks
is summed in two parts). What they keep is per 100 ms hop or a few filter
states and samples: their memory does not grow with the song beyond a
thousandth of it. ``measure_source`` is ``meters.analysis.measure`` on an
``AudioSource``.
"""

from __future__ import annotations

import math

import numpy as np

from stemmaster.audio_source import AudioSource
from stemmaster.meters import loudness
from stemmaster.meters.analysis import Metrics
from stemmaster.meters.stereo import _SILENT_MEAN_SQUARE, _sums
from stemmaster.meters.truepeak import METER_INTERPOLATOR, Interpolator, _interval_peaks, _polyphase


class _HopGrid:
    """Sums of per-sample values into the 100 ms hops of a signal fed a block at a time
    (the hops of ``loudness._hop_bounds``: ``round(k * 0.1 s * rate)``)."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = int(sample_rate)
        self._hop = loudness.HOP_S * self.sample_rate
        self.frames = 0  # samples fed so far
        self._sums: list[np.ndarray] = []  # the complete hops' sums, in arrays as they come
        self._partial = 0.0  # the sum of the hop in progress
        self._hops = 0  # complete hops so far

    def split(self, n: int) -> tuple[np.ndarray, int]:
        """Local indices ``[0, b1, ..., n]`` that split the next ``n`` samples at hop boundaries,
        and how many hops those boundaries complete."""
        start, stop = self.frames, self.frames + n
        last = int(math.floor(stop / self._hop + 1e-9)) + 1
        inner = [int(round(k * self._hop)) - start for k in range(self._hops + 1, last + 1)]
        inner = [b for b in inner if 0 < b <= n]
        bounds = np.array([0] + inner + ([] if inner and inner[-1] == n else [n]), dtype=np.int64)
        return bounds, len(inner)

    def take(self, sums: np.ndarray, complete: int, n: int) -> None:
        """Take the sums over the stretches ``split(n)`` gave for the next ``n`` samples."""
        if complete:
            sums = np.array(sums, dtype=np.float64)
            sums[0] += self._partial
            self._sums.append(sums[:complete])
            self._hops += complete
            self._partial = float(sums[complete]) if sums.shape[0] > complete else 0.0
        else:
            self._partial += float(sums[0])
        self.frames += n

    def hops(self) -> tuple[np.ndarray, np.ndarray]:
        """The sum of each complete hop and the hops' lengths in samples (``loudness._hop_bounds``)."""
        bounds = loudness._hop_bounds(self.frames, self.sample_rate)
        hops = bounds.shape[0] - 1
        if hops <= 0:
            return np.zeros(0), np.zeros(0)
        sums = np.concatenate(self._sums)[:hops] if self._sums else np.zeros(0)
        return sums, np.diff(bounds).astype(np.float64)

    def integrated_lufs(self) -> float:
        """BS.1770-4 gated loudness of a signal whose hop energies these are, LUFS."""
        energy, lengths = self.hops()
        return loudness.integrated_from_blocks(loudness._window_lufs(energy, lengths, loudness._hops_per(loudness.BLOCK_S)))


class EnergyHops(_HopGrid):
    """The gated loudness of ``energy * gain ** 2`` fed a block at a time (``energy`` from
    ``loudness.k_weighted_energy``): ``loudness.gated_loudness_of_energy`` of the whole."""

    def add_energy(self, energy: np.ndarray, gain: np.ndarray | None = None) -> None:
        """The next ``energy`` ``(n,)`` and its linear ``gain`` ``(n,)`` (None: 1)."""
        energy = np.ascontiguousarray(energy)
        if energy.shape[0] == 0:
            return
        bounds, complete = self.split(energy.shape[0])
        g = np.zeros(0) if gain is None else np.ascontiguousarray(gain, dtype=np.float64)
        self.take(loudness._energy_hop_sums(energy, g, bounds), complete, energy.shape[0])


class LoudnessMeter(_HopGrid):
    """K-weighted, channel-weighted energy per 100 ms hop of a signal fed in order.

    ``sos`` ``(k, 6)``: a filter the signal is heard through before the
    K-weighting (a playback model), and ``fold_mono``: the channels averaged
    into one signal on two speakers, as ``loudness.gated_loudness_through``.
    Without them the readings are ``loudness.momentary_lufs`` and the rest
    of the whole signal.
    """

    def __init__(self, sample_rate: int, channels: int, *, sos: np.ndarray | None = None,
                 fold_mono: bool = False) -> None:
        super().__init__(sample_rate)
        self.channels = int(channels)
        if self.sample_rate <= 0 or not 1 <= self.channels <= 5:
            raise ValueError(f"loudness meter: {channels} channels at {sample_rate} Hz")
        self._cascade = sos is not None or fold_mono
        if self._cascade:
            sos = np.zeros((0, 6)) if sos is None else np.asarray(sos, dtype=np.float64).reshape(-1, 6)
            self._sos = np.ascontiguousarray(np.vstack([sos / sos[:, 3:4], loudness.k_weighting_sos(self.sample_rate)]))
            rows = 1 if fold_mono else self.channels
            self._weights = np.full(1, 2.0) if fold_mono else loudness.channel_weights(self.channels)
            self._state = np.zeros((rows, self._sos.shape[0], 2))
        else:
            self._sos = loudness.k_weighting_sos(self.sample_rate)
            self._weights = loudness.channel_weights(self.channels)
            self._state = loudness.k_state(self.channels)
        self._fold = fold_mono

    def add(self, block: np.ndarray) -> None:
        """Feed the next ``block`` ``(channels, n)`` (float32 or float64, finite)."""
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"loudness meter: expected ({self.channels}, n) blocks, got {block.shape}")
        if block.shape[1] == 0:
            return
        bounds, complete = self.split(block.shape[1])
        x = np.ascontiguousarray(block)
        if self._cascade:
            sums = loudness._cascade_hop_sums(x, self._sos, bounds, self._weights, self._fold, self._state)
        else:
            sums = loudness._k_hop_sums(x, self._sos, bounds, self._weights, loudness._NO_SAMPLES, self._state,
                                        self.frames)
        self.take(sums, complete, block.shape[1])

    def hop_energy(self) -> tuple[np.ndarray, np.ndarray]:
        """The energy of each complete 100 ms hop and the hops' lengths in samples, as
        ``loudness._prepared_energy`` gives for the whole signal fed so far."""
        return self.hops()

    def momentary_lufs(self) -> np.ndarray:
        energy, lengths = self.hops()
        return loudness._window_lufs(energy, lengths, loudness._hops_per(loudness.BLOCK_S))

    def short_term_lufs(self) -> np.ndarray:
        energy, lengths = self.hops()
        return loudness._window_lufs(energy, lengths, loudness._hops_per(loudness.SHORT_TERM_S))

    def loudness_range_lu(self) -> float:
        return loudness.loudness_range_from_short_term(self.short_term_lufs())


class PeakMeter:
    """True peak (4x oversampled, BS.1770-4) and sample peak of a signal fed in order, equal to
    ``true_peak_dbtp`` and ``sample_peak_dbfs`` of the whole."""

    def __init__(self, spec: Interpolator = METER_INTERPOLATOR) -> None:
        taps, center = _polyphase(spec)
        self._phases = np.ascontiguousarray(taps[1:])
        self._front = taps.shape[1] - 1 - center  # samples before an interval its filter reads
        self._center = center  # and after
        self._hist: np.ndarray | None = None  # the ``front`` samples before the pending ones
        self._pending: np.ndarray | None = None  # samples whose right neighbours have not come yet
        self._true = 0.0
        self._sample = 0.0
        self._done = False

    def add(self, block: np.ndarray) -> None:
        """Feed the next ``block`` ``(channels, n)`` (finite)."""
        block = np.asarray(block)
        if block.ndim != 2:
            raise ValueError(f"peak meter: expected (channels, n) blocks, got {block.shape}")
        if block.shape[1] == 0:
            return
        if not np.isfinite(block).all():
            raise ValueError("peak meter: NaN or infinite samples")
        if self._done:
            raise ValueError("peak meter: read already; the signal has ended")
        self._sample = max(self._sample, float(np.max(block)), -float(np.min(block)))
        if self._hist is None:
            self._hist = np.zeros((block.shape[0], self._front), dtype=np.float32)
            self._pending = np.zeros((block.shape[0], 0), dtype=np.float32)
        self._run(block.astype(np.float32, copy=False), self._pending.shape[1] + block.shape[1] - self._center)

    def _run(self, block: np.ndarray, measurable: int) -> None:
        """Measure the pending samples and ``block`` up to ``measurable`` of them; keep the rest."""
        data = np.concatenate([self._hist, self._pending, block], axis=1)
        if measurable > 0:
            # the kernel gives one value per sample that has ``front`` samples before it and
            # ``center`` after it in ``data``
            peaks = _interval_peaks(data[:, :self._front + measurable + self._center], self._phases, self._front)
            self._true = max(self._true, float(peaks.max()))
            self._hist = np.ascontiguousarray(data[:, measurable:measurable + self._front])
            self._pending = np.ascontiguousarray(data[:, self._front + measurable:])
        else:
            self._pending = np.ascontiguousarray(data[:, self._front:])

    def _flush(self) -> None:
        if self._pending is not None and self._pending.shape[1] and not self._done:
            tail = np.zeros((self._pending.shape[0], self._center), dtype=np.float32)  # zeros past the end
            self._run(tail, self._pending.shape[1])
            self._done = True  # the signal has ended: nothing more can be fed

    @property
    def true_peak_linear(self) -> float:
        self._flush()
        return self._true

    @property
    def true_peak_dbtp(self) -> float:
        peak = self.true_peak_linear
        return 20.0 * math.log10(peak) if peak > 0 else float("-inf")

    @property
    def sample_peak_dbfs(self) -> float:
        return 20.0 * math.log10(self._sample) if self._sample > 0 else float("-inf")


class _StereoSums:
    """The running sums ``meters.stereo`` reads (and the mean square over all channels)."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.sums = np.zeros(7)
        self.squares = 0.0
        self.frames = 0

    def add(self, block: np.ndarray) -> None:
        if self.channels >= 2:  # one sweep: its L*L and R*R sums are the first two channels' squares
            sums = _sums(np.ascontiguousarray(block[0]), np.ascontiguousarray(block[1]))
            self.sums += np.array(sums)
            self.squares += sums[2] + sums[3]
            rest = block[2:]
        else:
            rest = block
        for ch in rest:
            ch64 = ch.astype(np.float64)
            self.squares += float(np.dot(ch64, ch64))
        self.frames += block.shape[1]

    def rms_dbfs(self) -> float:
        size = self.channels * self.frames
        if size == 0 or self.squares <= 0:
            return float("-inf")
        return float(10.0 * np.log10(self.squares / size))

    def correlation(self) -> float:
        if self.channels < 2:
            return 1.0
        n = self.frames
        if n == 0:
            return 0.0
        sl, sr, sll, srr, slr, _, _ = self.sums
        ll, rr = sll - sl * sl / n, srr - sr * sr / n
        if ll <= _SILENT_MEAN_SQUARE * n or rr <= _SILENT_MEAN_SQUARE * n:
            return 0.0
        return float(min(1.0, max(-1.0, (slr - sl * sr / n) / (np.sqrt(ll) * np.sqrt(rr)))))

    def side_to_mid_db(self) -> float:
        if self.channels < 2 or self.frames == 0:
            return float("-inf")
        side, mid = self.sums[5], self.sums[6]
        if side <= 0.0:
            return float("-inf")
        if mid <= 0.0:
            return float("inf")
        return float(10.0 * np.log10(side / mid))


class MetricsMeter:
    """``meters.analysis.measure`` (with our own gated integrated loudness) of a signal fed in
    order: loudness, peaks, RMS and the stereo measures, each from its running figures."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.loudness = LoudnessMeter(sample_rate, channels)
        self.peaks = PeakMeter()
        self._stereo = _StereoSums(self.channels)

    def add(self, block: np.ndarray) -> None:
        loudness.check_meter_audio(block, self.sample_rate)
        self.loudness.add(block)
        self.peaks.add(block)
        self._stereo.add(block)

    def metrics(self) -> Metrics:
        momentary = self.loudness.momentary_lufs()
        short_term = self.loudness.short_term_lufs()
        integrated = loudness.integrated_from_blocks(momentary)
        peak, true_peak = self.peaks.sample_peak_dbfs, self.peaks.true_peak_dbtp
        rms = self._stereo.rms_dbfs()
        return Metrics(
            integrated_lufs=integrated,
            short_term_max_lufs=float(np.max(short_term)) if short_term.size else float("-inf"),
            momentary_max_lufs=float(np.max(momentary)) if momentary.size else float("-inf"),
            loudness_range_lu=loudness.loudness_range_from_short_term(short_term),
            sample_peak_dbfs=peak,
            true_peak_dbtp=true_peak,
            plr_db=true_peak - integrated if math.isfinite(integrated) and math.isfinite(true_peak) else float("nan"),
            crest_factor_db=peak - rms if math.isfinite(rms) else float("nan"),
            rms_dbfs=rms,
            stereo_correlation=self._stereo.correlation(),
            side_to_mid_db=self._stereo.side_to_mid_db(),
            duration_s=self._stereo.frames / self.sample_rate,
            sample_rate=self.sample_rate,
            channels=self.channels,
        )


def measure_source(source: AudioSource, *, pyloudnorm: bool = False) -> Metrics:
    """``meters.analysis.measure`` of ``source``, read block by block. ``pyloudnorm=True`` needs
    the whole signal (pyloudnorm's meter takes one array) and is refused for a source."""
    if pyloudnorm:
        raise ValueError("measure_source uses our own gated meter; pyloudnorm needs the whole signal")
    meter = MetricsMeter(source.sample_rate, source.channels)
    for _start, block in source.blocks():
        meter.add(block)
    return meter.metrics()
