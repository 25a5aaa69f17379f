"""The stem-to-master pipeline: one entry point that the CLI and the TUI both call.

Stages: ``load_stems`` -> ``start_repairs`` (per-stem repair, gain, mute, solo) ->
``master_bus`` -> ``quantized_master`` per bit depth -> measure -> report. Every render is
written into a temporary folder and renamed into place only when complete, so a
failed or cancelled render leaves no partial folder and never touches earlier
renders. Audio is ``(channels, samples)`` float32 throughout.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tomli_w

from stemmaster.atomic import atomic_write_text
from stemmaster.audio_io import read_audio, resample, write_audio
from stemmaster.dsp.dither import quantize_measured, tpdf_noise
from stemmaster.errors import AudioError, Cancelled, ProjectError, StemmasterError
from stemmaster.master import MasterResult, MasterSettings, master_bus
from stemmaster.meters.analysis import Metrics, measure
from stemmaster.meters.loudness import gated_loudness_lufs
from stemmaster.meters.truepeak import interpolation_gain_bound, sample_peak_dbfs, true_peak_dbtp
from stemmaster.meters.spectral import hit_crest_db, largest_cut, side_low_db, sibilance_change_db
from stemmaster.lock import project_lock
from stemmaster.project import Project, RenderRecord, save_project
from stemmaster.release_checks import not_run, record_checks, run_release_checks
from stemmaster.repair import build_chain
from stemmaster.report import REPORT_SCHEMA, report_json, report_markdown

Progress = Callable[[float, str], None]
CancelCheck = Callable[[], bool]


def _noop(fraction: float, message: str) -> None:
    return None


@dataclass
class StemAudio:
    """One stem's audio ``(2, samples)`` float32 with its mix settings."""

    name: str
    role: str
    audio: np.ndarray
    gain_db: float = 0.0
    mute: bool = False
    solo: bool = False
    chain: dict[str, dict[str, Any]] = field(default_factory=dict)  # the recorded repair chain


@dataclass
class RenderOutcome:
    """What a render wrote and measured; ``folder`` holds every file.

    ``result``: the bus master's record (gains, loudness, log); its float64
    audio and gain curve are dropped once the master files are written
    (``result.audio`` is then empty and ``result.bus_gain`` None: the
    files hold the master, and export runs the bus again);
    ``master_audio``: the first master file's samples as written (float32),
    kept for the release checks and dropped once they have run;
    ``landed_s``: seconds from the start of ``render_project`` until the
    master had landed and the project was saved (the checks excluded).
    """

    folder: Path
    report: dict[str, Any]
    master_files: list[Path]
    result: MasterResult
    master_audio: np.ndarray | None = None
    landed_s: float | None = None


def _sub(progress: Progress, lo: float, hi: float) -> Progress:
    return lambda f, m: progress(lo + (hi - lo) * max(0.0, min(1.0, f)), m)


def repair_effects(stages: list[tuple[str, np.ndarray, np.ndarray]], sample_rate: int) -> dict[str, Any]:
    """What each repair did, measured on its own input and output ``(kind, before, after)``,
    on the same frames and frequencies before and after."""
    effects: dict[str, Any] = {}
    for kind, before, after in stages:
        if kind == "deesser":
            effects["sibilance_db"] = sibilance_change_db(before, after, sample_rate)
        elif kind == "deharsher":
            effects["resonance"] = largest_cut(before, after, sample_rate)
        elif kind == "low_end_mono":
            b, a = side_low_db(before, sample_rate, relative=False), side_low_db(after, sample_rate, relative=False)
            effects["side_low"] = {"below_hz": b["side_below_hz"], "before_dbfs": b["side_low_dbfs"],
                                   "after_dbfs": a["side_low_dbfs"]}
        elif kind == "transient_shaper":
            effects["hit_crest_db"] = {"before": hit_crest_db(before, sample_rate),
                                       "after": hit_crest_db(after, sample_rate)}
    return effects


Stage = tuple[str, np.ndarray, np.ndarray]  # (processor kind, its input, its output)


