"""Deliverable formats (stemmaster/deliver/formats.py) and the manifest (manifest.py).

Every file is decoded back independently (soundfile/libsndfile; ffmpeg as a
second MP3 decoder where installed) and checked for rate, length, channels,
tags and true peak; the manifest is checked against a re-measurement.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemmaster.deliver import formats as fm
from stemmaster.deliver.formats import FORMATS, normalize_isrc, write_deliverable
from stemmaster.deliver.manifest import manifest_row, write_manifest
from stemmaster.errors import AudioError, SettingsError
from stemmaster.meters.loudness import gated_loudness_lufs
from stemmaster.meters.truepeak import true_peak_dbtp

CEILING = -1.0
META = {"title": "Déjà Vu", "artist": "The Artist", "album": "The Album", "year": "2024",
        "isrc": "GB-A1B-24-00042"}


def hot_noise(rate: int, seconds: float, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Limited (tanh-saturated) noise, scaled to exactly -0.3 dBTP: hot enough that every format has to trim."""
    rng = np.random.default_rng(seed)
    x = np.tanh(3.0 * 0.3 * rng.standard_normal((channels, int(round(rate * seconds)))))
    return x * 10.0 ** ((-0.3 - true_peak_dbtp(x)) / 20.0)


@pytest.fixture(scope="module")
def src44() -> np.ndarray:
    return hot_noise(44100, 1.5)


def _decode(path: Path) -> tuple[np.ndarray, int]:
    if path.suffix == ".mp3" and "MP3" not in sf.available_formats():
        if shutil.which("ffmpeg") is None:
            pytest.skip("no MP3 decoder (libsndfile < 1.1 and no ffmpeg)")
        return fm._ffmpeg_decode(path, shutil.which("ffmpeg"))
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data.T, rate


