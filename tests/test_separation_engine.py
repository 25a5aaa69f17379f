"""The separation engine on tiny random-weight Demucs models: shapes, rates, residual, equality with apply_model."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from separation.engine import separate, stems_with_residual  # noqa: E402
from separation.models import load_model, save_bag  # noqa: E402
from separation.reference import apply_model_reference  # noqa: E402
from separation.testing import SOURCES, tiny_htdemucs, tiny_model_repo  # noqa: E402
from stemmaster.demo import demo_mix, make_demo_stems  # noqa: E402
from stemmaster.errors import Cancelled, SeparationError  # noqa: E402

SR = 22050  # the tiny models' rate


def rel_db(a, b) -> float:
    """Max absolute difference relative to the max of ``b``, in dB."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return 20 * np.log10(np.max(np.abs(a - b)) / np.max(np.abs(b)) + 1e-300)


@pytest.fixture(scope="module")
def mix() -> np.ndarray:
    return np.ascontiguousarray(demo_mix(make_demo_stems(SR, 5.0))[:, SR:4 * SR])  # 3 s, (2, 66150) float32


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    tiny_model_repo(folder, "tiny", kind="htdemucs", seed=0)
    tiny_model_repo(folder, "tinyh", kind="hdemucs", seed=0)
    tiny_model_repo(folder, "tinyv2", kind="demucs", seed=0)
    save_bag([tiny_htdemucs(seed=5), tiny_htdemucs(seed=6)], folder, "pair",
             weights=[[1.0, 0.0, 0.5, 2.0], [0.0, 1.0, 0.5, 1.0]])
    return folder


@pytest.fixture(scope="module")
def tiny(repo):
    return load_model("tiny", repo=repo)


@pytest.fixture(scope="module")
def base(tiny, mix):
    """One separation of the 3-second mix with default settings, shared by the tests that only read it."""
    return separate(mix, SR, tiny)


def stock(model, audio: np.ndarray, seed: int, **kwargs) -> np.ndarray:
    """demucs' apply_model with demucs' normalisation and the global ``random`` seeded, stacked by source."""
    return np.stack(list(apply_model_reference(model, audio, seed=seed, **kwargs).values()))


def stacked(result) -> np.ndarray:
    return np.stack([result.stems[name] for name in SOURCES])


def test_stems_shapes_names_and_metadata(tiny, mix, base):
    result = base
    assert list(result.stems) == list(SOURCES)
    for stem in result.stems.values():
        assert stem.shape == mix.shape and stem.dtype == np.float32 and np.isfinite(stem).all()
        assert np.abs(stem).max() > 1e-3
    assert result.sample_rate == SR and result.residual.shape == mix.shape
    assert result.model_name == "tiny" and result.model_checksum == tiny.checksum
    assert result.settings["shifts"] == 1 and len(result.settings["shift_offsets"]) == 1
    assert 0 <= result.settings["shift_offsets"][0][0] <= SR // 2


@pytest.mark.parametrize("name, seconds", [("tiny", 3.0), ("tinyh", 3.0), ("tinyv2", 3.0), ("tiny", 1.3)])
def test_matches_demucs_apply_model(repo, mix, name, seconds):
    model = load_model(name, repo=repo)
    audio = mix[:, :int(seconds * SR)]
    ours = stacked(separate(audio, SR, model, seed=11))
    theirs = stock(model, audio, seed=11, shifts=1, overlap=0.25)
    assert ours.shape == theirs.shape
    assert rel_db(ours, theirs) < -60
    assert rel_db(ours, theirs) < -100  # same maths: only float32 rounding differs


def test_matches_apply_model_for_a_weighted_bag_with_two_shifts(repo, mix, monkeypatch):
    model = load_model("pair", repo=repo)
    mix = mix[:, :2 * SR]
    result = separate(mix, SR, model, shifts=2, overlap=0.3, seed=3)
    drawn = iter([o for per_model in result.settings["shift_offsets"] for o in per_model])
    assert len(result.settings["shift_offsets"]) == 2 and len(result.settings["shift_offsets"][0]) == 2
    import demucs.apply

    monkeypatch.setattr(demucs.apply.random, "randint", lambda a, b: next(drawn))
    theirs = stock(model, mix, seed=0, shifts=2, overlap=0.3)
    assert rel_db(stacked(result), theirs) < -100


