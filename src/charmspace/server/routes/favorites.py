"""The caller's favorites and wishes (``#tag`` lookups among them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from charmspace.errors import PatternError
from charmspace.identity import parse_did
from charmspace.patterns.builtins import check_wish_query
from charmspace.patterns.index import favorites_address
from charmspace.runtime.transaction import Transaction
from charmspace.server.deps import (
    PrincipalDep,
    RuntimeDep,
    acting,
    charm_id,
    require,
    require_charm,
)
from charmspace.server.models import CharmRef, Favorite, Wish
from charmspace.storage import Capability
from charmspace.types import DID

router = APIRouter(tags=["favorites"])


def _favorites(runtime: Any, principal: DID) -> list[dict[str, Any]]:
    if not runtime.storage.has_space(principal):
        return []
    value = Transaction(runtime, principal).read(favorites_address(principal), deep=False)
    return [dict(e) for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _favorite(entry: dict[str, Any]) -> Favorite:
    return Favorite(
        id=str(entry.get("id")),
        space=str(entry.get("space")),
        name=str(entry.get("name")),
        tags=[t for t in entry.get("tags", ()) if isinstance(t, str)],
    )


@router.get("/api/favorites")
async def list_favorites(runtime: RuntimeDep, principal: PrincipalDep) -> list[Favorite]:
    """The caller's favorites, oldest first."""
    return [_favorite(e) for e in _favorites(runtime, principal)]


@router.post("/api/favorites", status_code=201)
async def add_favorite(body: CharmRef, runtime: RuntimeDep, principal: PrincipalDep) -> Favorite:
    """Favorite a charm the caller can read (kept in the caller's home space)."""
    parse_did(body.space)
    id = charm_id(body.id)
    require(runtime, body.space, principal, Capability.READ, "favorite a charm")
    require_charm(runtime, body.space, id, principal)
    with acting(principal):
        charm = await runtime.charms.get(body.space, id)
        await runtime.favorites(principal).add(charm)
    return Favorite(id=charm.id, space=charm.space, name=charm.name, tags=list(charm.tags))


@router.delete("/api/favorites", status_code=204)
async def remove_favorite(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    space: Annotated[str, Query(max_length=128)],
    id: Annotated[str, Query(max_length=200)],
) -> Response:
    """Unfavorite a charm (nothing happens if it was not a favorite)."""
    parse_did(space)
    if runtime.storage.has_space(principal):
        address = favorites_address(principal)
        async with runtime.edit(principal) as tx:
            current = tx.read(address, deep=False)
            entries = list(current) if isinstance(current, list) else []
            kept = [
                e
                for e in entries
                if not (isinstance(e, dict) and e.get("id") == id and e.get("space") == space)
            ]
            if len(kept) != len(entries):
                tx.write(address, kept)
    return Response(status_code=204)


@router.get("/api/wish")
async def wish(
    runtime: RuntimeDep, principal: PrincipalDep, q: Annotated[str, Query(max_length=100)]
) -> Wish:
    """Resolve ``#tag`` among the caller's favorites (``#favorites``: all of them)."""
    query = check_wish_query(q)
    if query == "/":
        raise PatternError("wish('/') lists a charm's own space; over HTTP, list its charms")
    entries = _favorites(runtime, principal)
    if query == "#favorites":
        matches = entries
    else:
        wanted = query.lower()
        matches = [
            e
            for e in entries
            if any(isinstance(t, str) and t.lower() == wanted for t in e.get("tags", ()))
        ]
    found = [_favorite(e) for e in matches]
    return Wish(query=query, result=found[0] if found else None, candidates=found)
