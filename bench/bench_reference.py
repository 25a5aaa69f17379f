"""Benchmark: reference matching, stemmaster against Matchering, on the same target/reference pairs.

Pairs (the target is always darkened by a -6 dB high shelf at 6 kHz and set to
-20 LUFS, like an unmastered mix that needs work):

* corpus (when ../shared/corpus/songs/real/*.ogg holds two songs): target the
  first song, reference the second, as it is (a finished master);
* demo: target the demo mix, reference the second corpus song (or, without
  the corpus, the master of a demo mix of another seed at the club profile).

For each tool: seconds (stemmaster: measure the reference, match the
settings, master; Matchering: ``matchering.process`` from WAV files to a
24-bit WAV, its own file reading and writing included, as that is its only
interface), the result's integrated loudness (our BS.1770-4 meter) and true
peak, and its spectral distance to the reference (RMS dB over the 40 Hz-16 kHz
1/3-octave bands, ``deliver.reference.spectral_distance_db``).

Matchering is a bench-only extra (``pip install matchering==2.0.6``; GPLv3, it
pulls statsmodels, pandas and resampy), never a runtime dependency. Without it
only our side is printed.

    .venv/bin/python bench/bench_reference.py [--seconds 0 (whole songs)] [--demo-seconds 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemmaster.audio_io import read_audio, write_audio  # noqa: E402
from stemmaster.deliver.reference import match_settings, measure_reference, spectral_distance_db, tonal_curve  # noqa: E402
from stemmaster.demo import demo_mix, make_demo_stems  # noqa: E402
from stemmaster.dsp.biquad import sos_filter  # noqa: E402
from stemmaster.dsp.eq import _shelf  # noqa: E402
from stemmaster.master import MasterSettings, master_bus  # noqa: E402
from stemmaster.meters.loudness import gated_loudness_lufs  # noqa: E402
from stemmaster.meters.truepeak import true_peak_dbtp  # noqa: E402

SR = 44100
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "songs" / "real"


def darkened_at(audio: np.ndarray, lufs: float) -> np.ndarray:
    x = sos_filter(_shelf("high", 6000.0, -6.0, SR)[None, :], np.asarray(audio, dtype=np.float64))
    return x * 10.0 ** ((lufs - gated_loudness_lufs(x, SR)) / 20.0)


def load(path: Path, seconds: float) -> np.ndarray:
    audio, rate = read_audio(path)
    if rate != SR:
        raise SystemExit(f"{path.name}: {rate} Hz, the bench expects {SR}")
    audio = np.asarray(audio, dtype=np.float64)
    return audio[:, : int(seconds * SR)] if seconds > 0 else audio


def ours(target: np.ndarray, reference: np.ndarray, name: str, max_eq_db: float) -> tuple[np.ndarray, float, dict]:
    t0 = time.perf_counter()
    profile = measure_reference(reference, SR, name=name)
    t1 = time.perf_counter()
    settings, report = match_settings(MasterSettings(), target, SR, profile, max_eq_db=max_eq_db)
    t2 = time.perf_counter()
    result = master_bus(target, SR, settings)
    t3 = time.perf_counter()
    report["seconds_split"] = (t1 - t0, t2 - t1, t3 - t2)
    return result.audio, t3 - t0, report


def theirs(target: np.ndarray, reference: np.ndarray, tmp: Path) -> tuple[np.ndarray, float]:
    import matchering as mg

    tpath, rpath, out = tmp / "target.wav", tmp / "reference.wav", tmp / "matchering.wav"
    write_audio(tpath, target, SR, subtype="FLOAT")
    write_audio(rpath, reference, SR, subtype="FLOAT")
    t0 = time.perf_counter()
    mg.process(target=str(tpath), reference=str(rpath), results=[mg.pcm24(str(out))])
    seconds = time.perf_counter() - t0
    audio, _ = read_audio(out)
    return np.asarray(audio, dtype=np.float64), seconds


def row(tool: str, audio: np.ndarray, seconds: float, ref_curve: np.ndarray, duration_s: float) -> str:
    lufs = gated_loudness_lufs(audio, SR)
    peak = true_peak_dbtp(audio, SR)
    dist = spectral_distance_db(tonal_curve(audio, SR), ref_curve)
    return (f"  {tool:<18} {seconds:6.2f} s ({duration_s / seconds:5.1f}x real time)  {lufs:7.2f} LUFS  "
            f"{peak:6.2f} dBTP  distance {dist:5.2f} dB")


def bench_pair(label: str, target: np.ndarray, reference: np.ndarray, ref_name: str, have_mg: bool) -> None:
    duration_s = target.shape[1] / SR
    ref_profile = measure_reference(reference, SR, name=ref_name)
    print(f"\n{label}: target {duration_s:.1f} s at {gated_loudness_lufs(target, SR):.2f} LUFS, "
          f"reference {ref_name} ({reference.shape[1] / SR:.1f} s, {ref_profile.integrated_lufs:.2f} LUFS, "
          f"side/mid {ref_profile.side_to_mid_db:.2f} dB)")
    print(f"  target as it is: distance {spectral_distance_db(tonal_curve(target, SR), ref_profile):5.2f} dB; "
          f"mastered with default settings (spotify): "
          f"{spectral_distance_db(tonal_curve(master_bus(target, SR, MasterSettings()).audio, SR), ref_profile):5.2f} dB")
    for max_eq_db in (3.0, 12.0):  # the default bound, and the EQ's whole range (what the bound costs)
        audio, seconds, report = ours(target, reference, ref_name, max_eq_db)
        print(row(f"stemmaster +-{max_eq_db:.0f} dB", audio, seconds, ref_profile.curve_db, duration_s))
        split = report["seconds_split"]
        eq = report["tone_eq"]
        print(f"      (measure {split[0]:.2f} s, match {split[1]:.2f} s, master {split[2]:.2f} s; EQ low shelf "
              f"{eq['low_shelf_db']:+.2f}, high shelf {eq['high_shelf_db']:+.2f}, low-mid {eq['low_mid_db']:+.2f}, "
              f"tilt {eq['tilt_db']:+.2f} dB; target {report['target_lufs']:.2f} LUFS; width {report['width']:.3f}; "
              f"estimated distance {report['spectral_distance_before_db']:.2f} -> "
              f"{report['spectral_distance_after_db']:.2f} dB)")
    if have_mg:
        with tempfile.TemporaryDirectory() as tmp:
            audio, seconds = theirs(target, reference, Path(tmp))
        print(row("matchering", audio, seconds, ref_profile.curve_db, duration_s))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=0.0, help="cut the corpus songs to this (0: whole)")
    parser.add_argument("--demo-seconds", type=float, default=40.0)
    args = parser.parse_args()
    try:
        import matchering

        have_mg = True
        print(f"matchering {getattr(matchering, '__version__', '?')} installed")
    except ImportError:
        have_mg = False
        print("matchering is not installed (pip install matchering==2.0.6): printing stemmaster only")

    # warm numba's caches so compile time is not counted
    warm = demo_mix(make_demo_stems(SR, 6.0)).astype(np.float64)
    match_settings(MasterSettings(), warm, SR, measure_reference(warm, SR))
    master_bus(warm, SR, MasterSettings())

    songs = sorted(CORPUS.glob("*.ogg")) if CORPUS.is_dir() else []
    if len(songs) >= 2:
        target_song, reference_song = load(songs[0], args.seconds), load(songs[1], args.seconds)
        bench_pair(f"corpus: {songs[0].stem} -> {songs[1].stem}", darkened_at(target_song, -20.0),
                   reference_song, songs[1].stem, have_mg)
        reference, ref_name = reference_song, songs[1].stem
    else:
        print(f"\n(no corpus songs in {CORPUS}: the demo pair only)")
        other = demo_mix(make_demo_stems(SR, args.demo_seconds, seed=11)).astype(np.float64)
        reference = master_bus(other, SR, MasterSettings().with_profile("club")).audio
        ref_name = "demo seed 11, club master"
    demo = demo_mix(make_demo_stems(SR, args.demo_seconds)).astype(np.float64)
    bench_pair("demo mix", darkened_at(demo, -20.0), reference, ref_name, have_mg)


if __name__ == "__main__":
    main()
