"""The project model and its ``project.toml`` file.

The dataclasses here are plain data: no I/O, no validation on construction.
:func:`save_project` writes them as plain TOML (atomically, with tomli-w) and
:func:`load_project` reads them back (with tomllib), checking every field, so a
hand-edited file with a typo fails with a one-line :class:`ProjectError`
naming the file and the field (``stems[2].gain_db``) or the TOML line and
column, instead of a traceback later.

Format rules:

* ``schema_version`` is written first; a file with a newer version is refused.
* TOML has no null: ``None`` values (``RenderRecord.profile``, and any
  ``None`` inside ``master`` or ``chain`` settings) are omitted on save, and a
  missing optional field loads as its default.
* Float fields accept integers in the file (``gain_db = 0``) and load as float.
* Unknown keys are errors (they are probably typos), everywhere: the
  ``master`` sections and the processors of ``stems[i].chain`` must be ones
  stemmaster has, with their own settings.
* Settings are checked on load as a render would check them: the type each
  setting declares, finite numbers, and each in its allowed range
  (``stems[0].chain.low_end_mono.crossover_hz = -5.0 is out of range (allowed
  ...)``, ``master.bus.ceiling_dbtp = 0.5 is out of range (allowed -20.0 to
  0.0)``), so a hand edit fails when the project is opened, not half-way
  through a render. ``separation.settings`` is a record and stays free-form.
* Paths are relative to the project folder, use ``/`` and may not leave it.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import tomli_w

from stemmaster.atomic import atomic_write_text
from stemmaster.errors import ProjectError
from stemmaster.roles import ROLES

SCHEMA_VERSION = 1
PROJECT_FILE = "project.toml"
SOURCE_KINDS = ("render", "stems")
STEM_GAIN_RANGE_DB = (-60.0, 24.0)  # a stem's level into the mix, as `stemmaster repair --gain-db` allows


@dataclass
class SourceFile:
    """An original file, copied byte for byte into the project's ``source/``."""

    path: str  # relative to the project folder, e.g. "source/Lead Vox.wav"
    original_name: str  # the file name it had when imported
    sha256: str  # of the bytes (equal for the original and the copy)
    sample_rate: int
    channels: int
    frames: int


@dataclass
class Stem:
    """A working stem: a stereo float WAV at the project rate plus its mix and repair settings."""

    name: str
    role: str  # one of roles.ROLES
    path: str  # e.g. "stems/vocals.wav"
    source: str  # the SourceFile.path it came from
    gain_db: float = 0.0
    mute: bool = False
    solo: bool = False
    chain: dict[str, dict] = field(default_factory=dict)  # repair settings per processor kind


@dataclass
class RenderRecord:
    """One finished render in ``renders/<id>/``."""

    id: str  # "001"
    created: str  # ISO 8601 UTC
    profile: str | None
    target_lufs: float
    ceiling_dbtp: float
    integrated_lufs: float
    true_peak_dbtp: float
    folder: str  # "renders/001"


@dataclass
class SeparationRecord:
    """How a render project's stems were separated: what a new separation must match to be skipped."""

    model: str  # e.g. "htdemucs"
    model_checksum: str  # the checkpoint checksum(s) from the file names, "+"-joined for a bag
    input_sha256: str  # of the source render
    settings: dict[str, Any]  # what changes the result: shifts, overlap, segment_s, seed, residual_into
    residual_db: float  # energy of input minus the stems' sum, relative to the input's
    created: str  # ISO 8601 UTC


@dataclass
class Project:
    name: str
    created: str  # ISO 8601 UTC
    source_kind: str  # "render" | "stems"
    sample_rate: int
    sources: list[SourceFile]
    stems: list[Stem]
    master: dict[str, dict[str, Any]]  # bus settings keyed by stage, stored as given
    renders: list[RenderRecord]
    schema_version: int = SCHEMA_VERSION
    separation: SeparationRecord | None = None  # render projects, once separated

    def source(self, path: str) -> SourceFile:
        """The SourceFile with this relative path (KeyError if none)."""
        for s in self.sources:
            if s.path == path:
                return s
        raise KeyError(path)

    def stem(self, name: str) -> Stem:
        """The stem with this name (KeyError if none)."""
        for s in self.stems:
            if s.name == name:
                return s
        raise KeyError(name)


