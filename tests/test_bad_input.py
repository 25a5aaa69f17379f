"""The bad-input matrix: every way a user's files can be wrong, through the real CLI.

One table, ``CASES``, one line per case: its id, how the input is made, the
command (after any set-up commands that must succeed), and the outcome:

* ``err(regex)``: exit code 1 and exactly one stderr line ``stemmaster: error: ...``
  matching ``regex``, which names the file (or project) and the problem;
* ``ok(check)``: exit code 0, and ``check`` proves the input was handled correctly.

One parametrized test runs the table through ``stemmaster.cli.main`` in a temporary
workspace, with stderr captured at the file-descriptor level (so what a native
library such as libmpg123 prints counts too), and asserts, for every case: the
exit code; no traceback; the source files are byte for byte what they were (sha256); no
``.tmp-*`` leftovers anywhere in the workspace; every project the workspace lists
loads (no half project); and after an error the workspace is exactly as it was
before the command (no partial project folder or render, earlier renders intact).

Decisions recorded here (and in the docstrings of ``stemmaster.audio_io`` and
``stemmaster.stem_import``):

* an MP3 with garbage in the middle is refused: libmpg123 stops decoding at the
  damage, so "the good part" would be the song cut off there, silently;
* 8 kHz (the lowest rate stemmaster imports) and 192 kHz are read and mastered
  at their own rate;
* all-zero stems are refused at import ("every stem is silent", already pinned
  by tests/test_stem_import.py); a project whose mix is silent (every stem
  muted) fails `master` with one line saying "silent";
* a file shorter than 0.4 s (one BS.1770 loudness block) is refused at import:
  it cannot be measured, so it cannot be mastered to a loudness target.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

from stemmaster.audio_io import read_audio
from stemmaster.cli import main
from stemmaster.meters.loudness import integrated_lufs
from stemmaster.meters.truepeak import true_peak_dbtp
from stemmaster.project import load_project

SR = 44100


# ---------------------------------------------------------------- making inputs

def tone(seconds: float = 1.0, rate: int = SR, channels: int = 2, amp: float = 0.3, freq: float = 220.0) -> np.ndarray:
    """(samples, channels) float32: a chord-ish tone with some noise, so every meter has something to read."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    x = amp * (0.6 * np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 2.5 * freq * t))
    x = x + 0.02 * np.random.default_rng(3).standard_normal(n)
    cols = [x * (1.0 - 0.2 * c) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def wav(path: Path, audio: np.ndarray, rate: int = SR, subtype: str = "PCM_24", **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype, **kw)
    return path


def stems_dir(src: Path, files: dict[str, tuple[np.ndarray, int]], name: str = "stems") -> Path:
    folder = src / name
    folder.mkdir(parents=True, exist_ok=True)
    for file, (audio, rate) in files.items():
        wav(folder / file, audio, rate)
    return folder


def one_stem(src: Path, file: str, audio: np.ndarray, rate: int = SR, **kw) -> Path:
    """A stems folder holding one file written with soundfile keywords ``kw``."""
    folder = src / "stems"
    wav(folder / file, audio, rate, **kw)
    return folder


def make_empty(src):
    (src / "empty.wav").write_bytes(b"")
    return src / "empty.wav"


def make_truncated_header(src):
    good = wav(src / "good.wav", tone(0.5))
    (src / "cut.wav").write_bytes(good.read_bytes()[:20])
    good.unlink()
    return src / "cut.wav"


def make_text_wav(src):
    (src / "notes.wav").write_text("these are my notes, not audio\n")
    return src / "notes.wav"


def make_mp3_garbage(src):
    path = src / "damaged.mp3"
    sf.write(path, tone(2.0), SR, format="MP3", subtype="MPEG_LAYER_III")
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid - 1000: mid + 1000] = np.random.default_rng(2).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    folder = src / "stems"
    folder.mkdir()
    path.rename(folder / path.name)
    return folder


def make_8bit(src):
    return one_stem(src, "eight bit.wav", tone(1.0), subtype="PCM_U8")


def make_32int(src):
    return one_stem(src, "int32.wav", tone(1.0), subtype="PCM_32")


