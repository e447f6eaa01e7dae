"""The SQLite backend: one database file per space, WAL, ``BEGIN IMMEDIATE`` commits.

Why a file per space: each space has its own sequence, so commits in different
spaces never wait for each other's write lock, and deleting a space is deleting
a file. History comes for free from the schema: ``revisions`` is append-only
and a document's current value is its revision with the highest seq.

Why a cache of current revisions: the runtime reads far more than it writes.
Each open space keeps ``id → Revision`` and its :class:`SpaceRecord` (owner and
ACL) in memory; this backend's own commits update them after ``COMMIT``
succeeds, and ``PRAGMA data_version`` — which changes exactly when *another*
connection (another process, or another :class:`SQLiteBackend` on the same
directory) has committed — throws them away. The ACL is cached exactly like the
documents it guards, so a revocation is seen as soon as a write would be.
Every read asks ``data_version`` first (except inside our own open group, whose
write lock keeps everyone else out), so a read sees every commit acknowledged
before it began, wherever it was made. Point-in-time reads go to the database.

Why the file's identity is checked too: deleting a space unlinks its file, and
a connection another process still holds keeps writing to the unlinked file,
where every commit is acknowledged and lost. Each connection remembers the
inode it opened; whenever it looks for other processes' commits it also checks
that the path still names that inode, and drops the connection if not.
Deletion unlinks while holding the space's write lock, so a commit either lands
before the deletion or sees the file gone.

Why a space is created in a temporary file and linked into place: the path
then only ever holds a complete space, so an empty or half-written file there
is damage (:class:`CorruptStorageError`), never "no space yet" that anyone
could create over.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import sqlite3
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from charmspace.errors import (
    ConflictError,
    CorruptStorageError,
    HistoryPrunedError,
    SpaceExistsError,
    SpaceNotFoundError,
    StorageError,
    StorageVersionError,
)
from charmspace.identity import is_did, parse_did
from charmspace.storage.backends.base import Check
from charmspace.storage.backends.sqlite_files import (
    closed_error,
    create_private,
    os_error,
    rollback,
    sqlite_error,
)
from charmspace.storage.delta import json_size, replay
from charmspace.storage.model import (
    MISSING,
    Capability,
    LogEntry,
    PreparedCommit,
    PreparedWrite,
    Retention,
    Revision,
    Row,
    SpaceRecord,
)
from charmspace.types import DID, EntityId, SpaceDID
from charmspace.values import dumps, loads

if TYPE_CHECKING:  # it imports from this module, so it is imported when first used
    from charmspace.storage.backends.sqlite_leases import SQLiteLeases

log = logging.getLogger(__name__)

T = TypeVar("T")

APPLICATION_ID = 0x63686D73  # "chms": marks a file as a charmspace space
SCHEMA_VERSION = 4
"""The file format, kept in ``PRAGMA user_version``. 1: the first release. 2: the space's
retention horizon and policy, each revision's size, and ``auto_vacuum = INCREMENTAL`` so
pruning gives disk back. 3: a revision may be stored as a delta against the one before it.
4: rows, kept outside the documents' history (the outbox's pending sends, the inbox's records)."""
SUFFIX = ".sqlite"

