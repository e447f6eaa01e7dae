"""The leases of a SQLite storage's spaces: one table in ``leases.sqlite`` beside the spaces.

Why a file of their own rather than a table in each space's file: taking or
renewing a lease would then wait for the space's write lock, behind a group
of commits, and the space files' format would change for something that is
not the space's data. Every process on the directory opens this one file; a
row per space names its holder, the holding block's token and the expiry,
and each change is one ``BEGIN IMMEDIATE`` transaction, so two processes
never both find a space free and both take it.

Why a released lease keeps its row (with ``expires = 0``): the row's
``generation`` then only grows, so every holder of a space has a higher one
than all before it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from charmspace.errors import CorruptStorageError, StorageError
from charmspace.storage.backends.sqlite_files import (
    closed_error,
    create_private,
    os_error,
    rollback,
    sqlite_error,
)
from charmspace.storage.lease import Claim
from charmspace.types import DID, SpaceDID

T = TypeVar("T")

FILE = "leases.sqlite"
BUSY_TIMEOUT_MS = 100
"""How long one question may wait for another process's (microseconds-long) transaction
on the file: the event loop waits with it, and a lease that cannot be asked about now is
asked about again later."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS leases (space TEXT PRIMARY KEY, holder TEXT NOT NULL,"
    " token TEXT NOT NULL, expires REAL NOT NULL, generation INTEGER NOT NULL) WITHOUT ROWID"
)
_RELEASE = "UPDATE leases SET expires = 0 WHERE space = ? AND token = ?"
_GET = "SELECT holder, token, expires, generation FROM leases WHERE space = ?"
_PUT = (
    "INSERT INTO leases (space, holder, token, expires, generation) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (space) DO UPDATE SET holder = excluded.holder, token = excluded.token,"
    " expires = excluded.expires, generation = excluded.generation"
)


class SQLiteLeases:
    """:class:`~charmspace.storage.lease.LeaseRecords` in ``<directory>/leases.sqlite``."""

    def __init__(self, directory: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = directory / FILE
        self.busy_timeout_ms = busy_timeout_ms
        self._db: sqlite3.Connection | None = None
        self._inode = (0, 0)
        self._lock = threading.Lock()  # one connection, used by one thread at a time
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteLeases({str(self.path)!r})"

    def take(self, space: SpaceDID, holder: DID, token: str, seconds: float, now: float) -> Claim:
        def take_(db: sqlite3.Connection) -> Claim:
            row = db.execute(_GET, (space,)).fetchone()
            if row is not None and row[1] != token and row[2] > now:
                return Claim(*row)
            claim = Claim(holder, token, now + seconds, (0 if row is None else row[3]) + 1)
            db.execute(_PUT, (space, holder, token, claim.expires, claim.generation))
            return claim

        return self._write(space, take_)

    def renew(self, space: SpaceDID, token: str, seconds: float, now: float) -> Claim | None:
        def renew_(db: sqlite3.Connection) -> Claim | None:
            row = db.execute(_GET, (space,)).fetchone()
            if row is None or row[1] != token:
                return None if row is None else Claim(*row)
            db.execute("UPDATE leases SET expires = ? WHERE space = ?", (now + seconds, space))
            return Claim(row[0], token, now + seconds, row[3])

        return self._write(space, renew_)

    def release(self, space: SpaceDID, token: str) -> None:
        def release_(db: sqlite3.Connection) -> None:
            db.execute(_RELEASE, (space, token))

        self._write(space, release_)

    def _write(self, space: SpaceDID, change: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            db = self._connect(space)
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = change(db)
                    db.execute("COMMIT")
                except BaseException:
                    rollback(db)
                    raise
            except sqlite3.Error as error:
                raise self._error(error, space) from error
            except OSError as error:
                raise os_error(error, str(self.path), "use the leases file") from error
            return result

    def _connect(self, space: SpaceDID) -> sqlite3.Connection:
        if self._closed:
            raise closed_error(self.path.parent)
        if self._db is not None:
            if self._same_file():
                return self._db
            self._db.close()  # its file was removed or replaced, and the leases in it with it
            self._db = None
        create_private(self.path)  # before SQLite creates it with the umask's mode
        try:
            db = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self.busy_timeout_ms / 1000,
            )
        except sqlite3.Error as error:
            raise self._error(error, space, creating=True) from None
        try:  # of two processes creating it, one may find it locked: asked again later
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # a lease needs no power-loss durability
            db.execute(_SCHEMA)
            found = os.stat(self.path)
        except sqlite3.Error as error:
            db.close()
            raise self._error(error, space) from None
        except OSError as error:
            db.close()
            raise os_error(error, str(self.path), "open the leases file") from None
        self._inode = (found.st_dev, found.st_ino)
        self._db = db
        return db

    def _error(
        self, error: sqlite3.Error, space: SpaceDID, *, creating: bool = False
    ) -> StorageError:
        found = sqlite_error(error, space, self.path, creating=creating)
        if not isinstance(found, CorruptStorageError):
            return found
        return StorageError(
            f"The leases file {self.path} is damaged or not a leases database ({error}). "
            f"It holds no data: stop every charmspace process using {self.path.parent}, "
            "delete the file, and start them again (it is created anew)."
        )

    def _same_file(self) -> bool:
        """Whether the path still names the file we have open (a ``stat``, about 3 µs).

        A connection to a file that was deleted would go on granting leases
        that no other process can see.
        """
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (found.st_dev, found.st_ino) == self._inode

    def close(self) -> None:
        """Close the file; later calls raise. Held leases are left to expire."""
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None