def utc_now_iso() -> str:
    """The current time as ISO 8601 UTC with a ``Z``, to the second: ``2024-05-01T12:00:00Z``."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- saving

def _plain(value: Any, where: str) -> Any:
    """``value`` as TOML-writable plain Python (None dropped from tables, numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ProjectError(f"cannot save project: {where} has a non-text key {k!r}")
            if v is None:
                continue
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        items = []
        for i, v in enumerate(value):
            if v is None:
                raise ProjectError(f"cannot save project: {where}[{i}] is None (TOML has no null)")
            items.append(_plain(v, f"{where}[{i}]"))
        return items
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), where)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value
    raise ProjectError(f"cannot save project: {where} is a {type(value).__name__}, which TOML cannot hold")


def _record(obj: Any, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        if _FLOAT_FIELDS.get((type(obj), f.name)) and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            value = float(value)
        out[f.name] = _plain(value, f"{where}.{f.name}")
    return out


def project_to_dict(project: Project) -> dict[str, Any]:
    """The TOML document for ``project`` as plain dicts (None omitted)."""
    doc: dict[str, Any] = {
        "schema_version": int(project.schema_version),
        "name": project.name,
        "created": project.created,
        "source_kind": project.source_kind,
        "sample_rate": int(project.sample_rate),
    }
    doc["sources"] = [_record(s, f"sources[{i}]") for i, s in enumerate(project.sources)]
    doc["stems"] = [_record(s, f"stems[{i}]") for i, s in enumerate(project.stems)]
    doc["master"] = _plain(project.master, "master")
    doc["renders"] = [_record(r, f"renders[{i}]") for i, r in enumerate(project.renders)]
    if project.separation is not None:
        doc["separation"] = _record(project.separation, "separation")
    return doc


_HEADER = "# stemmaster project file. Edit with care: unknown keys and wrong types are refused on load.\n\n"


def save_project(project: Project, folder: str | Path) -> Path:
    """Write ``folder/project.toml`` atomically; return its path.

    The text is parsed and checked exactly as :func:`load_project` would before
    it is written, so a project that could not be loaded again (a bad role, a
    path outside the folder, ...) is refused with ProjectError and the file on
    disk is left as it was. ProjectError too if it cannot be written (disk full).
    """
    path = Path(folder) / PROJECT_FILE
    doc = project_to_dict(project)
    try:
        text = _HEADER + tomli_w.dumps(doc)
    except (TypeError, ValueError) as exc:
        raise ProjectError(f"cannot save {path}: {exc}") from exc
    try:
        project_from_dict(tomllib.loads(text), path)
    except ProjectError as exc:
        raise ProjectError(f"refusing to save an invalid project: {exc}") from exc
    atomic_write_text(path, text)
    return path


# ---------------------------------------------------------------- loading

_FLOAT_FIELDS = {
    (Stem, "gain_db"): True,
    (RenderRecord, "target_lufs"): True,
    (RenderRecord, "ceiling_dbtp"): True,
    (RenderRecord, "integrated_lufs"): True,
    (RenderRecord, "true_peak_dbtp"): True,
    (SeparationRecord, "residual_db"): True,
}

_TYPE_NAMES = {str: "text", int: "an integer", float: "a number", bool: "true or false", dict: "a table", list: "an array"}


class _Reader:
    """Pulls typed fields out of one TOML table, naming the field path on any problem."""

    def __init__(self, file: Path, table: Any, where: str):
        self.file = file
        self.where = where
        if not isinstance(table, dict):
            self.fail(where, f"must be a table, got {_describe(table)}")
        self.table = table
        self.used: set[str] = set()

    def fail(self, where: str, problem: str):
        raise ProjectError(f"{self.file}: {where} {problem}")

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type, *, default: Any = ..., optional: bool = False) -> Any:
        self.used.add(key)
        where = self._path(key)
        if key not in self.table:
            if default is not ...:
                return default() if callable(default) else default
            if optional:
                return None
            self.fail(where, f"is missing (expected {_TYPE_NAMES[kind]})")
        value = self.table[key]
        if kind is str and isinstance(value, (_dt.datetime, _dt.date)):
            return value.isoformat()
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(where, f"must be {_TYPE_NAMES[kind]}, got {_describe(value)}")
        return value

    def finish(self) -> None:
        unknown = [k for k in self.table if k not in self.used]
        if unknown:
            names = ", ".join(self._path(k) for k in unknown)
            raise ProjectError(
                f"{self.file}: unknown key{'s' if len(unknown) > 1 else ''} {names} "
                f"(not part of the project format, schema {SCHEMA_VERSION}; a typo?)"
            )


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"{value!r}"
    if isinstance(value, str):
        return f"text {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


