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
    found here, before anything else starts.
    """
    path = data / LOCK_NAME
    try:
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        if isinstance(error, FileExistsError) or (data.exists() and not data.is_dir()):
            reason = "it is a file, not a directory"
        raise DataDirectoryError(data, reason[:1].lower() + reason[1:]) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise DataDirectoryInUseError(data, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
