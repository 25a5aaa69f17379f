"""A chain of processors is itself a processor: each runs on the previous one's output."""

from __future__ import annotations

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

    def kinds(self) -> list[str]:
        return [p.kind for p in self.processors]
