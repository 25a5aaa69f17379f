"""The stem-to-master pipeline: one entry point that the CLI and the TUI both call.

Stages: ``load_stems`` -> ``repair_stems`` (per-stem repair, gain, mute, solo, each stem
written to ``stems/`` as it is made) -> ``master_stream.master_source`` (the bus master of
the stems' sum) -> ``write_masters`` (dither, quantise, write each bit depth) -> report.

Nothing holds a whole song: stems are ``AudioSource``s (the project's files), every stage
reads them a segment or a block at a time and writes its result block by block, and the
measures are block-fed meters. So the memory a render needs does not grow with the song's
length (a few segments of tens of seconds each; scratch files in the render's folder hold
the limiter's per-sample signals and the master before it is dithered).

Every render is written into a temporary folder and renamed into place only when complete,
so a failed or cancelled render leaves no partial folder and never touches earlier renders.
Audio is ``(channels, samples)`` float32 throughout.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tomli_w

from stemmaster.atomic import atomic_write_text
from stemmaster.audio_source import (AudioSource, BlockWriter, FileSource, ResampledSource, StereoSource, SumSource,
                                     as_source)
from stemmaster.dsp.dither import TpdfNoise, quantize
from stemmaster.dsp.chain import Chain
from stemmaster.dsp.processor import Processor
from stemmaster.dsp.segmented import process_segments
from stemmaster.errors import AudioError, Cancelled, ProjectError, StemmasterError
from stemmaster.lock import project_lock
from stemmaster.master import MasterResult, MasterSettings
from stemmaster.master_stream import master_source
from stemmaster.meters.analysis import Metrics
from stemmaster.meters.effects import EffectMeter
from stemmaster.meters.stream import LoudnessMeter, MetricsMeter, PeakMeter
from stemmaster.project import Project, RenderRecord, save_project
from stemmaster.release_checks import not_run, record_checks, run_release_checks
from stemmaster.repair import build_chain
from stemmaster.report import REPORT_SCHEMA, report_json, report_markdown

Progress = Callable[[float, str], None]
CancelCheck = Callable[[], bool]
SCRATCH_DIR = ".scratch"  # in the render's temporary folder: the bus's per-sample signals, removed when done


def _noop(fraction: float, message: str) -> None:
    return None


@dataclass
class StemAudio:
    """One stem with its mix settings; ``audio`` is an ``AudioSource`` (a project file, read a
    block at a time) or an array ``(channels, samples)`` float32."""

    name: str
    role: str
    audio: np.ndarray | AudioSource
    gain_db: float = 0.0
    mute: bool = False
    solo: bool = False
    chain: dict[str, dict[str, Any]] = field(default_factory=dict)  # the recorded repair chain

    def source(self, sample_rate: int) -> AudioSource:
        """The stem as a stereo source (mono plays on both channels)."""
        return StereoSource(as_source(self.audio, sample_rate, name=self.name))


@dataclass
class RenderOutcome:
    """What a render wrote and measured; ``folder`` holds every file.

    ``result``: the bus master's record (gains, loudness, log; its ``audio`` is
    empty and ``bus_gain`` None: the files hold the master, and export runs
    the bus again); ``master_files``: the written masters, the first of which
    the release checks read; ``landed_s``: seconds from the start of
    ``render_project`` until the master had landed and the project was saved
    (the checks excluded).
    """

    folder: Path
    report: dict[str, Any]
    master_files: list[Path]
    result: MasterResult
    landed_s: float | None = None


def _sub(progress: Progress, lo: float, hi: float) -> Progress:
    return lambda f, m: progress(lo + (hi - lo) * max(0.0, min(1.0, f)), m)


@dataclass
class RepairedStem:
    """A stem as it entered the sum, written to ``path``, with what its repairs did."""

    name: str
    path: Path
    chain: list[str]  # the kinds that ran, in order
    effects: dict[str, Any]
    integrated_lufs: float
    sample_peak_dbfs: float


def _repair_one(s: StemAudio, chain: Chain, source: AudioSource, audible: bool, sample_rate: int, rate: int,
                path: Path, scratch: Path, is_cancelled: CancelCheck) -> RepairedStem:
    """Repair ``s`` segment by segment into ``path`` (a float WAV at ``rate``: resampled from the
    project's ``sample_rate`` through a scratch file when they differ), with its gain, or as
    silence when it is muted or another stem is soloed; measure each stage's effect and the
    result's level (``chain``: ``s``'s, built)."""
    kinds = chain.kinds() if audible else []
    meters = [EffectMeter(kind, sample_rate, source.channels) for kind in kinds]
    gain = 10.0 ** (s.gain_db / 20.0)
    first = path if rate == sample_rate else scratch / f"stem-{path.stem}.wav"
    level = LoudnessMeter(rate, source.channels)
    peak = 0.0

    def cancelled() -> None:
        if is_cancelled():
            raise Cancelled("render cancelled; nothing was written")

    if not audible:
        with BlockWriter(first, sample_rate, source.channels, "FLOAT", frames_hint=source.frames) as w:
            for start in range(0, source.frames, 1 << 18):
                w.write(np.zeros((source.channels, min(1 << 18, source.frames - start)), np.float32))
        parts: list[Chain] = []
    else:
        parts = _passes(chain)
    done = 0  # processors run so far
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        target = first if last else scratch / f"pass{i}-{path.stem}.wav"
        with BlockWriter(target, sample_rate, source.channels, "FLOAT", frames_hint=source.frames) as w:
            for _start, stages in process_segments(part, source):
                cancelled()
                for meter, before, after in zip(meters[done:], stages, stages[1:]):
                    meter.add(before, after)
                out = stages[-1]
                if last and gain != 1.0:
                    out *= np.float32(gain)
                w.write(out)
                if last and rate == sample_rate:
                    level.add(out)
                    peak = max(peak, float(np.max(np.abs(out))) if out.size else 0.0)
        if i:
            source.path.unlink(missing_ok=True)  # the previous pass's output, read to the end
        source, done = FileSource(target), done + len(part.processors)
    if rate != sample_rate:  # the stems are written at the export rate
        resampled = ResampledSource(FileSource(first), rate)
        with BlockWriter(path, rate, source.channels, "FLOAT", frames_hint=resampled.frames) as w:
            for _start, out in resampled.blocks():
                cancelled()
                w.write(out)
                level.add(out)
                peak = max(peak, float(np.max(np.abs(out))) if out.size else 0.0)
        first.unlink(missing_ok=True)
    effects: dict[str, Any] = {}
    for meter in meters:
        effects.update(meter.result())
    return RepairedStem(s.name, path, kinds, effects, level.integrated_lufs(),
                        20.0 * math.log10(peak) if peak > 0 else float("-inf"))


def _passes(chain: Chain) -> list[Chain]:
    """``chain`` cut before each processor (but the first) that measures its whole input first
    (``needs_statistics``: the de-esser): each part runs over the previous part's output, written
    to a scratch file, so the measuring reads that file instead of making it again."""
    parts: list[list[Processor]] = [[]]
    for p in chain.processors:
        if p.needs_statistics() and parts[-1]:
            parts.append([])
        parts[-1].append(p)
    return [Chain(tuple(part)) for part in parts]


# Seconds each processor took on a 4-minute stereo stem (one core, warm): only the order in
# which the stems start depends on them (longest first, so the cores finish together).
_SECONDS_PER_4_MINUTES = {"deharsher": 0.8, "deesser": 0.47, "transient_shaper": 0.47, "highpass": 0.23,
                          "low_end_mono": 0.23}


def _chain_cost(kinds: list[str]) -> float:
    return sum(_SECONDS_PER_4_MINUTES.get(kind, 0.05) for kind in kinds)


def repair_stems(stems: list[StemAudio], sample_rate: int, rate: int, stems_dir: Path, scratch: Path, *,
                 progress: Progress | None = None, cancel: CancelCheck | None = None) -> list[RepairedStem]:
    """Repair each stem with its chain, apply gain, mute and solo, and write it to
    ``stems_dir/<name>.wav`` (float, at ``rate``): the stems as they enter the sum, in the
    project's order. Stems run side by side on a few threads (the kernels release the GIL);
    each is read and written a segment at a time."""
    progress = progress or _noop
    is_cancelled = cancel or (lambda: False)
    if not stems:
        raise AudioError("there are no stems to mix")
    sources = {s.name: s.source(sample_rate) for s in stems}
    lengths = {src.frames for src in sources.values()}
    if len(lengths) != 1:
        raise AudioError(f"stems differ in length ({sorted(lengths)} samples); re-import them")
    chains = {s.name: build_chain(s.chain, stem=s.name) for s in stems}  # all valid before any work starts
    soloed = any(s.solo for s in stems)
    done: dict[str, RepairedStem] = {}
    # the costliest chains start first, so the cores finish together
    order = sorted(stems, key=lambda s: -_chain_cost(chains[s.name].kinds()))
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        jobs = {pool.submit(_repair_one, s, chains[s.name], sources[s.name], (not s.mute) and (s.solo or not soloed),
                            sample_rate, rate, stems_dir / f"{s.name}.wav", scratch, is_cancelled): s for s in order}
        try:
            for job in as_completed(jobs):
                out = job.result()
                done[out.name] = out
                progress(len(done) / len(stems), f"repaired {out.name} ({', '.join(out.chain) or 'no repair'})")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [done[s.name] for s in stems]


def _workers() -> int:
    """Threads repairing stems side by side: one per core, at least two."""
    return max(2, os.cpu_count() or 1)


def _write_depth(master: AudioSource, bits: int, trim: float, settings: MasterSettings, path: Path,
                 meter: MetricsMeter | PeakMeter, is_cancelled: CancelCheck) -> BlockWriter:
    """``master`` times ``trim``, dithered and quantised to ``bits``, written block by block to
    ``path`` (not landed yet: the caller closes or abandons the returned writer) and fed to
    ``meter`` as written."""
    noise = TpdfNoise(settings.export.dither_seed) if settings.export.dither == "tpdf" else None
    writer = BlockWriter(path, master.sample_rate, master.channels, f"PCM_{bits}", frames_hint=master.frames)
    try:
        for _start, block in master.blocks():
            if is_cancelled():
                raise Cancelled("render cancelled; nothing was written")
            drawn = noise.draw(block.shape) if noise is not None else None  # the same sequence at every depth
            if trim != 1.0:
                block *= np.float32(trim)
            q = quantize(block, bits, dither=settings.export.dither, noise=drawn)
            writer.write(q)
            meter.add(q)
    except BaseException:
        writer.abandon()
        raise
    return writer


def write_masters(master: AudioSource, settings: MasterSettings, folder: Path,
                  is_cancelled: CancelCheck) -> tuple[list[tuple[Path, str]], Metrics]:
    """Dither and quantise ``master`` (float, the bus's output) to each of the export's bit depths
    and write ``master_<bits>bit.wav`` into ``folder``, a block at a time, the depths side by
    side; returns the files with their subtypes and the metrics of the first depth's samples as
    written.

    Quantisation and dither move each sample by a few LSB, which can lift the true peak a
    hair: each file's samples are measured as they are written, and a file whose true peak
    passes the ceiling is written again, trimmed by the overshoot (rare: the limiter aims
    0.001 dB under). The dither is one sequence (``export.dither_seed``) for all depths.
    """
    ceiling = settings.bus.ceiling_dbtp
    depths = list(settings.export.bit_depths)
    trims = {bits: 1.0 for bits in depths}
    files: dict[int, tuple[Path, str]] = {}
    metrics: Metrics | None = None
    pending = depths
    with ThreadPoolExecutor(max_workers=len(depths)) as pool:  # quantising, writing and metering release the GIL
        for _attempt in range(3):
            # the first depth's meter is the report's metrics, whose true peak it reads too
            meters = {bits: MetricsMeter(master.sample_rate, master.channels) if bits == depths[0] else PeakMeter()
                      for bits in pending}
            jobs = {bits: pool.submit(_write_depth, master, bits, trims[bits], settings,
                                      folder / f"master_{bits}bit.wav", meters[bits], is_cancelled)
                    for bits in pending}
            writers: dict[int, BlockWriter] = {}
            try:
                for bits, job in jobs.items():
                    writers[bits] = job.result()
            except BaseException:
                for bits, job in jobs.items():  # the others finish (or fail) before theirs are abandoned
                    try:
                        job.result().abandon()
                    except BaseException:
                        pass
                raise
            peaks = {bits: (m.peaks if isinstance(m, MetricsMeter) else m).true_peak_dbtp for bits, m in meters.items()}
            over = [bits for bits in pending if peaks[bits] > ceiling]
            for bits in pending:
                if bits in over:
                    writers[bits].abandon()
                else:
                    files[bits] = (writers[bits].close(), f"PCM_{bits}")
                    if bits == depths[0]:
                        metrics = meters[bits].metrics()
            if not over:
                break
            for bits in over:  # trim the overshoot, and write that depth again
                trims[bits] *= 10.0 ** ((ceiling - peaks[bits] - 0.001) / 20.0)
            pending = over
        else:
            raise StemmasterError(f"the master's true peak stays over {ceiling} dBTP after dithering")
    return [files[bits] for bits in depths], metrics


def render_stems(stems: list[StemAudio], sample_rate: int, settings: MasterSettings, folder: Path, *,
                 title: str, render_id: str, progress: Progress | None = None,
                 cancel: CancelCheck | None = None, separation: dict[str, Any] | None = None,
                 checks_pending: bool = False) -> RenderOutcome:
    """Mix, master, export and report ``stems`` into ``folder`` (which must exist and be empty).

    ``separation``: how the stems were separated from a render (a
    ``SeparationRecord`` as a dict), for the report. ``checks_pending``: the
    caller runs the release checks once the render has landed
    (``run_checks_phase``); the report says so until they have run.
    """
    progress = progress or _noop
    is_cancelled = cancel or (lambda: False)

    def check() -> None:
        if is_cancelled():
            raise Cancelled("render cancelled; nothing was written")

    rate = settings.export.sample_rate or sample_rate
    scratch = folder / SCRATCH_DIR
    scratch.mkdir()
    stems_dir = folder / "stems"
    stems_dir.mkdir()
    progress(0.0, "repairing stems")
    t0 = time.perf_counter()
    repaired = repair_stems(stems, sample_rate, rate, stems_dir, scratch, progress=_sub(progress, 0.0, 0.3),
                            cancel=cancel)
    repair_s = time.perf_counter() - t0
    check()
    mix = SumSource([FileSource(r.path) for r in repaired], name="mix")
    result, master, mix_metrics = master_source(mix, settings, scratch, progress=_sub(progress, 0.3, 0.8),
                                                cancel=cancel)
    check()
    progress(0.8, "writing masters")
    masters, master_metrics = write_masters(master, settings, folder, is_cancelled)
    shutil.rmtree(scratch)
    by_name = {s.name: s for s in stems}
    stem_rows = [{"name": r.name, "role": by_name[r.name].role, "gain_db": by_name[r.name].gain_db,
                  "mute": by_name[r.name].mute, "solo": by_name[r.name].solo,
                  "repair": {"chain": r.chain, "effects": r.effects},
                  "integrated_lufs": r.integrated_lufs, "sample_peak_dbfs": r.sample_peak_dbfs}
                 for r in repaired]
    check()
    files = [{"path": p.name, "role": "master", "format": "WAV", "subtype": st} for p, st in masters]
    files += [{"path": f"stems/{r.name}.wav", "role": "stem", "format": "WAV", "subtype": "FLOAT"} for r in repaired]
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "project": title,
        "render": render_id,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "profile": settings.bus.profile,
        "target_lufs": settings.bus.target_lufs,
        "ceiling_dbtp": settings.bus.ceiling_dbtp,
        "sample_rate": rate,
        "master": master_metrics.to_dict(),
        "mix": mix_metrics.to_dict(),
        "separation": separation,
        "stems": stem_rows,
        "processing": {
            "staging_gain_db": result.staging_gain_db,
            "drive_gain_db": result.drive_gain_db,
            "compressor_max_reduction_db": result.compressor_max_reduction_db,
            "limiter_max_reduction_db": result.limiter_max_reduction_db,
            "iterations": result.iterations,
            "repair_s": repair_s,
            "log": result.log,
        },
        "settings": settings.to_dict(),
        "checks": not_run("pending", "the release checks run after the master lands; if this stays, "
                                     "they were interrupted") if checks_pending
        else not_run("skipped", "release checks were not requested for this render"),
        "files": files,
    }
    check()
    progress(0.97, "writing report")
    files.append({"path": "report.json", "role": "report", "format": "JSON", "subtype": "UTF-8"})
    files.append({"path": "report.md", "role": "report", "format": "Markdown", "subtype": "UTF-8"})
    files.append({"path": "settings.toml", "role": "settings", "format": "TOML", "subtype": "UTF-8"})
    atomic_write_text(folder / "settings.toml", tomli_w.dumps({
        "master": settings.to_dict(),
        "stems": [{"name": s.name, "role": s.role, "gain_db": s.gain_db, "mute": s.mute, "solo": s.solo,
                   "chain": s.chain} for s in stems],
    }))
    atomic_write_text(folder / "report.md", report_markdown(report))
    atomic_write_text(folder / "report.json", report_json(report))
    progress(1.0, "done")
    return RenderOutcome(folder=folder, report=report, master_files=[p for p, _ in masters], result=result)


def load_stems(project: Project, project_dir: Path) -> list[StemAudio]:
    """The project's working stems (``stems/*.wav`` at the project rate) as file sources: their
    headers are read and checked here, their audio when a stage reads it."""
    out = []
    for s in project.stems:
        path = project_dir / s.path
        source = FileSource(path)
        if source.sample_rate != project.sample_rate:
            raise ProjectError(f"{path}: {source.sample_rate} Hz, but the project is at {project.sample_rate} Hz")
        if source.channels not in (1, 2):
            raise ProjectError(f"{path}: {source.channels} channels; stems are mono or stereo")
        out.append(StemAudio(s.name, s.role, source, s.gain_db, s.mute, s.solo, dict(s.chain)))
    if not out:
        raise ProjectError(f"project {project.name!r} has no stems yet")
    return out


def project_settings(project: Project) -> MasterSettings:
    """The project's recorded master settings (defaults where nothing is recorded)."""
    return MasterSettings.from_dict(project.master)


def source_sum(stems: list[StemAudio], sample_rate: int) -> AudioSource:
    """The source as it arrived: the loaded stems summed before any repair, stem gain, mute or
    solo, a stereo source at ``sample_rate`` (for stems separated from a render, that render)."""
    return SumSource([s.source(sample_rate) for s in stems], name="source")


def run_checks_phase(outcome: RenderOutcome, stems: list[StemAudio], sample_rate: int, settings: MasterSettings, *,
                     progress: Progress | None = None, cancel: CancelCheck | None = None) -> None:
    """The release checks (``release_checks.run_release_checks``) of a landed render, recorded
    in its report (``report["checks"]``, ``report["files"]``; ``report.json`` and ``report.md``
    rewritten atomically). They read the first master file and the stems (``source_sum``) a
    block at a time.

    The landed master is never touched: when the checks fail or are
    cancelled, the report says they did not run and why (``status``
    ``"failed"`` or ``"cancelled"`` with a ``reason``), no ``ab/`` or
    ``plots/`` file is left, and this returns normally; a
    ``KeyboardInterrupt`` is recorded the same way and raised again.
    """
    progress = progress or _noop
    rate = int(outcome.report["sample_rate"])
    t0 = time.perf_counter()
    try:
        before: AudioSource = source_sum(stems, sample_rate)
        if rate != sample_rate:
            before = ResampledSource(before, rate)
        checks = run_release_checks(outcome.folder, before, FileSource(outcome.master_files[0]), rate,
                                    ceiling_dbtp=settings.bus.ceiling_dbtp, target_lufs=settings.bus.target_lufs,
                                    progress=progress, cancel=cancel)
    except Cancelled as exc:
        checks = not_run("cancelled", str(exc), time.perf_counter() - t0)
        progress(1.0, "release checks cancelled")
    except KeyboardInterrupt:
        try:
            record_checks(outcome.folder, outcome.report,
                          not_run("cancelled", "interrupted (KeyboardInterrupt)", time.perf_counter() - t0))
        except Exception:  # the interrupt matters more; the report then still says "pending"
            pass
        raise
    except Exception as exc:  # the master stands; the report says why the checks did not run
        reason = str(exc) if isinstance(exc, StemmasterError) else f"{type(exc).__name__}: {exc}"
        checks = not_run("failed", reason, time.perf_counter() - t0)
        progress(1.0, "release checks failed")
    record_checks(outcome.folder, outcome.report, checks)


def render_project(project: Project, project_dir: Path, settings: MasterSettings, render_id: str, *,
                   progress: Progress | None = None, cancel: CancelCheck | None = None,
                   checks: bool = True) -> RenderOutcome:
    """Render ``project`` into ``renders/<render_id>``, record it and save the project, then
    run the release checks on the landed render (``checks=False`` skips them).

    The settings are recorded in the project before the render and the render
    lands atomically: on any failure the temporary folder is removed and the
    earlier renders and the project file stay as they were. The release checks
    (``run_checks_phase``) are a second phase on the landed folder: they add
    ``ab/``, ``plots/`` and ``report["checks"]``, and their failure or
    cancelling never undoes the render (the report says why they did not
    run). Progress: the master 0..0.75, the checks 0.75..1 (0..1 without checks).
    """
    with project_lock(project_dir, f"render {render_id}"):
        return _render_project(project, project_dir, settings, render_id, progress=progress or _noop,
                               cancel=cancel, checks=checks)


def _render_project(project: Project, project_dir: Path, settings: MasterSettings, render_id: str, *,
                    progress: Progress, cancel: CancelCheck | None, checks: bool) -> RenderOutcome:
    t_start = time.perf_counter()
    renders = project_dir / "renders"
    renders.mkdir(exist_ok=True)
    final = renders / render_id
    if final.exists():
        raise ProjectError(f"{final} already exists; refusing to overwrite a render")
    tmp = renders / f".tmp-{render_id}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        stems = load_stems(project, project_dir)
        outcome = render_stems(stems, project.sample_rate, settings, tmp, title=project.name,
                               render_id=render_id, progress=_sub(progress, 0.0, 0.75) if checks else progress,
                               cancel=cancel,
                               separation=asdict(project.separation) if project.separation else None,
                               checks_pending=checks)
        os.replace(tmp, final)
    except (AudioError, ProjectError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        # say which project, and name the render as the user knows it, not its temporary folder
        text = str(exc).replace(str(tmp), f"{final} (not written)")
        if project.name not in text:
            text = f"project {project.name!r}: {text}"
        raise type(exc)(text) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    outcome.folder = final
    outcome.master_files = [final / p.name for p in outcome.master_files]
    m = outcome.report["master"]
    project.master = settings.to_dict()
    project.renders.append(RenderRecord(
        id=render_id, created=outcome.report["created"], profile=settings.bus.profile,
        target_lufs=settings.bus.target_lufs, ceiling_dbtp=settings.bus.ceiling_dbtp,
        integrated_lufs=float(m["integrated_lufs"]), true_peak_dbtp=float(m["true_peak_dbtp"]),
        folder=f"renders/{render_id}"))
    save_project(project, project_dir)
    outcome.landed_s = time.perf_counter() - t_start
    if checks:
        progress(0.75, "master landed; release checks")
        run_checks_phase(outcome, stems, project.sample_rate, settings,
                         progress=_sub(progress, 0.75, 1.0), cancel=cancel)
    return outcome
