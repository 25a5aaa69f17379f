"""Reference matching: steer the bus master's tone, loudness and width toward a reference track.

``measure_reference`` reads a finished track once into a ``ReferenceProfile``:
its long-term tonal curve, its integrated loudness and its side-to-mid energy.
``match_settings`` then moves a ``MasterSettings`` toward it with the bus's own
controls only, so the result is an ordinary, editable set of master settings
(nothing is rendered here):

* tone: the ``ToneEQ`` gains (low shelf, high shelf, low-mid bell, tilt) are
  fitted by bounded least squares so the mix's curve, as the bus would see it,
  lands on the reference's. The model is the EQ itself: the cascade's actual
  biquad response (``freqz_sos`` of ``ToneEQ.sections`` for the trial gains),
  ``|H|**2`` averaged over each 1/3-octave band, added to the mix's band levels
  and put through the same smoothing and normalisation as the measured curves
  (within 0.1 dB of filtering and measuring, tested); the residual is the very
  figure ``spectral_distance_db`` reports, plus a small ridge on the gains
  (``_RIDGE``) so the tilt and the shelves, which overlap, do not fight with
  large opposite gains. ``scipy.optimize.least_squares`` (trust region, box
  bounds) keeps every gain within +-``max_eq_db``. Smooth by construction:
  there are only two shelves (slope S=1), a first-order tilt and one bell held
  broad (Q <= 1), so no narrow boost or notch can come out of the fit.
* loudness: the bus target becomes the reference's integrated loudness
  (clamped to -40..-6 LUFS); the ceiling is kept and the profile cleared.
* width: ``StereoWidth.width`` scales the side, so it moves the side/mid ratio
  by exactly ``20 log10(width)`` dB; it is set to close the gap to the
  reference, bounded to 0.7..1.3.

How this differs from Matchering (sergree/matchering), which the bench
compares against: Matchering takes the mid and side of the loudest pieces of
both tracks, divides their average magnitude spectra, smooths the ratio on a
log axis and applies it as a linear-phase FIR to mid and side separately (so
width follows from the side FIR), then matches RMS and limits. It copies the
reference's spectrum as closely as the smoothing allows, with no bound on
the correction. Here the correction is four broad, bounded, minimum-phase
controls an engineer can read and change in the project file (a few dB of
shelf, a broad bell, a tilt), so the mix keeps its own character and a
reference with a different arrangement cannot impose narrow peaks or deep
notches on it; the remaining distance is the honest cost of that bound.

Curves: ``TONAL_BANDS_HZ`` are the 28 base-ten 1/3-octave centres from 31.5 Hz
to 16 kHz (``1000 * 10**(n/10)``, n = -15..12; nominal 31.5, 40, 50, ... 16k).
A band's level is the long-term power (Welch, Hann frames of 32768 samples,
channel mean: ``checks.translation.long_term_spectra``) summed between
``centre * 10**(+-1/20)``; the levels are smoothed in dB with a 1-2-1 kernel
over neighbouring bands (so one band's peak, e.g. a bass note, counts as the
broad tendency it contributes to) and shifted so their power mean over the
100 Hz-10 kHz bands is 0 dB (the normalisation of the report's tonal-balance
plot), so tracks at different loudness compare by shape. Bands whose upper
edge lies above 0.45 x the sample rate are NaN and left out of distances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import optimize, signal

from stemmaster.checks.translation import long_term_spectra
from stemmaster.dsp.eq import ToneEQ
from stemmaster.errors import AudioError, SettingsError
from stemmaster.master import MasterSettings, bus_linear
from stemmaster.meters.loudness import gated_loudness_lufs
from stemmaster.meters.stereo import side_to_mid_db

TONAL_BANDS_HZ: np.ndarray = 1000.0 * 10.0 ** (np.arange(-15, 13) / 10.0)  # 31.6 Hz .. 15.85 kHz
NOMINAL_BANDS_HZ: tuple[float, ...] = (
    31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800,
    1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000)
_HALF_BAND = 10.0 ** (1.0 / 20.0)  # band edges at centre / and * this (1/3 octave, base ten)
_NORM_BANDS = (TONAL_BANDS_HZ >= 99.0) & (TONAL_BANDS_HZ <= 10100.0)  # 100 Hz .. 10 kHz
_DISTANCE_BANDS = TONAL_BANDS_HZ >= 39.0  # 40 Hz .. 16 kHz
_N_FFT = 32768
_FLOOR_DB = -150.0
_POINTS_PER_BAND = 9  # EQ response samples per band for its band-power average

MIN_DURATION_S = 3.0  # one EBU short-term window; >= 7 Welch frames of 32768 at 44.1 kHz
MIN_WIDTH, MAX_WIDTH = 0.7, 1.3
MIN_TARGET_LUFS, MAX_TARGET_LUFS = -40.0, -6.0  # BusSettings allows -3; a match never goes above -6
MAX_MATCH_Q = 1.0  # the low-mid bell is kept broad (Q <= 1: about 1.4 octaves or wider)
_RIDGE = 0.05  # dB**2 of cost per dB**2 of gain: breaks ties between tilt and the shelves


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """What matching needs of a reference track.

    ``curve_db``: the smoothed, normalised 1/3-octave curve on ``TONAL_BANDS_HZ``
    (dB re its 100 Hz-10 kHz power mean; NaN above 0.45 x the rate).
    ``integrated_lufs``: BS.1770-4 gated loudness (the meter the bus master steers on).
    ``side_to_mid_db``: side over mid energy, dB (``-inf`` for mono).
    """

    name: str
    curve_db: np.ndarray
    integrated_lufs: float
    side_to_mid_db: float
    sample_rate: int
    duration_s: float

    @property
    def bands_hz(self) -> np.ndarray:
        return TONAL_BANDS_HZ

    def to_dict(self) -> dict[str, Any]:
        """Plain values (a project file or a report can hold them)."""
        return {
            "name": self.name,
            "bands_hz": list(NOMINAL_BANDS_HZ),
            "curve_db": [None if not math.isfinite(v) else round(float(v), 3) for v in self.curve_db],
            "integrated_lufs": round(self.integrated_lufs, 3),
            "side_to_mid_db": self.side_to_mid_db if not math.isfinite(self.side_to_mid_db)
            else round(self.side_to_mid_db, 3),
            "sample_rate": self.sample_rate,
            "duration_s": round(self.duration_s, 3),
        }


# ---------------------------------------------------------------- curves


def _checked(audio: np.ndarray, sample_rate: int, what: str) -> np.ndarray:
    """``audio`` as float64 ``(channels, samples)``, refused with one line when unusable."""
    arr = np.asarray(audio)
    if arr.ndim != 2 or arr.shape[0] not in (1, 2):
        raise AudioError(f"the {what} must be mono or stereo shaped (channels, samples), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise AudioError(f"the {what} must be float audio, got {arr.dtype}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 8000:
        raise AudioError(f"the {what}'s sample rate must be a whole number of Hz >= 8000, got {sample_rate!r}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise AudioError(f"the {what} contains NaN or infinite samples")
    duration = arr.shape[1] / sample_rate
    if duration < MIN_DURATION_S:
        raise AudioError(f"the {what} is too short ({duration:.2f} s): matching needs at least "
                         f"{MIN_DURATION_S:.0f} s for a long-term tonal balance")
    return arr


def _band_power(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Long-term power per 1/3-octave band of the mid ``(L + R) / 2`` and the side ``(L - R) / 2``
    (linear, mean square), shape ``(bands,)`` each; their sum is the channel mean's power
    (``(|L|**2 + |R|**2) / 2 = |M|**2 + |S|**2``). Mono: all mid."""
    f, auto, cross = long_term_spectra(audio, sample_rate, n_fft=_N_FFT)
    if cross is None:
        mid, side = auto.mean(axis=0), np.zeros(auto.shape[1])
    else:
        mid = 0.25 * (auto[0] + auto[1] + 2.0 * cross)
        side = np.maximum(0.25 * (auto[0] + auto[1] - 2.0 * cross), 0.0)
    lo = np.searchsorted(f, TONAL_BANDS_HZ / _HALF_BAND)
    hi = np.maximum(np.searchsorted(f, TONAL_BANDS_HZ * _HALF_BAND), lo + 1)  # at least one bin
    hi = np.minimum(hi, f.shape[0])
    lo = np.minimum(lo, hi - 1)

    def sums(power: np.ndarray) -> np.ndarray:
        cumulative = np.concatenate([[0.0], np.cumsum(power)])
        return np.maximum(cumulative[hi] - cumulative[lo], 0.0)

    return sums(mid), sums(side)


