"""A private JSON file written behind the changes it records: off the event loop, coalesced.

Why: the browser sessions file (:mod:`charmspace.server.sessions`) changes
with every login and logout, and holds every session. Rewritten whole on each
change, on the event loop, it made a flood of logins stall every user's
requests and WebSockets for as long as each write took (about 60 ms with
20,000 sessions). Here a change only marks the file stale. One task writes it:
it takes a snapshot on the loop (a dict copy: cheap), encodes it as JSON and
writes it in a worker thread, then waits ``interval`` before it writes again,
so any number of changes in that time costs one write of the latest state.
The Google sign-ins in progress (:mod:`charmspace.integrations.google.oauth`)
are kept the same way, for the same reason: a flood of sign-in starts.
Here, beside :mod:`charmspace.private_json`, rather than in the server, so an
integration can use it without depending on the server.

The guarantees: never two writes at once (one lock, held by the writing
thread); never an older state after a newer one (each snapshot is numbered,
and one older than what the file holds is dropped); a clean stop
(:meth:`WriteBehind.stop`) writes the last state. A crash loses the changes
made since the last write began: at most about ``interval`` and one write.

A failed write (a full disk, an unwritable data directory) is logged once,
with what to do, until a write succeeds again; the server keeps serving from
memory and tries again on the next change, and once more when it stops.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Generic, TypeVar

from charmspace.private_json import write_private_text

S = TypeVar("S")

log = logging.getLogger(__name__)


class WriteBehind(Generic[S]):
    """Keeps ``path`` up to date with a state that changes on the event loop.

    ``take()`` runs on the loop and returns a snapshot that later changes do not
    touch (a shallow copy of a dict of tuples); ``render(snapshot)`` runs in a
    worker thread and returns the JSON text written, with mode 0600. The worker
    still shares the interpreter's lock with the loop: a render that encodes in
    pieces and lets go between them (``time.sleep(0)``) keeps the loop's waits
    short (see :func:`charmspace.server.sessions._render`).
    :meth:`changed` is called on the loop's thread.
    """

    def __init__(
        self,
        path: Path,
        take: Callable[[], S],
        render: Callable[[S], str],
        *,
        what: str,
        interval: float = 1.0,
    ) -> None:
        self.path = path
        self.what = what
        self.interval = interval
        self._take = take
        self._render = render
        self._changes = 0  # how many changes were made; the file holds the first `_written`
        self._written = 0
        self._lock = threading.Lock()  # one write at a time, whichever thread writes
        self._failing = False  # a failure was logged, and no write succeeded since
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def stale(self) -> bool:
        """Whether the file misses a change (not yet written, or its write failed)."""
        return self._written < self._changes

    @property
    def running(self) -> bool:
        """Whether a task writes behind the changes (between :meth:`start` and :meth:`stop`)."""
        return self._task is not None

    def changed(self) -> None:
        """The state changed: write it soon (now, if the last write is ``interval`` old)."""
        self._changes += 1
        self._wake.set()

    def start(self) -> None:
        """Write behind the changes from now on, in a task of the running loop."""
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        if self.stale:
            self._wake.set()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"writing the {self.what} file"
        )

    async def stop(self) -> None:
        """Write the last state (if it changed) and stop the task, once its write is done."""
        task, self._task = self._task, None
        if task is None:
            self.flush()
            return
        self._stopping.set()
        self._wake.set()
        try:
            await task
        except Exception:  # a bug in the writer must not cut the server's shutdown short
            log.exception("writing the %s file %s failed", self.what, self.path)

    def flush(self) -> None:
        """Write the current state now, in this thread (while no task writes behind)."""
        if self.stale:
            self._write(self._changes, self._take())

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._wake.wait()
            self._wake.clear()
            if self.stale:
                await asyncio.to_thread(self._write, self._changes, self._take())
            # Changes made meanwhile wait for the next write: at most one per interval.
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
        if self.stale:  # changes made during the last write, or since the last pause
            await asyncio.to_thread(self._write, self._changes, self._take())

    def _write(self, changes: int, snapshot: S) -> None:
        """Write ``snapshot``, the state after ``changes`` changes, unless the file is newer."""
        with self._lock:
            if changes <= self._written:
                return
            try:
                write_private_text(self.path, self._render(snapshot))
            except OSError as error:
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "could not write the %s file %s (%s): the server keeps it in memory, "
                        "and tries again on the next change and when it stops, but a "
                        "restart forgets what was not written; make the data directory "
                        "writable by the server's user, with free space",
                        self.what,
                        self.path,
                        error.strerror or error,
                    )
                return
            self._written = changes
            if self._failing:
                self._failing = False
                log.info("the %s file %s is written again", self.what, self.path)
