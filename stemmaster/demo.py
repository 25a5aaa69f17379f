"""The built-in demo song: four synthetic stems with deliberately planted flaws.

``make_demo_stems()`` is the default input of ``stemmaster demo`` and the
fixture of many tests. It is a short song in A minor at 108 bpm over the
progression Am - F - C - G, shaped intro / verse / chorus, where the chorus is
only a couple of LU louder than the verse. Every repair stemmaster makes has
something real to fix, planted on purpose and documented in ``DEMO_FLAWS``:

* ``vocals``: loud sibilant bursts (band-passed noise, 4.5-9 kHz, centred near
  6.5 kHz, 60-150 ms, at phrase and word onsets) and a harsh narrow resonance
  (+12 dB peaking boost, Q 8, at 3 kHz) on the voiced part (harmonics and
  breath), so the long-term spectrum peaks there ~10 dB above its surroundings.
* ``bass``: a wide low end: every partial below 120 Hz is phase-shifted by
  110 degrees in the right channel against the left, so the side signal below
  100 Hz is louder than the mid (side/mid = tan(55 deg)^2, about +3 dB).
* ``drums``: sharp, unprocessed transients (kick click, snare crack, closed
  hats panned slightly right); the stem's crest factor is well above 12 dB.
* ``other``: a wide, dark pad (decorrelated detuned saws per channel).

Levels: every stem and the mix peak at or below -1.2 dBFS (sample peak); the
mix integrates near -16.5 LUFS, like an unmastered mix.

Everything is synthesised with whole-array NumPy/SciPy operations: loops run
over notes, hits, harmonics and filter sections, never over samples. The
arrangement (``demo_timeline``) depends only on the duration and the seed, not
on the sample rate, so tests can find the planted events in time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from stemmaster.dsp.processor import check_range
from stemmaster.errors import AudioError, SettingsError

STEM_NAMES: tuple[str, ...] = ("vocals", "drums", "bass", "other")

BPM = 108.0
BEAT_S = 60.0 / BPM
BAR_S = 4.0 * BEAT_S
KEY = "A minor"
CHORD_NAMES: tuple[str, ...] = ("Am", "F", "C", "G")
# pitch classes of each chord (root first) and the MIDI note of its bass root
_CHORD_PCS: tuple[tuple[int, ...], ...] = ((9, 0, 4), (5, 9, 0), (0, 4, 7), (7, 11, 2))
_BASS_ROOT_MIDI: tuple[int, ...] = (33, 29, 36, 31)  # A1, F1, C2, G1

_SIBILANCE_BAND_HZ = (4500.0, 9000.0)
_RESONANCE = {"hz": 3000.0, "gain_db": 12.0, "q": 8.0}
_BASS_WIDE_BELOW_HZ = 120.0
_BASS_WIDE_FADE_TO_HZ = 160.0
_BASS_PHASE_DEG = 110.0
_PEAK_CEILING_DBFS = -1.2  # stems and their sum are scaled so no sample exceeds this
_MASTER_GAIN_DB = -11.2

DEMO_FLAWS: dict[str, dict] = {
    "vocals": {
        "sibilance_hz": 6500.0,
        "sibilance_band_hz": _SIBILANCE_BAND_HZ,
        "sibilance_duration_s": (0.06, 0.15),
        "sibilance_over_voiced_db_min": 10.0,  # 4.5-9 kHz energy, burst frames vs voiced frames
        "resonance_hz": _RESONANCE["hz"],
        "resonance_gain_db": _RESONANCE["gain_db"],
        "resonance_q": _RESONANCE["q"],
    },
    "bass": {
        "wide_low_end_below_hz": _BASS_WIDE_BELOW_HZ,
        "wide_low_end_fades_out_by_hz": _BASS_WIDE_FADE_TO_HZ,
        "right_channel_phase_offset_deg": _BASS_PHASE_DEG,
        # side/mid energy below 100 Hz = tan(offset / 2)^2
        "side_over_mid_below_100hz_db": 20.0 * math.log10(math.tan(math.radians(_BASS_PHASE_DEG / 2.0))),
    },
    "drums": {
        "crest_factor_db_min": 12.0,
        "kick_sweep_hz": (160.0, 48.0),
        "snare_body_hz": 190.0,
        "hat_highpass_hz": 7000.0,
        "hat_pan_gains_lr": (0.7, 1.0),
    },
    "other": {
        "pad_lowpass_hz": 2200.0,
        "pad_highpass_hz": 140.0,
        "pad_detune_cents": 11.0,  # per channel, decorrelated: side/mid about -3 dB
    },
    "mix": {
        "bpm": BPM,
        "key": KEY,
        "chords": CHORD_NAMES,
        "chorus_over_verse_db_max": 4.0,
        "peak_ceiling_dbfs": _PEAK_CEILING_DBFS,
    },
}

# vowel formants (Hz) and bandwidths; /a/, /e/, /o/
_VOWELS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "a": ((730.0, 1090.0, 2440.0), (90.0, 110.0, 300.0)),
    "e": ((530.0, 1840.0, 2480.0), (80.0, 120.0, 300.0)),
    "o": ((570.0, 840.0, 2410.0), (80.0, 100.0, 300.0)),
}
_FORMANT_GAINS = (1.0, 0.5, 0.06)
_FORMANT_FLOOR = 0.04  # the envelope between and above the formants
_BREATH_LEVEL = 0.10  # aspiration noise, 1.5-4 kHz, following the voice
_BREATH_BAND_HZ = (1500.0, 4000.0)
_SIBILANCE_LEVEL = 0.06
_VOWEL_CYCLE = ("a", "e", "o", "a", "o", "e")

# vocal phrase patterns over two bars: (beat, length in beats, contour index, sibilant onset)
_PHRASES_VERSE = (
    ((0.0, 0.5, 1, True), (0.5, 0.5, 1, False), (1.0, 1.0, 2, False), (2.0, 0.5, 1, True),
     (2.5, 1.0, 0, False), (3.5, 0.5, 1, False), (4.0, 1.0, 2, True), (5.0, 0.5, 1, False),
     (5.5, 1.0, 0, False)),
    ((0.5, 0.5, 0, True), (1.0, 0.5, 1, False), (1.5, 1.0, 2, False), (2.5, 0.5, 2, False),
     (3.0, 1.0, 1, True), (4.0, 0.5, 0, False), (4.5, 1.5, 1, True)),
)
_PHRASES_CHORUS = (
    ((0.0, 1.0, 2, True), (1.0, 0.5, 1, False), (1.5, 1.5, 2, False), (3.0, 0.5, 1, True),
     (3.5, 0.5, 0, False), (4.0, 1.5, 1, True), (5.5, 0.5, 0, False), (6.0, 1.0, 1, False)),
    ((0.0, 0.5, 1, True), (0.5, 1.0, 2, False), (1.5, 1.0, 1, False), (2.5, 0.5, 0, False),
     (3.0, 1.0, 1, True), (4.0, 1.0, 2, True), (5.0, 0.5, 1, False), (5.5, 1.0, 0, False)),
)
_VOCAL_LOW_MIDI = {"verse": 57, "chorus": 64}  # register: chord tones within [low, low + 12)


@dataclass(frozen=True)
class DemoTimeline:
    """Where things happen in the demo song, in seconds (independent of the sample rate)."""

    duration_s: float
    bpm: float
    bar_s: float
    sections: tuple[tuple[str, float, float], ...]  # (name, start, end): intro, verse, chorus
    chords: tuple[tuple[float, float, str], ...]  # (start, end, chord name), one per bar
    vocal_notes: tuple[tuple[float, float, int, str], ...]  # (start, end, MIDI note, vowel)
    sibilants: tuple[tuple[float, float], ...]  # (start, end) of each sibilant burst
    kicks: tuple[float, ...]
    snares: tuple[float, ...]
    hats: tuple[float, ...]

    def section(self, name: str) -> tuple[float, float]:
        """``(start, end)`` of the named section ("intro", "verse" or "chorus")."""
        for sec, start, end in self.sections:
            if sec == name:
                return start, end
        raise KeyError(name)


_MIN_DURATION_S, _MAX_DURATION_S = 5.0, 120.0  # designed for 10-60 s


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SettingsError(f"demo seed = {seed!r} must be a non-negative integer")


def _check_args(sample_rate: int, duration_s: float, seed: int) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise SettingsError(f"demo sample_rate = {sample_rate!r} must be an integer (allowed 22050 to 192000)")
    check_range("demo", "sample_rate", int(sample_rate), 22050, 192000)
    check_range("demo", "duration_s", duration_s, _MIN_DURATION_S, _MAX_DURATION_S)
    _check_seed(seed)


def _section_bars(n_bars: int) -> tuple[int, int, int]:
    intro = max(1, round(n_bars / 9))
    chorus = max(2, round(n_bars * 0.42))
    verse = max(1, n_bars - intro - chorus)
    return intro, verse, chorus


def _chord_tones(chord: int, low_midi: int) -> list[int]:
    return sorted(low_midi + (pc - low_midi) % 12 for pc in _CHORD_PCS[chord])


def demo_timeline(duration_s: float = 40.0, seed: int = 7) -> DemoTimeline:
    """The arrangement of the demo song: sections, chords, vocal notes, sibilants, drum hits."""
    check_range("demo", "duration_s", duration_s, _MIN_DURATION_S, _MAX_DURATION_S)
    _check_seed(seed)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    n_bars = max(3, int(math.floor(duration_s / BAR_S + 1e-9)))
    intro_b, verse_b, _ = _section_bars(n_bars)
    intro_end = intro_b * BAR_S
    verse_end = (intro_b + verse_b) * BAR_S
    sections = (("intro", 0.0, intro_end), ("verse", intro_end, verse_end), ("chorus", verse_end, float(duration_s)))

    def section_at(t: float) -> str:
        return "intro" if t < intro_end - 1e-9 else ("verse" if t < verse_end - 1e-9 else "chorus")

    total_bars = int(math.ceil(duration_s / BAR_S - 1e-9))
    chords = tuple((b * BAR_S, min((b + 1) * BAR_S, duration_s), CHORD_NAMES[b % 4]) for b in range(total_bars))

    # vocals: one phrase every two bars in the verse and the chorus
    notes: list[tuple[float, float, int, str]] = []
    sibilants: list[tuple[float, float]] = []
    note_i = 0
    for name, start, end in sections[1:]:
        patterns = _PHRASES_VERSE if name == "verse" else _PHRASES_CHORUS
        bar0 = round(start / BAR_S)
        last_ok = end - 0.5 * BEAT_S - (1.0 if name == "chorus" else 0.0)  # keep clear of the final fade
        for p, phrase_bar in enumerate(range(bar0, bar0 + int(round((end - start) / BAR_S + 0.49)), 2)):
            t_phrase = phrase_bar * BAR_S
            for beat, length, contour, sib in patterns[p % 2]:
                t0 = t_phrase + beat * BEAT_S
                t1 = min(t0 + length * BEAT_S - 0.03, last_ok)
                if t1 - t0 < 0.12:
                    continue
                chord = int(math.floor(t0 / BAR_S + 1e-9)) % 4
                midi = _chord_tones(chord, _VOCAL_LOW_MIDI[name])[contour]
                if sib:
                    dur = float(rng.uniform(0.06, 0.15))
                    if notes and notes[-1][1] > t0 - dur - 0.02:  # the word before ends before the "s"
                        prev = notes[-1]
                        dur = min(dur, max(0.06, t0 - prev[0] - 0.14))
                        notes[-1] = (prev[0], min(prev[1], t0 - dur - 0.02), prev[2], prev[3])
                    sibilants.append((t0 - dur, t0))
                notes.append((t0, t1, midi, _VOWEL_CYCLE[note_i % len(_VOWEL_CYCLE)]))
                note_i += 1

    # drums: grid positions in beats per bar, by section, with a little humanisation
    kicks: list[float] = []
    snares: list[float] = []
    hats: list[float] = []
    for b in range(total_bars):
        t_bar = b * BAR_S
        name = section_at(t_bar)
        if name == "intro":
            k, s, h = (), (), np.arange(0.0, 4.0, 1.0) + 0.5
        elif name == "verse":
            k = (0.0, 2.0, 2.5) if b % 2 else (0.0, 2.0)
            s, h = (1.0, 3.0), np.arange(0.0, 4.0, 0.5)
        else:
            k = (0.0, 1.5, 2.0, 2.5) if b % 2 else (0.0, 1.5, 2.0)
            s, h = (1.0, 3.0), np.concatenate([np.arange(0.0, 4.0, 0.5), [1.75, 3.75]])
        for beats, out in ((k, kicks), (s, snares), (h, hats)):
            for beat in np.sort(np.asarray(beats, dtype=float)):
                t = t_bar + beat * BEAT_S + float(rng.normal(0.0, 0.002))
                if 0.0 <= t < duration_s - 0.3:
                    out.append(max(t, 0.0))
    return DemoTimeline(
        duration_s=float(duration_s), bpm=BPM, bar_s=BAR_S, sections=sections, chords=chords,
        vocal_notes=tuple(notes), sibilants=tuple(sibilants),
        kicks=tuple(kicks), snares=tuple(snares), hats=tuple(hats),
    )


# ---------------------------------------------------------------- helpers


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _noise(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """White noise whose spectral density is the same at any rate (unit variance at 44.1 kHz)."""
    return rng.standard_normal(n) * math.sqrt(fs / 44100.0)


def _add_at(buf: np.ndarray, start: int, x: np.ndarray) -> None:
    """Add ``x`` (last axis = time; broadcast over channels) into ``buf`` from sample ``start``, clipped."""
    n = buf.shape[-1]
    a, b = max(start, 0), min(start + x.shape[-1], n)
    if b > a:
        buf[..., a:b] += x[..., a - start:b - start]


def _one_pole(x: np.ndarray, tau_s: float, fs: float, *, start_at_first: bool = True) -> np.ndarray:
    """Exponential smoothing with time constant ``tau_s`` (lfilter; no Python sample loop)."""
    a = math.exp(-1.0 / (tau_s * fs))
    b_, a_ = [1.0 - a], [1.0, -a]
    if start_at_first:
        zi = signal.lfilter_zi(b_, a_) * x[0]
        return signal.lfilter(b_, a_, x, zi=zi)[0]
    return signal.lfilter(b_, a_, x)


def _decay_train(n: int, idx: np.ndarray, vel: np.ndarray, tau_s: float, fs: float) -> np.ndarray:
    """Sum of instant-attack exponential decays starting at sample indices ``idx``."""
    x = np.zeros(n)
    np.add.at(x, idx, vel)
    a = math.exp(-1.0 / (tau_s * fs))
    return signal.lfilter([1.0], [1.0, -a], x)


def _sos(kind: str, hz, fs: float, order: int = 2) -> np.ndarray:
    nyq = 0.5 * fs
    if np.ndim(hz):
        hz = [min(h, 0.45 * fs) for h in hz]
    else:
        hz = min(hz, 0.45 * fs)
    return signal.butter(order, np.asarray(hz) / nyq, btype=kind, output="sos")


def _peaking_sos(f0: float, gain_db: float, q: float, fs: float) -> np.ndarray:
    """RBJ cookbook peaking EQ as one second-order section."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * f0 / fs
    alpha = math.sin(w0) / (2.0 * q)
    b = np.array([1.0 + alpha * amp, -2.0 * math.cos(w0), 1.0 - alpha * amp])
    a = np.array([1.0 + alpha / amp, -2.0 * math.cos(w0), 1.0 - alpha / amp])
    return np.concatenate([b / a[0], a / a[0]])[None, :]


