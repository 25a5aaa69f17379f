"""A chain of processors is itself a processor: each runs on the previous one's output."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from stemmaster.dsp.processor import Processor


@dataclass(frozen=True)
class Chain(Processor):
    """Processors applied in order; an empty chain is the identity."""

    kind: ClassVar[str] = "chain"

    processors: tuple[Processor, ...] = ()

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        out = audio
        for p in self.processors:
            out = p.process(out, sample_rate).astype(np.float64, copy=False)
        return out.copy() if out is audio else out

    def context_samples(self, sample_rate: int) -> int:
        """The sum of the processors' contexts (each runs on the previous one's output, so the
        part of a segment spoiled by its edges grows by each processor's reach in turn)."""
        return sum(p.context_samples(sample_rate) for p in self.processors)

    def grid_samples(self, sample_rate: int) -> int:
        """The least common multiple of the processors' grids (1 for an empty chain)."""
        return math.lcm(1, *(p.grid_samples(sample_rate) for p in self.processors))

    def needs_statistics(self) -> bool:
        return any(p.needs_statistics() for p in self.processors)

    def kinds(self) -> list[str]:
        return [p.kind for p in self.processors]
