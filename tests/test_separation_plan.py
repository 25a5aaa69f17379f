"""demucs' segmentation as numbers: shift offsets, segment placement, weight sums."""

from __future__ import annotations

import random

import numpy as np
import pytest

from separation import plan


def test_shift_offsets_are_the_ones_apply_model_draws_after_random_seed():
    random.seed(5)
    expected = random.randint(0, 22050)
    assert plan.shift_offsets(1, 1, 44100, seed=5) == [[expected]]
    offsets = plan.shift_offsets(3, 2, 44100, seed=5)
    assert len(offsets) == 3 and all(len(o) == 2 and all(0 <= v <= 22050 for v in o) for o in offsets)
    assert plan.shift_offsets(2, 0, 44100, seed=5) == [[], []]


def test_shifted_passes_cover_the_song_from_its_first_sample():
    n, sr = 100_000, 44100
    passes = plan.make_passes(n, sr, [2.0], 0.25, [[0, 12345, 22050]])
    for p, o in zip(passes, [0, 12345, 22050]):
        assert p.start == o - 22050 and p.start + p.length == n
        assert p.segment_length == 88200 and p.stride == 66150
    (unshifted,) = plan.make_passes(n, sr, [2.0], 0.25, [[]])
    assert unshifted.start == 0 and unshifted.length == n


def test_segments_are_centred_in_the_model_input():
    (p,) = plan.make_passes(200_000, 44100, [2.0], 0.25, [[1000]])
    segs = plan.segments(p, lambda n: 88200)
    assert [s.offset for s in segs] == list(range(0, p.length, p.stride))
    assert segs[-1].length == p.length - segs[-1].offset and all(s.length == 88200 for s in segs[:-1])
    for s in segs:
        assert s.start == p.start + s.offset
        assert s.input_start == s.start - (88200 - s.length) // 2 and s.input_length == 88200


def test_weight_sums_equal_a_brute_force_overlap_add():
    torch = pytest.importorskip("torch")
    (p,) = plan.make_passes(50_000, 8000, [1.5], 0.4, [[1234]])
    L = p.segment_length
    w = torch.cat([torch.arange(1, L // 2 + 1), torch.arange(L - L // 2, 0, -1)])
    w = w / w.max()
    brute = np.zeros(p.length)
    for offset in p.segment_offsets():
        n = min(p.length - offset, L)
        brute[offset:offset + n] += w[:n].numpy()
    for first, stop in [(0, L), (L // 3, L // 3 + 5000), (p.length - 777, p.length)]:
        assert np.allclose(p.weight_sum(first, stop, w).numpy(), brute[first:stop], rtol=1e-6)


def test_no_stride_is_an_error():
    with pytest.raises(ValueError):
        plan.make_passes(1000, 100, [0.001], 0.25, [[]])
