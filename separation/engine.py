"""Separate a song into stems with a Demucs model: our own segment loop, same result as demucs' apply_model.

:func:`separate_stream` reads a song block by block from an
:class:`~stemmaster.audio_source.AudioSource` and hands every stem's finished
samples, in order, to a callback ``on_block(start, stems, residual)``: each
stem float32 ``(2, samples)`` at the song's rate, and the residual
``input - sum(stems)`` for the same samples, so nothing of the song is lost
(:func:`fold_residual`). :func:`separate` does the same for a NumPy array
``(channels, samples)`` and returns whole stems.

How it runs (see :mod:`separation.plan` for the segmentation it shares with
``demucs.apply.apply_model``): the song is resampled to the model's rate and
normalised like demucs' CLI (``(wav - mean) / std`` of the channel mean,
measured in a first read of the song, undone after), then cut into the same
overlapping segments, shifted by the same kind of random offsets (seeded:
``random.Random(seed)``), weighted with the same triangular cross-fade. Each
segment reads its own window of the song (:mod:`separation.blocks`) and is
one call of the model through :mod:`separation.fast` (same maths, faster CPU
kernels). On the CPU the segments run on one worker thread per core (at most
``MAX_WORKERS``, sharing the intra-op threads) instead of one call at a time
spread over all cores, whose thread barriers cost time and suffer badly when
other processes share the cores; a last segment that would leave a core idle
runs alone on all threads. The segments of all passes run in song order and
are added in demucs' order for every sample (:mod:`separation.overlap_add`),
so a run repeats exactly and matches the whole-song sum bit for bit; samples
no later segment touches are finished, resampled back to the song's rate
block by block and handed out. While the segments run, freed activation
memory is kept for reuse (:mod:`separation.allocator`). Memory is the model,
the segments in flight (one segment's activations per worker) and their
overlap, whatever the song's length.

torch is imported when a song is separated, not when this module is imported.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from stemmaster.audio_source import ArraySource, AudioSource, ResampledSource
from stemmaster.errors import Cancelled, SeparationError

from separation import plan as _plan
from separation.allocator import reuse_freed_memory
from separation.blocks import ModelInput
from separation.models import LoadedModel
from separation.overlap_add import OverlapAdd

ProgressCallback = Callable[[float, str], None]
CancelToken = Callable[[], bool] | threading.Event
# on_block(start, stems, residual): samples [start, start + n) of every stem, float32 (2, n) each, and of
# input - sum(stems), float32 (2, n)
BlockCallback = Callable[[int, dict[str, np.ndarray], np.ndarray], None]

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
MIN_SEGMENT_S = 1.0
MAX_SHIFTS = 20
MAX_WORKERS = 4  # segments in flight on the CPU: each holds its activations (about 0.55 GB for htdemucs)


@dataclass
class SeparationResult:
    """Stems of one song and what is left over.

    ``stems`` maps each source name (model order) to float32 ``(2, samples)``
    at ``sample_rate`` (the input's rate and length). ``residual`` is
    ``input - sum(stems)`` (stereo, float32) and ``residual_db`` its energy
    relative to the input's in dB (``-inf`` for a silent input and residual).
    ``settings`` records everything that determines the result (seeded shift
    offsets included); ``elapsed_s`` is the wall-clock time.
    """

    stems: dict[str, np.ndarray]
    residual: np.ndarray
    residual_db: float
    sample_rate: int
    model_name: str
    model_checksum: str
    settings: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0


@dataclass
class StreamSummary:
    """What :func:`separate_stream` reports once every block is handed out: like
    :class:`SeparationResult` without the audio. ``frames`` samples at ``sample_rate`` Hz."""

    residual_db: float
    sample_rate: int
    frames: int
    model_name: str
    model_checksum: str
    settings: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0


def separate(audio: np.ndarray, sample_rate: int, model: LoadedModel, *, device: str = "auto",
             shifts: int = 1, overlap: float = 0.25, segment_s: float | None = None, seed: int = 0,
             progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> SeparationResult:
    """Separate ``audio`` (``(channels, samples)`` float32/float64, mono or stereo) at ``sample_rate`` Hz.

    ``device``: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda" or "mps".
    ``shifts``: number of random time shifts averaged (demucs' shift trick;
    0 = none). ``overlap``: fraction of a segment shared with the next, in
    [0, 1). ``segment_s``: segment length in seconds (default: the model's; an
    HTDemucs accepts at most its training length). ``seed`` fixes the shift
    offsets. ``progress(fraction, message)`` is called between segments with
    a non-decreasing fraction in [0, 1], last with 1.0. ``cancel`` is a
    callable returning True or a ``threading.Event``; it is checked between
    segments and raises :class:`~stemmaster.errors.Cancelled`.

    Raises SeparationError for unusable audio (wrong shape, empty, NaN/Inf)
    or settings. The result matches ``demucs.apply.apply_model`` with the same
    shift offsets to float32 rounding (tests: better than -60 dB). It is
    :func:`separate_stream`'s blocks put together.
    """
    mix = _checked_audio(audio, sample_rate)
    n = mix.shape[1]
    stems = {name: np.empty((2, n), dtype=np.float32) for name in model.sources}
    residual = np.empty((2, n), dtype=np.float32)

    def collect(start: int, block: dict[str, np.ndarray], rest: np.ndarray) -> None:
        stop = start + rest.shape[1]
        for name, samples in block.items():
            stems[name][:, start:stop] = samples
        residual[:, start:stop] = rest

    summary = separate_stream(ArraySource(mix, int(sample_rate)), model, collect, device=device, shifts=shifts,
                              overlap=overlap, segment_s=segment_s, seed=seed, progress=progress, cancel=cancel)
    return SeparationResult(stems=stems, residual=residual, residual_db=summary.residual_db,
                            sample_rate=summary.sample_rate, model_name=summary.model_name,
                            model_checksum=summary.model_checksum, settings=summary.settings,
                            elapsed_s=summary.elapsed_s)


def separate_stream(source: AudioSource, model: LoadedModel, on_block: BlockCallback, *, device: str = "auto",
                    shifts: int = 1, overlap: float = 0.25, segment_s: float | None = None, seed: int = 0,
                    progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> StreamSummary:
    """Separate ``source`` (mono or stereo, any rate) block by block; hand the stems to ``on_block``.

    ``on_block(start, stems, residual)`` is called with consecutive spans
    covering the song once, in order: ``stems`` maps each source name (model
    order) to float32 ``(2, n)``, ``residual`` is ``input - sum(stems)`` over
    the same ``n`` samples (float32 ``(2, n)``), all at the song's rate. The
    source is read in blocks, three times over: once for the normalisation
    (it needs the whole song's statistics before the first segment), once
    for the segments' windows, once for the residual. The settings and errors
    are :func:`separate`'s; the samples are the ones it returns. An exception
    raised by ``on_block`` stops the separation and propagates.
    """
    started = time.perf_counter()
    _check_source(source)
    _check_settings(shifts, overlap, segment_s, seed)
    should_stop = _cancel_check(cancel)
    report = progress or (lambda fraction, message: None)

    import torch

    dev = _resolve_device(device)
    model_sr = int(model.samplerate)
    reader = ModelInput(source, model.audio_channels, model_sr)
    report(0.0, "separating: starting")
    reader.measure(should_stop)
    out = _SongRateOutput(reader, model.sources, model.audio_channels, on_block)
    with torch.inference_mode():
        offsets, workers, finished = _run(model, reader, dev, shifts=shifts, overlap=overlap, segment_s=segment_s,
                                          seed=seed, report=report, should_stop=should_stop)
        with reuse_freed_memory(), _memory_errors(model.name), contextlib.closing(finished):
            out.take(finished)
    settings = {
        "device": dev.type, "shifts": int(shifts), "overlap": float(overlap),
        "segment_s": None if segment_s is None else float(segment_s), "seed": int(seed),
        "shift_offsets": offsets, "model_sample_rate": model_sr, "workers": workers,
        "model_signature": model.signature,
    }
    report(1.0, "separating: done")
    return StreamSummary(residual_db=out.residual_db(), sample_rate=int(source.sample_rate), frames=int(source.frames),
                         model_name=model.name, model_checksum=model.checksum, settings=settings,
                         elapsed_s=time.perf_counter() - started)


def fold_residual(stems: dict[str, np.ndarray], residual: np.ndarray, into: str = "other") -> dict[str, np.ndarray]:
    """``stems`` with ``residual`` kept, so that they sum to the input (to float32 rounding); works per block.

    ``into="other"`` adds the residual to the "other" stem; ``into="own"``
    returns it as a stem named "residual". The arrays given are not modified.
    """
    if into == "own":
        return {**stems, "residual": residual}
    if into == "other":
        if "other" not in stems:
            raise SeparationError(f"the model has no 'other' stem (stems: {', '.join(stems)}); use into='own'")
        return {name: (stem + residual if name == "other" else stem) for name, stem in stems.items()}
    raise SeparationError(f"into must be 'other' or 'own', got {into!r}")


def stems_with_residual(result: SeparationResult, into: str = "other") -> dict[str, np.ndarray]:
    """The stems with the residual kept, so that they sum to the input (to float32 rounding).

    ``into="other"`` adds the residual to the "other" stem; ``into="own"``
    returns it as a fifth stem named "residual". The result's arrays are not
    modified.
    """
    return fold_residual(result.stems, result.residual, into)


# ---------------------------------------------------------------- checks


def _checked_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool) or sample_rate <= 0:
        raise SeparationError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    a = np.asarray(audio)
    if a.ndim != 2 or a.shape[0] not in (1, 2):
        raise SeparationError(f"audio must be shaped (channels, samples) with 1 or 2 channels, got {a.shape}")
    if a.dtype not in (np.float32, np.float64):
        raise SeparationError(f"audio must be float32 or float64, got {a.dtype}")
    if a.shape[1] == 0:
        raise SeparationError("audio is empty (0 samples)")
    finite = np.isfinite(a)
    if not finite.all():
        bad = int(a.size - np.count_nonzero(finite))
        first = int(np.argmin(finite.all(axis=0)))
        raise SeparationError(f"audio contains {bad} NaN/Inf sample{'s' if bad != 1 else ''} "
                              f"(first at {first / sample_rate:.3f} s); cannot separate it")
    return a.astype(np.float32, copy=False)


def _check_source(source: AudioSource) -> None:
    rate = getattr(source, "sample_rate", None)
    if not isinstance(rate, (int, np.integer)) or isinstance(rate, bool) or rate <= 0:
        raise SeparationError(f"sample_rate must be a positive whole number of Hz, got {rate!r}")
    if getattr(source, "channels", None) not in (1, 2):
        raise SeparationError(f"audio must have 1 or 2 channels, got {getattr(source, 'channels', None)!r}")
    if not getattr(source, "frames", 0):
        raise SeparationError("audio is empty (0 samples)")


def _check_settings(shifts: int, overlap: float, segment_s: float | None, seed: int) -> None:
    if not isinstance(shifts, (int, np.integer)) or isinstance(shifts, bool) or not 0 <= shifts <= MAX_SHIFTS:
        raise SeparationError(f"shifts must be a whole number from 0 to {MAX_SHIFTS}, got {shifts!r}")
    if not isinstance(overlap, (int, float)) or isinstance(overlap, bool) or not 0.0 <= overlap < 1.0:
        raise SeparationError(f"overlap must be in [0, 1), got {overlap!r}")
    if segment_s is not None and (not isinstance(segment_s, (int, float)) or isinstance(segment_s, bool)
                                  or not math.isfinite(segment_s) or segment_s < MIN_SEGMENT_S):
        raise SeparationError(f"segment_s must be at least {MIN_SEGMENT_S} s, got {segment_s!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise SeparationError(f"seed must be a whole number, got {seed!r}")


def _cancel_check(cancel: CancelToken | None) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    if callable(cancel):
        return lambda: bool(cancel())
    raise SeparationError(f"cancel must be a callable or a threading.Event, got {type(cancel).__name__}")


def _resolve_device(device: str):
    import torch

    if device not in DEVICES:
        raise SeparationError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise SeparationError("device 'cuda' requested but this torch build sees no CUDA GPU; use --device cpu")
    elif device == "mps" and not mps_ok:
        raise SeparationError("device 'mps' requested but Metal (MPS) is not available; use --device cpu")
    return torch.device(device)


# ---------------------------------------------------------------- the segment loop


_FAST: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_FAST_LOCK = threading.Lock()


def _fast(net):
    """The accelerated copy of a demucs network (built once per network, shares its parameters)."""
    from separation.fast import accelerate

    with _FAST_LOCK:
        fast = _FAST.get(net)
        if fast is None:
            fast = accelerate(net)
            _FAST[net] = fast
        return fast


def _members(bag) -> tuple[list, list[list[float]]]:
    """Networks of a model or bag, and the per-source weight of each (normalised per source)."""
    nets = list(bag.models) if hasattr(bag, "models") else [bag]
    n_sources = len(bag.sources)
    raw = getattr(bag, "weights", None) or [[1.0] * n_sources for _ in nets]
    totals = [sum(float(row[k]) for row in raw) for k in range(n_sources)]
    return nets, [[float(row[k]) / totals[k] for k in range(n_sources)] for row in raw]


def _segment_and_width(net, segment_s: float | None):
    """Segment length in seconds for ``net`` and its model-input length for a segment of n samples."""
    from demucs.htdemucs import HTDemucs

    sr = net.samplerate
    if isinstance(net, HTDemucs):
        if segment_s is not None and segment_s > float(net.segment):
            raise SeparationError(f"segment_s={segment_s} s is longer than this model's "
                                  f"{float(net.segment):.2f} s training segment")
        if segment_s is not None:
            return segment_s, lambda n: int(segment_s * sr)
        return net.segment, net.valid_length
    segment = net.segment if segment_s is None else segment_s
    if hasattr(net, "valid_length"):
        return segment, net.valid_length
    return segment, lambda n: n


def _run(model: LoadedModel, reader: ModelInput, dev, *, shifts, overlap, segment_s, seed, report, should_stop):
    """Plan every segment of every pass in song order. Returns (shift offsets, workers, finished):
    iterating ``finished`` runs the segments and yields the finished model output in order
    (normalised, ``(sources, channels, n)`` torch float32); close it if it is left early."""
    import torch

    nets, weights = _members(model.model)
    sr = int(model.samplerate)
    n = reader.frames
    seg_and_width = [_segment_and_width(net, segment_s) for net in nets]
    offsets = _plan.shift_offsets(len(nets), shifts, sr, seed)
    passes = _plan.make_passes(n, sr, [sw[0] for sw in seg_and_width], overlap, offsets)
    per_pass = [_plan.segments(p, seg_and_width[p.model_index][1]) for p in passes]
    work = sorted(((p, k, seg) for p in passes for k, seg in enumerate(per_pass[p.index])),
                  key=lambda item: (item[2].start, item[0].index, item[1]))
    adder = OverlapAdd([[(seg.start, seg.start + seg.length) for seg in segs] for segs in per_pass], n,
                       (len(model.sources), reader.model_channels))
    fast_nets = [_fast(net).to(dev) for net in nets]
    tri = {}
    for p in passes:
        if p.segment_length not in tri:
            L = p.segment_length
            w = torch.cat([torch.arange(1, L // 2 + 1), torch.arange(L - L // 2, 0, -1)])
            tri[L] = w / w.max()
    shift_count = max(1, shifts)

    def compute(item):  # runs in a worker thread: inference mode is per thread
        p, _, seg = item
        with torch.inference_mode():
            window = reader.read(seg.input_start, seg.input_start + seg.input_length).to(dev)
            y = fast_nets[p.model_index](window[None])[0]
        delta = y.shape[-1] - seg.length
        return y[..., delta // 2: delta // 2 + seg.length].to("cpu")

    def accumulate(item, y):
        p, k, seg = item

        def add_into(out, out_start):
            weight = tri[p.segment_length]
            coef = weight[:seg.length] / p.weight_sum(seg.offset, seg.offset + seg.length, weight)
            a, b = max(0, -seg.start), min(seg.length, n - seg.start)
            if a >= b:
                return
            src = torch.tensor(weights[p.model_index], dtype=torch.float32) / shift_count
            out[:, :, seg.start + a - out_start:seg.start + b - out_start].addcmul_(
                y[..., a:b], src[:, None, None] * coef[None, None, a:b])

        adder.add(p.index, k, add_into)
        _, finished = adder.take_finished()
        return finished if finished.shape[-1] else None

    workers = 1
    if dev.type == "cpu":
        workers = max(1, min(torch.get_num_threads(), MAX_WORKERS, len(work)))
    total = len(work)
    t0 = time.perf_counter()

    def step(done):
        elapsed = time.perf_counter() - t0
        eta = elapsed / done * (total - done)
        report(done / total, f"separating: segment {done}/{total}, about {eta:.0f} s left")

    def finished():
        if workers == 1:
            for done, item in enumerate(work, 1):
                if should_stop():
                    raise Cancelled("separation cancelled")
                piece = accumulate(item, compute(item))
                if piece is not None:
                    yield piece
                step(done)
        else:
            yield from _run_parallel(work, workers, compute, accumulate, step, should_stop)

    return offsets, workers, finished()


@contextlib.contextmanager
def _memory_errors(name: str):
    """Running out of memory is something the user can act on: one line, with what to try."""
    try:
        yield
    except MemoryError:
        raise SeparationError(f"not enough memory to separate with {name}; close other programs or "
                              f"use a shorter segment_s") from None
    except RuntimeError as exc:
        text = str(exc).lower()
        if "can't allocate memory" in text or "out of memory" in text:
            raise SeparationError(f"not enough memory to separate with {name} "
                                  f"({' '.join(str(exc).split())[:120]}); close other programs, use a "
                                  f"shorter segment_s or the CPU") from None
        raise


def _run_parallel(work, workers, compute, accumulate, step, should_stop):
    """Segments on ``workers`` threads sharing the intra-op threads (one each on a 2-core machine).

    Results are added in segment order; yields what ``accumulate`` finishes (a generator).

    The ``len(work) % workers`` last segments would leave cores idle, so they run
    afterwards one at a time with all intra-op threads.
    """
    import torch
    from concurrent.futures import ThreadPoolExecutor

    tail = len(work) % workers
    pooled, last = work[:len(work) - tail], work[len(work) - tail:]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // workers))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stemmaster-separate")
    done = 0
    try:
        pending: deque = deque()
        queue = iter(pooled)
        for item in queue:
            pending.append((item, pool.submit(compute, item)))
            if len(pending) > workers:
                break
        while pending:
            item, future = pending.popleft()
            piece = accumulate(item, future.result())
            if piece is not None:
                yield piece
            done += 1
            step(done)
            if should_stop() and done < len(work):
                raise Cancelled("separation cancelled")
            nxt = next(queue, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(compute, nxt)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)
    for item in last:
        piece = accumulate(item, compute(item))
        if piece is not None:
            yield piece
        done += 1
        step(done)
        if should_stop() and done < len(work):
            raise Cancelled("separation cancelled")


# ---------------------------------------------------------------- output


class _SongRateOutput:
    """Finished model output to song-rate stems and residual, handed to ``on_block`` in order.

    Resampled by ``ResampledSource.stream``, which holds only the filter's reach of stems between
    blocks; the energies of the input and of the residual are summed as they pass.
    """

    def __init__(self, reader: ModelInput, sources, model_channels: int, on_block: BlockCallback) -> None:
        self.reader, self.sources, self.model_channels, self.on_block = reader, tuple(sources), model_channels, on_block
        self.frames = reader.song.frames
        self.done = 0  # song samples handed out
        self.energy_in = self.energy_residual = 0.0

    def take(self, finished) -> None:
        """Hand out ``finished`` (normalised model output ``(sources, channels, n)``, torch float32, in order)
        at the song's rate, then the end of the song."""
        rows = (piece.mul(self.reader.std).add_(self.reader.mean).numpy().reshape(-1, piece.shape[-1])
                for piece in finished)
        for block in ResampledSource.stream(rows, self.reader.model_hz, self.reader.song_hz):
            self._hand_out(block)
        if self.done < self.frames:  # cannot happen with ceil lengths; kept so the song is always covered
            self._hand_out(np.zeros((len(self.sources) * self.model_channels, self.frames - self.done), np.float32))

    def _hand_out(self, rows: np.ndarray) -> None:
        n = min(rows.shape[1], self.frames - self.done)
        if n <= 0:
            return
        start = self.done
        per_source = rows[:, :n].reshape(len(self.sources), self.model_channels, n)
        stems = {}
        for name, stem in zip(self.sources, per_source):
            stems[name] = np.ascontiguousarray(np.repeat(stem, 2, axis=0) if stem.shape[0] == 1 else stem,
                                               dtype=np.float32)
        song = self.reader.stereo(start, start + n)
        total = song.astype(np.float64)
        for stem in stems.values():
            total -= stem
        residual = total.astype(np.float32)
        self.energy_in += _energy(song)
        self.energy_residual += _energy(residual)
        self.done += n
        self.on_block(start, stems, residual)

    def residual_db(self) -> float:
        """The residual's energy relative to the input's, in dB (-inf: no residual; inf: silent input)."""
        if self.energy_residual == 0.0:
            return float("-inf")
        if self.energy_in == 0.0:
            return float("inf")
        return 10.0 * math.log10(self.energy_residual / self.energy_in)


def _energy(a: np.ndarray) -> float:
    flat = a.reshape(-1).astype(np.float64)
    return float(np.dot(flat, flat))
