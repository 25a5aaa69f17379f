"""The shared measurements of one signal (a stem or the mix), computed once, block by block.

``analyse`` reads an ``AudioSource`` (or an array ``(channels, samples)``)
in blocks, twice at most (``passes``), and keeps nothing that grows with the
song beyond a few floats per STFT frame, per 100 ms hop, per 50 ms window and
per second, and per-bin sums. The STFT is of the mid and of the side
(2048-point Hann frames, hop 2048 from sample 0: 21.5 Hz bins and 46 ms steps
at 44.1 kHz; the detectors read long-term statistics, so frames need not
overlap). Per frame it keeps the mid and side energy, the sibilant band's
(4.5-11 kHz) energy and the mid's flatness above 1 kHz; per hop the
K-weighted energy (BS.1770, ``meters.stream.LoudnessMeter``) with the
momentary and short-term loudness derived from it; per bin the long-term mid
and side spectra. What a detector wants of a subset of frames chosen by a
whole-song statistic (the loud frames, the sibilant ones) is reduced in the
second pass. Nothing here loops over samples in Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stemmaster.audio_source import BLOCK_FRAMES, AudioSource, as_source
from stemmaster.diagnosis.passes import LONG_FFT, N_FFT, FirstPass, SecondPass, frame_freqs
from stemmaster.diagnosis.spectrum import db, resonance_candidates, resonance_curve
from stemmaster.errors import AudioError
from stemmaster.meters import loudness
from stemmaster.meters.spectral import hit_crest_of_windows

__all__ = ["SignalAnalysis", "analyse", "db", "loud_frames", "sibilant_frames", "N_FFT", "SECOND_PASS"]

HOP = N_FFT
SECOND_PASS = frozenset({"resonance", "sibilance"})  # the frame-subset reductions analyse can make


@dataclass
class SignalAnalysis:
    """What the detectors read about one signal. Per-bin powers are scaled so that the sum over the
    bins of one frame is that frame's mean square (a full-scale sine: 0.5); per-frame arrays are
    ``(frames,)`` over the complete 2048-sample frames."""

    name: str
    role: str
    sample_rate: int
    samples: int
    channels: int
    freqs: np.ndarray            # (bins,) Hz
    mid_mean: np.ndarray         # (bins,) long-term mean power of the mid = (L + R) / 2, float64
    side_mean: np.ndarray        # (bins,) of the side = (L - R) / 2; zeros for mono
    frame_mid: np.ndarray        # (frames,) mid energy (sum over the bins) per frame
    frame_side: np.ndarray       # (frames,) side energy per frame; zeros for mono
    frame_sibilant: np.ndarray   # (frames,) mid energy in 4.5-11 kHz per frame
    frame_flatness: np.ndarray   # (frames,) spectral flatness of the mid above 1 kHz per frame
    hop_energy: np.ndarray       # (hops,) K-weighted channel-weighted energy per 100 ms
    hop_lengths: np.ndarray      # (hops,) samples per hop
    momentary: np.ndarray        # LUFS, 400 ms windows every 100 ms
    short_term: np.ndarray       # LUFS, 3 s windows every 100 ms
    integrated_lufs: float       # BS.1770 gating of the momentary blocks
    peak: float                  # largest |sample|, linear
    true_peak: float             # 4x-oversampled true peak (BS.1770-4), dBTP
    rms_dbfs: float
    dc: np.ndarray               # (channels,) mean of each channel
    clip_runs: np.ndarray        # (seconds,) runs of >= 3 equal samples at the peak level, all channels
    first: np.ndarray            # (channels,) first sample
    edge_tail_dbfs: float        # peak of the last 10 ms, dBFS
    loud_span: tuple[int, int]   # first and last sample at or above -60 dBFS on any channel; (-1, -1): none
    hit_crest_db: float          # meters.spectral.hit_crest_db of the signal
    resonance_hz: np.ndarray     # (k <= 5,) candidate resonances, strongest excess first; empty: none
    resonance_excess_db: np.ndarray   # (k,) their excess over the long-term spectrum's envelope
    resonance_persistence: np.ndarray  # (k,) fraction of the loud frames in which each stands out
    sibilant_peak_hz: float      # where the sibilant frames' 4.5-11 kHz spectrum peaks; NaN if not read

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate

    @property
    def frames(self) -> int:
        return int(self.frame_mid.size)

    @property
    def stereo(self) -> bool:
        return self.channels >= 2

    def band(self, lo: float, hi: float) -> np.ndarray:
        """Boolean mask of the bins in ``[lo, hi)`` Hz."""
        return (self.freqs >= lo) & (self.freqs < hi)

    def true_peak_dbtp(self) -> float:
        return self.true_peak


def loud_frames(frame_energy: np.ndarray, below_max_db: float = 30.0) -> np.ndarray:
    """Frames whose energy is within ``below_max_db`` of the loudest frame's (the music, not the gaps)."""
    if frame_energy.size == 0:
        return np.zeros(0, dtype=np.int64)
    top = float(frame_energy.max())
    if top <= 0.0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(frame_energy >= top * 10.0 ** (-below_max_db / 10.0))


