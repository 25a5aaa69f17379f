"""The bus master: gain staging, tonal EQ, glue compression, true-peak limiting
and loudness to a release target.

Audio in and out is shaped ``(channels, samples)``. The chain is

    mix -> staging gain (mix to ``staging_lufs``) -> LowEndMono -> ToneEQ -> StereoWidth
        -> GlueCompressor -> drive gain -> TruePeakLimiter(ceiling_dbtp)

Everything before the compressor is linear and time-invariant (``bus_linear``);
everything after it is one gain curve, the same for both channels
(``MasterResult.bus_gain``: compressor gain x drive x limiter gain). A stem
sent through ``bus_linear`` and multiplied by that curve is that stem's share
of the master exactly (the stems' shares sum to the master), which is how
stem masters and versions keep the main master's bus state.

The staging gain makes the compressor's threshold mean the same thing on every
mix (like setting the input level of an analogue bus chain); the drive gain is
searched so the limited output's integrated loudness lands within
``tolerance_lu`` of ``target_lufs``. Only the drive changes between iterations,
so the EQ and compressor run once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable

import numpy as np

from stemmaster.dsp.compressor import GlueCompressor
from stemmaster.dsp.eq import ToneEQ
from stemmaster.dsp.limiter import TruePeakLimiter, detector_envelope
from stemmaster.dsp.low_end_mono import LowEndMono
from stemmaster.dsp.width import StereoWidth
from stemmaster.dsp.processor import check_range, gain_to_db
from stemmaster.errors import AudioError, Cancelled, SettingsError, StemmasterError
from stemmaster.meters.loudness import gated_loudness_lufs, gated_loudness_of_energy, k_weighted_energy
from stemmaster.profiles import DEFAULT_PROFILE, get_profile

Progress = Callable[[float, str], None]
CancelCheck = Callable[[], bool]

MAX_ITERATIONS = 12
MAX_DRIVE_DB = 36.0


@dataclass(frozen=True)
class BusSettings:
    """Loudness and ceiling of the master; ``profile`` fills the two when set."""

    profile: str | None = DEFAULT_PROFILE
    target_lufs: float = -14.0
    ceiling_dbtp: float = -1.0
    staging_lufs: float = -18.0
    tolerance_lu: float = 0.1

    def __post_init__(self) -> None:
        if self.profile is not None:
            get_profile(self.profile)
        check_range("bus", "target_lufs", self.target_lufs, -40.0, -3.0)
        check_range("bus", "ceiling_dbtp", self.ceiling_dbtp, -20.0, 0.0)
        check_range("bus", "staging_lufs", self.staging_lufs, -40.0, -6.0)
        check_range("bus", "tolerance_lu", self.tolerance_lu, 0.01, 1.0)


@dataclass(frozen=True)
class ExportSettings:
    """What the render writes: bit depths of the WAV masters and the output rate."""

    bit_depths: tuple[int, ...] = (24, 16)
    sample_rate: int | None = None  # None keeps the project rate
    dither: str = "tpdf"
    dither_seed: int = 0

    def __post_init__(self) -> None:
        depths = tuple(int(b) for b in self.bit_depths)
        if not depths or any(b not in (16, 24) for b in depths):
            raise SettingsError(f"export.bit_depths = {list(self.bit_depths)} (allowed: 16, 24)")
        object.__setattr__(self, "bit_depths", depths)
        if self.sample_rate is not None and self.sample_rate not in (44100, 48000, 88200, 96000):
            raise SettingsError(f"export.sample_rate = {self.sample_rate} (allowed 44100, 48000, 88200, 96000)")
        if self.dither not in ("tpdf", "none"):
            raise SettingsError(f"export.dither = {self.dither!r} (allowed: tpdf, none)")


def default_compressor() -> GlueCompressor:
    # Gentle bus glue: low ratio, slow attack that lets transients through,
    # programme-like release. With the mix staged to -18 LUFS it works on the
    # loud passages by 1-3 dB and leaves the quiet ones alone.
    return GlueCompressor(threshold_db=-16.0, ratio=1.5, attack_ms=30.0, release_ms=250.0, knee_db=6.0, makeup_db=0.0)


@dataclass(frozen=True)
class MasterSettings:
    """Every setting of the bus master, as recorded in the project and a render."""

    bus: BusSettings = field(default_factory=BusSettings)
    low_end_mono_enabled: bool = True
    low_end_mono: LowEndMono = field(default_factory=LowEndMono)
    tone_eq: ToneEQ = field(default_factory=ToneEQ)
    stereo_width: StereoWidth = field(default_factory=StereoWidth)  # 1.0: untouched (reference matching steers it)
    compressor_enabled: bool = True
    glue_compressor: GlueCompressor = field(default_factory=default_compressor)
    true_peak_limiter: TruePeakLimiter = field(default_factory=TruePeakLimiter)
    export: ExportSettings = field(default_factory=ExportSettings)

    # -- the project file -------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Settings as nested plain dicts (TOML-ready: no None values)."""
        out: dict[str, dict[str, Any]] = {
            "bus": {k: v for k, v in asdict(self.bus).items() if v is not None},
            "low_end_mono": {"enabled": self.low_end_mono_enabled, **self.low_end_mono.settings()},
            "tone_eq": self.tone_eq.settings(),
            "stereo_width": self.stereo_width.settings(),
            "glue_compressor": {"enabled": self.compressor_enabled, **self.glue_compressor.settings()},
            "true_peak_limiter": {k: v for k, v in self.true_peak_limiter.settings().items() if k != "ceiling_dbtp"},
            "export": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.export).items() if v is not None},
        }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]]) -> "MasterSettings":
        """Build from (possibly partial) nested dicts; unknown sections or keys raise SettingsError."""
        known = {"bus", "low_end_mono", "tone_eq", "stereo_width", "glue_compressor", "true_peak_limiter", "export"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"unknown master section(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        base = cls()
        bus_data = dict(data.get("bus", {}))
        if bus_data and "profile" not in bus_data:
            bus_data["profile"] = None  # to_dict() leaves out a custom (None) profile: it is not the default's
        bus = _merge(BusSettings, base.bus, bus_data, "bus")
        eq = _merge(ToneEQ, base.tone_eq, data.get("tone_eq", {}), "tone_eq")
        width = _merge(StereoWidth, base.stereo_width, data.get("stereo_width", {}), "stereo_width")
        mono_data = dict(data.get("low_end_mono", {}))
        mono_enabled = _enabled(mono_data, base.low_end_mono_enabled, "low_end_mono")
        mono = _merge(LowEndMono, base.low_end_mono, mono_data, "low_end_mono")
        comp_data = dict(data.get("glue_compressor", {}))
        enabled = _enabled(comp_data, base.compressor_enabled, "glue_compressor")
        comp = _merge(GlueCompressor, base.glue_compressor, comp_data, "glue_compressor")
        lim_data = dict(data.get("true_peak_limiter", {}))
        if "ceiling_dbtp" in lim_data:
            raise SettingsError("true_peak_limiter.ceiling_dbtp is set by bus.ceiling_dbtp")
        lim = _merge(TruePeakLimiter, base.true_peak_limiter, lim_data, "true_peak_limiter")
        exp_data = dict(data.get("export", {}))
        if "bit_depths" in exp_data:
            exp_data["bit_depths"] = tuple(exp_data["bit_depths"])
        export = _merge(ExportSettings, base.export, exp_data, "export")
        return cls(bus=bus, low_end_mono_enabled=mono_enabled, low_end_mono=mono,
                   tone_eq=eq, stereo_width=width, compressor_enabled=enabled, glue_compressor=comp,
                   true_peak_limiter=replace(lim, ceiling_dbtp=bus.ceiling_dbtp), export=export)

    def with_profile(self, name: str) -> "MasterSettings":
        """These settings with the target and ceiling of profile ``name``."""
        p = get_profile(name)
        return self.with_bus(profile=p.name, target_lufs=p.target_lufs, ceiling_dbtp=p.ceiling_dbtp)

    def with_bus(self, **changes: Any) -> "MasterSettings":
        bus = replace(self.bus, **changes)
        return replace(self, bus=bus, true_peak_limiter=replace(self.true_peak_limiter, ceiling_dbtp=bus.ceiling_dbtp))


def _enabled(values: dict[str, Any], default: bool, section: str) -> bool:
    """Pop ``enabled`` from a section's values, checking it is a bool."""
    enabled = values.pop("enabled", default)
    if not isinstance(enabled, bool):
        raise SettingsError(f"{section}.enabled = {enabled!r} (allowed: true, false)")
    return enabled


def _merge(cls, base, values: dict[str, Any], section: str):
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise SettingsError(f"{section}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    return replace(base, **values)


@dataclass
class MasterResult:
    """The mastered audio ``(channels, samples)`` float64 and what was done to reach it.

    ``integrated_lufs`` is the search's own reading (our gated BS.1770-4 meter);
    ``true_peak_dbtp`` is the limiter's 8x detector reading of the output (or
    a bound of it, exact near the ceiling), which is never below the 4x
    BS.1770 meter's (whose points it contains).
    The render report measures the written master again, as quantised.
    """

    audio: np.ndarray
    sample_rate: int
    staging_gain_db: float
    drive_gain_db: float
    integrated_lufs: float
    true_peak_dbtp: float
    limiter_max_reduction_db: float
    compressor_max_reduction_db: float
    iterations: int
    log: list[str]
    bus_gain: np.ndarray | None = None  # (samples,): compressor x drive x limiter, linear


def bus_linear(audio: np.ndarray, sample_rate: int, settings: "MasterSettings", staging_db: float) -> np.ndarray:
    """The bus's linear, time-invariant part: staging gain, low-end mono, tonal EQ, width.

    For ``audio`` ``(channels, samples)`` float (a mix, a stem or a version's
    stem sum) returns float64. Linear: the sum of the stems' outputs is the
    mix's. ``MasterResult.bus_gain`` times this is the master (or a stem's share of it).
    """
    x = np.empty(np.shape(audio))  # C-contiguous float64, whatever the input's layout
    np.multiply(audio, 10.0 ** (staging_db / 20.0), out=x, dtype=np.float64)  # worked in float64
    # x is this function's own array: each stage works on it in place (one whole-song
    # float64 array, not one per stage)
    if settings.low_end_mono_enabled:
        settings.low_end_mono.apply_in_place(x, sample_rate)
    settings.tone_eq.apply_in_place(x, sample_rate)
    settings.stereo_width.apply_in_place(x, sample_rate)
    return x


def master_bus(mix: np.ndarray, sample_rate: int, settings: MasterSettings, *,
               progress: Progress | None = None, cancel: CancelCheck | None = None) -> MasterResult:
    """Master ``mix`` (``(channels, samples)`` float32 or float64; the bus works in float64)
    to the settings' target and ceiling.

    Raises AudioError for silent or too-short input, Cancelled when ``cancel()`` turns true.
    """
    report = progress or (lambda f, m: None)
    is_cancelled = cancel or (lambda: False)
    mix = np.asarray(mix)
    if mix.dtype not in (np.float32, np.float64):
        mix = mix.astype(np.float64)
    if mix.ndim != 2 or mix.shape[1] == 0:
        raise AudioError(f"the mix must be shaped (channels, samples) and not empty, got {mix.shape}")
    if not np.all(np.isfinite(mix)):
        raise AudioError("the mix contains NaN or Inf samples")
    bus = settings.bus
    log: list[str] = []

    mix_lufs = gated_loudness_lufs(mix, sample_rate)
    if not math.isfinite(mix_lufs):
        raise AudioError("the mix is silent (or shorter than 0.4 s): there is nothing to master")
    staging_db = bus.staging_lufs - mix_lufs
    log.append(f"staging gain {staging_db:+.2f} dB (mix {mix_lufs:.2f} LUFS -> {bus.staging_lufs:.1f} LUFS)")
    report(0.03, "low-end mono, tonal EQ, width")
    x = bus_linear(mix, sample_rate, settings, staging_db)
    samples = mix.shape[1]
    del mix  # a caller that let go of it (the render) gets a whole song's memory back
    comp_max_db = 0.0
    comp_gain = None
    if settings.compressor_enabled:
        report(0.15, "glue compressor")
        comp_gain_db = settings.glue_compressor.gain_db(x, sample_rate)
        comp_max_db = float(max(0.0, settings.glue_compressor.makeup_db - comp_gain_db.min()))
        comp_gain = comp_gain_db  # its own array: 10 ** (dB / 20) in place, at a third of the cost of a power
        comp_gain *= math.log(10.0) / 20.0
        np.exp(comp_gain, out=comp_gain)
        x *= comp_gain  # x is this function's own array (the EQ's output)
        log.append(f"glue compressor: up to {comp_max_db:.2f} dB gain reduction")
    if is_cancelled():
        raise Cancelled("mastering cancelled")

    limiter = replace(settings.true_peak_limiter, ceiling_dbtp=bus.ceiling_dbtp)
    # the estimate passes measure K(x) * drive * gain; the detector envelope is linear in the
    # drive: both are measured once for every pass (and dropped after the search)
    signals = {"energy": k_weighted_energy(x, sample_rate), "envelope": detector_envelope(x)}
    pre_lufs = gated_loudness_of_energy(signals["energy"], sample_rate)
    out: dict[str, Any] = {}  # the verified pass's output, gain curve, peak and drive

    def estimate(drive_lin: float) -> float:  # within 0.01 LU of measuring y itself, without K-weighting again
        gain = limiter.estimate_gain(signals["envelope"], sample_rate, scale=drive_lin)
        gain *= drive_lin
        return gated_loudness_of_energy(signals["energy"], sample_rate, gain)

    def verify(drive_lin: float) -> float:
        nonlocal x
        if out:  # a verified pass missed: recover the limiter's input, which its output replaced
            x = out["y"]
            x /= out["gain"]
            x /= out["drive_lin"]
        # the output replaces x, which no pass needs after this one
        y, gain, peak = limiter.limit(x, sample_rate, envelope=signals["envelope"], scale=drive_lin, in_place=True)
        out.update(y=y, gain=gain, peak=peak, drive_lin=drive_lin)
        return gated_loudness_lufs(y, sample_rate)

    drive, lufs, iterations = search_drive(bus, pre_lufs, estimate, verify, log=log, report=report,
                                           is_cancelled=is_cancelled)
    signals.clear()
    report(1.0, "bus master done")
    y, gain, peak, drive_lin = out["y"], out["gain"], out["peak"], out["drive_lin"]
    bus_gain = gain * drive_lin if gain.size else np.full(samples, drive_lin)
    if comp_gain is not None:
        bus_gain *= comp_gain
    return MasterResult(
        audio=y, sample_rate=sample_rate, staging_gain_db=staging_db, drive_gain_db=drive,
        integrated_lufs=lufs, true_peak_dbtp=gain_to_db(peak) if peak > 0 else float("-inf"),
        limiter_max_reduction_db=max(0.0, -gain_to_db(float(gain.min()))) if gain.size else 0.0,
        compressor_max_reduction_db=comp_max_db, iterations=iterations, log=log, bus_gain=bus_gain,
    )


def search_drive(bus: BusSettings, pre_lufs: float, estimate: Callable[[float], float],
                 verify: Callable[[float], float], *, log: list[str], report: Progress,
                 is_cancelled: CancelCheck) -> tuple[float, float, int]:
    """The drive (dB into the limiter) that lands the master within half of ``tolerance_lu`` of
    ``target_lufs``: ``(drive_db, lufs, passes)``.

    ``estimate(drive_lin)`` is the loudness of the limiter's first pass at that drive (cheap);
    ``verify(drive_lin)`` makes the guaranteed output at that drive and measures it. Passes
    steer on estimates (a secant on loudness against drive); once an estimate is on target, the
    same drive is verified, and a verified pass that misses steers again on verified passes.
    Landing within half the tolerance leaves room for the export's dither. Each pass is logged.
    """
    # The search steers on our gated BS.1770-4 meter (EBU Tech 3341/3342
    # conformance files within 0.01 LU), the same meter the render report
    # reads; pyloudnorm reads within 0.02 LU of it (tests/test_meters.py).
    drive = bus.target_lufs - pre_lufs  # first guess: as if the limiter took nothing
    tried: list[tuple[float, float]] = []
    verified = False
    for it in range(1, MAX_ITERATIONS + 1):
        if is_cancelled():
            raise Cancelled("mastering cancelled")
        report(0.25 + 0.7 * min(it, 6) / 6.0, f"limiter and loudness, pass {it}")
        drive_lin = 10.0 ** (drive / 20.0)
        fast = verify(drive_lin) if verified else estimate(drive_lin)
        tried.append((drive, fast))
        log.append(f"pass {it}: drive {drive:+.2f} dB -> {fast:.2f} LUFS{'' if verified else ' (estimate)'}")
        if abs(bus.target_lufs - fast) <= bus.tolerance_lu * 0.5:
            if verified:
                return drive, fast, len(tried)
            verified = True
            continue  # the same drive again, with the ceiling guaranteed
        drive = _next_drive(tried, bus.target_lufs)
        if drive > MAX_DRIVE_DB:
            raise StemmasterError(
                f"cannot reach {bus.target_lufs} LUFS under {bus.ceiling_dbtp} dBTP: it would take more than "
                f"{MAX_DRIVE_DB:.0f} dB of drive into the limiter; choose a lower target")
    raise StemmasterError(
        f"loudness search ended at {tried[-1][1]:.2f} LUFS, not within {bus.tolerance_lu} LU of {bus.target_lufs} LUFS")


def _next_drive(tried: list[tuple[float, float]], target_lufs: float) -> float:
    """Secant step on loudness(drive), which rises monotonically with slope in (0, 1]."""
    d1, l1 = tried[-1]
    err = target_lufs - l1
    slope = 1.0
    if len(tried) >= 2:
        d0, l0 = tried[-2]
        if abs(d1 - d0) > 1e-6:
            slope = (l1 - l0) / (d1 - d0)
    slope = min(1.0, max(0.05, slope))
    step = max(-12.0, min(12.0, err / slope))
    return d1 + step