_TOML_POS = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)\s*$")


def _toml_error(path: Path, exc: tomllib.TOMLDecodeError) -> ProjectError:
    text = " ".join(str(exc).split())
    m = _TOML_POS.match(text)
    if m:
        return ProjectError(f"{path}: invalid TOML at line {m['line']}, column {m['col']}: {m['msg']}")
    return ProjectError(f"{path}: invalid TOML: {text}")


def _check_relpath(reader: _Reader, where: str, value: str, folder: str | None = None) -> None:
    p = PurePosixPath(value)
    if not value or "\\" in value or p.is_absolute() or ".." in p.parts or (value[1:2] == ":"):
        reader.fail(where, f"= {value!r} must be a path inside the project folder, like \"source/song.wav\"")
    if folder is not None and (len(p.parts) < 2 or p.parts[0] != folder):
        reader.fail(where, f"= {value!r} must be inside {folder}/")


def _load_source(file: Path, table: Any, where: str) -> SourceFile:
    r = _Reader(file, table, where)
    s = SourceFile(
        path=r.get("path", str),
        original_name=r.get("original_name", str),
        sha256=r.get("sha256", str),
        sample_rate=r.get("sample_rate", int),
        channels=r.get("channels", int),
        frames=r.get("frames", int),
    )
    r.finish()
    _check_relpath(r, f"{where}.path", s.path, "source")
    if not re.fullmatch(r"[0-9a-f]{64}", s.sha256):
        r.fail(f"{where}.sha256", "must be 64 lowercase hex digits")
    if s.sample_rate <= 0:
        r.fail(f"{where}.sample_rate", f"= {s.sample_rate} must be positive")
    if s.channels not in (1, 2):
        r.fail(f"{where}.channels", f"= {s.channels} must be 1 or 2")
    if s.frames <= 0:
        r.fail(f"{where}.frames", f"= {s.frames} must be positive")
    return s


def _load_stem(file: Path, table: Any, where: str) -> Stem:
    r = _Reader(file, table, where)
    s = Stem(
        name=r.get("name", str),
        role=r.get("role", str),
        path=r.get("path", str),
        source=r.get("source", str),
        gain_db=r.get("gain_db", float, default=0.0),
        mute=r.get("mute", bool, default=False),
        solo=r.get("solo", bool, default=False),
        chain=r.get("chain", dict, default=dict),
    )
    r.finish()
    if not s.name.strip():
        r.fail(f"{where}.name", "must not be empty")
    if s.role not in ROLES:
        r.fail(f"{where}.role", f"= {s.role!r} is not a role (allowed: {', '.join(ROLES)})")
    _check_relpath(r, f"{where}.path", s.path, "stems")
    _check_relpath(r, f"{where}.source", s.source, "source")
    if not math.isfinite(s.gain_db):
        r.fail(f"{where}.gain_db", f"= {s.gain_db} must be a finite number")
    lo, hi = STEM_GAIN_RANGE_DB
    if not lo <= s.gain_db <= hi:
        r.fail(f"{where}.gain_db", f"= {s.gain_db} is out of range (allowed {lo} to {hi})")
    for kind, settings in s.chain.items():
        if not isinstance(settings, dict):
            r.fail(f"{where}.chain.{kind}", f"must be a table of settings, got {_describe(settings)}")
    return s


def _load_render(file: Path, table: Any, where: str) -> RenderRecord:
    r = _Reader(file, table, where)
    rec = RenderRecord(
        id=r.get("id", str),
        created=r.get("created", str),
        profile=r.get("profile", str, optional=True),
        target_lufs=r.get("target_lufs", float),
        ceiling_dbtp=r.get("ceiling_dbtp", float),
        integrated_lufs=r.get("integrated_lufs", float),
        true_peak_dbtp=r.get("true_peak_dbtp", float),
        folder=r.get("folder", str),
    )
    r.finish()
    if not re.fullmatch(r"\d{3,}", rec.id):
        r.fail(f"{where}.id", f"= {rec.id!r} must be a render number like \"001\"")
    _check_relpath(r, f"{where}.folder", rec.folder, "renders")
    return rec