def sibilant_frames(total: np.ndarray, band_energy: np.ndarray, top_fraction: float = 0.05
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(live, top)``: the non-silent frames (within 60 dB of the loudest by ``total``) and, among
    them, the ``top_fraction`` with the most ``band_energy`` (at least one)."""
    live = np.flatnonzero(total > total.max() * 1e-6) if total.size and total.max() > 0 else np.zeros(0, np.int64)
    if live.size == 0:
        return live, live
    k = max(1, int(round(live.size * top_fraction)))
    return live, live[np.argsort(band_energy[live])[::-1][:k]]


def _source_of(name: str, audio: AudioSource | np.ndarray, sample_rate: int | None) -> AudioSource:
    if isinstance(audio, AudioSource):
        return audio
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.dtype not in (np.float32, np.float64):
        audio = audio.astype(np.float32)
    return as_source(audio, sample_rate, name=name)


def _mask(frames: int, chosen: np.ndarray) -> np.ndarray:
    mask = np.zeros(frames, dtype=bool)
    mask[chosen] = True
    return mask


def analyse(name: str, role: str, audio: AudioSource | np.ndarray, sample_rate: int | None = None, *,
            block_frames: int = BLOCK_FRAMES, second_pass: frozenset[str] = SECOND_PASS) -> SignalAnalysis:
    """Measure ``audio`` (an ``AudioSource``, or an array ``(channels, samples)`` at ``sample_rate``)
    once for all detectors, reading it ``block_frames`` at a time. ``second_pass`` names the frame-subset
    reductions wanted ("resonance": the candidates' persistence, "sibilance": the sibilant frames'
    peak frequency); the other figures are always made."""
    source = _source_of(name, audio, sample_rate)
    sr, channels, n = source.sample_rate, source.channels, source.frames
    if sample_rate is not None and int(sample_rate) != sr:
        raise AudioError(f"{name}: {sr} Hz, expected {sample_rate} Hz")
    loudness.check_meter_audio(np.zeros((channels, 0), np.float32), sr)  # the rate and the channel count
    first = FirstPass(name, sr, channels, n)
    for start, block in source.blocks(block_frames):
        first.add(start, block)

    frame_mid = first.per_frame("mid")
    frame_sibilant = first.per_frame("sibilant")
    frames = frame_mid.size
    loud = loud_frames(frame_mid)
    candidates, excess = np.zeros(0), np.zeros(0)
    if "resonance" in second_pass and loud.size >= 8 and first.long_frames:
        grid, curve = resonance_curve(np.fft.rfftfreq(LONG_FFT, 1.0 / sr), first.long_sum / first.long_frames, sr)
        candidates, excess = resonance_candidates(grid, curve)
    top = sibilant_frames(frame_mid, frame_sibilant)[1] if "sibilance" in second_pass else np.zeros(0, np.int64)
    # clipping holds the signal at one value: runs at (nearly) the channel's own peak,
    # which also catches a clipped file normalised afterwards; ignored below -6 dBFS
    clip_levels = np.where(first.peaks >= 0.5, first.peaks * 0.999, np.inf)
    second = SecondPass(sr, n, loud=_mask(frames, loud), resonance_hz=candidates, sibilant=_mask(frames, top),
                        clip_levels=clip_levels)
    if second.needed:
        for start, block in source.blocks(block_frames):
            second.add(start, block)

    energy, lengths = first.loudness.hop_energy()
    momentary = loudness._window_lufs(energy, lengths, loudness._hops_per(loudness.BLOCK_S))
    mean_square = first.squares / max(1, channels * n)
    sibilant_hz = float(second.freqs[second.band][int(np.argmax(second.sibilant_sum))]) if top.size else float("nan")
    return SignalAnalysis(
        name=name, role=role, sample_rate=sr, samples=n, channels=channels, freqs=frame_freqs(sr),
        mid_mean=first.mid_sum / frames if frames else np.zeros(first.mid_sum.size),
        side_mean=first.side_sum / frames if frames else np.zeros(first.side_sum.size),
        frame_mid=frame_mid, frame_side=first.per_frame("side"), frame_sibilant=frame_sibilant,
        frame_flatness=first.per_frame("flatness"), hop_energy=energy, hop_lengths=lengths, momentary=momentary,
        short_term=loudness._window_lufs(energy, lengths, loudness._hops_per(loudness.SHORT_TERM_S)),
        integrated_lufs=loudness.integrated_from_blocks(momentary),
        peak=float(first.peaks.max()) if n else 0.0, true_peak=first.peak_meter.true_peak_dbtp,
        rms_dbfs=10.0 * math.log10(mean_square) if mean_square > 0 else float("-inf"),
        dc=first.sums / max(1, n), clip_runs=second.clips.per_second, first=first.first,
        edge_tail_dbfs=20.0 * math.log10(first.tail_peak) if first.tail_peak > 0 else float("-inf"),
        loud_span=(first.loud_first, first.loud_last),
        hit_crest_db=hit_crest_of_windows(first.per_window("peak"), first.per_window("mean_square")),
        resonance_hz=candidates, resonance_excess_db=excess, resonance_persistence=second.standing / max(1, loud.size),
        sibilant_peak_hz=sibilant_hz,
    )

