"""The bus master of a mix too long to hold whole: the chain of ``master.master_bus``, one
segment at a time.

The mix is an ``AudioSource`` (the render's repaired stems summed as they are
read from disk). Each pass reads it a segment at a time (``SEGMENT_S``) with
context either side (``bus_context``), runs the bus on the extended segment
and keeps the segment's own samples. The context is what the bus's memory
reaches: the zero-phase low-end crossover and the EQ until their slowest pole
has decayed to 1e-7, the glue compressor's and the limiter's recursions for
14 of their longest time constants (``processor.CONTEXT_TIME_CONSTANTS``:
they have then forgotten their start to e^-14 = 8e-7 of it), the limiter's lookahead and the true-peak
detector's reach. So a segment's samples are those of the whole-song bus to
about -120 dB, and the memory is a segment's, whatever the song's length.

Passes (the search is ``master.search_drive``, the same as the whole-song bus):

1. the mix's loudness (the staging gain); its metrics for the report are
   measured on a thread of their own while the other passes run;
2. the limiter's input per segment, its detector envelope and its K-weighted
   energy are written to scratch files (float32);
3. estimates: the limiter's first pass on the envelope, read back a segment
   at a time, and the loudness of ``energy * gain ** 2`` per 100 ms hop;
4. the verified pass: the limiter's input (kept from pass 2 in a scratch file,
   float32) and its envelope read back a segment at a time, limited with the
   guarantee, and written to a float WAV in the scratch folder while its
   loudness and the detector's peak are measured. A verified pass that misses
   steers again.

Audio is ``(channels, samples)``; the scratch folder is the caller's (the
render's temporary folder), and its files are removed when done.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np

from stemmaster.audio_source import AudioSource, BlockWriter, FileSource
from stemmaster.dsp.highpass import edge_pad_length
from stemmaster.dsp.limiter import _REACH, PEAK_GUARD, detector_envelope
from stemmaster.errors import AudioError, Cancelled
from stemmaster.master import (CancelCheck, MasterResult, MasterSettings, Progress, bus_linear, search_drive)
from stemmaster.meters.analysis import Metrics
from stemmaster.meters.loudness import k_weighted_energy, k_weighting_sos
from stemmaster.meters.stream import EnergyHops, LoudnessMeter, MetricsMeter
from stemmaster.dsp.compressor import DETECTOR_MS
from stemmaster.dsp.processor import gain_to_db, time_constant_context_samples

SEGMENT_S = 60.0  # seconds of mix per segment (at least 4x the context)
MASTER_FILE = "master.wav"  # the bus's output in the scratch folder (float)


def bus_context(settings: MasterSettings, sample_rate: int) -> tuple[int, int]:
    """Samples of context ``(before, after)`` a segment needs for the bus to give it the
    whole-song bus's samples (see the module docstring)."""
    sr = int(sample_rate)
    before = after = 0
    if settings.low_end_mono_enabled:  # zero phase: its memory runs both ways
        reach = settings.low_end_mono.context_samples(sr)
        before, after = before + reach, after + reach
    eq = settings.tone_eq.sections(sr)
    if len(eq):
        before += edge_pad_length(eq)
    if settings.compressor_enabled:
        c = settings.glue_compressor
        before += time_constant_context_samples(max(c.attack_ms, c.release_ms, DETECTOR_MS), sr)
    limiter = settings.true_peak_limiter
    look = limiter.lookahead_samples(sr) + PEAK_GUARD + _REACH
    before += time_constant_context_samples(limiter.release_ms, sr) + look + edge_pad_length(k_weighting_sos(sr))
    after += look
    return before, after


def segments(frames: int, sample_rate: int, context: tuple[int, int],
             segment_s: float = SEGMENT_S) -> Iterator[tuple[int, int, int, int]]:
    """``(start, stop, read_from, read_to)`` of consecutive segments covering ``frames``: the
    segment's own samples and the stretch to read with its context (clipped at the ends)."""
    length = max(int(segment_s * sample_rate), 4 * sum(context), 1)
    for start in range(0, frames, length):
        stop = min(frames, start + length)
        yield start, stop, max(0, start - context[0]), min(frames, stop + context[1])


