"""Fixtures for the bundled patterns: an in-memory runtime on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from charmspace import Runtime
from charmspace.identity import Identity
from charmspace.runtime import FakeClock


@pytest.fixture
async def runtime(storage_url: str) -> AsyncIterator[Runtime]:
    """A runtime in memory and on SQLite, closed after the test."""
    rt = Runtime(
        storage_url,
        identity=Identity.from_passphrase("library suite: user"),
        clock=FakeClock(),
        call_timeout=5,
    )
    yield rt
    await rt.close()
