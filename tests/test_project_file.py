"""project.toml edited by hand or corrupted: refused with the line or the field at fault.

TOML syntax errors give the line (and column); a wrong type, an unknown key or a
setting out of its range gives the field's dotted path (``stems[0].chain.
low_end_mono.crossover_hz``, ``master.bus.ceiling_dbtp``) and, for a range, the
allowed one. Property-based: random valid settings round-trip through save and
load exactly; fuzzed values, keys and bytes are refused with ProjectError or
SettingsError and never any other exception.
"""

from __future__ import annotations

import dataclasses
import re
import string
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stemmaster.cli import main
from stemmaster.errors import ProjectError, SettingsError
from stemmaster.master import MasterSettings
from stemmaster.profiles import PROFILES
from stemmaster.project import Project, SourceFile, Stem, load_project, project_to_dict, save_project
from stemmaster.repair import PROCESSORS, default_chain

SHA = "ab" * 32
FUZZ = settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


def make_project(chains: list[dict] | None = None, master: dict | None = None, gains: list[float] | None = None) -> Project:
    chains = chains if chains is not None else [default_chain("vocals"), default_chain("drums")]
    gains = gains or [0.0] * len(chains)
    stems = [Stem(f"stem {i}", "other", f"stems/stem {i}.wav", "source/mix.wav", gain_db=g, chain=c)
             for i, (c, g) in enumerate(zip(chains, gains))]
    return Project(name="song", created="2024-05-01T12:00:00Z", source_kind="stems", sample_rate=44100,
                   sources=[SourceFile("source/mix.wav", "mix.wav", SHA, 44100, 2, 88200)], stems=stems,
                   master=MasterSettings().to_dict() if master is None else master, renders=[])


def saved_text(folder: Path, project: Project | None = None) -> str:
    save_project(project or make_project(), folder)
    return (folder / "project.toml").read_text("utf-8")


def write(folder: Path, text: str) -> None:
    (folder / "project.toml").write_text(text, "utf-8")


def refused(folder: Path, pattern: str) -> str:
    with pytest.raises(ProjectError) as e:
        load_project(folder)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(folder / "project.toml")), msg
    assert re.search(pattern, msg), msg
    return msg


# ---------------------------------------------------------------- edited by hand

def test_toml_syntax_error_gives_the_line(tmp_path):
    lines = saved_text(tmp_path).splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("crossover_hz"))
    lines[at] = "crossover_hz = 120.0.0"
    write(tmp_path, "\n".join(lines) + "\n")
    refused(tmp_path, rf"invalid TOML at line {at + 1}, column \d+")


def test_unclosed_table_header_gives_the_line(tmp_path):
    text = saved_text(tmp_path).replace("[master.bus]", "[master.bus")
    write(tmp_path, text)
    line = text.splitlines().index("[master.bus") + 1
    refused(tmp_path, rf"invalid TOML at line {line}")


