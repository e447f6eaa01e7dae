"""The storage facade: access control, limits and notifications over a backend.

Access control lives here, below the runtime and the HTTP layer, so that no code
path (runtime, CLI, background work) can read or write a space without the
acting principal being checked. The rules live here; the backend applies them
(through a ``check`` callback) to the space's record as it is inside its write
transaction, or for reads under the same lock and freshness as the documents,
because another process may have revoked a grant or deleted the space since
this one last looked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from charmspace.errors import (
    AuthorizationError,
    ConflictError,
    InvalidIdError,
    LimitExceededError,
    MissingPrincipalError,
    SpaceClaimError,
    SpaceNotFoundError,
    StorageError,
)
from charmspace.storage.backends.base import Backend
from charmspace.storage.delta import diff
from charmspace.storage.model import (
    ANYONE,
    DELETE,
    Capability,
    Change,
    Commit,
    Limits,
    LogEntry,
    PreparedCommit,
    PreparedRow,
    PreparedWrite,
    Retention,
    Revision,
    Row,
    SpaceRecord,
)
from charmspace.storage.proof import is_creation_proof
from charmspace.storage.retention import Floor, Pruner
from charmspace.types import DID, EntityId, JSONValue, SpaceDID
from charmspace.values import FrozenDict, FrozenList, dumps, freeze

log = logging.getLogger(__name__)

DELTA_MIN_BYTES = 1024
"""Documents smaller than this are always stored whole: a delta would save little."""

Subscriber = Callable[[Change], None]
OnDurable = Callable[[BaseException | None], None]
Settle = tuple[OnDurable, BaseException | None]


def _run(settle: list[Settle]) -> None:
    """Tell each grouped commit's owner how it ended (called with no lock held)."""
    for on_durable, error in settle:
        try:
            on_durable(error)
        except Exception:
            log.exception("an on_durable callback failed")


class _Access:
    """The access check a read or write hands its backend: ``principal`` needs ``needed``.

    A class rather than a closure, and kept per principal (:meth:`Storage._access`):
    every read and commit hands one over. It remembers the last record it let
    through: a record is never changed once made (a new grant or revocation,
    here or seen from another process, is a new record), so the same record
    gives the same answer, and the check is then one identity comparison.
    The service identity is never remembered: each of its uses is logged.
    """

    __slots__ = ("action", "needed", "passed", "principal", "storage")

    def __init__(self, storage: Storage, principal: DID, needed: Capability, action: str) -> None:
        self.storage = storage
        self.principal = principal
        self.needed = needed
        self.action = action
        self.passed: SpaceRecord | None = None

    def __call__(self, record: SpaceRecord) -> None:
        if record is self.passed:
            return
        storage = self.storage
        storage._authorize(record, self.principal, self.needed, self.action)
        if storage.service is None or self.principal != storage.service:
            self.passed = record


_MAX_ACCESS_CHECKS = 1024
"""How many principals' checks :meth:`Storage._access` keeps (then it starts afresh)."""


