"""Derived values: glitch-free propagation in waves.

After commits, the documents they changed mark the actions that read them. A
wave runs every affected action once, in dependency (topological) order, each
reading the outputs of the actions before it in the same wave — so no action
ever sees a mix of old and new inputs. The wave's outputs are committed
together, one commit per space, by the runtime (the single committer of derived
values in the spaces it hosts). An action's own output never re-triggers it.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from charmspace.errors import CycleError
from charmspace.runtime.cell import to_json
from charmspace.runtime.transaction import DocKey, Transaction, current_transaction
from charmspace.storage import Change, Commit
from charmspace.types import JSONValue, SpaceDID
from charmspace.values import same

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime
    from charmspace.runtime.unit import Action

log = logging.getLogger(__name__)


class _WaveTransaction(Transaction):
    """An action's transaction: reads see the wave's outputs so far; it writes nothing itself."""

    __slots__ = ("overlay",)

    def __init__(self, runtime: Runtime, overlay: dict[DocKey, JSONValue]) -> None:
        super().__init__(runtime, runtime.service_did)
        self.overlay = overlay

    def read_doc(self, space: SpaceDID, id: str, *, track: bool = True) -> JSONValue:
        key = (space, id)
        if track and key not in self.reads:
            self.reads[key] = 0
        if key in self.overlay:
            return self.overlay[key]
        return super().read_doc(space, id, track=False)


class Propagator:
    """Knows which action reads which document, and runs waves."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._by_dep: dict[DocKey, set[Action]] = defaultdict(set)
        self._by_output: dict[DocKey, Action] = {}
        self._timed: dict[float, set[Action]] = defaultdict(set)
        self._tickers: dict[float, asyncio.Task[None]] = {}
        self._dirty_docs: set[DocKey] = set()
        self._dirty_actions: set[Action] = set()
        self._running = False
        self._own_commit = False
        self._settled: list[asyncio.Future[None]] = []

    @property
    def busy(self) -> bool:
        return self._running or bool(self._dirty_docs or self._dirty_actions)

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
        for dep in action.deps:
            self._by_dep[dep].discard(action)
        for actions in self._timed.values():
            actions.discard(action)
        self._dirty_actions.discard(action)

    def on_change(self, change: Change) -> None:
        """Storage subscriber: mark what a commit changed (our own wave commits excepted)."""
        if self._own_commit:
            return
        for id in change.ids:
            key = (change.space, id)
            if key in self._by_dep:
                self._dirty_docs.add(key)
        if self._dirty_docs:
            self._schedule()

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
            while self._dirty_docs or self._dirty_actions:
                await self._wave()
        except Exception:
            log.exception("propagation failed")
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
                new = await self._compute(action, overlay)
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
        if overlay:
            self._commit(overlay)

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

    async def _compute(self, action: Action, overlay: dict[DocKey, JSONValue]) -> Any:
        from charmspace.runtime.runtime import current_action

        tx = _WaveTransaction(self.runtime, overlay)
        tx_token = current_transaction.set(tx)
        action_token = current_action.set(action)
        try:
            if action.inputs is None:
                value = action.fn()
            else:
                value = action.fn(*[cell.get() for cell in action.inputs])
            if action.is_async or asyncio.iscoroutine(value):
                value = await value
            result = to_json(value)
        except Exception as e:
            self.runtime.report(action.unit, action.name, e)
            result = _FAILED
        finally:
            current_action.reset(action_token)
            current_transaction.reset(tx_token)
        self._set_deps(action, set(tx.reads) - {action.output.doc})
        return result

    def _set_deps(self, action: Action, deps: set[DocKey]) -> None:
        if deps == action.deps:
            return
        for gone in action.deps - deps:
            self._by_dep[gone].discard(action)
            if not self._by_dep[gone]:
                del self._by_dep[gone]
        for new in deps - action.deps:
            self._by_dep[new].add(action)
        action.deps = deps

    def _commit(self, overlay: dict[DocKey, JSONValue]) -> None:
        by_space: dict[SpaceDID, dict[str, JSONValue]] = defaultdict(dict)
        for (space, id), value in overlay.items():
            by_space[space][id] = value
        self._own_commit = True
        try:
            for space, writes in by_space.items():
                try:
                    self.runtime.storage.commit(
                        Commit(space, self.runtime.service_did, writes, meta={"derived": True})
                    )
                except Exception:
                    log.exception("committing derived values failed", extra={"space": space})
        finally:
            self._own_commit = False


_FAILED: Any = object()
