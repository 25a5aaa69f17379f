"""The same project and settings render bit-identical masters and stems twice in a row (issue 8)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from stemmaster.audio_io import read_audio

from stemmaster.demo_job import write_demo_song
from stemmaster.pipeline import project_settings, render_project
from stemmaster.workspace import Workspace


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("auto_like", [False, True])
def test_two_renders_are_bit_identical(tmp_path, auto_like):
    song = tmp_path / "song"
    write_demo_song(song, duration_s=12.0)
    ws = Workspace(tmp_path / "ws")
    project = ws.create_from_stems("Song", song / "stems")
    if auto_like:  # a non-default chain and bus, including the stages that run on threads
        project.stems[0].chain["transient_shaper"] = {"enabled": True, "attack_db": 4.0}
        project.master = {"tone_eq": {"low_mid_db": -1.5}, "stereo_width": {"width": 0.9}}
        ws.save(project)
    settings = project_settings(project)
    a = render_project(project, ws.project_dir("Song"), settings, "001", checks=False)
    b = render_project(project, ws.project_dir("Song"), settings, "002", checks=False)
    files = sorted(p.relative_to(a.folder) for p in a.folder.rglob("*.wav"))
    assert len(files) == 2 + len(project.stems)  # 24- and 16-bit masters, every repaired stem
    for rel in files:
        if rel.parts[0] == "stems":
            # float WAVs carry libsndfile's PEAK chunk, which holds the time of writing: the
            # samples must be identical, the header may differ in that timestamp
            assert np.array_equal(read_audio(a.folder / rel)[0], read_audio(b.folder / rel)[0]), rel
        else:  # the PCM masters: byte for byte
            assert _digest(a.folder / rel) == _digest(b.folder / rel), rel
    for key in ("master", "mix", "stems", "processing"):
        left, right = dict(a.report[key]) if isinstance(a.report[key], dict) else a.report[key], b.report[key]
        if key == "processing":
            left = {k: v for k, v in left.items() if k != "repair_s"}
            right = {k: v for k, v in right.items() if k != "repair_s"}
        assert left == right, key
