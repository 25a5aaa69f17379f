"""Translation checks: how a master holds up in mono and on typical small or coloured systems.

Each check renders the master through a simple model of a playback path and
compares it with the full-range master:

* ``loudness_change_lu``: BS.1770 integrated loudness of the check signal
  minus that of the master. A mono signal is measured as dual mono (the same
  signal on both channels, as a mono fold-down is heard on a stereo system),
  so a fold-down of correlated content reads 0 LU and of uncorrelated content
  about -3 LU.
* ``band_change_db``: for each band of :data:`BANDS`, the energy of the check
  signal in the band over that of the master, in dB, per channel (the mean
  power of the channels, so again dual mono of correlated content is 0 dB).
  For the mono check this is the fold-down loss per band: wide or
  phase-cancelled low end shows as a large loss in ``sub``/``bass``.
  ``None`` when the master has (almost) no energy in the band.

The playback models are deliberately simple and generic; they are not
measurements of a particular device:

* ``mono``: ``(L + R) / 2``, nothing else.
* ``phone``: mono, 4th-order Butterworth high-pass at 400 Hz (24 dB/octave:
  -24 dB at 200 Hz, -48 dB at 100 Hz) and 4th-order Butterworth low-pass at
  9 kHz. Smartphone micro-speakers have their resonance in the 500-1000 Hz
  region and little output an octave below it, and their output fades out
  towards 10 kHz; a 300-500 Hz to 8-10 kHz band-pass is the usual mix-check
  "phone" preset. 400 Hz / 9 kHz sit in the middle of those ranges.
* ``earbuds``: stereo, 2nd-order Butterworth high-pass at 70 Hz (the bass
  loss of an earbud that does not seal the ear canal) and a +3 dB peak at
  3 kHz, Q 1 (the uncompensated presence peak of inexpensive buds).
* ``car``: stereo, +5 dB RBJ low shelf at 100 Hz (shelf slope 1: half the gain,
  +2.5 dB, at 100 Hz; +4.5 dB at 50 Hz, nearly all of it below 40 Hz): the
  "cabin gain" by which a closed car cabin lifts the low bass (the cabin is
  small against those wavelengths and acts as a pressure chamber; in-car
  target curves carry several dB of bass lift for it). The woofers' own
  roll-off is left out: cabin gain largely makes up for it.

Cost: one pass over the master, a block at a time (an array or an
``AudioSource``; memory does not grow with the song's length): each block
goes to one long-term spectrum of the master (its channels' auto-spectra and
the L-R cross-spectrum, Welch frames straddling the blocks completed from a
carried tail) and to one streaming loudness meter per check
(``meters.stream.LoudnessMeter`` with the model's sections, folded to mono
for the mono models), side by side in threads (the kernels release the GIL).
Each check's band energies are the master's spectrum times the model's power
response (filtering is linear), so only its loudness needs the filtered
signal. No Python loops over samples.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft
from scipy.signal import butter, sosfreqz

from stemmaster.audio_source import AudioSource, as_source
from stemmaster.checks.blocks import CHECK_BLOCK, check_source, feed
from stemmaster.meters.stream import LoudnessMeter
from stemmaster.dsp.biquad import sos_filter
from stemmaster.errors import AudioError

# (name, low Hz, high Hz); the last band runs to Nyquist
BANDS: tuple[tuple[str, float, float], ...] = (
    ("sub", 0.0, 60.0),
    ("bass", 60.0, 250.0),
    ("low_mids", 250.0, 2000.0),
    ("presence", 2000.0, 6000.0),
    ("air", 6000.0, math.inf),
)
CHECKS: tuple[str, ...] = ("mono", "phone", "earbuds", "car")

PHONE_HIGHPASS_HZ = 400.0
PHONE_LOWPASS_HZ = 9000.0
PHONE_ORDER = 4
EARBUDS_HIGHPASS_HZ = 70.0
EARBUDS_PEAK_HZ = 3000.0
EARBUDS_PEAK_DB = 3.0
EARBUDS_PEAK_Q = 1.0
CAR_SHELF_HZ = 100.0
CAR_SHELF_DB = 5.0

# a band whose energy in the master is this far below the master's total is not compared
_EMPTY_BAND_DB = -100.0
_FRAMES_PER_FFT = 64
_N_FFT = 8192  # 5.4 Hz resolution at 44.1 kHz: about ten bins below 60 Hz
# mono fold-down: a band losing more than this is flagged (uncorrelated content loses 3 dB)
MONO_LOSS_WARN_DB = 4.5

_DESCRIPTIONS = {
    "mono": "mono fold-down (L+R)/2",
    "phone": (f"phone speaker: mono, {PHONE_HIGHPASS_HZ:.0f} Hz to {PHONE_LOWPASS_HZ / 1000:.0f} kHz "
              f"(Butterworth order {PHONE_ORDER} both sides)"),
    "earbuds": (f"earbuds: high-pass {EARBUDS_HIGHPASS_HZ:.0f} Hz (order 2), "
                f"+{EARBUDS_PEAK_DB:.0f} dB at {EARBUDS_PEAK_HZ / 1000:.0f} kHz (Q {EARBUDS_PEAK_Q:g})"),
    "car": f"car cabin: +{CAR_SHELF_DB:.0f} dB low shelf at {CAR_SHELF_HZ:.0f} Hz",
}


@dataclass
class TranslationCheck:
    """One playback model's result; ``to_dict`` gives the JSON-ready form."""

    name: str
    description: str
    channels: int  # channels of the check signal (1 for mono and phone)
    loudness_lufs: float | None
    loudness_change_lu: float | None
    band_change_db: dict[str, float | None]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "channels": self.channels,
            "loudness_lufs": self.loudness_lufs,
            "loudness_change_lu": self.loudness_change_lu,
            "band_change_db": dict(self.band_change_db),
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------- filters