@dataclass
class Repaired:
    """The repaired stems and their sum, with the measuring of each repair's effect
    (``effect_jobs``) possibly still running on the pool that ``start_repairs`` was given."""

    mix: np.ndarray  # (2, samples) float32
    processed: dict[str, np.ndarray]  # each stem as it enters the sum, (2, samples) float32
    chains: dict[str, list[str]]  # the kinds that ran, in order
    effect_jobs: dict[str, list[Future]]

    def repairs(self) -> dict[str, Any]:
        """Per stem ``{"chain": [...], "effects": {...}}``, waiting for the measuring to finish."""
        out = {}
        for name, kinds in self.chains.items():
            effects: dict[str, Any] = {}
            for job in self.effect_jobs[name]:
                effects.update(job.result())
            out[name] = {"chain": kinds, "effects": effects}
        return out


# Seconds each processor took on a 4-minute stereo stem (one core, warm): only the order in
# which the chains start depends on them (longest first, so the cores finish together).
_SECONDS_PER_4_MINUTES = {"deharsher": 0.8, "deesser": 0.47, "transient_shaper": 0.47, "highpass": 0.23,
                          "low_end_mono": 0.23}


def _chain_cost(kinds: list[str]) -> float:
    return sum(_SECONDS_PER_4_MINUTES.get(kind, 0.05) for kind in kinds)


def start_repairs(stems: list[StemAudio], sample_rate: int, pool: ThreadPoolExecutor, *,
                  progress: Progress | None = None, cancel: CancelCheck | None = None) -> Repaired:
    """Repair each audible stem with its chain on ``pool``, apply gain, mute and solo, and sum.

    Returns as soon as the mix is ready; each stage's effect (``repair_effects``)
    is then still being measured on the pool, each as a job of its own, so
    the measuring spreads over the cores while other work (the bus master)
    goes on. Stems are independent and the processors' kernels release the
    GIL; results are the same as one at a time, and the mix sums in the
    project's order every time.
    """
    progress = progress or _noop
    if not stems:
        raise AudioError("there are no stems to mix")
    length = {s.audio.shape[1] for s in stems}
    if len(length) != 1:
        raise AudioError(f"stems differ in length ({sorted(length)} samples); re-import them")
    soloed = any(s.solo for s in stems)

    chains = {s.name: build_chain(s.chain, stem=s.name) for s in stems}  # all valid before any work starts

    def repair_one(s: StemAudio) -> tuple[np.ndarray, list[str], list[Stage]]:
        audible = (not s.mute) and (s.solo or not soloed)
        chain = chains[s.name]
        if not audible:
            return np.zeros(s.audio.shape, dtype=np.float32), [], []
        stages = []
        # float32 through the chain: the repair processors keep their recursions and sums in
        # float64 whatever they read (Processor.native_dtypes), so a stage is one float32 array,
        # kept as it is for the effect measures, and no float64 copy of the stem is made
        before = np.ascontiguousarray(s.audio, dtype=np.float32)
        for processor in chain.processors:  # as Chain.process does, keeping each stage for the report
            after = processor.process(before, sample_rate)
            stages.append((processor.kind, before, after))
            before = after
        if s.gain_db != 0.0:
            return np.multiply(before, 10.0 ** (s.gain_db / 20.0), dtype=np.float32), chain.kinds(), stages
        return before if stages else before.copy(), chain.kinds(), stages

    done: dict[str, tuple[np.ndarray, list[str]]] = {}
    effect_jobs: dict[str, list[Future]] = {}
    # the costliest chains start first, so the cores finish together
    jobs = {pool.submit(repair_one, s): s for s in sorted(stems, key=lambda s: -_chain_cost(chains[s.name].kinds()))}
    for future in as_completed(jobs):
        s = jobs[future]
        if cancel and cancel():
            for f in jobs:
                f.cancel()
            raise Cancelled("render cancelled; nothing was written")
        out, kinds, stages = future.result()
        done[s.name] = (out, kinds)
        effect_jobs[s.name] = [pool.submit(repair_effects, [stage], sample_rate) for stage in stages]
        progress(len(done) / len(stems), f"repaired {s.name} ({', '.join(kinds) or 'no repair'})")
    mix = np.zeros(stems[0].audio.shape, dtype=np.float32)  # float32: a whole-song array less in float64
    for s in stems:  # in the project's order
        mix += done[s.name][0]
    return Repaired(mix=mix, processed={s.name: done[s.name][0] for s in stems},
                    chains={s.name: done[s.name][1] for s in stems}, effect_jobs=effect_jobs)


def _workers() -> int:
    """Threads beside the calling one: at least two, so the stems' measuring can run beside
    the chains even on a single core."""
    return max(2, os.cpu_count() or 1)


