"""What caused a commit, read from the meta the runtime records with it.

The principal says *as whom* a commit ran; the cause says *why*: an event a
handler took, a direct edit, a derived value, a charm's start-up. The runtime
writes a small meta mapping with each commit (``{"handler": …, "charm": …}``,
``{"derived": True}``, …); this module names those shapes once, so the log
routes and their readers never guess from raw keys.

A handler's meta names the handler as the charm's builder did
(``handler2_increment``); the stream a user sent the event to is the key of the
charm's result that links to that handler, so :func:`describe` looks it up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from charmspace.errors import CharmspaceError
from charmspace.patterns.build import charm_docs
from charmspace.runtime.address import is_link, parse_link
from charmspace.runtime.transaction import Transaction
from charmspace.server.models import Cause, CauseKind, LogEntry
from charmspace.storage.model import LogEntry as Commit
from charmspace.types import EntityId, JSONValue, SpaceDID

# The meta key that marks each kind, in the order they are checked.
_KEYS: tuple[tuple[str, CauseKind], ...] = (
    ("handler", "event"),
    ("link", "link"),
    ("edit", "edit"),
    ("derived", "derived"),
    ("start", "start"),
    ("create", "create"),
    ("rebuild", "rebuild"),
    ("remove", "remove"),
    ("job", "job"),
    ("jobs", "job"),
    ("error", "error"),
    ("outbox", "outbox"),
)


def cause_of(meta: Mapping[str, JSONValue], streams: Mapping[str, str] | None = None) -> Cause:
    """The cause a commit's meta records (``other`` for a meta no part of charmspace writes).

    ``streams`` maps the charm's handler names to the stream names its result shows.
    """
    for key, kind in _KEYS:
        if key in meta:
            detail = meta[key]
            charm = meta.get("charm")
            handler = detail if kind == "event" and isinstance(detail, str) else None
            return Cause(
                kind=kind,
                detail=detail if isinstance(detail, str) else None,
                charm=charm if isinstance(charm, str) else None,
                stream=(streams or {}).get(handler) if handler else None,
            )
    return Cause(kind="other", detail=None, charm=None, stream=None)


def _result(tx: Transaction, space: SpaceDID, id: EntityId) -> Any:
    try:
        return tx.read_doc(space, charm_docs(space, id)[2].id, track=False)
    except CharmspaceError:  # a charm id from a commit's meta is data: then no stream to show
        return None


def stream_names(result: Any) -> dict[str, str]:
    """Handler name → the result key whose link points at that handler's stream."""
    names: dict[str, str] = {}
    if isinstance(result, Mapping):
        for key, value in result.items():
            if isinstance(key, str) and is_link(value):
                body = value["/"]["link@1"]
                path = body.get("path") if isinstance(body, Mapping) else None
                if isinstance(path, list | tuple) and len(path) == 2 and path[0] == "streams":
                    names.setdefault(str(path[1]), key)
    return names


def charm_ids(tx: Transaction, space: SpaceDID, id: EntityId) -> set[EntityId]:
    """The documents of charm ``id``: its own three and the cells its result links to."""
    docs = charm_docs(space, id)
    ids = {address.id for address in docs}
    result = _result(tx, space, id)
    if isinstance(result, Mapping):
        for value in result.values():
            if is_link(value):
                try:
                    target, _redirect = parse_link(value, docs[2])
                except CharmspaceError:  # a malformed link is data: it names no document
                    continue
                if target.space == space:
                    ids.add(target.id)
    return ids


def describe(tx: Transaction, space: SpaceDID, commits: Iterable[Commit]) -> list[LogEntry]:
    """The log entries as the API shows them: who, when, which documents, and why."""
    streams: dict[str, dict[str, str]] = {}
    entries = []
    for commit in commits:
        charm = commit.meta.get("charm")
        if isinstance(charm, str) and charm not in streams:
            streams[charm] = stream_names(_result(tx, space, charm))
        entries.append(
            LogEntry(
                seq=commit.seq,
                principal=commit.principal,
                time=commit.time,
                ids=list(commit.ids),
                meta=dict(commit.meta),  # type: ignore[arg-type]
                cause=cause_of(commit.meta, streams.get(charm) if isinstance(charm, str) else None),
            )
        )
    return entries
