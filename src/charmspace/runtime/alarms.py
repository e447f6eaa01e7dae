"""Alarms: an event sent to a charm's stream when a time stored in a cell comes.

Why a cell holds the time: the alarm is then as durable as the charm. After a
restart the unit starts again, reads the cell and sleeps until that time; a
time already past fires at once. Why an event: what the alarm causes runs
through the ordinary stream path, in a transaction of its own, as the charm's
creator (no user caused it), and a handler that fails writes nothing.

An idle alarm costs nothing: it sleeps on the runtime clock until its time, or
until a commit changes the cell, and never writes.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from charmspace.errors import CharmspaceError
from charmspace.runtime.address import Address
from charmspace.runtime.redaction import describe
from charmspace.runtime.stream import Stream
from charmspace.runtime.transaction import Transaction
from charmspace.storage import Change
from charmspace.types import JSONValue

if TYPE_CHECKING:
    from charmspace.runtime.unit import Unit

__all__ = ["Alarm"]

log = logging.getLogger(__name__)

RETRY_FIRST = 30.0
RETRY_MAX = 3600.0


class Alarm:
    """Send ``event`` to the stream at ``stream`` when the epoch seconds in ``at`` come.

    ``at`` holding anything but a number means "never". After firing, the alarm
    waits for ``at`` to change. If the event failed and the time stays, it
    fires again after a back-off that doubles from 30 s to an hour.
    """

    def __init__(self, unit: Unit, name: str, at: Address, stream: Address, event: JSONValue):
        self.unit = unit
        self.name = name
        self.at = at
        self.stream = stream
        self.event = event
        self.fired = 0
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._sleeping = False
        self._woken = False
        self._changed = False

    def start(self) -> None:
        runtime = self.unit.runtime
        loop = runtime.loop

        def notified(change: Change) -> None:
            loop.call_soon_threadsafe(self._poke)

        self._unsubscribe = runtime.storage.subscribe(self.at.space, notified)
        self._task = loop.create_task(self._run(), name=f"alarm {self.unit.name}.{self.name}")

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _poke(self) -> None:
        """A commit in ``at``'s space: wake the sleeping alarm to read its time again."""
        if self._task is None:
            return
        if self._sleeping:
            self._woken = True
            self._task.cancel()
        else:
            self._changed = True

    def _due(self) -> float | None:
        try:
            value = Transaction(self.unit.runtime, self.unit.creator).read(self.at)
        except CharmspaceError:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None

    async def _wait(self, seconds: float | None) -> None:
        """Until ``seconds`` pass on the runtime clock (None: forever) or ``at``'s space commits.

        Why the sleep is awaited here and a commit cancels it, rather than
        racing two tasks: the clock registers a sleeper when the sleep starts,
        and a task would start it only on a later turn of the loop, after a
        fake clock may already have moved past the deadline.
        """
        if self._changed:
            self._changed = False
            return
        self._sleeping = True
        try:
            if seconds is None:
                await asyncio.get_running_loop().create_future()
            else:
                await self.unit.runtime.clock.sleep(max(seconds, 0.0))
        except asyncio.CancelledError:
            if not self._woken:
                raise
            self._woken = False
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            self._sleeping = False

    async def _run(self) -> None:
        clock = self.unit.runtime.clock
        retry = RETRY_FIRST
        fired_at: float | None = None
        retry_at = 0.0
        while True:
            due = self._due()
            now = clock.now()
            if due is None:
                fired_at = None
                await self._wait(None)
                continue
            if due == fired_at:  # fired for this time already: a new time, or the back-off
                if now < retry_at:
                    await self._wait(retry_at - now)
                    continue
                retry = min(retry * 2, RETRY_MAX)
            elif due > now:
                await self._wait(due - now)
                continue
            fired_at, retry_at = due, now + retry
            if await self._fire():
                retry, retry_at = RETRY_FIRST, math.inf  # done: only a new time fires again

    async def _fire(self) -> bool:
        self.fired += 1
        error_seen: BaseException | None
        stream: Stream[JSONValue] = Stream(self.unit.runtime, self.stream)
        try:
            result = await stream.send(self.event, principal=self.unit.creator)
        except CharmspaceError as error:
            result_ok, error_seen = False, error
        else:
            result_ok, error_seen = result.ok, result.error
        if not result_ok and error_seen is not None:
            log.warning(
                "alarm %s.%s: the event failed: %s",
                self.unit.name,
                self.name,
                describe(error_seen),
                extra={"space": self.unit.space, "charm": self.unit.id},
            )
        return result_ok