# principal: who wrote the row (the committing principal); version: its writes so far.
_ROWS_TABLE = (
    "CREATE TABLE rows (box TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    " principal TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (box, key)) WITHOUT ROWID"
)
_SCHEMA = (
    # horizon: point-in-time reads before it were pruned. retention: JSON, NULL = the storage's.
    "CREATE TABLE space (did TEXT PRIMARY KEY, owner TEXT NOT NULL, acl TEXT NOT NULL,"
    " created_at REAL NOT NULL, horizon INTEGER NOT NULL DEFAULT 0, retention TEXT)",
    # value NULL: the document was deleted at this seq. size: len(value), which
    # retention sums without reading the values (NULL in rows older than format 2).
    # delta 1: value holds the operations that turn the previous revision into this one.
    "CREATE TABLE revisions (id TEXT NOT NULL, seq INTEGER NOT NULL, value TEXT,"
    " size INTEGER, delta INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (id, seq)) WITHOUT ROWID",
    "CREATE TABLE commits (seq INTEGER PRIMARY KEY, principal TEXT NOT NULL,"
    " time REAL NOT NULL, ids TEXT NOT NULL, meta TEXT NOT NULL)",
    _ROWS_TABLE,
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_MIGRATIONS = {
    1: (
        "ALTER TABLE space ADD COLUMN horizon INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE space ADD COLUMN retention TEXT",
        "ALTER TABLE revisions ADD COLUMN size INTEGER",
    ),
    2: ("ALTER TABLE revisions ADD COLUMN delta INTEGER NOT NULL DEFAULT 0",),
    3: (_ROWS_TABLE,),
}
"""Statements that take a file from the version it has to the next, run in one transaction."""

JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024
"""Bytes a WAL file is truncated to after a checkpoint; without it, it keeps its peak size."""
PRUNE_BATCH = 200
"""Rows deleted per write transaction while pruning: commits wait at most for one batch."""
VACUUM_BATCH = 256
"""Free pages given back to the file system per write transaction."""
VACUUM_FREE_FRACTION = 0.25
"""The share of a file that may stay free after pruning (new revisions reuse it first)."""

_CURRENT = "SELECT seq, value, delta FROM revisions WHERE id = ? ORDER BY seq DESC LIMIT 1"
_AT = "SELECT seq, value, delta FROM revisions WHERE id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1"
# A revision stored as a delta: the whole revision before it, then every delta up to it.
_CHAIN = (
    "SELECT value FROM revisions WHERE id = ?1 AND seq <= ?2 AND seq >= (SELECT seq"
    " FROM revisions WHERE id = ?1 AND seq <= ?2 AND delta = 0 ORDER BY seq DESC LIMIT 1)"
    " ORDER BY seq"
)
_ROW = "SELECT value, principal, version FROM rows WHERE box = ? AND key = ?"
_ROWS = "SELECT key, value, principal, version FROM rows WHERE box = ? ORDER BY key LIMIT ?"
_ROW_VERSION = "SELECT version FROM rows WHERE box = ? AND key = ?"
_PUT_ROW = (
    "INSERT INTO rows (box, key, value, principal, version) VALUES (?, ?, ?, ?, 1)"
    " ON CONFLICT (box, key) DO UPDATE SET value = excluded.value,"
    " principal = excluded.principal, version = version + 1"
)
_DELETE_ROW = "DELETE FROM rows WHERE box = ? AND key = ?"
_HEAD = "SELECT coalesce(max(seq), 0) FROM commits"
_DATA_VERSION = "PRAGMA data_version"
_RECORD = "SELECT owner, acl, created_at FROM space WHERE did = ?"

_INSERT_REVISION = "INSERT INTO revisions (id, seq, value, size, delta) VALUES (?, ?, ?, ?, ?)"
_INSERT_COMMIT = "INSERT INTO commits (seq, principal, time, ids, meta) VALUES (?, ?, ?, ?, ?)"
# Keeps each document's revision as of the horizon (?1) and every later one; a delta
# needs what it applies to, so from the last revision stored whole at or before the horizon.
# (Each document's keep-from seq is found once: a max() that also tests `delta` cannot
# use the index, and per row it would make pruning quadratic in a document's chain.)
_PRUNE_REVISIONS = (
    "DELETE FROM revisions WHERE (id, seq) IN (SELECT r.id, r.seq FROM (SELECT id,"
    " max(seq) AS keep FROM revisions WHERE seq <= ?1 AND delta = 0 GROUP BY id) AS k"
    " JOIN revisions AS r ON r.id = k.id AND r.seq < k.keep LIMIT ?2)"
)
# Keeps every commit after the horizon and every commit that wrote a revision still stored
# (the outbox asks who committed a document's current revision).
_PRUNE_COMMITS = (
    "DELETE FROM commits WHERE seq IN (SELECT seq FROM commits WHERE seq < ?1"
    " AND seq NOT IN (SELECT seq FROM revisions WHERE seq < ?1) LIMIT ?2)"
)
# A deletion older than the horizon, with nothing older left, is the same as no document.
_PRUNE_DELETIONS = (
    "DELETE FROM revisions WHERE (id, seq) IN (SELECT r.id, r.seq FROM revisions AS r"
    " WHERE r.value IS NULL AND r.seq < ?1 AND NOT EXISTS (SELECT 1 FROM revisions AS o"
    " WHERE o.id = r.id AND o.seq < r.seq) LIMIT ?2) RETURNING id"
)
_HORIZON = "SELECT horizon FROM space"
# The newest seq at which the revisions after it cost more than ?2 bytes (their JSON,
# their id, and about 150 bytes each of log entry and row overhead).
_BUDGET = (
    "SELECT seq FROM (SELECT seq, sum(length(id) + coalesce(size, length(value), 0) + 150)"
    " OVER (ORDER BY seq DESC ROWS UNBOUNDED PRECEDING) AS total FROM revisions"
    " WHERE seq > ?1) WHERE total > ?2 ORDER BY seq DESC LIMIT 1"
)


class _Gone(Exception):
    """The connection's file was deleted (or replaced) by another process: drop the connection."""


class _Conn:
    """One open space: its connection, the lock serializing it, and its caches."""

    __slots__ = (
        "batch",
        "cache",
        "chains",
        "closed",
        "cur",
        "data_version",
        "db",
        "head",
        "inode",
        "lock",
        "path",
        "record",
        "space",
    )

    def __init__(
        self, db: sqlite3.Connection, space: SpaceDID, path: Path, inode: tuple[int, int]
    ) -> None:
        self.db = db
        self.space = space
        self.path = path
        self.inode = inode
        self.cur = db.cursor()  # reused: the lock serializes every use of the connection
        self.lock = threading.Lock()
        self.cache: dict[EntityId, Revision] = {}
        self.chains: dict[EntityId, int] = {}
        """Per cached document: bytes of deltas stored since its last whole revision."""
        self.record: SpaceRecord | None = None  # None: unknown, read it from the database
        self.head = -1  # -1: unknown, read it from the database
        self.data_version: int = db.execute(_DATA_VERSION).fetchone()[0]
        self.batch = 0  # commits applied inside the open write transaction, not yet durable
        self.closed = False

    def sync(self) -> None:
        """Forget cached state if another connection committed since we last looked.

        Raises :class:`_Gone` if the path no longer names the file this
        connection has open (the space was deleted, perhaps created again).
        """
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            raise _Gone from None
        if (now.st_dev, now.st_ino) != self.inode:
            raise _Gone
        version = self.cur.execute(_DATA_VERSION).fetchone()[0]
        if version != self.data_version:
            self.data_version = version
            self.cache.clear()
            self.chains.clear()
            self.record = None
            self.head = -1

    def refresh(self) -> None:
        """:meth:`sync` before a read, except inside our own open group.

        Every time: skipping it for a while let a read miss a commit another
        process had acknowledged before the read began. Inside our open group
        the write lock keeps everyone else out, and its ``BEGIN IMMEDIATE`` synced.
        """
        if not self.batch:
            self.sync()

    def space_record(self) -> SpaceRecord:
        record = self.record
        if record is None:
            row = self.cur.execute(_RECORD, (self.space,)).fetchone()
            if row is None:
                raise CorruptStorageError(self.space, str(self.path), "it holds no space record")
            owner, acl, created_at = row
            record = self.record = SpaceRecord(self.space, owner, _load_acl(acl), created_at)
        return record

    def current(self, id: EntityId) -> Revision:
        rev = self.cache.get(id)
        if rev is None:
            rev, self.chains[id] = _revision(self.cur, id, self.cur.execute(_CURRENT, (id,)))
            self.cache[id] = rev
        return rev

    def current_head(self) -> int:
        if self.head < 0:
            self.head = self.cur.execute(_HEAD).fetchone()[0]
        return self.head

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.cache.clear()
        self.cur.close()  # else an unfinished statement keeps the file open after db.close()
        self.db.close()


def _row(conn: _Conn, w: PreparedWrite, seq: int) -> tuple[str, int, str | None, int, int, int]:
    """The revision row for ``w``: ``(id, seq, value, size, delta)``, then the document's chain.

    A delta is stored if it applies to the revision that is current now and the
    deltas since the last whole revision stay smaller than the document: a read
    that is not cached replays at most about twice the document's size, and the
    whole value is encoded and written once per that many bytes of change.
    """
    delta = w.delta
    if delta is None and w.text is None:  # w.deleted, without the property's call
        return (w.id, seq, None, 0, 0, 0)
    if delta is not None and conn.cache.get(w.id) is w.base:
        previous = conn.chains.get(w.id)
        if previous is not None and previous + len(delta) <= w.size:
            return (w.id, seq, delta, len(delta), 1, previous + len(delta))
    text = w.full_text()
    return (w.id, seq, text, len(text), 0, 0)


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _revision(cur: sqlite3.Cursor, id: EntityId, found: sqlite3.Cursor) -> tuple[Revision, int]:
    """The revision the ``_CURRENT``/``_AT`` query ``found``, and the bytes of deltas it took."""
    row = found.fetchone()
    if row is None:
        return MISSING, 0
    seq, text, delta = row
    if text is None:
        return Revision(None, seq, True), 0
    if not delta:
        return Revision(loads(text), seq, size=_utf8_size(text)), 0
    base, *deltas = (t for (t,) in cur.execute(_CHAIN, (id, seq)).fetchall())
    value = replay(base, deltas)
    return Revision(value, seq, size=json_size(value)), sum(len(t) for t in deltas)


@functools.lru_cache(maxsize=4096)
def _one_id_text(id: EntityId) -> str:
    """The log's JSON list for a commit of one document, which is written again and again."""
    return dumps([id])


def _rollback_to(db: sqlite3.Connection, savepoint: str) -> None:
    """Undo a savepoint's work, keeping the transaction around it (and not masking the error)."""
    try:
        db.execute(f"ROLLBACK TO {savepoint}")
        db.execute(f"RELEASE {savepoint}")
    except sqlite3.Error:
        log.exception("rollback to savepoint %s failed", savepoint)


class SQLiteBackend:
    """Spaces as SQLite files ``did_key_<z6Mk…>.sqlite`` in one directory.

    ``synchronous="NORMAL"`` (the default) survives a crash of the process; a
    power loss may lose the last commits. ``"FULL"`` syncs every commit to
    disk. At most ``max_open`` files are open at once; the least recently used
    idle one is closed when another must be opened.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        max_open: int = 64,
        busy_timeout_ms: int = 5000,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise StorageError(f"synchronous must be NORMAL or FULL, not {synchronous!r}.")
        self.directory = Path(directory)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise os_error(error, str(self.directory), "create the storage directory") from None
        self.synchronous = synchronous
        self.max_open = max(1, max_open)
        self.busy_timeout_ms = busy_timeout_ms
        self._conns: OrderedDict[SpaceDID, _Conn] = OrderedDict()
        self._lock = threading.Lock()  # guards _conns; never taken while holding a _Conn.lock
        self._closed = False
        self._leases: SQLiteLeases | None = None

    batches = True
    """``apply(defer=True)`` keeps the write transaction open so commits share one ``COMMIT``."""

    def __repr__(self) -> str:
        return f"SQLiteBackend({str(self.directory)!r}, synchronous={self.synchronous!r})"

    # --- files and connections ----------------------------------------------------

    def path(self, space: SpaceDID) -> Path:
        """The file holding ``space``. The DID must be valid (so no '/' or '..')."""
        return self.directory / (space.replace(":", "_") + SUFFIX)

    def _acquire(self, space: SpaceDID) -> _Conn:
        """The space's connection with its lock held; the caller releases it."""
        while True:
            with self._lock:
                if self._closed:
                    raise closed_error(self.directory)
                conn = self._conns.get(space)
                if conn is not None and conn.closed:  # its file was deleted: look again
                    del self._conns[space]
                    conn = None
                if conn is None:
                    conn = self._open(space)
                    self._conns[space] = conn
                else:
                    self._conns.move_to_end(space)
                if len(self._conns) > self.max_open:  # also when all others were busy before
                    self._evict(keep=space)
            conn.lock.acquire()
            if not conn.closed:
                return conn
            conn.lock.release()  # evicted or deleted meanwhile: look again

    def _with(self, space: SpaceDID, operation: Callable[..., T], *args: Any) -> T:
        """Run ``operation(conn, *args)`` on the space's connection (lock held), with
        SQLite errors explained.

        If the connection's file turns out to be gone (another process deleted
        the space), the connection is dropped and the operation runs again on
        whatever the path holds now: a space created since, or nothing
        (:class:`SpaceNotFoundError`).
        """
        for _ in range(3):
            conn = self._acquire(space)
            try:
                return operation(conn, *args)
            except _Gone:
                if not conn.batch:
                    rollback(conn.db)
                conn.close()
            except sqlite3.Error as error:
                raise sqlite_error(error, space, conn.path) from error
            except OSError as error:
                raise os_error(error, str(conn.path), "use the space's file") from error
            finally:
                conn.lock.release()
        raise SpaceNotFoundError(space)

    def _evict(self, keep: SpaceDID) -> None:
        """Close least recently used idle connections while more than max_open are open."""
        for other, old in list(self._conns.items()):
            if len(self._conns) <= self.max_open:
                break
            if other != keep and not old.batch and old.lock.acquire(blocking=False):
                try:
                    old.close()
                    del self._conns[other]
                finally:
                    old.lock.release()

    def _open(self, space: SpaceDID) -> _Conn:
        # The DID is checked before it becomes a file name, so no crafted name can
        # point outside the directory.
        if not is_did(space):
            raise SpaceNotFoundError(space)
        path = self.path(space)
        try:
            before = os.stat(path)
        except FileNotFoundError:
            raise SpaceNotFoundError(space) from None
        except OSError as error:
            raise os_error(error, str(path), "open the space's file") from None
        if not stat.S_ISREG(before.st_mode):
            raise CorruptStorageError(space, str(path), "it is not a regular file")
        if before.st_size == 0:
            raise CorruptStorageError(
                space, str(path), "it is empty (0 bytes), so whatever it held is lost"
            )
        try:
            db = sqlite3.connect(
                path.absolute().as_uri() + "?mode=rw",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=self.busy_timeout_ms / 1000,
            )
        except sqlite3.Error as error:
            raise sqlite_error(error, space, path) from None
        try:
            self._check_file(db, space, path)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {self.synchronous}")
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            db.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
            after = os.stat(path)
            if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
                raise SpaceNotFoundError(space)  # replaced while opening; the caller looks again
            return _Conn(db, space, path, (before.st_dev, before.st_ino))
        except sqlite3.Error as error:
            db.close()
            raise sqlite_error(error, space, path) from None
        except FileNotFoundError:
            db.close()
            raise SpaceNotFoundError(space) from None
        except BaseException:
            db.close()
            raise

    def _check_file(self, db: sqlite3.Connection, space: SpaceDID, path: Path) -> None:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        if app_id == APPLICATION_ID:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageVersionError(str(path), version, SCHEMA_VERSION)
            row = db.execute("SELECT did FROM space").fetchone()
            if row is None or row[0] != space:
                held = "no space" if row is None else f"space {row[0]}"
                raise CorruptStorageError(space, str(path), f"it holds {held}")
            if version < SCHEMA_VERSION:
                _migrate(db, path, version)
            if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                _enable_incremental_vacuum(db, path)
            return
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id != 0 or tables:
            raise CorruptStorageError(space, str(path), "it is an SQLite database of another kind")
        raise CorruptStorageError(space, str(path), "it is an SQLite database with no space in it")

    def lease_records(self) -> SQLiteLeases:
        """The directory's leases (``leases.sqlite``), opened on first use."""
        with self._lock:
            if self._closed:
                raise closed_error(self.directory)
            if self._leases is None:
                from charmspace.storage.backends.sqlite_leases import SQLiteLeases

                self._leases = SQLiteLeases(self.directory)
            return self._leases

    # --- spaces -------------------------------------------------------------------

    def create_space(
        self, space: SpaceDID, owner: DID, acl: Mapping[str, Capability], created_at: float
    ) -> SpaceRecord:
        parse_did(space)
        with self._lock:
            if self._closed:
                raise closed_error(self.directory)
        path = self.path(space)
        if self._exists(space):
            raise SpaceExistsError(space)
        new = self.directory / f".{path.name}.{secrets.token_hex(8)}.new"
        try:
            self._write_new(new, space, owner, acl, created_at)
            # link(), unlike rename(), never replaces: of two processes creating the
            # same space, one wins and the other finds the file there.
            os.link(new, path)
        except FileExistsError:
            self._exists(space)  # a damaged file there is reported as such
            raise SpaceExistsError(space) from None
        except sqlite3.Error as error:
            raise sqlite_error(error, space, new, creating=True) from None
        except OSError as error:
            raise os_error(error, str(path), "create the space's file") from None
        finally:
            _remove_quietly(new)
        if self.synchronous == "FULL":
            _fsync_directory(self.directory)
        return SpaceRecord(space, owner, dict(acl), created_at)

    def _exists(self, space: SpaceDID) -> bool:
        """Whether the space's file holds a space; raises if it holds something damaged."""
        try:
            self._with(space, lambda conn: conn.sync())
        except SpaceNotFoundError:
            return False
        return True

    def _write_new(
        self,
        new: Path,
        space: SpaceDID,
        owner: DID,
        acl: Mapping[str, Capability],
        created_at: float,
    ) -> None:
        """Write a complete space into ``new``, a file nobody else knows of yet."""
        create_private(new)
        db = sqlite3.connect(new, isolation_level=None)
        try:
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes before the first table
            db.execute("PRAGMA journal_mode = WAL")  # kept in the file
            db.execute(f"PRAGMA synchronous = {self.synchronous}")
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(
                "INSERT INTO space (did, owner, acl, created_at) VALUES (?, ?, ?, ?)",
                (space, owner, _dump_acl(acl), created_at),
            )
            db.execute("COMMIT")
        except BaseException:
            rollback(db)
            raise
        finally:
            db.close()  # the last connection: checkpoints the WAL into the file

    def load_space(self, space: SpaceDID) -> SpaceRecord | None:
        def record(conn: _Conn) -> SpaceRecord:
            conn.refresh()
            return conn.space_record()

        try:
            return self._with(space, record)
        except SpaceNotFoundError:
            return None

    def save_acl(
        self, space: SpaceDID, update: Callable[[SpaceRecord], Mapping[str, Capability]]
    ) -> SpaceRecord:
        def save(conn: _Conn) -> SpaceRecord:
            db = conn.db
            db.execute("BEGIN IMMEDIATE")
            try:
                conn.sync()
                current = conn.space_record()
                acl = dict(update(current))
                db.execute("UPDATE space SET acl = ? WHERE did = ?", (_dump_acl(acl), space))
                db.execute("COMMIT")
            except BaseException:
                rollback(db)
                raise
            conn.record = SpaceRecord(space, current.owner, acl, current.created_at)
            return conn.record

        return self._with(space, save)

    def delete_space(self, space: SpaceDID, check: Check) -> None:
        """Unlink the space's files while holding its write lock.

        Holding the lock orders the deletion after any commit in flight in
        another process; a commit that waits for the lock finds the file gone
        (see :meth:`_Conn.sync`) instead of writing into the unlinked file.
        """

        def delete(conn: _Conn) -> None:
            db = conn.db
            db.execute("BEGIN IMMEDIATE")
            try:
                conn.sync()
                check(conn.space_record())
                for suffix in ("", "-wal", "-shm"):
                    Path(str(conn.path) + suffix).unlink(missing_ok=True)
            finally:
                rollback(db)
            # SQLite sees the file has moved and neither checkpoints nor deletes
            # the WAL by name, which could be a new space's by now.
            conn.close()

        self._with(space, delete)

    def list_spaces(self) -> list[SpaceDID]:
        spaces = []
        for path in self.directory.glob("did_key_*" + SUFFIX):
            space = path.name[: -len(SUFFIX)].replace("_", ":")
            if is_did(space):
                spaces.append(space)
        return sorted(spaces)

    # --- documents ----------------------------------------------------------------

    def read(
        self, space: SpaceDID, id: EntityId, at: int | None = None, check: Check | None = None
    ) -> Revision:
        """The document, read under the same lock and freshness as the record ``check`` sees."""

        for _ in range(3):  # as _with, spelled out: this is the hottest path there is
            conn = self._acquire(space)
            try:
                if not conn.batch:  # conn.refresh(), inlined
                    conn.sync()
                if check is not None:
                    check(conn.record or conn.space_record())
                if at is None:
                    rev = conn.cache.get(id)
                    return rev if rev is not None else conn.current(id)
                horizon = conn.cur.execute(_HORIZON).fetchone()[0]
                if at < horizon:
                    raise HistoryPrunedError(space, at, horizon)
                return _revision(conn.cur, id, conn.cur.execute(_AT, (id, at)))[0]
            except _Gone:
                if not conn.batch:
                    rollback(conn.db)
                conn.close()
            except sqlite3.Error as error:
                raise sqlite_error(error, space, conn.path) from error
            except OSError as error:
                raise os_error(error, str(conn.path), "use the space's file") from error
            finally:
                conn.lock.release()
        raise SpaceNotFoundError(space)

    def cached(self, space: SpaceDID, id: EntityId) -> Revision | None:
        conn = self._conns.get(space)
        return None if conn is None else conn.cache.get(id)

    def row(self, space: SpaceDID, box: str, key: str, check: Check | None = None) -> Row | None:
        def row_(conn: _Conn) -> Row | None:
            conn.refresh()
            if check is not None:
                check(conn.record or conn.space_record())
            found = conn.cur.execute(_ROW, (box, key)).fetchone()
            return None if found is None else Row(loads(found[0]), found[1], found[2])

        return self._with(space, row_)

    def rows(
        self, space: SpaceDID, box: str, check: Check | None = None, limit: int = -1
    ) -> list[tuple[str, Row]]:
        def rows_(conn: _Conn) -> list[tuple[str, Row]]:
            conn.refresh()
            if check is not None:
                check(conn.record or conn.space_record())
            found = conn.cur.execute(_ROWS, (box, limit)).fetchall()
            return [(key, Row(loads(value), who, version)) for key, value, who, version in found]

        return self._with(space, rows_)

    def apply(self, commit: PreparedCommit, *, check: Check, defer: bool = False) -> int:
        """Validate and write ``commit``; with ``defer`` leave it for :meth:`flush` to make durable.

        Deferred commits share one SQLite write transaction (group commit): each
        still gets its own seq and is validated against everything before it, but
        the ``COMMIT`` — and its WAL work — is paid once for the group. A
        commit that is not deferred makes the whole group durable with it.
        ``check`` is called with the space's record inside the write lock, where
        no other process can change it.
        """
        return self._with(commit.space, self._apply, commit, check, defer)

    def _apply(self, conn: _Conn, commit: PreparedCommit, check: Check, defer: bool) -> int:
        cur = conn.cur
        writes = commit.writes
        began = not conn.batch
        if began:
            cur.execute("BEGIN IMMEDIATE")
            try:
                conn.sync()  # inside the write lock: nobody else can commit now
            except BaseException:
                rollback(conn.db)
                raise
        try:
            check(conn.record or conn.space_record())
            for id, seen in commit.reads.items():
                actual = conn.current(id).seq
                if actual != seen:
                    raise ConflictError(commit.space, id, seen, actual)
            for (box, key), seen in commit.row_reads.items():
                found = cur.execute(_ROW_VERSION, (box, key)).fetchone()
                actual = 0 if found is None else found[0]
                if actual != seen:
                    raise ConflictError(commit.space, f"row {box} {key}", seen, actual)
        except BaseException:
            if began:  # nothing of ours is pending in this write transaction
                rollback(conn.db)
            elif not defer:
                self._commit_batch(conn)
            raise
        if commit.rows:
            try:
                for r in commit.rows:
                    if r.text is None:
                        cur.execute(_DELETE_ROW, (r.box, r.key))
                    else:
                        cur.execute(_PUT_ROW, (r.box, r.key, r.text, commit.principal))
            except BaseException:
                self._abandon_batch(conn)
                raise
            if not writes:
                conn.batch += 1
                if not defer:
                    self._commit_batch(conn)
                return 0
        rows: tuple[tuple[str, int, str | None, int, int, int], ...]
        try:
            head = conn.head
            seq = (head if head >= 0 else conn.current_head()) + 1
            if len(writes) == 1:  # the usual commit: no list of rows to build
                w = writes[0]
                row = _row(conn, w, seq)
                cur.execute(_INSERT_REVISION, row[:5])
                ids = _one_id_text(w.id)
                rows = (row,)
            else:
                rows = tuple([_row(conn, w, seq) for w in writes])
                cur.executemany(_INSERT_REVISION, [row[:5] for row in rows])
                ids = dumps([w.id for w in writes])
            cur.execute(_INSERT_COMMIT, (seq, commit.principal, commit.time, ids, commit.meta_text))
        except BaseException:
            self._abandon_batch(conn)
            raise
        conn.head = seq
        cache = conn.cache
        chains = conn.chains
        for w, row in zip(writes, rows, strict=True):
            if row[2] is None:  # deleted
                cache[w.id] = Revision(None, seq, True)
            else:
                cache[w.id] = Revision(w.value, seq, size=w.size)
            chains[w.id] = row[5]
        conn.batch += 1
        if not defer:
            self._commit_batch(conn)
        return seq

    def flush(self, space: SpaceDID) -> None:
        """Make the deferred commits of ``space`` durable (on failure: raise, having lost them)."""
        with self._lock:
            conn = self._conns.get(space)
        if conn is None:
            return
        with conn.lock:
            if conn.batch and not conn.closed:
                try:
                    self._commit_batch(conn)
                except sqlite3.Error as error:
                    raise sqlite_error(error, space, conn.path) from error

    def _commit_batch(self, conn: _Conn) -> None:
        try:
            conn.cur.execute("COMMIT")
        except BaseException:
            self._abandon_batch(conn)
            raise
        conn.batch = 0

    def _abandon_batch(self, conn: _Conn) -> None:
        """Roll the write transaction back and forget what the cache learned from it."""
        rollback(conn.db)
        conn.batch = 0
        conn.cache.clear()
        conn.chains.clear()
        conn.head = -1

    def head(self, space: SpaceDID) -> int:
        def head_(conn: _Conn) -> int:
            conn.sync()
            return conn.current_head()

        return self._with(space, head_)

    def log(self, space: SpaceDID, since: int, limit: int) -> list[LogEntry]:
        rows = self._with(
            space,
            lambda conn: conn.db.execute(
                "SELECT seq, principal, time, ids, meta FROM commits"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (since, limit),
            ).fetchall(),
        )
        return [
            LogEntry(seq, principal, time, tuple(json.loads(ids)), loads(meta))  # type: ignore[arg-type]
            for seq, principal, time, ids, meta in rows
        ]

    def prune(self, space: SpaceDID, before: int, check: Check) -> int:
        """Move the horizon to ``before`` and delete what it leaves behind, in small batches.

        Each batch is one write transaction (the horizon is raised in the
        first), so commits wait for one batch at most, and a crash between
        batches leaves a consistent file with some pruning still to do. A batch
        that finds a group of commits in flight joins the group's transaction
        instead of waiting for a gap between groups, which under steady load
        never comes: it becomes durable with the group, or is rolled back with
        it (and done again later). Pruning never changes a current revision,
        so the cache of current revisions stays true. Then the freed pages are
        given back to the file system, a few at a time.
        """
        removed = 0
        first = True
        while True:
            batch = functools.partial(self._prune_batch, before=before, check=check, first=first)
            done = self._with(space, batch)
            first = False
            removed += done[0]
            if done == (0, 0):
                break
        while self._with(space, _vacuum_step):
            pass
        return removed

    def _prune_batch(
        self, conn: _Conn, *, before: int, check: Check, first: bool
    ) -> tuple[int, int]:
        db = conn.db
        joined = conn.batch > 0  # the write lock is ours already, inside the group
        # A savepoint inside the group: a failed batch is undone without the group's commits.
        db.execute("SAVEPOINT prune" if joined else "BEGIN IMMEDIATE")
        try:
            if not joined:
                conn.sync()
            check(conn.space_record())
            horizon = db.execute(_HORIZON).fetchone()[0]
            before = max(horizon, min(before, conn.current_head()))
            if first and before > horizon:
                db.execute("UPDATE space SET horizon = ?", (before,))
            revisions: int = db.execute(_PRUNE_REVISIONS, (before, PRUNE_BATCH)).rowcount
            commits = 0
            if revisions < PRUNE_BATCH:
                gone = db.execute(_PRUNE_DELETIONS, (before, PRUNE_BATCH)).fetchall()
                for (id,) in gone:  # now read as never written (seq 0), like the database
                    conn.cache.pop(id, None)
                revisions += len(gone)
            if revisions < PRUNE_BATCH:
                commits = db.execute(_PRUNE_COMMITS, (before, PRUNE_BATCH)).rowcount
            db.execute("RELEASE prune" if joined else "COMMIT")
        except BaseException:
            if joined:
                _rollback_to(db, "prune")
            else:
                rollback(db)
            raise
        return revisions, commits

    def horizon(self, space: SpaceDID) -> int:
        return self._with(space, lambda conn: int(conn.cur.execute(_HORIZON).fetchone()[0]))

    def plan(
        self, space: SpaceDID, retention: Retention, now: float, *, budget: bool = True
    ) -> tuple[int, int]:
        """``(horizon, wanted)``: the space's horizon now, and where ``retention`` would put it.

        Computed on a connection of its own, outside the space's lock: it reads
        the whole history, and commits should not wait for that.
        """
        path = self.path(space)
        try:
            db = sqlite3.connect(
                path.absolute().as_uri() + "?mode=ro",
                uri=True,
                isolation_level=None,
                timeout=self.busy_timeout_ms / 1000,
            )
        except sqlite3.Error as error:
            raise sqlite_error(error, space, path) from None
        try:
            horizon = db.execute(_HORIZON).fetchone()[0]
            head = db.execute(_HEAD).fetchone()[0]
            wanted = max(0, head - retention.keep_commits)
            recent = db.execute(
                "SELECT min(seq) FROM commits WHERE seq > ? AND time >= ?",
                (horizon, now - retention.keep_seconds),
            ).fetchone()[0]
            wanted = min(wanted, head if recent is None else recent - 1)
            over = None
            if budget:  # down to three quarters: the next check can wait for a quarter more
                target = retention.max_history_bytes * 3 // 4
                over = db.execute(_BUDGET, (horizon, target)).fetchone()
            if over is not None:
                wanted = max(wanted, over[0])
            return horizon, min(max(wanted, horizon), head)
        except sqlite3.Error as error:
            raise sqlite_error(error, space, path) from None
        finally:
            db.close()

    def retention(self, space: SpaceDID) -> Retention | None:
        def get(conn: _Conn) -> Retention | None:
            text = conn.cur.execute("SELECT retention FROM space").fetchone()[0]
            return None if text is None else Retention.from_json(json.loads(text))

        return self._with(space, get)

    def set_retention(self, space: SpaceDID, retention: Retention | None, check: Check) -> None:
        def save(conn: _Conn) -> None:
            if conn.batch:
                self._commit_batch(conn)
            db = conn.db
            db.execute("BEGIN IMMEDIATE")
            try:
                conn.sync()
                check(conn.space_record())
                text = None if retention is None else dumps(retention.to_json())
                db.execute("UPDATE space SET retention = ?", (text,))
                db.execute("COMMIT")
            except BaseException:
                rollback(db)
                raise

        self._with(space, save)

    def close(self) -> None:
        """Close every open file; later calls raise. Calling it again does nothing."""
        with self._lock:
            self._closed = True
            if self._leases is not None:
                self._leases.close()
            conns = list(self._conns.values())
            self._conns.clear()
            for conn in conns:
                with conn.lock:
                    if conn.batch:  # deferred commits are made durable, never dropped
                        try:
                            self._commit_batch(conn)
                        except sqlite3.Error:
                            log.exception("could not commit deferred commits while closing")
                    conn.close()


def _remove_quietly(new: Path) -> None:
    """Remove a temporary space and its SQLite side files; one left behind is only clutter."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        leftover = Path(str(new) + suffix)
        try:
            leftover.unlink(missing_ok=True)
        except OSError as error:  # a read-only file system refuses even a missing file
            if leftover.exists():
                log.warning("could not remove %s: %s", leftover, error.strerror)


def _fsync_directory(directory: Path) -> None:
    """Make a new file's name in ``directory`` survive power loss (where the OS allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _vacuum_step(conn: _Conn) -> bool:
    """Give up to VACUUM_BATCH free pages back to the file system; False once done.

    Done means at most VACUUM_FREE_FRACTION of the file is free: free pages are
    where the next revisions go, and vacuuming them only to grow the file again
    would move live pages (and write them to the WAL) for nothing. Inside a
    group of commits it joins their transaction, like a prune batch. Outside
    one, the last step also truncates the WAL, which would otherwise keep its
    peak size until the next checkpoint.
    """
    cur = conn.cur
    free = cur.execute("PRAGMA freelist_count").fetchone()[0]
    if free and free > cur.execute("PRAGMA page_count").fetchone()[0] * VACUUM_FREE_FRACTION:
        if not conn.batch:
            cur.execute(f"PRAGMA incremental_vacuum({VACUUM_BATCH})").fetchall()
            return True
        cur.execute("SAVEPOINT vacuum")
        try:
            cur.execute(f"PRAGMA incremental_vacuum({VACUUM_BATCH})").fetchall()
            cur.execute("RELEASE vacuum")
        except BaseException:
            _rollback_to(conn.db, "vacuum")
            raise
        return True
    if not conn.batch:
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return False


def _migrate(db: sqlite3.Connection, path: Path, version: int) -> None:
    """Bring a file written by an earlier release to :data:`SCHEMA_VERSION`, keeping a backup.

    The backup (``<file>.schema<version>.bak``, a consistent copy made with
    SQLite's backup API) is complete before the file changes; the migration is
    one transaction, so a crash leaves the file as it was or fully migrated.
    Of two processes opening the file at once, the second finds it migrated.
    """
    backup = path.with_name(f"{path.name}.schema{version}.bak")
    if not backup.exists():  # an interrupted earlier attempt already kept the original
        partial = backup.with_name(backup.name + ".partial")
        create_private(partial)
        copy = sqlite3.connect(partial)
        try:
            db.backup(copy)
        finally:
            copy.close()
        os.replace(partial, backup)
        log.info("backed up %s to %s before migrating it", path, backup)
    db.execute("BEGIN IMMEDIATE")
    try:
        found = db.execute("PRAGMA user_version").fetchone()[0]
        for step in range(found, SCHEMA_VERSION):
            for statement in _MIGRATIONS[step]:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise
    log.info("migrated %s from format %d to %d", path, found, SCHEMA_VERSION)


def _enable_incremental_vacuum(db: sqlite3.Connection, path: Path) -> None:
    """Rebuild a file so pruning can shrink it (``auto_vacuum`` only changes with a VACUUM).

    Safe to interrupt: VACUUM is atomic, and the next open tries again.
    """
    db.execute("PRAGMA auto_vacuum = INCREMENTAL")
    db.execute("VACUUM")
    log.info("rebuilt %s so that pruned history gives its space back", path)


def _dump_acl(acl: Mapping[str, Capability]) -> str:
    return dumps({subject: Capability(cap).name for subject, cap in acl.items()})


def _load_acl(text: str) -> dict[str, Capability]:
    return {subject: Capability[name] for subject, name in json.loads(text).items()}