def _polyblep_saw(freq_hz: float, n: int, fs: float, phase0: float) -> np.ndarray:
    """Band-limited (PolyBLEP) sawtooth in [-1, 1], vectorised."""
    dt = freq_hz / fs
    ph = (phase0 + dt * np.arange(n)) % 1.0
    y = 2.0 * ph - 1.0
    lo = ph < dt
    t = ph[lo] / dt
    y[lo] -= t + t - t * t - 1.0
    hi = ph > 1.0 - dt
    t = (ph[hi] - 1.0) / dt
    y[hi] -= t * t + t + t + 1.0
    return y


def _internal_rate(sample_rate: int, target: float) -> tuple[int, float]:
    """An integer decimation factor giving an internal rate near ``target`` (never below it)."""
    d = max(1, int(sample_rate // target))
    return d, sample_rate / d


def _upsample(x: np.ndarray, d: int, n: int) -> np.ndarray:
    if d == 1:
        y = x
    else:
        y = signal.resample_poly(x, d, 1, axis=-1)
    out = np.zeros(x.shape[:-1] + (n,))
    m = min(n, y.shape[-1])
    out[..., :m] = y[..., :m]
    return out


# ---------------------------------------------------------------- stems


def _drums(tl: DemoTimeline, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((2, n))
    # kick: pitch-swept sine (160 -> 48 Hz) with a short click, identical in both channels
    kn = int(0.5 * sr)
    t = np.arange(kn) / sr
    f = 48.0 + (160.0 - 48.0) * np.exp(-t / 0.035)
    body = np.sin(2.0 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.17)
    click = np.sin(2.0 * np.pi * 3200.0 * t) * np.exp(-t / 0.0012) * 0.45
    kick = body + click
    kick *= np.minimum(1.0, (kn - np.arange(kn)) / (0.02 * sr))  # no cut at the template's end
    for time in tl.kicks:
        vel = 0.95 + 0.05 * rng.uniform(-1.0, 1.0)
        _add_at(out, int(round(time * sr)), vel * kick)
    # snare: tonal body (190 + 330 Hz) + band-passed noise, centred
    sn = int(0.3 * sr)
    t = np.arange(sn) / sr
    sbody = (0.45 * np.sin(2.0 * np.pi * 190.0 * t) * np.exp(-t / 0.06)
             + 0.2 * np.sin(2.0 * np.pi * 330.0 * t) * np.exp(-t / 0.035))
    s_idx = np.round(np.asarray(tl.snares) * sr).astype(int)
    s_vel = 0.9 + 0.1 * rng.uniform(-1.0, 1.0, len(s_idx))
    for i, v in zip(s_idx, s_vel):
        _add_at(out, int(i), v * sbody)
    noise = signal.sosfilt(_sos("bandpass", (1200.0, 10000.0), sr), _noise(rng, n, sr))
    env = 0.8 * _decay_train(n, s_idx, s_vel, 0.09, sr) + 0.6 * _decay_train(n, s_idx, s_vel, 0.015, sr)
    out += 0.55 * (noise * env)[None, :]
    # closed hats: high-passed noise, short decay, panned a little to the right
    h_idx = np.round(np.asarray(tl.hats) * sr).astype(int)
    on_beat = (np.round(np.asarray(tl.hats) / BEAT_S * 2.0) % 2 == 0)
    h_vel = np.where(on_beat, 0.8, 0.55) * (1.0 + 0.15 * rng.uniform(-1.0, 1.0, len(h_idx)))
    hnoise = signal.sosfilt(_sos("highpass", 7000.0, sr, order=4), _noise(rng, n, sr))
    hat = hnoise * _decay_train(n, h_idx, h_vel, 0.022, sr) * 0.35
    lr = DEMO_FLAWS["drums"]["hat_pan_gains_lr"]
    out[0] += lr[0] * hat
    out[1] += lr[1] * hat
    return out


def _bass(tl: DemoTimeline, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((2, n))
    phi_max = math.radians(_BASS_PHASE_DEG)
    cache: dict[tuple[int, int], np.ndarray] = {}

    def phase_offset(f: float) -> float:  # full below 120 Hz, fading out by 160 Hz
        w = np.clip((_BASS_WIDE_FADE_TO_HZ - f) / (_BASS_WIDE_FADE_TO_HZ - _BASS_WIDE_BELOW_HZ), 0.0, 1.0)
        return phi_max * float(w)

    def note(midi: int, m: int) -> np.ndarray:
        key = (midi, m)
        if key not in cache:
            t = np.arange(m) / sr
            f_root = float(_midi_hz(midi))
            partials = [(f_root, 1.0)]  # the sub sine
            f_saw = 2.0 * f_root  # saw one octave up, low-passed (2nd order at 450 Hz)
            k = 1
            while k * f_saw < min(2500.0, 0.45 * sr):
                fk = k * f_saw
                partials.append((fk, 0.55 / k / math.sqrt(1.0 + (fk / 450.0) ** 4)))
                k += 1
            wave = np.zeros((2, m))
            for fk, amp in partials:
                ph = 2.0 * np.pi * fk * t
                s = np.sin(ph)
                wave[0] += amp * s
                off = phase_offset(fk)
                wave[1] += amp * (s if off == 0.0 else np.sin(ph + off))
            att = np.minimum(1.0, t / 0.006)
            dec = 0.7 + 0.3 * np.exp(-t / 0.15)
            rel = np.clip((m - np.arange(m)) / (0.03 * sr), 0.0, 1.0)
            cache[key] = wave * (att * dec * rel)[None, :]
        return cache[key]

    intro_end = tl.section("intro")[1]
    for start, end, chord in tl.chords:
        c = CHORD_NAMES.index(chord)
        root = _BASS_ROOT_MIDI[c]
        if start < intro_end - 1e-9:
            pattern = ((0.0, 3.9, 0),)
        else:
            pattern = ((0.0, 0.9, 0), (1.5, 0.45, 0), (2.0, 0.9, 0), (3.0, 0.45, 0), (3.5, 0.45, 12))
        for beat, length, octave in pattern:
            t0 = start + beat * BEAT_S
            if t0 >= tl.duration_s:
                continue
            m = int(round(length * BEAT_S * sr))
            vel = 0.92 + 0.08 * rng.uniform(-1.0, 1.0)
            _add_at(out, int(round(t0 * sr)), vel * (0.8 if octave else 1.0) * note(root + octave, m))
    return out


def _pad(tl: DemoTimeline, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    d, fs = _internal_rate(sr, 12000.0)
    ni = int(math.ceil(n / d)) + 8
    out = np.zeros((2, ni))
    detunes = ((-11.0, 8.0), (-7.0, 11.0))  # cents per channel around a shared centre saw
    verse_start = tl.section("verse")[0]
    chorus_start = tl.section("chorus")[0]
    for start, end, chord in tl.chords:
        c = CHORD_NAMES.index(chord)
        voices = _chord_tones(c, 53)  # F3..E4
        level = 0.12
        if start >= chorus_start - 1e-9:
            voices = voices + [voices[0] + 12]
            level = 0.14
        elif start < verse_start - 1e-9:
            level = 0.1
        length = end - start + 0.4  # overlaps the next chord while it fades in
        m = int(round(length * fs))
        t = np.arange(m) / fs
        env = (1.0 - np.exp(-t / 0.25)) * np.clip((length - t) / 0.4, 0.0, 1.0)
        for midi in voices:
            f = float(_midi_hz(midi))
            centre = _polyblep_saw(f, m, fs, float(rng.uniform()))
            for ch in range(2):
                acc = centre.copy()
                for cents in detunes[ch]:
                    acc += _polyblep_saw(f * 2.0 ** (cents / 1200.0), m, fs, float(rng.uniform()))
                _add_at(out[ch], int(round(start * fs)), level * env * acc)
    sos = np.concatenate([_sos("lowpass", DEMO_FLAWS["other"]["pad_lowpass_hz"], fs),
                          _sos("highpass", DEMO_FLAWS["other"]["pad_highpass_hz"], fs)])
    out = signal.sosfilt(sos, out, axis=-1)
    return _upsample(out, d, n)


def _formant_gain(freq: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """Parallel formant envelope at ``freq`` (shape (m,)); formants/bandwidths shaped (3, m)."""
    g = np.full_like(freq, _FORMANT_FLOOR)
    for i in range(3):
        x = (freq * freq - formants[i] ** 2) / (bandwidths[i] * np.maximum(freq, 1.0))
        g += _FORMANT_GAINS[i] / np.sqrt(1.0 + x * x)
    return g


def _vocals(tl: DemoTimeline, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    d, fs = _internal_rate(sr, 22050.0)
    ni = int(math.ceil(n / d)) + 8
    voiced = np.zeros(ni)
    hop = 32
    chorus_start = tl.section("chorus")[0]
    notes = tl.vocal_notes
    # group notes into phrases separated by gaps of more than half a beat
    phrases: list[list[tuple[float, float, int, str]]] = []
    for nt in notes:
        if phrases and nt[0] - phrases[-1][-1][1] < 0.5 * BEAT_S:
            phrases[-1].append(nt)
        else:
            phrases.append([nt])
    f_max = min(9500.0, 0.45 * fs)
    breath_sos = np.concatenate([_sos("highpass", _BREATH_BAND_HZ[0], fs), _sos("lowpass", _BREATH_BAND_HZ[1], fs)])
    for phrase in phrases:
        p0 = phrase[0][0] - 0.03
        p1 = phrase[-1][1] + 0.15
        i0 = int(math.floor(p0 * fs))
        m = int(math.ceil((p1 - p0) * fs))
        t = (i0 + np.arange(m)) / fs
        starts = np.array([x[0] for x in phrase])
        ends = np.array([x[1] for x in phrase])
        idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(phrase) - 1)
        midi_target = np.array([x[2] for x in phrase], dtype=float)[idx]
        midi_s = _one_pole(midi_target, 0.03, fs)  # smooth note transitions
        age = t - starts[idx]
        vib_depth = 0.30 * np.clip((age - 0.12) / 0.25, 0.0, 1.0)  # +-30 cents, delayed onset
        vib = vib_depth * np.sin(2.0 * np.pi * 5.5 * t + float(rng.uniform(0, 2 * np.pi)))
        f0 = _midi_hz(midi_s + vib)
        gate = ((t >= starts[idx]) & (t < ends[idx])).astype(float)
        amp = _one_pole(_one_pole(gate, 0.012, fs, start_at_first=False), 0.012, fs, start_at_first=False)
        if phrase[0][0] >= chorus_start - 1e-9:
            amp *= 10.0 ** (2.0 / 20.0)
        # formant tracks, smoothed between vowels
        form = np.array([_VOWELS[x[3]][0] for x in phrase]).T[:, idx]
        bw = np.array([_VOWELS[x[3]][1] for x in phrase]).T[:, idx]
        form = np.stack([_one_pole(row, 0.04, fs) for row in form])
        # harmonic amplitudes at a control rate (every `hop` samples), interpolated
        ctrl = np.arange(0, m, hop)
        f0_c = f0[ctrl]
        k_max = int(f_max / float(np.min(f0))) + 1
        theta = 2.0 * np.pi * np.cumsum(f0) / fs
        c2 = 2.0 * np.cos(theta)
        s_prev, s_k, s_next = np.zeros(m), np.sin(theta), np.empty(m)
        acc = np.zeros(m)
        x_full = np.arange(m, dtype=np.float64)
        form_c, bw_c = form[:, ctrl], bw[:, ctrl]
        for k in range(1, k_max + 1):
            fk = k * f0_c
            a_k = (1.0 / k) * _formant_gain(fk, form_c, bw_c)
            a_k *= np.clip((f_max - fk) / 500.0, 0.0, 1.0)  # fade out below the band limit
            a_full = np.interp(x_full, ctrl, a_k)
            a_full *= s_k
            acc += a_full
            # sin((k+1) theta) by the Chebyshev recurrence, in place
            np.multiply(c2, s_k, out=s_next)
            s_next -= s_prev
            s_prev, s_k, s_next = s_k, s_next, s_prev
        # breath: band-passed (1.5-4 kHz) noise following the voice
        breath = signal.sosfilt(breath_sos, _noise(rng, m, fs)) * _BREATH_LEVEL
        _add_at(voiced, i0, amp * (acc + breath))
    # the harsh resonance on the voiced part
    res = _peaking_sos(_RESONANCE["hz"], _RESONANCE["gain_db"], _RESONANCE["q"], fs)
    voiced = signal.sosfilt(res, voiced)
    voiced = _upsample(voiced, d, n) * 0.22
    # sibilant bursts: band-passed noise, loud, at phrase and word onsets
    lo, hi = _SIBILANCE_BAND_HZ
    sib_noise = signal.sosfilt(
        np.concatenate([_sos("bandpass", (lo, hi), sr, order=4), _peaking_sos(6500.0, 4.0, 1.2, sr)]),
        _noise(rng, n, sr),
    )
    sib_env = np.zeros(n)
    for s0, s1 in tl.sibilants:
        i0, i1 = int(round(s0 * sr)), int(round(s1 * sr))
        m = i1 - i0
        if m <= 0:
            continue
        tt = np.arange(m) / sr
        e = np.minimum(1.0, tt / 0.012) * np.clip((m / sr - tt) / 0.02, 0.0, 1.0)
        _add_at(sib_env, i0, e * (0.85 + 0.15 * rng.uniform()))
    vox = voiced + _SIBILANCE_LEVEL * sib_noise * sib_env
    # a faint stereo room (a few decorrelated early reflections) around a centred voice
    taps = {0: ((0.011, 0.08), (0.023, 0.05), (0.037, 0.035)), 1: ((0.013, 0.08), (0.029, 0.05), (0.041, 0.035))}
    out = np.stack([vox, vox])
    for ch in (0, 1):
        for delay, g in taps[ch]:
            _add_at(out[ch], int(round(delay * sr)), g * vox)
    return out


# ---------------------------------------------------------------- public API


def make_demo_stems(sample_rate: int = 44100, duration_s: float = 40.0, seed: int = 7) -> dict[str, np.ndarray]:
    """Synthesise the demo song's stems: ``{"vocals", "drums", "bass", "other"}``.

    Each is float32 shaped ``(2, round(duration_s * sample_rate))``; the result
    is bit-identical for the same arguments. Every stem's sample peak, and that
    of their sum, is at most -1.2 dBFS. The planted flaws are described in
    ``DEMO_FLAWS`` and located in time by ``demo_timeline(duration_s, seed)``.
    """
    _check_args(sample_rate, duration_s, seed)
    sr = int(sample_rate)
    n = int(round(duration_s * sr))
    tl = demo_timeline(duration_s, seed)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 2]).spawn(4)]
    stems = {
        "vocals": _vocals(tl, sr, n, rngs[0]),
        "drums": _drums(tl, sr, n, rngs[1]),
        "bass": _bass(tl, sr, n, rngs[2]),
        "other": _pad(tl, sr, n, rngs[3]),
    }
    # balance, a short fade-in and a fade-out over the last second
    balance_db = {"vocals": 9.5, "drums": 0.0, "bass": -5.0, "other": -1.0}
    t = np.arange(n) / sr
    fade = np.minimum(1.0, t / 0.005) * np.clip((duration_s - t) / 1.0, 0.0, 1.0)
    for name, x in stems.items():
        x *= fade * 10.0 ** (balance_db[name] / 20.0)
    mix = sum(stems.values())
    peak = max([float(np.max(np.abs(x))) for x in stems.values()] + [float(np.max(np.abs(mix)))])
    # a fixed gain puts the mix near -16.5 LUFS; it only drops if a peak would pass the ceiling
    gain = min(10.0 ** (_MASTER_GAIN_DB / 20.0), 10.0 ** (_PEAK_CEILING_DBFS / 20.0) / peak)
    return {name: np.ascontiguousarray(stems[name] * gain, dtype=np.float32) for name in STEM_NAMES}


def demo_mix(stems: dict[str, np.ndarray]) -> np.ndarray:
    """The plain sum of the stems, float32 shaped ``(channels, samples)``."""
    arrays = [np.asarray(v) for v in stems.values()]
    if not arrays:
        raise AudioError("demo_mix needs at least one stem")
    shape = arrays[0].shape
    for name, a in stems.items():
        if np.asarray(a).shape != shape:
            raise AudioError(f"stem {name!r} is shaped {np.asarray(a).shape}, expected {shape}")
    total = np.zeros(shape, dtype=np.float64)
    for a in arrays:
        total += a
    return total.astype(np.float32)
