"""Liveness, the server's identity, and the installed patterns."""

from __future__ import annotations

from fastapi import APIRouter, Request

from charmspace import __version__
from charmspace.server.deps import PatternsDep, PrincipalDep
from charmspace.server.models import Health, Meta, PatternInfo

router = APIRouter()


@router.get("/_health", tags=["meta"])
async def health(request: Request) -> Health:
    """``{"ok": true}`` once storage is open (the lifespan opened it before serving)."""
    return Health(ok=getattr(request.app.state, "runtime", None) is not None)


@router.get("/api/meta", tags=["meta"])
async def meta(request: Request) -> Meta:
    """The server's DID and version (no signature needed)."""
    return Meta(server=request.app.state.server_did, version=__version__)


@router.get("/api/patterns", tags=["patterns"])
async def patterns(principal: PrincipalDep, installed: PatternsDep) -> list[PatternInfo]:
    """The installed patterns (as of the server's start) with their input schemas."""
    return [
        PatternInfo(
            name=name,
            import_path=p.import_path,
            tags=list(p.tags),
            description=p.description,
            inputs=dict(p.input_schema),
        )
        for name, p in sorted(installed.items())
    ]
