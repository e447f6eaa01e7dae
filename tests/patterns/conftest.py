"""Fixtures for the authoring-layer suite: a runtime on a fake clock, in memory or on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from charmspace import Runtime
from charmspace.identity import Identity
from charmspace.runtime import FakeClock

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
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store'}"


@pytest.fixture
async def open_runtime(sqlite_url: str, clock: FakeClock) -> AsyncIterator[OpenRuntime]:
    """``await open_runtime()``: a new runtime on the same SQLite directory, as the same user.

    Each call is what a restarted process would open; close the old one first.
    Every runtime opened is closed at the end of the test (closing twice is harmless).
    """
    opened: list[Runtime] = []

    async def open_() -> Runtime:
        rt = Runtime(
            sqlite_url,
            identity=Identity.from_passphrase("patterns suite: user"),
            service=Identity.from_passphrase("patterns suite: service"),
            clock=clock,
            call_timeout=5,
        )
        opened.append(rt)
        return rt

    yield open_
    for rt in opened:
        await rt.close()


@pytest.fixture
async def sqlite_runtime(open_runtime: OpenRuntime) -> Runtime:
    """A runtime on SQLite in ``tmp_path`` (closed after the test)."""
    return await open_runtime()
