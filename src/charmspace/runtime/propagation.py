"""Derived values: glitch-free propagation in waves, driven by the commit log.

Each space's host has one propagator for the derived values that live in that
space. It follows the commits of the spaces its actions read, in seq order,
from a processed watermark: a notification is only appended to its queue, and
its loop takes the queue in order, so no change can be skipped however commits
are grouped or interleaved. Its own commits are recognised by their seq (the
loop records the seq each of its commits got), never by a flag that could also
swallow someone else's change.

A wave runs every affected action once, in dependency (topological) order,
each reading the outputs of the actions before it in the same wave. Every read
of a wave is pinned to one durable snapshot per space (the seq that was durable
when the wave first read that space), so an async action that awaits sees the
same inputs as the synchronous ones beside it: no action ever sees a mix of old
and new inputs. The wave's outputs are committed together, as the charms'
creators. An action's own output never re-triggers it.

Why the creator: a derived value is computed for whoever made the charm, so it
may read only what they may read. A link into a space the creator cannot read
makes the action fail with an error on the charm, never hands over the value.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import logging
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charmspace.errors import CycleError, DerivedTimeoutError, TransactionClosedError
from charmspace.runtime import context
from charmspace.runtime.address import Address
from charmspace.runtime.cell import to_json
from charmspace.runtime.transaction import DocKey, Transaction
from charmspace.storage import Change, Commit
from charmspace.types import DID, EntityId, JSONValue, SpaceDID
from charmspace.values import same

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime
    from charmspace.runtime.unit import Action

log = logging.getLogger(__name__)

SLOW_SYNC_SECONDS = 0.005
"""A synchronous action that once took longer runs off the event loop from then on."""

CONTENDED_SLOW_SECONDS = 0.05
"""The same bound while the worker thread runs offloaded actions (see :func:`blocks_loop`)."""


def blocks_loop(took: float, computed: float, contended: bool) -> bool:
    """Whether one run of a synchronous action shows it holds up the event loop.

    ``took`` is the run's wall time, ``computed`` the CPU time the loop's
    thread spent in it. Computing past :data:`SLOW_SYNC_SECONDS` always counts.
    So does waiting (a ``time.sleep``, blocking I/O), except while the worker
    thread is computing offloaded actions (``contended``): the loop's thread
    then also waits for the interpreter lock, in turns of 5 ms, each time a
    storage call let go of it, and a cheap action that reads SQLite would look
    slow. Moved to the worker for that, it would queue behind every other
    space's slow actions (about a second in B3-tenants); so while contended
    only a wait past :data:`CONTENDED_SLOW_SECONDS` counts.
    """
    if computed > SLOW_SYNC_SECONDS:
        return True
    return took > (CONTENDED_SLOW_SECONDS if contended else SLOW_SYNC_SECONDS)


class Reads:
    """What one part of a derived value read, so that it can be checked by reading it again.

    While :data:`recording` holds one, every value the action's transaction
    reads is noted as ``(address, track, deep, value)``. ``volatile`` says the
    part read something that reading again cannot check: the clock
    (:meth:`Runtime.now`), where a link points (``resolve``), or a read that
    raised. :mod:`charmspace.patterns.mapped` keeps each list position's
    output this way.
    """

    __slots__ = ("seen", "volatile")

    def __init__(self) -> None:
        self.seen: list[tuple[Address, bool, bool, JSONValue]] = []
        self.volatile = False


recording: contextvars.ContextVar[Reads | None] = contextvars.ContextVar(
    "charmspace_reads", default=None
)
"""The :class:`Reads` that a wave's reads are noted in now, if any."""


@dataclass(slots=True)
class _Snapshot:
    """What one wave reads: each space at one durable seq, each document read once.

    ``readers`` remembers which principal may read which space, so a document
    read for one charm's creator is served to another only once that one's
    read access was checked too.
    """

    pins: dict[SpaceDID, int]
    docs: dict[DocKey, JSONValue] = field(default_factory=dict)
    readers: set[tuple[SpaceDID, DID]] = field(default_factory=set)


