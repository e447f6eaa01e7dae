"""The scheduler: one event at a time per charm, charms concurrently.

Why one at a time: a charm is like an actor. Its handlers read-modify-write the
charm's own state, and running two at once would make every handler a conflict
waiting to happen. Different charms run concurrently (asyncio), so a handler
awaiting I/O does not hold up anyone else.

Why a handler's exception aborts its transaction: the reference committed the
partial writes of a failed handler, which made a failed token refresh look like
a success. Here a handler either commits everything it wrote or nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from charmspace.errors import (
    CallTimeoutError,
    ConflictError,
    DeadlockError,
    NotAStreamError,
    StreamError,
)
from charmspace.runtime import context, outbox
from charmspace.runtime.address import Address, is_stream_marker
from charmspace.runtime.cell import to_json
from charmspace.runtime.redaction import log_error
from charmspace.runtime.stream import CallResult, Delivery
from charmspace.runtime.transaction import (
    EMPTY_COMMIT,
    CommitResult,
    DocKey,
    Transaction,
)
from charmspace.types import DID, EntityId, JSONValue, SpaceDID

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime
    from charmspace.runtime.unit import HandlerSpec, Unit

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6  # the first run and 5 re-runs on conflict
YIELD_EVERY = 32  # sync handlers in a row before a charm lets others run


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved stream: where its marker lives, and the handler there if running."""

    address: Address
    spec: HandlerSpec | None


@dataclass(eq=False, slots=True)
class Event:
    target: Target
    payload: JSONValue
    principal: DID
    delivery: Delivery | None = None
    future: asyncio.Future[CallResult] | None = None
    finished: bool = False
    send: outbox.StagedSend | None = None  # set for durable (outbox) deliveries


