"""Streams: how a charm asks a charm in another space (or its own) to do something.

``send`` tells, ``call`` asks. Either way the event runs in a fresh transaction
of the charm that owns the handler, in that charm's space, authorized as the
principal who caused the event — never as the sender, never as the server. That
is what makes cross-space changes safe: the owner of the data decides how it
changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from charmspace.errors import AwaitedSendError, StreamError
from charmspace.runtime import context
from charmspace.runtime.address import Address
from charmspace.runtime.cell import to_json
from charmspace.runtime.transaction import CommitResult, Transaction
from charmspace.types import DID, JSONValue, SpaceDID

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime

T = TypeVar("T")

OnCommit = Callable[[CommitResult], None]


@dataclass(frozen=True, slots=True)
class CallResult:
    """The answer to :meth:`Stream.call`: the handler's return value once it committed."""

    ok: bool
    value: JSONValue = None
    error: BaseException | None = None
    space: SpaceDID | None = None
    seq: int = 0


class Delivery:
    """A handle on a sent event. Await it for the target's :class:`CommitResult`.

    ``on_commit`` callbacks run exactly once: after the target's transaction
    committed, or with ``ok=False`` when it failed or the event was dropped
    because the sending transaction aborted. They never receive a transaction.

    Awaiting a send from inside the transaction that staged it raises
    :class:`~charmspace.errors.AwaitedSendError`: it is delivered only once that
    transaction commits, which cannot happen while it waits.
    """

    __slots__ = ("_future", "_on_commit", "_result", "location", "staged_in")

    def __init__(
        self,
        on_commit: OnCommit | None = None,
        *,
        location: Address | None = None,
        staged_in: Transaction | None = None,
    ) -> None:
        self._on_commit = on_commit
        self._result: CommitResult | None = None
        self._future: asyncio.Future[CommitResult] | None = None
        self.location = location
        self.staged_in = staged_in

    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> CommitResult | None:
        return self._result

    def resolve(self, result: CommitResult) -> None:
        if self._result is not None:
            return
        self._result = result
        if self._future is not None and not self._future.done():
            self._future.set_result(result)
        callback, self._on_commit = self._on_commit, None
        if callback is not None:
            callback(result)

    def __await__(self) -> Generator[Any, None, CommitResult]:
        if self._result is not None:
            return self._result
        tx = self.staged_in
        if tx is not None and tx.state == "open" and context.current().transaction is tx:
            raise AwaitedSendError(str(self.location))
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        return (yield from self._future.__await__())


class Stream(Generic[T]):
    """A handle on a stream location: ``send(event)`` and ``await call(event)``.

    Inside a derived computation a stream reads as the plain marker
    ``{"$stream": true}``; a handler gets a callable ``Stream`` by declaring the
    state field as ``Stream[...]``.
    """

    __slots__ = ("address", "runtime")

    def __init__(self, runtime: Runtime, address: Address) -> None:
        self.runtime = runtime
        self.address = address

    def __repr__(self) -> str:
        return f"<Stream {self.address}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stream) and other.address == self.address

    def __hash__(self) -> int:
        return hash(("stream", self.address))

    def send(
        self, event: T, on_commit: OnCommit | None = None, *, principal: DID | None = None
    ) -> Delivery:
        """Deliver ``event`` to the handler: now, or (inside a transaction) once it commits.

        Inside a handler the event is staged and dropped if the handler aborts.
        """
        payload = to_json(event)
        self._check_open()
        acting = principal or self.runtime.acting()  # asked once: it reads the context
        target = self.runtime.scheduler.resolve_stream(self.address, acting)
        tx = context.current().transaction
        staging = tx is not None and tx.state == "open"
        delivery = Delivery(on_commit, location=self.address, staged_in=tx if staging else None)
        if tx is not None and staging:
            from charmspace.runtime.outbox import stage

            scheduler = self.runtime.scheduler
            sender = tx.principal
            unit = context.current().unit
            if unit is not None:  # a handler's send is durable: it goes through the outbox
                staged = stage(tx, unit, target.address, payload)
                tx.after_commit(
                    lambda _r: scheduler.dispatch(
                        target,
                        payload,
                        sender,
                        delivery,
                        send=staged,
                    )
                )
            else:
                tx.after_commit(lambda _r: scheduler.dispatch(target, payload, sender, delivery))
            tx.on_abort(
                lambda: delivery.resolve(
                    CommitResult(
                        False,
                        error=StreamError(
                            "The event was dropped because the sending transaction aborted."
                        ),
                    )
                )
            )
        else:
            self.runtime.scheduler.dispatch(target, payload, acting, delivery)
        return delivery

    async def call(
        self, event: T, *, timeout: float | None = None, principal: DID | None = None
    ) -> CallResult:
        """Deliver ``event`` now and wait until the handler's transaction committed or failed.

        After it returns, reads of the target's space see at least that commit.
        Raises :class:`~charmspace.errors.DeadlockError` for a call that would
        wait on itself and :class:`~charmspace.errors.CallTimeoutError` when no
        answer comes in ``timeout`` seconds (default: the runtime's, 30 s).

        Cancelling the calling task raises ``CancelledError`` in it at once; the
        event is already queued and still runs to completion (its commit, if
        any, stands), so read the target's state to learn whether it committed.
        """
        payload = to_json(event)
        self._check_open()
        target = self.runtime.scheduler.resolve_stream(self.address, principal)
        return await self.runtime.scheduler.call(target, payload, principal, timeout)

    def _check_open(self) -> None:
        """Refuse an event to a closed runtime: nothing would run it (on every backend)."""
        if self.runtime.closed:
            raise StreamError(
                f"The runtime is closed: the event to {self.address} was not delivered. "
                "Send it through a runtime that is open."
            )

    def get(self) -> JSONValue:
        """The marker stored at the stream's location (``{"$stream": true}``)."""
        return self.runtime.read(self.address)