class Storage:
    """Spaces of documents with per-space sequence numbers and ACLs.

    Every method takes the acting ``principal``; a missing one (``None``) is
    refused, never treated as anyone in particular. The optional ``service`` DID
    is the server's own identity: it is allowed everywhere (the server hosts the
    data anyway) and each use is logged with its reason.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        url: str = "",
        limits: Limits | None = None,
        service: DID | None = None,
        clock: Callable[[], float] = time.time,
        retention: Retention | None = None,
        prune_interval: float = 0.25,
    ) -> None:
        self.backend = backend
        self.url = url
        self.limits = limits or Limits()
        self.service = service
        self.clock = clock
        self._commit_locks: dict[SpaceDID, threading.Lock] = {}
        self._checks: dict[tuple[DID, Capability], _Access] = {}
        self._locks_guard = threading.Lock()
        self._subscribers: dict[SpaceDID | None, list[Subscriber]] = {}
        self._pending: dict[SpaceDID, list[tuple[Change, OnDurable]]] = {}
        self._unsettled: dict[SpaceDID, set[EntityId]] = {}
        """Per space with a group in flight: the ids its commits wrote (reads of them go back)."""
        self._rows_unsettled: set[SpaceDID] = set()
        """The spaces whose group in flight wrote rows (reads of rows settle it first)."""
        self._flush_requested = False
        self.retention = retention or Retention()
        """The policy of every space that has none of its own (:meth:`set_retention`)."""
        self._floors: list[Floor] = [self._durable_floor]
        self.pruner = Pruner(backend, self.retention, clock, self._floors, prune_interval)
        self.flush_scheduler: Callable[[Callable[[], None]], None] | None = None
        """Set by an event loop owner (the runtime) to run ``flush`` soon, e.g. ``loop.call_soon``.

        Without one, deferred commits are flushed at once (no grouping)."""

    def __repr__(self) -> str:
        return f"Storage({self.url or type(self.backend).__name__!s})"

    # --- spaces and access control ------------------------------------------------

    def create_space(
        self,
        space: SpaceDID,
        owner: DID,
        acl: Mapping[str, Capability] | None = None,
        *,
        proof: bytes | None = None,
    ) -> SpaceRecord:
        """Create a space owned by ``owner``. Default closed: no one else may use it.

        ``owner`` is the acting principal. It may create ``space`` only if it
        holds the space's key: ``owner == space`` (a user's home space), or
        ``proof`` is :func:`~charmspace.storage.proof.creation_proof` signed with
        the space's key for this owner (a named space). Otherwise
        :class:`~charmspace.errors.SpaceClaimError`: nobody can create, and so
        own, a space named by someone else's DID.
        """
        from charmspace.identity import parse_did

        self._require_principal(owner, space, "create the space")
        parse_did(space)
        parse_did(owner)
        if owner != space:
            if proof is None:
                raise SpaceClaimError(
                    space, owner, "the owner is not the space's DID and no proof was given"
                )
            if not is_creation_proof(space, owner, proof):
                raise SpaceClaimError(
                    space, owner, "the proof is not a signature by the space's key for this owner"
                )
        checked: dict[str, Capability] = {}
        for subject, capability in (acl or {}).items():
            if subject != ANYONE:
                parse_did(subject)
            checked[subject] = Capability(capability)
        return self.backend.create_space(space, owner, checked, self.clock())

    def ensure_space(
        self, space: SpaceDID, owner: DID, *, proof: bytes | None = None
    ) -> SpaceRecord:
        """The space's record, creating the space for ``owner`` if it does not exist."""
        record = self._record_or_none(space)
        return record if record is not None else self.create_space(space, owner, proof=proof)

    def has_space(self, space: SpaceDID) -> bool:
        return self._record_or_none(space) is not None

    def space(self, space: SpaceDID, principal: DID) -> SpaceRecord:
        """The space's owner and ACL (needs READ)."""
        return self._check(space, principal, Capability.READ, "read its owner and grants")

    def spaces(self, principal: DID) -> list[SpaceRecord]:
        """The spaces ``principal`` can read (one that cannot be opened is logged and skipped)."""
        self._require_principal(principal, "", "list spaces")
        out = []
        for space in self.backend.list_spaces():
            try:
                record = self._record_or_none(space)
            except StorageError:
                log.exception("space %s cannot be opened; leaving it out", space)
                continue
            if record is not None and self.allowed(record, principal, Capability.READ):
                out.append(record)
        return out

    def set_acl(
        self, space: SpaceDID, principal: DID, subject: str, capability: Capability | None
    ) -> SpaceRecord:
        """Grant ``capability`` to ``subject`` (a DID or ``"*"``); None revokes. Needs OWNER."""
        from charmspace.identity import parse_did

        self._check(space, principal, Capability.OWNER, "change the ACL")
        if subject != ANYONE:
            parse_did(subject)
        granted = None if capability is None else Capability(capability)

        def update(current: SpaceRecord) -> Mapping[str, Capability]:
            self._authorize(current, principal, Capability.OWNER, "change the ACL")
            acl = dict(current.acl)
            if granted is None:
                acl.pop(subject, None)
            else:
                acl[subject] = granted
            return acl

        settle: list[Settle] = []
        try:
            with self._commit_lock(space):
                self._flush_locked(space, settle)
                return self.backend.save_acl(space, update)
        finally:
            _run(settle)

    def delete_space(self, space: SpaceDID, principal: DID) -> None:
        """Remove a space and everything in it. Needs OWNER."""
        self._check(space, principal, Capability.OWNER, "delete the space")
        settle: list[Settle] = []
        try:
            with self._commit_lock(space):
                self._flush_locked(space, settle)
                self.backend.delete_space(
                    space,
                    lambda current: self._authorize(
                        current, principal, Capability.OWNER, "delete the space"
                    ),
                )
        finally:
            _run(settle)

    def allowed(self, record: SpaceRecord, principal: DID, needed: Capability) -> bool:
        if not isinstance(principal, str) or not principal:
            return False
        if self.service is not None and principal == self.service:
            return True
        have = record.capability(principal)
        return have is not None and have >= needed

    def _record_or_none(self, space: SpaceDID) -> SpaceRecord | None:
        """The space's record as fresh as its data (the backend keeps it so; no copy here)."""
        return self.backend.load_space(space)

    def _require_principal(self, principal: object, space: SpaceDID, action: str) -> None:
        if not isinstance(principal, str) or not principal:
            raise MissingPrincipalError(space, action, principal)

    def _check(
        self, space: SpaceDID, principal: DID, needed: Capability, action: str
    ) -> SpaceRecord:
        self._require_principal(principal, space, action)
        record = self.backend.load_space(space)
        if record is None:
            raise SpaceNotFoundError(space)
        self._authorize(record, principal, needed, action)
        return record

    def _access(self, principal: DID, needed: Capability) -> _Access:
        """The check that ``principal`` may read (or write) a space's record, made once."""
        key = (principal, needed)
        check = self._checks.get(key)
        if check is None:
            if len(self._checks) >= _MAX_ACCESS_CHECKS:
                self._checks.clear()
            action = "read" if needed is Capability.READ else "write"
            check = self._checks[key] = _Access(self, principal, needed, action)
        return check

    def _authorize(
        self, record: SpaceRecord, principal: DID, needed: Capability, action: str
    ) -> None:
        """Raise unless ``principal`` may ``action`` under ``record`` (backends call it too)."""
        if self.service is not None and principal == self.service:
            log.debug("service identity used", extra={"space": record.space, "reason": action})
            return
        have = record.capability(principal)
        if have is None or have < needed:
            raise AuthorizationError(principal, record.space, needed.name, action)

    # --- documents ---------------------------------------------------------------------

    def read(
        self,
        space: SpaceDID,
        id: EntityId,
        principal: DID,
        *,
        at: int | None = None,
        pending: bool = False,
    ) -> Revision:
        """The document's latest durable value and seq, or as of commit ``at``. Needs READ.

        A grouped commit still being made durable is not seen: a reader that
        acted on its value (answered a client, wrote another space) would have
        acted on a value that never existed if the group then failed or the
        process died first. Its documents read as of the last durable commit.

        ``pending=True`` reads what such a commit wrote: only for a transaction
        that depends on it (its own commit is validated against that seq, so it
        fails if the group does, and it answers no one before it is durable;
        see ``docs/architecture.md``, commit dependencies).
        """
        if type(principal) is not str or not principal:
            self._require_principal(principal, space, "read")
        if not (type(id) is str and id.isascii() and 0 < len(id) <= self.limits.max_id_bytes):
            self._check_id(space, id)  # _check_id's own fast path, inlined: it explains
        unsettled = self._unsettled.get(space)
        if unsettled and not pending and (id in unsettled if at is None else True):
            durable = self.durable_head(space)
            if at is None or at > durable:
                at = durable
        check = self._checks.get((principal, Capability.READ))  # _access's usual answer
        if check is None:
            check = self._access(principal, Capability.READ)
        return self.backend.read(space, id, at, check)

    def unsettled(self, space: SpaceDID, id: EntityId) -> bool:
        """Whether a grouped commit of ``space`` that wrote ``id`` is not durable yet.

        The runtime's own bookkeeping (no data, hence no principal): a
        transaction about to read such a document makes the group durable first
        (:meth:`settle`), since the older value it would read otherwise could
        only make its commit conflict and its handler run again.
        """
        unsettled = self._unsettled.get(space)
        return unsettled is not None and id in unsettled

    @property
    def grouping(self) -> bool:
        """Whether some grouped commit is not durable yet (a :meth:`flush` is due)."""
        return bool(self._pending)

    def rows_unsettled(self, space: SpaceDID) -> bool:
        """Whether a grouped commit of ``space`` that wrote rows is not durable yet."""
        return space in self._rows_unsettled

    def settle(self, space: SpaceDID) -> None:
        """Make the space's group of commits durable now, rather than at the next :meth:`flush`.

        If the group cannot be written its owners hear of it (as from
        :meth:`flush`) and the caller goes on to read what is durable.
        """
        if not self._pending.get(space):
            return
        settle: list[Settle] = []
        try:
            with self._commit_lock(space):
                self._flush_locked(space, settle)
        except Exception:
            log.exception("a group of commits could not be written", extra={"space": space})
        finally:
            _run(settle)

    def head(self, space: SpaceDID, principal: DID) -> int:
        """The seq of the space's latest durable commit (0 for an empty space)."""
        self._check(space, principal, Capability.READ, "read")
        for change, _ in self._pending.get(space) or ():
            if change.seq:  # a commit of rows only has none
                return change.seq - 1
        return self.backend.head(space)

    def durable_head(self, space: SpaceDID) -> int:
        """The seq of the space's latest *durable* commit (0 for a space that does not exist).

        Grouped commits still being written are past it, so a snapshot read at
        this seq never sees a commit that could still fail. The runtime's own
        bookkeeping: a number, no data, hence no principal.
        """
        for change, _ in self._pending.get(space) or ():
            if change.seq:  # a commit of rows only has none
                return change.seq - 1
        try:
            return self.backend.head(space)
        except SpaceNotFoundError:
            return 0

    def commit(self, commit: Commit, *, on_durable: OnDurable | None = None) -> int:
        """Make ``commit`` durable atomically; returns its seq (0: it wrote nothing).

        Raises :class:`~charmspace.errors.ConflictError` if a document it read
        changed since, :class:`~charmspace.errors.AuthorizationError` without
        WRITE, :class:`~charmspace.errors.LimitExceededError` past a limit. In
        every error case nothing is written.

        With ``on_durable`` the commit may be *grouped*: it is applied now (later
        commits are validated against it, so one that read an older value
        conflicts), and made durable together with the others of this moment
        by :meth:`flush`; only then do reads see it, subscribers hear of it and
        ``on_durable(None)`` is called — or ``on_durable(error)`` if the group
        could not be written.

        The commit's rows (:class:`~charmspace.storage.model.Row`) are written
        with its documents, atomically, recording ``commit.principal`` as their
        writer; a commit of rows only returns 0 and notifies no one.
        """
        if not commit.writes and not commit.rows:
            self._check(commit.space, commit.principal, Capability.WRITE, "write")
            if on_durable is not None:
                on_durable(None)
            return 0
        # WRITE is checked by the backend, inside its write transaction.
        if type(commit.principal) is not str or not commit.principal:
            self._require_principal(commit.principal, commit.space, "write")
        prepared, history = self._prepare(commit)
        space = commit.space
        principal = commit.principal
        defer = on_durable is not None and self.backend.batches
        # A commit of rows only changes no document: no seq, nothing to notify.
        documents = bool(prepared.writes)
        settle: list[Settle] = []
        lock = self._commit_locks.get(space) or self._commit_lock(space)
        check = self._checks.get((principal, Capability.WRITE))  # _access's usual answer
        if check is None:
            check = self._access(principal, Capability.WRITE)
        try:
            with lock:
                try:
                    seq = self.backend.apply(
                        prepared,
                        defer=defer,
                        check=check,
                    )
                except (ConflictError, AuthorizationError, SpaceNotFoundError):
                    if not defer:  # the backend made the open group durable on the way
                        settle = self._durable(space)
                    raise
                except BaseException as error:
                    settle = self._fail_pending(space, error)
                    raise
                writes = prepared.writes
                ids = (writes[0].id,) if len(writes) == 1 else tuple([w.id for w in writes])
                change = Change(space, seq, ids)
                if defer:
                    assert on_durable is not None
                    pending = self._pending.get(space)
                    if pending is None:  # not setdefault: it would build a list per commit
                        pending = self._pending[space] = []
                    pending.append((change, on_durable))
                    unsettled = self._unsettled.get(space)
                    if unsettled is None:
                        self._unsettled[space] = set(ids)
                    else:
                        unsettled.update(ids)
                    if prepared.rows:
                        self._rows_unsettled.add(space)
                else:
                    settle = self._durable(space)
                    if documents:
                        self._notify(change)
                    if on_durable is not None:
                        settle.append((on_durable, None))
        finally:
            if settle:
                _run(settle)
        if documents:
            self.pruner.written(space, history)
        if defer and not self._flush_requested:
            self._request_flush()
        return seq

    def _request_flush(self) -> None:
        if self._flush_requested:
            return
        if self.flush_scheduler is None:
            self.flush()
            return
        self._flush_requested = True
        self.flush_scheduler(self.flush)

    def flush(self) -> None:
        """Make every grouped commit durable, then notify and call their ``on_durable``."""
        self._flush_requested = False
        for space in list(self._pending):
            settle: list[Settle] = []
            with self._commit_lock(space):
                if not self._pending.get(space):
                    continue
                try:
                    self.backend.flush(space)
                except Exception as error:
                    log.exception("a group of commits could not be written", extra={"space": space})
                    settle = self._fail_pending(space, error)
                else:
                    settle = self._durable(space)
            _run(settle)

    def _durable(self, space: SpaceDID) -> list[Settle]:
        """The space's group is durable: notify in seq order (under the commit lock).

        Returns the ``on_durable`` calls to make once the lock is released: an
        owner told its commit is durable may well commit again at once (the
        scheduler clears a delivered event from its outbox), and must not find
        the lock still held.
        """
        pending = self._pending.pop(space, None)
        self._unsettled.pop(space, None)
        self._rows_unsettled.discard(space)
        if not pending:
            return []
        for change, _ in pending:
            if change.seq:
                self._notify(change)
        return [(on_durable, None) for _, on_durable in pending]

    def _fail_pending(self, space: SpaceDID, error: BaseException) -> list[Settle]:
        self._unsettled.pop(space, None)
        self._rows_unsettled.discard(space)
        return [(on_durable, error) for _, on_durable in self._pending.pop(space, None) or ()]

    def _check_id(self, space: SpaceDID, id: object) -> None:
        """Refuse an id no backend can store, before it can join (and fail) a group."""
        if type(id) is str and id.isascii() and 0 < len(id) <= self.limits.max_id_bytes:
            return  # every id the runtime makes: checked on every read and write
        if not isinstance(id, str):
            raise InvalidIdError(space, id, f"it is {type(id).__name__}, not a string")
        if not id:
            raise InvalidIdError(space, id, "it is empty")
        if id.isascii():
            size = len(id)
        else:
            try:
                size = len(id.encode("utf-8"))
            except UnicodeEncodeError:
                raise InvalidIdError(
                    space, id, "it is not valid Unicode text (it holds a lone surrogate)"
                ) from None
        if size > self.limits.max_id_bytes:
            raise LimitExceededError(
                "The size of a document id in bytes",
                size,
                self.limits.max_id_bytes,
                "make ids with entity_id(cause), which are 55 bytes",
            )

    def _prepare(self, commit: Commit) -> tuple[PreparedCommit, int]:
        """The commit checked against the limits, and what it adds to the space's history.

        That addition is counted as the retention budget counts it: per
        document written, its id, its JSON (or delta) and 150 bytes.
        """
        limits = self.limits
        space = commit.space
        if len(commit.writes) > limits.max_commit_writes:
            raise LimitExceededError(
                "The number of writes in the commit", len(commit.writes), limits.max_commit_writes
            )
        max_id = limits.max_id_bytes
        # _check_id's fast path inlined (it is called only to explain a bad id): a
        # commit usually reads and writes ids the runtime made
        for id in commit.reads:
            if not (type(id) is str and id.isascii() and 0 < len(id) <= max_id):
                self._check_id(space, id)
        writes = []
        total = 0
        history = 0
        for id, value in commit.writes.items():
            if not (type(id) is str and id.isascii() and 0 < len(id) <= max_id):
                self._check_id(space, id)
            history += len(id) + 150
            if value is DELETE:
                writes.append(PreparedWrite(id, None, None))
                continue
            # a runtime's write is frozen (validated) already: no call, no path tuple
            frozen = value if type(value) is FrozenDict else freeze(value, (id,))
            write = self._as_delta(space, id, frozen)
            if write is None:
                text = dumps(frozen)
                size = len(text) if text.isascii() else len(text.encode("utf-8"))
                write = PreparedWrite(id, frozen, text, size=size)
                history += len(text)
            else:
                history += len(write.delta)  # type: ignore[arg-type]
            if write.size > limits.max_document_bytes:
                raise LimitExceededError(
                    f"The size of document {id} in bytes", write.size, limits.max_document_bytes
                )
            total += write.size
            writes.append(write)
        rows = []
        for key in commit.row_reads:
            self._check_row_key(space, key)
        for key, value in commit.rows.items():
            self._check_row_key(space, key)
            if value is DELETE:
                rows.append(PreparedRow(key[0], key[1], None, None))
                continue
            frozen = freeze(value, key)
            text = dumps(frozen)
            size = len(text.encode("utf-8"))
            if size > limits.max_document_bytes:
                raise LimitExceededError(
                    f"The size of row {key[1]} of {key[0]} in bytes",
                    size,
                    limits.max_document_bytes,
                )
            total += size
            rows.append(PreparedRow(key[0], key[1], frozen, text))
        if total > limits.max_commit_bytes:
            raise LimitExceededError(
                "The size of the commit in bytes", total, limits.max_commit_bytes
            )
        meta = commit.meta
        prepared = PreparedCommit(
            commit.space,
            commit.principal,
            self.clock(),
            commit.reads,
            tuple(writes),
            meta if type(meta) is FrozenDict or not meta else freeze(dict(meta), ("meta",)),  # type: ignore[arg-type]
            tuple(rows),
            commit.row_reads,
        )
        return prepared, history

    def _check_row_key(self, space: SpaceDID, key: object) -> None:
        """A row's ``(box, key)`` must be two strings no longer than an id."""
        if not (isinstance(key, tuple) and len(key) == 2):
            raise InvalidIdError(space, key, "a row is named by a (box, key) pair of strings")
        for part in key:
            self._check_id(space, part)

    def _as_delta(self, space: SpaceDID, id: EntityId, value: JSONValue) -> PreparedWrite | None:
        """``value`` as a change to the document's current revision, if that is much smaller.

        The current revision is whatever the backend has at hand (no I/O): the
        backend stores the delta only if it is still current when the commit is
        applied, and the whole value otherwise. The size is exact either way:
        the base's size plus the delta's change.
        """
        cls = type(value)
        if cls is not FrozenList and cls is not FrozenDict:
            return None
        base = self.backend.cached(space, id)
        if base is None or base.size < DELTA_MIN_BYTES or base.deleted:
            return None
        change = diff(base.value, value)
        if change is None:
            return None
        text = dumps(change.ops)
        size = base.size + change.size
        if 2 * len(text) > size:  # not much smaller than the document itself
            return None
        return PreparedWrite(id, value, None, delta=text, base=base, size=size)

    def row(
        self, space: SpaceDID, box: str, key: str, principal: DID, *, pending: bool = False
    ) -> Row | None:
        """The row ``key`` of ``box`` with who wrote it, or None (needs READ).

        Durable rows only, as for :meth:`read`: rows keep no history to read an
        older version from, so a group of commits that wrote rows is made
        durable first (``pending=True``: as :meth:`read`'s, for a dependent reader).
        """
        self._require_principal(principal, space, "read")
        self._check_row_key(space, (box, key))
        if not pending and space in self._rows_unsettled:
            self.settle(space)
        return self.backend.row(space, box, key, self._access(principal, Capability.READ))

    def rows(
        self, space: SpaceDID, box: str, principal: DID, *, limit: int = -1
    ) -> list[tuple[str, Row]]:
        """The durable rows of ``box`` with their keys, in key order (needs READ); -1: all."""
        self._require_principal(principal, space, "read")
        self._check_id(space, box)
        if type(limit) is not int:
            raise InvalidIdError(space, box, "the number of rows to list must be an integer")
        if space in self._rows_unsettled:
            self.settle(space)
        return self.backend.rows(space, box, self._access(principal, Capability.READ), limit)

    def log(
        self, space: SpaceDID, principal: DID, *, since: int = 0, limit: int = 1000
    ) -> list[LogEntry]:
        """Durable commits after seq ``since``, oldest first: who, when, which ids (no values)."""
        self._check(space, principal, Capability.READ, "read the log")
        entries = self.backend.log(space, since, limit)
        if self._pending.get(space):
            durable = self.durable_head(space)
            entries = [entry for entry in entries if entry.seq <= durable]
        return entries

    def committer(self, space: SpaceDID, seq: int, principal: DID) -> DID | None:
        """Who made commit ``seq`` of ``space``, as storage recorded it (needs READ).

        What a document says about who wrote it proves nothing (anyone with WRITE
        can write anything); this is the record to check such claims against.
        None if that commit is not (or no longer) in the log.
        """
        if seq <= 0:
            return None
        entries = self.log(space, principal, since=seq - 1, limit=1)
        return entries[0].principal if entries and entries[0].seq == seq else None

    def prune(self, space: SpaceDID, principal: DID, *, before: int) -> int:
        """Move the space's horizon to seq ``before`` now, whatever its policy. Needs OWNER.

        Reads at ``before`` or later stay exact (each document keeps its value as
        of ``before``); older ones raise :class:`~charmspace.errors.HistoryPrunedError`.
        Current values are never dropped. Returns the revisions removed.
        """
        self._check(space, principal, Capability.OWNER, "prune history")
        settle: list[Settle] = []
        try:
            with self._commit_lock(space):
                self._flush_locked(space, settle)
                removed = self.backend.prune(
                    space,
                    before,
                    lambda current: self._authorize(
                        current, principal, Capability.OWNER, "prune history"
                    ),
                )
        finally:
            _run(settle)
        return removed

    def horizon(self, space: SpaceDID, principal: DID) -> int:
        """The oldest seq a point-in-time read of ``space`` may ask for (needs READ)."""
        self._check(space, principal, Capability.READ, "read")
        return self.backend.horizon(space)

    def space_retention(self, space: SpaceDID, principal: DID) -> Retention:
        """The retention policy ``space`` is pruned by: its own, or the storage's (needs READ)."""
        self._check(space, principal, Capability.READ, "read the retention policy")
        return self.backend.retention(space) or self.retention

    def set_retention(self, space: SpaceDID, principal: DID, retention: Retention | None) -> None:
        """Give ``space`` a retention policy of its own (None: the storage's). Needs OWNER.

        Kept with the space, so it applies in every process that opens it. The
        background pruner applies it after the space's next commit.
        """
        self._check(space, principal, Capability.OWNER, "change the retention policy")
        settle: list[Settle] = []
        try:
            with self._commit_lock(space):
                self._flush_locked(space, settle)
                self.backend.set_retention(
                    space,
                    retention,
                    lambda current: self._authorize(
                        current, principal, Capability.OWNER, "change the retention policy"
                    ),
                )
        finally:
            _run(settle)
        self.pruner.written(space)

    def _durable_floor(self, space: SpaceDID) -> int | None:
        """Keep the history a read of a space with a group in flight is served from."""
        return self.durable_head(space) if self._pending.get(space) else None

    def add_floor(self, floor: Floor) -> Callable[[], None]:
        """Never prune a space past ``floor(space)``; returns a function that removes it.

        For work that will still read at an older seq (see :mod:`~charmspace.storage.retention`).
        """
        self._floors.append(floor)
        return lambda: self._floors.remove(floor) if floor in self._floors else None

    # --- notifications -----------------------------------------------------------------

    def subscribe(self, space: SpaceDID | None, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(change)`` after each durable commit in ``space`` (None: every space).

        Changes arrive in seq order, once each, never for an aborted commit. The
        subscriber runs in the committing thread while the space's commit order
        is held, so it must be quick (schedule work; do not do it). Returns a
        function that unsubscribes.
        """
        self._subscribers.setdefault(space, []).append(subscriber)

        def unsubscribe() -> None:
            subs = self._subscribers.get(space, [])
            if subscriber in subs:
                subs.remove(subscriber)

        return unsubscribe

    def _notify(self, change: Change) -> None:
        for key in (change.space, None):
            for subscriber in tuple(self._subscribers.get(key, ())):
                try:
                    subscriber(change)
                except Exception:
                    log.exception("storage subscriber failed", extra={"space": change.space})

    def _commit_lock(self, space: SpaceDID) -> threading.Lock:
        lock = self._commit_locks.get(space)
        if lock is None:
            with self._locks_guard:
                lock = self._commit_locks.setdefault(space, threading.Lock())
        return lock

    def _flush_locked(self, space: SpaceDID, settle: list[Settle]) -> None:
        """Make the space's open group durable (commit lock held); adds what to settle after."""
        if not self._pending.get(space):
            return
        try:
            self.backend.flush(space)
        except Exception as error:
            settle.extend(self._fail_pending(space, error))
            raise
        settle.extend(self._durable(space))

    def close(self) -> None:
        """Make grouped commits durable, prune what is owed and stop pruning, close the backend."""
        self.flush()
        self.pruner.close()
        self.backend.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
