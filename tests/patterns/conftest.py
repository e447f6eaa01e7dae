"""Fixtures for the authoring-layer suite: a runtime on a fake clock, in memory or on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from charmspace import Runtime
from charmspace.identity import Identity
from charmspace.runtime import FakeClock
from charmspace.storage import Storage

USER = Identity.from_passphrase("patterns suite: user")
SERVICE = Identity.from_passphrase("patterns suite: service")

OpenRuntime = Callable[[], Awaitable[Runtime]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def runtime(storage_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    """A runtime acting as USER, in memory and on SQLite, closed after the test."""
    rt = Runtime(storage_url, identity=USER, service=SERVICE, clock=clock, call_timeout=5)
    yield rt
    await rt.close()


@pytest.fixture
async def open_runtime(
    lasting_store: str | Storage, clock: FakeClock
) -> AsyncIterator[OpenRuntime]:
    """``await open_runtime()``: a new runtime on the same store, as the same user.

    Each call is what a restarted process would open (in memory and on SQLite);
    close the old one first. Every runtime opened is closed at the end of the
    test (closing twice is harmless).
    """
    opened: list[Runtime] = []

    async def open_() -> Runtime:
        rt = Runtime(lasting_store, identity=USER, service=SERVICE, clock=clock, call_timeout=5)
        opened.append(rt)
        return rt

    yield open_
    for rt in opened:
        await rt.close()
