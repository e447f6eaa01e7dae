"""The runtime: cells, transactions, the scheduler, derived values and jobs, together.

``Runtime(storage="memory://")`` works in-process with no server at all; the
server hosts one with SQLite or PostgreSQL storage.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import random as random_module
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any

from charmspace.errors import CharmspaceError, RuntimeClosedError
from charmspace.identity import Identity
from charmspace.runtime import context, outbox, redaction
from charmspace.runtime.address import STREAM_MARKER, Address
from charmspace.runtime.cell import Cell, to_json
from charmspace.runtime.clock import Clock, SystemClock
from charmspace.runtime.host import SpaceHost
from charmspace.runtime.jobs import Jobs
from charmspace.runtime.propagation import Propagator, recording
from charmspace.runtime.scheduler import Scheduler
from charmspace.runtime.services import Services
from charmspace.runtime.stream import Stream
from charmspace.runtime.transaction import (
    DocKey,
    Transaction,
)
from charmspace.runtime.unit import HandlerSpec, Unit
from charmspace.storage import Change, Storage, open_storage
from charmspace.storage.ids import entity_id
from charmspace.storage.interface import AsyncStorage, SpaceStore
from charmspace.storage.proof import creation_proof
from charmspace.types import DID, EntityId, JSONValue, PathSegment, SpaceDID

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """An error raised by a handler, an action or a job, with where it happened."""

    charm: EntityId
    pattern: str
    space: SpaceDID
    where: str
    error: BaseException

    def as_json(self, time: float) -> JSONValue:
        """The error cell's record: no message from user code (see :mod:`.redaction`)."""
        return to_json(redaction.error_record(self.where, self.error, time))


ErrorListener = Callable[[ErrorReport], None]
OwnerLoader = Callable[[Address], Awaitable[HandlerSpec | None]]


