"""A render project through separation: CLI, cache, residual, cancellation, remaster of a file.

Real demucs code paths on tiny random-weight models saved and loaded through
our loader (``separation.testing``); the stems are nonsense, the plumbing is not.
"""

from __future__ import annotations

import json
import os
import tomllib

import numpy as np
import pytest

pytest.importorskip("torch")

from separation.testing import tiny_model_repo  # noqa: E402
from stemmaster.audio_io import read_audio, write_audio  # noqa: E402
from stemmaster.cli import main  # noqa: E402
from stemmaster.demo import demo_mix, make_demo_stems  # noqa: E402
from stemmaster.errors import Cancelled  # noqa: E402
from stemmaster.separate import SeparationOptions, separate_project  # noqa: E402
from stemmaster.workspace import Workspace  # noqa: E402

SR = 44100


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    tiny_model_repo(folder, "tiny", kind="htdemucs", seed=0)
    return folder


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    """5 s of the demo mix as a 24-bit WAV: the "AI render" to separate."""
    path = tmp_path_factory.mktemp("render") / "song.wav"
    write_audio(path, demo_mix(make_demo_stems(SR, 5.0)), SR, subtype="PCM_24")
    return path


@pytest.fixture
def ws(tmp_path, models, monkeypatch):
    monkeypatch.setenv("STEMMASTER_MODEL_REPO", str(models))
    return tmp_path / "ws"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def stem_files(folder):
    return {p.name: p.stat().st_mtime_ns for p in sorted((folder / "stems").glob("*.wav"))}


def test_separate_then_cache_then_master_without_separating_again(ws, models, render, capsys, tmp_path,
                                                                    monkeypatch):
    assert run(capsys, "--workspace", ws, "new", "song", "--render", render)[0] == 0
    code, out, err = run(capsys, "--workspace", ws, "separate", "song", "--model", "tiny")
    assert code == 0, err
    folder = ws / "song"
    doc = tomllib.loads((folder / "project.toml").read_text())
    assert [s["name"] for s in doc["stems"]] == ["drums", "bass", "other", "vocals"]
    assert [s["role"] for s in doc["stems"]] == ["drums", "bass", "other", "vocals"]
    sep = doc["separation"]
    assert sep["model"] == "tiny" and sep["input_sha256"] == doc["sources"][0]["sha256"]
    assert sep["settings"] == {"shifts": 1, "overlap": 0.25, "seed": 0, "residual_into": "other"}
    assert np.isfinite(sep["residual_db"])
    # the stems (residual folded into other) sum back to the render: nothing of the song is lost
    source, _ = read_audio(render)
    total = sum(read_audio(folder / "stems" / f"{n}.wav")[0].astype(np.float64)
                for n in ("drums", "bass", "other", "vocals"))
    assert 20 * np.log10(np.max(np.abs(total - source)) / np.max(np.abs(source))) < -60
    assert doc["stems"][3]["chain"]  # vocals got the vocal repair chain

    first = stem_files(folder)
    code, out, err = run(capsys, "--workspace", ws, "separate", "song", "--model", "tiny")
    assert code == 0 and "nothing to do" in out
    assert stem_files(folder) == first  # cache hit: not one stem rewritten

    # a change of repair settings, then master: no separation (no model is even reachable now)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("STEMMASTER_MODEL_REPO", str(empty))
    assert run(capsys, "--workspace", ws, "repair", "song", "--stem", "vocals",
               "--set", "deesser.max_reduction_db=8")[0] == 0
    code, out, err = run(capsys, "--workspace", ws, "master", "song")
    assert code == 0, err
    assert stem_files(folder) == first
    report = json.loads((folder / "renders" / "001" / "report.json").read_text())
    assert report["separation"]["model"] == "tiny"
    assert "## Separation" in (folder / "renders" / "001" / "report.md").read_text()

    # other settings do separate again (the weights given with --model-repo this time)
    code, out, err = run(capsys, "--workspace", ws, "separate", "song", "--model", "tiny",
                         "--model-repo", models, "--shifts", "2")
    assert code == 0 and "separated" in out, err
    doc = tomllib.loads((folder / "project.toml").read_text())
    assert doc["separation"]["settings"]["shifts"] == 2
    # and the repair settings the user made survive the new separation
    vocals = [s for s in doc["stems"] if s["name"] == "vocals"][0]
    assert vocals["chain"]["deesser"]["max_reduction_db"] == 8


