"""One writer per project: a lock file, so the TUI and a CLI call never change a project at once.

``project_lock(project_dir, purpose)`` creates ``<project>/.lock`` with
``O_CREAT | O_EXCL`` (atomic on every local file system), holding the
owner's process id, host and purpose. Another process that finds it gets a
``ProjectError`` saying who holds the project and for what ("project is
busy: master by pid 1234 since 10:02:11"). A lock whose process is gone
(killed with -9, a crash, a lost SSH session) is stale: it is removed and
taken over. A lock from another host is never taken over (the project
folder may be on shared storage); its message says how to clear it.

The lock is re-entrant within one process (a master that separates first
takes it once), and always released on the way out, exceptions included.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from stemmaster.atomic import pid_alive
from stemmaster.errors import ProjectError

LOCK_NAME = ".lock"
_held: dict[str, int] = {}  # lock path -> depth, in this process
_guard = threading.Lock()


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _busy_message(project_dir: Path, info: dict) -> str:
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0))) if info.get("since") else "?"
    return (f"project {project_dir.name!r} is busy: {info.get('purpose', 'a job')} by pid {info.get('pid', '?')} "
            f"on {info.get('host', '?')} since {since}; wait for it to finish")


@contextmanager
def project_lock(project_dir: str | os.PathLike, purpose: str) -> Iterator[None]:
    """Hold ``project_dir``'s lock for ``purpose`` (see the module doc)."""
    path = Path(project_dir) / LOCK_NAME
    key = str(path.resolve())
    with _guard:
        depth = _held.get(key, 0)
        if depth:
            _held[key] = depth + 1
    if depth:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    _acquire(path, purpose)
    with _guard:
        _held[key] = 1
    try:
        yield
    finally:
        with _guard:
            _held.pop(key, None)
        try:
            if _read(path).get("pid") == os.getpid():
                path.unlink()
        except OSError:
            pass


def _acquire(path: Path, purpose: str) -> None:
    me = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose, "since": time.time()}
    for _attempt in range(40):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = _read(path)
            if not info:
                try:
                    young = time.time() - path.stat().st_mtime < 5.0
                except OSError:
                    young = False
                if young:  # its owner has created it and is writing it: look again
                    time.sleep(0.05)
                    continue
            pid = info.get("pid")
            if info.get("host") not in (None, me["host"]):
                raise ProjectError(_busy_message(path.parent, info)
                                   + f" (held from another host: delete {path} if that job is gone)") from None
            if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid):
                raise ProjectError(_busy_message(path.parent, info)) from None
            try:  # stale (its process is gone) or unreadable: take it over
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise ProjectError(f"{path}: a stale lock cannot be removed ({exc.strerror})") from None
            continue
        except FileNotFoundError:
            raise ProjectError(f"no project folder {path.parent}") from None
        except OSError as exc:
            raise ProjectError(f"{path}: cannot lock the project ({exc.strerror})") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        return
    raise ProjectError(f"{path}: could not take the project's lock")