class _WaveTransaction(Transaction):
    """An action's transaction: reads see the wave's outputs so far, else the wave's
    snapshot; it writes nothing itself."""

    __slots__ = ("overlay", "snapshot")

    def __init__(
        self,
        runtime: Runtime,
        principal: DID,
        overlay: dict[DocKey, JSONValue],
        snapshot: _Snapshot,
    ) -> None:
        super().__init__(runtime, principal)
        self.overlay = overlay
        self.snapshot = snapshot

    def read(self, address: Address, *, track: bool = True, deep: bool = True) -> JSONValue:
        reads = recording.get()
        if reads is None:
            return super().read(address, track=track, deep=deep)
        try:
            value = super().read(address, track=track, deep=deep)
        except BaseException:
            reads.volatile = True
            raise
        reads.seen.append((address, track, deep, value))
        return value

    def resolve(self, address: Address, *, track: bool = True) -> Address:
        reads = recording.get()
        if reads is not None:
            reads.volatile = True
        return super().resolve(address, track=track)

    def read_doc(self, space: SpaceDID, id: EntityId, *, track: bool = True) -> JSONValue:
        if self.state != "open":
            raise TransactionClosedError(self.state)
        key = (space, id)
        if track and key not in self.reads:
            self.reads[key] = 0
        if key in self.overlay:
            return self.overlay[key]
        snapshot = self.snapshot
        reader = (space, self.principal)
        if key in snapshot.docs and reader in snapshot.readers:
            return snapshot.docs[key]
        storage = self.runtime.storage
        rev = storage.read(space, id, self.principal)
        snapshot.readers.add(reader)
        pin = snapshot.pins.get(space)
        if pin is None:
            pin = snapshot.pins[space] = storage.durable_head(space)
        if rev.seq > pin:
            rev = storage.read(space, id, self.principal, at=pin)
        snapshot.docs[key] = rev.value
        return rev.value


