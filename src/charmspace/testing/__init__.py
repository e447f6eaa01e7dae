"""What charmspace's own tests use, for yours: an in-memory runtime on a fake clock.

::

    from charmspace.testing import test_runtime

    async def test_my_counter() -> None:
        async with test_runtime() as runtime:
            charm = await runtime.charms.create(counter, inputs={"value": 1})
            await charm.stream("adjust").call({"amount": 2})
            await runtime.idle()
            assert charm["value"].get() == 3

``runtime.clock`` is a :class:`~charmspace.runtime.FakeClock`:
``await runtime.clock.advance(60)`` moves time (and time-based derived values).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from charmspace import Runtime
from charmspace.identity import Identity
from charmspace.runtime import FakeClock


@asynccontextmanager
async def test_runtime(
    storage: str = "memory://", *, user: str = "test user", seed: int = 0
) -> AsyncIterator[Runtime]:
    """A runtime acting as the identity derived from ``user``, deterministic, closed after use."""
    runtime = Runtime(
        storage,
        identity=Identity.from_passphrase(user),
        clock=FakeClock(),
        random=random.Random(seed),
    )
    try:
        yield runtime
    finally:
        await runtime.close()


test_runtime.__test__ = False  # type: ignore[attr-defined]  # not a test for pytest


class ManualFlush:
    """A storage ``flush_scheduler`` that waits for you: grouped commits stay pending
    until ``run()``, so a test can look at the moment between apply and durable."""

    def __init__(self) -> None:
        self.requested: list[Callable[[], None]] = []

    def __call__(self, flush: Callable[[], None]) -> None:
        self.requested.append(flush)

    def run(self) -> None:
        requested, self.requested = self.requested, []
        for flush in requested:
            flush()


__all__ = ["FakeClock", "ManualFlush", "test_runtime"]