def _rbj(kind: str, freq_hz: float, gain_db: float, q_or_slope: float, sample_rate: int) -> np.ndarray:
    """One RBJ audio-EQ-cookbook section ``(1, 6)``: ``"peak"`` (Q) or ``"lowshelf"`` (shelf slope S)."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq_hz / sample_rate
    cw, sw = math.cos(w0), math.sin(w0)
    if kind == "peak":
        alpha = sw / (2.0 * q_or_slope)
        b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
    elif kind == "lowshelf":
        alpha = sw / 2.0 * math.sqrt((a + 1.0 / a) * (1.0 / q_or_slope - 1.0) + 2.0)
        sq = 2.0 * math.sqrt(a) * alpha
        b = [a * ((a + 1) - (a - 1) * cw + sq), 2 * a * ((a - 1) - (a + 1) * cw), a * ((a + 1) - (a - 1) * cw - sq)]
        den = [(a + 1) + (a - 1) * cw + sq, -2 * ((a - 1) + (a + 1) * cw), (a + 1) + (a - 1) * cw - sq]
    else:  # pragma: no cover - internal
        raise ValueError(kind)
    return (np.array(b + den) / den[0]).reshape(1, 6)


def _butter(btype: str, freq_hz: float, order: int, sample_rate: int) -> np.ndarray:
    return butter(order, min(freq_hz, 0.45 * sample_rate), btype=btype, output="sos", fs=sample_rate)


def check_sections(name: str, sample_rate: int) -> np.ndarray:
    """The second-order sections ``(k, 6)`` of a check's playback model (``k = 0`` for ``mono``)."""
    if name == "mono":
        return np.zeros((0, 6))
    if name == "phone":
        return np.vstack([_butter("highpass", PHONE_HIGHPASS_HZ, PHONE_ORDER, sample_rate),
                          _butter("lowpass", PHONE_LOWPASS_HZ, PHONE_ORDER, sample_rate)])
    if name == "earbuds":
        return np.vstack([_butter("highpass", EARBUDS_HIGHPASS_HZ, 2, sample_rate),
                          _rbj("peak", EARBUDS_PEAK_HZ, EARBUDS_PEAK_DB, EARBUDS_PEAK_Q, sample_rate)])
    if name == "car":
        return _rbj("lowshelf", CAR_SHELF_HZ, CAR_SHELF_DB, 1.0, sample_rate)
    raise AudioError(f"unknown translation check {name!r} (known: {', '.join(CHECKS)})")


def render_check(master: np.ndarray, sample_rate: int, name: str) -> np.ndarray:
    """The master as heard through check ``name``: float64 ``(1, n)`` for mono and phone, else ``(channels, n)``."""
    x = np.asarray(master, dtype=np.float64)
    if name in ("mono", "phone"):
        x = x.mean(axis=0, keepdims=True)
    sos = check_sections(name, int(sample_rate))
    return sos_filter(sos, x) if len(sos) else x


# ---------------------------------------------------------------- measures