def _levels(mid: np.ndarray, side: np.ndarray, width: float, sample_rate: int) -> np.ndarray:
    """Band levels in dB of the channel mean with the side scaled by ``width``; NaN above 0.45 x rate."""
    with np.errstate(divide="ignore"):
        level = np.maximum(10.0 * np.log10(mid + width * width * side), _FLOOR_DB)
    level[TONAL_BANDS_HZ * _HALF_BAND > 0.45 * sample_rate] = np.nan
    return level


def _band_levels(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Unsmoothed, unnormalised power per 1/3-octave band (channel mean), dB; NaN above 0.45 x rate."""
    return _levels(*_band_power(audio, sample_rate), 1.0, sample_rate)


def _curve_from_levels(level_db: np.ndarray) -> np.ndarray:
    """1-2-1 smoothing in dB over neighbouring bands (edges repeated), then 0 dB = 100 Hz-10 kHz power mean."""
    out = np.full(level_db.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(level_db))
    if valid.size == 0:
        return out
    n = valid[-1] + 1  # NaN bands only ever sit at the top (above 0.45 x rate)
    padded = np.concatenate([level_db[:1], level_db[:n], level_db[n - 1:n]])
    smooth = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    norm = _NORM_BANDS[:n]
    mean = 10.0 * np.log10(np.mean(10.0 ** (smooth[norm] / 10.0)))
    out[:n] = smooth - mean
    return out


def tonal_curve(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The smoothed, normalised 1/3-octave curve of ``audio`` on ``TONAL_BANDS_HZ`` (dB, NaN above 0.45 x rate)."""
    return _curve_from_levels(_band_levels(_checked(audio, sample_rate, "audio"), sample_rate))


def spectral_distance_db(a_curve, b_curve) -> float:
    """RMS difference in dB of two normalised curves (``tonal_curve``) over the 40 Hz-16 kHz bands.

    A ``ReferenceProfile`` may stand for its curve. Bands that are NaN in
    either curve (above 0.45 x a rate) are left out. Raises ValueError for
    curves not on ``TONAL_BANDS_HZ`` or with no band in common.
    """
    a = np.asarray(getattr(a_curve, "curve_db", a_curve), dtype=np.float64)
    b = np.asarray(getattr(b_curve, "curve_db", b_curve), dtype=np.float64)
    if a.shape != TONAL_BANDS_HZ.shape or b.shape != TONAL_BANDS_HZ.shape:
        raise ValueError(f"curves must have {TONAL_BANDS_HZ.size} bands (TONAL_BANDS_HZ), got {a.shape} and {b.shape}")
    both = _DISTANCE_BANDS & np.isfinite(a) & np.isfinite(b)
    if not both.any():
        raise ValueError("the curves have no finite band in common between 40 Hz and 16 kHz")
    return float(np.sqrt(np.mean((a[both] - b[both]) ** 2)))


# ---------------------------------------------------------------- the reference


def measure_reference(audio: np.ndarray, sample_rate: int, *, name: str = "reference") -> ReferenceProfile:
    """Measure a reference track (``(channels, samples)`` float, mono or stereo) once.

    Raises AudioError (one line) for a reference that is silent (nothing above
    the -70 LUFS gate), shorter than ``MIN_DURATION_S``, not float, or not finite.
    """
    x = _checked(audio, sample_rate, "reference")
    lufs = gated_loudness_lufs(x, int(sample_rate))
    if not math.isfinite(lufs):
        raise AudioError("the reference is silent (nothing above the -70 LUFS gate): there is nothing to match")
    return ReferenceProfile(
        name=str(name), curve_db=_curve_from_levels(_band_levels(x, int(sample_rate))),
        integrated_lufs=float(lufs), side_to_mid_db=side_to_mid_db(x), sample_rate=int(sample_rate),
        duration_s=x.shape[1] / sample_rate)


# ---------------------------------------------------------------- the fit


def _band_grid(sample_rate: int) -> np.ndarray:
    """``_POINTS_PER_BAND`` log-spaced frequencies inside each band, shape ``(bands, points)``, below Nyquist."""
    u = (np.arange(_POINTS_PER_BAND) + 0.5) / _POINTS_PER_BAND * 2.0 - 1.0  # -1..1, band-centred
    grid = TONAL_BANDS_HZ[:, None] * _HALF_BAND ** u[None, :]
    return np.minimum(grid, 0.499 * sample_rate)


def _freqz(sos: np.ndarray, freqs_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    fn = getattr(signal, "freqz_sos", None) or signal.sosfreqz
    _, h = fn(sos, worN=freqs_hz, fs=sample_rate)
    return h


def eq_band_response_db(eq: ToneEQ, sample_rate: int) -> np.ndarray:
    """What ``eq`` does to each 1/3-octave band's power, dB, shape ``(bands,)``: its ``|H|**2``
    (the sections' actual response) averaged over the band."""
    sos = eq.sections(sample_rate)
    if len(sos) == 0:
        return np.zeros(TONAL_BANDS_HZ.shape)
    grid = _band_grid(sample_rate)
    h = _freqz(sos, grid.ravel(), sample_rate).reshape(grid.shape)
    return 10.0 * np.log10(np.mean(np.abs(h) ** 2, axis=1))


_GAINS = ("low_shelf_db", "high_shelf_db", "low_mid_db", "tilt_db")


def _fit_eq(base: ToneEQ, mix_levels: np.ndarray, reference_curve: np.ndarray, sample_rate: int,
            max_eq_db: float) -> ToneEQ:
    """The ToneEQ (``base``'s corner frequencies, its bell's Q capped at ``MAX_MATCH_Q``) whose
    four gains, each within +-``max_eq_db``, minimise the distance of the EQ'd mix curve to the reference's."""
    shape = replace(base, **{g: 0.0 for g in _GAINS}, low_mid_q=min(base.low_mid_q, MAX_MATCH_Q))
    used = _DISTANCE_BANDS & np.isfinite(mix_levels) & np.isfinite(reference_curve)
    if not used.any():
        return shape

    def make(g: np.ndarray) -> ToneEQ:
        return replace(shape, **{name: float(v) for name, v in zip(_GAINS, g)})

    def residual(g: np.ndarray) -> np.ndarray:
        curve = _curve_from_levels(mix_levels + eq_band_response_db(make(g), sample_rate))
        diff = curve[used] - reference_curve[used]
        # divided by sqrt(n): the sum of squares is the distance squared (the ridge is per band-set)
        return np.concatenate([diff / math.sqrt(used.sum()), math.sqrt(_RIDGE / len(_GAINS)) * g / max_eq_db])

    fit = optimize.least_squares(residual, np.zeros(len(_GAINS)), bounds=(-max_eq_db, max_eq_db),
                                 diff_step=1e-3, xtol=1e-6, ftol=1e-8)
    gains = np.clip(np.round(fit.x, 2), -max_eq_db, max_eq_db)  # two decimals: what a project file shows
    gains[np.abs(gains) < 0.05] = 0.0
    return make(gains)


def match_settings(settings: MasterSettings, mix: np.ndarray, sample_rate: int, reference: ReferenceProfile, *,
                   max_eq_db: float = 3.0) -> tuple[MasterSettings, dict[str, Any]]:
    """``settings`` steered toward ``reference`` for ``mix`` (``(channels, samples)`` float), and a report.

    The mix is measured as the bus's EQ sees it: through ``bus_linear`` (the
    staging gain, which normalisation cancels, and low-end mono, which
    removes side energy below its corner, i.e. changes the low bands' channel
    power) with the EQ flat, so the fitted EQ is the whole EQ (not a change on
    top of the current one) and every gain stays within +-``max_eq_db``. The
    compressor and limiter are left out (level dependent, and a full master
    per trial would be needed); they move the long-term curve by a fraction of
    a dB at ordinary drive.

    Returns ``(new_settings, report)``; report keys: ``reference``,
    ``spectral_distance_before_db`` (the mix through the bus's linear part
    with the current settings) and ``spectral_distance_after_db`` (with the new
    ones), ``tone_eq`` (each gain, dB, and the corners), ``max_eq_db``,
    ``reference_lufs``, ``target_lufs``, ``target_clamped``, ``ceiling_dbtp``,
    ``width``, ``width_clamped``, ``side_to_mid_db`` (mix before, reference,
    mix after).
    """
    if not isinstance(settings, MasterSettings):
        raise SettingsError(f"match_settings needs MasterSettings, got {type(settings).__name__}")
    if not isinstance(reference, ReferenceProfile):
        raise SettingsError(f"match_settings needs a ReferenceProfile (measure_reference), got {type(reference).__name__}")
    if isinstance(max_eq_db, bool) or not isinstance(max_eq_db, (int, float)) or not 0.0 < max_eq_db <= 12.0:
        raise SettingsError(f"max_eq_db = {max_eq_db!r} (allowed: more than 0, at most 12 dB)")
    x = _checked(mix, sample_rate, "mix")
    sample_rate = int(sample_rate)
    mix_lufs = gated_loudness_lufs(x, sample_rate)
    if not math.isfinite(mix_lufs):
        raise AudioError("the mix is silent (nothing above the -70 LUFS gate): there is nothing to match")
    staging_db = settings.bus.staging_lufs - mix_lufs

    def through_bus(s: MasterSettings) -> np.ndarray:
        return bus_linear(x, sample_rate, s, staging_db)

    # one pass through the bus with the EQ flat and the width at 1: the width and the EQ are
    # both fitted from it (width scales the side's power by width**2 in every band; the EQ
    # multiplies both channels' power by |H|**2), then one pass with the new settings checks them
    flat = replace(settings, tone_eq=replace(settings.tone_eq, **{g: 0.0 for g in _GAINS}),
                   stereo_width=replace(settings.stereo_width, width=1.0))
    y = through_bus(flat)
    mid, side = _band_power(y, sample_rate)
    if flat == settings:
        before_levels = _levels(mid, side, 1.0, sample_rate)
    else:
        before_levels = _band_levels(through_bus(settings), sample_rate)
    before = spectral_distance_db(_curve_from_levels(before_levels), reference)

    mix_sm = side_to_mid_db(y) if y.shape[0] == 2 else float("-inf")
    width, width_clamped = _width_for(mix_sm, reference.side_to_mid_db, settings.stereo_width.width)
    eq = _fit_eq(settings.tone_eq, _levels(mid, side, width, sample_rate),
                 np.asarray(reference.curve_db, dtype=np.float64), sample_rate, float(max_eq_db))

    target = float(min(MAX_TARGET_LUFS, max(MIN_TARGET_LUFS, reference.integrated_lufs)))
    new = replace(settings, tone_eq=eq, stereo_width=replace(settings.stereo_width, width=width)).with_bus(profile=None, target_lufs=round(target, 2))
    out = through_bus(new)
    after = spectral_distance_db(_curve_from_levels(_band_levels(out, sample_rate)), reference)
    report = {
        "reference": reference.name,
        "spectral_distance_before_db": round(before, 3),
        "spectral_distance_after_db": round(after, 3),
        "tone_eq": {"low_shelf_db": eq.low_shelf_db, "low_shelf_hz": eq.low_shelf_hz,
                    "high_shelf_db": eq.high_shelf_db, "high_shelf_hz": eq.high_shelf_hz,
                    "low_mid_db": eq.low_mid_db, "low_mid_hz": eq.low_mid_hz, "low_mid_q": eq.low_mid_q,
                    "tilt_db": eq.tilt_db, "tilt_pivot_hz": eq.tilt_pivot_hz},
        "max_eq_db": float(max_eq_db),
        "reference_lufs": round(reference.integrated_lufs, 2),
        "target_lufs": new.bus.target_lufs,
        "target_clamped": target != reference.integrated_lufs,
        "ceiling_dbtp": new.bus.ceiling_dbtp,
        "width": width,
        "width_clamped": width_clamped,
        "side_to_mid_db": {"mix_before": _db(mix_sm), "reference": _db(reference.side_to_mid_db),
                           "mix_after": _db(side_to_mid_db(out) if out.shape[0] == 2 else float("-inf"))},
    }
    return new, report


def _width_for(mix_sm: float, reference_sm: float, current: float) -> tuple[float, bool]:
    """The width (MIN_WIDTH..MAX_WIDTH) that moves the mix's side/mid to the reference's; whether it was clamped."""
    if math.isinf(mix_sm):  # a mono mix (no side to scale) or one with no mid: width cannot help
        return float(min(MAX_WIDTH, max(MIN_WIDTH, current))), False
    if math.isinf(reference_sm):  # a mono reference (-inf) or one with no mid (+inf): as far as allowed
        return (MIN_WIDTH if reference_sm < 0 else MAX_WIDTH), True
    wanted = 10.0 ** ((reference_sm - mix_sm) / 20.0)
    width = float(round(min(MAX_WIDTH, max(MIN_WIDTH, wanted)), 3))
    return width, not (MIN_WIDTH <= wanted <= MAX_WIDTH)


def _db(v: float) -> float:
    return v if not math.isfinite(v) else round(float(v), 2)
