"""The values storage speaks in: capabilities, revisions, commits, log entries."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from charmspace.quick_init import quick_init
from charmspace.types import DID, EntityId, JSONValue, SpaceDID


class Capability(enum.IntEnum):
    """What a principal may do in a space; each level includes the ones below."""

    READ = 1
    WRITE = 2
    OWNER = 3

    @classmethod
    def parse(cls, text: str) -> Capability:
        try:
            return cls[text.upper()]
        except KeyError:
            from charmspace.errors import SchemaError

            raise SchemaError(
                (), f"{text!r} is not a capability; use READ, WRITE or OWNER"
            ) from None


ANYONE = "*"
"""The ACL key that grants a capability to every principal."""


class _Delete:
    """The write that removes a document (its history stays)."""

    _instance: _Delete | None = None

    def __new__(cls) -> _Delete:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()


@quick_init
@dataclass(frozen=True, slots=True)
class Revision:
    """A document's value as of a commit. ``seq`` 0 means it never existed."""

    value: JSONValue
    seq: int
    deleted: bool = False
    size: int = field(default=-1, compare=False, repr=False)
    """The UTF-8 bytes of the value's JSON text, where storage knows it (-1: unknown)."""

    @property
    def exists(self) -> bool:
        return self.seq > 0 and not self.deleted


MISSING = Revision(None, 0)


@dataclass(frozen=True, slots=True)
class SpaceRecord:
    """A space's owner and access-control list."""

    space: SpaceDID
    owner: DID
    acl: Mapping[str, Capability]
    created_at: float = 0.0

    def capability(self, principal: DID) -> Capability | None:
        if principal == self.owner:
            return Capability.OWNER
        own = self.acl.get(principal)
        anyone = self.acl.get(ANYONE)
        if own is None:
            return anyone
        if anyone is None:
            return own
        return max(own, anyone)


RowKey = tuple[str, str]
"""A row's ``(box, key)``: the box groups the rows listed together (one charm's outbox)."""


@quick_init
@dataclass(frozen=True, slots=True)
class Row:
    """A row of a space's bookkeeping, as stored: outside the documents and their history.

    Rows hold what is inserted and deleted rather than kept (a charm's pending
    sends, the deliveries its inbox consumed): a row written or deleted leaves
    no revision behind, so pruning never has anything to do for it.
    ``principal`` is who wrote it, as storage recorded it (the committing
    principal, never a value the writer chose); ``version`` counts its writes
    (1: inserted), and a commit that read it is refused if it changed since.
    """

    value: JSONValue
    principal: DID
    version: int


@quick_init
@dataclass(frozen=True, slots=True)
class Commit:
    """What a transaction asks storage to make durable, atomically.

    ``reads`` maps each document read to the seq seen (0: it did not exist);
    the commit is refused if any of them changed since. ``writes`` maps ids to
    new values or :data:`DELETE`. ``rows`` and ``row_reads`` do the same for
    rows (:class:`Row`), with versions for seqs; a commit that writes only rows
    gets no seq and no log entry.
    """

    space: SpaceDID
    principal: DID
    writes: Mapping[EntityId, JSONValue | _Delete]
    reads: Mapping[EntityId, int] = field(default_factory=dict)
    meta: Mapping[str, JSONValue] = field(default_factory=dict)
    rows: Mapping[RowKey, JSONValue | _Delete] = field(default_factory=dict)
    row_reads: Mapping[RowKey, int] = field(default_factory=dict)


@quick_init
@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """A write checked against the limits, as JSON text or as a delta against ``base``.

    ``text`` is the whole value's JSON; None for a deletion, or when ``delta``
    (JSON operations, see :mod:`~charmspace.storage.delta`) turns ``base`` —
    the document's current revision when the write was prepared — into
    ``value``. A backend stores the delta only if ``base`` is still current,
    and asks :meth:`full_text` otherwise.
    """

    id: EntityId
    value: JSONValue
    text: str | None
    delta: str | None = None
    base: Revision | None = None
    size: int = -1
    """The UTF-8 bytes of the value's JSON text (-1 for a deletion)."""

    @property
    def deleted(self) -> bool:
        return self.text is None and self.delta is None

    @property
    def cost(self) -> int:
        """What the write adds to the space's history, in bytes of JSON (retention's budget)."""
        if self.delta is not None:
            return len(self.delta)
        return 0 if self.text is None else len(self.text)

    def full_text(self) -> str:
        """The whole value as stored JSON text (encoded now if only the delta was)."""
        if self.text is not None:
            return self.text
        from charmspace.values import dumps

        return dumps(self.value)