def test_segment_override_matches_apply_model(tiny, mix):
    ours = stacked(separate(mix, SR, tiny, segment_s=1.5, overlap=0.1, seed=2))
    theirs = stock(tiny, mix, seed=2, shifts=1, overlap=0.1, segment_s=1.5)
    assert rel_db(ours, theirs) < -100


def test_segment_longer_than_training_is_refused(tiny, mix):
    with pytest.raises(SeparationError, match="training segment"):
        separate(mix, SR, tiny, segment_s=3.0)


def test_no_shift_matches_apply_model(tiny, mix):
    ours = stacked(separate(mix, SR, tiny, shifts=0))
    theirs = stock(tiny, mix, seed=0, shifts=0)
    assert rel_db(ours, theirs) < -100


def test_mono_48k_comes_back_as_stereo_stems_at_48k(tiny):
    from stemmaster.audio_io import resample

    mono = resample(demo_mix(make_demo_stems(44100, 5.0)), 44100, 48000)[:1, :144_007]
    result = separate(mono, 48000, tiny)
    assert result.sample_rate == 48000
    for stem in result.stems.values():
        assert stem.shape == (2, 144_007) and stem.dtype == np.float32
    closed = sum(stems_with_residual(result, into="own").values())
    assert rel_db(closed, np.repeat(mono, 2, axis=0)) < -120


def test_mp3_input_separates_at_its_own_rate(tiny, tmp_path):
    import soundfile as sf

    from stemmaster.audio_io import read_audio, resample

    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile cannot write MP3")
    mono = resample(demo_mix(make_demo_stems(44100, 5.0)), 44100, 48000)[0, :144_000]
    path = tmp_path / "song.mp3"
    sf.write(str(path), mono, 48000, format="MP3")
    audio, rate = read_audio(path)
    assert rate == 48000 and audio.shape[0] == 1
    result = separate(audio, rate, tiny)
    assert [s.shape for s in result.stems.values()] == [(2, audio.shape[1])] * 4


def test_residual_closes_the_sum(mix, base):
    result = base
    expected = mix.astype(np.float64) - sum(s.astype(np.float64) for s in result.stems.values())
    assert np.allclose(result.residual, expected, atol=1e-6)
    energy = 10 * np.log10(np.sum(expected ** 2) / np.sum(mix.astype(np.float64) ** 2))
    assert abs(result.residual_db - energy) < 1e-3
    assert result.residual_db > -60  # random weights: the stems are far from summing to the mix
    for into in ("other", "own"):
        stems = stems_with_residual(result, into=into)
        assert rel_db(sum(s.astype(np.float64) for s in stems.values()), mix) < -120
    assert set(stems_with_residual(result, into="own")) == set(SOURCES) | {"residual"}
    assert not np.array_equal(stems_with_residual(result)["other"], result.stems["other"])
    with pytest.raises(SeparationError):
        stems_with_residual(result, into="vocals")


def test_progress_is_monotonic_and_ends_at_one(tiny, mix):
    calls = []
    separate(mix, SR, tiny, progress=lambda fraction, message: calls.append((fraction, message)))
    fractions = [f for f, _ in calls]
    assert len(calls) >= 5 and fractions[-1] == 1.0 and fractions[0] == 0.0
    assert all(0.0 <= f <= 1.0 for f in fractions) and fractions == sorted(fractions)
    assert all(isinstance(m, str) and m for _, m in calls)
    assert any("segment 1/" in m for _, m in calls)


def test_cancel_after_the_first_segment(tiny, mix):
    calls = []
    with pytest.raises(Cancelled):
        separate(mix, SR, tiny, progress=lambda f, m: calls.append(f), cancel=lambda: len(calls) >= 2)
    assert calls[-1] < 1.0 and 0.0 < calls[1] < 1.0


def test_cancel_with_an_event(tiny, mix):
    event = threading.Event()
    calls = []

    def progress(fraction, message):
        calls.append(fraction)
        if fraction > 0:
            event.set()

    with pytest.raises(Cancelled):
        separate(mix, SR, tiny, progress=progress, cancel=event)
    assert max(calls) < 1.0


