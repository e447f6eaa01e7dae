"""Fixtures of the server suites: the app in-process (fast) and the server as a real process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from charmspace.client import AsyncClient
from charmspace.identity import Identity
from charmspace.server import Settings, create_app

BASE = "http://charmspace.test"


@dataclass
class InProcess:
    """The app with its lifespan running, and a way to make clients for it."""

    app: FastAPI
    transport: httpx.ASGITransport

    def client(self, identity: Identity | None = None) -> AsyncClient:
        return AsyncClient(BASE, identity or Identity.generate(), transport=self.transport)

    def raw(self) -> httpx.AsyncClient:
        """An httpx client that signs nothing (for hand-made requests)."""
        return httpx.AsyncClient(base_url=BASE, transport=self.transport)


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    data: Path
    log: Path

    def stop(self) -> int:
        """SIGTERM, then the exit status (it must stop by itself within 15 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    tmp_path: Path, *extra: str, data: Path | None = None, env: dict[str, str] | None = None
) -> ServerProcess:
    """``python -m charmspace serve`` on a free loopback port, HOME and data in ``tmp_path``.

    ``env`` adds variables (``CHARMSPACE_*`` settings) to a clean environment.
    """
    port = free_port()
    data = data or tmp_path / "data"
    log = tmp_path / f"server-{port}.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHARMSPACE_")}
    env = {**clean, "HOME": str(tmp_path), **(env or {})}
    args = [sys.executable, "-m", "charmspace", "serve", "--port", str(port), "--data", str(data)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*args, *extra], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(process, url, data, log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"the server exited with {process.returncode}:\n{server.log_text()}"
            )
        try:
            if httpx.get(f"{url}/_health", timeout=1).json() == {"ok": True}:
                return server
        except httpx.HTTPError:
            time.sleep(0.05)
    server.stop()
    raise AssertionError(f"the server did not become healthy:\n{server.log_text()}")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers; each is stopped with SIGTERM at the end and must exit with status 0."""
    started: list[ServerProcess] = []

    def start(*extra: str, data: Path | None = None) -> ServerProcess:
        server = start_server(tmp_path, *extra, data=data)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            assert server.stop() == 0, server.log_text()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory()
