"""Every threshold the diagnosis judges by, in one table, with where it comes from.

A finding is raised when its measurement crosses ``minor`` (or ``major`` for
the stronger wording and severity); ``direction`` says which way is worse.
"Calibrated" means checked on ../shared/corpus: the MUSDB18 previews'
stems and mixtures, two released CC-BY songs, three AI renders and a solo
voice, none of which should raise the finding at that level unless it is
really there (notes in each row), and on the demo song's planted flaws,
which must.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Threshold:
    minor: float
    major: float
    unit: str
    direction: str  # "above": larger is worse; "below": smaller is worse
    source: str

    def severity(self, value: float) -> str | None:
        """``"major"``, ``"minor"`` or None for ``value``."""
        if value != value:  # NaN: not measurable here
            return None
        worse = (lambda v, t: v >= t) if self.direction == "above" else (lambda v, t: v <= t)
        if worse(value, self.major):
            return "major"
        if worse(value, self.minor):
            return "minor"
        return None

    @property
    def limit(self) -> float:
        return self.minor


THRESHOLDS: dict[str, Threshold] = {
    # The strongest persistent peak of the long-term 1/6-octave spectrum over its
    # +-1/3-octave median, 1-10 kHz, weighted by how constantly it stands out
    # (diagnosis.measures.resonance). Clean real and synthetic stems read 0-2.5 dB
    # (their harmonic peaks do not persist); the demo vocal's planted +12 dB Q8
    # ring at 3 kHz 4.4-4.9 dB at any length; MUSDB's "too bright" vocal 5.3 dB
    # and a rock guitar bus 5.9 dB (audibly ringing: true positives).
    "harsh_resonance": Threshold(4.0, 6.5, "dB", "above",
                                 "corpus calibration; the de-harsher's own 3 dB default threshold plus smoothing"),
    # Esses (top 5 % of frames by 4.5-11 kHz energy) against the vowels.
    # A de-essed rock vocal reads -15 dB; raw vocals -6 to -10 dB (vocadito
    # -6.1, MUSDB bright vocal -7.3, demo with planted bursts -9.8).
    "sibilance": Threshold(-11.0, -6.0, "dB", "above", "corpus calibration (de-essed vs raw vocals)"),
    # 200-500 Hz over the mean of the 125 Hz and 1 kHz octaves. Released mixes
    # read 0.6-4.7 dB; 6 dB is a clear build-up against an equal-energy-per-octave
    # reference (Pestana et al., AES 135, 2013: commercial mixes' long-term spectra).
    "muddy_low_mids": Threshold(6.0, 9.0, "dB", "above", "Pestana et al. 2013 reference curve; corpus mixes <= 4.7 dB"),
    # Side over mid below 150 Hz. Mono bass reads below -30 dB; a released
    # track with a wide synth bass -4.5 dB; the demo bass's 110-degree skew +2.9 dB.
    # -3 dB is a correlation of 0.33 down there: cutting and cancelling on vinyl
    # and mono systems (common mastering practice: mono below 100-150 Hz).
    "wide_low_end": Threshold(-3.0, 0.0, "dB", "above", "mastering practice (mono below ~150 Hz); corpus <= -4.5 dB"),
    # Side over mid, full band. Released mixes -5 to -20 dB; a decorrelated pad
    # -3 dB. More side than mid (correlation < 0) is out-of-phase width.
    "excessive_width": Threshold(-2.0, 0.0, "dB", "above",
                                 "correlation meters: below +0.2 (side within 2 dB of mid) reads as phasey"),
    # Mono fold-down loss in the worst octave band that carries energy:
    # uncorrelated channels lose 3 dB, so a loss beyond 4 dB means
    # out-of-phase content that cancels in mono. Corpus: 0 to -2.3 dB.
    "mono_incompatible": Threshold(-4.0, -6.0, "dB", "below", "3 dB is the loss of uncorrelated channels"),
    # PLR of the mix (true peak over integrated loudness). Streaming-era
    # loud masters sit at 8-9 dB; below 8 dB the transients are flattened
    # (EBU R128 s1 / AES TD1004 discuss PLR as the measure of squash).
    "over_compressed": Threshold(8.0, 6.0, "dB", "below", "AES TD1004 / loudness-war literature on PLR"),
    # Crest factor of a drum stem's loud moments (peak over RMS in the loudest
    # 50 ms windows): raw kits read 6.3-8 dB (MUSDB stems, the demo); a drum bus
    # squashed by a fast compressor 3-4.5 dB. (PLR barely moves: the hits' decays
    # keep the integrated loudness down.)
    "over_compressed_drums": Threshold(5.0, 4.0, "dB", "below", "corpus drum stems 6.3-7.0 dB; squashed kits 3-4.5 dB"),
    # Seconds holding a run of 3+ identical samples at the peak, as a fraction
    # of the seconds: any is a clip; in a fifth of the song it is clipped throughout.
    "clipping": Threshold(0.0, 0.2, "fraction of seconds", "above", "3-sample runs at the peak (declipper practice)"),
    # Inter-sample overs in the source (4x true peak, BS.1770-4).
    "inter_sample_overs": Threshold(0.0, 1.0, "dBTP", "above", "BS.1770-4 true peak; 0 dBTP is full scale"),
    # A spectral cliff (25 dB within 1/6 octave, nothing above) below 19 kHz:
    # MP3/AAC/Vorbis encoders low-pass at 15.7-17.5 kHz (all corpus lossy files).
    "band_limited": Threshold(19000.0, 16500.0, "Hz", "below", "LAME/AAC lowpass defaults; corpus lossy files 15.7-17.5 kHz"),
    # DC: the largest channel mean. -50 dBFS wastes headroom and thumps at edits.
    "dc_offset": Threshold(-50.0, -35.0, "dBFS", "above", "common mastering practice; corpus stems below -60 dBFS"),
    # Noise-like floor (median spectral flatness >= 0.35 above 1 kHz) in the
    # quietest 5 % of frames, relative to the loud frames. White noise reads
    # flatness ~0.56, pink ~0.45; music's quiet frames 0-0.28 (corpus).
    "noise_floor": Threshold(-55.0, -40.0, "dB", "above", "audible hiss in pauses; flatness gate from corpus"),
    "noise_floor_flatness": Threshold(0.35, 0.35, "", "above", "white noise 0.56, pink 0.45, corpus music <= 0.28"),
    # Largest step between neighbouring 4 s sections, away from the first and
    # last 10 % of the song (intros and endings are meant to differ).
    # Released songs' mid-song section changes read 4-6 LU.
    "loudness_jumps": Threshold(8.0, 12.0, "LU", "above", "corpus: real and AI songs' mid-song steps <= 6 LU"),
    # Edges: more than 2 s of leading silence; a first sample or a last 10 ms
    # above -40 dBFS (the file starts or stops mid-sound: a click).
    "leading_silence": Threshold(2.0, 5.0, "s", "above", "release pre-roll practice (0.2-0.5 s)"),
    "edge_level": Threshold(-40.0, -20.0, "dBFS", "above", "a cut above -40 dBFS is an audible click"),
    # Vocal over the rest of the mix (integrated loudness of the vocal stem
    # minus that of the other stems' sum). Pop mixes sit at -2..+4 LU.
    "vocal_balance": Threshold(6.0, 8.0, "LU", "above", "pop mixing practice; fix the mix first at +8 LU"),
}
