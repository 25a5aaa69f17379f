"""`stemmaster batch`: a small library of songs (two stems folders, a stereo file separated with a
tiny random-weight "htdemucs", a corrupt file) remastered locally in two worker processes and on a
local Ray instance, with the same masters; resume; cancellation; Ctrl-C.

Songs are 6 s long so the whole file runs in about a minute on two cores.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from separation.testing import tiny_model_repo  # noqa: E402
from stemmaster.audio_io import write_audio  # noqa: E402
from stemmaster.cli import build_parser
from stemmaster.batch import (  # noqa: E402
    MASTER_NAME, BatchOptions, Job, Song, input_hash, is_done, run_song, sort_rows)
from stemmaster.demo import demo_mix, make_demo_stems  # noqa: E402
from tests.helpers import REPO  # noqa: E402

SR = 44100
GOOD = ("alpha", "beta", "gamma")
VERDICTS = ("fix the mix first", "ready with repairs", "ready")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """songs/: alpha/ and beta/ (stems), gamma.wav (a stereo render), broken.wav (text); models/."""
    root = tmp_path_factory.mktemp("library")
    songs = root / "songs"
    songs.mkdir()
    for name, seed in (("alpha", 1), ("beta", 2)):
        (songs / name).mkdir()
        for stem, audio in make_demo_stems(SR, 6.0, seed=seed).items():
            write_audio(songs / name / f"{stem}.wav", audio, SR)
    write_audio(songs / "gamma.wav", demo_mix(make_demo_stems(SR, 6.0, seed=3)), SR)
    (songs / "broken.wav").write_text("this is not audio\n")
    models = root / "models"
    tiny_model_repo(models, "htdemucs", kind="htdemucs", seed=0)
    return songs, models


def run_batch(*argv) -> int:
    """The `stemmaster batch` command as the CLI parses and runs it (KeyboardInterrupt and user
    errors propagate here, where main() would turn them into exit codes)."""
    args = build_parser().parse_args(["batch", *map(str, argv)])
    return args.func(args)


def summary(out):
    with open(out / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def leftovers(out):
    return [p.name for p in out.iterdir() if p.name.startswith(".batch-")]


@pytest.fixture(scope="module")
def local_run(library, tmp_path_factory):
    songs, models = library
    out = tmp_path_factory.mktemp("local") / "out"
    code = run_batch(songs, "-o", out, "--workers", "2", "--model-repo", models)
    return out, code, {name: (out / name / MASTER_NAME).read_bytes() for name in GOOD}, summary(out)


def test_local_batch_masters_every_song_and_reports_the_corrupt_one(local_run, library):
    songs, _ = library
    out, code, masters, rows = local_run
    assert code == 1  # one song failed
    assert [r["song"] for r in rows][0] == "broken"
    broken = rows[0]
    assert broken["status"] == "failed" and "broken.wav" in broken["error"] and "\n" not in broken["error"]
    assert not (out / "broken").exists()
    done = {r["song"]: r for r in rows if r["status"] == "done"}
    assert sorted(done) == list(GOOD)
    for name, r in done.items():
        assert r["verdict"] in VERDICTS
        assert abs(float(r["integrated_lufs"]) + 14.0) < 0.1 and float(r["true_peak_dbtp"]) <= -0.99
        assert int(r["major"]) + int(r["minor"]) + int(r["fix_mix"]) + int(r["info"]) >= len(r["top_findings"].split())
        record = json.loads((out / name / "done.json").read_text())
        kind = "render" if name == "gamma" else "stems"
        assert record["input_sha256"] == input_hash(Song(name, songs / (name + (".wav" if kind == "render" else "")),
                                                         kind))
        assert (out / name / "report.json").is_file() and (out / name / "stems").is_dir()
    assert json.loads((out / "gamma" / "report.json").read_text())["separation"]["model"] == "htdemucs"
    # the songs that need a human first: failed, then by verdict
    rank = {"fix the mix first": 1, "ready with repairs": 2, "ready": 3}
    keys = [(0 if r["status"] == "failed" else rank[r["verdict"]], r["song"]) for r in rows]
    assert keys == sorted(keys)
    md = (out / "summary.md").read_text()
    assert all(f"| {name} |" in md for name in (*GOOD, "broken"))
    assert leftovers(out) == []


def test_resume_skips_finished_songs(local_run, library):
    songs, models = library
    out, _, masters, _ = local_run
    mtimes = {name: (out / name / MASTER_NAME).stat().st_mtime_ns for name in GOOD}
    (out / "gamma" / "done.json").unlink()  # as if the batch had been stopped before gamma finished
    assert run_batch(songs, "-o", out, "--model-repo", models) == 1
    rows = {r["song"]: r for r in summary(out)}
    assert rows["alpha"]["status"] == rows["beta"]["status"] == "skipped"
    assert rows["alpha"]["verdict"] in VERDICTS and rows["alpha"]["integrated_lufs"]  # kept from done.json
    assert rows["gamma"]["status"] == "done" and rows["broken"]["status"] == "failed"
    for name in ("alpha", "beta"):
        assert (out / name / MASTER_NAME).stat().st_mtime_ns == mtimes[name]  # not redone
    assert (out / "gamma" / MASTER_NAME).stat().st_mtime_ns != mtimes["gamma"]
    assert (out / "gamma" / MASTER_NAME).read_bytes() == masters["gamma"]  # redone, the same bits
    # other settings or another input: not done
    job = Job(Song("alpha", songs / "alpha", "stems"), out, BatchOptions(), input_hash(Song("alpha", songs / "alpha",
                                                                                              "stems")))
    assert is_done(job)
    assert not is_done(Job(job.song, out, BatchOptions(profile="apple"), job.input_sha256))
    assert not is_done(Job(job.song, out, BatchOptions(), "0" * 64))
    assert leftovers(out) == []


def test_ray_batch_gives_the_same_masters(local_run, library, tmp_path):
    ray = pytest.importorskip("ray")
    songs, models = library
    _, _, masters, local_rows = local_run
    out = tmp_path / "out"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert run_batch(songs, "-o", out, "--ray", "--model-repo", models) == 1
    finally:
        ray.shutdown()
    rows = summary(out)
    fields = ("song", "status", "verdict", "fix_mix", "major", "minor", "info", "top_findings", "integrated_lufs",
              "true_peak_dbtp")
    assert [{k: r[k] for k in fields} for r in rows] == [{k: r[k] for k in fields} for r in local_rows]
    for name in GOOD:
        assert (out / name / MASTER_NAME).read_bytes() == masters[name], name
    assert leftovers(out) == []


def test_a_cancelled_song_leaves_nothing(library, tmp_path):
    songs, _ = library
    job = Job(Song("alpha", songs / "alpha", "stems"), tmp_path, BatchOptions(checks=False), "x")
    row = run_song(job, cancel=lambda: True)
    assert row["status"] == "interrupted"
    assert list(tmp_path.iterdir()) == []


def test_sort_rows_puts_failures_and_bad_mixes_first():
    rows = [{"song": s, "status": st, "verdict": v} for s, st, v in (
        ("a", "done", "ready"), ("b", "skipped", "fix the mix first"), ("c", "failed", None),
        ("d", "done", "ready with repairs"), ("e", "done", "fix the mix first"))]
    assert [r["song"] for r in sort_rows(rows)] == ["c", "b", "e", "d", "a"]


CLI = """
import sys
from tests.test_batch import run_batch
try:
    sys.exit(run_batch(*sys.argv[1:]))
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_ctrl_c_stops_cleanly_and_keeps_only_finished_songs(library, tmp_path):
    songs, models = library
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", CLI, songs, "-o", out, "--workers", "1", "--model-repo", models,
                             "--no-checks"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("[1/"):  # alpha finished, beta is being remastered: Ctrl-C at the terminal
            os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130, "".join(lines)
    rows = {r["song"]: r["status"] for r in summary(out)}
    assert rows["alpha"] == "done" and rows["beta"] == rows["gamma"] == "interrupted", rows
    assert (out / "alpha" / "done.json").is_file()
    assert not (out / "beta").exists() and not (out / "gamma").exists()
    assert leftovers(out) == []
