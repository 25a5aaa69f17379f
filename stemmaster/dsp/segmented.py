"""A stem's repair chain run segment by segment, so a long stem is never held whole.

``process_segments(chain, source)`` reads the stem from an ``AudioSource`` one
segment at a time, each with ``context_samples(chain, rate)`` samples of context
either side (fewer at the ends of the stem, where the whole-stem processing
sees the same edge), runs every processor on the extended segment in float32
(as the render does, ``Processor.native_dtypes``), and yields the segment's core
after each stage. The core of the output equals the output of the whole stem
within 1e-5 (-100 dBFS), because:

* each processor says how far its output reaches (``Processor.context_samples``):
  a zero-phase filter until its slowest pole has decayed to 1e-7, a recursive
  detector ``CONTEXT_TIME_CONSTANTS`` (14) of its longest time constant, an STFT
  a frame more, a lookahead its length. The chain's context is their sum (each
  stage spoils its input's spoilt edges further by its own reach);
* segments start on every processor's grid (``Processor.grid_samples``: the
  de-harsher's hop, the de-esser's detector block), so their frames and blocks
  fall where the stem's do;
* what a processor measures on the whole stem is measured once, by block-wise
  passes over its input (``prepare_chain``), and pinned: the de-esser's
  frequency and reference level. Memory is bounded by the segment and the
  settings' time constants, not by the stem's length: per-frame figures (a few
  hundred kB for an hour) are all that grows with it.

A core is at least ``MIN_SEGMENT_CONTEXTS`` times the context, so the context
costs little: the vocal chain's is ~2.4 s at the defaults, a core 30 s.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from stemmaster.audio_source import AudioSource, BlockWriter, FileSource
from stemmaster.dsp.chain import Chain
from stemmaster.dsp.processor import InputSegment, Processor, round_up

DEFAULT_SEGMENT_S = 30.0
MIN_SEGMENT_CONTEXTS = 4  # a core is at least this many times the context either side


def context_samples(chain: Chain, sample_rate: int) -> int:
    """Samples of context either side of a segment for ``chain``'s output on the segment's core to
    equal its output on the whole stem (within 1e-5): the sum of the processors' contexts, rounded
    up to the chain's grid."""
    sr = int(sample_rate)
    return round_up(chain.context_samples(sr), chain.grid_samples(sr))


def _core_samples(segment_s: float, sample_rate: int, context: int, grid: int) -> int:
    """Samples per core: ``segment_s`` seconds, at least ``MIN_SEGMENT_CONTEXTS`` contexts, on the grid."""
    if not segment_s > 0.0:
        raise ValueError(f"segment_s must be positive, got {segment_s}")
    return round_up(max(int(round(segment_s * sample_rate)), MIN_SEGMENT_CONTEXTS * context, 1), grid)


class _InputPasses:
    """Passes over a processor's input, the output of the (prepared) processors before it on
    ``source``: cores of ``core`` samples with ``margin`` either side.

    The first pass computes it segment by segment (each read with ``outer``, the prefix's
    context, more) and, when there is a prefix, writes the cores to a float32 WAV file in
    ``spill_dir`` (exact: the stages are float32); the later passes read that file instead of
    running the prefix again. An abandoned first pass leaves no file (the next one computes again).
    """

    def __init__(self, prefix: tuple[Processor, ...], source: AudioSource, core: int, margin: int, outer: int,
                 spill_dir: Path) -> None:
        self.prefix, self.source, self.core, self.margin, self.outer = prefix, source, core, margin, outer
        self.spill_path = spill_dir / "input.wav"
        self.spilled: FileSource | None = None

    def _spans(self) -> Iterator[tuple[int, int, int, int]]:
        n = self.source.frames
        for start in range(0, n, self.core):
            stop = min(n, start + self.core)
            yield max(0, start - self.margin), start, stop, min(n, stop + self.margin)

    def __call__(self) -> Iterator[InputSegment]:
        if not self.prefix:
            return (InputSegment(self.source.read(first, last), first, start, stop)
                    for first, start, stop, last in self._spans())
        if self.spilled is not None:
            return (InputSegment(self.spilled.read(first, last), first, start, stop)
                    for first, start, stop, last in self._spans())
        return self._compute()

    def _compute(self) -> Iterator[InputSegment]:
        n, sr = self.source.frames, self.source.sample_rate
        with BlockWriter(self.spill_path, sr, self.source.channels, "FLOAT", frames_hint=n) as writer:
            for first, start, stop, last in self._spans():
                lo, hi = max(0, first - self.outer), min(n, last + self.outer)
                x = self.source.read(lo, hi)
                for p in self.prefix:
                    x = p.process(x, sr)
                segment = InputSegment(x[:, first - lo:last - lo], first, start, stop)
                writer.write(segment.core())
                yield segment
        self.spilled = FileSource(self.spill_path)


