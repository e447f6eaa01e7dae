"""One server per data directory.

Why: two servers on one data directory would share its identity, its
``sessions.json`` and, by default, its SQLite storage. Storage stays correct
(every commit is validated atomically), but each server would run the same
charms' derived values and alarms, overwrite the other's sessions file, and
log browsers out at random. So ``charmspace serve`` holds an exclusive lock
on ``DATA/serve.lock`` while it runs, and a second one started on the same
directory stops at once and says which process holds it.

The lock is ``flock``: the kernel releases it when the process ends, however
it ends, so a crashed server never leaves a stale lock behind.

A server that fails to start (a bad storage URL, a taken port) leaves the disk
as it found it: the lock file and the directories it made for it are removed
again (a directory only if nothing else was put in it meanwhile), so a typo in
``--storage`` does not leave an empty data directory behind. The lock file is
removed while still locked, and a server that locks a file checks that it is
still the one at the path, so a server starting at that moment never locks a
removed file while another locks its replacement.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from charmspace.server.errors import DataDirectoryError, DataDirectoryInUseError

LOCK_NAME = "serve.lock"


@contextmanager
def hold_data_directory(data: Path) -> Iterator[None]:
    """Hold ``data``'s server lock while the block runs; raise if another process holds it.

    A directory that cannot be made or written is a :class:`DataDirectoryError`,
    found here, before anything else starts. If the block raises (the server
    did not start, or did not stop cleanly), what this made is removed again.
    """
    path = data / LOCK_NAME
    made = _missing(data)
    try:
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, created = _lock_file(path)
    except OSError as error:
        _remove_directories(made)
        reason = error.strerror or type(error).__name__
        if isinstance(error, FileExistsError) or (data.exists() and not data.is_dir()):
            reason = "it is a file, not a directory"
        raise DataDirectoryError(data, reason[:1].lower() + reason[1:]) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    except BaseException:
        if created:  # still locked: nobody else can have it yet
            path.unlink(missing_ok=True)
        os.close(fd)
        fd = -1
        _remove_directories(made)
        raise
    finally:
        if fd >= 0:
            os.close(fd)  # releases the lock


def _lock_file(path: Path) -> tuple[int, bool]:
    """The locked lock file's descriptor, and whether this call created the file."""
    while True:
        try:
            fd, created = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), True
        except FileExistsError:
            fd, created = os.open(path, os.O_RDWR), False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise DataDirectoryInUseError(path.parent, holder) from None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return fd, created
        os.close(fd)  # a failed start removed it after we opened it: lock the one there now


def _same_file(fd: int, path: Path) -> bool:
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (at_path.st_dev, at_path.st_ino)


def _missing(data: Path) -> list[Path]:
    """``data`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for directory in (data, *data.parents):
        if directory.exists() or directory.is_symlink():
            break
        missing.append(directory)
    return missing


def _remove_directories(made: list[Path]) -> None:
    """Remove the directories in ``made`` (deepest first) that are still empty."""
    for directory in made:
        try:
            directory.rmdir()
        except OSError:  # something else was put there (or it is not ours to remove)
            return