def make_6ch(src):
    return wav(src / "surround.wav", tone(0.5, channels=6))


def make_8k(src):
    return one_stem(src, "phone.wav", tone(1.0, rate=8000), rate=8000, subtype="PCM_16")


def make_192k(src):
    return one_stem(src, "hires.wav", tone(1.0, rate=192000), rate=192000, subtype="PCM_24")


def make_nan_inf(src):
    audio = tone(1.0)
    audio[22050, 0] = np.nan
    audio[30000, 1] = np.inf
    return one_stem(src, "nan inf.wav", audio, subtype="FLOAT")


def make_all_zero(src):
    return stems_dir(src, {"silence.wav": (np.zeros((SR, 2), np.float32), SR),
                           "more silence.wav": (np.zeros((SR, 2), np.float32), SR)})


def make_short(src):
    return one_stem(src, "blip.wav", tone(0.2))


def make_mixed_rates(src):
    return stems_dir(src, {"drums.wav": (tone(1.0, rate=44100), 44100), "bass.wav": (tone(1.0, rate=48000, freq=55), 48000),
                           "vocals.wav": (tone(1.0, rate=48000, freq=440), 48000)})


def make_lengths(src):
    return stems_dir(src, {"drums.wav": (tone(1.0), SR), "pad.wav": (tone(4.0), SR)})


def make_duplicate_roles(src):
    folder = stems_dir(src, {"vocals.wav": (tone(1.0, freq=440), SR), "Vocals (2).wav": (tone(1.0, freq=330), SR),
                             "lead vox.wav": (tone(1.0, freq=550), SR)})
    sf.write(folder / "vocals.flac", tone(1.0, freq=660), SR, subtype="PCM_16")
    return folder