def _riff_chunks(path: Path) -> dict[bytes, bytes]:
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    assert int.from_bytes(raw[4:8], "little") == len(raw) - 8  # the RIFF size covers the added chunks
    chunks, pos = {}, 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], int.from_bytes(raw[pos + 4:pos + 8], "little")
        chunks[cid] = raw[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    assert pos == len(raw)
    return chunks


def _info(list_chunk: bytes) -> dict[str, str]:
    assert list_chunk[:4] == b"INFO"
    out, pos = {}, 4
    while pos + 8 <= len(list_chunk):
        cid, size = list_chunk[pos:pos + 4], int.from_bytes(list_chunk[pos + 4:pos + 8], "little")
        out[cid.decode()] = list_chunk[pos + 8:pos + 8 + size].rstrip(b"\x00").decode("utf-8")
        pos += 8 + size + (size & 1)
    return out


def _check_tags(path: Path) -> None:
    """The title, artist, album and ISRC read back from the format's own tag container."""
    import mutagen
    from mutagen.id3 import ID3

    isrc = "GBA1B2400042"
    if path.suffix == ".flac":
        tags = mutagen.File(str(path)).tags
        assert (tags["TITLE"], tags["ARTIST"], tags["ALBUM"], tags["DATE"], tags["ISRC"]) == (
            ["Déjà Vu"], ["The Artist"], ["The Album"], ["2024"], [isrc])
    elif path.suffix == ".mp3":
        tags = ID3(str(path))
        assert tags.version[:2] == (2, 3)
        assert [str(tags[k]) for k in ("TIT2", "TPE1", "TALB", "TSRC")] == ["Déjà Vu", "The Artist", "The Album", isrc]
    else:
        chunks = _riff_chunks(path)
        info = _info(chunks[b"LIST"])
        assert info == {"INAM": "Déjà Vu", "IART": "The Artist", "IPRD": "The Album", "ICRD": "2024"}
        assert "ISRC" not in info  # RIFF INFO's ISRC means "Source": the code goes into the id3 chunk
        id3 = mutagen.File(str(path)).tags
        assert str(id3["TSRC"]) == isrc and str(id3["TIT2"]) == "Déjà Vu"


CASES = [(fmt, rate) for fmt in FORMATS for rate in (None, 44100, 48000)]


@pytest.mark.parametrize("fmt,out_rate", CASES)
def test_each_format_decodes_back_under_the_ceiling_with_tags(tmp_path, src44, fmt, out_rate):
    path = write_deliverable(tmp_path / "song", src44, 44100, fmt, out_rate=out_rate, ceiling_dbtp=CEILING,
                             metadata=META)
    assert path == tmp_path / ("song" + FORMATS[fmt].extension)
    audio, rate = _decode(path)
    to = out_rate or 44100
    assert rate == to
    assert audio.shape == (2, math.ceil(src44.shape[1] * to / 44100))  # MP3 too: the LAME tag trims delay/padding
    assert true_peak_dbtp(audio, rate) <= CEILING
    assert true_peak_dbtp(audio, rate) > CEILING - 0.5  # trimmed, not crushed
    _check_tags(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_96k_source_to_48k(tmp_path, fmt):
    src = hot_noise(96000, 0.75, seed=3)
    path = write_deliverable(tmp_path / "hi", src, 96000, fmt, out_rate=48000, ceiling_dbtp=CEILING)
    audio, rate = _decode(path)
    assert rate == 48000
    assert audio.shape == (2, math.ceil(src.shape[1] * 48000 / 96000))
    assert true_peak_dbtp(audio, rate) <= CEILING


def test_mp3_without_rate_at_96k_is_made_at_48k(tmp_path):
    src = hot_noise(96000, 0.5, seed=4)
    audio, rate = _decode(write_deliverable(tmp_path / "x", src, 96000, "mp3"))
    assert rate == 48000 and audio.shape == (2, src.shape[1] // 2)


@pytest.mark.parametrize("fmt", ["mp3", "wav16", "flac24"])
def test_mono(tmp_path, fmt):
    src = hot_noise(48000, 0.6, channels=1, seed=5)
    path = write_deliverable(tmp_path / "mono", src, 48000, fmt, ceiling_dbtp=CEILING, metadata=META)
    audio, rate = _decode(path)
    assert (rate, audio.shape) == (48000, src.shape)
    assert true_peak_dbtp(audio, rate) <= CEILING
    _check_tags(path)


def test_mp3_is_gapless_and_aligned(tmp_path):
    """The Info/LAME frame carries LAME's 576-sample delay and the padding: the decode lines up with the
    input sample for sample (a tone, so the alignment is unambiguous) and is exactly as long."""
    import mutagen
    import mutagen.mp3

    rate, n = 44100, 44100 + 777
    t = np.arange(n) / rate
    tone = 0.5 * np.sin(2 * np.pi * 441.0 * t) * np.minimum(1.0, t * 4)
    src = np.stack([tone, -tone])
    path = write_deliverable(tmp_path / "tone", src, rate, "mp3")
    audio, _ = _decode(path)
    assert audio.shape == src.shape
    err = audio[:, 2000:-2000] - src[:, 2000:-2000]
    assert float(np.sqrt(np.mean(err ** 2))) < 0.003  # aligned: a one-sample shift would leave ~0.02
    info = mutagen.File(str(path)).info
    assert round(info.bitrate / 1000) == 320 and info.encoder_info.startswith("LAME")
    assert info.bitrate_mode == mutagen.mp3.BitrateMode.CBR
    assert round(info.length * rate) == n


@pytest.mark.ffmpeg
def test_mp3_length_with_ffmpeg_too(tmp_path, src44):
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg not installed")
    path = write_deliverable(tmp_path / "s", src44, 44100, "mp3", out_rate=48000, ceiling_dbtp=CEILING)
    audio, rate = fm._ffmpeg_decode(path, ffmpeg)
    assert (rate, audio.shape) == (48000, (2, math.ceil(src44.shape[1] * 48000 / 44100)))
    assert true_peak_dbtp(audio, rate) <= CEILING + 0.05  # ffmpeg's decoder is not the one measured


def test_pcm_is_on_the_grid_dithered_and_reproducible(tmp_path, src44):
    quiet = src44 * 0.001
    a = write_deliverable(tmp_path / "a", quiet, 44100, "wav16", dither_seed=7)
    b = write_deliverable(tmp_path / "b", quiet, 44100, "wav16", dither_seed=7)
    c = write_deliverable(tmp_path / "c", quiet, 44100, "wav16", dither_seed=8)
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()
    pcm, _ = sf.read(str(a), dtype="int16", always_2d=True)
    err = pcm.T / 32768.0 - quiet
    # TPDF: error mean 0, variance LSB^2/4 (rounding's LSB^2/12 plus the dither's LSB^2/6)
    lsb = 2.0 ** -15
    assert abs(float(err.mean())) < 0.02 * lsb
    assert float(err.var()) == pytest.approx(lsb ** 2 / 4, rel=0.05)


def test_without_ceiling_nothing_is_trimmed(tmp_path, src44):
    audio, _ = _decode(write_deliverable(tmp_path / "f", src44, 44100, "wav32f"))
    assert np.array_equal(audio, src44.astype(np.float32))


def test_manifest_matches_a_re_measurement(tmp_path, src44):
    rows = []
    for fmt in FORMATS:
        path = write_deliverable(tmp_path / f"song_{fmt}", src44, 44100, fmt, ceiling_dbtp=CEILING, metadata=META)
        rows.append(manifest_row(path, version="main", fmt=fmt))
    json_path, csv_path = write_manifest(tmp_path, rows)
    doc = json.loads(json_path.read_text())
    assert len(doc["files"]) == len(FORMATS)
    for row in doc["files"]:
        path = Path(row["file"])
        audio, rate = _decode(path)
        assert row["integrated_lufs"] == pytest.approx(gated_loudness_lufs(audio.astype(np.float64), rate), abs=0.01)
        assert row["true_peak_dbtp"] == pytest.approx(true_peak_dbtp(audio, rate), abs=0.01)
        assert row["true_peak_dbtp"] <= CEILING
        assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert (row["sample_rate_hz"], row["channels"], row["length_samples"]) == (rate, 2, audio.shape[1])
        assert row["duration_s"] == pytest.approx(audio.shape[1] / rate, abs=1e-6)
        assert row["size_bytes"] == path.stat().st_size
    with open(csv_path, newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["sha256"] for r in table] == [r["sha256"] for r in doc["files"]]
    assert {"integrated_lufs", "true_peak_dbtp", "sample_rate_hz", "duration_s", "sha256"} <= set(table[0])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_manifest_silence_is_null(tmp_path):
    path = write_deliverable(tmp_path / "quiet", np.zeros((2, 44100)), 44100, "wav24", dither_seed=1)
    row = manifest_row(path, version="main", fmt="wav24")
    json_path, _ = write_manifest(tmp_path, [row])
    assert json.loads(json_path.read_text())["files"][0]["integrated_lufs"] is None


# ------------------------------------------------------------------ interrupted writes


def _assert_nothing_landed(folder: Path, keep: dict[str, bytes] | None = None) -> None:
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == (keep or {})


@pytest.mark.parametrize("fmt", ["wav16", "wav32f", "flac24"])
@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_interrupted_pcm_write_leaves_no_file(tmp_path, monkeypatch, src44, fmt, exc):
    real_write = sf.SoundFile.write

    def half_then_fail(self, data):
        real_write(self, data[: len(data) // 2])
        raise exc

    monkeypatch.setattr(sf.SoundFile, "write", half_then_fail)
    with pytest.raises((AudioError, KeyboardInterrupt)):
        write_deliverable(tmp_path / "song", src44, 44100, fmt, ceiling_dbtp=CEILING)
    _assert_nothing_landed(tmp_path)


def test_interrupted_mp3_keeps_the_previous_file(tmp_path, monkeypatch):
    import lameenc

    src = hot_noise(44100, 3.5, seed=6)  # more than one encoder block
    (tmp_path / "song.mp3").write_bytes(b"the previous export")
    real = lameenc.Encoder

    class Failing:
        def __init__(self):
            self.enc, self.calls = real(), 0

        def __getattr__(self, name):
            return getattr(self.enc, name)

        def encode(self, pcm):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("encoder died midway")
            return self.enc.encode(pcm)

    monkeypatch.setattr(lameenc, "Encoder", Failing)
    with pytest.raises(AudioError, match="encoder died midway"):
        write_deliverable(tmp_path / "song", src, 44100, "mp3", metadata=META)
    _assert_nothing_landed(tmp_path, {"song.mp3": b"the previous export"})


def test_failure_while_tagging_leaves_no_file(tmp_path, monkeypatch, src44):
    def boom(path, tags):
        raise KeyboardInterrupt

    monkeypatch.setattr(fm, "_tag_flac", boom)
    with pytest.raises(KeyboardInterrupt):
        write_deliverable(tmp_path / "song", src44, 44100, "flac16", metadata=META)
    _assert_nothing_landed(tmp_path)


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize("bad", ["US-S1Z-99-0001", "USS1Z990000", "US-S1Z-9900001", "12-S1Z-99-00001",
                                 "US-S1Z-99-00001X", "US_S1Z_99_00001", "USS1Z99-00001"])
def test_bad_isrc(tmp_path, src44, bad):
    with pytest.raises(SettingsError) as err:
        write_deliverable(tmp_path / "s", src44, 44100, "wav16", metadata={"isrc": bad})
    msg = str(err.value)
    assert "\n" not in msg and "ISRC" in msg and "CC-XXX-YY-NNNNN" in msg
    assert list(tmp_path.iterdir()) == []


def test_isrc_forms():
    assert normalize_isrc("us-s1z-99-00001") == "USS1Z9900001"
    assert normalize_isrc("USS1Z9900001") == "USS1Z9900001"


def test_unknown_format_and_settings(tmp_path, src44):
    with pytest.raises(SettingsError) as err:
        write_deliverable(tmp_path / "s", src44, 44100, "ogg")
    assert str(err.value) == "unknown format 'ogg' (known: wav16, wav24, wav32f, flac16, flac24, mp3)"
    with pytest.raises(SettingsError, match="out_rate"):
        write_deliverable(tmp_path / "s", src44, 44100, "wav16", out_rate=96000)
    with pytest.raises(SettingsError, match="metadata key 'composer'"):
        write_deliverable(tmp_path / "s", src44, 44100, "wav16", metadata={"composer": "x"})
    assert list(tmp_path.iterdir()) == []
