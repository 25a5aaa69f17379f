"""Streamed separation (``separate_stream``) against the whole-song computation, and its memory.

The whole-song reference below is the engine as it was before streaming:
the song resampled whole, normalised with torch's whole-tensor statistics,
every segment added into one whole-song output pass after pass, the stems
resampled back whole. Tiny random-weight models (``separation.testing``),
real demucs code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from separation import plan  # noqa: E402
from separation.engine import _fast, _members, _segment_and_width, separate, separate_stream  # noqa: E402
from separation.models import load_model, save_bag  # noqa: E402
from separation.testing import tiny_htdemucs, tiny_model_repo  # noqa: E402
from stemmaster.audio_io import resample  # noqa: E402
from stemmaster.audio_source import ArraySource, BlockWriter, ResampledSource  # noqa: E402
from stemmaster.demo import demo_mix, make_demo_stems  # noqa: E402

MODEL_HZ = 22050  # the tiny models' rate; their segment is 2 s
THREADS = 2


@pytest.fixture(autouse=True)
def modest_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, THREADS))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    tiny_model_repo(folder, "tiny", kind="htdemucs", seed=0)
    tiny_model_repo(folder, "tinyh", kind="hdemucs", seed=0)
    save_bag([tiny_htdemucs(seed=5), tiny_htdemucs(seed=6)], folder, "pair",
             weights=[[1.0, 0.0, 0.5, 2.0], [0.0, 1.0, 0.5, 1.0]])
    return folder


def song(sample_rate: int, seconds: float = 6.0) -> np.ndarray:
    """The demo mix, float32 (2, samples): several 2-second segments long."""
    return np.ascontiguousarray(demo_mix(make_demo_stems(sample_rate, seconds)), dtype=np.float32)


def whole_song_reference(audio: np.ndarray, sample_rate: int, model, *, shifts: int, seed: int = 0,
                         overlap: float = 0.25) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Stems ``{name: (2, n)}`` and residual ``(2, n)`` computed on the whole song at once (the old engine)."""
    n_song = audio.shape[1]
    stereo = audio if audio.shape[0] == 2 else np.repeat(audio, 2, axis=0)
    x_np = stereo if model.audio_channels == 2 else stereo.mean(axis=0, keepdims=True)
    if sample_rate != model.samplerate:
        x_np = resample(x_np, sample_rate, model.samplerate)
    nets, weights = _members(model.model)
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(x_np, dtype=np.float32))
        ref = x.mean(0)
        mean, std = ref.mean(), ref.std() + 1e-8
        x = (x - mean) / std
        n = x.shape[1]
        seg_and_width = [_segment_and_width(net, None) for net in nets]
        offsets = plan.shift_offsets(len(nets), shifts, model.samplerate, seed)
        passes = plan.make_passes(n, model.samplerate, [sw[0] for sw in seg_and_width], overlap, offsets)
        out = torch.zeros(len(model.sources), x.shape[0], n)
        for p in passes:  # pass after pass, segment after segment: demucs' order
            L = p.segment_length
            tri = torch.cat([torch.arange(1, L // 2 + 1), torch.arange(L - L // 2, 0, -1)])
            tri = tri / tri.max()
            src = torch.tensor(weights[p.model_index], dtype=torch.float32) / max(1, shifts)
            for seg in plan.segments(p, seg_and_width[p.model_index][1]):
                window = torch.zeros(x.shape[0], seg.input_length)
                a, b = max(0, seg.input_start), min(n, seg.input_start + seg.input_length)
                if a < b:
                    window[:, a - seg.input_start:b - seg.input_start] = x[:, a:b]
                y = _fast(nets[p.model_index])(window[None])[0]
                delta = y.shape[-1] - seg.length
                y = y[..., delta // 2:delta // 2 + seg.length]
                coef = tri[:seg.length] / p.weight_sum(seg.offset, seg.offset + seg.length, tri)
                a, b = max(0, -seg.start), min(seg.length, n - seg.start)
                if a < b:
                    out[:, :, seg.start + a:seg.start + b].addcmul_(y[..., a:b],
                                                                    src[:, None, None] * coef[None, None, a:b])
        out.mul_(std).add_(mean)
    stems = {}
    for name, stem in zip(model.sources, out.numpy()):
        stem = np.repeat(stem, 2, axis=0) if stem.shape[0] == 1 else stem
        if sample_rate != model.samplerate:
            stem = resample(stem, model.samplerate, sample_rate)[:, :n_song]
        stems[name] = np.ascontiguousarray(stem, dtype=np.float32)
    total = stereo.astype(np.float64)
    for stem in stems.values():
        total -= stem
    return stems, total.astype(np.float32)


def streamed(audio: np.ndarray, sample_rate: int, model, **kwargs):
    """``separate_stream`` over the array; the blocks as handed out, and the stems put together."""
    blocks = []

    def collect(start, stems, residual):
        assert not blocks or blocks[-1][0] + blocks[-1][2].shape[1] == start  # consecutive, in order
        blocks.append((start, stems, residual))

    summary = separate_stream(ArraySource(audio, sample_rate), model, collect, **kwargs)
    stems = {name: np.concatenate([b[1][name] for b in blocks], axis=1) for name in model.sources}
    return stems, np.concatenate([b[2] for b in blocks], axis=1), blocks, summary


@pytest.mark.parametrize("name", ["tiny", "tinyh"])
@pytest.mark.parametrize("song_hz", [MODEL_HZ, 44100])
@pytest.mark.parametrize("shifts", [0, 1])
def test_streamed_equals_the_whole_song_computation(repo, name, song_hz, shifts):
    model = load_model(name, repo=repo)
    audio = song(song_hz)
    ref_stems, ref_residual = whole_song_reference(audio, song_hz, model, shifts=shifts, seed=3)
    stems, residual, blocks, summary = streamed(audio, song_hz, model, shifts=shifts, seed=3)
    assert len(blocks) > 2  # handed out as the song goes, not at the end
    worst = max(float(np.max(np.abs(stems[k] - ref_stems[k]))) for k in model.sources)
    worst = max(worst, float(np.max(np.abs(residual - ref_residual))))
    print(f"{name} at {song_hz} Hz, shifts={shifts}: largest difference streamed vs whole {worst:.3g}")
    assert worst <= 1e-6
    for k in model.sources:
        assert stems[k].shape == (2, audio.shape[1]) and stems[k].dtype == np.float32
    assert summary.frames == audio.shape[1] and summary.sample_rate == song_hz


def test_several_passes_add_in_demucs_order(repo):
    """Two shifts of a bag of two models (four passes, their segments interleaved in song order),
    on a mono song at 48 kHz."""
    model = load_model("pair", repo=repo)
    audio = song(48000)[:1]
    ref_stems, ref_residual = whole_song_reference(audio, 48000, model, shifts=2, seed=1)
    stems, residual, blocks, summary = streamed(audio, 48000, model, shifts=2, seed=1)
    assert len(summary.settings["shift_offsets"]) == 2 and len(blocks) > 2
    worst = max(float(np.max(np.abs(stems[k] - ref_stems[k]))) for k in model.sources)
    worst = max(worst, float(np.max(np.abs(residual - ref_residual))))
    print(f"bag of two, shifts=2, mono at 48000 Hz: largest difference streamed vs whole {worst:.3g}")
    assert worst <= 1e-6


def test_separate_is_the_streamed_blocks_put_together(repo):
    model = load_model("tiny", repo=repo)
    audio = song(44100, 5.0)
    whole = separate(audio, 44100, model)
    stems, residual, _, summary = streamed(audio, 44100, model)
    for k in model.sources:
        np.testing.assert_array_equal(whole.stems[k], stems[k])
    np.testing.assert_array_equal(whole.residual, residual)
    assert whole.residual_db == pytest.approx(summary.residual_db, abs=1e-9)
    assert whole.settings == summary.settings


def test_stems_resampled_back_in_pieces_equal_resampling_whole():
    """The stems' pieces go back to the song's rate through ``ResampledSource.stream`` (uneven pieces,
    some empty): the same samples as resampling the whole."""
    rng = np.random.default_rng(1)
    signal = rng.standard_normal((3, 20_000)).astype(np.float32)
    for from_hz, to_hz in [(22050, 44100), (44100, 22050), (22050, 48000), (48000, 44100)]:
        cuts = np.sort(rng.integers(0, signal.shape[1], 12))
        pieces = [signal[:, a:b] for a, b in zip([0, *cuts], [*cuts, signal.shape[1]])]
        got = np.concatenate(list(ResampledSource.stream(pieces, from_hz, to_hz)), axis=1)
        np.testing.assert_array_equal(got, resample(signal, from_hz, to_hz))


def _write_render(path, minutes: float, sample_rate: int = 44100) -> None:
    """A stereo 24-bit render of noise and tones, written in blocks."""
    rng = np.random.default_rng(7)
    n = int(minutes * 60 * sample_rate)
    block = 1 << 18
    with BlockWriter(path, sample_rate, 2, "PCM_24", frames_hint=n) as w:
        for start in range(0, n, block):
            t = np.arange(start, min(n, start + block)) / sample_rate
            tone = 0.2 * np.sin(2 * np.pi * 220.0 * t) * np.sin(2 * np.pi * 0.25 * t)
            w.write(np.stack([tone, -tone]) + 0.05 * rng.standard_normal((2, t.size)))


PEAK_RSS = textwrap.dedent("""
    import resource, sys
    import torch
    torch.set_num_threads({threads})
    from pathlib import Path
    from stemmaster.separate import SeparationOptions, separate_project
    from stemmaster.workspace import Workspace
    ws = Workspace(Path(sys.argv[1]))
    project = ws.load(sys.argv[2])
    options = SeparationOptions(model="tiny", model_repo=Path(sys.argv[3]), device="cpu", shifts=0)
    assert separate_project(project, ws.project_dir(project.name), options, save=ws.save)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def test_memory_does_not_grow_with_the_song(repo, tmp_path):
    """Peak RSS of separating a 6-minute render into stem files vs a 1-minute one, in fresh processes."""
    from stemmaster.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    peaks_kb = {}
    for minutes in (1, 6):
        render = tmp_path / f"render{minutes}.wav"
        _write_render(render, minutes)
        name = f"song{minutes}"
        ws.create_from_render(name, render)
        render.unlink()
        proc = subprocess.run([sys.executable, "-c", PEAK_RSS.format(threads=THREADS), str(tmp_path / "ws"), name,
                               str(repo)], capture_output=True, text=True, cwd=os.getcwd(), timeout=1800)
        assert proc.returncode == 0, proc.stderr
        peaks_kb[minutes] = int(proc.stdout.split()[-1])
        stems = sorted(p.name for p in (tmp_path / "ws" / name / "stems").glob("*.wav"))
        assert stems == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    growth_mb = (peaks_kb[6] - peaks_kb[1]) / 1024
    print(f"peak RSS: 1-minute render {peaks_kb[1] / 1024:.0f} MB, 6-minute render {peaks_kb[6] / 1024:.0f} MB "
          f"(+{growth_mb:.0f} MB)")
    assert growth_mb < 60
