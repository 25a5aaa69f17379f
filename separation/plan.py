"""Where each model call reads and writes: demucs' ``apply_model`` segmentation, as plain numbers.

``apply_model`` (demucs/apply.py) separates a song of ``n`` samples as follows,
and this module reproduces it exactly so that the engine can run the same
model calls in its own loop:

* shift trick (``shifts >= 1``): the song is zero-padded by ``max_shift =
  int(0.5 * samplerate)`` on both sides; each shift draws ``offset`` in
  ``[0, max_shift]`` and separates the window starting ``offset`` into the
  padded song, ``n + max_shift - offset`` long; its output from
  ``max_shift - offset`` on is the song. The shifts are averaged. In song
  coordinates the window starts at ``offset - max_shift`` (<= 0); without the
  trick (``shifts == 0``) it is the song itself.
* split: the window is cut at ``range(0, window_length, stride)`` into
  segments of ``segment_length = int(samplerate * segment)`` samples (the last
  shorter), ``stride = int((1 - overlap) * segment_length)``. Each segment is
  widened symmetrically to the length the model wants (HTDemucs: its
  training length) with real audio around it where there is some, zeros
  beyond the song; the model output is centre-trimmed back.
* overlap-add with a triangular weight (``1 .. L//2, L - L//2 .. 1`` over the
  maximum), divided by the sum of the weights that covered each sample.

A bag of models runs this for each model with its own random shifts, in model
order, and mixes the models per source with the bag's weights.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Segment:
    """One model call. Positions are in samples of the song at the model's rate (may be < 0 or > n)."""

    pass_index: int
    offset: int  # position in the pass window of the first output sample
    length: int  # output samples kept (the segment's length)
    start: int  # song position of the first output sample
    input_start: int  # song position of the first model input sample (zeros outside the song)
    input_length: int  # model input length


@dataclass(frozen=True)
class Pass:
    """One model over one shifted window of the song."""

    index: int
    model_index: int
    shift_index: int
    shift_offset: int  # demucs' random offset in [0, max_shift]; 0 without the shift trick
    start: int  # song position of the window's first sample (<= 0)
    length: int  # window length in samples
    segment_length: int
    stride: int

    def segment_offsets(self) -> range:
        return range(0, self.length, self.stride)

    def weight_sum(self, first: int, stop: int, weight: "torch.Tensor") -> "torch.Tensor":
        """Sum of the triangular weights of every segment of this pass over window positions [first, stop).

        ``weight`` is the length-``segment_length`` weight as a torch tensor; the
        result is a tensor of ``stop - first`` values, accumulated in segment
        order like demucs' ``sum_weight``.
        """
        import torch

        total = torch.zeros(stop - first, dtype=weight.dtype, device=weight.device)
        lo_offset = max(0, first - self.segment_length + 1)
        k0 = -(-lo_offset // self.stride)
        for offset in range(k0 * self.stride, min(stop, self.length), self.stride):
            seg_len = min(self.length - offset, self.segment_length)
            a, b = max(first, offset), min(stop, offset + seg_len)
            if a < b:
                total[a - first:b - first] += weight[a - offset:b - offset]
        return total


def max_shift_samples(samplerate: int) -> int:
    """demucs' shift range in samples: half a second."""
    return int(0.5 * samplerate)


def shift_offsets(n_models: int, shifts: int, samplerate: int, seed: int) -> list[list[int]]:
    """Random offsets per model and shift, drawn in apply_model's order from ``random.Random(seed)``.

    For one model, ``random.seed(seed)`` before ``apply_model(..., shifts=1)``
    draws the same offset (demucs uses the global ``random``).
    """
    if shifts == 0:
        return [[] for _ in range(n_models)]
    rng = random.Random(seed)
    top = max_shift_samples(samplerate)
    return [[rng.randint(0, top) for _ in range(shifts)] for _ in range(n_models)]


def make_passes(n_samples: int, samplerate: int, segment_s_per_model: list, overlap: float,
                offsets: list[list[int]]) -> list[Pass]:
    """The passes of a separation: per model, one per shift offset (or one unshifted pass when none)."""
    passes: list[Pass] = []
    top = max_shift_samples(samplerate)
    for m, (segment, model_offsets) in enumerate(zip(segment_s_per_model, offsets)):
        segment_length = int(samplerate * segment)
        stride = int((1 - overlap) * segment_length)
        if segment_length <= 0 or stride <= 0:
            raise ValueError(f"segment of {segment} s with overlap {overlap} leaves no stride")
        windows = [(None, 0, n_samples)] if not model_offsets else [
            (o, o - top, n_samples + top - o) for o in model_offsets]
        for s, (o, start, length) in enumerate(windows):
            passes.append(Pass(index=len(passes), model_index=m, shift_index=s, shift_offset=o or 0,
                               start=start, length=length, segment_length=segment_length, stride=stride))
    return passes


def segments(p: Pass, input_length) -> list[Segment]:
    """The model calls of a pass; ``input_length(seg_len)`` gives the model input length for a segment."""
    out = []
    for offset in p.segment_offsets():
        seg_len = min(p.length - offset, p.segment_length)
        width = int(input_length(seg_len))
        start = p.start + offset
        out.append(Segment(pass_index=p.index, offset=offset, length=seg_len, start=start,
                           input_start=start - (width - seg_len) // 2, input_length=width))
    return out
