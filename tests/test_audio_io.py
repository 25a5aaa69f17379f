"""audio_io: real files on disk, read back and checked."""

from __future__ import annotations

import errno
import math
import os

import numpy as np
import pytest
import soundfile as sf

from stemmaster import audio_io
from stemmaster.audio_io import (
    AUDIO_EXTENSIONS,
    audio_info,
    read_audio,
    resample,
    to_stereo,
    write_audio,
)
from stemmaster.errors import AudioError


def sine(freq: float, sample_rate: int, duration_s: float, amp: float = 0.5, channels: int = 2) -> np.ndarray:
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.repeat(x[None, :], channels, axis=0).astype(np.float32)


def amplitude_db(x: np.ndarray) -> float:
    """Peak amplitude of a steady sine from its RMS (trimmed of edge effects), in dB."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    mid = x[..., n // 4: 3 * n // 4]
    return 20 * math.log10(math.sqrt(2 * np.mean(mid**2)))


def no_temp_files(folder) -> bool:
    return not [p for p in os.listdir(folder) if p.endswith(".tmp")]


# ---------------------------------------------------------------- round trips

@pytest.mark.parametrize(
    "ext, subtype, tol",
    [
        (".wav", "PCM_16", 1.0 / 2**15),
        (".wav", "PCM_24", 1.0 / 2**23),
        (".wav", "FLOAT", 0.0),
        (".flac", "PCM_16", 1.0 / 2**15),
        (".flac", "PCM_24", 1.0 / 2**23),
    ],
)
def test_write_read_round_trip(tmp_path, ext, subtype, tol):
    audio = sine(997, 48000, 0.5, amp=0.8)
    audio[1] *= -0.5  # channels differ, so a swap or layout bug shows
    path = tmp_path / f"out{ext}"
    write_audio(path, audio, 48000, subtype=subtype)
    back, rate = read_audio(path)
    assert rate == 48000
    assert back.dtype == np.float32
    assert back.shape == audio.shape
    assert np.max(np.abs(back - audio)) <= tol + 1e-9
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (48000, 2, audio.shape[1])
    assert info.subtype == subtype
    assert info.format == {".wav": "WAV", ".flac": "FLAC"}[ext]
    assert info.duration_s == pytest.approx(0.5)
    assert no_temp_files(tmp_path)


def test_mono_round_trip_keeps_one_channel(tmp_path):
    audio = sine(440, 44100, 0.2, channels=1)
    write_audio(tmp_path / "m.wav", audio, 44100, subtype="FLOAT")
    back, rate = read_audio(tmp_path / "m.wav")
    assert back.shape == (1, audio.shape[1]) and rate == 44100
    np.testing.assert_array_equal(back, audio)


def test_write_replaces_existing_file(tmp_path):
    path = tmp_path / "x.wav"
    write_audio(path, sine(100, 8000, 0.1), 8000)
    write_audio(path, sine(200, 8000, 0.3), 8000)
    assert audio_info(path).frames == 2400


def test_pcm_write_clips_instead_of_wrapping(tmp_path):
    audio = np.array([[1.5, -1.5, 0.25]], dtype=np.float32)
    write_audio(tmp_path / "c.wav", audio, 48000, subtype="PCM_24")
    back, _ = read_audio(tmp_path / "c.wav")
    assert back[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert back[0, 1] == pytest.approx(-1.0, abs=1e-6)
    assert back[0, 2] == pytest.approx(0.25, abs=1e-6)


def test_float_write_keeps_overs(tmp_path):
    audio = np.array([[1.5, -2.0, 0.25]], dtype=np.float32)
    write_audio(tmp_path / "f.wav", audio, 48000, subtype="FLOAT")
    back, _ = read_audio(tmp_path / "f.wav")
    np.testing.assert_array_equal(back, audio)


@pytest.mark.parametrize(
    "ext, fmt, subtype, sf_subtype, lossy",
    [
        (".aiff", "AIFF", "PCM_24", "PCM_24", False),
        (".aif", "AIFF", "PCM_16", "PCM_16", False),
        (".ogg", "OGG", "VORBIS", "VORBIS", True),
        (".mp3", "MP3", "MPEG_LAYER_III", "MPEG_LAYER_III", True),
    ],
)
def test_reads_aiff_ogg_mp3(tmp_path, ext, fmt, subtype, sf_subtype, lossy):
    audio = sine(1000, 44100, 1.0, amp=0.5)
    path = tmp_path / f"in{ext}"
    sf.write(path, audio.T, 44100, format=fmt, subtype=sf_subtype)
    back, rate = read_audio(path)
    assert rate == 44100
    assert back.dtype == np.float32 and back.shape[0] == 2
    info = audio_info(path)
    assert info.format == fmt and info.subtype == subtype and info.channels == 2
    if lossy:
        assert abs(back.shape[1] - audio.shape[1]) <= 2048
        assert amplitude_db(back[0]) == pytest.approx(20 * math.log10(0.5), abs=0.5)
    else:
        assert back.shape == audio.shape
        assert np.max(np.abs(back - audio)) < 1e-4
    assert ext in AUDIO_EXTENSIONS


# ---------------------------------------------------------------- resampling

def test_resample_48k_to_44k1_keeps_sine_amplitude_and_phase():
    x = sine(1000, 48000, 2.0, amp=0.5)
    y = resample(x, 48000, 44100)
    assert y.dtype == np.float32
    assert y.shape == (2, math.ceil(x.shape[1] * 44100 / 48000))
    assert abs(amplitude_db(y[0]) - amplitude_db(x[0])) < 0.05
    # aligned: compare with the ideal sine at the new rate (no filter delay left in)
    ideal = sine(1000, 44100, 2.0, amp=0.5)[0]
    n = y.shape[1]
    err = y[0, n // 4: 3 * n // 4] - ideal[n // 4: 3 * n // 4]
    assert 20 * math.log10(np.sqrt(np.mean(err.astype(np.float64) ** 2)) / 0.5) < -80


@pytest.mark.parametrize("to_hz", [48000, 44100])
def test_resample_rejects_aliasing_of_30k_tone_from_96k(to_hz):
    x = sine(30000, 96000, 1.0, amp=1.0, channels=1)
    y = resample(x, 96000, to_hz)
    assert amplitude_db(y[0]) < -80


def test_resample_passband_is_flat_to_20k_at_44k1():
    x = sine(20000, 48000, 1.0, amp=0.5, channels=1)
    y = resample(x, 48000, 44100)
    assert abs(amplitude_db(y[0]) - 20 * math.log10(0.5)) < 0.1


def test_resample_up_and_odd_ratio():
    x = sine(1000, 44100, 1.0, channels=1)
    y = resample(x, 44100, 96000)
    assert y.shape[1] == 96000 and abs(amplitude_db(y[0]) - amplitude_db(x[0])) < 0.05
    z = resample(x, 44100, 22050)
    assert z.shape[1] == 22050 and abs(amplitude_db(z[0]) - amplitude_db(x[0])) < 0.05


def test_resample_identity_returns_float32_copy():
    x = sine(1000, 48000, 0.1).astype(np.float64)
    y = resample(x, 48000, 48000)
    assert y.dtype == np.float32 and y is not x
    np.testing.assert_array_equal(y, x.astype(np.float32))


def test_to_stereo():
    mono = np.arange(5, dtype=np.float32)[None, :]
    st = to_stereo(mono)
    assert st.shape == (2, 5)
    np.testing.assert_array_equal(st[0], mono[0])
    np.testing.assert_array_equal(st[1], mono[0])
    stereo = np.zeros((2, 3), np.float32)
    assert to_stereo(stereo) is stereo
    with pytest.raises(AudioError):
        to_stereo(np.zeros((3, 3), np.float32))


# ---------------------------------------------------------------- read errors

def _good_wav(path, seconds=1.0, rate=48000):
    sf.write(path, sine(440, rate, seconds).T, rate, subtype="PCM_16")
    return path


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match="nope.wav: file not found"):
        read_audio(path)
    with pytest.raises(AudioError, match="nope.wav: file not found"):
        audio_info(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file"):
        read_audio(path)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my notes, not audio\n")
    with pytest.raises(AudioError, match=r"notes\.wav: not a readable audio file") as e:
        read_audio(path)
    assert "\n" not in str(e.value)


def test_unsupported_extension_says_so(tmp_path):
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 64)
    with pytest.raises(AudioError, match=r"song\.m4a: .*\.m4a files are not supported"):
        read_audio(path)


def test_truncated_header(tmp_path):
    good = _good_wav(tmp_path / "good.wav")
    bad = tmp_path / "cut.wav"
    bad.write_bytes(good.read_bytes()[:20])
    with pytest.raises(AudioError, match=r"cut\.wav: corrupt or unreadable"):
        read_audio(bad)


def test_truncated_data(tmp_path):
    good = _good_wav(tmp_path / "good.wav")
    bad = tmp_path / "short.wav"
    bad.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(AudioError, match=r"short\.wav: truncated"):
        read_audio(bad)
    with pytest.raises(AudioError, match=r"short\.wav: truncated"):
        audio_info(bad)


def test_nan_samples_reported_with_count_and_time(tmp_path):
    audio = sine(440, 48000, 1.0)
    audio[0, 24000] = np.nan
    audio[1, 36000] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, audio.T, 48000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: 2 NaN/Inf samples \(first at 0\.500 s\)"):
        read_audio(path)


def test_six_channels_refused(tmp_path):
    path = tmp_path / "surround.wav"
    sf.write(path, np.zeros((1000, 6), np.float32), 48000)
    with pytest.raises(AudioError, match=r"surround\.wav: 6 channels; stemmaster takes mono or stereo"):
        read_audio(path)
    with pytest.raises(AudioError, match=r"surround\.wav: 6 channels"):
        audio_info(path)


def test_zero_frames(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros((0, 2), np.float32), 48000)
    with pytest.raises(AudioError, match=r"zero\.wav: contains no audio \(0 frames\)"):
        read_audio(path)


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(AudioError, match="is a folder"):
        read_audio(tmp_path)


# ---------------------------------------------------------------- write errors

def test_write_into_missing_folder_names_path(tmp_path):
    path = tmp_path / "no" / "such" / "out.wav"
    with pytest.raises(AudioError, match=r"out\.wav: cannot write"):
        write_audio(path, sine(440, 48000, 0.1), 48000)
    assert not path.exists()


@pytest.mark.parametrize(
    "name, subtype, match",
    [
        ("x.mp3", "PCM_16", "use .wav or .flac"),
        ("x.wav", "PCM_32", "unsupported subtype"),
        ("x.flac", "FLOAT", "FLAC cannot hold 32-bit float"),
    ],
)
def test_write_bad_arguments(tmp_path, name, subtype, match):
    with pytest.raises(AudioError, match=match):
        write_audio(tmp_path / name, sine(440, 48000, 0.1), 48000, subtype=subtype)
    assert os.listdir(tmp_path) == []


def test_write_refuses_nan(tmp_path):
    audio = sine(440, 48000, 0.1)
    audio[0, 3] = np.nan
    with pytest.raises(AudioError, match="NaN/Inf"):
        write_audio(tmp_path / "n.wav", audio, 48000)
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "master.wav"
    write_audio(path, sine(440, 48000, 0.5), 48000)
    before = path.read_bytes()

    def full_disk(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(audio_io.sf.SoundFile, "write", full_disk)
    with pytest.raises(AudioError, match=r"master\.wav: cannot write \(disk full"):
        write_audio(path, sine(220, 48000, 1.0), 48000)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["master.wav"]


def test_failed_rename_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "master.flac"
    write_audio(path, sine(440, 48000, 0.5), 48000)
    before = path.read_bytes()

    def fail(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(audio_io.os, "replace", fail)
    with pytest.raises(AudioError, match=r"master\.flac: cannot write \(disk full"):
        write_audio(path, sine(220, 48000, 1.0), 48000)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["master.flac"]


def test_interrupted_write_leaves_no_temp(tmp_path, monkeypatch):
    def interrupt(self, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(audio_io.sf.SoundFile, "write", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_audio(tmp_path / "x.wav", sine(220, 48000, 0.1), 48000)
    assert os.listdir(tmp_path) == []


def test_write_refuses_zero_frames(tmp_path):
    with pytest.raises(AudioError, match=r"e\.flac: no audio to write"):
        write_audio(tmp_path / "e.flac", np.zeros((2, 0), np.float32), 48000)
    assert os.listdir(tmp_path) == []
