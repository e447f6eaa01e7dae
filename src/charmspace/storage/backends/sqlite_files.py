"""What every SQLite file of a directory shares: private creation, rollback, errors explained.

The space files (:mod:`~charmspace.storage.backends.sqlite`) and the leases
file (:mod:`~charmspace.storage.backends.sqlite_leases`) are opened, rolled
back and reported on the same way.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from pathlib import Path

from charmspace.errors import (
    CorruptStorageError,
    DiskFullError,
    SpaceNotFoundError,
    StorageError,
    StorageIOError,
    StoragePathError,
    StoragePermissionError,
)
from charmspace.types import SpaceDID

log = logging.getLogger("charmspace.storage.backends.sqlite")


def create_private(path: Path) -> None:
    """Create ``path`` empty and readable by its owner only, before SQLite opens it.

    Why: SQLite creates files with the umask's mode (often 0644), and a space
    holds its users' data, tokens included; its ``-wal`` and ``-shm`` files take
    the main file's mode.
    """
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        os.chmod(path, 0o600)
    except OSError:
        return  # a read-only or full directory: SQLite's own error says it, as before


def rollback(db: sqlite3.Connection) -> None:
    """Roll back without masking the error that made us roll back."""
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback failed")


_CORRUPT = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_DENIED = (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH)


def sqlite_error(
    error: sqlite3.Error, space: SpaceDID, path: Path, *, creating: bool = False
) -> StorageError:
    """The charmspace error for what SQLite reported about a space's file.

    Raw ``sqlite3`` errors never reach callers: each cause asks for a different
    response (free disk space, fix permissions, restore a backup, retry), and
    telling a user with a read-only directory to move a "damaged" file away
    would lose good data.
    """
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(error)
    if primary == sqlite3.SQLITE_FULL or "disk is full" in text:
        return DiskFullError(str(path))
    if primary in _CORRUPT or "not a database" in text or "malformed" in text:
        return CorruptStorageError(space, str(path), text)
    if primary in _DENIED or "readonly" in text:
        return StoragePermissionError(str(path), f"SQLite cannot write it ({text})")
    if primary == sqlite3.SQLITE_CANTOPEN or "unable to open" in text:
        if creating:
            return StoragePermissionError(
                str(path.parent), f"SQLite cannot create a file in it ({text})"
            )
        if not path.exists():
            return SpaceNotFoundError(space)
        return StoragePermissionError(
            str(path), f"SQLite cannot open it or create its -wal and -shm files beside it ({text})"
        )
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in text:
        return StorageIOError(
            str(path), "another connection held the space's write lock longer than the busy timeout"
        )
    return StorageIOError(str(path), f"SQLite reported: {text}")


def closed_error(directory: Path) -> StorageError:
    """What a call on a closed SQLite storage raises: said plainly, with what to do."""
    return StorageError(
        f"The storage in {directory} is closed, so it cannot be read or written; nothing "
        "was done. Open it again (open_storage(url), or a new Runtime on it) to go on."
    )


_WRONG_PATH = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP}
)
"""What a path itself is to blame for: a parent missing or a file, a name too long."""


def os_error(error: OSError, path: str, doing: str) -> StorageError:
    """The charmspace error for an operating-system error while trying to ``doing`` at ``path``."""
    if error.errno == errno.ENOSPC:
        return DiskFullError(path)
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoragePermissionError(path, f"cannot {doing} ({error.strerror})")
    if error.errno in _WRONG_PATH:  # retrying cannot help: the path must change
        return StoragePathError(path, f"cannot {doing} ({error.strerror})")
    return StorageIOError(path, f"cannot {doing} ({error.strerror})")
