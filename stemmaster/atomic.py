"""Atomic file writes and streamed hashing.

A write goes to a temporary file in the destination's folder (same file
system, so the final ``os.replace`` is atomic), is flushed and fsynced, then
renamed over the destination; the folder is fsynced afterwards where the OS
allows it. Readers therefore see either the old file or the new one, never a
mix, and a crash or a full disk leaves the old file as it was.

Errors: any ``OSError`` during the write (``ENOSPC``, ``EACCES``, a missing
folder, ...) is raised as :class:`~stemmaster.errors.ProjectError` with a
one-line message naming the destination and the reason (the ``OSError`` is
chained as ``__cause__``). Other exceptions (including ``KeyboardInterrupt``)
propagate unchanged. In every case the temporary file is removed first and the
destination is untouched.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
from pathlib import Path

from stemmaster.errors import ProjectError

_HASH_CHUNK = 1 << 20


def describe_os_error(exc: OSError) -> str:
    """A short human reason for an ``OSError`` (``"disk full"`` for ENOSPC, etc.)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full (no space left on device)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.ENOENT:
        return "folder does not exist"
    return exc.strerror or str(exc) or type(exc).__name__


def temp_path_for(path: Path) -> tuple[int, Path]:
    """Create and open (write-only) a unique hidden temporary file next to ``path``.

    It is created with mode 0o666 so the process umask applies as for any new
    file; returns ``(fd, temp path)``.
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "could not create a unique temporary file", str(path.parent))


def copy_mode_if_exists(path: Path, tmp: Path) -> None:
    """Give ``tmp`` the permissions of an existing ``path`` (a replaced file keeps its mode)."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        return
    os.chmod(tmp, mode)


def fsync_dir(folder: Path) -> None:
    """Best-effort fsync of a folder so a rename in it is durable (a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def land_file(tmp: Path, final: Path) -> None:
    """Make a fully written temporary file ``tmp`` the file ``final``: fsync its data, keep
    ``final``'s permissions if it exists, rename over it, fsync the folder."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    copy_mode_if_exists(final, tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 only checks; nothing is sent).

    Only asked on POSIX: on Windows ``os.kill`` would terminate the process, so
    there every process counts as alive (stale files stay rather than being stolen).
    """
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring for the error contract)."""
    path = Path(path)
    tmp: Path | None = None
    try:
        fd, tmp = temp_path_for(path)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        copy_mode_if_exists(path, tmp)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ProjectError(f"cannot write {path}: {describe_os_error(exc)}; the previous file (if any) is unchanged") from exc
    finally:
        if tmp is not None:
            remove_quietly(tmp)
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically, encoded as UTF-8 with ``\\n`` line ends."""
    atomic_write_bytes(path, text.encode(encoding))


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (memory stays flat for any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()