@dataclass(frozen=True, slots=True)
class PreparedRow:
    """A row write checked against the limits: its value and JSON text (None: delete it)."""

    box: str
    key: str
    value: JSONValue
    text: str | None


@quick_init
@dataclass(frozen=True, slots=True)
class PreparedCommit:
    """A commit after validation, as a backend receives it."""

    space: SpaceDID
    principal: DID
    time: float
    reads: Mapping[EntityId, int]
    writes: tuple[PreparedWrite, ...]
    meta: Mapping[str, JSONValue]
    rows: tuple[PreparedRow, ...] = ()
    row_reads: Mapping[RowKey, int] = field(default_factory=dict)

    @property
    def meta_text(self) -> str:
        """The meta as stored JSON text (only backends that store text ask for it)."""
        global _last_meta
        meta = self.meta
        if not meta:
            return "{}"
        last, text = _last_meta
        if last is meta:  # a handler's meta is one frozen object, committed again and again
            return text
        from charmspace.values import dumps

        text = dumps(meta)
        _last_meta = (meta, text)
        return text


_last_meta: tuple[object, str] = (None, "{}")


@quick_init
@dataclass(frozen=True, slots=True)
class LogEntry:
    """One commit in a space's history (ids, never values)."""

    seq: int
    principal: DID
    time: float
    ids: tuple[EntityId, ...]
    meta: Mapping[str, JSONValue]


@quick_init
@dataclass(frozen=True, slots=True)
class Change:
    """The notification a subscriber receives after a commit is durable."""

    space: SpaceDID
    seq: int
    ids: tuple[EntityId, ...]


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits; past one, a clear error and nothing written."""

    max_document_bytes: int = 4 * 1024 * 1024
    max_commit_bytes: int = 16 * 1024 * 1024
    max_commit_writes: int = 10_000
    max_path_segments: int = 64
    max_id_bytes: int = 1024
    """A document id's UTF-8 size. Ids are keys, stored in every revision and log entry;
    :func:`~charmspace.storage.entity_id` makes 55-byte ones."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history a space keeps; older revisions are pruned in the background.

    History is kept from a *horizon* seq on: every document's value as of the
    horizon and every revision after it, so a point-in-time read at any seq
    from the horizon on is exact, and an older one raises
    :class:`~charmspace.errors.HistoryPrunedError`. Current values are never
    pruned, nor the log entry of any revision still stored.

    The horizon keeps at least the last ``keep_commits`` commits and every
    commit from the last ``keep_seconds`` — unless the revisions after it hold
    more than ``max_history_bytes`` of JSON, in which case it moves on until
    they hold three quarters of it (so the costly sum is redone only after
    another quarter is written): a user's disk is the one limit that must always hold. (One
    document of 1 MiB rewritten by each commit would otherwise keep 1,000
    copies.) A deletion older than the horizon is dropped too, so a document
    written and deleted long ago costs nothing. Work the runtime still needs
    — a propagator's processed watermark — holds the horizon back whatever
    the policy says.
    """

    keep_commits: int = 1000
    keep_seconds: float = 24 * 3600.0
    max_history_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        from charmspace.errors import SchemaError

        if not isinstance(self.keep_commits, int) or self.keep_commits < 1:
            raise SchemaError(("keep_commits",), "keep at least 1 commit (the current one)")
        if not self.keep_seconds >= 0:
            raise SchemaError(("keep_seconds",), "a number of seconds, 0 or more")
        if not isinstance(self.max_history_bytes, int) or self.max_history_bytes < 0:
            raise SchemaError(("max_history_bytes",), "a number of bytes, 0 or more")

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "keep_commits": self.keep_commits,
            "keep_seconds": self.keep_seconds,
            "max_history_bytes": self.max_history_bytes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, JSONValue]) -> Retention:
        return cls(
            keep_commits=int(data["keep_commits"]),  # type: ignore[arg-type]
            keep_seconds=float(data["keep_seconds"]),  # type: ignore[arg-type]
            max_history_bytes=int(data["max_history_bytes"]),  # type: ignore[arg-type]
        )
