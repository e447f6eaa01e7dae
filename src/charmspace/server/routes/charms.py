"""Charms in a space: create from an installed pattern, list, read, remove, cells and streams."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from charmspace.errors import (
    AuthorizationError,
    CharmspaceError,
    PatternError,
    SchemaError,
    UnknownCellError,
)
from charmspace.facade import Runtime
from charmspace.identity import parse_did
from charmspace.patterns.charms import Charm, refuse_unfollowable_link
from charmspace.patterns.edits import checked_write
from charmspace.patterns.markers import NAME, UI
from charmspace.runtime import Stream
from charmspace.runtime.address import Address, is_stream_marker, link_to
from charmspace.runtime.cell import to_json
from charmspace.runtime.transaction import Transaction
from charmspace.server.causes import charm_ids, describe
from charmspace.server.deps import (
    PatternsDep,
    PrincipalDep,
    RuntimeDep,
    acting,
    cell_path,
    charm_id,
    charm_param,
    docs_of,
    require,
    require_charm,
    shown,
    space_param,
)
from charmspace.server.models import (
    Accepted,
    CallOutcome,
    CellValue,
    CellWritten,
    CharmInfo,
    CharmSummary,
    CommitOutcome,
    CreateCharm,
    ErrorInfo,
    Event,
    Linked,
    LinkInput,
    LogEntry,
)
from charmspace.storage import Capability
from charmspace.storage.ids import entity_id
from charmspace.storage.model import LogEntry as StoredLogEntry
from charmspace.types import DID, EntityId, SpaceDID
from charmspace.values import setpath

router = APIRouter(prefix="/api/spaces/{space}/charms", tags=["charms"])

SpaceDep = Annotated[SpaceDID, Depends(space_param)]
CharmDep = Annotated[EntityId, Depends(charm_param)]


@router.get("")
async def list_charms(
    space: SpaceDep, runtime: RuntimeDep, principal: PrincipalDep
) -> list[CharmInfo]:
    """The charms recorded in the space (needs READ)."""
    require(runtime, space, principal, Capability.READ, "list charms")
    return runtime.charms.list(space, principal=principal)


@router.post("", status_code=201)
async def create_charm(
    space: SpaceDep,
    body: CreateCharm,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    installed: PatternsDep,
) -> CharmInfo:
    """Create and start a charm of an installed pattern, named by its name (needs WRITE).

    Only installed patterns can be named (see ``GET /api/patterns``): a request
    never makes the server import anything.
    """
    pattern = installed.get(body.pattern)
    if pattern is None:
        names = sorted(installed)
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        raise PatternError(
            f"No installed pattern is named {body.pattern[:80]!r}; installed: "
            f"{shown or 'none'}. `charmspace patterns` (GET /api/patterns) lists them "
            "with their inputs."
        )
    if space != principal or runtime.storage.has_space(space):
        require(runtime, space, principal, Capability.WRITE, "create a charm")
    # else: the caller's own home space, which ``create`` makes once the pattern built
    # (the request's signature proves the caller holds its key).
    with acting(principal):
        charm = await runtime.charms.create(
            pattern, space=space, inputs=body.inputs, principal=principal
        )
    record = Transaction(runtime, principal).read(charm.internal.address, deep=False)
    created = record.get("$charm", {}).get("created_at", 0) if isinstance(record, dict) else 0
    return CharmInfo(
        id=charm.id,
        space=space,
        pattern=pattern.name,
        import_path=pattern.import_path,
        created_at=float(created),
    )


@router.get("/{id}")
async def get_charm(
    space: SpaceDep, id: CharmDep, runtime: RuntimeDep, principal: PrincipalDep
) -> CharmSummary:
    """The charm's pattern, name, result (links resolved) and last error (needs READ)."""
    require(runtime, space, principal, Capability.READ, "read a charm")
    require_charm(runtime, space, id, principal)
    _argument, internal, result_address = docs_of(space, id)
    tx = Transaction(runtime, principal)
    record = tx.read(internal, deep=False)
    info: Any = record.get("$charm", {}) if isinstance(record, dict) else {}
    result = tx.read(result_address)
    visible = (
        {k: v for k, v in result.items() if k not in (NAME, UI)}
        if isinstance(result, dict)
        else result
    )
    name = result.get(NAME) if isinstance(result, dict) else None
    error = tx.read_doc(space, _error_id(space, id))
    return CharmSummary(
        id=id,
        space=space,
        pattern=str(info.get("pattern", "?")),
        import_path=str(info.get("import", "")),
        name=name,
        result=shown(runtime, space, principal, visible),  # type: ignore[arg-type]
        error=error,  # type: ignore[arg-type]
    )


