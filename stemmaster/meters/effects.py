"""What a repair did, measured on its input and output fed a block at a time.

``EffectMeter`` takes consecutive blocks ``(channels, n)`` of a stage's input
and output (``add``) and gives what ``repair_effects`` gives for that stage on
the whole arrays (``result``). It runs the accumulators the
whole-array measures of ``meters.spectral`` run (those are the same
accumulators fed one block), with the frames that straddle a block boundary
completed from the next block, so the frames are the whole signal's; only the
order of the per-bin sums differs. What it keeps, per signal:

- de-esser: two floats per 1024-sample frame (hop 512) of the mid, the
  sibilance-band and the total energy; the sibilant frames of the input are
  chosen in ``result``;
- de-harsher: the mid's long-term power spectrum, summed per bin over
  8192-point frames (4097 floats);
- low end to mono: the side's long-term power spectrum, likewise;
- transient shaper: two floats per 50 ms window, the peak and the mean square;
  the top-decile windows are chosen in ``result``;

plus under one frame of samples carried to the next block. Other kinds
(high-pass, gain, width, ...) are not measured: their result is empty.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stemmaster.meters.spectral import (_HitCrest, _largest_cut, _Resonance, _sibilance_change, _Sibilance,
                                        _SideLow)

SIDE_LOW_BELOW_HZ = 100.0  # the side's band below this, as the render reports it

_ACCUMULATORS = {
    "deesser": _Sibilance,
    "deharsher": lambda sample_rate: _Resonance(),
    "low_end_mono": lambda sample_rate: _SideLow(relative=False),
    "transient_shaper": _HitCrest,
}


class EffectMeter:
    """The effect of one repair stage of ``kind`` on a signal of ``channels`` at ``sample_rate`` Hz,
    fed the stage's input and output in consecutive blocks."""

    def __init__(self, kind: str, sample_rate: int, channels: int) -> None:
        self.kind = str(kind)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        if self.sample_rate <= 0 or self.channels < 1:
            raise ValueError(f"effect meter: {channels} channels at {sample_rate} Hz")
        make = _ACCUMULATORS.get(self.kind)
        self._before = make(self.sample_rate) if make else None
        self._after = make(self.sample_rate) if make else None
        self.frames = 0  # samples fed so far

    @property
    def measured(self) -> bool:
        """Whether ``kind`` has a measure (else ``result`` is empty)."""
        return self._before is not None

    def add(self, before: np.ndarray, after: np.ndarray) -> None:
        """Feed the next blocks of the stage's input and output, ``(channels, n)`` float32 each,
        of equal shapes (any ``n``)."""
        before, after = np.asarray(before), np.asarray(after)
        if before.shape != after.shape or before.ndim != 2 or before.shape[0] != self.channels:
            raise ValueError(f"effect meter: expected two ({self.channels}, n) blocks of one shape, "
                             f"got {before.shape} and {after.shape}")
        self.frames += before.shape[1]
        if self._before is not None and before.shape[1]:
            self._before.add(before)
            self._after.add(after)

    def result(self) -> dict[str, Any]:
        """``repair_effects([(kind, before, after)], sample_rate)`` of what was fed."""
        b, a, sr = self._before, self._after, self.sample_rate
        if self.kind == "deesser":
            return {"sibilance_db": _sibilance_change(b, a)}
        if self.kind == "deharsher":
            return {"resonance": _largest_cut(b, a, sr)}
        if self.kind == "low_end_mono":
            before, after = b.levels(sr, SIDE_LOW_BELOW_HZ), a.levels(sr, SIDE_LOW_BELOW_HZ)
            return {"side_low": {"below_hz": before["side_below_hz"], "before_dbfs": before["side_low_dbfs"],
                                 "after_dbfs": after["side_low_dbfs"]}}
        if self.kind == "transient_shaper":
            return {"hit_crest_db": {"before": b.crest_db(), "after": a.crest_db()}}
        return {}


def repair_effects(stages: list[tuple[str, np.ndarray, np.ndarray]], sample_rate: int) -> dict[str, Any]:
    """What each repair did, measured on its own whole input and output ``(kind, before, after)``
    (arrays ``(channels, samples)``), on the same frames and frequencies before and after: the
    render's report entries (``sibilance_db``, ``resonance``, ``side_low``, ``hit_crest_db``)."""
    effects: dict[str, Any] = {}
    for kind, before, after in stages:
        meter = EffectMeter(kind, sample_rate, before.shape[0])
        meter.add(before, after)
        effects.update(meter.result())
    return effects
