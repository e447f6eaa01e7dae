"""The small vocabulary every other module speaks.

Names, not new types: a DID is a ``str`` that passed :func:`charmspace.identity.parse_did`,
an entity id is a ``str`` starting ``of:``. Keeping them as plain strings keeps
them JSON-friendly and cheap; the names document intent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias

DID: TypeAlias = str
"""A ``did:key:z6Mk…`` identifier of an Ed25519 key: a user, a space, the server."""

SpaceDID: TypeAlias = str
"""The DID that names a space."""

EntityId: TypeAlias = str
"""A document id inside a space, ``of:<base32 of a SHA-256>``."""

PathSegment: TypeAlias = str | int
Path: TypeAlias = tuple[PathSegment, ...]
"""Keys and indexes from a document's root to a value inside it."""

JSONValue: TypeAlias = (
    None | bool | int | float | str | Sequence["JSONValue"] | Mapping[str, "JSONValue"]
)
"""Any JSON value. Values read from cells are frozen (see :mod:`charmspace.values`)."""

Schema: TypeAlias = Mapping[str, Any]
"""A JSON Schema (the subset in design/02-runtime.md) plus ``asCell``/``asStream``."""

Handler: TypeAlias = Callable[..., Any | Awaitable[Any]]
"""A handler or derive function; ``def`` or ``async def``, the runtime detects which."""