class LongTermSpectrum:
    """Welch long-term power spectra accumulated block by block.

    Feed consecutive blocks ``(channels, n)`` of a signal of ``frames`` frames
    with ``add``; ``result()`` then gives what :func:`long_term_spectra` of the
    whole signal gives. Hann frames of ``n_fft`` samples (clamped to
    ``frames``) at 50 % overlap start every ``n_fft / 2`` samples from the first;
    a frame straddling two blocks is completed from the tail of the earlier
    one, carried over (less than ``n_fft`` frames), so nothing else is kept
    between blocks but the sums per bin.
    """

    def __init__(self, channels: int, sample_rate: int, frames: int, n_fft: int = _N_FFT) -> None:
        self.sample_rate = int(sample_rate)
        self.n_fft = max(2, min(int(n_fft), int(frames)))
        self.hop = max(1, self.n_fft // 2)
        self.window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)
        bins = self.n_fft // 2 + 1
        self.auto = np.zeros((channels, bins))
        self.cross = np.zeros(bins) if channels == 2 else None
        self.count = 0  # frames summed
        self._tail = np.zeros((channels, 0), dtype=np.float32)

    def add(self, block: np.ndarray) -> None:
        """Add the next block ``(channels, n)`` of the signal."""
        block = np.asarray(block, dtype=np.float32)
        data = np.concatenate([self._tail, block], axis=1) if self._tail.shape[1] else block
        usable = (data.shape[1] - self.n_fft) // self.hop + 1 if data.shape[1] >= self.n_fft else 0
        if usable:
            frames = np.lib.stride_tricks.sliding_window_view(data, self.n_fft, axis=-1)[:, ::self.hop][:, :usable]
            for k in range(0, usable, _FRAMES_PER_FFT):  # blocks of frames: the working set stays small
                z = scipy.fft.rfft(frames[:, k:k + _FRAMES_PER_FFT] * self.window, axis=-1, workers=-1)
                for c in range(z.shape[0]):
                    self.auto[c] += np.einsum("ij,ij->j", z[c].real, z[c].real, dtype=np.float64)
                    self.auto[c] += np.einsum("ij,ij->j", z[c].imag, z[c].imag, dtype=np.float64)
                if self.cross is not None:
                    self.cross += np.einsum("ij,ij->j", z[0].real, z[1].real, dtype=np.float64)
                    self.cross += np.einsum("ij,ij->j", z[0].imag, z[1].imag, dtype=np.float64)
            self.count += usable
        self._tail = np.array(data[:, usable * self.hop:], dtype=np.float32)

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(frequencies_hz, auto, cross)`` as :func:`long_term_spectra` returns them."""
        scale = np.full(self.auto.shape[1], 2.0 / (max(self.count, 1) * self.n_fft
                                                   * float(np.sum(self.window.astype(np.float64) ** 2))))
        scale[0] /= 2.0  # one-sided: DC (and Nyquist for even n_fft) appear once
        if self.n_fft % 2 == 0:
            scale[-1] /= 2.0
        cross = None if self.cross is None else self.cross * scale
        return np.fft.rfftfreq(self.n_fft, 1.0 / self.sample_rate), self.auto * scale, cross


def long_term_spectra(audio: np.ndarray | AudioSource, sample_rate: int, n_fft: int = _N_FFT,
                      block: int = CHECK_BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Long-term power spectra: ``(frequencies_hz, auto, cross)``.

    ``audio`` is an array ``(channels, samples)`` or an ``AudioSource``, read
    ``block`` frames at a time (:class:`LongTermSpectrum`). ``auto``
    ``(channels, bins)`` is each channel's mean square per bin (its
    sum over the bins is the channel's mean square); ``cross`` ``(bins,)`` is
    the real part of the L-R cross-spectrum on the same scale (``None`` for
    mono), so the mono fold-down's spectrum is ``(auto[0] + auto[1] + 2 *
    cross) / 4``. Hann frames of ``n_fft`` samples (clamped to the length) at
    50 % overlap, float32 FFTs in blocks of frames (Welch's method, several
    times faster than ``scipy.signal.welch``).
    """
    source = as_source(audio, sample_rate)
    acc = LongTermSpectrum(source.channels, sample_rate, source.frames, n_fft)
    for _, x in source.blocks(block):
        acc.add(x)
    return acc.result()


def _band_sums(f: np.ndarray, power: np.ndarray) -> np.ndarray:
    return np.array([power[(f >= lo) & (f < hi)].sum() for _, lo, hi in BANDS])


