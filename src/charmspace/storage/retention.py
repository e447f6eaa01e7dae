"""The background pruner: applies each space's retention policy, off the commit path.

Why a thread and not the commit itself: finding the horizon reads a space's
whole retained history, and deleting is many small write transactions; a
commit should pay for neither. The thread wakes every ``interval`` seconds
(sooner after many bytes written), looks only at spaces written since its
last look, and prunes in batches that hold a space's write lock for one batch
each. A batch that meets a group of
commits in flight joins the group's write transaction rather than making the
group durable behind its owner's back (or waiting for a gap that steady load
never leaves).

Why floors: work in flight may still read a point in time (a propagator reads
documents as of its snapshot's seq). Whoever needs one registers a floor
(:meth:`~charmspace.storage.store.Storage.add_floor`) and the horizon never
passes it, whatever the policy says.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from charmspace.errors import SpaceNotFoundError
from charmspace.storage.backends.base import Backend
from charmspace.storage.model import Retention, SpaceRecord
from charmspace.types import SpaceDID

log = logging.getLogger(__name__)

Floor = Callable[[SpaceDID], int | None]
"""The oldest seq of a space that someone still needs to read at (None: no need)."""


def _trusted(record: SpaceRecord) -> None:
    """The storage prunes on its own behalf, under the policy the owner chose."""


class Pruner:
    """Prunes written spaces to their retention horizon, in a daemon thread."""

    def __init__(
        self,
        backend: Backend,
        default: Retention,
        clock: Callable[[], float],
        floors: list[Floor],
        interval: float = 0.25,
    ) -> None:
        self.backend = backend
        self.default = default
        self.clock = clock
        self.floors = floors
        self.interval = interval
        self._written: set[SpaceDID] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pending_bytes = 0
        self._since_budget: dict[SpaceDID, int] = {}
        """Bytes each space wrote since its history's size was last summed (absent: never)."""
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def written(self, space: SpaceDID, size: int = 0) -> None:
        """Note that ``space`` has a new commit of ``size`` bytes (cheap: called on every commit).

        Once commits have written a quarter of the default history budget since
        the last pass, the thread wakes at once: a space rewriting a large
        document would otherwise pile up many copies between two passes.
        """
        self._pending_bytes += size
        if space in self._since_budget:
            self._since_budget[space] += size
        if self._pending_bytes >= self.default.max_history_bytes // 4:
            self._pending_bytes = 0
            self._wake.set()
        if space not in self._written:
            self._written.add(space)
            if self._thread is None and not self._stop.is_set():
                self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="charmspace-pruner", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.run_once()

    def run_once(self) -> int:
        """Prune every space written since the last pass; returns the revisions removed."""
        spaces, self._written = self._written, set()
        removed = 0
        for space in sorted(spaces):
            if self._stop.is_set():
                break
            try:
                removed += self.prune(space)
            except SpaceNotFoundError:
                continue
            except Exception:  # the thread must outlive any one space's trouble
                log.exception("could not prune space %s; will try again", space)
                self._written.add(space)
        return removed

    def prune(self, space: SpaceDID) -> int:
        """Move ``space``'s horizon to where its policy and the floors allow."""
        backend = self.backend
        retention = backend.retention(space) or self.default
        # Summing the history's sizes reads all of it: do it once per quarter budget written.
        since = self._since_budget.get(space)
        budget = since is None or since >= retention.max_history_bytes // 4
        if budget:
            self._since_budget[space] = 0
        horizon, wanted = backend.plan(space, retention, self.clock(), budget=budget)
        for floor in self.floors:
            held = floor(space)
            if held is not None:
                wanted = min(wanted, held)
        if wanted <= horizon:
            return 0
        removed = backend.prune(space, wanted, _trusted)
        if removed:
            log.debug(
                "pruned history", extra={"space": space, "horizon": wanted, "removed": removed}
            )
        return removed

    def close(self) -> None:
        """Stop the thread (after the batch it is in), then prune what is still owed.

        The final pass leaves every space written in this session at its policy
        when the storage is closed, so the files at rest are as small as the
        policy says, not as large as the last pass left them under load.
        """
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join()
        if self._written:
            self._stop.clear()  # run_once stops early when asked to stop
            try:
                self.run_once()
            finally:
                self._stop.set()
