"""The values storage speaks in: capabilities, revisions, commits, log entries."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

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


@dataclass(frozen=True, slots=True)
class Revision:
    """A document's value as of a commit. ``seq`` 0 means it never existed."""

    value: JSONValue
    seq: int
    deleted: bool = False

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


@dataclass(frozen=True, slots=True)
class Commit:
    """What a transaction asks storage to make durable, atomically.

    ``reads`` maps each document read to the seq seen (0: it did not exist);
    the commit is refused if any of them changed since. ``writes`` maps ids to
    new values or :data:`DELETE`.
    """

    space: SpaceDID
    principal: DID
    writes: Mapping[EntityId, JSONValue | _Delete]
    reads: Mapping[EntityId, int] = field(default_factory=dict)
    meta: Mapping[str, JSONValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """A write checked against the limits, with its stored JSON text (None: delete)."""

    id: EntityId
    value: JSONValue
    text: str | None


@dataclass(frozen=True, slots=True)
class PreparedCommit:
    """A commit after validation, as a backend receives it."""

    space: SpaceDID
    principal: DID
    time: float
    reads: Mapping[EntityId, int]
    writes: tuple[PreparedWrite, ...]
    meta: Mapping[str, JSONValue]

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


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One commit in a space's history (ids, never values)."""

    seq: int
    principal: DID
    time: float
    ids: tuple[EntityId, ...]
    meta: Mapping[str, JSONValue]


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
