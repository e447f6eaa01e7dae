"""The in-memory backend: the same semantics as SQLite, nothing on disk."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from charmspace.errors import (
    ConflictError,
    HistoryPrunedError,
    SpaceExistsError,
    SpaceNotFoundError,
)
from charmspace.storage.backends.base import Check
from charmspace.storage.model import (
    MISSING,
    Capability,
    LogEntry,
    PreparedCommit,
    Retention,
    Revision,
    Row,
    SpaceRecord,
)
from charmspace.types import DID, EntityId, SpaceDID


@dataclass
class _Space:
    record: SpaceRecord
    seq: int = 0
    current: dict[EntityId, Revision] = field(default_factory=dict)
    history: dict[EntityId, list[Revision]] = field(default_factory=dict)
    log: list[LogEntry] = field(default_factory=list)
    sizes: dict[int, int] = field(default_factory=dict)
    """seq → what its commit's writes cost, counted as :data:`_BUDGET` in the SQLite backend."""
    horizon: int = 0
    retention: Retention | None = None
    rows: dict[str, dict[str, Row]] = field(default_factory=dict)
    """box → key → row: kept outside the documents' history."""


class MemoryBackend:
    """Keeps every space in dictionaries guarded by one lock."""

    batches = False
    """Commits are durable (in memory) as soon as they are applied."""

    def __init__(self) -> None:
        self._spaces: dict[SpaceDID, _Space] = {}
        self._lock = threading.Lock()

    def _space(self, space: SpaceDID) -> _Space:
        try:
            return self._spaces[space]
        except KeyError:
            raise SpaceNotFoundError(space) from None

    def create_space(
        self, space: SpaceDID, owner: DID, acl: Mapping[str, Capability], created_at: float
    ) -> SpaceRecord:
        with self._lock:
            if space in self._spaces:
                raise SpaceExistsError(space)
            record = SpaceRecord(space, owner, dict(acl), created_at)
            self._spaces[space] = _Space(record)
            return record

    def load_space(self, space: SpaceDID) -> SpaceRecord | None:
        s = self._spaces.get(space)
        return s.record if s else None

    def save_acl(
        self, space: SpaceDID, update: Callable[[SpaceRecord], Mapping[str, Capability]]
    ) -> SpaceRecord:
        with self._lock:
            s = self._space(space)
            acl = update(s.record)
            s.record = SpaceRecord(space, s.record.owner, dict(acl), s.record.created_at)
            return s.record

    def delete_space(self, space: SpaceDID, check: Check) -> None:
        with self._lock:
            check(self._space(space).record)
            del self._spaces[space]

    def list_spaces(self) -> list[SpaceDID]:
        return sorted(self._spaces)

    def read(
        self, space: SpaceDID, id: EntityId, at: int | None = None, check: Check | None = None
    ) -> Revision:
        s = self._space(space)
        if check is not None:
            check(s.record)
        if at is None:
            return s.current.get(id, MISSING)
        if at < s.horizon:
            raise HistoryPrunedError(space, at, s.horizon)
        revisions = s.history.get(id)
        if not revisions:
            return MISSING
        i = bisect.bisect_right([r.seq for r in revisions], at)
        return revisions[i - 1] if i else MISSING

    def cached(self, space: SpaceDID, id: EntityId) -> Revision | None:
        s = self._spaces.get(space)
        return None if s is None else s.current.get(id)

    def row(self, space: SpaceDID, box: str, key: str, check: Check | None = None) -> Row | None:
        s = self._space(space)
        if check is not None:
            check(s.record)
        return s.rows.get(box, {}).get(key)

    def rows(
        self, space: SpaceDID, box: str, check: Check | None = None, limit: int = -1
    ) -> list[tuple[str, Row]]:
        s = self._space(space)
        if check is not None:
            check(s.record)
        found = sorted(s.rows.get(box, {}).items())
        return found if limit < 0 else found[:limit]

    def flush(self, space: SpaceDID) -> None:
        """Nothing is ever deferred here."""

    def apply(self, commit: PreparedCommit, *, check: Check, defer: bool = False) -> int:
        with self._lock:
            s = self._space(commit.space)
            check(s.record)
            current = s.current
            for id, seen in commit.reads.items():
                actual = current[id].seq if id in current else 0
                if actual != seen:
                    raise ConflictError(commit.space, id, seen, actual)
            for (box, key), seen in commit.row_reads.items():
                found = s.rows.get(box, {}).get(key)
                actual = found.version if found is not None else 0
                if actual != seen:
                    raise ConflictError(commit.space, f"row {box} {key}", seen, actual)
            for r in commit.rows:
                table = s.rows.setdefault(r.box, {})
                old = table.get(r.key)
                if r.text is None:
                    table.pop(r.key, None)
                    if not table:
                        del s.rows[r.box]
                else:
                    version = 1 if old is None else old.version + 1
                    table[r.key] = Row(r.value, commit.principal, version)
            if not commit.writes:
                return 0
            seq = s.seq + 1
            size = 0
            history = s.history
            for w in commit.writes:
                if w.deleted:
                    rev = Revision(None, seq, True)
                else:
                    rev = Revision(w.value, seq, size=w.size)
                current[w.id] = rev
                revisions = history.get(w.id)
                if revisions is None:
                    history[w.id] = [rev]
                else:
                    revisions.append(rev)  # values share what did not change
                size += len(w.id) + w.cost + 150
            s.sizes[seq] = size
            s.seq = seq
            ids = tuple([w.id for w in commit.writes])
            s.log.append(LogEntry(seq, commit.principal, commit.time, ids, commit.meta))
            return seq

    def head(self, space: SpaceDID) -> int:
        return self._space(space).seq

    def log(self, space: SpaceDID, since: int, limit: int) -> list[LogEntry]:
        entries = self._space(space).log
        i = bisect.bisect_right([e.seq for e in entries], since)
        return entries[i : i + limit]

    def prune(self, space: SpaceDID, before: int, check: Check) -> int:
        with self._lock:
            s = self._space(space)
            check(s.record)
            before = max(s.horizon, min(before, s.seq))
            s.horizon = before
            removed = 0
            stored: set[int] = set()
            for id, revisions in list(s.history.items()):
                # the revision as of the horizon, and every later one
                i = bisect.bisect_right([r.seq for r in revisions], before)
                if i > 1:
                    del revisions[: i - 1]
                    removed += i - 1
                if revisions[0].deleted and revisions[0].seq < before:
                    del revisions[0]  # a deletion before the horizon: as if never written
                    removed += 1
                    if not revisions:
                        del s.history[id]
                        del s.current[id]
                stored.update(r.seq for r in revisions if r.seq < before)
            kept = [e for e in s.log if e.seq >= before or e.seq in stored]
            for e in s.log:
                if e.seq < before and e.seq not in stored:
                    s.sizes.pop(e.seq, None)
            s.log = kept
            return removed

    def horizon(self, space: SpaceDID) -> int:
        return self._space(space).horizon

    def plan(
        self, space: SpaceDID, retention: Retention, now: float, *, budget: bool = True
    ) -> tuple[int, int]:
        with self._lock:
            s = self._space(space)
            wanted = max(0, s.seq - retention.keep_commits)
            cutoff = now - retention.keep_seconds
            total = 0
            for entry in reversed(s.log):
                if entry.seq <= s.horizon:
                    break
                if entry.time >= cutoff:
                    wanted = min(wanted, entry.seq - 1)
                total += s.sizes.get(entry.seq, 0)
                if budget and total > retention.max_history_bytes * 3 // 4:
                    wanted = max(wanted, entry.seq)
                    break
            return s.horizon, min(max(wanted, s.horizon), s.seq)

    def retention(self, space: SpaceDID) -> Retention | None:
        return self._space(space).retention

    def set_retention(self, space: SpaceDID, retention: Retention | None, check: Check) -> None:
        with self._lock:
            s = self._space(space)
            check(s.record)
            s.retention = retention

    def lease_records(self) -> None:
        """None: memory is one process's, so a lock in that process is its lease."""
        return None

    def close(self) -> None:
        """Nothing to release; the data lives as long as the object."""
