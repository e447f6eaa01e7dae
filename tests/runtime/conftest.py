"""Fixtures for the runtime suite: a runtime on a fake clock, its spaces, its errors."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from charmspace.identity import Identity
from charmspace.runtime import ErrorReport, FakeClock, Runtime
from charmspace.types import SpaceDID

USER = Identity.from_passphrase("runtime suite: user")
SERVICE = Identity.from_passphrase("runtime suite: service")
BOB = Identity.from_passphrase("runtime suite: bob")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def runtime(clock: FakeClock) -> AsyncIterator[Runtime]:
    """An in-memory runtime acting as USER, on a fake clock, closed after the test."""
    rt = Runtime("memory://", identity=USER, service=SERVICE, clock=clock, random=random.Random(0))
    yield rt
    await rt.close()


@pytest.fixture(params=["memory", "sqlite"])
async def any_runtime(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Runtime]:
    """Like ``runtime``, once in memory and once on SQLite in ``tmp_path``."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'store'}"
    rt = Runtime(url, identity=USER, service=SERVICE, clock=clock, random=random.Random(0))
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