@pytest.mark.parametrize("old, new, pattern", [
    # a crossover of -5 Hz in a stem chain, a ceiling above 0 dBTP: the field and the allowed range
    ("crossover_hz = 120.0", "crossover_hz = -5",
     r"stems\[1\]\.chain\.low_end_mono\.crossover_hz = -5 is out of range \(allowed 20\.0 to 500\.0\)"),
    ("ceiling_dbtp = -1.0", "ceiling_dbtp = 0.5",
     r"master\.bus\.ceiling_dbtp = 0\.5 is out of range \(allowed -20\.0 to 0\.0\)"),
    ("highpass_hz = 70.0", "highpass_hz = 5.0", r"stems\[0\]\.chain\.highpass\.highpass_hz = 5\.0 is out of range"),
    ("target_lufs = -14.0", "target_lufs = 0.0", r"master\.bus\.target_lufs = 0\.0 is out of range \(allowed -40\.0 to -3\.0\)"),
    ("ratio = 1.5", "ratio = inf", r"master\.glue_compressor\.ratio = inf must be a finite number"),
    ("ratio = 1.5", "ratio = nan", r"master\.glue_compressor\.ratio = nan must be a finite number"),
    ("gain_db = 0.0", "gain_db = 99.0", r"stems\[0\]\.gain_db = 99\.0 is out of range \(allowed -60\.0 to 24\.0\)"),
    # wrong types: the dotted path and what was found
    ("crossover_hz = 120.0", 'crossover_hz = "120"', r"stems\[1\]\.chain\.low_end_mono\.crossover_hz must be a number, got text '120'"),
    ("attack_db = 3.0", "attack_db = true", r"stems\[1\]\.chain\.transient_shaper\.attack_db must be a number, got true"),
    ("enabled = true\ncrossover_hz = 120.0", "enabled = 1\ncrossover_hz = 120.0",
     r"stems\[1\]\.chain\.low_end_mono\.enabled must be true or false, got 1"),
    ("order = 2", "order = 2.5", r"stems\[0\]\.chain\.highpass\.order must be an integer, got 2\.5"),
    ('dither = "tpdf"', "dither = 1979-05-27", r"master\.export\.dither must be text, got date"),
    ('dither = "tpdf"', 'dither = "rectangular"', r"master\.export\.dither = 'rectangular' \(allowed: tpdf, none\)"),
    ('profile = "spotify"', 'profile = "radio"', r"master\.bus\.profile is not valid: unknown profile 'radio'"),
    ("dither_seed = 0", "dither_seed = [0]", r"master\.export\.dither_seed must be an integer, got an array"),
    # unknown keys: reported by their dotted path, never dropped
    ("attack_db = 3.0", "atack_db = 3.0", r"unknown key stems\[1\]\.chain\.transient_shaper\.atack_db \(known: attack_db"),
    ("[stems.chain.low_end_mono]", "[stems.chain.low_end_mon]",
     r"stems\[1\]\.chain\.low_end_mon is not a repair processor \(known: highpass"),
    ("[master.bus]", "[master.buss]", r"unknown key master\.buss \(known sections: bus, "),
    ("lookahead_ms = 5.0", "lookahead_ms = 5.0\nknee = 3", r"unknown key master\.true_peak_limiter\.knee"),
    ("lookahead_ms = 5.0", "lookahead_ms = 5.0\nceiling_dbtp = -2.0",
     r"master\.true_peak_limiter\.ceiling_dbtp is set by bus\.ceiling_dbtp"),
])
def test_hand_edit_is_refused_with_the_field(tmp_path, old, new, pattern):
    text = saved_text(tmp_path)
    assert old in text
    write(tmp_path, text.replace(old, new, 1))
    refused(tmp_path, pattern)


def test_saving_an_out_of_range_setting_is_refused_and_the_file_kept(tmp_path):
    saved_text(tmp_path)
    before = (tmp_path / "project.toml").read_bytes()
    project = load_project(tmp_path)
    project.master["bus"]["ceiling_dbtp"] = 3.0
    with pytest.raises(ProjectError, match=r"refusing to save an invalid project: .*master\.bus\.ceiling_dbtp = 3\.0"):
        save_project(project, tmp_path)
    assert (tmp_path / "project.toml").read_bytes() == before


def test_cli_names_the_line_and_the_field(tmp_path, capsys):
    folder = tmp_path / "ws" / "song"
    folder.mkdir(parents=True)
    text = saved_text(folder)
    for edited, pattern in [
        (text.replace("crossover_hz = 120.0", "crossover_hz = -5", 1), r"stems\[1\]\.chain\.low_end_mono\.crossover_hz = -5 is out of range"),
        (text.replace("[master.bus]", "[master.bus", 1), r"invalid TOML at line \d+"),
    ]:
        write(folder, edited)
        for argv in (["master", "song"], ["repair", "song"], ["report", "song"]):
            code = main(["--workspace", str(tmp_path / "ws"), *argv])
            err = capsys.readouterr().err
            assert code == 1 and "Traceback" not in err
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("stemmaster: error: ") and "project.toml" in lines[0], err
            assert re.search(pattern, lines[0]), lines[0]
        code = main(["--workspace", str(tmp_path / "ws"), "list"])
        out = capsys.readouterr().out
        assert code == 0 and "unreadable" in out and re.search(pattern, out)


# ---------------------------------------------------------------- property-based