def _load_separation(file: Path, table: Any, where: str) -> SeparationRecord:
    r = _Reader(file, table, where)
    rec = SeparationRecord(
        model=r.get("model", str),
        model_checksum=r.get("model_checksum", str),
        input_sha256=r.get("input_sha256", str),
        settings=r.get("settings", dict),
        residual_db=r.get("residual_db", float),
        created=r.get("created", str),
    )
    r.finish()
    return rec


def _load_list(file: Path, r: _Reader, key: str, loader) -> list:
    items = r.get(key, list, default=list)
    return [loader(file, item, f"{key}[{i}]") for i, item in enumerate(items)]


def project_from_dict(doc: dict[str, Any], file: str | Path = PROJECT_FILE) -> Project:
    """Build a Project from a parsed TOML document, checking every field (ProjectError naming it)."""
    file = Path(file)
    r = _Reader(file, doc, "")
    version = r.get("schema_version", int)
    if version > SCHEMA_VERSION:
        raise ProjectError(
            f"{file}: written by a newer stemmaster (schema_version {version}; this version reads "
            f"up to {SCHEMA_VERSION}); upgrade stemmaster to open it"
        )
    if version < 1:
        r.fail("schema_version", f"= {version} is not a valid schema version")
    project = Project(
        name=r.get("name", str),
        created=r.get("created", str),
        source_kind=r.get("source_kind", str),
        sample_rate=r.get("sample_rate", int),
        sources=_load_list(file, r, "sources", _load_source),
        stems=_load_list(file, r, "stems", _load_stem),
        master=r.get("master", dict, default=dict),
        renders=_load_list(file, r, "renders", _load_render),
        schema_version=version,
        separation=None,
    )
    separation = r.get("separation", dict, optional=True)
    if separation is not None:
        project.separation = _load_separation(file, separation, "separation")
    r.finish()
    if project.source_kind not in SOURCE_KINDS:
        r.fail("source_kind", f"= {project.source_kind!r} must be one of {', '.join(SOURCE_KINDS)}")
    if project.sample_rate <= 0:
        r.fail("sample_rate", f"= {project.sample_rate} must be positive")
    for stage, settings in project.master.items():
        if not isinstance(settings, dict):
            r.fail(f"master.{stage}", f"must be a table of settings, got {_describe(settings)}")
    source_paths = [s.path for s in project.sources]
    for i, path in enumerate(source_paths):
        if path in source_paths[:i]:
            r.fail(f"sources[{i}].path", f"= {path!r} is listed twice")
    names: set[str] = set()
    for i, stem in enumerate(project.stems):
        if stem.name.casefold() in names:
            r.fail(f"stems[{i}].name", f"= {stem.name!r} is used by another stem")
        names.add(stem.name.casefold())
        if stem.source not in source_paths:
            r.fail(f"stems[{i}].source", f"= {stem.source!r} is not one of the sources")
    ids: set[str] = set()
    for i, rec in enumerate(project.renders):
        if rec.id in ids:
            r.fail(f"renders[{i}].id", f"= {rec.id!r} is used by another render")
        ids.add(rec.id)
    for i, stem in enumerate(project.stems):
        _check_chain(r, f"stems[{i}].chain", stem.chain)
    _check_master(r, project.master)
    return project


# ---------------------------------------------------------------- settings in the file

def _check_value(r: _Reader, where: str, value: Any, annotation: Any) -> None:
    """The type a setting's dataclass field declares (``"float"``, ``"int | None"``, ...), and a finite number."""
    t = str(annotation).replace(" ", "")
    if t.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            r.fail(where, f"must be a number, got {_describe(value)}")
        try:
            finite = math.isfinite(value)
        except OverflowError:
            finite = False
        if not finite:
            r.fail(where, f"= {value!r} must be a finite number")
    elif t.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            r.fail(where, f"must be an integer, got {_describe(value)}")
    elif t == "bool":
        if not isinstance(value, bool):
            r.fail(where, f"must be true or false, got {_describe(value)}")
    elif t.startswith("str"):
        if not isinstance(value, str):
            r.fail(where, f"must be text, got {_describe(value)}")
    elif t.startswith("tuple[int"):
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            r.fail(where, f"must be an array of integers, got {_describe(value)}")


