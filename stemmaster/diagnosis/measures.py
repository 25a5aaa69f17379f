"""The numbers the detectors judge, each read off one ``SignalAnalysis``.

Every function returns plain floats (dB, Hz, seconds, counts), so a
finding's measurement can be taken again on the repaired audio and compared
(``diagnosis.auto.compare``). NaN means "cannot be measured here" (too short,
silent, mono where stereo is needed); detectors skip those.
"""

from __future__ import annotations

import math

import numpy as np

from stemmaster.diagnosis.analysis import SignalAnalysis, loud_frames, sibilant_frames
from stemmaster.diagnosis.spectrum import band_means, db

NAN = float("nan")


def resonance(a: SignalAnalysis) -> dict[str, float]:
    """The strongest persistent peak of the long-term spectrum within 1-10 kHz (``spectrum.RESONANCE_BAND_HZ``).

    Candidates are the five largest peaks of ``meters.spectral.resonance_profile``'s
    excess: the long-term mid spectrum averaged over 1/6 octave on a
    48-per-octave grid, over the median of +-1/3 octave around (the render
    report reads the de-harsher's effect on the same scale). Each candidate's
    persistence is the fraction of loud frames in which its 1/6-octave band
    stands at least 3 dB over the mean of its neighbours 1/3 octave away. A
    ring stays put while the notes move: the demo's planted 3 kHz resonance
    and ringing real stems read 0.80-0.93, voices' and instruments' harmonic
    peaks 0.36-0.68 (corpus and synthetic songs). ``excess_db`` is the largest
    candidate excess weighted by its persistence (0 at or below 0.6, full at
    0.85 and above), so a harmonic peak of a held note counts for little and
    the measure falls when a de-harsher takes the ring down. (The candidates
    and their persistence are read in ``analyse``: the profile in its first
    pass, the loud frames' bands in its second.)
    """
    if a.resonance_hz.size == 0:  # fewer than 8 loud frames, or nothing measurable in the band
        return {"frequency_hz": NAN, "excess_db": NAN, "persistence": NAN, "peak_excess_db": NAN}
    persistence = a.resonance_persistence
    weight = np.clip((persistence - 0.6) / 0.25, 0.0, 1.0)
    scores = np.maximum(a.resonance_excess_db, 0.0) * weight
    j = int(np.argmax(scores))
    return {"frequency_hz": float(a.resonance_hz[j]), "excess_db": float(scores[j]),
            "persistence": float(persistence[j]), "peak_excess_db": float(a.resonance_excess_db[j])}


def sibilance(a: SignalAnalysis) -> dict[str, float]:
    """Sibilant-band (4.5-11 kHz) energy of the sibilant frames over the vowels' level, dB.

    The sibilant frames are the 5 % of non-silent frames (46 ms at 44.1 kHz)
    with the most energy in the band (about 3 s of every minute: the esses of
    a busy vocal); the vowels' level is the mean energy of the louder half of
    the non-silent frames. A de-essed or soft-spoken vocal's esses sit 15 dB
    or more under its vowels; raw, bright esses come within 10 dB.
    ``frequency_hz`` is where the band peaks in those frames (what a
    de-esser centres on; read in ``analyse``'s second pass).
    """
    if a.frames == 0:
        return {"sibilance_db": NAN, "frequency_hz": NAN}
    total = a.frame_mid
    live, top = sibilant_frames(total, a.frame_sibilant)
    if live.size < 4:
        return {"sibilance_db": NAN, "frequency_hz": NAN}
    vowels = live[total[live] >= np.median(total[live])]
    return {"sibilance_db": float(db(a.frame_sibilant[top].mean()) - db(total[vowels].mean())),
            "frequency_hz": a.sibilant_peak_hz}


def octave_levels(a: SignalAnalysis, centres_hz: np.ndarray) -> np.ndarray:
    """Long-term power (mid + side, i.e. the mean of the channels) per octave band around ``centres_hz``, dB."""
    mean = a.mid_mean + a.side_mean
    lo = np.searchsorted(a.freqs, centres_hz / math.sqrt(2.0))
    hi = np.maximum(np.searchsorted(a.freqs, centres_hz * math.sqrt(2.0)), lo + 1)
    cumulative = np.concatenate([[0.0], np.cumsum(mean)])
    return db(cumulative[np.minimum(hi, mean.size)] - cumulative[np.minimum(lo, mean.size - 1)])


def low_mid_excess(a: SignalAnalysis) -> dict[str, float]:
    """Energy of 200-500 Hz against its neighbours, relative to an equal-energy-per-octave curve, dB.

    The reference is the long-term balance of commercial pop/rock mixes,
    roughly equal energy per octave from 100 Hz to 2 kHz (Pestana et al.,
    "Spectral characteristics of popular commercial recordings 1950-2010",
    AES 135, 2013, find a -4.5 dB/octave slope of the 1/3-octave density
    above about 100 Hz, which is near-flat per octave in that range). The
    measure is the mean of the 250 and 354 Hz octave bands (200-500 Hz) over
    the mean of the 125 Hz and 1 kHz octave bands; a muddy mix builds up
    several dB there.
    """
    if a.frames == 0 or not np.any(a.mid_mean):
        return {"low_mid_excess_db": NAN}
    levels = octave_levels(a, np.array([125.0, 250.0, 354.0, 1000.0]))
    return {"low_mid_excess_db": float(0.5 * (levels[1] + levels[2]) - 0.5 * (levels[0] + levels[3]))}


