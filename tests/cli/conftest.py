"""Fixtures of the CLI suites: a real server process, and ways to run ``charmspace`` at it.

``charmspace`` runs as a subprocess (the real entry point, for the scenario
tests) or in-process with Typer's ``CliRunner`` (faster, for the rest); both
talk to the same real server over loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_user import User, make_user

from real_server import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a test module; it must stop cleanly (status 0) at the end."""
    started = start_server(tmp_path_factory.mktemp("server"))
    yield started
    assert started.stop() == 0, started.log_text()


@pytest.fixture
def alice(server: ServerProcess, tmp_path: Path) -> User:
    return make_user("alice", tmp_path, server.url)


@pytest.fixture
def bob(server: ServerProcess, tmp_path: Path) -> User:
    return make_user("bob", tmp_path, server.url)
