"""One WebSocket of ``/api/ws``: cell subscriptions, the shell's views, back-pressure.

Two protocols share the socket. Frames with an ``op`` are cell subscriptions
(below; what :mod:`charmspace.client` uses to watch values); frames with a
``type`` are the web shell's views (:mod:`charmspace.server.view_protocol`).

The client subscribes to cells (a charm's result at a path); the server sends
each one's value at once and again after every commit that changes it, tagged
with the space's seq. Values are read as the connection's principal, with the
same ACL checks as ``GET …/cells/{path}``, so a subscription sees exactly what
that principal could fetch.

Storage calls its subscribers in the committing thread while the space's commit
order is held, so the callback only schedules :meth:`Connection.changed` on the
event loop. That handler coalesces: it reads the space's head and the values
once, so a burst of commits costs one read per subscription and the client gets
the latest value labelled with the seq it is current as of (never an older seq
for a newer value). Nothing is sent for a commit that did not change the value.

Every frame goes through a bounded queue that one task drains into the socket.
A client that reads too slowly fills it; it is then closed with code 1013 and a
reason, and its subscriptions end. Nothing the runtime or other connections do
ever waits for a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from charmspace.errors import CharmspaceError
from charmspace.facade import Runtime
from charmspace.identity import is_did
from charmspace.runtime.address import Address
from charmspace.runtime.transaction import Transaction
from charmspace.server.deps import (
    MAX_PATH_SEGMENTS,
    charm_id,
    docs_of,
    require,
    require_charm,
    shown,
)
from charmspace.server.errors import BadRequestError, error_body, status_of
from charmspace.server.routes.charms import require_result_name
from charmspace.server.view_protocol import ViewProtocol
from charmspace.storage import Capability
from charmspace.storage.model import Change
from charmspace.types import DID, SpaceDID

log = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS = 1000
MAX_FRAME_BYTES = 256 * 1024
CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455: the server is overloaded (here: by this client)
CLOSE_TIMEOUT = 10.0  # a dropped client still gets the close frame if it reads within this


@dataclass(slots=True)
class Subscription:
    id: str | int
    space: SpaceDID
    address: Address
    last: str  # the JSON text last sent


class Connection:
    """A subscriber on one WebSocket, acting as ``principal`` (see the module docstring)."""

    def __init__(
        self,
        websocket: WebSocket,
        runtime: Runtime,
        principal: DID,
        queue_size: int,
        *,
        csrf: str | None = None,
        send_delay: float = 0.0,
    ) -> None:
        self.websocket = websocket
        self.runtime = runtime
        self.principal = principal
        self.outbox: asyncio.Queue[tuple[float, str]] = asyncio.Queue(maxsize=queue_size)
        self.send_delay = send_delay  # tests only: see routes/live.py
        self.seq = 0  # the view protocol's frames, numbered from 1
        self.views = ViewProtocol(runtime, principal, csrf, self._enqueue)
        self.subscriptions: dict[str | int, Subscription] = {}
        self.seen: dict[SpaceDID, int] = {}  # per space: the seq the values sent are current as of
        self.unsubscribers: dict[SpaceDID, Callable[[], None]] = {}
        self.dropped = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    async def run(self) -> None:
        """Serve the connection until the client leaves or is dropped as too slow."""
        receiver = asyncio.create_task(self._receive())
        sender = asyncio.create_task(self._send())
        dropped = asyncio.create_task(self.dropped.wait())
        try:
            await asyncio.wait({receiver, sender, dropped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for unsubscribe in self.unsubscribers.values():
                unsubscribe()
            self.unsubscribers.clear()
            self.views.close()
            for task in (receiver, sender, dropped):
                task.cancel()
            await asyncio.gather(receiver, sender, dropped, return_exceptions=True)
        if self.dropped.is_set():
            log.info(
                "websocket of %s closed: its send queue of %d frames is full",
                self.principal,
                self.outbox.maxsize,
                extra={"principal": self.principal, "refused": "send_queue_full"},
            )
            self.seq += 1
            bye = {"type": "bye", "seq": self.seq, "reason": "the page reads too slowly"}
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.websocket.send_text(json.dumps(bye)), CLOSE_TIMEOUT)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.websocket.close(
                        CLOSE_TRY_AGAIN_LATER, "send queue full: the client reads too slowly"
                    ),
                    CLOSE_TIMEOUT,
                )

    async def _receive(self) -> None:
        while True:
            try:
                text = await self.websocket.receive_text()
            except (WebSocketDisconnect, KeyError, RuntimeError):
                return  # gone, or sent a binary frame: either way, done
            if len(text) > MAX_FRAME_BYTES:
                self._enqueue(_error(None, BadRequestError("The frame is too large.")))
                continue
            try:
                frame = json.loads(text)
            except ValueError:
                frame = None
            if isinstance(frame, dict) and "type" in frame and "op" not in frame:
                await self.views.handle(frame)  # in arrival order: the next waits for it
                if self.views.ended:  # it said bye: let the frame leave, then close
                    for _ in range(100):
                        if self.outbox.empty():
                            break
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.05)
                    return
            else:
                self.handle(text)

    async def _send(self) -> None:
        while True:
            queued, text = await self.outbox.get()
            if self.send_delay:
                await asyncio.sleep(max(0.0, queued + self.send_delay - time.monotonic()))
            await self.websocket.send_text(text)

    def _enqueue(self, frame: dict[str, Any]) -> None:
        if self.dropped.is_set():
            return
        if "type" in frame:
            self.seq += 1
            frame = {"type": frame["type"], "seq": self.seq, **frame}
        try:
            self.outbox.put_nowait((time.monotonic(), json.dumps(frame, separators=(",", ":"))))
        except asyncio.QueueFull:
            self.dropped.set()

    def handle(self, text: str) -> None:
        """One client frame: ``subscribe`` or ``unsubscribe``."""
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            self._enqueue(_error(None, BadRequestError("A frame is a JSON object.")))
            return
        id = frame.get("id")
        if not (isinstance(id, int) and not isinstance(id, bool)) and not (
            isinstance(id, str) and 0 < len(id) <= 200
        ):
            self._enqueue(_error(None, BadRequestError("id is a string or an integer.")))
            return
        op = frame.get("op")
        if op == "unsubscribe":
            self.unsubscribe(id)
        elif op == "subscribe":
            try:
                self.subscribe(id, frame)
            except CharmspaceError as error:
                self._enqueue(_error(id, error))
        else:
            self._enqueue(_error(id, BadRequestError("op is 'subscribe' or 'unsubscribe'.")))

    def subscribe(self, id: str | int, frame: dict[str, Any]) -> None:
        space, charm, path = frame.get("space"), frame.get("charm"), frame.get("path", [])
        if not isinstance(space, str) or not is_did(space):
            raise BadRequestError("space is a space's did:key.", "space")
        if not isinstance(charm, str):
            raise BadRequestError("charm is a charm id.", "charm")
        if (
            not isinstance(path, list)
            or len(path) > MAX_PATH_SEGMENTS
            or not all(isinstance(p, str | int) and not isinstance(p, bool) for p in path)
        ):
            raise BadRequestError(
                f"path is a list of up to {MAX_PATH_SEGMENTS} strings and integers.", "path"
            )
        if id not in self.subscriptions and len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise BadRequestError(f"At most {MAX_SUBSCRIPTIONS} subscriptions per connection.")
        charm = charm_id(charm)
        require(self.runtime, space, self.principal, Capability.READ, "read a cell")
        require_charm(self.runtime, space, charm, self.principal)
        address = docs_of(space, charm)[2].key(*path)
        if not (path and isinstance(path[0], str) and path[0].startswith("$")):
            # As the HTTP cell routes: a misspelt name is refused, not watched as null.
            # ``$``-names (``$NAME``, ``$UI``) are the shell's to ask of any charm, and a
            # charm need not have them: those still read null when absent.
            require_result_name(Transaction(self.runtime, self.principal), charm, address)
        self.unsubscribe(id)
        seq = self.runtime.storage.head(space, self.principal)
        value = self._read(address)
        subscription = Subscription(id, space, address, value)
        self.subscriptions[id] = subscription
        if space not in self.unsubscribers:
            self.seen[space] = seq
            self.unsubscribers[space] = self.runtime.storage.subscribe(space, self._notified)
        self._enqueue_value(subscription, max(seq, self.seen[space]))

    def unsubscribe(self, id: str | int) -> None:
        subscription = self.subscriptions.pop(id, None)
        if subscription is None:
            return
        space = subscription.space
        if not any(s.space == space for s in self.subscriptions.values()):
            self.unsubscribers.pop(space)()
            self.seen.pop(space, None)

    def _notified(self, change: Change) -> None:
        # The committing thread, with the space's commit order held: only schedule.
        self.loop.call_soon_threadsafe(self.changed, change)

    def changed(self, change: Change) -> None:
        """Send the values that ``change`` (or a later commit already durable) changed."""
        space = change.space
        if space not in self.unsubscribers or change.seq <= self.seen.get(space, 0):
            return  # unsubscribed meanwhile, or already current as of a later commit
        try:
            seq = self.runtime.storage.head(space, self.principal)
        except CharmspaceError as error:  # e.g. no longer allowed to read the space
            self._end_space(space, error)
            return
        self.seen[space] = seq
        for subscription in [s for s in self.subscriptions.values() if s.space == space]:
            try:
                value = self._read(subscription.address)
            except CharmspaceError as error:
                self.subscriptions.pop(subscription.id, None)
                self._enqueue(_error(subscription.id, error))
                continue
            if value != subscription.last:
                subscription.last = value
                self._enqueue_value(subscription, seq)
        if not any(s.space == space for s in self.subscriptions.values()):
            self.unsubscribers.pop(space)()  # its last subscription failed: stop listening
            self.seen.pop(space, None)

    def _end_space(self, space: SpaceDID, error: CharmspaceError) -> None:
        for subscription in [s for s in self.subscriptions.values() if s.space == space]:
            self.subscriptions.pop(subscription.id)
            self._enqueue(_error(subscription.id, error))
        self.unsubscribers.pop(space)()
        self.seen.pop(space, None)

    def _read(self, address: Address) -> str:
        """The value at ``address`` as JSON text, read as the principal."""
        value = Transaction(self.runtime, self.principal).read(address)
        value = shown(self.runtime, address.space, self.principal, value, path=address.path)
        return json.dumps(value, separators=(",", ":"))

    def _enqueue_value(self, subscription: Subscription, seq: int) -> None:
        if self.dropped.is_set():
            return
        text = (
            f'{{"op":"value","id":{json.dumps(subscription.id)},"seq":{seq},'
            f'"value":{subscription.last}}}'
        )
        try:
            self.outbox.put_nowait((time.monotonic(), text))
        except asyncio.QueueFull:
            self.dropped.set()


def _error(id: str | int | None, error: CharmspaceError) -> dict[str, Any]:
    """An error frame: the HTTP API's error object, and the status it would have there."""
    return {"op": "error", "id": id, "status": status_of(error) or 500, "error": error_body(error)}