class Scheduler:
    """Per-charm event queues, conflict re-runs, calls with deadlock detection."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._waiting_on: dict[Unit, Unit] = {}
        self._resolved: dict[tuple[Address, DID], Target] = {}
        self._resolved_by_doc: dict[DocKey, set[tuple[Address, DID]]] = {}
        self._drains: set[asyncio.Task[None]] = set()
        self._stopping = False

    # --- resolving and delivering --------------------------------------------------------

    def resolve_stream(self, address: Address, principal: DID | None = None) -> Target:
        """Follow links to the stream's marker; raise NotAStreamError if there is none.

        Resolutions are cached until a document they read changes (every send
        resolves its stream, and most streams never move).
        """
        if principal is None:
            principal = self.runtime.acting()
        key = (address, principal)
        hit = self._resolved.get(key)
        if hit is not None and self.runtime.handler_at(hit.address) is hit.spec:
            return hit
        tx = Transaction(self.runtime, principal)
        final = tx.resolve(address)
        marker = tx.read(final, deep=False)
        if not is_stream_marker(marker):
            raise NotAStreamError(str(address))
        target = Target(final, self.runtime.handler_at(final))
        if target.spec is not None:
            self._resolved[key] = target
            for doc in tx.reads:
                self._resolved_by_doc.setdefault(doc, set()).add(key)
        return target

    def forget_resolutions(self, space: SpaceDID, ids: tuple[EntityId, ...]) -> None:
        """Drop cached stream resolutions that read a document that just changed."""
        if not self._resolved_by_doc:
            return
        for id in ids:
            keys = self._resolved_by_doc.pop((space, id), None)
            if keys:
                for key in keys:
                    self._resolved.pop(key, None)

    def dispatch(
        self,
        target: Target,
        payload: JSONValue,
        principal: DID,
        delivery: Delivery | None = None,
        future: asyncio.Future[CallResult] | None = None,
        *,
        send: outbox.StagedSend | None = None,
    ) -> None:
        """Queue an event for the charm that owns the target's handler (starting it if needed).

        ``send`` is the outbox entry of a durable delivery (a handler's send).
        """
        event = Event(target, payload, principal, delivery, future, False, send)
        self.runtime.activity(+1)
        if target.spec is not None:
            self._enqueue(target.spec.unit, event)
        else:
            asyncio.get_running_loop().create_task(self._start_then_enqueue(event))

    async def _start_then_enqueue(self, event: Event) -> None:
        try:
            spec = await self.runtime.start_owner_of(event.target.address)
        except Exception as e:  # a pattern's code ran: no message, no traceback
            spec = None
            log_error(log, "starting the charm behind a stream", e, {})
            error: BaseException = e
        else:
            error = StreamError(
                f"No running charm handles the stream at {event.target.address}, "
                "and none could be started for it."
            )
        if spec is None:
            self._finish(event, None, error)
            return
        event.target = Target(event.target.address, spec)
        self._enqueue(spec.unit, event)

    def _enqueue(self, unit: Unit, event: Event) -> None:
        unit.queue.append(event)
        if not unit.draining:
            self._start_draining(unit)

    def _start_draining(self, unit: Unit) -> None:
        unit.draining = True
        task = asyncio.get_running_loop().create_task(self._drain(unit))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def stop(self, units: list[Unit]) -> None:
        """Refuse the events still queued and cancel those running: the runtime is closing.

        Each sender is answered (``ok`` False, a :class:`StreamError` saying
        why) rather than left waiting; a cancelled handler's writes are dropped.
        """
        self._stopping = True
        for unit in units:
            while unit.queue:
                event = unit.queue.popleft()
                self._finish(event, None, _closed(event, "before"))
        drains = list(self._drains)
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)

    async def call(
        self, target: Target, payload: JSONValue, principal: DID | None, timeout: float | None
    ) -> CallResult:
        tx = context.current().transaction
        sender = principal or self.runtime.acting()
        caller = context.current().unit
        callee = target.spec.unit if target.spec is not None else None
        if caller is not None and callee is not None:
            self._check_deadlock(caller, callee)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CallResult] = loop.create_future()
        self.dispatch(target, payload, sender, future=future)
        limit = self.runtime.call_timeout if timeout is None else timeout
        if caller is not None and callee is not None:
            self._waiting_on[caller] = callee
        try:
            # Not wait_for(shield(...)): on Python 3.11 it swallows a cancellation that
            # arrives as the answer does, and Ctrl-C then takes several tries. A
            # cancelled caller gets CancelledError at once; its event, already queued,
            # still runs to completion (and commits, or not) without anyone waiting.
            done, _ = await asyncio.wait((future,), timeout=limit)
        finally:
            if caller is not None:
                self._waiting_on.pop(caller, None)
        if not done:
            raise CallTimeoutError(str(target.address), limit)
        result = future.result()
        if result.ok and result.seq and result.space and tx is not None and tx.state == "open":
            tx.saw_commit(result.space, result.seq)
        return result

    def _check_deadlock(self, caller: Unit, callee: Unit) -> None:
        chain = [caller, callee]
        at: Unit | None = callee
        while at is not None:
            if at is caller:
                raise DeadlockError([f"{u.name} ({u.id})" for u in chain])
            at = self._waiting_on.get(at)
            if at is not None:
                if at in chain[1:]:
                    return
                chain.append(at)

    # --- running events ----------------------------------------------------------------

    async def _drain(self, unit: Unit) -> None:
        token = context.enter(unit=unit)
        try:
            in_a_row = 0
            while unit.queue:
                event = unit.queue.popleft()
                try:
                    yielded = await self._run(event)
                except Exception as e:  # a bug of ours must not stall the charm
                    log.exception("running an event failed", extra={"charm": unit.id})
                    self._finish(event, None, e)
                    yielded = True
                in_a_row = 0 if yielded else in_a_row + 1
                if in_a_row >= YIELD_EVERY:
                    in_a_row = 0
                    await asyncio.sleep(0)
        finally:
            unit.draining = False
            context.leave(token)
            if unit.queue:  # an event arrived while we were finishing
                self._start_draining(unit)

    async def _run(self, event: Event) -> bool:
        """Run one event to completion; returns whether it awaited (let others run)."""
        spec = event.target.spec
        assert spec is not None
        runtime = self.runtime
        payload: Any = event.payload
        if spec.validate is not None:
            try:
                payload = spec.validate(payload)
            except Exception as e:
                runtime.report(spec.unit, spec.name, e)
                self._finish(event, None, e)
                return False
        yielded = spec.is_async
        for attempt in range(MAX_ATTEMPTS):
            rerun = attempt + 1 < MAX_ATTEMPTS
            tx = Transaction(
                runtime,
                event.principal,
                meta=spec.meta,
                home=spec.unit.space,
                rerun_on_conflict=rerun,
            )
            token = context.enter_transaction(tx)
            try:
                if event.send is not None and outbox.already_consumed(tx, spec.unit, event.send):
                    tx.commit()  # a redelivery after a crash: applied once already
                    self._finish(event, EMPTY_COMMIT, None)
                    return yielded
                tx.may_read_pending = not spec.is_async  # commit dependencies: no I/O
                state = spec.bind(tx)
                value = spec.fn(payload, **state)
                # None first: iscoroutine asks an ABC, and most handlers return None
                if spec.is_async or (value is not None and asyncio.iscoroutine(value)):
                    tx.stop_reading_pending()
                    yielded = True
                    value = await value
                value = to_json(value)
                if event.send is not None:
                    outbox.consume(tx, spec.unit, event.send)
                # the next event need not wait for this one's commit to be durable
                tx.submit_then(runtime.store, partial(self._durable, event, value))
            except ConflictError as e:
                tx.abort(rerun=rerun)
                if rerun:
                    yielded = True
                    await asyncio.sleep(runtime.backoff(attempt))
                    continue
                runtime.report(spec.unit, spec.name, e)
                self._finish(event, None, e)
                return yielded
            except asyncio.CancelledError as e:
                tx.abort()
                self._finish(event, None, _closed(event, "while") if self._stopping else e)
                raise
            except Exception as e:
                tx.abort()
                runtime.report(spec.unit, spec.name, e)
                self._finish(event, None, e)
                return yielded
            finally:
                context.leave(token)
            return yielded
        raise AssertionError("unreachable")  # pragma: no cover

    def _durable(
        self,
        event: Event,
        value: JSONValue,
        result: CommitResult | None,
        error: BaseException | None,
    ) -> None:
        """The handler's commit is durable (or could not be written): answer the sender."""
        if error is None:
            self._finish(event, result, None, value)
        else:
            spec = event.target.spec
            assert spec is not None
            self.runtime.report(spec.unit, spec.name, error)
            self._finish(event, None, error)

    def _finish(
        self,
        event: Event,
        result: CommitResult | None,
        error: BaseException | None,
        value: JSONValue = None,
    ) -> None:
        if event.finished:
            return
        event.finished = True
        send = event.send
        if send is not None and send.outbox is not None:
            outbox.clear(self.runtime, send)
        self.runtime.activity(-1)
        if result is None:
            result = CommitResult(False, event.target.address.space, 0, error)
            if event.future is None:  # a send (a caller gets its answer instead)
                _log_failed_send(event, error)
        if event.delivery is not None:
            try:
                event.delivery.resolve(result)
            except Exception as e:  # the caller's code
                log_error(log, "an on_commit callback", e, {})
        if event.future is not None and not event.future.done():
            event.future.set_result(
                CallResult(result.ok, value if result.ok else None, error, result.space, result.seq)
            )


def _closed(event: Event, when: str) -> StreamError:
    """What the sender of an event the closing runtime did not run to the end is told."""
    return StreamError(
        f"The runtime closed {when} the event to {event.target.address} ran: nothing of "
        "it was written. Send it again once the runtime is open."
    )


def _log_failed_send(event: Event, error: BaseException | None) -> None:
    """Say that a send failed, so it is not silent without an on_error listener.

    Only the stream, the error's type and the charm: the event and the error's
    message come from user code and may hold secrets.
    """
    spec = event.target.spec
    charm = f"{spec.unit.name} ({spec.unit.id})" if spec is not None else "no running charm"
    kind = type(error).__name__ if error is not None else "unknown error"
    log.warning(
        "send to %s failed with %s in charm %s",
        event.target.address,
        kind,
        charm,
        extra={
            "stream": str(event.target.address),
            "error_type": kind,
            "charm": spec.unit.id if spec is not None else None,
        },
    )