class Propagator:
    """One space's derived values: which action reads which document, and the waves."""

    def __init__(self, runtime: Runtime, space: SpaceDID) -> None:
        self.runtime = runtime
        self.space = space
        self._by_dep: dict[DocKey, set[Action]] = defaultdict(set)
        self._by_output: dict[DocKey, Action] = {}
        self._dep_spaces: Counter[SpaceDID] = Counter()
        self._timed: dict[float, set[Action]] = defaultdict(set)
        self._tickers: dict[float, asyncio.Task[None]] = {}
        self._log: deque[Change] = deque()
        self.processed: dict[SpaceDID, int] = {}
        """The watermark: the last seq of each followed space whose change was taken in."""
        self._dirty_docs: set[DocKey] = set()
        self._dirty_actions: set[Action] = set()
        self._running = False
        self._settled: list[asyncio.Future[None]] = []
        self._follow(space)

    def _follow(self, space: SpaceDID) -> None:
        """Take in ``space``'s commits from its durable head on."""
        self.processed.setdefault(space, self.runtime.storage.durable_head(space))
        self.runtime.follow(space, self)

    @property
    def busy(self) -> bool:
        return self._running or bool(self._log or self._dirty_docs or self._dirty_actions)

    def owner(self, key: DocKey) -> str | None:
        action = self._by_output.get(key)
        return action.qualname if action is not None else None

    def add(self, action: Action) -> None:
        key = action.output.doc
        self._by_output[key] = action
        self._dirty_actions.add(action)
        self._schedule()

    def remove(self, action: Action) -> None:
        self._by_output.pop(action.output.doc, None)
        self._set_deps(action, set())
        for actions in self._timed.values():
            actions.discard(action)
        self._dirty_actions.discard(action)

    def on_change(self, change: Change) -> None:
        """A durable commit in a space this propagator follows: queue it, in seq order.

        A commit that changed nothing any action reads, arriving while nothing is
        queued or running, only moves the watermark: most commits (handlers'
        writes to cells no derived value reads, outboxes, error cells) need no
        propagation pass at all.
        """
        if (
            not self._log
            and not self._running
            and not any((change.space, id) in self._by_dep for id in change.ids)
        ):
            if change.seq > self.processed.get(change.space, 0):
                self.processed[change.space] = change.seq
            return
        self._log.append(change)
        self._schedule()

    def _take_log(self) -> None:
        """Advance the watermark through the queued commits, marking what they changed."""
        while self._log:
            change = self._log.popleft()
            if change.seq <= self.processed.get(change.space, 0):
                continue  # already taken in (a space followed twice over a restart)
            self.processed[change.space] = change.seq
            for id in change.ids:
                key = (change.space, id)
                # An output is written only by this propagator, whose wave computed
                # what reads it already (in order, from the wave's overlay).
                if key in self._by_dep and key not in self._by_output:
                    self._dirty_docs.add(key)

    def on_time(self, action: Action, resolution: float) -> None:
        """Recompute ``action`` every ``resolution`` seconds of the runtime clock."""
        if action.resolution is None or resolution < action.resolution:
            action.resolution = resolution
        self._timed[resolution].add(action)
        if resolution not in self._tickers:
            self._tickers[resolution] = self.runtime.loop.create_task(self._tick(resolution))

    async def _tick(self, resolution: float) -> None:
        while True:
            await self.runtime.clock.sleep(resolution)
            actions = self._timed.get(resolution)
            if actions:
                self._dirty_actions.update(actions)
                self._schedule()

    def stop(self) -> None:
        for task in self._tickers.values():
            task.cancel()
        self._tickers.clear()

    def _schedule(self) -> None:
        if not self._running:
            self._running = True
            self.runtime.loop.call_soon(self._start)

    def _start(self) -> None:
        self.runtime.loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                self._take_log()
                if not (self._dirty_docs or self._dirty_actions):
                    break
                try:
                    await self._wave()
                except Exception:  # a bug of ours: log it, keep the space's loop alive
                    log.exception("propagation failed", extra={"space": self.space})
        finally:
            self._running = False
            waiters, self._settled = self._settled, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self.runtime.activity(0)

    async def settled(self) -> None:
        """Return once no wave is pending or running (events may still be queued)."""
        while self.busy:
            waiter = self.runtime.loop.create_future()
            self._settled.append(waiter)
            await waiter

    async def _wave(self) -> None:
        changed: set[DocKey] = self._dirty_docs
        forced: set[Action] = self._dirty_actions
        self._dirty_docs, self._dirty_actions = set(), set()
        overlay: dict[DocKey, JSONValue] = {}
        # The wave's snapshot: each followed space as far as its log was taken in.
        snapshot = _Snapshot(dict(self.processed))
        # Steps order what happened in this wave: external changes are step 0.
        changed_at: dict[DocKey, int] = dict.fromkeys(changed, 0)
        last_run: dict[Action, int] = {}
        step = 0
        affected = self._affected(changed, forced)
        reported: set[Action] = set()
        # One pass when dependencies are known. An action that has never run has
        # unknown dependencies, so it may run before an action whose output it
        # reads; it is then stale and runs again, now in the right order.
        for _ in range(len(affected) + 1):
            order, cyclic = self._topological(affected)
            if cyclic and not reported.issuperset(cyclic):
                reported.update(cyclic)
                error = CycleError([a.qualname for a in cyclic])
                for action in cyclic:
                    self.runtime.report(action.unit, action.name, error)
            for action in order:
                ran = last_run.get(action, -1)
                if action not in forced and not any(
                    changed_at.get(dep, -1) > ran for dep in action.deps
                ):
                    continue
                forced.discard(action)
                step += 1
                last_run[action] = step
                new = await self._compute(action, overlay, snapshot)
                if new is _FAILED:
                    continue
                key = action.output.doc
                old = overlay[key] if key in overlay else self._committed(key)
                if not same(new, old):
                    overlay[key] = new
                    changed_at[key] = step
            stale = {
                a
                for a, ran in last_run.items()
                if any(changed_at.get(dep, -1) > ran for dep in a.deps)
            }
            if not stale:
                break
            affected = self._affected(set(), stale)
        if overlay:  # the next wave starts from a snapshot that holds these (or not: logged)
            await asyncio.gather(*self._commit(overlay), return_exceptions=True)

    def _affected(self, changed: set[DocKey], forced: set[Action]) -> set[Action]:
        affected = set(forced)
        frontier = list(forced)
        for key in changed:
            for action in self._by_dep.get(key, ()):
                if action not in affected:
                    affected.add(action)
                    frontier.append(action)
        while frontier:
            action = frontier.pop()
            for dependent in self._by_dep.get(action.output.doc, ()):
                if dependent not in affected:
                    affected.add(dependent)
                    frontier.append(dependent)
        return affected

    def _topological(self, actions: set[Action]) -> tuple[list[Action], list[Action]]:
        """Kahn's algorithm over "reads the output of"; what is left over is in a cycle."""
        if len(actions) == 1:
            return list(actions), []
        if not any(a.deps for a in actions):
            return sorted(actions, key=lambda a: a.order), []
        indegree = {a: 0 for a in actions}
        edges: dict[Action, list[Action]] = defaultdict(list)
        for a in actions:
            for dependent in self._by_dep.get(a.output.doc, ()):
                if dependent in indegree and dependent is not a:
                    edges[a].append(dependent)
                    indegree[dependent] += 1
        # Ties go to registration order: an action that has never run has no known
        # inputs, and what a pattern builds later usually reads what it built earlier.
        ready = [(a.order, a) for a, n in indegree.items() if n == 0]
        heapq.heapify(ready)
        order: list[Action] = []
        while ready:
            _, a = heapq.heappop(ready)
            order.append(a)
            for b in edges[a]:
                indegree[b] -= 1
                if indegree[b] == 0:
                    heapq.heappush(ready, (b.order, b))
        cyclic = [a for a, n in indegree.items() if n > 0]
        return order, cyclic

    def _committed(self, key: DocKey) -> JSONValue:
        return self.runtime.storage.backend.read(key[0], key[1]).value

    async def _compute(
        self, action: Action, overlay: dict[DocKey, JSONValue], snapshot: _Snapshot
    ) -> Any:
        tx = _WaveTransaction(self.runtime, action.unit.creator, overlay, snapshot)
        token = context.enter(transaction=tx, action=action)
        try:
            if action.is_async:
                value = await self._awaited(action, _call(action))
            elif action.offload:
                value = await self.runtime.offload(_call, action)
            else:
                contended = self.runtime.offloading
                began, cpu = time.perf_counter(), time.thread_time()
                value = _call(action)
                took, computed = time.perf_counter() - began, time.thread_time() - cpu
                if blocks_loop(took, computed, contended or self.runtime.offloading):
                    action.offload = True
                    log.info(
                        "derived value %s took %.0f ms; it runs off the event loop from now on",
                        action.qualname,
                        took * 1000,
                        extra={"space": self.space, "charm": action.unit.id},
                    )
            if asyncio.iscoroutine(value):
                value = await self._awaited(action, value)
            result = to_json(value)
        except Exception as e:
            self.runtime.report(action.unit, action.name, e)
            result = _FAILED
        finally:
            context.leave(token)
        self._set_deps(action, set(tx.reads) - {action.output.doc})
        return result

    async def _awaited(self, action: Action, awaitable: Any) -> Any:
        """Await an async action, for at most the runtime's ``derived_timeout``.

        Why a bound: the space's waves wait for it, so one derived value that
        never returns would freeze every derived value of its space.
        """
        limit = self.runtime.derived_timeout
        try:
            return await asyncio.wait_for(awaitable, limit)
        except TimeoutError:
            raise DerivedTimeoutError(action.qualname, limit) from None

    def _set_deps(self, action: Action, deps: set[DocKey]) -> None:
        if deps == action.deps:
            return
        for gone in action.deps - deps:
            self._by_dep[gone].discard(action)
            if not self._by_dep[gone]:
                del self._by_dep[gone]
            self._unfollow(gone[0])
        for new in deps - action.deps:
            self._by_dep[new].add(action)
            self._dep_spaces[new[0]] += 1
            if self._dep_spaces[new[0]] == 1 and new[0] != self.space:
                self._follow(new[0])
        action.deps = deps

    def _unfollow(self, space: SpaceDID) -> None:
        self._dep_spaces[space] -= 1
        if self._dep_spaces[space] <= 0:
            del self._dep_spaces[space]
            if space != self.space:
                self.runtime.unfollow(space, self)
                self.processed.pop(space, None)

    def _commit(self, overlay: dict[DocKey, JSONValue]) -> list[asyncio.Future[int]]:
        """Commit a wave's outputs, one commit per creator, each as that creator.

        The commits join the space's group like a handler's (no write of their
        own); the returned futures are done once they are durable, and the next
        wave waits for them, so it starts from a snapshot that holds them.
        """
        by_creator: dict[DID, dict[EntityId, JSONValue]] = defaultdict(dict)
        for key, value in overlay.items():
            action = self._by_output.get(key)
            if action is not None:  # else removed while the wave ran
                by_creator[action.unit.creator][key[1]] = value
        waits: list[asyncio.Future[int]] = []
        for creator, writes in by_creator.items():
            try:
                durable = self.runtime.store.apply(
                    Commit(self.space, creator, writes, meta={"derived": True})
                )
            except Exception:
                log.exception("committing derived values failed", extra={"space": self.space})
                continue
            durable.add_done_callback(self._written)
            waits.append(durable)
        return waits

    def _written(self, durable: asyncio.Future[int]) -> None:
        if not durable.cancelled() and durable.exception() is not None:
            log.error(
                "derived values could not be written: %s",
                type(durable.exception()).__name__,
                extra={"space": self.space},
            )


def _call(action: Action) -> Any:
    """The action's function applied to its inputs' current values (in the wave's context)."""
    if action.inputs is None:
        return action.fn()
    return action.fn(*[cell.get() for cell in action.inputs])


_FAILED: Any = object()
