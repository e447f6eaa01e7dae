"""The interface every storage backend implements.

The :class:`~charmspace.storage.store.Storage` facade does everything that is the
same for every backend (access control, limits, notifications, ordering); a
backend only keeps documents and commits durable and validates a commit's reads
atomically with its writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from charmspace.storage.lease import LeaseRecords
from charmspace.storage.model import (
    Capability,
    LogEntry,
    PreparedCommit,
    Retention,
    Revision,
    Row,
    SpaceRecord,
)
from charmspace.types import DID, EntityId, SpaceDID

Check = Callable[[SpaceRecord], None]
"""Raises (e.g. :class:`~charmspace.errors.AuthorizationError`) unless the operation is allowed
under the space's current record. Backends call it inside their write transaction."""


class Backend(Protocol):
    """Durable documents and commit logs, one sequence per space.

    Implementations must be safe to call from several threads. ``apply`` is the
    only write path and must be atomic: it checks every ``(id, seq_seen)`` read
    against the current seq (and every row read against the row's version) and
    either raises :class:`~charmspace.errors.ConflictError` having written
    nothing, or writes every document under the next seq, and every row, and
    returns the seq once it is durable. A commit of rows only takes no seq and
    leaves no log entry: ``apply`` returns 0.

    Every operation that changes a space takes a ``check`` (or, for the ACL, an
    ``update``) and calls it with the space's record as it is *inside* the
    write transaction: the facade's own check may have seen a record that
    another process has since changed (a revoked grant, a deleted space).
    ``load_space`` must return a record as fresh as the documents ``read``
    returns.
    """

    def create_space(
        self, space: SpaceDID, owner: DID, acl: Mapping[str, Capability], created_at: float
    ) -> SpaceRecord: ...

    def load_space(self, space: SpaceDID) -> SpaceRecord | None: ...

    def save_acl(
        self, space: SpaceDID, update: Callable[[SpaceRecord], Mapping[str, Capability]]
    ) -> SpaceRecord: ...

    def delete_space(self, space: SpaceDID, check: Check) -> None: ...

    def list_spaces(self) -> list[SpaceDID]: ...

    def read(
        self, space: SpaceDID, id: EntityId, at: int | None = None, check: Check | None = None
    ) -> Revision:
        """The document; ``check`` sees the record (None: a trusted read by the runtime itself)."""
        ...

    def cached(self, space: SpaceDID, id: EntityId) -> Revision | None:
        """The document's current revision if this process has it at hand, else None.

        No I/O and no freshness check: a hint for preparing a write as a delta
        (see :class:`~charmspace.storage.model.PreparedWrite`), never a read.
        """
        ...

    def row(self, space: SpaceDID, box: str, key: str, check: Check | None = None) -> Row | None:
        """The row's current value, writer and version (None: there is none)."""
        ...

    def rows(
        self, space: SpaceDID, box: str, check: Check | None = None, limit: int = -1
    ) -> list[tuple[str, Row]]:
        """The rows of ``box`` with their keys, in key order (the first ``limit``; -1: all)."""
        ...

    batches: bool
    """Whether ``apply(defer=True)`` can group commits into one durable write."""

    def apply(self, commit: PreparedCommit, *, check: Check, defer: bool = False) -> int: ...

    def flush(self, space: SpaceDID) -> None: ...

    def head(self, space: SpaceDID) -> int: ...

    def log(self, space: SpaceDID, since: int, limit: int) -> list[LogEntry]: ...

    def prune(self, space: SpaceDID, before: int, check: Check) -> int:
        """Raise the space's horizon to ``before`` (never past its head) and drop what it leaves.

        Every document keeps its revision as of the horizon and all later ones;
        the log keeps every commit after it and every commit whose revision is
        still stored. Returns the revisions removed.
        """
        ...

    def horizon(self, space: SpaceDID) -> int:
        """The oldest seq a point-in-time read may ask for (0: nothing was ever pruned)."""
        ...

    def plan(
        self, space: SpaceDID, retention: Retention, now: float, *, budget: bool = True
    ) -> tuple[int, int]:
        """The space's horizon, and where ``retention`` would move it at time ``now``.

        With ``budget``, also far enough that the history after it holds at most
        three quarters of ``max_history_bytes`` (the costly part: it sums the
        history's sizes); without, only the commit count and age are applied.
        """
        ...

    def retention(self, space: SpaceDID) -> Retention | None:
        """The space's own retention policy (None: the storage's default)."""
        ...

    def set_retention(self, space: SpaceDID, retention: Retention | None, check: Check) -> None: ...

    def lease_records(self) -> LeaseRecords | None:
        """The leases every process on this storage shares (None: one process only, by nature)."""
        ...

    def close(self) -> None: ...