def band_energies(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean square per channel (channel mean) in each band of :data:`BANDS` (linear), shape ``(bands,)``."""
    f, auto, _ = long_term_spectra(audio, sample_rate)
    return _band_sums(f, auto.mean(axis=0))


def _check_power(name: str, f: np.ndarray, auto: np.ndarray, cross: np.ndarray | None,
                 sample_rate: int) -> np.ndarray:
    """The long-term spectrum (per channel) of check ``name`` from the master's spectra.

    Filtering is linear, so a check's spectrum is the master's (mono: the
    fold-down's, from the auto- and cross-spectra) times the model's power
    response ``|H(f)|^2``: exact for long-term averages up to the 5 Hz
    resolution, and no extra FFT pass per check.
    """
    if name in ("mono", "phone"):
        power = auto[0] if cross is None else (auto[0] + auto[1] + 2.0 * cross) / 4.0
    else:
        power = auto.mean(axis=0)
    sos = check_sections(name, sample_rate)
    if len(sos):
        _, h = sosfreqz(sos, worN=f, fs=sample_rate)
        power = power * np.abs(h) ** 2
    return power


def _finite_or_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _check_master(master: np.ndarray | AudioSource, sample_rate: int) -> AudioSource:
    if not isinstance(master, AudioSource) and (not isinstance(master, np.ndarray) or master.ndim != 2):
        raise AudioError(f"master must be a 2-D array shaped (channels, samples), got {getattr(master, 'shape', type(master))}")
    channels = master.channels if isinstance(master, AudioSource) else master.shape[0]
    if channels not in (1, 2):
        raise AudioError(f"translation checks take mono or stereo, got {channels} channels")
    source = check_source(master, sample_rate, "translation checks")
    if source.frames < int(0.4 * source.sample_rate):
        raise AudioError(f"master too short for translation checks ({source.frames} samples; at least 0.4 s)")
    return source


def translation_checks(master: np.ndarray | AudioSource, sample_rate: int,
                       checks: tuple[str, ...] = CHECKS, *, block: int = CHECK_BLOCK) -> list[TranslationCheck]:
    """Run the translation checks ``checks`` (default all of :data:`CHECKS`) on ``master``.

    ``master`` is float32/float64 ``(channels, samples)`` or an ``AudioSource``,
    mono or stereo, at least 0.4 s long, read ``block`` frames at a time in one
    pass: each block goes to the master's loudness meter, one streaming
    loudness meter per check (its playback model's sections, folded to mono
    where the model is mono) and the long-term spectrum. Returns one
    :class:`TranslationCheck` per check, in order (``[c.to_dict() for c in
    ...]`` for JSON). Raises AudioError for bad or silent input.
    """
    source = _check_master(master, sample_rate)
    sample_rate = source.sample_rate
    channels = source.channels
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise AudioError(f"unknown translation check(s) {', '.join(map(repr, unknown))} (known: {', '.join(CHECKS)})")
    Meter = LoudnessMeter
    reference = Meter(sample_rate, channels, fold_mono=channels == 1)
    # the loudness of render_check's output (dual mono when it is mono), through the model's filter
    # and the K-weighting, a block at a time, without a filtered copy of the song
    meters = []
    for name in checks:
        sos = check_sections(name, sample_rate)
        meters.append(Meter(sample_rate, channels, sos=sos if len(sos) else None,
                            fold_mono=name in ("mono", "phone") or channels == 1))
    spectrum = LongTermSpectrum(channels, sample_rate, source.frames)
    # the filter and meter kernels release the GIL: the meters take each block side by side
    feed(source, [spectrum, reference, *meters], block, threads=os.cpu_count() or 1)
    ref_lufs = reference.integrated_lufs()
    if not math.isfinite(ref_lufs):
        raise AudioError("master is silent (below the -70 LUFS gate); nothing to check")
    f, auto, cross = spectrum.result()
    ref_bands = _band_sums(f, auto.mean(axis=0))
    floor = ref_bands.sum() * 10.0 ** (_EMPTY_BAND_DB / 10.0)
    out = []
    for name, meter in zip(checks, meters):
        lufs = meter.integrated_lufs()
        bands = _band_sums(f, _check_power(name, f, auto, cross, sample_rate))
        change: dict[str, float | None] = {}
        for (band, _, _), e_ref, e in zip(BANDS, ref_bands, bands):
            change[band] = None if e_ref <= floor else float(10.0 * np.log10(max(e, 1e-30) / e_ref))
        warnings = []
        if name == "mono":
            for band in ("sub", "bass", "low_mids"):
                loss = change[band]
                if loss is not None and loss < -MONO_LOSS_WARN_DB:
                    warnings.append(f"{band} loses {-loss:.1f} dB in mono: wide or out-of-phase content cancels")
        out.append(TranslationCheck(
            name=name, description=_DESCRIPTIONS[name], channels=1 if name in ("mono", "phone") else channels,
            loudness_lufs=_finite_or_none(lufs),
            loudness_change_lu=_finite_or_none(lufs - ref_lufs),
            band_change_db=change, warnings=warnings))
    return out
