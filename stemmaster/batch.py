"""Batch remastering: every song in a folder to a master, in parallel and resumable, locally or on Ray.

A song is a stereo audio file in INPUT_DIR (separated with Demucs first) or a
subfolder of stems; each becomes ``OUT_DIR/<song>/`` through
:func:`stemmaster.remaster.remaster`, and the batch ends with a summary
(``OUT_DIR/summary.csv`` and ``summary.md``) ordered so that the songs needing
a human come first: failed, then "fix the mix first", "ready with repairs",
"ready".

Atomic songs, resume. A song is remastered into a hidden staging folder
``OUT_DIR/.batch-<song>.<token>.tmp``; when the master, report and checks are
complete, ``done.json`` (the input's sha256 and the settings) is written into
it and the folder is renamed to ``OUT_DIR/<song>``. A song folder therefore
either is complete with its ``done.json`` or is the previous one; an
interrupted song leaves only a staging folder, swept away by the next run. On
a re-run, a song whose ``done.json`` names the same input hash and settings
(and whose master is still there) is skipped, its row taken from ``done.json``.
The input hash is the file's sha256, or for a stems folder the sha256 of its
audio files' names and sha256s (what ``import_stems`` reads). One batch at a
time per OUT_DIR (a lock file, ``stemmaster.lock``).

Locally: a ``ProcessPoolExecutor`` (forkserver or spawn) of N workers, one
song each at a time. The workers share a ``BoundedSemaphore(separations)``
held only around the separation step (the memory hog) and an ``Event`` set on
Ctrl-C: workers ignore SIGINT themselves, so on Ctrl-C the driver sets the
event, each running remaster stops at its next cancellation check and removes
its staging folder, queued songs are cancelled, and the summary lists them as
"interrupted". A second Ctrl-C stops the workers at once (their staging
folders are swept by the next run; no folder is ever marked done half-written).

On Ray (``--ray [ADDRESS]``, imported only then): a render song is two tasks,
separation (``num_gpus=1`` when the cluster has GPUs, else one CPU) writing
its stems into ``OUT_DIR/.batch-sep-<song>.<token>/`` (shared storage), then
repair/master/report/checks as a CPU task reading those stems by path; a stems
song is the second task alone. At most ``separations`` separation tasks are in
flight (default: the number of GPUs, or 1). Both paths run the same per-song
code, so their masters are identical bit for bit.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from stemmaster.atomic import atomic_write_text, sha256_file
from stemmaster.audio_io import AUDIO_EXTENSIONS
from stemmaster.errors import Cancelled, SettingsError, StemmasterError
from stemmaster.separate import SeparationOptions

DONE_NAME = "done.json"
DONE_SCHEMA = 1
MASTER_NAME = "master_24bit.wav"
TMP_PREFIX = ".batch-"
SUMMARY_FIELDS = ("song", "status", "verdict", "fix_mix", "major", "minor", "info", "top_findings",
                  "integrated_lufs", "true_peak_dbtp", "seconds", "error")
SEVERITY_FIELDS = ("fix_mix", "major", "minor", "info")
TOP_FINDINGS = 3
_VERDICT_RANK = {"fix the mix first": 1, "ready with repairs": 2, "ready": 3}


# -- the plan ----------------------------------------------------------------

@dataclass(frozen=True)
class Song:
    name: str  # the folder it gets in OUT_DIR
    path: Path
    kind: str  # "stems" (a folder) or "render" (a file to separate)


@dataclass(frozen=True)
class BatchOptions:
    """What every song is remastered with (picklable: it goes to the workers)."""

    profile: str | None = None
    auto: bool = False
    checks: bool = True
    separation: SeparationOptions = field(default_factory=SeparationOptions)

    def fingerprint(self, song: Song) -> dict[str, Any]:
        """The settings that change a song's result: what ``done.json`` must match to skip it."""
        from stemmaster import __version__

        sep = None
        if song.kind == "render":
            sep = {"model": self.separation.model, **self.separation.result_settings()}
        return {"version": __version__, "profile": self.profile, "auto": self.auto, "checks": self.checks,
                "separation": sep}


@dataclass(frozen=True)
class Job:
    song: Song
    outdir: Path
    options: BatchOptions
    input_sha256: str
    separation_threads: int | None = None  # torch threads while separating (None: torch's default)


