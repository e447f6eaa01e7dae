"""The interface every storage backend implements.

The :class:`~charmspace.storage.store.Storage` facade does everything that is the
same for every backend (access control, limits, notifications, ordering); a
backend only keeps documents and commits durable and validates a commit's reads
atomically with its writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from charmspace.storage.model import (
    Capability,
    LogEntry,
    PreparedCommit,
    Revision,
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
    against the current seq and either raises
    :class:`~charmspace.errors.ConflictError` having written nothing, or writes
    every document under the next seq and returns it once it is durable.

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

    batches: bool
    """Whether ``apply(defer=True)`` can group commits into one durable write."""

    def apply(self, commit: PreparedCommit, *, check: Check, defer: bool = False) -> int: ...

    def flush(self, space: SpaceDID) -> None: ...

    def head(self, space: SpaceDID) -> int: ...

    def log(self, space: SpaceDID, since: int, limit: int) -> list[LogEntry]: ...

    def prune(self, space: SpaceDID, before: int, check: Check) -> int: ...

    def close(self) -> None: ...