def make_non_audio(src):
    folder = stems_dir(src, {"drums.wav": (tone(1.0), SR), "bass.wav": (tone(1.0, freq=55), SR)})
    (folder / "README.txt").write_text("session notes\n")
    (folder / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / ".DS_Store").write_bytes(b"\x00\x01junk")
    (folder / "._drums.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / "Bounce.asd").write_bytes(b"ableton analysis")
    (folder / "old takes").mkdir()
    wav(folder / "old takes" / "take1.wav", tone(1.0), SR)
    return folder


def make_unicode(src):
    return stems_dir(src, {"Lead Vöx — take 2.wav": (tone(1.0, freq=440), SR), "Drüms ソング.wav": (tone(1.0), SR)},
                     name="my stëms ♪ (final)")


def make_plain_stems(src):
    return stems_dir(src, {"drums.wav": (tone(1.0), SR), "bass.wav": (tone(1.0, freq=55), SR)})


# ---------------------------------------------------------------- checks of the "ok" cases

def working_stems(ws: Path, project: str) -> dict[str, tuple[np.ndarray, int]]:
    p = load_project(ws / project)
    return {s.name: read_audio(ws / project / s.path) for s in p.stems}


def check_decoded_like(original: Callable[[], np.ndarray], tol: float):
    """The one working stem holds the original samples (as written before quantisation) within ``tol``."""
    def check(ws, src, out):
        (audio, rate), = working_stems(ws, "p").values()
        ref = original().T
        assert rate == SR and audio.shape == ref.shape
        assert np.max(np.abs(audio - ref)) <= tol
    return check


def check_rate(rate: int):
    def check(ws, src, out):
        p = load_project(ws / "p")
        assert p.sample_rate == rate
        (audio, r), = working_stems(ws, "p").values()
        assert r == rate and audio.shape == (2, rate)
        master, mr = read_audio(ws / "p" / "renders" / "001" / "master_24bit.wav")
        assert mr == rate and master.shape == (2, rate) and np.isfinite(master).all()
        assert abs(integrated_lufs(master, rate) + 14.0) <= 0.1 and true_peak_dbtp(master, rate) <= -1.0
    return check


def check_mixed_rates(ws, src, out):
    p = load_project(ws / "p")
    assert p.sample_rate == 48000  # the most common rate
    assert {s.original_name: s.sample_rate for s in p.sources} == {"drums.wav": 44100, "bass.wav": 48000, "vocals.wav": 48000}
    for audio, rate in working_stems(ws, "p").values():
        assert rate == 48000 and audio.shape == (2, 48000)
    assert "resampl" in out or "48000 Hz" in out


def check_unique_names(ws, src, out):
    p = load_project(ws / "p")
    names = [s.name for s in p.stems]
    assert len({n.casefold() for n in names}) == 4
    assert sorted(n.casefold() for n in names) == sorted(["lead vox", "vocals", "vocals (2)", "vocals-2"])
    assert all(s.role == "vocals" for s in p.stems)


def check_skipped(ws, src, out):
    p = load_project(ws / "p")
    assert sorted(s.original_name for s in p.sources) == ["bass.wav", "drums.wav"]
    assert sorted(x.name for x in (ws / "p" / "source").iterdir()) == ["bass.wav", "drums.wav"]


def check_unicode(ws, src, out):
    name = "Sông (ソング) 1"
    p = load_project(ws / name)
    # stem names keep letters of any script, digits, spaces and -_.(); other marks become "_"
    assert p.name == name and sorted(s.name for s in p.stems) == ["Drüms ソング", "Lead Vöx _ take 2"]
    assert sorted(s.original_name for s in p.sources) == ["Drüms ソング.wav", "Lead Vöx — take 2.wav"]
    assert (ws / name / "renders" / "001" / "master_24bit.wav").is_file()
    assert name in out


# ---------------------------------------------------------------- the table

@dataclass
class Case:
    id: str
    make: Callable[[Path], Path]  # makes the input under the source folder, returns the path the command gets
    argv: str  # the command; {src} is make's path, {ws} the workspace
    expect: tuple  # ("err", regex) or ("ok", check)
    setup: list[str] = field(default_factory=list)  # commands that must succeed first
    during: Callable | None = None  # (monkeypatch, workspace) -> None, applied just before the command
    root_skip: bool = False  # permissions do not bind root


def err(regex: str) -> tuple:
    return ("err", regex)


def ok(check=None) -> tuple:
    return ("ok", check)


def _enospc(monkeypatch, ws):
    """A full disk once the render writes its first audio file (soundfile's block write)."""
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(sf.SoundFile, "write", full)


def _read_only(ws: Path):
    ws.mkdir(parents=True, exist_ok=True)
    ws.chmod(0o555)


def _mkdir_denied(monkeypatch, ws: Path):
    """What a read-only workspace does to a process that permissions bind (so it runs as root too):
    creating anything inside it fails with EACCES."""
    real = os.mkdir

    def mkdir(path, *args, **kwargs):
        if Path(path).absolute().parent == ws.absolute() or ws.absolute() in Path(path).absolute().parents:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(os, "mkdir", mkdir)


NEW = "new p --stems {src}"
NEW_RENDER = "new p --render {src}"

CASES = [
    Case("empty-file", make_empty, NEW_RENDER, err(r"empty\.wav: empty file \(0 bytes\)")),
    Case("truncated-header", make_truncated_header, NEW_RENDER, err(r"cut\.wav: corrupt or unreadable audio file")),
    Case("text-named-wav", make_text_wav, NEW_RENDER, err(r"notes\.wav: not a readable audio file \(format not recognised")),
    Case("mp3-garbage-middle", make_mp3_garbage, NEW, err(r"damaged\.mp3: corrupt: decoding stopped at \d+\.\d+ s of 2\.\d+ s")),
    Case("wav-8bit", make_8bit, NEW, ok(check_decoded_like(lambda: tone(1.0), 1.0 / 128 + 1e-6))),
    Case("wav-32bit-int", make_32int, NEW, ok(check_decoded_like(lambda: tone(1.0), 1e-6))),
    Case("six-channels", make_6ch, NEW_RENDER, err(r"surround\.wav: 6 channels; stemmaster takes mono or stereo")),
    Case("rate-8k", make_8k, "master p", ok(check_rate(8000)), setup=[NEW]),
    Case("rate-192k", make_192k, "master p", ok(check_rate(192000)), setup=[NEW]),
    Case("nan-inf-float", make_nan_inf, NEW, err(r"nan inf\.wav: 2 NaN/Inf samples \(first at 0\.500 s\)")),
    Case("all-zero", make_all_zero, NEW, err(r"stems: every stem is silent \(all samples are zero\)")),
    Case("all-muted-master", make_plain_stems, "master p", err(r"project 'p': the mix is silent"),
         setup=[NEW, "repair p --stem drums --mute", "repair p --stem bass --mute"]),
    Case("short-0.2s", make_short, NEW, err(r"blip\.wav: 0\.20 s long; stemmaster needs at least 0\.4 s")),
    Case("stems-mixed-rates", make_mixed_rates, NEW, ok(check_mixed_rates)),
    Case("stems-lengths-far-apart", make_lengths, NEW,
         err(r"drums\.wav: 1\.00 s long, but pad\.wav is 4\.00 s; stem lengths may differ by at most 2\.0 s")),
    Case("duplicate-roles", make_duplicate_roles, NEW, ok(check_unique_names)),
    Case("non-audio-files", make_non_audio, NEW, ok(check_skipped)),
    Case("unicode-and-spaces", make_unicode, "master 'Sông (ソング) 1'", ok(check_unicode),
         setup=["new 'Sông (ソング) 1' --stems {src}"]),
    Case("read-only-workspace", make_plain_stems, NEW, err(r"cannot create project 'p' in .*: permission denied"),
         root_skip=True),
    Case("read-only-workspace-simulated", make_plain_stems, NEW, err(r"cannot create project 'p' in .*: permission denied"),
         setup=[], during=_mkdir_denied),
    Case("disk-full-during-render", make_plain_stems, "master p", err(r"renders/002 \(not written\)/\w+(/\w+)?\.wav: cannot write \(disk full"),
         setup=[NEW, "master p"], during=_enospc),
]


# ---------------------------------------------------------------- the test

def _argv(template: str, src: Path, ws: Path) -> list[str]:
    import shlex

    return ["--workspace", str(ws)] + [a.format(src=src, ws=ws) for a in shlex.split(template)]


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256), and every folder (-> "dir")."""
    out = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, capfd, monkeypatch):
    if case.root_skip and os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    src_root, ws = tmp_path / "src", tmp_path / "ws"
    src_root.mkdir()
    src = case.make(src_root)
    sources = _tree(src_root)
    for step in case.setup:
        code = main(_argv(step, src, ws))
        assert code == 0, capfd.readouterr().err
    if case.id == "read-only-workspace":
        _read_only(ws)
    capfd.readouterr()
    before = _tree(ws)
    if case.during:
        ws.mkdir(exist_ok=True)
        case.during(monkeypatch, ws)
    try:
        code = main(_argv(case.argv, src, ws))
    finally:
        monkeypatch.undo()
        if case.id == "read-only-workspace":
            ws.chmod(0o755)
    out, errtext = capfd.readouterr()
    kind, expected = case.expect

    assert "Traceback" not in errtext and "Traceback" not in out
    if kind == "err":
        assert code == 1, (out, errtext)
        lines = [ln for ln in errtext.splitlines() if ln.strip() and not re.match(r"^\w+: +\d+% ", ln)]
        assert len(lines) == 1, errtext
        assert lines[0].startswith("stemmaster: error: "), lines[0]
        assert re.search(expected, lines[0]), lines[0]
        after = _tree(ws)
        # the diagnosis cache (valid for the stems as they are) may be written before a render fails
        after = {k: v for k, v in after.items() if not k.endswith("/diagnosis.json") or k in before}
        assert after == before, "a failed command changed the workspace"
    else:
        assert code == 0, errtext
        assert "error" not in errtext.lower()
        if expected is not None:
            expected(ws, src, out)
    assert _tree(src_root) == sources, "the source files changed"
    assert not [p for p in ws.rglob(".tmp-*")] if ws.exists() else True
    if ws.exists():  # no half project: every folder the workspace lists is a project that loads
        for entry in ws.iterdir():
            if not entry.name.startswith("."):
                load_project(entry)