def _error_id(space: SpaceDID, id: EntityId) -> EntityId:
    """The id of the charm's error cell (where ``Unit`` keeps it)."""
    return entity_id({"unit": id, "cell": "error"})


@router.delete("/{id}", status_code=204)
async def remove_charm(
    space: SpaceDep, id: CharmDep, runtime: RuntimeDep, principal: PrincipalDep
) -> Response:
    """Stop the charm and delete its documents (needs WRITE)."""
    require(runtime, space, principal, Capability.WRITE, f"remove charm {id}")
    require_charm(runtime, space, id, principal)
    with acting(principal):
        await runtime.charms.remove(space, id, principal=principal)
    return Response(status_code=204)


@router.get("/{id}/cells/{path:path}")
async def get_cell(
    space: SpaceDep, id: CharmDep, path: str, runtime: RuntimeDep, principal: PrincipalDep
) -> CellValue:
    """The value at ``path`` in the charm's result (``a/0/b``; links resolved). Needs READ."""
    segments = cell_path(path)
    require(runtime, space, principal, Capability.READ, "read a cell")
    require_charm(runtime, space, id, principal)
    address = docs_of(space, id)[2].key(*segments)
    tx = Transaction(runtime, principal)
    require_result_name(tx, id, address)
    value = tx.read(address)
    value = shown(runtime, space, principal, value, path=segments)
    return CellValue(value=value)  # type: ignore[arg-type]


def require_result_name(tx: Transaction, id: EntityId, address: Address) -> None:
    """404 :class:`UnknownCellError` if the first segment of ``address`` is not in the result.

    Why: a misspelt ``cells/vaule`` read as null and an edit of it added the
    typo to the charm's result, so the mistake showed up much later as a
    wrong value. Deeper segments are the cell's own business (a list grows).
    """
    if not address.path:
        return
    result = tx.read(Address(address.space, address.id), deep=False, track=False)
    name = address.path[0]
    if isinstance(result, dict) and name not in result:
        raise UnknownCellError(id, str(name), sorted(result))


