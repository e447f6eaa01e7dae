"""The web shell in a real browser: Debian's Chromium driven by Playwright, real servers.

One browser for the whole session (starting Chromium is the slow part); each
test gets its own server process and browser context. Without
``/usr/bin/chromium`` the tests skip, except in CI (``CI=true``), where a
missing browser is a failure: ``scripts/browser`` installs it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from charmspace.identity import Identity
from charmspace.signing import b64encode, session_message

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",  # no network here: without these Chromium
    "--disable-component-update",  # keeps failing outbound connections
    "--disable-sync",
]
PATTERNS = Path(__file__).parent.parent / "server" / "shell_patterns"
ARTIFACTS = Path(os.environ.get("CHARMSPACE_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")

_spec = importlib.util.spec_from_file_location(
    "server_fixtures", Path(__file__).parent.parent / "server" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
server_fixtures: Any = importlib.util.module_from_spec(_spec)
sys.modules["server_fixtures"] = server_fixtures
_spec.loader.exec_module(server_fixtures)
ServerProcess = server_fixtures.ServerProcess


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: run scripts/browser (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: run scripts/browser to install it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Shell:
    """A server process for one test, and ways to get logged-in browser pages on it."""

    server: Any
    browser: Any
    tmp_path: Path
    contexts: list[Any]

    @property
    def url(self) -> str:
        return str(self.server.url)

    def login_link(self) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            match = re.search(r"http://\S+/login\?token=\S+", self.server.log_text())
            if match:
                return match.group()
            time.sleep(0.02)
        raise AssertionError(f"no login link printed:\n{self.server.log_text()}")

    def context(self) -> Any:
        context = self.browser.new_context(base_url=self.url)
        context.set_default_timeout(5000)
        self.contexts.append(context)
        return context

    def local_user(self) -> Any:
        """A context logged in as the local user, through the one-time link."""
        context = self.context()
        page = context.new_page()
        page.goto(self.login_link())
        page.wait_for_url(f"{self.url}/")
        page.close()
        return context

    def user(self, identity: Identity) -> Any:
        """A context logged in as ``identity`` (it signed a challenge, as a browser key would)."""
        with httpx.Client(base_url=self.url, headers={"Origin": self.url}) as http:
            challenge = http.get("/api/session/challenge").json()["challenge"]
            signature = b64encode(identity.sign(session_message(challenge, identity.did)))
            response = http.post(
                "/api/session",
                json={"did": identity.did, "challenge": challenge, "signature": signature},
            )
            assert response.status_code == 200, response.text
            cookies = [
                {"name": c.name, "value": c.value or "", "url": self.url} for c in http.cookies.jar
            ]
        context = self.context()
        context.add_cookies(cookies)
        return context

    def restart(self) -> None:
        """A new server process on the same data (the old one must be gone)."""
        assert self.server.process.poll() is not None
        self.server = _start(self.tmp_path, self.server.data, port=_port(self.url))


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _start(tmp_path: Path, data: Path | None = None, port: int | None = None, **env: str) -> Any:
    variables = {"CHARMSPACE_PATTERNS_DIR": str(PATTERNS), **env}
    if port is None:
        return server_fixtures.start_server(tmp_path, data=data, env=variables)
    original = server_fixtures.free_port
    server_fixtures.free_port = lambda: port  # the page reconnects to the address it knows
    try:
        return server_fixtures.start_server(tmp_path, data=data, env=variables)
    finally:
        server_fixtures.free_port = original


@pytest.fixture
def shell_factory(browser: Any, tmp_path: Path) -> Iterator[Callable[..., Shell]]:
    shells: list[Shell] = []

    def make(**env: str) -> Shell:
        shell = Shell(_start(tmp_path, **env), browser, tmp_path, [])
        shells.append(shell)
        return shell

    yield make
    for shell in shells:
        for context in shell.contexts:
            context.close()
        if shell.server.process.poll() is None:
            assert shell.server.stop() == 0, shell.server.log_text()


@pytest.fixture
def shell(shell_factory: Callable[..., Shell]) -> Shell:
    return shell_factory()


def screenshot(page: Any, name: str) -> None:
    """Keep a picture of the page for people to look at (never compared)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