def low_end_width(a: SignalAnalysis, below_hz: float = 150.0) -> dict[str, float]:
    """Side over mid energy below ``below_hz`` (dB) and the L/R correlation there (from the spectra:
    ``(M - S) / (M + S)``), over the loud frames' long-term spectrum. NaN for mono or no low end."""
    if not a.stereo or a.frames == 0:
        return {"side_to_mid_low_db": NAN, "correlation_low": NAN}
    band = (a.freqs > 20.0) & (a.freqs < below_hz)
    m = float(a.mid_mean[band].sum())
    s = float(a.side_mean[band].sum())
    total = float(a.mid_mean.sum() + a.side_mean.sum())
    if m + s <= total * 1e-4:  # less than -40 dB of the signal is down there: nothing to judge
        return {"side_to_mid_low_db": NAN, "correlation_low": NAN}
    return {"side_to_mid_low_db": float(db(s) - db(m)), "correlation_low": (m - s) / (m + s)}


def width(a: SignalAnalysis) -> dict[str, float]:
    """Side over mid energy (dB) and L/R correlation of the whole band, from the long-term spectra."""
    if not a.stereo or a.frames == 0:
        return {"side_to_mid_db": NAN, "correlation": NAN}
    m, s = float(a.mid_mean.sum()), float(a.side_mean.sum())
    if m + s <= 0.0:
        return {"side_to_mid_db": NAN, "correlation": NAN}
    return {"side_to_mid_db": float(db(s) - db(m)), "correlation": (m - s) / (m + s)}


MONO_BANDS_HZ = np.array([63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0])


def mono_loss(a: SignalAnalysis) -> dict[str, float]:
    """Mono fold-down loss per octave band: the mono sum's energy over the channels' mean energy,
    ``10 log10(M / (M + S))`` in dB (0 for mono content, -3 for uncorrelated channels, far below for
    out-of-phase ones). Reports the worst band among those within 30 dB of the loudest."""
    if not a.stereo or a.frames == 0:
        return {"worst_loss_db": NAN, "worst_band_hz": NAN}
    lo = np.searchsorted(a.freqs, MONO_BANDS_HZ / math.sqrt(2.0))
    hi = np.maximum(np.searchsorted(a.freqs, MONO_BANDS_HZ * math.sqrt(2.0)), lo + 1)
    cm = np.concatenate([[0.0], np.cumsum(a.mid_mean)])
    cs = np.concatenate([[0.0], np.cumsum(a.side_mean)])
    hi = np.minimum(hi, a.mid_mean.size)
    m, s = cm[hi] - cm[lo], cs[hi] - cs[lo]
    total = m + s
    if total.max() <= 0.0:
        return {"worst_loss_db": NAN, "worst_band_hz": NAN}
    judged = np.flatnonzero(total >= total.max() * 1e-3)
    loss = db(m) - db(total)
    # the worst band; among bands within 0.5 dB of it (a skew of the whole stem), the one with most energy
    close = judged[loss[judged] <= loss[judged].min() + 0.5]
    j = int(close[np.argmax(total[close])])
    return {"worst_loss_db": float(loss[j]), "worst_band_hz": float(MONO_BANDS_HZ[j])}


def dynamics(a: SignalAnalysis) -> dict[str, float]:
    """PLR (true peak minus integrated loudness, dB), the short-term loudness range (LU, EBU 3342)
    and the crest factor of the loud moments (``meters.spectral.hit_crest_db``, dB)."""
    from stemmaster.meters.loudness import loudness_range_from_short_term

    tp = a.true_peak_dbtp()
    plr = tp - a.integrated_lufs if math.isfinite(a.integrated_lufs) and math.isfinite(tp) else NAN
    lra = loudness_range_from_short_term(a.short_term) if a.short_term.size else NAN
    return {"plr_db": plr, "loudness_range_lu": lra, "hit_crest_db": a.hit_crest_db}


def clipping(a: SignalAnalysis) -> dict[str, float]:
    """Runs of 3+ identical samples at the signal's peak (per channel), how many seconds hold one,
    as a fraction of the signal's seconds, and the 4x true peak in dBTP."""
    seconds = max(1, a.clip_runs.size)
    return {"clip_runs": float(a.clip_runs.sum()), "clipped_fraction": float(np.mean(a.clip_runs > 0)),
            "true_peak_dbtp": a.true_peak_dbtp(), "seconds": float(seconds)}