def prepare_chain(chain: Chain, source: AudioSource, *, segment_s: float = DEFAULT_SEGMENT_S) -> Chain:
    """``chain`` with each processor's whole-stem statistics pinned (``Processor.pin_statistics``),
    measured by block-wise passes over ``source``: a processor's input is the output of the
    (prepared) processors before it, computed segment by segment. A processor with nothing to
    measure, or already pinned, is kept as it is; a chain with nothing to measure is returned as it is.
    """
    sr = int(source.sample_rate)
    if not chain.needs_statistics():
        return chain
    grid = chain.grid_samples(sr)
    prepared: list[Processor] = []
    for p in chain.processors:
        if p.needs_statistics():
            if isinstance(p, Chain):
                raise NotImplementedError("prepare_chain: a chain inside a chain cannot have its statistics pinned")
            prefix = tuple(prepared)
            margin = round_up(p.context_samples(sr), grid)
            outer = round_up(sum(q.context_samples(sr) for q in prefix), grid)
            core = _core_samples(segment_s, sr, margin + outer, grid)
            with tempfile.TemporaryDirectory(prefix="stemmaster-prepare-") as spill_dir:
                passes = _InputPasses(prefix, source, core, margin, outer, Path(spill_dir))
                p = p.pin_statistics(passes, sr, source.frames)
        prepared.append(p)
    return Chain(tuple(prepared))


def process_segments(chain: Chain, source: AudioSource, *, segment_s: float = DEFAULT_SEGMENT_S
                     ) -> Iterator[tuple[int, list[np.ndarray]]]:
    """``(start, stages)`` for consecutive segments covering ``source``: ``stages[0]`` is the input's
    core, float32 ``(channels, n)``, ``stages[k + 1]`` the output of ``chain.processors[k]`` on it
    (float32), each equal to the whole stem's within 1e-5 (and exactly so where the chain is the
    identity).

    The chain is prepared first (``prepare_chain``: nothing to do when it already is). Cores are
    ``segment_s`` seconds, or ``MIN_SEGMENT_CONTEXTS`` contexts if that is longer, on the chain's
    grid; each is read with ``context_samples`` either side (clipped at the stem's ends), every
    processor runs on the extended segment and the core is cut out. Memory: a few extended
    segments and the stages' cores, whatever the stem's length.
    """
    chain = prepare_chain(chain, source, segment_s=segment_s)
    sr = int(source.sample_rate)
    n = source.frames
    context = context_samples(chain, sr)
    core = _core_samples(segment_s, sr, context, chain.grid_samples(sr))
    for start in range(0, n, core):
        stop = min(n, start + core)
        lo, hi = max(0, start - context), min(n, stop + context)
        x = source.read(lo, hi)
        a, b = start - lo, stop - lo
        stages = [np.ascontiguousarray(x[:, a:b], dtype=np.float32)]
        for p in chain.processors:
            x = p.process(x, sr)
            stages.append(np.ascontiguousarray(x[:, a:b], dtype=np.float32))
        del x
        yield start, stages