_ALLOWED = re.compile(r"allowed (-?[\d.e+]+) to (-?[\d.e+]+)")


def _range(cls, name: str) -> tuple[float, float] | None:
    """The allowed range of a float setting, as its own error message states it."""
    for probe in (1e300, -1e300):
        try:
            cls(**{name: probe}) if not hasattr(cls, "from_settings") else cls.from_settings({name: probe})
        except SettingsError as exc:
            m = _ALLOWED.search(str(exc))
            if m:
                return float(m[1]), float(m[2])
    return None


def _field_strategy(cls, f: dataclasses.Field):
    t = str(f.type)
    if t == "float":
        r = _range(cls, f.name)
        if r is None:
            return st.just(f.default)
        return st.floats(r[0], r[1], allow_nan=False).map(lambda v: v + 0.0)  # no -0.0 surprises
    if t == "int":
        return st.sampled_from([1, 2, 3, 4, 6, 8]) if f.name == "order" else st.integers(0, 2**31 - 1)
    return None


def _valid_table(cls, extra: dict | None = None, skip: tuple[str, ...] = ()):
    parts = {}
    for f in dataclasses.fields(cls):
        s = _field_strategy(cls, f)
        if s is not None and f.name not in skip:
            parts[f.name] = s
    parts.update(extra or {})
    return st.fixed_dictionaries({}, optional=parts)


def _accepts(fn, *args) -> bool:
    try:
        fn(*args)
        return True
    except SettingsError:
        return False


def _entry(kind: str):
    cls = PROCESSORS[kind]
    return _valid_table(cls, {"enabled": st.booleans()}).filter(
        lambda d: _accepts(cls.from_settings, {k: v for k, v in d.items() if k != "enabled"}))


chains = st.lists(st.sampled_from(sorted(PROCESSORS)), unique=True, max_size=len(PROCESSORS)).flatmap(
    lambda kinds: st.fixed_dictionaries({k: _entry(k) for k in kinds}))

_M = MasterSettings()
masters = st.fixed_dictionaries({}, optional={
    "bus": _valid_table(type(_M.bus), {"profile": st.sampled_from(sorted(PROFILES))}),
    "tone_eq": _valid_table(type(_M.tone_eq)),
    "stereo_width": _valid_table(type(_M.stereo_width)),
    "low_end_mono": _valid_table(type(_M.low_end_mono), {"enabled": st.booleans()}),
    "glue_compressor": _valid_table(type(_M.glue_compressor), {"enabled": st.booleans()}),
    "true_peak_limiter": _valid_table(type(_M.true_peak_limiter), skip=("ceiling_dbtp",)),
    "export": st.fixed_dictionaries({}, optional={
        "bit_depths": st.lists(st.sampled_from([16, 24]), min_size=1, max_size=2, unique=True),
        "sample_rate": st.sampled_from([44100, 48000, 88200, 96000]),
        "dither": st.sampled_from(["tpdf", "none"]),
        "dither_seed": st.integers(0, 2**31 - 1)}),
}).filter(lambda m: _accepts(MasterSettings.from_dict, m))


@FUZZ
@given(chain_list=st.lists(chains, min_size=1, max_size=3), master=masters,
       gains=st.lists(st.floats(-60.0, 24.0), min_size=3, max_size=3))
def test_valid_settings_round_trip(tmp_path, chain_list, master, gains):
    project = make_project(chain_list, master, gains[:len(chain_list)])
    save_project(project, tmp_path)
    loaded = load_project(tmp_path)
    assert loaded == project
    assert project_to_dict(loaded) == project_to_dict(project)
    assert [list(s.chain) for s in loaded.stems] == [list(c) for c in chain_list]  # the processing order too


def _leaves(doc, prefix=()):
    """Paths to every value under ``stems[*].gain_db``, ``stems[*].chain`` and ``master``."""
    out = []
    for i, stem in enumerate(doc["stems"]):
        out.append(("stems", i, "gain_db"))
        for kind, entry in stem["chain"].items():
            out += [("stems", i, "chain", kind, k) for k in entry]
    for section, table in doc["master"].items():
        out += [("master", section, k) for k in table]
    return out


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def _set(doc, path, value):
    _get(doc, path[:-1])[path[-1]] = value


