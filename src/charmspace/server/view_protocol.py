"""The web shell's view protocol on ``/api/ws``: views of charm UIs, events and edits.

Client frames (``type``): ``hello {v, tab, csrf}``, ``open {id, view, charm}``,
``close {id, view}``, ``event {id, view, node, name, detail}`` and
``edit {id, view, node, prop, value, base}``. Server frames: ``welcome``,
``mount``, ``patch``, ``ack``, ``nack``, ``error`` and ``bye``, each with the
connection's next ``seq``. docs/shell.md describes every field.

Why the server holds so little: a view is its charm plus the last tree sent, and
both are rebuilt from cells, so a restart loses nothing the page cannot get
back by opening its views again. The connection listens to every space its
views read (an embedded charm's too, if the user may read it); a commit marks
the documents it changed, and one refresh per loop turn renders again only
the nodes that read them (:meth:`~charmspace.server.views.Table.update`): one
patch per view. Frames are handled one at a time in arrival order; after an
event or edit commits, its patch is queued at once, then the space's derived
values are awaited (bounded by ``PROPAGATION_WAIT``) and theirs queued, all
*before* the ``ack`` naming the commit, so the page never sees an acknowledged
commit whose effect it has not been shown.

An edit is checked against the types of the charm inputs it lands in
(:func:`~charmspace.patterns.edits.checked_write`); a refused one writes
nothing, records nothing and is answered with a ``nack`` naming the
:class:`~charmspace.errors.InputTypeError`.

A client frame id (``"<tab>:<n>"``) is recorded with the commit it causes: an
event's in the target charm's inbox (the same record that makes a durable send
apply once), an edit's in a small document of the space written in the edit's
own commit. A frame resent after a reconnect, even to a restarted server, is
therefore applied once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import re
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from charmspace.errors import CharmspaceError, SchemaError
from charmspace.facade import Runtime
from charmspace.identity import is_did
from charmspace.patterns.edits import checked_write
from charmspace.patterns.render import UI_KEY
from charmspace.runtime import outbox
from charmspace.runtime.address import Address
from charmspace.runtime.cell import to_json
from charmspace.runtime.schema import json_schema_for
from charmspace.runtime.stream import Delivery
from charmspace.runtime.transaction import DocKey, Transaction
from charmspace.server.deps import acting, charm_id, require, require_charm
from charmspace.server.errors import BadRequestError, ServerBusyError, error_body
from charmspace.server.views import Table, render
from charmspace.storage import Capability
from charmspace.storage.ids import entity_id
from charmspace.storage.model import Change
from charmspace.types import DID, EntityId, JSONValue, SpaceDID

if TYPE_CHECKING:
    from charmspace.patterns.charms import Charm

log = logging.getLogger(__name__)

VERSION = 1
MAX_VIEWS = 64
MAX_EVENTS_PER_SECOND = 50
PROPAGATION_WAIT = 2.0
"""Seconds an ``ack`` waits for the derived values of its commit before it is sent anyway."""
DEDUP_WINDOW = 1024
"""Frame numbers of one tab that the dedup records remember (newest first)."""

_TAB = re.compile(r"[A-Za-z0-9_-]{1,64}")
_VIEW = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_EVENT = re.compile(r"[a-z][a-z0-9_]{0,31}")

Enqueue = Callable[[dict[str, Any]], None]


@dataclass(slots=True)
class View:
    """One charm UI shown in the page: the charm and the tree last sent."""

    name: str
    space: SpaceDID
    charm_id: EntityId
    charm: Charm
    table: Table
    error: JSONValue = None
    jobs: JSONValue = None
    seen: int = 0  # the space's commit the last rendering is current as of
    changed: set[DocKey] = field(default_factory=set)  # read by the view, changed since
    check_error: bool = False  # a commit of its space since the error cell was last read


@dataclass(eq=False, slots=True)
class _TabSend(outbox.StagedSend):
    """A page's event, recorded in the target's inbox under its tab (see module docstring)."""

    tab_key: str = ""

    @property
    def sender(self) -> str:
        return self.tab_key


class ViewProtocol:
    """The view half of one ``/api/ws`` connection, acting as ``principal``."""

    def __init__(
        self, runtime: Runtime, principal: DID, csrf: str | None, enqueue: Enqueue
    ) -> None:
        self.runtime = runtime
        self.principal = principal
        self.csrf = csrf  # the session's token, which hello must echo (None: a signed upgrade)
        self.enqueue = enqueue
        self.tab: str | None = None
        self.views: dict[str, View] = {}
        self.unsubscribers: dict[SpaceDID, Callable[[], None]] = {}
        self.notified: dict[SpaceDID, int] = {}  # per space: the last commit heard of
        self.refresh_scheduled = False
        self.loop = asyncio.get_running_loop()
        self.events: list[float] = []
        self.ended = False  # a bye was sent: the connection closes once it left

    def close(self) -> None:
        for unsubscribe in self.unsubscribers.values():
            unsubscribe()
        self.unsubscribers.clear()
        self.views.clear()

    async def handle(self, frame: dict[str, Any]) -> None:
        """One client frame; every failure becomes a ``nack`` (or ``bye`` before hello)."""
        kind = frame.get("type")
        if kind == "hello":
            self._hello(frame)
            return
        if self.tab is None:
            self._bye("send hello first")
            return
        id = frame.get("id")
        if not isinstance(id, str) or self._frame_number(id) is None:
            self.enqueue(
                {
                    "type": "nack",
                    "id": id if isinstance(id, str) else None,
                    "error": error_body(BadRequestError(f"id is '{self.tab}:<n>'.", "id")),
                }
            )
            return
        try:
            if kind == "open":
                await self._open(id, frame)
            elif kind == "close":
                self._close(id, frame)
            elif kind == "event":
                await self._event(id, frame)
            elif kind == "edit":
                await self._edit(id, frame)
            else:
                raise BadRequestError("type is hello, open, close, event or edit.", "type")
        except CharmspaceError as error:
            self.enqueue({"type": "nack", "id": id, "error": error_body(error)})
        except Exception:  # a bug of ours: the page gets an answer, the log the traceback
            log.exception("the view protocol failed on a %s frame", kind)
            self.enqueue({"type": "nack", "id": id, "error": _INTERNAL})

    # --- frames -----------------------------------------------------------------------

    def _hello(self, frame: dict[str, Any]) -> None:
        tab = frame.get("tab")
        if frame.get("v") != VERSION or not isinstance(tab, str) or not _TAB.fullmatch(tab):
            self._bye(f"hello needs v={VERSION} and a tab id")
            return
        if self.csrf is not None and frame.get("csrf") != self.csrf:
            self._bye("hello's csrf is not this session's token")
            return
        self.tab = tab
        self.enqueue({"type": "welcome", "v": VERSION, "did": self.principal})

    def _bye(self, reason: str) -> None:
        self.enqueue({"type": "bye", "reason": reason})
        self.ended = True

    def _frame_number(self, id: str) -> int | None:
        tab, _, number = id.partition(":")
        if tab != self.tab or not number.isascii() or not number.isdigit() or len(number) > 15:
            return None
        return int(number)

    async def _open(self, id: str, frame: dict[str, Any]) -> None:
        name = _view_name(frame)
        charm = frame.get("charm")
        if not isinstance(charm, dict):
            raise BadRequestError("charm is {space, id}.", "charm")
        space, cid = charm.get("space"), charm.get("id")
        if not isinstance(space, str) or not is_did(space):
            raise BadRequestError("charm.space is a space's did:key.", "charm.space")
        if not isinstance(cid, str):
            raise BadRequestError("charm.id is a charm id.", "charm.id")
        cid = charm_id(cid)
        if name not in self.views and len(self.views) >= MAX_VIEWS:
            raise BadRequestError(f"At most {MAX_VIEWS} views per connection.", "view")
        require(self.runtime, space, self.principal, Capability.READ, "open a charm")
        require_charm(self.runtime, space, cid, self.principal)
        with acting(self.principal):
            running = await self.runtime.charms.get(space, cid)
        view = View(name, space, cid, running, Table(None))
        previous = self.views.get(name)
        self.views[name] = view
        self._subscribe()  # before the rendering: no commit slips in between unheard
        commit = self._head(space)
        try:
            view.table = self._render(view)  # a UI that cannot be shown is refused, not kept
        except BaseException:
            if previous is None:
                del self.views[name]
            else:
                self.views[name] = previous
            self._subscribe()
            raise
        view.seen = commit
        self._subscribe()  # the spaces of embedded charms, now that they are known
        self.enqueue(
            {"type": "mount", "view": view.name, "commit": commit, "root": view.table.root}
        )
        self._send_error(view)
        self.enqueue({"type": "ack", "id": id, "commit": commit})

    def _close(self, id: str, frame: dict[str, Any]) -> None:
        if self.views.pop(_view_name(frame), None) is not None:
            self._subscribe()
        self.enqueue({"type": "ack", "id": id, "commit": None})

    async def _event(self, id: str, frame: dict[str, Any]) -> None:
        self._rate_limit()
        view, bound = self._node(frame)
        name = frame.get("name")
        if not isinstance(name, str) or not _EVENT.fullmatch(name):
            raise BadRequestError("name is an event name such as 'click'.", "name")
        stream = bound.streams.get(name)
        if stream is None:
            raise BadRequestError(f"Node {frame['node']} has no {name!r} handler.", "name")
        from charmspace.patterns.ui import sanitize_event

        detail = frame.get("detail")
        event = sanitize_event(detail if isinstance(detail, dict) else {})
        event.setdefault("type", name)
        require(self.runtime, stream.space, self.principal, Capability.WRITE, "send an event")
        with acting(self.principal):
            target = self.runtime.scheduler.resolve_stream(stream, self.principal)
            keys = _event_keys(target.spec.fn) if target.spec is not None else None
            if keys is not None:  # a closed event type: what the page adds is not the user's
                event = {k: v for k, v in event.items() if k in keys}
            if target.spec is not None and target.spec.validate is not None:
                target.spec.validate(to_json(event))  # refused here, it writes nothing
            number = self._frame_number(id) or 0
            send = _TabSend(
                id,
                target.address,
                event,
                self.principal,
                target.spec.unit.id if target.spec is not None else view.charm_id,
                outbox=None,
                seq=number,
                low=max(0, number - DEDUP_WINDOW),
                tab_key=f"tab {self.tab} {self.principal}",
            )
            delivery = Delivery(location=stream)
            self.runtime.scheduler.dispatch(target, event, self.principal, delivery, send=send)
        result = await delivery
        if not result.ok:
            await self._shown(stream.space, self._head(stream.space))  # the charm's error cell
            self.enqueue({"type": "nack", "id": id, "error": _handler_error(result.error)})
            return
        commit = result.seq or self._head(stream.space)
        await self._shown(stream.space, commit)
        self.enqueue({"type": "ack", "id": id, "commit": commit})

    async def _edit(self, id: str, frame: dict[str, Any]) -> None:
        _view, bound = self._node(frame)
        prop = frame.get("prop")
        if not isinstance(prop, str) or prop not in bound.cells:
            raise BadRequestError(f"Node {frame['node']} binds no prop {prop!r}.", "prop")
        if "value" not in frame:
            raise BadRequestError("edit needs a value.", "value")
        base = frame.get("base")
        if base is not None and not (isinstance(base, int) and not isinstance(base, bool)):
            raise BadRequestError("base is the commit the value was edited from.", "base")
        value = frame["value"]
        if isinstance(value, float) and not math.isfinite(value):
            raise SchemaError((), "the value is not a finite number")
        cell = bound.cells[prop]
        require(self.runtime, cell.space, self.principal, Capability.WRITE, "edit a cell")
        number = self._frame_number(id) or 0
        record = Address(cell.space, _frames_id(self.principal, self.tab or ""))
        tx = Transaction(self.runtime, self.principal, meta={"edit": "shell", "frame": id})
        try:
            seen = _seen(tx.read(record, track=False))
            if number in seen:  # a resend: committed before, perhaps by a server since restarted
                tx.abort()
                commit: int | None = self._head(cell.space)
            else:
                # Checked against the charm's input types like any edit from outside it;
                # a refusal raises before the frame is recorded, so a corrected resend
                # (a new frame) and even this frame again are judged afresh.
                checked_write(self.runtime.charms, tx, cell, to_json(value))
                kept = sorted({number, *seen}, reverse=True)[:DEDUP_WINDOW]
                tx.write(record, {"seen": kept})
                commit = (await tx.commit_to(self.runtime.store)).seq
        except BaseException:
            if tx.state == "open":
                tx.abort()
            raise
        await self._shown(cell.space, commit or self._head(cell.space))
        self.enqueue({"type": "ack", "id": id, "commit": commit})

    # --- rendering ----------------------------------------------------------------------

    def _node(self, frame: dict[str, Any]) -> tuple[View, Any]:
        view = self.views.get(_view_name(frame))
        if view is None:
            raise BadRequestError("No such view is open: open it first.", "view")
        node = frame.get("node")
        if not isinstance(node, str) or not 0 < len(node) <= 1000 or not node.isprintable():
            raise BadRequestError("node is a node id of the view.", "node")
        bound = view.table.bound.get(node)
        if bound is None:
            raise BadRequestError(f"Node {node} of view {view.name} has no handler or binding.")
        return view, bound

    def _render(self, view: View) -> Table:
        try:
            return render(self.runtime, self.principal, view.charm.result.address.key(UI_KEY))
        except ValueError as error:
            raise BadRequestError(f"The charm's UI cannot be shown: {error}.") from None

    def _send_error(self, view: View) -> None:
        """The charm's error cell and its jobs' status cells, when they changed."""
        tx = Transaction(self.runtime, self.principal)
        try:
            error = tx.read_doc(view.space, entity_id({"unit": view.charm_id, "cell": "error"}))
            jobs = tx.read_doc(view.space, entity_id({"unit": view.charm_id, "cell": "jobs"}))
        except CharmspaceError:
            error = jobs = None
        if error != view.error:
            view.error = error
            self.enqueue({"type": "error", "view": view.name, "error": error})
        if jobs != view.jobs:
            view.jobs = jobs
            self.enqueue({"type": "jobs", "view": view.name, "jobs": jobs})

    def _subscribe(self) -> None:
        """Listen to every space a view shows (embedded charms' too), and to no other.

        A space is only listened to if the user may read it: what the page is
        shown is read as the user, so another space's commits concern it only then.
        """
        wanted: set[SpaceDID] = set()
        for view in self.views.values():
            wanted.add(view.space)
            wanted.update(view.table.spaces)
        for space in [s for s in self.unsubscribers if s not in wanted]:
            self.unsubscribers.pop(space)()
            self.notified.pop(space, None)
        for space in wanted - self.unsubscribers.keys():
            try:
                require(self.runtime, space, self.principal, Capability.READ, "show a charm")
            except CharmspaceError:
                continue
            self.notified[space] = self._head(space)
            self.unsubscribers[space] = self.runtime.storage.subscribe(space, self._notified)

    def _notified(self, change: Change) -> None:
        # The committing thread: only schedule (storage holds the space's commit order).
        self.loop.call_soon_threadsafe(self._changed, change)

    def _changed(self, change: Change) -> None:
        """Note what ``change`` changed in each view; one refresh per loop turn shows it all."""
        space = change.space
        if space not in self.unsubscribers:
            return
        if change.seq > self.notified.get(space, 0):
            self.notified[space] = change.seq
        keys = {(space, id) for id in change.ids}
        for view in self.views.values():
            if view.space == space:
                view.check_error = True
            if view.table.affected(space, change.ids) or (
                view.table.root is None and view.space == space
            ):
                view.changed |= keys
        if not self.refresh_scheduled:
            self.refresh_scheduled = True
            self.loop.call_soon(self._refresh)

    async def _shown(self, space: SpaceDID, commit: int) -> None:
        """Send the patches of ``commit`` and of the derived values it changes, in that order.

        The commit's own cells are shown at once; then the wait (bounded) for
        the space's propagation of the commit, and the patches of what it
        derived: all before the ``ack`` that names the commit.
        """
        await self._heard(space, commit)
        self._refresh()
        try:
            await asyncio.wait_for(self.runtime.propagated(space, commit), PROPAGATION_WAIT)
        except TimeoutError:
            log.info(
                "acknowledging a commit before its derived values settled", extra={"space": space}
            )
        for followed in list(self.unsubscribers):
            await self._heard(followed, self._head(followed))
        self._refresh()

    async def _heard(self, space: SpaceDID, seq: int) -> None:
        """Wait (briefly) until the notice of ``space``'s commit ``seq`` arrived."""
        if space not in self.unsubscribers:
            return
        for _ in range(1000):
            if self.notified.get(space, 0) >= seq:
                return
            await asyncio.sleep(0.001)

    def _refresh(self) -> None:
        """Patch each view with what changed since its last patch: one patch per view."""
        self.refresh_scheduled = False
        resubscribe = False
        for view in list(self.views.values()):
            if not view.changed and not view.check_error:
                continue
            changed, view.changed = view.changed, set()
            if changed:
                before = view.table.spaces
                commit = self._head(view.space)
                try:
                    ops = view.table.update(
                        self.runtime,
                        self.principal,
                        view.charm.result.address.key(UI_KEY),
                        changed,
                    )
                except Exception as error:  # shown as the view's error; next commit, a new mount
                    view.table = Table(None)
                    if isinstance(error, CharmspaceError):
                        body = error_body(error)
                    elif isinstance(error, ValueError):  # too many nodes, say
                        shown = BadRequestError(f"The charm's UI cannot be shown: {error}.")
                        body = error_body(shown)
                    else:
                        log.exception("re-rendering view %s failed", view.name)
                        body = _INTERNAL
                    self.enqueue({"type": "error", "view": view.name, "error": body})
                    continue
                view.seen = commit
                if ops and ops[0]["op"] == "root":
                    root = view.table.root
                    self.enqueue(
                        {"type": "mount", "view": view.name, "commit": commit, "root": root}
                    )
                elif ops:
                    self.enqueue({"type": "patch", "view": view.name, "commit": commit, "ops": ops})
                resubscribe = resubscribe or view.table.spaces != before
            if view.check_error:
                view.check_error = False
                self._send_error(view)
        if resubscribe:
            self._subscribe()

    def _head(self, space: SpaceDID) -> int:
        return self.runtime.storage.head(space, self.principal)

    def _rate_limit(self) -> None:
        now = time.monotonic()
        self.events = [t for t in self.events if now - t < 1.0]
        if len(self.events) >= MAX_EVENTS_PER_SECOND:
            raise ServerBusyError(
                f"More than {MAX_EVENTS_PER_SECOND} events a second from this tab; slow down.",
                limit="events_per_second",
                retry_after=1,
            )
        self.events.append(now)


_INTERNAL: Final = {
    "type": "InternalError",
    "message": "The server failed on this frame (it is logged); reload the page to retry.",
}


def _handler_error(error: BaseException | None) -> dict[str, Any]:
    """A failed handler's error; only charmspace errors promise a message free of values."""
    if isinstance(error, CharmspaceError):
        return error_body(error)
    kind = type(error).__name__ if error is not None else "Error"
    return {"type": kind, "message": "The handler failed; the charm's error shows where."}


@functools.lru_cache(maxsize=1024)
def _event_keys(fn: Any) -> frozenset[str] | None:
    """The fields a handler's event type allows, if it is a closed object (a TypedDict, say).

    A page's event carries what any handler might want (``type``, ``key``,
    ``target``, ``data_*``); a handler whose type names its fields would refuse
    the others as unknown, so the event is cut to those fields first.
    """
    try:
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        schema = json_schema_for(typing.get_type_hints(fn).get(params[0].name))
    except Exception:  # no hints, or a type with no schema: leave the event as it is
        return None
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict) or schema.get("additionalProperties") is True:
        return None
    return frozenset(properties)


def _view_name(frame: dict[str, Any]) -> str:
    name = frame.get("view")
    if not isinstance(name, str) or not _VIEW.fullmatch(name):
        raise BadRequestError("view is a name of 1 to 64 letters, digits, '_', '.', ':' or '-'.")
    return name


def _frames_id(principal: DID, tab: str) -> EntityId:
    """The document recording which of a tab's edits committed, and as which commit."""
    return entity_id({"shell-edits": principal, "tab": tab})


def _seen(value: JSONValue) -> set[int]:
    if isinstance(value, dict) and isinstance(value.get("seen"), list):
        return {n for n in value["seen"] if isinstance(n, int)}
    return set()
