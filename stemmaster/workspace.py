"""The workspace: a folder of project folders.

Layout of one project, ``<workspace>/<name>/``::

    project.toml        the model (see stemmaster.project), written atomically
    source/             the originals, copied byte for byte, never modified
    stems/              working stems: stereo 32-bit float WAV at the project rate
    renders/NNN/        one folder per render (master, report, settings used)

A project is created in a hidden temporary folder inside the workspace
(``.tmp-<name>-<pid>``) and renamed into place only when complete, so a
failure or Ctrl-C leaves no half project (the temporary folder is removed; one
left by a killed process is removed by the next creation of that name).
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path

from stemmaster.atomic import describe_os_error, fsync_dir, pid_alive
from stemmaster.errors import ProjectError
from stemmaster.lock import LOCK_NAME, project_lock
from stemmaster.project import PROJECT_FILE, Project, load_project, save_project, utc_now_iso
from stemmaster.stem_import import Progress, import_render, import_stems

WORKSPACE_ENV = "STEMMASTER_WORKSPACE"
DEFAULT_WORKSPACE_NAME = "projects"
MAX_NAME_LENGTH = 100
RENDERS_DIR = "renders"
_NAME_PUNCTUATION = " -_.()"
_TMP_PREFIX = ".tmp-"


def default_workspace() -> Path:
    """``$STEMMASTER_WORKSPACE`` if set (``~`` expanded), else ``./projects``; made absolute."""
    env = os.environ.get(WORKSPACE_ENV, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    return Path.cwd() / DEFAULT_WORKSPACE_NAME


def check_project_name(name: str) -> str:
    """Return ``name`` (NFC-normalised) if it is a valid project name, else ProjectError saying why.

    Valid: 1 to 100 characters of letters (any script), digits, spaces and
    ``-_.()``; not starting with a dot or a space, not ending with a space;
    not ``.`` or ``..``.
    """
    if not isinstance(name, str):
        raise ProjectError(f"project name must be text, got {type(name).__name__}")
    name = unicodedata.normalize("NFC", name)
    shown = repr(name)
    if not name.strip():
        raise ProjectError("project name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ProjectError(f"project name {shown} is too long ({len(name)} characters; at most {MAX_NAME_LENGTH})")
    if name in (".", ".."):
        raise ProjectError(f"project name {shown} is not allowed")
    if "/" in name or "\\" in name or (os.sep in name) or (os.altsep and os.altsep in name):
        raise ProjectError(f"project name {shown} must not contain a path separator (/ or \\)")
    for ch in name:
        if unicodedata.category(ch).startswith("C"):
            raise ProjectError(f"project name {shown} contains a control character (U+{ord(ch):04X})")
    if name.startswith("."):
        raise ProjectError(f"project name {shown} must not start with a dot")
    if name != name.strip():
        raise ProjectError(f"project name {shown} must not start or end with a space")
    for ch in name:
        if not (ch.isalnum() or ch in _NAME_PUNCTUATION):
            raise ProjectError(
                f"project name {shown}: {ch!r} is not allowed (use letters, digits, spaces and - _ . ( ))"
            )
    return name


class Workspace:
    """A folder of projects. Nothing is created on disk until a project is."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser().absolute() if root is not None else default_workspace()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # ------------------------------------------------------------ paths

    def project_dir(self, name: str) -> Path:
        """The folder of project ``name`` (which need not exist); ProjectError for an invalid name."""
        name = check_project_name(name)
        path = self.root / name
        root = self.root.resolve()
        if not path.resolve().is_relative_to(root) or path.resolve() == root:
            raise ProjectError(f"project name {name!r} resolves outside the workspace {self.root}")
        return path

    def folder(self, project: Project) -> Path:
        """The folder of a loaded project."""
        return self.project_dir(project.name)

    def render_folder(self, project: Project, render_id: str) -> Path:
        """``<project>/renders/<render_id>``."""
        if not re.fullmatch(r"\d{3,}", render_id):
            raise ProjectError(f"invalid render id {render_id!r} (expected a number like \"001\")")
        return self.folder(project) / RENDERS_DIR / render_id

    # ------------------------------------------------------------ reading

    def exists(self, name: str) -> bool:
        return (self.project_dir(name) / PROJECT_FILE).is_file()

    def list_entries(self) -> list[tuple[str, Project | ProjectError]]:
        """Every project folder as ``(folder name, Project or the ProjectError that loading raised)``.

        Sorted by name (case-insensitive). Hidden entries (including
        ``.tmp-*`` folders of creations in progress) and plain files are
        ignored; a missing workspace folder lists as empty.
        """
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ProjectError(f"{self.root}: cannot list the workspace ({describe_os_error(exc)})") from exc
        out: list[tuple[str, Project | ProjectError]] = []
        for entry in sorted(entries, key=lambda p: (p.name.casefold(), p.name)):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            try:
                out.append((entry.name, load_project(entry)))
            except ProjectError as exc:
                out.append((entry.name, exc))
        return out

    def list_projects(self) -> list[Project]:
        """The projects that load, sorted by name; see :meth:`list_entries` for the ones that do not."""
        return [p for _, p in self.list_entries() if isinstance(p, Project)]

    def load(self, name: str) -> Project:
        """Load project ``name``; ProjectError if it does not exist or its project.toml is bad."""
        folder = self.project_dir(name)
        if not folder.is_dir():
            available = [n for n, p in self.list_entries() if isinstance(p, Project)]
            hint = f" (projects: {', '.join(available)})" if available else " (the workspace has no projects)"
            raise ProjectError(f"no project named {name!r} in {self.root}{hint}")
        return load_project(folder)

    def save(self, project: Project) -> Path:
        """Write the project's project.toml atomically; return its path."""
        folder = self.folder(project)
        if not folder.is_dir():
            raise ProjectError(f"no project folder {folder} to save {project.name!r} into")
        with project_lock(folder, "saving settings"):  # refused while another process works on it
            return save_project(project, folder)

    def next_render_id(self, project: Project) -> str:
        """The next free render number ("001", "002", ...), after both the recorded renders and
        any numbered folder in ``renders/`` (so a failed render's leftover is never reused)."""
        used = [int(r.id) for r in project.renders if r.id.isdigit()]
        try:
            for entry in (self.folder(project) / RENDERS_DIR).iterdir():
                m = re.fullmatch(r"\.?(?:tmp-)?(\d+)(?:-.*)?", entry.name)
                if m:
                    used.append(int(m.group(1)))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ProjectError(f"{self.folder(project) / RENDERS_DIR}: cannot list ({describe_os_error(exc)})") from exc
        return f"{max(used, default=0) + 1:03d}"

    # ------------------------------------------------------------ renaming, deleting

    def rename(self, old: str, new: str) -> Project:
        """Rename project ``old`` to ``new`` (its folder and the name in its project.toml).

        ProjectError when ``old`` does not exist, ``new`` is invalid or taken;
        if the project file cannot be rewritten, the folder is renamed back.
        """
        self.load(old)  # "no project named ..." before any lock
        src = self.project_dir(old)
        with project_lock(src, "renaming"):
            return self._rename(old, new)

    def _rename(self, old: str, new: str) -> Project:
        project = self.load(old)
        src = self.project_dir(old)
        dst = self.project_dir(new)
        new = dst.name
        if dst.exists() and not (dst.resolve() == src.resolve() and new != src.name):  # a case-only rename
            raise ProjectError(f"a project named {new!r} already exists in {self.root}")
        try:
            os.rename(src, dst)
        except OSError as exc:
            raise ProjectError(f"cannot rename {src} to {dst}: {describe_os_error(exc)}") from exc
        try:  # the lock moved with the folder: release it under its new path
            (dst / LOCK_NAME).unlink()
        except OSError:
            pass
        project.name = new
        try:
            save_project(project, dst)
        except BaseException:
            os.rename(dst, src)
            raise
        fsync_dir(self.root)
        return project

    def delete(self, name: str) -> None:
        """Delete project ``name``'s folder and everything in it (renders included).

        Only a real folder directly in the workspace that holds a project.toml
        is removed (never a symlink, never anything outside the workspace). It
        is first renamed to a hidden name, so a crash half-way never leaves a
        half-deleted project that still lists.
        """
        folder = self.project_dir(name)
        if folder.is_symlink():
            raise ProjectError(f"{folder} is a symbolic link; refusing to delete what it points to")
        if not (folder / PROJECT_FILE).is_file():
            raise ProjectError(f"no project named {name!r} in {self.root}")
        doomed = self.root / f".deleting-{folder.name}-{os.getpid()}"
        try:
            with project_lock(folder, "deleting"):
                os.rename(folder, doomed)
        except OSError as exc:
            raise ProjectError(f"cannot delete {folder}: {describe_os_error(exc)}") from exc
        shutil.rmtree(doomed, ignore_errors=True)
        fsync_dir(self.root)

    # ------------------------------------------------------------ creating

    def create_from_stems(
        self,
        name: str,
        stems_dir: str | os.PathLike,
        *,
        sample_rate: int | None = None,
        roles: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> Project:
        """Create project ``name`` from a folder of stems (see stemmaster.stem_import.import_stems)."""

        def build(folder: Path, name: str) -> Project:
            rate, sources, stems = import_stems(stems_dir, folder, sample_rate=sample_rate, roles=roles, progress=progress)
            return Project(name=name, created=utc_now_iso(), source_kind="stems", sample_rate=rate,
                           sources=sources, stems=stems, master={}, renders=[])

        return self._create(name, build)

    def create_from_render(
        self,
        name: str,
        render_file: str | os.PathLike,
        *,
        progress: Progress | None = None,
    ) -> Project:
        """Create project ``name`` from one finished mix (no stems until separation runs)."""

        def build(folder: Path, name: str) -> Project:
            rate, sources = import_render(render_file, folder, progress=progress)
            return Project(name=name, created=utc_now_iso(), source_kind="render", sample_rate=rate,
                           sources=sources, stems=[], master={}, renders=[])

        return self._create(name, build)

    def _create(self, name: str, build: Callable[[Path, str], Project]) -> Project:
        final = self.project_dir(name)
        name = final.name
        if final.exists():
            raise ProjectError(f"a project named {name!r} already exists in {self.root}")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"cannot create the workspace {self.root}: {describe_os_error(exc)}") from exc
        self._remove_stale_temps(name)
        tmp = self.root / f"{_TMP_PREFIX}{name}-{os.getpid()}"
        try:
            try:
                if tmp.exists():
                    shutil.rmtree(tmp)
                tmp.mkdir()
                for sub in ("source", "stems", RENDERS_DIR):
                    (tmp / sub).mkdir()
                project = build(tmp, name)
                save_project(project, tmp)
                if final.exists():
                    raise ProjectError(f"a project named {name!r} was created in {self.root} meanwhile")
                os.rename(tmp, final)
            except OSError as exc:
                raise ProjectError(f"cannot create project {name!r} in {self.root}: {describe_os_error(exc)}") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(self.root)
        return project

    def _remove_stale_temps(self, name: str) -> None:
        """Remove ``.tmp-<name>-<pid>`` folders whose process is gone (left by a kill -9 or a crash)."""
        prefix = f"{_TMP_PREFIX}{name}-"
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return
        for entry in entries:
            rest = entry.name[len(prefix):] if entry.name.startswith(prefix) else ""
            if not rest.isdigit() or int(rest) == os.getpid():
                continue
            if not pid_alive(int(rest)):
                shutil.rmtree(entry, ignore_errors=True)
