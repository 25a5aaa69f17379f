"""Importing stems and renders a block at a time: ``ResampledSource`` equals ``resample`` of the
whole, an imported stem equals what the whole-file path (read_audio, to_stereo, resample) writes,
``AudioReader`` keeps read_audio's checks, and import memory does not grow with the song."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from stemmaster.audio_io import AudioReader, read_audio, resample, to_stereo
from stemmaster.audio_source import BLOCK_FRAMES, ArraySource, ResampledSource
from stemmaster.errors import AudioError
from stemmaster.stem_import import import_render, import_stems

RATES = [(44100, 48000), (48000, 44100), (22050, 44100), (8000, 44100), (96000, 44100)]


def noise(channels: int, frames: int, seed: int = 0) -> np.ndarray:
    """float32 ``(channels, frames)``: white noise at -10 dBFS RMS, each channel its own."""
    return (0.3 * np.random.default_rng(seed).standard_normal((channels, frames))).astype(np.float32)


def tone_file(path, rate: int, seconds: float, channels: int, subtype: str = "PCM_24", **kw):
    """A tone with noise, written with soundfile (``(samples, channels)``); returns the path."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * 330.0 * t) + 0.05 * np.random.default_rng(5).standard_normal(n)
    sf.write(path, np.stack([x * (1.0 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32),
             rate, subtype=subtype, **kw)
    return path


# ---------------------------------------------------------------- ResampledSource

@pytest.mark.parametrize("from_hz,to_hz", RATES)
@pytest.mark.parametrize("channels", [1, 2])
def test_resampled_source_reads_equal_resample_of_the_whole(from_hz, to_hz, channels):
    x = noise(channels, 40009 + from_hz // 9, seed=from_hz + channels)
    whole = resample(x, from_hz, to_hz)
    source = ResampledSource(ArraySource(x, from_hz), to_hz)
    assert (source.sample_rate, source.channels, source.frames) == (to_hz, channels, whole.shape[1])
    n = source.frames
    spans = [(0, n), (0, 1), (1, 778), (333, 5001), (4095, 4097), (n // 2 - 611, n // 2 + 1237),
             (n - 5, n), (n - 1, n), (n - 3001, n), (7, 7), (n, n)]
    worst = 0.0
    for start, stop in spans:
        block = source.read(start, stop)
        assert block.dtype == np.float32 and block.shape == (channels, stop - start)
        if stop > start:
            worst = max(worst, float(np.max(np.abs(block - whole[:, start:stop]))))
        np.testing.assert_array_equal(block, whole[:, start:stop])  # bit for bit
    # consecutive blocks of an odd size cover the whole
    joined = np.concatenate([b for _, b in source.blocks(9973)], axis=1)
    np.testing.assert_array_equal(joined, whole)
    assert worst <= 1e-6


@pytest.mark.parametrize("from_hz,to_hz", RATES)
@pytest.mark.parametrize("frames", [1, 2, 37, 1000])
def test_resampled_source_of_signals_shorter_than_the_filter(from_hz, to_hz, frames):
    x = noise(2, frames, seed=frames)
    whole = resample(x, from_hz, to_hz)
    source = ResampledSource(ArraySource(x, from_hz), to_hz)
    np.testing.assert_array_equal(source.read_all(), whole)
    np.testing.assert_array_equal(source.read(source.frames // 3, source.frames), whole[:, source.frames // 3:])


@pytest.mark.parametrize("from_hz,to_hz", RATES + [(44100, 44100)])
@pytest.mark.parametrize("block", [1, 97, 4096, 65536])
def test_stream_of_blocks_equals_resample_of_the_whole(from_hz, to_hz, block):
    x = noise(2, 3001 if block < 97 else 70001, seed=block)
    whole = resample(x, from_hz, to_hz)
    parts = list(ResampledSource.stream((x[:, i:i + block] for i in range(0, x.shape[1], block)), from_hz, to_hz))
    assert all(p.dtype == np.float32 and p.shape[0] == 2 for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    if block == 65536 and from_hz != to_hz:  # a block at a time, not the song
        assert len(parts) > 1 and max(p.shape[1] for p in parts) <= BLOCK_FRAMES


def test_stream_cuts_long_upsampled_blocks():
    x = noise(1, 100000, seed=3)
    parts = list(ResampledSource.stream(iter([x]), 8000, 44100))
    sizes = [p.shape[1] for p in parts]  # 100000 frames at 8 kHz are 551250 at 44.1 kHz
    assert sizes[:2] == [BLOCK_FRAMES, BLOCK_FRAMES] and max(sizes) == BLOCK_FRAMES and sum(sizes) == 551250
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), resample(x, 8000, 44100))


def test_stream_of_nothing_is_nothing():
    assert list(ResampledSource.stream(iter([]), 48000, 44100)) == []


def test_equal_rates_pass_through():
    x = noise(2, 1000)
    source = ResampledSource(ArraySource(x, 48000), 48000)
    assert source.frames == 1000
    np.testing.assert_array_equal(source.read(10, 990), x[:, 10:990])


# ---------------------------------------------------------------- AudioReader

def test_reader_blocks_join_up_to_read_audio(tmp_path):
    path = tone_file(tmp_path / "t.flac", 44100, 2.0, 2, subtype="PCM_16")
    whole, rate = read_audio(path)
    with AudioReader(path) as reader:
        blocks = list(reader.blocks(10007))
        assert (reader.sample_rate, reader.channels, reader.frames_read) == (rate, 2, whole.shape[1])
    assert max(b.shape[1] for b in blocks) == 10007 and all(b.dtype == np.float32 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), whole)


def test_reader_counts_nan_over_every_block_and_yields_none_of_them(tmp_path):
    audio = tone_file(tmp_path / "x.wav", 44100, 2.0, 2, subtype="FLOAT")
    data, _ = sf.read(audio, dtype="float32")
    data[30000, 1] = np.nan
    data[30001, 0] = np.inf
    data[80000, 0] = np.nan
    sf.write(audio, data, 44100, subtype="FLOAT")
    seen = []
    with pytest.raises(AudioError, match=r"x\.wav: 3 NaN/Inf samples \(first at 0\.680 s\); re-export the file$"):
        with AudioReader(audio) as reader:
            for block in reader.blocks(10000):
                seen.append(block)
    assert len(seen) == 3 and all(np.isfinite(b).all() for b in seen)


def test_reader_refuses_what_read_audio_refuses(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file \(0 bytes\)"):
        AudioReader(tmp_path / "empty.wav")
    sf.write(tmp_path / "six.wav", np.zeros((100, 6), np.float32), 44100)
    with pytest.raises(AudioError, match=r"six\.wav: 6 channels; stemmaster takes mono or stereo"):
        AudioReader(tmp_path / "six.wav")
    with pytest.raises(AudioError, match=r"missing\.wav: file not found"):
        AudioReader(tmp_path / "missing.wav")


# ---------------------------------------------------------------- import

def whole_file_stem(path, rate: int) -> np.ndarray:
    """What the import wrote before it streamed: read whole, stereo, resampled whole."""
    audio, file_rate = read_audio(path)
    return resample(to_stereo(audio), file_rate, rate)


@pytest.fixture(params=[None, 10007], ids=["default-blocks", "odd-blocks"])
def block_frames(request, monkeypatch):
    """Read files in the reader's own blocks, or in blocks of an odd size."""
    if request.param is not None:
        real = AudioReader.blocks
        monkeypatch.setattr(AudioReader, "blocks", lambda self, block_frames=0: real(self, request.param))
    return request.param


@pytest.mark.parametrize("file,file_rate,channels,subtype", [
    ("vox.wav", 48000, 1, "PCM_24"),      # mono, resampled
    ("keys.wav", 44100, 2, "PCM_24"),     # stereo, same rate
    ("pad.flac", 22050, 2, "PCM_16"),     # stereo, upsampled
    ("bass.wav", 96000, 2, "FLOAT"),      # stereo, downsampled
])
def test_imported_stem_equals_the_whole_file_path(tmp_path, block_frames, file, file_rate, channels, subtype):
    folder = tmp_path / "stems"
    folder.mkdir()
    seconds = 6.5 if block_frames is None else 1.3  # the default blocks: more than one of them
    tone_file(folder / file, file_rate, seconds, channels, subtype=subtype)
    project = tmp_path / "p"
    rate, sources, stems = import_stems(folder, project, sample_rate=44100)
    (source,), (stem,) = sources, stems
    expected = whole_file_stem(folder / file, 44100)
    got, got_rate = read_audio(project / stem.path)
    assert got_rate == rate == 44100 and got.shape == expected.shape
    assert float(np.max(np.abs(got - expected))) <= 1e-6
    np.testing.assert_array_equal(got, expected)
    assert (source.sample_rate, source.channels, source.frames) == (file_rate, channels, round(seconds * file_rate))


def test_imported_stems_padded_and_mp3_decoded_as_before(tmp_path, block_frames):
    folder = tmp_path / "stems"
    folder.mkdir()
    tone_file(folder / "drums.mp3", 48000, 1.5, 2, format="MP3", subtype="MPEG_LAYER_III")
    tone_file(folder / "bass.wav", 48000, 1.2, 1)
    rate, sources, stems = import_stems(folder, tmp_path / "p", sample_rate=44100)
    by_name = {s.name: s for s in stems}
    drums, bass = (whole_file_stem(folder / f, 44100) for f in ("drums.mp3", "bass.wav"))
    got_drums, _ = read_audio(tmp_path / "p" / by_name["drums"].path)
    got_bass, _ = read_audio(tmp_path / "p" / by_name["bass"].path)
    np.testing.assert_array_equal(got_drums, drums)
    assert got_bass.shape == got_drums.shape  # padded to the longest
    np.testing.assert_array_equal(got_bass[:, :bass.shape[1]], bass)
    assert not got_bass[:, bass.shape[1]:].any()


def test_render_checked_block_by_block(tmp_path, block_frames):
    late = np.zeros((2 * 44100, 2), np.float32)
    late[-10:, 0] = 0.1  # silent but for its last frames
    sf.write(tmp_path / "late.wav", late, 44100, subtype="FLOAT")
    rate, (source,) = import_render(tmp_path / "late.wav", tmp_path / "a")
    assert (rate, source.channels, source.frames) == (44100, 2, 2 * 44100)
    sf.write(tmp_path / "silent.wav", np.zeros((2 * 44100, 1), np.float32), 44100)
    with pytest.raises(AudioError, match=r"silent\.wav: silent \(all samples are zero\)"):
        import_render(tmp_path / "silent.wav", tmp_path / "b")
    bad = late.copy()
    bad[20000, 0] = bad[70000, 1] = np.nan
    sf.write(tmp_path / "nan.wav", bad, 44100, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: 2 NaN/Inf samples \(first at 0\.454 s\)"):
        import_render(tmp_path / "nan.wav", tmp_path / "c")
    tone_file(tmp_path / "short.wav", 44100, 0.3, 2)
    with pytest.raises(AudioError, match=r"short\.wav: 0\.30 s long; stemmaster needs at least 0\.4 s"):
        import_render(tmp_path / "short.wav", tmp_path / "d")


def test_failed_stem_leaves_no_partial_working_stem(tmp_path):
    folder = tmp_path / "stems"
    folder.mkdir()
    data = np.full((3 * 44100, 2), 0.1, np.float32)
    data[-100, 0] = np.inf  # found in the last block, after the first ones were written
    sf.write(folder / "late inf.wav", data, 44100, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"late inf\.wav: 1 NaN/Inf sample \(first at 2\.998 s\)"):
        import_stems(folder, tmp_path / "p", sample_rate=48000)
    assert list((tmp_path / "p" / "stems").iterdir()) == []


# ---------------------------------------------------------------- memory

_MEMORY_RUN = textwrap.dedent("""
    import resource, sys
    from stemmaster.stem_import import import_stems
    rate, sources, stems = import_stems(sys.argv[1], sys.argv[2], sample_rate=44100)
    assert rate == 44100 and sources[0].sample_rate == 48000
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def _write_stem(folder, minutes: float) -> None:
    """A 48 kHz stereo 24-bit WAV (a tone with noise), written a block at a time."""
    folder.mkdir()
    rate, n = 48000, int(minutes * 60 * 48000)
    rng = np.random.default_rng(11)
    with sf.SoundFile(str(folder / "mix.wav"), "w", rate, 2, subtype="PCM_24") as f:
        for a in range(0, n, 1 << 18):
            m = min(n, a + (1 << 18)) - a
            x = 0.3 * np.sin(2 * np.pi * 220.0 * (a + np.arange(m)) / rate) + 0.05 * rng.standard_normal(m)
            f.write(np.stack([x, 0.7 * x], axis=1).astype(np.float32))


def _peak_rss_mb(folder, project) -> float:
    # Started through a shell that forks it: a child forked straight from pytest starts its
    # ru_maxrss at pytest's own resident size (Linux carries the pre-exec peak over exec).
    out = subprocess.run(["/bin/sh", "-c", '"$0" -c "$1" "$2" "$3"; exit $?', sys.executable, _MEMORY_RUN,
                          str(folder), str(project)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0  # ru_maxrss is in KiB on Linux


def test_import_memory_does_not_grow_with_the_song(tmp_path):
    _write_stem(tmp_path / "one", 1.0)
    _write_stem(tmp_path / "six", 6.0)
    one = _peak_rss_mb(tmp_path / "one", tmp_path / "p1")
    six = _peak_rss_mb(tmp_path / "six", tmp_path / "p6")
    print(f"peak RSS of import_stems (48 kHz stereo 24-bit into 44.1 kHz): 1 minute {one:.1f} MB, "
          f"6 minutes {six:.1f} MB (+{six - one:.1f} MB; 5 minutes of stereo float32 is 106 MB)")
    assert six - one < 40.0
    assert sf.info(str(tmp_path / "p6" / "stems" / "mix.wav")).frames == 6 * 60 * 44100