class _Scratch:
    """A float32 signal of ``channels`` values per sample, written in order and read back by
    range (stored sample by sample, so a range is one contiguous read)."""

    def __init__(self, path: Path, channels: int = 1) -> None:
        self.path, self.channels = path, channels
        self._file = open(path, "wb")

    def append(self, values: np.ndarray) -> None:
        """The next samples: ``(n,)`` for one channel, ``(channels, n)`` otherwise."""
        data = values if self.channels == 1 else values.T
        try:
            np.ascontiguousarray(data, dtype=np.float32).tofile(self._file)
        except OSError as exc:
            raise AudioError(f"{self.path}: cannot write the bus's scratch file ({exc.strerror})") from None

    def finish(self) -> None:
        self._file.close()

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)``: float32 ``(n,)``, or float64 ``(channels, n)`` C-contiguous."""
        c = self.channels
        values = np.fromfile(self.path, dtype=np.float32, count=(stop - start) * c, offset=4 * c * start)
        return values if c == 1 else np.ascontiguousarray(values.reshape(-1, c).T, dtype=np.float64)

    def remove(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def master_source(mix: AudioSource, settings: MasterSettings, scratch: Path, *,
                  progress: Progress | None = None, cancel: CancelCheck | None = None,
                  segment_s: float = SEGMENT_S) -> tuple[MasterResult, FileSource, Metrics]:
    """Master ``mix`` segment by segment to the settings' target and ceiling.

    Returns the bus's record (``audio`` empty and ``bus_gain`` None: the
    master is not held), the master as a float WAV in ``scratch``
    (``scratch/master.wav``, the caller's to keep or remove) and the mix's
    metrics. Raises AudioError for a silent, too short or non-finite mix and
    Cancelled when ``cancel()`` turns true.
    """
    report = progress or (lambda f, m: None)
    is_cancelled = cancel or (lambda: False)
    sr, channels = mix.sample_rate, mix.channels
    if mix.frames == 0:
        raise AudioError("the mix is empty: there is nothing to master")
    log: list[str] = []
    # the mix's metrics for the report, measured on a thread of their own beside the passes
    stop = threading.Event()

    def measure_mix() -> Metrics:
        meter = MetricsMeter(sr, channels)
        for _start, block in mix.blocks():
            if stop.is_set():
                raise Cancelled("mastering stopped")
            meter.add(block)
        return meter.metrics()

    side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mix-metrics")
    try:
        mix_job = side.submit(measure_mix)
        result = _master(mix, settings, scratch, log, report, is_cancelled, segment_s)
        return result, FileSource(scratch / MASTER_FILE), mix_job.result()
    finally:
        stop.set()
        side.shutdown(wait=True)


def _master(mix: AudioSource, settings: MasterSettings, scratch: Path, log: list[str], report: Progress,
            is_cancelled: CancelCheck, segment_s: float) -> MasterResult:
    """``master_source``'s passes 1 to 4 (see the module docstring)."""

    def check() -> None:
        if is_cancelled():
            raise Cancelled("mastering cancelled")

    sr, channels, n = mix.sample_rate, mix.channels, mix.frames
    bus = settings.bus
    context = bus_context(settings, sr)
    parts = list(segments(n, sr, context, segment_s))
    # 1. the mix's loudness: the staging gain
    meter = LoudnessMeter(sr, channels)
    for start, block in mix.blocks():
        check()
        if not np.isfinite(block).all():
            raise AudioError(f"the mix contains NaN or Inf samples (from {start / sr:.2f} s)")
        meter.add(block)
    mix_lufs = meter.integrated_lufs()
    if not math.isfinite(mix_lufs):
        raise AudioError("the mix is silent (or shorter than 0.4 s): there is nothing to master")
    staging_db = bus.staging_lufs - mix_lufs
    log.append(f"staging gain {staging_db:+.2f} dB (mix {mix_lufs:.2f} LUFS -> {bus.staging_lufs:.1f} LUFS)")
    limiter = replace(settings.true_peak_limiter, ceiling_dbtp=bus.ceiling_dbtp)

    def limiter_input(a: int, b: int, core: slice) -> tuple[np.ndarray, float]:
        """The limiter's input over ``[a, b)`` (float64, the compressor applied) and the
        compressor's largest reduction over the ``core`` of it, dB."""
        x = bus_linear(mix.read(a, b), sr, settings, staging_db)
        if not settings.compressor_enabled:
            return x, 0.0
        gain_db = settings.glue_compressor.gain_db(x, sr)
        reduction = float(max(0.0, settings.glue_compressor.makeup_db - gain_db[core].min()))
        gain_db *= math.log(10.0) / 20.0
        np.exp(gain_db, out=gain_db)
        x *= gain_db
        return x, reduction

    # 2. the envelope and the K-weighted energy of the limiter's input
    report(0.03, "low-end mono, tonal EQ, width, glue compressor")
    envelope = _Scratch(scratch / "envelope.f32")
    energy = _Scratch(scratch / "energy.f32")
    inputs = _Scratch(scratch / "limiter-input.f32", channels)
    written: list[Path] = []
    try:
        comp_max_db = 0.0
        pre = EnergyHops(sr)
        for i, (start, stop, a, b) in enumerate(parts):
            check()
            core = slice(start - a, stop - a)
            x, reduction = limiter_input(a, b, core)
            comp_max_db = max(comp_max_db, reduction)
            inputs.append(x[:, core])
            envelope.append(detector_envelope(x)[core])
            e = k_weighted_energy(x, sr)[core]
            energy.append(e)
            pre.add_energy(e)
            report(0.03 + 0.2 * (i + 1) / len(parts), "low-end mono, tonal EQ, width, glue compressor")
        envelope.finish()
        energy.finish()
        inputs.finish()
        if settings.compressor_enabled:
            log.append(f"glue compressor: up to {comp_max_db:.2f} dB gain reduction")

        def estimate(drive_lin: float) -> float:
            hops = EnergyHops(sr)
            for start, stop, a, b in parts:
                check()
                gain = limiter.estimate_gain(envelope.read(a, b), sr, scale=drive_lin)[start - a:stop - a]
                gain *= drive_lin
                hops.add_energy(energy.read(start, stop), gain)
            return hops.integrated_lufs()

        out: dict[str, float] = {}
        master_path = scratch / MASTER_FILE

        def verify(drive_lin: float) -> float:
            loud = LoudnessMeter(sr, channels)
            peak, least = 0.0, 1.0
            with BlockWriter(master_path, sr, channels, "FLOAT", frames_hint=n) as w:
                for start, stop, a, b in parts:
                    check()
                    # the limiter's input as pass 2 made it (stored in float32: 6e-8 of full scale,
                    # far inside the limiter's 0.0005 dB acceptance margin) and its envelope
                    x = inputs.read(a, b)
                    y, gain, p = limiter.limit(x, sr, envelope=envelope.read(a, b), scale=drive_lin,
                                               in_place=True)
                    core = y[:, start - a:stop - a]
                    w.write(core)
                    loud.add(core)
                    peak = max(peak, p)
                    if gain.size:
                        least = min(least, float(gain[start - a:stop - a].min()))
            written.append(master_path)
            out.update(peak=peak, least=least, drive_lin=drive_lin)
            return loud.integrated_lufs()

        drive, lufs, iterations = search_drive(bus, pre.integrated_lufs(), estimate, verify, log=log,
                                               report=lambda f, m: report(0.25 + 0.75 * f, m),
                                               is_cancelled=is_cancelled)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    finally:
        envelope.remove()
        energy.remove()
        inputs.remove()
    report(1.0, "bus master done")
    peak = out["peak"]
    return MasterResult(
        audio=np.zeros((channels, 0)), sample_rate=sr, staging_gain_db=staging_db, drive_gain_db=drive,
        integrated_lufs=lufs, true_peak_dbtp=gain_to_db(peak) if peak > 0 else float("-inf"),
        limiter_max_reduction_db=max(0.0, -gain_to_db(out["least"])),
        compressor_max_reduction_db=comp_max_db, iterations=iterations, log=log, bus_gain=None,
    )

