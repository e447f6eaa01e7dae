"""Spaces of JSON documents with atomic, optimistic, access-controlled commits.

Open one with :func:`open_storage`: ``memory://`` or ``sqlite:///path/to/dir``.
"""

from __future__ import annotations

from charmspace.storage.ids import entity_id
from charmspace.storage.model import (
    ANYONE,
    DELETE,
    MISSING,
    Capability,
    Change,
    Commit,
    Limits,
    LogEntry,
    Revision,
    Row,
    SpaceRecord,
)
from charmspace.storage.open import open_storage
from charmspace.storage.proof import creation_proof
from charmspace.storage.store import Storage

__all__ = [
    "ANYONE",
    "DELETE",
    "MISSING",
    "Capability",
    "Change",
    "Commit",
    "Limits",
    "LogEntry",
    "Revision",
    "Row",
    "SpaceRecord",
    "Storage",
    "creation_proof",
    "entity_id",
    "open_storage",
]