def test_master_separates_a_render_project_first_and_residual_can_be_its_own_stem(ws, render, capsys):
    assert run(capsys, "--workspace", ws, "new", "song", "--render", render)[0] == 0
    code, out, err = run(capsys, "--workspace", ws, "separate", "song", "--model", "tiny", "--residual", "stem")
    assert code == 0, err
    doc = tomllib.loads((ws / "song" / "project.toml").read_text())
    assert [s["name"] for s in doc["stems"]][-1] == "residual" and doc["stems"][-1]["role"] == "other"


def test_missing_weights_and_cancellation_leave_the_project_as_it_was(ws, render, capsys, tmp_path):
    assert run(capsys, "--workspace", ws, "new", "song", "--render", render)[0] == 0
    folder = ws / "song"
    before = (folder / "project.toml").read_bytes()
    code, out, err = run(capsys, "--workspace", ws, "separate", "song", "--model", "nosuchmodel")
    assert code == 1 and "nosuchmodel" in err and "Traceback" not in err
    assert (folder / "project.toml").read_bytes() == before

    workspace = Workspace(ws)
    project = workspace.load("song")
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 1  # after the first segment

    with pytest.raises(Cancelled):
        separate_project(project, folder, SeparationOptions(model="tiny"), save=workspace.save, cancel=cancel)
    assert (folder / "project.toml").read_bytes() == before
    assert not (folder / "stems").exists() or not list((folder / "stems").iterdir())  # no stem, no temp folder


def test_remaster_a_render_file_in_one_go(ws, render, capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "remaster", render, "-o", out_dir, "--model", "tiny")
    assert code == 0, err
    assert (out_dir / "master_24bit.wav").is_file() and (out_dir / "master_16bit.wav").is_file()
    assert sorted(p.name for p in (out_dir / "stems").glob("*.wav")) == ["bass.wav", "drums.wav", "other.wav",
                                                                         "vocals.wav"]
    report = json.loads((out_dir / "report.json").read_text())
    assert report["separation"]["model"] == "tiny" and report["master"]["true_peak_dbtp"] <= -1.0
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".stemmaster-")]  # no work folder left


@pytest.mark.corpus
def test_real_htdemucs_through_the_cli_scores_like_demucs_itself(tmp_path, capsys, monkeypatch):
    """The released htdemucs weights (../shared/models, research use, never copied) on a MUSDB
    preview with its true stems: our CLI's stems score within 0.2 dB SDR of demucs' own
    apply_model on the same model and input, and sum back to the input."""
    import random

    import torch
    from demucs.apply import apply_model

    from separation.models import load_model
    from separation.scoring import sdr_table
    from tests.helpers import SHARED, corpus_path

    weights = SHARED / "models" / "htdemucs"
    if not (weights / "htdemucs.yaml").is_file():
        pytest.skip(f"real htdemucs weights not present: {weights}")
    song = corpus_path("multitrack", "musdb18_mu_too_bright")
    monkeypatch.setenv("STEMMASTER_MODEL_REPO", str(weights))
    ws = tmp_path / "ws"
    assert run(capsys, "--workspace", ws, "new", "mu", "--render", song / "mixture.wav")[0] == 0
    code, out, err = run(capsys, "--workspace", ws, "separate", "mu", "--residual", "stem")
    assert code == 0, err
    names = ("drums", "bass", "other", "vocals")
    ours = {n: read_audio(ws / "mu" / "stems" / f"{n}.wav")[0] for n in names}
    truth = {n: read_audio(song / f"{n}.wav")[0] for n in names}
    mixture, _ = read_audio(song / "mixture.wav")

    model = load_model("htdemucs", weights).model
    x = torch.from_numpy(np.ascontiguousarray(mixture, dtype=np.float32))
    ref = x.mean(0)
    random.seed(0)  # apply_model draws its shift offset from `random`
    with torch.inference_mode():
        y = apply_model(model, ((x - ref.mean()) / ref.std())[None], shifts=1, split=True, overlap=0.25)[0]
    y = y * ref.std() + ref.mean()
    theirs = {n: y[model.sources.index(n)].numpy() for n in names}

    s_ours, s_theirs = sdr_table(truth, ours), sdr_table(truth, theirs)
    print(f"SDR ours {s_ours}, demucs apply_model {s_theirs}")
    assert s_ours["mean"] > 8.0  # the real model separates (about 10.9 dB here)
    assert abs(s_ours["mean"] - s_theirs["mean"]) <= 0.2
    total = sum(ours[n].astype(np.float64) for n in names) + read_audio(ws / "mu" / "stems" / "residual.wav")[0]
    assert 20 * np.log10(np.max(np.abs(total - mixture)) / np.max(np.abs(mixture))) < -60
