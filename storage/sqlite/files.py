"""What is wrong with a SQLite file's path, said so that an operator knows what to change."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from storage import StorageUnavailable


def prepare(path: str) -> None:
    """The database file's directory made; a directory where the file should be refused."""
    where = Path(path)
    if where.is_dir():
        raise StorageUnavailable(f"storage.path: {path} is a directory; name a database file"
                                 f" in it, e.g. {where / 'gateway.sqlite3'}")
    for parent in where.parents:
        if parent.exists() and not parent.is_dir():
            raise StorageUnavailable(f"storage.path: {parent} is a file, so {path} cannot be"
                                     " made; choose another path")
    where.parent.mkdir(parents=True, exist_ok=True)


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: str) -> int | None:
    try:
        stat = os.statvfs(_existing(Path(path).absolute()))
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def unavailable(path: str, exc: BaseException) -> str:
    """Why a SQLite file cannot be used, in a line that names storage.path and what to do."""
    where = _existing(Path(path).absolute())
    with contextlib.suppress(OSError):
        if os.statvfs(where).f_flag & os.ST_RDONLY:
            return (f"storage.path: {path} is on a read-only file system; choose a path on a"
                    " writable one")
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        return (f"storage.path: {path} is not a SQLite database (or it is damaged); point"
                " storage.path at the gateway's database, or at a new file")
    if isinstance(exc, sqlite3.OperationalError) and "full" in text:
        return f"storage.path: the disk holding {path} is full; free space and start again"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else text
    return (f"storage.path: cannot open {path} for writing ({reason}); choose a path the"
            " gateway's user can create and write")
