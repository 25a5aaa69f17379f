"""The contract every repair processor keeps (DESIGN: shape, dtype, purity, silence, finiteness, delay)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate

from stemmaster.dsp.eq import ToneEQ
from stemmaster.dsp.low_end_mono import LowEndMono
from stemmaster.dsp.width import StereoWidth
from stemmaster.repair import PROCESSORS, ROLE_DEFAULTS, processor_class

SR = 48000


def _active(kind: str):
    """The processor with settings that make it do something (the role defaults where they exist)."""
    for chain in ROLE_DEFAULTS.values():
        for k, values in chain:
            if k == kind and values:
                return processor_class(kind).from_settings(values)
    extra = {"gain": {"gain_db": -6.0}, "stereo_width": {"width": 1.5}, "highpass": {"highpass_hz": 80.0},
             "transient_shaper": {"attack_db": 6.0}}
    return processor_class(kind).from_settings(extra.get(kind, {}))


def _music(n: int, rng) -> np.ndarray:
    t = np.arange(n) / SR
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)
    hits = np.zeros(n)
    hits[:: SR // 4] = 1.0
    clicks = np.convolve(hits, np.exp(-np.arange(2000) / 200.0) * rng.standard_normal(2000))[:n] * 0.3
    noise = rng.standard_normal((2, n)) * 0.02
    return np.vstack([tone + clicks, 0.8 * tone + clicks]) + noise


@pytest.mark.parametrize("kind", sorted(PROCESSORS))
def test_contract(kind):
    rng = np.random.default_rng(0)
    p = _active(kind)
    x = _music(SR * 2, rng)
    for dtype in (np.float32, np.float64):
        xin = x.astype(dtype)
        keep = xin.copy()
        y = p.process(xin, SR)
        assert y.shape == xin.shape and y.dtype == dtype
        assert np.array_equal(xin, keep), "input mutated"
        assert np.all(np.isfinite(y))
    # no delay: the cross-correlation of output and input peaks at lag 0
    y = p.process(x, SR)
    c = correlate(y[0], x[0], mode="full", method="fft")
    assert int(np.argmax(np.abs(c))) - (x.shape[1] - 1) == 0
    # silence in, silence out; DC and full scale stay finite; mono works
    assert np.max(np.abs(p.process(np.zeros((2, SR)), SR))) < 1e-9
    assert np.all(np.isfinite(p.process(np.full((2, SR), 0.5), SR)))
    assert np.all(np.isfinite(p.process(np.sign(x), SR)))
    assert p.process(x[:1], SR).shape == (1, x.shape[1])
    # settings round trip through the project file's plain dict
    assert type(p).from_settings(p.settings()) == p


@pytest.mark.parametrize("kind", sorted(PROCESSORS))
def test_neutral_defaults_are_safe_on_short_input(kind):
    p = processor_class(kind)()
    x = np.random.default_rng(1).standard_normal((2, 100)) * 0.1
    y = p.process(x, SR)
    assert y.shape == x.shape and np.all(np.isfinite(y))


@pytest.mark.parametrize("make", [
    lambda: LowEndMono(crossover_hz=150.0),
    lambda: ToneEQ(low_mid_db=-2.0, high_shelf_db=1.5),
    lambda: StereoWidth(width=0.7, mid_gain_db=1.5),
])
@pytest.mark.parametrize("channels", [1, 2])
def test_bus_stages_in_place_equal_their_process(make, channels):
    # the bus runs these over its own array in place (one whole-song copy, not one per stage)
    processor = make()
    x = np.random.default_rng(channels).standard_normal((channels, 30000)) * 0.2
    expected = processor.process(x, 44100)
    y = x.copy()
    assert processor.apply_in_place(y, 44100) is None
    assert np.array_equal(y, expected)
