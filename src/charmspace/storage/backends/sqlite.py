"""The SQLite backend: one database file per space, WAL, ``BEGIN IMMEDIATE`` commits.

Why a file per space: each space has its own sequence, so commits in different
spaces never wait for each other's write lock, and deleting a space is deleting
a file. History comes for free from the schema: ``revisions`` is append-only
and a document's current value is its revision with the highest seq.

Why a cache of current revisions: the runtime reads far more than it writes.
Each open space keeps ``id → Revision`` in memory; this backend's own commits
update it after ``COMMIT`` succeeds, and ``PRAGMA data_version`` — which changes
exactly when *another* connection (another process, or another
:class:`SQLiteBackend` on the same directory) has committed — throws it away.
Every read asks it first (except inside our own open group, whose write lock
keeps everyone else out), so a read sees every commit acknowledged before it
began, wherever it was made. Point-in-time reads go to the database.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from charmspace.errors import (
    ConflictError,
    CorruptStorageError,
    SpaceExistsError,
    SpaceNotFoundError,
    StorageError,
)
from charmspace.identity import is_did, parse_did
from charmspace.storage.model import (
    MISSING,
    Capability,
    LogEntry,
    PreparedCommit,
    Revision,
    SpaceRecord,
)
from charmspace.types import DID, EntityId, SpaceDID
from charmspace.values import dumps, loads

log = logging.getLogger(__name__)

APPLICATION_ID = 0x63686D73  # "chms": marks a file as a charmspace space
SCHEMA_VERSION = 1
SUFFIX = ".sqlite"

_SCHEMA = (
    "CREATE TABLE space (did TEXT PRIMARY KEY, owner TEXT NOT NULL, acl TEXT NOT NULL,"
    " created_at REAL NOT NULL)",
    # value NULL: the document was deleted at this seq.
    "CREATE TABLE revisions (id TEXT NOT NULL, seq INTEGER NOT NULL, value TEXT,"
    " PRIMARY KEY (id, seq)) WITHOUT ROWID",
    "CREATE TABLE commits (seq INTEGER PRIMARY KEY, principal TEXT NOT NULL,"
    " time REAL NOT NULL, ids TEXT NOT NULL, meta TEXT NOT NULL)",
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

_CURRENT = "SELECT seq, value FROM revisions WHERE id = ? ORDER BY seq DESC LIMIT 1"
_AT = "SELECT seq, value FROM revisions WHERE id = ? AND seq <= ? ORDER BY seq DESC LIMIT 1"
_HEAD = "SELECT coalesce(max(seq), 0) FROM commits"
_DATA_VERSION = "PRAGMA data_version"

_INSERT_REVISION = "INSERT INTO revisions (id, seq, value) VALUES (?, ?, ?)"
_INSERT_COMMIT = "INSERT INTO commits (seq, principal, time, ids, meta) VALUES (?, ?, ?, ?, ?)"
_PRUNE = (
    "DELETE FROM revisions WHERE seq < ? AND seq < "
    "(SELECT max(r.seq) FROM revisions AS r WHERE r.id = revisions.id)"
)


class _Conn:
    """One open space: its connection, the lock serializing it, and its caches."""

    __slots__ = (
        "batch",
        "cache",
        "closed",
        "cur",
        "data_version",
        "db",
        "head",
        "lock",
    )

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.cur = db.cursor()  # reused: the lock serializes every use of the connection
        self.lock = threading.Lock()
        self.cache: dict[EntityId, Revision] = {}
        self.head = -1  # -1: unknown, read it from the database
        self.data_version: int = db.execute(_DATA_VERSION).fetchone()[0]
        self.batch = 0  # commits applied inside the open write transaction, not yet durable
        self.closed = False

    def sync(self) -> None:
        """Forget cached state if another connection committed since we last looked."""
        version = self.cur.execute(_DATA_VERSION).fetchone()[0]
        if version != self.data_version:
            self.data_version = version
            self.cache.clear()
            self.head = -1

    def current(self, id: EntityId) -> Revision:
        rev = self.cache.get(id)
        if rev is None:
            rev = self.cache[id] = _revision(self.cur.execute(_CURRENT, (id,)).fetchone())
        return rev

    def current_head(self) -> int:
        if self.head < 0:
            self.head = self.cur.execute(_HEAD).fetchone()[0]
        return self.head

    def close(self) -> None:
        self.closed = True
        self.cache.clear()
        self.cur.close()  # else an unfinished statement keeps the file open after db.close()
        self.db.close()


def _revision(row: tuple[int, str | None] | None) -> Revision:
    if row is None:
        return MISSING
    seq, text = row
    return Revision(None, seq, True) if text is None else Revision(loads(text), seq)


@functools.lru_cache(maxsize=4096)
def _one_id_text(id: EntityId) -> str:
    """The log's JSON list for a commit of one document, which is written again and again."""
    return dumps([id])


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back without masking the error that made us roll back."""
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("rollback failed")


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
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.synchronous = synchronous
        self.max_open = max(1, max_open)
        self.busy_timeout_ms = busy_timeout_ms
        self._conns: OrderedDict[SpaceDID, _Conn] = OrderedDict()
        self._lock = threading.Lock()  # guards _conns; never taken while holding a _Conn.lock
        self._closed = False

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
                    raise StorageError(f"The storage in {self.directory} is closed.")
                conn = self._conns.get(space)
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

    def _add(self, space: SpaceDID, conn: _Conn) -> None:
        self._conns[space] = conn
        self._evict(keep=space)

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

    def _open(self, space: SpaceDID, *, create: bool = False) -> _Conn:
        # The DID is checked before it becomes a file name, so no crafted name can
        # point outside the directory.
        if not is_did(space):
            raise SpaceNotFoundError(space)
        path = self.path(space)
        if create:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        elif not path.is_file():
            raise SpaceNotFoundError(space)
        try:
            db = sqlite3.connect(
                path.absolute().as_uri() + "?mode=rw",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=self.busy_timeout_ms / 1000,
            )
        except sqlite3.OperationalError:
            raise SpaceNotFoundError(space) from None  # removed since we looked
        try:
            self._check_file(db, space, path, create)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {self.synchronous}")
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            return _Conn(db)
        except sqlite3.DatabaseError as error:
            db.close()
            raise CorruptStorageError(space, str(path), str(error)) from None
        except BaseException:
            db.close()
            raise

    def _check_file(
        self, db: sqlite3.Connection, space: SpaceDID, path: Path, create: bool
    ) -> None:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        if app_id == APPLICATION_ID:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CorruptStorageError(
                    space, str(path), f"it has schema {version}, newer than this charmspace reads"
                )
            row = db.execute("SELECT did FROM space").fetchone()
            if row is None or row[0] != space:
                held = "no space" if row is None else f"space {row[0]}"
                raise CorruptStorageError(space, str(path), f"it holds {held}")
            return
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id != 0 or tables:
            raise CorruptStorageError(space, str(path), "it is an SQLite database of another kind")
        if not create:
            raise SpaceNotFoundError(space)  # an empty file left by an interrupted create

    # --- spaces -------------------------------------------------------------------

    def create_space(
        self, space: SpaceDID, owner: DID, acl: Mapping[str, Capability], created_at: float
    ) -> SpaceRecord:
        parse_did(space)
        record = SpaceRecord(space, owner, dict(acl), created_at)
        with self._lock:
            if self._closed:
                raise StorageError(f"The storage in {self.directory} is closed.")
            if space in self._conns:
                raise SpaceExistsError(space)
            conn = self._open(space, create=True)
            db = conn.db
            try:
                # Another process may be creating the same space: the write lock decides.
                db.execute("BEGIN IMMEDIATE")
                if db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
                    db.execute("ROLLBACK")
                    self._add(space, conn)
                    raise SpaceExistsError(space)
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO space (did, owner, acl, created_at) VALUES (?, ?, ?, ?)",
                    (space, owner, _dump_acl(acl), created_at),
                )
                db.execute("COMMIT")
            except SpaceExistsError:
                raise
            except BaseException:
                _rollback(db)
                conn.close()
                raise
            conn.head = 0
            self._add(space, conn)
        return record

    def load_space(self, space: SpaceDID) -> SpaceRecord | None:
        try:
            conn = self._acquire(space)
        except SpaceNotFoundError:
            return None
        try:
            return self._record(conn, space)
        finally:
            conn.lock.release()

    def _record(self, conn: _Conn, space: SpaceDID) -> SpaceRecord:
        owner, acl, created_at = conn.db.execute(
            "SELECT owner, acl, created_at FROM space WHERE did = ?", (space,)
        ).fetchone()
        return SpaceRecord(space, owner, _load_acl(acl), created_at)

    def save_acl(self, space: SpaceDID, acl: Mapping[str, Capability]) -> SpaceRecord:
        conn = self._acquire(space)
        db = conn.db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("UPDATE space SET acl = ? WHERE did = ?", (_dump_acl(acl), space))
                record = self._record(conn, space)
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
            return record
        finally:
            conn.lock.release()

    def delete_space(self, space: SpaceDID) -> None:
        if not is_did(space):
            raise SpaceNotFoundError(space)
        path = self.path(space)
        with self._lock:
            conn = self._conns.pop(space, None)
            if conn is None and not path.is_file():
                raise SpaceNotFoundError(space)
            if conn is not None:
                with conn.lock:
                    conn.close()
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)

    def list_spaces(self) -> list[SpaceDID]:
        spaces = []
        for path in self.directory.glob("did_key_*" + SUFFIX):
            space = path.name[: -len(SUFFIX)].replace("_", ":")
            if is_did(space):
                spaces.append(space)
        return sorted(spaces)

    # --- documents ----------------------------------------------------------------

    def read(self, space: SpaceDID, id: EntityId, at: int | None = None) -> Revision:
        conn = self._acquire(space)
        try:
            if at is None:
                # Every time (skipping it for a while let a read miss a commit acknowledged
                # before it began), except inside our open group: it holds the write lock.
                if not conn.batch:
                    conn.sync()
                return conn.current(id)
            return _revision(conn.cur.execute(_AT, (id, at)).fetchone())
        finally:
            conn.lock.release()

    def apply(self, commit: PreparedCommit, *, defer: bool = False) -> int:
        """Validate and write ``commit``; with ``defer`` leave it for :meth:`flush` to make durable.

        Deferred commits share one SQLite write transaction (group commit): each
        still gets its own seq and is validated against everything before it, but
        the ``COMMIT`` — and its WAL work — is paid once for the group. A
        commit that is not deferred makes the whole group durable with it.
        """
        conn = self._acquire(commit.space)
        cur = conn.cur
        writes = commit.writes
        try:
            began = not conn.batch
            if began:
                cur.execute("BEGIN IMMEDIATE")
                conn.sync()  # inside the write lock: nobody else can commit now
            try:
                for id, seen in commit.reads.items():
                    actual = conn.current(id).seq
                    if actual != seen:
                        raise ConflictError(commit.space, id, seen, actual)
            except BaseException:
                if began:  # nothing of ours is pending in this write transaction
                    _rollback(conn.db)
                elif not defer:
                    self._commit_batch(conn)
                raise
            try:
                seq = conn.current_head() + 1
                if len(writes) == 1:
                    w = writes[0]
                    cur.execute(_INSERT_REVISION, (w.id, seq, w.text))
                    ids = _one_id_text(w.id)
                else:
                    cur.executemany(_INSERT_REVISION, [(w.id, seq, w.text) for w in writes])
                    ids = dumps([w.id for w in writes])
                cur.execute(
                    _INSERT_COMMIT, (seq, commit.principal, commit.time, ids, commit.meta_text)
                )
            except BaseException:
                self._abandon_batch(conn)
                raise
            conn.head = seq
            cache = conn.cache
            for w in writes:
                cache[w.id] = (
                    Revision(None, seq, True) if w.text is None else Revision(w.value, seq)
                )
            conn.batch += 1
            if not defer:
                self._commit_batch(conn)
            return seq
        finally:
            conn.lock.release()

    def flush(self, space: SpaceDID) -> None:
        """Make the deferred commits of ``space`` durable (on failure: raise, having lost them)."""
        with self._lock:
            conn = self._conns.get(space)
        if conn is None:
            return
        with conn.lock:
            if conn.batch and not conn.closed:
                self._commit_batch(conn)

    def _commit_batch(self, conn: _Conn) -> None:
        try:
            conn.cur.execute("COMMIT")
        except BaseException:
            self._abandon_batch(conn)
            raise
        conn.batch = 0

    def _abandon_batch(self, conn: _Conn) -> None:
        """Roll the write transaction back and forget what the cache learned from it."""
        _rollback(conn.db)
        conn.batch = 0
        conn.cache.clear()
        conn.head = -1

    def head(self, space: SpaceDID) -> int:
        conn = self._acquire(space)
        try:
            conn.sync()
            return conn.current_head()
        finally:
            conn.lock.release()

    def log(self, space: SpaceDID, since: int, limit: int) -> list[LogEntry]:
        conn = self._acquire(space)
        try:
            rows = conn.db.execute(
                "SELECT seq, principal, time, ids, meta FROM commits"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (since, limit),
            ).fetchall()
        finally:
            conn.lock.release()
        return [
            LogEntry(seq, principal, time, tuple(json.loads(ids)), loads(meta))  # type: ignore[arg-type]
            for seq, principal, time, ids, meta in rows
        ]

    def prune(self, space: SpaceDID, before: int) -> int:
        conn = self._acquire(space)
        db = conn.db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                removed = db.execute(_PRUNE, (before,)).rowcount
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
            return removed
        finally:
            conn.lock.release()

    def close(self) -> None:
        """Close every open file; later calls raise. Calling it again does nothing."""
        with self._lock:
            self._closed = True
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


def _dump_acl(acl: Mapping[str, Capability]) -> str:
    return dumps({subject: Capability(cap).name for subject, cap in acl.items()})


def _load_acl(text: str) -> dict[str, Capability]:
    return {subject: Capability[name] for subject, name in json.loads(text).items()}
