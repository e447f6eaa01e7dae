"""Spaces: list, create (with proof of the space's key), the ACL, the log, point-in-time reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from charmspace.errors import SpaceExistsError
from charmspace.identity import parse_did
from charmspace.runtime.transaction import Transaction
from charmspace.server.causes import describe
from charmspace.server.deps import PrincipalDep, RuntimeDep, require, shown, space_param
from charmspace.server.errors import BadRequestError
from charmspace.server.models import AclChange, CreateSpace, Document, LogEntry, SpaceInfo
from charmspace.signing import b64decode
from charmspace.storage import Capability
from charmspace.storage.model import ANYONE, SpaceRecord
from charmspace.types import SpaceDID

router = APIRouter(prefix="/api/spaces", tags=["spaces"])

SpaceDep = Annotated[SpaceDID, Depends(space_param)]


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
    """Create the caller's home space or a named space (201); 200 if the caller has it already.

    Storage decides who may create a space: its DID's holder, so the caller's
    own DID, or a space whose key signed ``proof`` for the caller (403 otherwise).
    """
    space = body.space
    parse_did(space)
    proof = None
    if body.proof is not None:
        proof = b64decode(body.proof)
        if proof is None:
            raise BadRequestError("proof is not unpadded base64url.", "body/proof")
    storage = runtime.storage
    if storage.has_space(space):
        record = storage.space(space, principal)
        if record.owner != principal:
            raise SpaceExistsError(space)
        response.status_code = 200
        return _info(record)
    try:
        return _info(storage.create_space(space, principal, proof=proof))
    except SpaceExistsError:  # created concurrently
        record = storage.space(space, principal)
        response.status_code = 200
        return _info(record)


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
    """Commits after seq ``since``, oldest first: who, when, why, which documents (never values).

    ``principal`` is the DID the commit ran as; ``cause`` says what made it
    (an event on a stream, a direct edit, derived values, a start-up, …).
    """
    commits = runtime.storage.log(space, principal, since=since, limit=limit)
    return describe(Transaction(runtime, principal), space, commits)


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
    """A document's value now, or as of commit ``at`` (secret fields masked in the past)."""
    require(runtime, space, principal, Capability.READ, "read")
    rev = runtime.storage.read(space, id, principal, at=at)
    value = shown(runtime, space, principal, rev.value, past=at is not None)
    return Document(space=space, id=id, seq=rev.seq, exists=rev.exists, value=value)  # type: ignore[arg-type]
