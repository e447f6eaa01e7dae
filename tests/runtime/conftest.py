"""Fixtures for the runtime suite: a runtime on a fake clock, its spaces, its errors."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from charmspace import Runtime
from charmspace.identity import Identity
from charmspace.runtime import ErrorReport, FakeClock
from charmspace.types import SpaceDID

USER = Identity.from_passphrase("runtime suite: user")
SERVICE = Identity.from_passphrase("runtime suite: service")
BOB = Identity.from_passphrase("runtime suite: bob")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def runtime(storage_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    """A runtime acting as USER on a fake clock, in memory and on SQLite, closed after the test."""
    rt = Runtime(storage_url, identity=USER, service=SERVICE, clock=clock, random=random.Random(0))
    yield rt
    await rt.close()


@pytest.fixture
def space(runtime: Runtime) -> SpaceDID:
    """USER's space "home"."""
    return runtime.create_space(name="home")


@pytest.fixture
def other_space(runtime: Runtime) -> SpaceDID:
    """USER's space "other"."""
    return runtime.create_space(name="other")


@pytest.fixture
def bob() -> Identity:
    """Another user, with no rights anywhere until granted."""
    return BOB


@pytest.fixture
def errors(runtime: Runtime) -> list[ErrorReport]:
    """Every error the runtime reports to ``on_error`` listeners during the test."""
    reports: list[ErrorReport] = []
    runtime.on_error(reports.append)
    return reports