def quantized_master(result: MasterResult, bits: int, settings: MasterSettings,
                     noise: np.ndarray | None = None) -> np.ndarray:
    """The master on the ``bits`` grid with the export's dither: float32 ``(channels, samples)``,
    exactly the samples a PCM file of that depth holds.

    Quantisation and dither move each sample by at most a few LSB, which can
    lift the true peak by at most that times the interpolator's tap sum; when
    that bound could cross the ceiling, the quantised signal is measured and
    trimmed, so a written master can never exceed it. ``noise``: the
    export's ``tpdf_noise``, drawn once for all bit depths.
    """
    ceiling = settings.bus.ceiling_dbtp
    ceiling_lin = 10.0 ** (ceiling / 20.0)
    bound = interpolation_gain_bound()
    audio = result.audio
    tp_lin = 10.0 ** (result.true_peak_dbtp / 20.0)  # the detector's reading: at least the meter's
    for _attempt in range(3):
        q, error = quantize_measured(audio, bits, dither=settings.export.dither, seed=settings.export.dither_seed,
                                     noise=noise)
        if tp_lin + bound * error <= ceiling_lin:
            break
        tp = true_peak_dbtp(q, result.sample_rate)
        if tp <= ceiling:
            break
        audio = audio * 10.0 ** ((ceiling - tp - 0.001) / 20.0)  # trim the dither's overshoot
        tp_lin = 10.0 ** (true_peak_dbtp(audio, result.sample_rate) / 20.0)
    return q


def _write_and_measure_stems(processed: dict[str, np.ndarray], mix: np.ndarray, rate: int, stems_dir: Path,
                             is_cancelled: CancelCheck) -> tuple[list[dict[str, str]], dict[str, dict], Metrics]:
    """Write each repaired stem as a float WAV into ``stems_dir`` and measure it and the mix:
    returns the files' report rows, each stem's levels and the mix's metrics. ``processed``
    is emptied as it goes (each stem's memory is freed once it is written and measured)."""
    files = []
    levels = {}
    for name in list(processed):
        if is_cancelled():
            raise Cancelled("render cancelled; nothing was written")
        audio = processed.pop(name)  # freed once written and measured
        write_audio(stems_dir / f"{name}.wav", audio, rate, subtype="FLOAT")
        files.append({"path": f"stems/{name}.wav", "role": "stem", "format": "WAV", "subtype": "FLOAT"})
        levels[name] = {"integrated_lufs": gated_loudness_lufs(audio, rate), "sample_peak_dbfs": sample_peak_dbfs(audio)}
    return files, levels, measure(mix, rate, pyloudnorm=False)


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

    progress(0.0, "repairing stems")
    # One pool of workers beside this thread: it repairs the stems, then, while
    # this thread runs the bus master (mostly on one core), it measures what
    # the repairs did, writes the repaired stems and measures them and the
    # mix; at the end it writes the files while this thread measures the master. Leaving by an exception drops its
    # queued work and waits for the running jobs: the caller removes the
    # folder only after.
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        try:
            t0 = time.perf_counter()
            repaired = start_repairs(stems, sample_rate, pool, progress=_sub(progress, 0.0, 0.3), cancel=cancel)
            repair_s = time.perf_counter() - t0
            mix, processed = repaired.mix, repaired.processed
            repaired.mix, repaired.processed = None, {}  # this function holds them only while it needs them
            names = list(processed)
            rate = sample_rate
            if settings.export.sample_rate and settings.export.sample_rate != sample_rate:
                rate = settings.export.sample_rate
                mix = resample(mix, sample_rate, rate)
                processed = {k: resample(v, sample_rate, rate) for k, v in processed.items()}
            check()
            stems_dir = folder / "stems"
            stems_dir.mkdir()
            side_job = pool.submit(_write_and_measure_stems, processed, mix, rate, stems_dir, is_cancelled)
            del processed  # the side job frees each stem once written and measured
            # the dither is drawn while the master is made (it needs only the shape)
            noise_job = pool.submit(tpdf_noise, mix.shape, settings.export.dither_seed) \
                if settings.export.dither == "tpdf" else None
            mix_job = [mix]  # handed over: the bus drops the mix once its linear stage has run
            del mix
            result = master_bus(mix_job.pop(), rate, settings, progress=_sub(progress, 0.3, 0.8), cancel=cancel)
            check()
            progress(0.8, "writing masters")
            noise = noise_job.result() if noise_job else None
            depths = settings.export.bit_depths
            first = quantized_master(result, depths[0], settings, noise)
            check()
            progress(0.88, "measuring")
            # the report measures the samples of the first file, as written
            def write(bits: int, q: np.ndarray) -> tuple[Path, str]:
                path, subtype = folder / f"master_{bits}bit.wav", f"PCM_{bits}"
                write_audio(path, q, rate, subtype=subtype)
                return path, subtype

            writes = [pool.submit(write, depths[0], first)]
            master_metrics = measure(first, rate, pyloudnorm=False)
            for bits in depths[1:]:
                writes.append(pool.submit(write, bits, quantized_master(result, bits, settings, noise)))
            stem_files, levels, mix_metrics = side_job.result()
            repairs = repaired.repairs()
            masters = [w.result() for w in writes]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    by_name = {s.name: s for s in stems}
    stem_rows = [{"name": name, "role": by_name[name].role, "gain_db": by_name[name].gain_db,
                  "mute": by_name[name].mute, "solo": by_name[name].solo, "repair": repairs[name], **levels[name]}
                 for name in names]
    check()
    files = [{"path": p.name, "role": "master", "format": "WAV", "subtype": st} for p, st in masters]
    files += stem_files
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
    # the float64 master and its gain curve are three songs' worth of memory the release checks
    # (on the written samples) do not need
    record = replace(result, audio=np.zeros((result.audio.shape[0], 0)), bus_gain=None)  # not a view: freed
    del result
    return RenderOutcome(folder=folder, report=report, master_files=[p for p, _ in masters], result=record,
                         master_audio=first)