toml_scalars = st.one_of(
    st.text(max_size=8), st.booleans(), st.integers(-2**63, 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.dates(), st.datetimes(), st.times(),
)
toml_values = st.recursive(toml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=5), inner, max_size=3)),
    max_leaves=6)


def _base_doc() -> dict:
    return project_to_dict(make_project())


def _wrong_for(value):
    """Values that can never be valid where ``value`` (from a valid file) stands."""
    if isinstance(value, bool):
        return st.one_of(st.integers(), st.text(max_size=5), st.floats(), st.lists(st.booleans(), max_size=2))
    if isinstance(value, float):
        return st.one_of(st.text(max_size=5), st.booleans(), st.dates(), st.lists(st.floats(), max_size=2),
                         st.dictionaries(st.just("x"), st.floats(), max_size=1),
                         st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e9, -1e9, 1e308]))
    if isinstance(value, int):
        return st.one_of(st.text(max_size=5), st.booleans(), st.floats(), st.datetimes(), st.lists(st.text(), max_size=2))
    if isinstance(value, str):
        return st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False), st.lists(st.text(), max_size=2))
    return st.one_of(st.text(max_size=5), st.booleans(), st.floats(allow_nan=False))  # lists (bit_depths)


@FUZZ
@given(data=st.data())
def test_fuzzed_invalid_values_are_refused(tmp_path, data):
    doc = _base_doc()
    path = data.draw(st.sampled_from(_leaves(doc)), label="path")
    value = data.draw(_wrong_for(_get(doc, path)), label="value")
    _set(doc, path, value)
    write(tmp_path, tomli_w.dumps(doc))
    with pytest.raises((ProjectError, SettingsError)) as e:
        load_project(tmp_path)
    where = ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
    assert where in str(e.value) or path[-1] in str(e.value), str(e.value)


@FUZZ
@given(data=st.data())
def test_fuzzed_keys_are_reported(tmp_path, data):
    doc = _base_doc()
    tables = [("master", s) for s in doc["master"]] + [("stems", 0, "chain", k) for k in doc["stems"][0]["chain"]] \
        + [("master",), ("stems", 1, "chain"), ()]
    at = data.draw(st.sampled_from(tables), label="table")
    table = _get(doc, at)
    key = data.draw(st.text(string.ascii_letters + "_- ", min_size=1, max_size=10).filter(lambda k: k not in table), label="key")
    table[key] = data.draw(toml_values, label="value")
    write(tmp_path, tomli_w.dumps(doc))
    with pytest.raises(ProjectError) as e:
        load_project(tmp_path)
    assert key in str(e.value)


@FUZZ
@given(data=st.data())
def test_fuzzed_values_anywhere_never_crash(tmp_path, data):
    doc = _base_doc()
    paths = _leaves(doc) + [(k,) for k in doc if not isinstance(doc[k], (list, dict))] \
        + [("sources", 0, k) for k in doc["sources"][0]] + [("stems", 1, k) for k in doc["stems"][1]]
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        path = data.draw(st.sampled_from(paths), label="path")
        value = data.draw(toml_values, label="value")
        try:
            parent = _get(doc, path[:-1])
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced a table on this path with a plain value
        key = path[-1]
        if isinstance(parent, dict) or (isinstance(parent, list) and isinstance(key, int) and key < len(parent)):
            parent[key] = value
    write(tmp_path, tomli_w.dumps(doc))
    try:
        load_project(tmp_path)
    except (ProjectError, SettingsError) as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(data=st.data())
def test_corrupted_bytes_never_crash(tmp_path, data):
    raw = bytearray(saved_text(tmp_path).encode("utf-8"))
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        how = data.draw(st.sampled_from(["flip", "delete", "insert"]), label="how")
        if how == "flip":
            raw[at] = data.draw(st.integers(0, 255))
        elif how == "delete":
            del raw[at: at + data.draw(st.integers(1, 40))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        if not raw:
            raw = bytearray(b"x")
    (tmp_path / "project.toml").write_bytes(bytes(raw))
    try:
        load_project(tmp_path)
    except (ProjectError, SettingsError) as exc:
        assert "\n" not in str(exc)
