"""What every route needs: the runtime, the request's principal, access checks, names parsed.

Routes and dependencies are ``async def``: the runtime belongs to the event
loop's thread, and FastAPI would run a plain ``def`` in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from charmspace.errors import AuthorizationError, CharmNotFoundError
from charmspace.facade import Runtime
from charmspace.identity import parse_did
from charmspace.patterns.build import charm_docs
from charmspace.patterns.pattern import Pattern
from charmspace.runtime import context
from charmspace.runtime.address import Address
from charmspace.runtime.secrets import redact
from charmspace.runtime.transaction import Transaction
from charmspace.server.errors import AuthenticationError, BadRequestError
from charmspace.storage import Capability
from charmspace.storage.model import SpaceRecord
from charmspace.types import DID, EntityId, JSONValue, PathSegment, SpaceDID

MAX_ID_LENGTH = 200
MAX_PATH_SEGMENTS = 64

# Documents the scheme in /openapi.json; the RequestGate middleware has checked it already.
_signature = APIKeyHeader(
    name="Authorization",
    scheme_name="CharmspaceSignature",
    description='Charmspace did="…", ts="…", nonce="…", sig="…" (see docs/server.md).',
    auto_error=False,
)


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_principal(
    request: Request, _header: Annotated[str | None, Security(_signature)] = None
) -> DID:
    """The DID that signed the request (verified by the middleware before any parsing)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, str):  # a route outside /api/ asked for it: a bug, but fail closed
        raise AuthenticationError("missing", "This request is not signed.")
    return principal


async def get_patterns(request: Request) -> Mapping[str, Pattern]:
    """The installed patterns, by name, as found when the server started."""
    patterns: Mapping[str, Pattern] = request.app.state.patterns
    return patterns


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PatternsDep = Annotated[Mapping[str, Pattern], Depends(get_patterns)]
PrincipalDep = Annotated[DID, Depends(get_principal)]


async def space_param(space: str) -> SpaceDID:
    """A space path parameter: an Ed25519 did:key (400 otherwise)."""
    parse_did(space)
    return space


async def charm_param(id: str) -> EntityId:
    return charm_id(id)


def charm_id(id: str) -> EntityId:
    if not id or len(id) > MAX_ID_LENGTH or not id.isprintable():
        raise BadRequestError(f"A charm id is 1 to {MAX_ID_LENGTH} printable characters.", "id")
    return id


def cell_path(path: str) -> tuple[PathSegment, ...]:
    """``a/0/b`` as path segments; a segment of digits is a list index."""
    if not path:
        return ()
    parts = path.split("/")
    if len(parts) > MAX_PATH_SEGMENTS or any(not part for part in parts):
        raise BadRequestError(
            f"A cell path is up to {MAX_PATH_SEGMENTS} non-empty segments separated by '/'.",
            "path",
        )
    return tuple(int(p) if p.isascii() and p.isdigit() and len(p) < 10 else p for p in parts)


def require(
    runtime: Runtime, space: SpaceDID, principal: DID, needed: Capability, action: str
) -> SpaceRecord:
    """The space's record if ``principal`` has ``needed`` on it; else 404 / 403, nothing done."""
    storage = runtime.storage
    try:
        record = storage.space(space, principal)  # SpaceNotFoundError, or refused without READ
    except AuthorizationError as error:
        if type(error) is not AuthorizationError:
            raise
        # Storage refuses reading the ACL; the user asked to do ``action``, so say that.
        raise AuthorizationError(principal, space, needed.name, action) from None
    if not storage.allowed(record, principal, needed):
        raise AuthorizationError(principal, space, needed.name, action)
    return record


def shown(
    runtime: Runtime,
    space: SpaceDID,
    principal: DID,
    value: JSONValue,
    *,
    past: bool = False,
    path: tuple[PathSegment, ...] = (),
) -> JSONValue:
    """``value`` as ``principal`` may see it: secret fields masked unless they own ``space``.

    A read of the past (``past``) is masked for everyone: once a token is
    cleared, no point-in-time read may hand it out again.
    """
    if not past:
        storage = runtime.storage
        if storage.allowed(storage.space(space, principal), principal, Capability.OWNER):
            return value
    return redact(value, path=path)


@lru_cache(maxsize=4096)
def docs_of(space: SpaceDID, id: EntityId) -> tuple[Address, Address, Address]:
    """The charm's argument, internal and result documents (hashing ids costs; hot path)."""
    return charm_docs(space, id)


def require_charm(runtime: Runtime, space: SpaceDID, id: EntityId, principal: DID) -> None:
    """404 unless ``space`` records a charm ``id`` that ``principal`` can read."""
    _argument, internal, _result = docs_of(space, id)
    doc = Transaction(runtime, principal).read_doc(space, internal.id)
    record = doc.get("$charm") if isinstance(doc, dict) else None
    if not isinstance(record, dict) or record.get("id") != id:
        raise CharmNotFoundError(space, id)


@contextmanager
def acting(principal: DID) -> Iterator[None]:
    """Runtime code called in this block acts for ``principal`` (never the runtime's user)."""
    token = context.enter(principal=principal)
    try:
        yield
    finally:
        context.leave(token)