def _check_table(r: _Reader, where: str, table: dict[str, Any], cls: type, extra: dict[str, str]) -> None:
    """Every key of a settings table is a field of ``cls`` (or in ``extra``) and has the field's type."""
    types = {f.name: f.type for f in fields(cls)}
    types.update(extra)
    unknown = [k for k in table if k not in types]
    if unknown:
        raise ProjectError(
            f"{r.file}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(f'{where}.{k}' for k in unknown)} "
            f"(known: {', '.join(types)})"
        )
    for key, value in table.items():
        _check_value(r, f"{where}.{key}", value, types[key])


_SETTING_MESSAGE = re.compile(r"^(?:[\w]+\.)?(?P<key>\w+) (?P<rest>(?:=|must|is) .*)$")


def _settings_failure(r: _Reader, where: str, exc: Exception, keys) -> None:
    """A SettingsError (or a constructor's TypeError/ValueError) as a ProjectError naming ``where.key``."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    m = _SETTING_MESSAGE.match(msg)
    if m and m["key"] in keys:
        r.fail(f"{where}.{m['key']}", m["rest"])
    named = [k for k in keys if re.search(rf"\b{re.escape(k)}\b", msg)]
    if len(named) == 1:  # "unknown profile 'radio' (known: ...)"
        r.fail(f"{where}.{named[0]}", f"is not valid: {msg}")
    r.fail(where, f"is not valid: {msg}")


def _check_chain(r: _Reader, where: str, chain: dict[str, Any]) -> None:
    """A stem's repair chain: known processors, known settings of the right type, each in its range."""
    from stemmaster.errors import SettingsError
    from stemmaster.repair import PROCESSORS  # here, not at the top: the DSP is only needed once a chain is read

    for kind, entry in chain.items():
        at = f"{where}.{kind}"
        cls = PROCESSORS.get(kind)
        if cls is None:
            r.fail(at, f"is not a repair processor (known: {', '.join(PROCESSORS)})")
        _check_table(r, at, entry, cls, {"enabled": "bool"})
        values = {k: v for k, v in entry.items() if k != "enabled"}
        try:
            cls.from_settings(values)
        except (SettingsError, TypeError, ValueError, ArithmeticError) as exc:
            _settings_failure(r, at, exc, values)


def _check_master(r: _Reader, master: dict[str, Any]) -> None:
    """The ``master`` table: known sections and settings of the right type, each in its range."""
    import dataclasses
    import typing

    from stemmaster.errors import SettingsError
    from stemmaster.master import MasterSettings

    hints = typing.get_type_hints(MasterSettings)
    defaults = MasterSettings().to_dict()
    sections = {name: hints[name] for name in defaults if dataclasses.is_dataclass(hints.get(name))}
    for section, table in master.items():
        at = f"master.{section}"
        if section not in sections:
            raise ProjectError(f"{r.file}: unknown key {at} (known sections: {', '.join(sections)})")
        _check_table(r, at, table, sections[section], {"enabled": "bool"} if "enabled" in defaults[section] else {})
        try:
            MasterSettings.from_dict({section: dict(table)})
        except (SettingsError, TypeError, ValueError, ArithmeticError) as exc:
            _settings_failure(r, at, exc, table)
    try:
        MasterSettings.from_dict({k: dict(v) for k, v in master.items()})
    except (SettingsError, TypeError, ValueError, ArithmeticError) as exc:
        _settings_failure(r, "master", exc, ())


def load_project(folder: str | Path) -> Project:
    """Read and check ``folder/project.toml``; ProjectError naming the file and the line or field."""
    path = Path(folder) / PROJECT_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if Path(folder).is_dir():
            raise ProjectError(f"{Path(folder)}: not a stemmaster project (no {PROJECT_FILE})") from None
        raise ProjectError(f"{Path(folder)}: project folder not found") from None
    except OSError as exc:
        raise ProjectError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ProjectError(f"{path}: not valid UTF-8 text at line {line} (byte {exc.start})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(path, exc) from None
    return project_from_dict(doc, path)