def spectral_cliff(a: SignalAnalysis) -> dict[str, float]:
    """Where the long-term spectrum falls off a cliff (a lowpass of a lossy encoder or a
    band-limited render): the highest frequency above 5 kHz at which the 1/12-octave level drops by
    at least 25 dB within 1/6 octave and stays down to the top of the grid. NaN when no cliff."""
    if a.frames == 0:
        return {"cutoff_hz": NAN, "drop_db": NAN}
    mean = a.mid_mean + a.side_mean
    top = min(21000.0, a.sample_rate * 0.49)
    grid = np.geomspace(5000.0, top, 96)  # 1/24-octave steps or finer
    step = max(1, int(round(len(grid) / (math.log2(top / 5000.0) * 6.0))))  # 1/6 octave in grid steps
    level = db(band_means(mean, a.freqs, grid, 1.0 / 24.0))
    if level.size <= step:
        return {"cutoff_hz": NAN, "drop_db": NAN}
    drops = level[:-step] - level[step:]
    above_max = np.maximum.accumulate(level[::-1])[::-1]  # the most that remains at or above each point
    best, where = 0.0, -1
    for j in np.flatnonzero(drops >= 25.0):  # few candidates: a loop over grid points, not samples
        if above_max[j + step] <= level[j] - 25.0 and drops[j] > best:
            best, where = float(drops[j]), j
    if where < 0:
        return {"cutoff_hz": NAN, "drop_db": NAN}
    return {"cutoff_hz": float(grid[where]), "drop_db": best}


def dc_offset(a: SignalAnalysis) -> dict[str, float]:
    """The largest channel mean, in dBFS."""
    dc = float(np.max(np.abs(a.dc))) if a.dc.size else 0.0
    return {"dc_dbfs": 20.0 * math.log10(dc) if dc > 0 else float("-inf")}


def noise_floor(a: SignalAnalysis) -> dict[str, float]:
    """The floor the music sits on: the level of the quietest 5 % of non-silent frames (dB relative to the
    loud frames' mean level) and their spectral flatness above 1 kHz (1 for white noise, near 0 for tones).

    Only a noise-like floor counts as noise; a quiet passage of music is tonal. Digital silence
    (below -120 dBFS) is not part of the floor.
    """
    if a.frames < 20:
        return {"floor_db": NAN, "flatness": NAN}
    total = a.frame_mid + a.frame_side
    live = np.flatnonzero(total > 1e-12)
    if live.size < 20:
        return {"floor_db": NAN, "flatness": NAN}
    k = max(1, int(live.size * 0.05))
    quiet = live[np.argsort(total[live])[:k]]
    loud = loud_frames(a.frame_mid)
    reference = float(total[loud].mean()) if loud.size else float(total.mean())
    return {"floor_db": float(db(total[quiet].mean()) - db(reference)),
            "flatness": float(np.median(a.frame_flatness[quiet]))}


def loudness_jumps(a: SignalAnalysis, window_s: float = 4.0) -> dict[str, float]:
    """The largest jump of loudness between neighbouring sections: at each 100 ms step, the mean
    momentary energy of the next ``window_s`` over that of the previous ``window_s`` (in LU), over
    the points where both sides are within 20 LU of the integrated loudness (the music, not a fade).
    ``at_s`` is where it happens."""
    e = np.asarray(a.hop_energy, dtype=np.float64)
    w = int(round(window_s / 0.1))
    if e.size < 2 * w + 1 or not math.isfinite(a.integrated_lufs):
        return {"jump_lu": NAN, "at_s": NAN}
    c = np.concatenate([[0.0], np.cumsum(e)])
    centres = np.arange(w, e.size - w + 1)
    before = (c[centres] - c[centres - w]) / w
    after = (c[centres + w] - c[centres]) / w
    lb, la = db(before), db(after)
    # the hop energy's dB plus the BS.1770 offset is loudness (LUFS)
    ok = (np.minimum(lb, la) - 0.691 >= a.integrated_lufs - 20.0)
    if not ok.any():
        return {"jump_lu": NAN, "at_s": NAN}
    jump = np.abs(la - lb)
    jump[~ok] = 0.0
    j = int(np.argmax(jump))
    return {"jump_lu": float(jump[j]), "at_s": float(centres[j] * 0.1)}


def edges(a: SignalAnalysis) -> dict[str, float]:
    """The start and end: leading and trailing silence (below -60 dBFS, seconds), the first sample's
    level and the last 10 ms's peak (dBFS: a non-zero start or a tail cut mid-note clicks)."""
    lead, last = a.loud_span
    if a.samples == 0 or lead < 0:
        return {"leading_silence_s": NAN, "trailing_silence_s": NAN, "start_dbfs": NAN, "end_dbfs": NAN}
    first = float(np.max(np.abs(a.first)))
    return {"leading_silence_s": float(lead / a.sample_rate),
            "trailing_silence_s": float((a.samples - 1 - last) / a.sample_rate),
            "start_dbfs": 20.0 * math.log10(first) if first > 0 else float("-inf"),
            "end_dbfs": a.edge_tail_dbfs}