def test_seeded_shifts_repeat_exactly(tiny, mix):
    mix = mix[:, :2 * SR]
    a = separate(mix, SR, tiny, shifts=2, seed=7)
    b = separate(mix, SR, tiny, shifts=2, seed=7)
    c = separate(mix, SR, tiny, shifts=2, seed=8)
    assert a.settings == b.settings
    assert all(np.array_equal(a.stems[k], b.stems[k]) for k in SOURCES)
    assert c.settings["shift_offsets"] != a.settings["shift_offsets"]
    assert rel_db(stacked(a), stacked(c)) > -100  # other offsets, (slightly) other result


def test_one_worker_gives_the_same_result(tiny, mix, monkeypatch):
    parallel = separate(mix, SR, tiny, seed=4)
    assert parallel.settings["workers"] >= 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = separate(mix, SR, tiny, seed=4)
    finally:
        torch.set_num_threads(threads)
    assert serial.settings["workers"] == 1
    # same segments, same order; the main thread's kernels may round the last bit differently
    assert rel_db(stacked(parallel), stacked(serial)) < -120
    assert torch.get_num_threads() == threads


def test_float64_input_is_not_modified_and_gives_the_float32_result(tiny, mix, base):
    mix64 = mix.astype(np.float64)
    before = mix64.copy()
    result = separate(mix64, SR, tiny)
    assert np.array_equal(mix64, before)
    assert all(np.array_equal(result.stems[k], base.stems[k]) for k in SOURCES)


def test_nan_and_inf_are_refused_with_where(tiny, mix):
    bad = mix.copy()
    bad[1, SR * 2] = np.nan
    bad[0, SR * 5 // 2] = np.inf
    with pytest.raises(SeparationError, match=r"2 NaN/Inf samples \(first at 2\.000 s\)"):
        separate(bad, SR, tiny)


@pytest.mark.parametrize("kwargs, match", [
    ({"shifts": -1}, "shifts"), ({"shifts": 1.5}, "shifts"), ({"overlap": 1.0}, "overlap"),
    ({"overlap": -0.1}, "overlap"), ({"segment_s": 0.2}, "segment_s"), ({"device": "tpu"}, "device"),
    ({"seed": "x"}, "seed"), ({"cancel": 3}, "cancel"),
])
def test_bad_settings(tiny, mix, kwargs, match):
    with pytest.raises(SeparationError, match=match):
        separate(mix[:, :SR], SR, tiny, **kwargs)


@pytest.mark.parametrize("audio, rate, match", [
    (np.zeros((3, 1000), np.float32), SR, "1 or 2 channels"),
    (np.zeros(1000, np.float32), SR, "channels, samples"),
    (np.zeros((2, 0), np.float32), SR, "empty"),
    (np.zeros((2, 1000), np.int16), SR, "float32 or float64"),
    (np.zeros((2, 1000), np.float32), 0, "sample_rate"),
])
def test_bad_audio(tiny, audio, rate, match):
    with pytest.raises(SeparationError, match=match):
        separate(audio, rate, tiny)


def test_silence_separates_to_silence(tiny):
    result = separate(np.zeros((2, SR), np.float32), SR, tiny)
    assert all(np.abs(s).max() < 1e-6 for s in result.stems.values())
    assert result.residual_db in (float("-inf"), float("inf")) or result.residual_db < 0


def test_importing_the_package_does_not_import_torch():
    code = ("import sys, separation, separation.models, separation.engine, separation.plan, separation.scoring;"
            "assert 'torch' not in sys.modules and 'demucs' not in sys.modules, 'torch imported';"
            "assert callable(separation.separate)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_running_out_of_memory_is_one_line(tiny, mix, monkeypatch):
    from separation.blocks import ModelInput

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 123456789 bytes.")

    monkeypatch.setattr(ModelInput, "read", no_memory)  # a segment's window, read in the segment loop
    threads = torch.get_num_threads()
    with pytest.raises(SeparationError, match="not enough memory to separate with tiny") as exc:
        separate(mix, SR, tiny)
    assert "\n" not in str(exc.value)
    assert torch.get_num_threads() == threads  # the workers' thread setting is undone