@dataclass
class BatchResult:
    rows: list[dict[str, Any]]  # in summary order
    csv_path: Path
    md_path: Path
    interrupted: bool = False

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == "failed"]


def find_songs(input_dir: Path, *, exclude: tuple[Path, ...] = ()) -> list[Song]:
    """The songs of ``input_dir``, by name: each non-hidden subfolder (stems) and audio file (a render).

    Folders in ``exclude`` (OUT_DIR inside INPUT_DIR) are left out; two inputs
    with the same name (``a.wav`` and ``a/``) get their full names.
    """
    if not input_dir.is_dir():
        raise StemmasterError(f"{input_dir}: not a folder")
    excluded = {p.resolve() for p in exclude}
    try:
        entries = sorted(input_dir.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise StemmasterError(f"{input_dir}: cannot list the folder ({exc.strerror})") from None
    found = []
    for entry in entries:
        if entry.name.startswith(".") or entry.resolve() in excluded:
            continue
        if entry.is_dir():
            found.append((entry.name, entry, "stems"))
        elif entry.is_file() and entry.suffix.lower() in AUDIO_EXTENSIONS:
            found.append((entry.stem, entry, "render"))
    counts: dict[str, int] = {}
    for name, _, _ in found:
        counts[name] = counts.get(name, 0) + 1
    songs = [Song(name if counts[name] == 1 else path.name, path, kind) for name, path, kind in found]
    if not songs:
        raise StemmasterError(f"{input_dir}: no songs (stereo audio files {', '.join(AUDIO_EXTENSIONS)} "
                              f"or folders of stems)")
    return songs


def input_hash(song: Song) -> str:
    """sha256 of a render file; of a stems folder, sha256 over its audio files' names and sha256s."""
    if song.kind == "render":
        return sha256_file(song.path)
    h = hashlib.sha256()
    for p in sorted(song.path.iterdir(), key=lambda p: p.name):
        if not p.name.startswith(".") and p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file():
            h.update(f"{p.name}\0{sha256_file(p)}\n".encode("utf-8"))
    return h.hexdigest()


def read_done(song_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((song_dir / DONE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == DONE_SCHEMA else None


def is_done(job: Job) -> dict[str, Any] | None:
    """The song's ``done.json`` if it names this input and these settings and the master is there."""
    folder = job.outdir / job.song.name
    done = read_done(folder)
    if (done and done.get("input_sha256") == job.input_sha256
            and done.get("settings") == job.options.fingerprint(job.song) and (folder / MASTER_NAME).is_file()):
        return done
    return None


# -- one song (the same code locally and on Ray) -----------------------------

def _token() -> str:
    return f"{os.getpid()}-{secrets.token_hex(3)}"


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, StemmasterError):
        text = f"{type(exc).__name__}: {text}"
    return text[:300]


def _row(song: str, status: str, *, seconds: float | None = None, error: str = "",
         report: dict[str, Any] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {k: None for k in SUMMARY_FIELDS}
    row.update(song=song, status=status, error=error, seconds=None if seconds is None else round(seconds, 2),
               top_findings=[])
    row.update({k: 0 for k in SEVERITY_FIELDS})
    if report is not None:
        diagnosis = report.get("diagnosis") or {}
        row["verdict"] = diagnosis.get("verdict")
        findings = diagnosis.get("findings", [])
        for f in findings:
            if f.get("severity") in SEVERITY_FIELDS:
                row[f["severity"]] += 1
        top: list[str] = []
        for f in findings:  # already most severe first
            if f.get("severity") != "info" and f["id"] not in top:
                top.append(f["id"])
        row["top_findings"] = top[:TOP_FINDINGS]
        master = report.get("master", {})
        row["integrated_lufs"] = master.get("integrated_lufs")
        row["true_peak_dbtp"] = master.get("true_peak_dbtp")
    return row


def default_threads() -> int:
    """This machine's cores available to us: the default torch threads of a separation."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Separate with ``n`` intra-op threads: CPU results depend (in the last bits) on the thread
    count, so the same ``n`` locally and on Ray gives the same stems, bit for bit."""
    if not n:
        yield
        return
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _guarded(semaphore, cancel: Callable[[], bool], threads: int | None) -> Callable[..., Any]:
    """``separate_project`` holding ``semaphore`` while it runs (waiting for it stays cancellable)."""
    from stemmaster.separate import separate_project

    def step(*args, progress=None, **kwargs):
        while not semaphore.acquire(timeout=0.25):
            if cancel():
                raise Cancelled("cancelled while waiting for a separation slot")
        try:
            with torch_threads(threads):
                return separate_project(*args, progress=progress, **kwargs)
        finally:
            semaphore.release()
    return step


def _already_separated(work: Path) -> Callable[..., Any]:
    """A separation step that takes the stems a separation task wrote into ``work``."""
    from stemmaster.project import SeparationRecord, Stem

    def step(project, project_dir, options, *, save, progress=None, cancel=None):
        data = json.loads((work / "separation.json").read_text(encoding="utf-8"))
        record = SeparationRecord(**data["record"])
        if project.sources and record.input_sha256 != project.sources[0].sha256:
            raise StemmasterError(f"{project.name}: the separated stems in {work} are of another input")
        stems_dir = Path(project_dir) / "stems"
        stems_dir.mkdir(exist_ok=True)
        stems = [Stem(**s) for s in data["stems"]]
        for s in stems:
            shutil.copyfile(work / "project" / s.path, Path(project_dir) / s.path)
        project.stems, project.separation = stems, record
        save(project)
        return True
    return step


def _settings_transform(profile: str | None):
    if not profile:
        return None
    return lambda s: s.with_profile(profile)


def _replace_folder(staging: Path, final: Path) -> None:
    """Put a complete staging folder at ``final``, replacing an earlier song folder."""
    old = None
    if final.exists():
        old = final.with_name(f"{TMP_PREFIX}{final.name}.{_token()}.old")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run_song(job: Job, *, cancel: Callable[[], bool] | None = None, separation_step: Callable[..., Any] | None = None,
             extra_seconds: float = 0.0) -> dict[str, Any]:
    """Remaster one song into ``OUT_DIR/<song>`` (see the module doc); never raises for a song's failure.

    Returns its summary row: status "done", "failed" or "interrupted" (cancelled).
    """
    from stemmaster.remaster import remaster

    cancel = cancel or (lambda: False)
    song, t0 = job.song, time.perf_counter()
    staging = job.outdir / f"{TMP_PREFIX}{song.name}.{_token()}.tmp"
    try:
        outcome = remaster(song.path, staging, settings_transform=_settings_transform(job.options.profile),
                           cancel=cancel, separation=job.options.separation, checks=job.options.checks,
                           auto=job.options.auto, separate=separation_step)
        row = _row(song.name, "done", seconds=time.perf_counter() - t0 + extra_seconds, report=outcome.report)
        done = {"schema": DONE_SCHEMA, "song": song.name, "input": song.path.name, "kind": song.kind,
                "input_sha256": job.input_sha256, "settings": job.options.fingerprint(song), "row": row}
        atomic_write_text(staging / DONE_NAME, json.dumps(done, indent=2, sort_keys=True) + "\n")
        _replace_folder(staging, job.outdir / song.name)
        return row
    except Cancelled:
        return _row(song.name, "interrupted", error="interrupted")
    except Exception as exc:  # one song's failure never stops the batch
        if not isinstance(exc, StemmasterError):
            print(f"stemmaster batch: {song.name}: unexpected error\n{traceback.format_exc()}", file=sys.stderr)
        return _row(song.name, "failed", seconds=time.perf_counter() - t0 + extra_seconds, error=_first_line(exc))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def separate_song(job: Job, work: Path) -> float:
    """Separate a render song's stems into ``work`` (``project/stems/*.wav`` and ``separation.json``);
    returns the seconds it took. What a Ray separation task runs."""
    from stemmaster.project import Project, utc_now_iso
    from stemmaster.separate import separate_project
    from stemmaster.stem_import import import_render

    t0 = time.perf_counter()
    project_dir = work / "project"
    project_dir.mkdir(parents=True)
    rate, sources = import_render(job.song.path, project_dir)
    project = Project(name=job.song.path.stem, created=utc_now_iso(), source_kind="render", sample_rate=rate,
                      sources=sources, stems=[], master={}, renders=[])
    with torch_threads(job.separation_threads):
        separate_project(project, project_dir, job.options.separation, save=lambda p: None)
    data = {"rate": rate, "stems": [asdict(s) for s in project.stems], "record": asdict(project.separation)}
    atomic_write_text(work / "separation.json", json.dumps(data, indent=2) + "\n")
    return time.perf_counter() - t0


# -- local: a process pool ---------------------------------------------------

_worker_state: dict[str, Any] = {}


def _init_worker(semaphore, stop) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it sets `stop`
    _worker_state["semaphore"], _worker_state["stop"] = semaphore, stop


def _local_song(job: Job) -> dict[str, Any]:
    stop = _worker_state["stop"]
    if stop.is_set():
        return _row(job.song.name, "interrupted", error="interrupted")
    step = _guarded(_worker_state["semaphore"], stop.is_set, job.separation_threads) if job.song.kind == "render" \
        else None
    return run_song(job, cancel=stop.is_set, separation_step=step)


def _mp_context():
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["stemmaster.remaster"])  # imported once, in the server the workers fork from
    return ctx


def run_local(jobs: list[Job], *, workers: int = 1, separations: int = 1,
              on_row: Callable[[dict[str, Any]], None] = lambda r: None) -> tuple[list[dict[str, Any]], bool]:
    """Run ``jobs`` on ``workers`` processes, at most ``separations`` separating at once.

    Returns the rows and whether it was interrupted (Ctrl-C: see the module doc).
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    if not jobs:
        return [], False
    ctx = _mp_context()
    semaphore, stop = ctx.BoundedSemaphore(separations), ctx.Event()
    rows: dict[str, dict[str, Any]] = {}
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker,
                               initargs=(semaphore, stop))
    futures = {pool.submit(_local_song, job): job for job in jobs}

    def collect(future, job) -> None:
        try:
            row = future.result()
        except BrokenProcessPool:
            row = (_row(job.song.name, "interrupted", error="interrupted") if stop.is_set() else
                   _row(job.song.name, "failed", error="a worker process died (out of memory?)"))
        except Exception as exc:
            row = _row(job.song.name, "failed", error=_first_line(exc))
        rows[job.song.name] = row
        on_row(row)

    interrupted = False
    try:
        for future in as_completed(futures):
            collect(future, futures[future])
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        for future in futures:
            future.cancel()
        try:
            for future, job in futures.items():
                if job.song.name not in rows and not future.cancelled():
                    collect(future, job)
        except KeyboardInterrupt:  # a second Ctrl-C: stop the workers now
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for job in jobs:
        rows.setdefault(job.song.name, _row(job.song.name, "interrupted", error="interrupted"))
    return [rows[j.song.name] for j in jobs], interrupted


# -- Ray ---------------------------------------------------------------------

def _ray_separate(job: Job) -> dict[str, Any]:
    work = job.outdir / f"{TMP_PREFIX}sep-{job.song.name}.{_token()}"
    t0 = time.perf_counter()
    try:
        seconds = separate_song(job, work)
        return {"work": str(work), "seconds": seconds}
    except Exception as exc:
        shutil.rmtree(work, ignore_errors=True)
        if not isinstance(exc, StemmasterError):
            print(f"stemmaster batch: {job.song.name}: unexpected error\n{traceback.format_exc()}", file=sys.stderr)
        return {"error": _first_line(exc), "seconds": time.perf_counter() - t0}
    except BaseException:  # cancelled
        shutil.rmtree(work, ignore_errors=True)
        raise


def _ray_render(job: Job, work: str | None = None, sep_seconds: float = 0.0) -> dict[str, Any]:
    try:
        step = _already_separated(Path(work)) if work else None
        return run_song(job, separation_step=step, extra_seconds=sep_seconds)
    finally:
        if work:
            shutil.rmtree(work, ignore_errors=True)


def run_ray(jobs: list[Job], *, address: str | None = None, workers: int | None = None,
            separations: int | None = None,
            on_row: Callable[[dict[str, Any]], None] = lambda r: None) -> tuple[list[dict[str, Any]], bool]:
    """Run ``jobs`` as Ray tasks (see the module doc); uses a running ``ray.init`` if there is one."""
    try:
        import ray
    except ImportError:
        raise StemmasterError("--ray needs Ray: pip install 'stemmaster[ray]' (or 'ray[default]')") from None
    if not jobs:
        return [], False
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False)
    rows: dict[str, dict[str, Any]] = {}
    pending: dict[Any, tuple[str, Job]] = {}
    interrupted = False
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        node_cpus = max([int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [1])
        threads = min(max((j.separation_threads or 1) for j in jobs), max(1, node_cpus))
        jobs = [replace(j, separation_threads=threads) if j.separation_threads else j for j in jobs]
        sep_resources = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": threads}
        limit = separations or max(1, gpus)
        separate_task = ray.remote(max_retries=1)(_ray_separate).options(**sep_resources)
        render_task = ray.remote(max_retries=1)(_ray_render).options(num_cpus=1)
        waiting = [j for j in jobs if j.song.kind == "render"]
        for job in jobs:
            if job.song.kind == "stems":
                pending[render_task.remote(job)] = ("render", job)
        in_flight = 0

        def start_separations() -> None:
            nonlocal in_flight
            while waiting and in_flight < limit:
                job = waiting.pop(0)
                pending[separate_task.remote(job)] = ("separate", job)
                in_flight += 1

        def finish(row: dict[str, Any]) -> None:
            rows[row["song"]] = row
            on_row(row)

        start_separations()
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            kind, job = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # a task that Ray itself could not run (a lost worker, ...)
                result = {"error": f"ray: {_first_line(exc).splitlines()[0]}"}
            if kind == "separate":
                in_flight -= 1
                start_separations()
                if "error" in result:
                    finish(_row(job.song.name, "failed", error=result["error"], seconds=result.get("seconds")))
                else:
                    pending[render_task.remote(job, result["work"], result["seconds"])] = ("render", job)
            elif "status" in result:  # the song's row, whatever became of it
                finish(result)
            else:
                finish(_row(job.song.name, "failed", error=result["error"]))
    except KeyboardInterrupt:
        interrupted = True
        for ref in pending:
            try:
                ray.cancel(ref)
            except Exception:
                pass
    finally:
        if started:
            ray.shutdown()
    for job in jobs:
        rows.setdefault(job.song.name, _row(job.song.name, "interrupted", error="interrupted"))
    return [rows[j.song.name] for j in jobs], interrupted


# -- the batch ---------------------------------------------------------------

def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failed first, then fix the mix first, ready with repairs, ready (then interrupted); by song within."""
    def key(r):
        if r["status"] == "failed":
            rank = 0
        elif r["status"] == "interrupted":
            rank = 5
        else:
            rank = _VERDICT_RANK.get(r.get("verdict"), 4)
        return rank, r["song"]
    return sorted(rows, key=key)


def _cell(row: dict[str, Any], key: str) -> str:
    v = row.get(key)
    if v is None:
        return ""
    if key == "top_findings":
        return " ".join(v)
    if key in ("integrated_lufs", "true_peak_dbtp"):
        return f"{v:.2f}"
    if key == "seconds":
        return f"{v:.1f}"
    return str(v)


def summary_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(SUMMARY_FIELDS)
    for r in rows:
        w.writerow([_cell(r, k) for k in SUMMARY_FIELDS])
    return out.getvalue()


def summary_markdown(rows: list[dict[str, Any]], title: str = "Batch summary") -> str:
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("done", "skipped", "failed", "interrupted")}
    lines = [f"# {title}", "", ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no songs", "",
             "| " + " | ".join(SUMMARY_FIELDS) + " |", "|" + "---|" * len(SUMMARY_FIELDS)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r, k).replace("|", "\\|") for k in SUMMARY_FIELDS) + " |")
    return "\n".join(lines) + "\n"


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The summary for a terminal."""
    head = f"{'song':<24} {'status':<11} {'verdict':<18} {'fix':>3} {'maj':>3} {'min':>3} {'LUFS':>6} {'dBTP':>6} " \
           f"{'s':>6}  top findings / error"
    lines = [head]
    for r in rows:
        lufs = f"{r['integrated_lufs']:.1f}" if r["integrated_lufs"] is not None else "-"
        tp = f"{r['true_peak_dbtp']:.2f}" if r["true_peak_dbtp"] is not None else "-"
        secs = f"{r['seconds']:.1f}" if r["seconds"] is not None else "-"
        last = r["error"] if r["status"] in ("failed", "interrupted") else " ".join(r["top_findings"])
        lines.append(f"{r['song'][:24]:<24} {r['status']:<11} {(r['verdict'] or '-'):<18} {r['fix_mix']:>3} "
                     f"{r['major']:>3} {r['minor']:>3} {lufs:>6} {tp:>6} {secs:>6}  {last}")
    return "\n".join(lines)


def _sweep(outdir: Path) -> None:
    """Remove staging folders an earlier, killed run left behind (we hold OUT_DIR's lock)."""
    for p in outdir.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def batch(input_dir: Path, outdir: Path, options: BatchOptions | None = None, *, workers: int | None = None,
          separations: int | None = None, separation_threads: int | None = None, use_ray: bool = False,
          ray_address: str | None = None, echo: Callable[[str], None] = lambda line: None) -> BatchResult:
    """Remaster every song of ``input_dir`` into ``outdir`` (see the module doc); writes the summary files.

    ``workers``: processes locally (default 1), CPUs of a local Ray instance (default all);
    ``separations``: at most this many at once (default 1; on Ray, the number of GPUs or 1);
    ``separation_threads``: torch threads of a CPU separation (default: this machine's cores, on Ray
    capped at the largest node's CPUs, which a CPU separation task then asks for).
    ``echo`` gets one line per song as it finishes.
    """
    from stemmaster.lock import project_lock

    options = options or BatchOptions()
    for name, value in (("workers", workers), ("separations", separations),
                        ("separation-threads", separation_threads)):
        if value is not None and value < 1:
            raise SettingsError(f"--{name} {value}: must be at least 1")
    input_dir, outdir = Path(input_dir).resolve(), Path(outdir).resolve()
    songs = find_songs(input_dir, exclude=(outdir,))
    if options.separation.model_repo is None and os.environ.get("STEMMASTER_MODEL_REPO"):
        # explicit, so Ray workers on other machines look in the same (shared) place
        options = replace(options, separation=replace(options.separation,
                                                      model_repo=Path(os.environ["STEMMASTER_MODEL_REPO"])))
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StemmasterError(f"{outdir}: cannot create the output folder ({exc.strerror})") from None
    with project_lock(outdir, "batch"):
        _sweep(outdir)
        todo, rows = [], []
        for song in songs:
            job = Job(song, outdir, options, input_hash(song), separation_threads or default_threads())
            done = is_done(job)
            if done:
                row = dict(done["row"], status="skipped")
                rows.append(row)
                echo(f"{song.name}: skipped (done earlier with the same input and settings)")
            else:
                todo.append(job)
        count = [0]

        def on_row(row: dict[str, Any]) -> None:
            count[0] += 1
            detail = row["error"] if row["status"] != "done" else (
                f"{row['verdict']}, {row['integrated_lufs']:.1f} LUFS, {row['true_peak_dbtp']:.2f} dBTP, "
                f"{row['seconds']:.1f} s")
            echo(f"[{count[0]}/{len(todo)}] {row['song']}: {row['status']} ({detail})")

        if use_ray:
            done_rows, interrupted = run_ray(todo, address=ray_address, workers=workers, separations=separations,
                                             on_row=on_row)
        else:
            done_rows, interrupted = run_local(todo, workers=workers or 1, separations=separations or 1,
                                               on_row=on_row)
        rows = sort_rows(rows + done_rows)
        csv_path, md_path = outdir / "summary.csv", outdir / "summary.md"
        atomic_write_text(csv_path, summary_csv(rows))
        atomic_write_text(md_path, summary_markdown(rows, f"Batch summary: {input_dir.name}"))
        if interrupted and not use_ray:  # the local workers have stopped (Ray tasks may still be winding down)
            _sweep(outdir)
    return BatchResult(rows, csv_path, md_path, interrupted)


# -- command line (wired into stemmaster.cli) --------------------------------

def run_cli(args) -> int:
    from stemmaster.cli import _separation_options

    options = BatchOptions(profile=args.profile, auto=args.auto, checks=not args.no_checks,
                           separation=_separation_options(args))
    use_ray = args.ray is not None
    result = batch(Path(args.input_dir), Path(args.output), options, workers=args.workers,
                   separations=args.separations, separation_threads=args.separation_threads, use_ray=use_ray,
                   ray_address=args.ray or None, echo=lambda line: print(line, flush=True))
    print()
    print(summary_table(result.rows))
    print(f"summary: {result.csv_path} and {result.md_path}")
    if result.interrupted:
        raise KeyboardInterrupt
    if result.failed:
        print(f"stemmaster: {len(result.failed)} of {len(result.rows)} songs failed (see the summary)", file=sys.stderr)
        return 1
    return 0
