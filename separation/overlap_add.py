"""Overlap-add of segment outputs that hands out finished audio as soon as no later segment touches it.

demucs adds its segments into one whole-song output, pass after pass (a pass
is one model over one shifted window, :mod:`separation.plan`). Here segments
arrive sorted by song position across all passes, and each one is added as
soon as every segment demucs would have added before it *over the same
samples* is in: for every sample the additions happen in demucs' order, so
the sums are bit for bit the same. Samples before the first segment not yet
added are finished; :meth:`OverlapAdd.take_finished` hands them out and
forgets them. What is held is the span of the segments in flight plus the
overlap: ``(sources, channels, samples)`` float32, a few segments long.
"""

from __future__ import annotations

from typing import Callable

Apply = Callable[[object, int], None]  # apply(buffer, buffer_start): add one segment's share in place


class OverlapAdd:
    """``spans[p]`` lists the song spans ``(start, stop)`` of pass ``p``'s segments in order (may reach
    outside ``[0, n_samples)``); ``lead_shape`` is ``(sources, channels)``."""

    def __init__(self, spans: list[list[tuple[int, int]]], n_samples: int, lead_shape: tuple[int, int]) -> None:
        import torch

        self._spans = spans
        self._n = int(n_samples)
        self._next = [0] * len(spans)  # per pass: index of the first segment not added yet
        self._waiting: dict[tuple[int, int], Apply] = {}
        self._buffer = torch.zeros(*lead_shape, 0, dtype=torch.float32)
        self._start = 0  # song position of _buffer[..., 0]; everything before it was handed out

    def _next_start(self, p: int) -> float:
        k = self._next[p]
        return self._spans[p][k][0] if k < len(self._spans[p]) else float("inf")

    def frontier(self) -> int:
        """Song position before which every sample is finished."""
        return int(min(self._n, max(0, min((self._next_start(p) for p in range(len(self._spans))),
                                           default=self._n))))

    def add(self, pass_index: int, segment_index: int, apply: Apply) -> None:
        """Queue one segment's addition; it runs once demucs' earlier additions over its span are done."""
        self._waiting[(pass_index, segment_index)] = apply
        progressed = True
        while progressed:
            progressed = False
            for p in range(len(self._spans)):
                k = self._next[p]
                if (p, k) in self._waiting and all(self._next_start(q) >= self._spans[p][k][1] for q in range(p)):
                    self._ensure(self._spans[p][k][1])
                    self._waiting.pop((p, k))(self._buffer, self._start)
                    self._next[p] += 1
                    progressed = True

    def _ensure(self, stop: int) -> None:
        import torch

        stop = min(self._n, stop)
        have = self._start + self._buffer.shape[-1]
        if stop > have:
            pad = torch.zeros(*self._buffer.shape[:-1], stop - have, dtype=torch.float32)
            self._buffer = torch.cat([self._buffer, pad], dim=-1)

    def take_finished(self):
        """``(start, samples)``: the finished samples not handed out yet (``(sources, channels, n)``, n may be 0)."""
        stop = self.frontier()
        start = self._start
        self._ensure(stop)
        done = self._buffer[..., :stop - start]
        self._buffer = self._buffer[..., stop - start:]
        self._start = stop
        return start, done
