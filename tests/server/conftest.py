"""Fixtures of the server suites: the app in-process (fast) and the server as a real process.

The real process comes from ``real_server`` (shared with the CLI suites);
``ServerProcess`` and ``start_server`` are importable from here as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from in_process import BASE, InProcess

from charmspace.client import AsyncClient
from charmspace.identity import Identity
from charmspace.server import Settings, create_app
from real_server import ServerProcess, free_port, start_server

__all__ = ["BASE", "InProcess", "ServerProcess", "free_port", "start_server"]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[InProcess]:
    """The app in this process over SQLite in ``tmp_path`` (the production backend)."""
    app = create_app(Settings(data=tmp_path / "data"))
    async with app.router.lifespan_context(app):
        yield InProcess(app, httpx.ASGITransport(app=app))


@pytest.fixture
async def alice(served: InProcess) -> AsyncIterator[AsyncClient]:
    async with served.client(Identity.from_passphrase("alice")) as client:
        await client.spaces.create()
        yield client


@pytest.fixture
async def bob(served: InProcess) -> AsyncIterator[AsyncClient]:
    async with served.client(Identity.from_passphrase("bob")) as client:
        yield client


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers; each is stopped with SIGTERM at the end and must exit with status 0."""
    started: list[ServerProcess] = []

    def start(
        *extra: str, data: Path | None = None, env: dict[str, str] | None = None
    ) -> ServerProcess:
        server = start_server(tmp_path, *extra, data=data, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            assert server.stop() == 0, server.log_text()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()