def load_stems(project: Project, project_dir: Path) -> list[StemAudio]:
    """Read the project's working stems (``stems/*.wav`` at the project rate)."""
    out = []
    with ThreadPoolExecutor(max_workers=_workers()) as pool:  # file reads release the GIL
        read = list(pool.map(read_audio, [project_dir / s.path for s in project.stems]))
    for s, (audio, rate) in zip(project.stems, read):
        if rate != project.sample_rate:
            raise ProjectError(f"{project_dir / s.path}: {rate} Hz, but the project is at {project.sample_rate} Hz")
        if audio.shape[0] == 1:
            audio = np.repeat(audio, 2, axis=0)
        out.append(StemAudio(s.name, s.role, audio, s.gain_db, s.mute, s.solo, dict(s.chain)))
    if not out:
        raise ProjectError(f"project {project.name!r} has no stems yet")
    return out


def project_settings(project: Project) -> MasterSettings:
    """The project's recorded master settings (defaults where nothing is recorded)."""
    return MasterSettings.from_dict(project.master)


def source_sum(stems: list[StemAudio]) -> np.ndarray:
    """The source as it arrived: the loaded stems summed before any repair, stem gain, mute or
    solo, float32 ``(2, samples)`` (for stems separated from a render, that render)."""
    total = np.zeros(stems[0].audio.shape, dtype=np.float64)
    for s in stems:
        total += s.audio
    return total.astype(np.float32)


def run_checks_phase(outcome: RenderOutcome, stems: list[StemAudio], sample_rate: int, settings: MasterSettings, *,
                     progress: Progress | None = None, cancel: CancelCheck | None = None) -> None:
    """The release checks (``release_checks.run_release_checks``) of a landed render, recorded
    in its report (``report["checks"]``, ``report["files"]``; ``report.json`` and ``report.md``
    rewritten atomically).

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
        if outcome.master_audio is None:
            raise AudioError("the master's samples are not at hand; re-run the checks on the render")
        before = source_sum(stems)
        if rate != sample_rate:
            before = resample(before, sample_rate, rate)
        checks = run_release_checks(outcome.folder, before, outcome.master_audio, rate,
                                    ceiling_dbtp=settings.bus.ceiling_dbtp, target_lufs=settings.bus.target_lufs,
                                    progress=progress, cancel=cancel)
    except Cancelled as exc:
        checks = not_run("cancelled", str(exc), time.perf_counter() - t0)
        progress(1.0, "release checks cancelled")
    except KeyboardInterrupt:
        outcome.master_audio = None
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
    outcome.master_audio = None
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
    else:
        outcome.master_audio = None
    return outcome
