"""Spaces: list, create (with proof of the space's key), the ACL, the log, point-in-time reads."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from charmspace.errors import SpaceExistsError
from charmspace.identity import parse_did, verify
from charmspace.server.deps import PrincipalDep, RuntimeDep, require, space_param
from charmspace.server.errors import AuthenticationError, BadRequestError
from charmspace.server.models import AclChange, CreateSpace, Document, LogEntry, SpaceInfo
from charmspace.signing import b64decode, space_message
from charmspace.storage import Capability
from charmspace.storage.model import ANYONE, SpaceRecord
from charmspace.types import SpaceDID

router = APIRouter(prefix="/api/spaces", tags=["spaces"])

SpaceDep = Annotated[SpaceDID, Depends(space_param)]
PROOF_WINDOW = 300.0


def _info(record: SpaceRecord) -> SpaceInfo:
    return SpaceInfo(
        space=record.space,
        owner=record.owner,
        acl={subject: Capability(c).name for subject, c in record.acl.items()},  # type: ignore[misc]
        created_at=record.created_at,
    )


@router.get("")
async def list_spaces(runtime: RuntimeDep, principal: PrincipalDep) -> list[SpaceInfo]:
    """The spaces the caller can read."""
    return [_info(r) for r in runtime.storage.spaces(principal)]


@router.post("", status_code=201, responses={200: {"model": SpaceInfo}})
async def create_space(
    body: CreateSpace, response: Response, runtime: RuntimeDep, principal: PrincipalDep
) -> SpaceInfo:
    """Create the caller's home space or a named space (201); 200 if the caller has it already."""
    space = body.space
    parse_did(space)
    if space != principal:
        _check_proof(space, principal, body)
    storage = runtime.storage
    if storage.has_space(space):
        record = storage.space(space, principal)
        if record.owner != principal:
            raise SpaceExistsError(space)
        response.status_code = 200
        return _info(record)
    try:
        return _info(storage.create_space(space, principal))
    except SpaceExistsError:  # created concurrently
        record = storage.space(space, principal)
        response.status_code = 200
        return _info(record)


def _check_proof(space: SpaceDID, principal: str, body: CreateSpace) -> None:
    if body.proof is None or body.issued_at is None:
        raise BadRequestError(
            "Creating a space other than your home space needs issued_at and proof: the "
            "space key's signature (see docs/server.md).",
            "body",
        )
    if abs(time.time() - body.issued_at) > PROOF_WINDOW:
        raise AuthenticationError(
            "proof_expired",
            f"The space proof's issued_at is more than {PROOF_WINDOW:g} s from the server's "
            f"time {int(time.time())}.",
            server_time=time.time(),
        )
    signature = b64decode(body.proof)
    if (
        signature is None
        or len(signature) != 64
        or not verify(space, space_message(space, principal, body.issued_at), signature)
    ):
        raise AuthenticationError(
            "bad_proof", "The proof is not the space key's signature over this creation."
        )


@router.get("/{space}/acl")
async def get_acl(space: SpaceDep, runtime: RuntimeDep, principal: PrincipalDep) -> SpaceInfo:
    """The space's owner and ACL (needs READ)."""
    return _info(runtime.storage.space(space, principal))


@router.put("/{space}/acl")
async def set_acl(
    space: SpaceDep, body: AclChange, runtime: RuntimeDep, principal: PrincipalDep
) -> SpaceInfo:
    """Grant ``capability`` to ``subject`` (a DID or ``*``), or revoke with null. Needs OWNER."""
    if body.subject != ANYONE:
        parse_did(body.subject)
    capability = None if body.capability is None else Capability[body.capability]
    return _info(runtime.storage.set_acl(space, principal, body.subject, capability))


@router.get("/{space}/log")
async def log(
    space: SpaceDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    since: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[LogEntry]:
    """Commits after seq ``since``, oldest first: who, when, which documents (never values)."""
    return [
        LogEntry(
            seq=e.seq,
            principal=e.principal,
            time=e.time,
            ids=list(e.ids),
            meta=dict(e.meta),  # type: ignore[arg-type]
        )
        for e in runtime.storage.log(space, principal, since=since, limit=limit)
    ]


@router.get("/{space}/head")
async def head(space: SpaceDep, runtime: RuntimeDep, principal: PrincipalDep) -> int:
    """The seq of the space's latest commit (0 for an empty space)."""
    return runtime.storage.head(space, principal)


@router.get("/{space}/docs/{id}")
async def document(
    space: SpaceDep,
    id: str,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    at: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> Document:
    """A document's value now, or as of commit ``at``."""
    require(runtime, space, principal, Capability.READ, "read")
    rev = runtime.storage.read(space, id, principal, at=at)
    return Document(space=space, id=id, seq=rev.seq, exists=rev.exists, value=rev.value)  # type: ignore[arg-type]