def _flush_soon(flush: Callable[[], None]) -> None:
    """Group the commits of this moment: flush once the loop has run what is ready.

    The flush finishes the commits of everyone in the group, so it runs in a
    context of its own, not in that of whichever handler committed first: what
    it calls back must not act for that handler's principal.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        flush()
    else:
        loop.call_soon(flush, context=contextvars.Context())


class Edit:
    """``async with runtime.edit() as tx``: commit on success, abort on exception.

    The original exception is re-raised; cells used inside the block write
    through ``tx``. Works as a plain ``with`` too.
    """

    def __init__(self, runtime: Runtime, principal: DID) -> None:
        self.tx = Transaction(runtime, principal, meta={"edit": True})
        self._token: contextvars.Token[context.RunContext] | None = None

    def __enter__(self) -> Transaction:
        self._token = context.enter(transaction=self.tx)
        return self.tx

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            context.leave(self._token)
        if exc is not None:
            self.tx.abort()
        elif self.tx.state == "open":
            self.tx.commit()

    async def __aenter__(self) -> Transaction:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tx = self.tx
        if exc is not None or tx.state != "open" or tx.writer is None:
            self.__exit__(exc_type, exc, tb)
            return
        if self._token is not None:
            context.leave(self._token)
            self._token = None
        await tx.runtime.host(tx.writer).commit(tx)


class Runtime:
    """Hosts charms' units over a storage; the entry point of everything in-process.

    ``identity`` is the user acting by default (events sent from outside any
    handler, edits); ``service`` is the runtime's own identity, used only for
    work no user started (derived values, error cells, job status).
    """

    def __init__(
        self,
        storage: str | Storage = "memory://",
        *,
        identity: Identity | None = None,
        service: Identity | None = None,
        clock: Clock | None = None,
        random: random_module.Random | None = None,
        call_timeout: float = 30.0,
        derived_timeout: float = 30.0,
    ) -> None:
        self.identity = identity or Identity.generate()
        self.service = service or Identity.generate()
        if isinstance(storage, str):
            storage = open_storage(storage, service=self.service.did)
        elif storage.service is None:
            storage.service = self.service.did
        self.storage = storage
        self.store: SpaceStore = AsyncStorage(storage)
        """Storage as the space hosts use it: a commit through it returns once it is durable."""
        self.clock: Clock = clock or SystemClock()
        self.random = random or random_module.Random()
        self.call_timeout = call_timeout
        self.derived_timeout = derived_timeout
        """Seconds an async derived value may take before it fails (its space waits for it)."""
        self.scheduler = Scheduler(self)
        self.jobs = Jobs(self)
        self.owner_loader: OwnerLoader | None = None
        self._streams: dict[Address, HandlerSpec] = {}
        self._hosts: dict[SpaceDID, SpaceHost] = {}
        self._followers: dict[SpaceDID, set[Propagator]] = {}
        self._error_listeners: list[ErrorListener] = []
        self._busy = 0
        self.answers_queued = 0
        """Commit answers put off to the next loop turn and not given yet: later answers
        queue behind them, so senders hear in the order their commits became durable
        (see :meth:`Transaction.submit_then`)."""
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe = storage.subscribe(None, self._on_change)
        self._remove_floor = storage.add_floor(self._retention_floor)
        storage.flush_scheduler = _flush_soon
        self._offload: ThreadPoolExecutor | None = None
        self._offloaded = 0  # calls handed to the worker thread and not answered yet
        self._closed = False
        self.services = Services()
        """What the hosting application lends to handlers (:mod:`charmspace.runtime.services`)."""

    def __repr__(self) -> str:
        return f"<Runtime {self.storage!r} as {self.principal}>"

    @property
    def principal(self) -> DID:
        return self.identity.did

    def acting(self) -> DID:
        """The principal the current code acts for: its transaction's, its job's, or the user.

        A transaction that has ended still says whom its code acts for: a task a
        handler spawned (``asyncio.create_task``) runs on after the handler's
        commit, and it is still the work of whoever caused the event, never of
        the runtime's own user.
        """
        here = context.current()
        if here.transaction is not None:
            return here.transaction.principal
        return here.principal or self.principal

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` finished: events sent from then on are refused."""
        return self._closed

    def check_open(self, action: str) -> None:
        """Refuse ``action`` ("create a charm") with :class:`RuntimeClosedError` once closed."""
        if self._closed:
            raise RuntimeClosedError(action)

    @property
    def service_did(self) -> DID:
        return self.service.did

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.get_running_loop()
        return self._loop

    # --- spaces, cells, transactions ------------------------------------------------

    def create_space(self, space: SpaceDID | None = None, *, name: str | None = None) -> SpaceDID:
        """Create (or find) a space owned by this runtime's user.

        ``name`` gives the user's named space (its DID derived from the user's key,
        so the runtime can sign the proof storage asks for); with neither
        argument, the user's home space. A ``space`` DID that is neither can be
        found but not created: only its key's holder may create it.
        """
        self.check_open("create a space")
        proof = None
        if space is None and name:
            key = self.identity.derive(name)
            space, proof = key.did, creation_proof(key, self.principal)
        elif space is None:
            space = self.principal
        self.storage.ensure_space(space, self.principal, proof=proof)
        return space

    def edit(self, principal: DID | None = None) -> Edit:
        """A transaction as a context manager: ``async with runtime.edit() as tx: …``."""
        self.check_open("start an edit")
        return Edit(self, principal or self.acting())

    def cell(self, space: SpaceDID, id: EntityId, *path: PathSegment) -> Cell[Any]:
        return Cell(self, Address(space, id, tuple(path)))

    def stream(self, space: SpaceDID, id: EntityId, *path: PathSegment) -> Stream[Any]:
        return Stream(self, Address(space, id, tuple(path)))

    def read(self, address: Address, principal: DID | None = None) -> JSONValue:
        """The latest committed value at ``address`` (links resolved)."""
        if self._closed:  # the action is spelled out only when it is refused
            raise RuntimeClosedError(f"read {address}")
        return Transaction(self, principal or self.acting()).read(address)

    def unit(self, space: SpaceDID, name: str, *, id: EntityId | None = None) -> Unit:
        """A new unit (the runtime's view of a charm) to register handlers and actions on."""
        return Unit(self, space, id or entity_id({"unit": name, "space": space}), name)

    # --- units, handlers, streams ----------------------------------------------------

    # --- hosts ---------------------------------------------------------------------------

    def host(self, space: SpaceDID) -> SpaceHost:
        """The host of ``space`` in this runtime, created on first use."""
        host = self._hosts.get(space)
        if host is None:
            host = self._hosts[space] = SpaceHost(self, space)
        return host

    def follow(self, space: SpaceDID, propagator: Propagator) -> None:
        """Hand ``propagator`` every durable commit of ``space`` from now on."""
        self._followers.setdefault(space, set()).add(propagator)

    def _retention_floor(self, space: SpaceDID) -> int | None:
        """The oldest processed watermark of a busy propagator following ``space``.

        A busy propagator reads documents as of its snapshot, which is never
        older than its watermark; an idle one reads nothing, and its next
        snapshot is taken at the durable head, past any horizon planned before.
        Called from the storage's pruner thread while this loop may change the
        followers: a set changed mid-look holds all history this time round.
        """
        try:
            marks = [
                p.processed.get(space, 0) for p in tuple(self._followers.get(space, ())) if p.busy
            ]
        except RuntimeError:
            return 0
        return min(marks) if marks else None

    async def propagated(self, space: SpaceDID, seq: int) -> None:
        """Return once every derived value reading ``space`` took in its commits up to ``seq``.

        Why callers wait: a commit's effect includes the derived values it
        changes, so whoever reports the commit as done (the web shell's ``ack``)
        shows them first. Unbounded: bound it with ``asyncio.wait_for``.
        """
        while True:
            behind = [
                p
                for p in tuple(self._followers.get(space, ()))
                if p.busy or p.processed.get(space, 0) < seq
            ]
            if not behind:
                return
            if any(p.busy for p in behind):
                await asyncio.gather(*(p.settled() for p in behind if p.busy))
            else:  # the commit's notice has not reached them yet
                await asyncio.sleep(0.001)

    def unfollow(self, space: SpaceDID, propagator: Propagator) -> None:
        followers = self._followers.get(space)
        if followers is not None:
            followers.discard(propagator)
            if not followers:
                del self._followers[space]

    async def start_unit(
        self, unit: Unit, initial: list[tuple[Address, Any]], principal: DID | None
    ) -> None:
        """Start ``unit`` for its creator ``principal``, writing only inside its own space.

        Why confined: an input may be a redirect link into another space, and a
        default written through it would let whoever stored the link make the
        charm's start-up write there. A default whose cell lives elsewhere is
        that space's business and is left alone.
        """
        unit.creator = principal or self.principal
        tx = Transaction(self, unit.creator, meta={"start": unit.name}, confine=unit.space)
        for address, default in initial:
            if (
                default is not None
                and self._lands_in(tx, address, unit.space)
                and tx.read(address, deep=False) is None
            ):
                tx.write(address, to_json(default))
        for spec in unit.handlers:
            if tx.read(spec.address, deep=False) != STREAM_MARKER:
                tx.write(spec.address, STREAM_MARKER)
        tx.commit()
        unit.started = True
        for spec in unit.handlers:
            self.register_handler(spec)
        self.jobs.mark_interrupted(unit)
        host = self.host(unit.space)
        host.add(unit)
        # Only the space's derived values: waiting for idle() here would wait for
        # the very event whose delivery is starting this unit.
        await host.propagator.settled()
        self._resend_outbox(unit)
        for alarm in unit.alarms:
            alarm.start()

    @staticmethod
    def _lands_in(tx: Transaction, address: Address, space: SpaceDID) -> bool:
        """Whether a write at ``address`` stays in ``space`` (links followed as far as
        ``tx``'s principal may read)."""
        try:
            return tx.resolve(address).space == space
        except CharmspaceError:
            return False

    def _resend_outbox(self, unit: Unit) -> None:
        """Send again what the unit's outbox still holds (its sender crashed before clearing)."""
        for send in outbox.pending(self, unit):
            try:
                target = self.scheduler.resolve_stream(send.target, send.principal)
            except CharmspaceError as error:
                log.warning("an outbox event cannot be delivered: %s", error)
                if send.outbox is not None:
                    outbox.clear(self, send)
                continue
            self.scheduler.dispatch(target, send.payload, send.principal, send=send)

    def stop_unit(self, unit: Unit) -> None:
        for spec in unit.handlers:
            if self._streams.get(spec.address) is spec:
                del self._streams[spec.address]
        host = self._hosts.get(unit.space)
        if host is not None:
            host.remove(unit)
            if not host.units and not host.busy:  # the space's last charm: let it go
                host.stop()
                self.unfollow(unit.space, host.propagator)
                del self._hosts[unit.space]
        for job in list(unit.jobs.values()):
            job.cancel()
        for alarm in unit.alarms:
            alarm.stop()
        unit.started = False

    def register_handler(self, spec: HandlerSpec) -> None:
        self._streams[spec.address] = spec

    def handler_at(self, address: Address) -> HandlerSpec | None:
        return self._streams.get(address)

    async def start_owner_of(self, address: Address) -> HandlerSpec | None:
        """Start the stopped charm that owns the stream at ``address``, if a loader knows it.

        The charms layer installs the loader (``charmspace.Runtime`` does); without
        one, a stream whose charm is not running has no handler.
        """
        if self.owner_loader is None:
            return None
        return await self.owner_loader(address)

    def derived_owner(self, key: DocKey) -> str | None:
        host = self._hosts.get(key[0])
        return host.propagator.owner(key) if host is not None else None

    # --- errors -------------------------------------------------------------------------

    def on_error(self, listener: ErrorListener) -> Callable[[], None]:
        """Call ``listener(report)`` on every handler, action or job error; returns unsubscribe."""
        self._error_listeners.append(listener)
        return lambda: self._error_listeners.remove(listener)

    def report(self, unit: Unit, where: str, error: BaseException) -> None:
        """Tell listeners, the log and the charm's error cell about ``error``."""
        report = ErrorReport(unit.id, unit.name, unit.space, where, error)
        extra = {"charm": unit.id, "space": unit.space, "where": where}
        redaction.log_error(log, f"{unit.name}.{where}", error, extra)
        for listener in tuple(self._error_listeners):
            try:
                listener(report)
            except Exception as e:  # it may have put the message it got into its own
                log.error("an on_error listener raised %s", redaction.describe(e))
        try:
            tx = Transaction(self, unit.creator, meta={"error": where}, confine=unit.space)
            tx.write(unit.error_address, report.as_json(self.clock.now()))
            tx.commit()
        except Exception:
            log.exception("could not record the error in the charm's error cell")

    def error_cell(self, unit: Unit) -> Cell[Any]:
        return Cell(self, unit.error_address)

    async def offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` off the event loop, in the current context.

        One worker thread for the whole runtime: Python code holds the
        interpreter lock while it computes, so more threads would not compute
        more, only make the event loop wait longer for its turn.
        """
        if self._offload is None:
            self._offload = ThreadPoolExecutor(1, thread_name_prefix="charmspace-derive")
        here = contextvars.copy_context()
        self._offloaded += 1
        try:
            return await self.loop.run_in_executor(self._offload, partial(here.run, fn, *args))
        finally:
            self._offloaded -= 1

    @property
    def offloading(self) -> bool:
        """Whether the worker thread has offloaded calls to run (see :meth:`offload`)."""
        return self._offloaded > 0

    # --- time, randomness ----------------------------------------------------------------

    def now(self, resolution: float | None = None) -> float:
        """The runtime clock's time; in a derived value, also a dependency on time.

        With ``resolution`` (seconds) the value is rounded down to it, and a
        derived value that reads it is recomputed every ``resolution`` seconds.
        """
        t = self.clock.now()
        reads = recording.get()
        if reads is not None:  # what read the clock cannot be checked by reading it again
            reads.volatile = True
        if resolution:
            action = context.current().action
            if action is not None:
                self.host(action.unit.space).propagator.on_time(action, resolution)
            t = math.floor(t / resolution) * resolution
        return float(t)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before re-running a conflicted handler: jittered, growing."""
        return float(self.random.uniform(0.0005, 0.002) * 2.0**attempt)

    # --- quiescence ---------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        self.scheduler.forget_resolutions(change.space, change.ids)
        for propagator in tuple(self._followers.get(change.space, ())):
            propagator.on_change(change)

    def _propagating(self) -> bool:
        return any(host.busy for host in self._hosts.values())

    def activity(self, delta: int) -> None:
        """Count queued/running events; wake ``idle()`` waiters when all is quiet."""
        self._busy += delta
        if self._busy == 0 and self._idle_waiters and not self._propagating():
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _quiet(self, jobs: bool) -> bool:
        return self._busy == 0 and not self._propagating() and not (jobs and self.jobs.running)

    async def idle(self, *, jobs: bool = False) -> None:
        """Return when no event is queued or running and no derived value is pending.

        Every commit so far is then durable and its notifications delivered. With
        ``jobs=True`` also wait for running jobs.
        """
        while True:
            for _ in range(2):
                await asyncio.sleep(0)
            if self._quiet(jobs):
                if not self.storage.grouping:
                    return
                self.storage.flush()  # bookkeeping still in a group (a cleared outbox entry)
                continue
            waiter = self.loop.create_future()
            self._idle_waiters.append(waiter)
            if jobs and self.jobs.running and self._busy == 0 and not self._propagating():
                await asyncio.wait(
                    [waiter, *(job.task for job in self.jobs.running if job.task)],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            else:
                await waiter

    async def close(self, *, drain: float = 5.0) -> None:
        """Shut down cleanly: let queued events finish (up to ``drain`` seconds), stop
        timers and jobs (they are marked ``cancelled``), make every commit durable,
        close the storage."""
        if self._busy or self._propagating():
            try:
                await asyncio.wait_for(self.idle(), drain)
            except TimeoutError:
                log.warning("closing with events still queued after %s s: refused", drain)
        await self.scheduler.stop([u for host in self._hosts.values() for u in host.units.values()])
        for host in self._hosts.values():
            for unit in host.units.values():
                for alarm in unit.alarms:
                    alarm.stop()
            host.stop()
        if self._offload is not None:
            self._offload.shutdown(wait=True, cancel_futures=True)
        self.jobs.cancel_all()
        for job in list(self.jobs.running):
            await job.wait()
        self._unsubscribe()
        self._remove_floor()
        self.storage.close()
        self._closed = True

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