@router.put("/{id}/cells/{path:path}")
async def set_cell(
    space: SpaceDep,
    id: CharmDep,
    path: str,
    body: CellValue,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> CellWritten:
    """Set the value at ``path`` in the charm's result (needs WRITE; derived cells refuse: 409).

    A value of the wrong type for the charm's input it lands in is refused (400,
    nothing written): see :mod:`charmspace.patterns.edits`.
    """
    segments = cell_path(path)
    if not segments:
        raise SchemaError((), "name a cell inside the result; the result itself is not editable")
    require(runtime, space, principal, Capability.WRITE, "edit a cell")
    require_charm(runtime, space, id, principal)
    with acting(principal):
        await runtime.charms.get(space, id)  # running, so its derived values follow the edit
    address = docs_of(space, id)[2].key(*segments)
    tx = Transaction(runtime, principal, meta={"edit": "api"})
    try:
        require_result_name(tx, id, address)
        checked_write(runtime.charms, tx, address, to_json(body.value))
        result = await tx.commit_to(runtime.store)
    except BaseException:
        if tx.state == "open":
            tx.abort()
        raise
    return CellWritten(ok=result.ok, space=result.space, seq=result.seq)


@router.post("/{id}/streams/{name}", responses={200: {"model": CallOutcome | CommitOutcome}})
async def send_event(
    space: SpaceDep,
    id: CharmDep,
    name: str,
    body: Event,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    response: Response,
    wait: Annotated[Literal["none", "commit", "result"], Query()] = "none",
) -> Accepted | CommitOutcome | CallOutcome:
    """Send an event to the charm's stream ``name`` (needs WRITE).

    ``wait=none`` (202): queued. ``wait=commit``: the handler's commit result.
    ``wait=result``: the handler's return value once it committed (a call).
    An event its handler's type refuses is 400; an error the handler raised is
    ``ok: false`` with the error's type (and message, for charmspace errors).
    """
    require(runtime, space, principal, Capability.WRITE, "send an event")
    require_charm(runtime, space, id, principal)
    with acting(principal):
        charm = await runtime.charms.get(space, id)
        stream = _stream(runtime, charm, name, principal)
        target = runtime.scheduler.resolve_stream(stream.address, principal)
        if target.spec is not None and target.spec.validate is not None:
            # Refused here, the event writes nothing; refused by the scheduler, it
            # would be recorded in the charm's error cell.
            target.spec.validate(to_json(body.event))
        if wait == "result":
            called = await stream.call(body.event, principal=principal)
            _raise_client_error(called.error)
            return CallOutcome(
                ok=called.ok,
                value=called.value,  # type: ignore[arg-type]
                space=called.space,
                seq=called.seq,
                error=_error_info(called.error),
            )
        delivery = stream.send(body.event, principal=principal)
        if wait == "commit":
            committed = await delivery
            _raise_client_error(committed.error)
            return CommitOutcome(
                ok=committed.ok,
                space=committed.space,
                seq=committed.seq,
                error=_error_info(committed.error),
            )
    response.status_code = 202
    return Accepted(accepted=True)


def _stream(runtime: Runtime, charm: Charm, name: str, principal: DID) -> Stream[Any]:
    """The charm's stream ``name``: one read when it is one (``charm.stream`` reads every key)."""
    address = charm.result.address.key(name)
    try:
        value = Transaction(runtime, principal).read(address, deep=False)
    except CharmspaceError:
        value = None
    if is_stream_marker(value):
        return Stream(runtime, address)
    return charm.stream(name)  # UnknownStreamError, listing the charm's streams


def _raise_client_error(error: BaseException | None) -> None:
    """An event refused for the caller's own mistake or rights is an HTTP error, not a result."""
    if isinstance(error, SchemaError | AuthorizationError):
        raise error


def _error_info(error: BaseException | None) -> ErrorInfo | None:
    if error is None:
        return None
    # Only charmspace errors promise never to carry values; others may hold anything.
    message = str(error) if isinstance(error, CharmspaceError) else "The handler raised an error."
    return ErrorInfo(type=type(error).__name__, message=message)


@router.get("/{id}/log")
async def charm_log(
    space: SpaceDep,
    id: CharmDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    since: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[LogEntry]:
    """The commits of the space after ``since`` that touched this charm, oldest first (READ).

    A commit touched the charm if its handler ran, or it wrote one of the
    charm's documents or a cell its result links to (derived values, inputs).
    Each entry says as whom it ran (``principal``) and why (``cause``).
    """
    require(runtime, space, principal, Capability.READ, "read a charm's log")
    require_charm(runtime, space, id, principal)
    tx = Transaction(runtime, principal)
    ids = charm_ids(tx, space, id)
    found: list[StoredLogEntry] = []
    while len(found) < limit:
        page = runtime.storage.log(space, principal, since=since, limit=1000)
        if not page:
            break
        found.extend(e for e in page if e.meta.get("charm") == id or not ids.isdisjoint(e.ids))
        since = page[-1].seq
    return describe(tx, space, found[:limit])


@router.put("/{id}/inputs/{name}")
async def link_input(
    space: SpaceDep,
    id: CharmDep,
    name: str,
    body: LinkInput,
    runtime: RuntimeDep,
    principal: PrincipalDep,
) -> Linked:
    """Link the charm's input ``name`` to a cell of another charm (any space): data flows live.

    Needs WRITE on this charm's space and READ on the source's. The link
    replaces the input (a previous link or value); the commit's cause is ``link``.
    """
    source_space = body.source.space
    parse_did(source_space)
    source_id = charm_id(body.source.id)
    segments = cell_path(body.source.path)
    require(runtime, space, principal, Capability.WRITE, "link a charm's input")
    require_charm(runtime, space, id, principal)
    require(runtime, source_space, principal, Capability.READ, "link from a charm")
    require_charm(runtime, source_space, source_id, principal)
    with acting(principal):
        target = await runtime.charms.get(space, id)
    if name not in target.pattern.inputs:
        raise PatternError(
            f"Pattern {target.pattern.name} has no input {name[:80]!r} "
            f"(its inputs: {', '.join(target.pattern.inputs) or 'none'})."
        )
    source = docs_of(source_space, source_id)[2].key(*segments)
    tx = Transaction(runtime, principal, meta={"link": name})
    try:
        require_result_name(tx, source_id, source)
        # A stream is linked as is; a cell with a redirect link, so writes reach the source.
        redirect = not is_stream_marker(tx.read(source, deep=False))
        argument = docs_of(space, id)[0]
        doc = tx.read_doc(space, argument.id)
        tx.write_doc(space, argument.id, setpath(doc, (name,), link_to(source, redirect=redirect)))
        refuse_unfollowable_link(tx, id, argument.key(name), source)
        result = await tx.commit_to(runtime.store)
    except BaseException:
        if tx.state == "open":
            tx.abort()
        raise
    return Linked(ok=result.ok, space=space, seq=result.seq)
