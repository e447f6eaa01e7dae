"""The web shell in a real browser: Debian's Chromium driven by Playwright, real servers.

One browser per test module (starting Chromium is the slow part; Playwright's
synchronous API runs an event loop of its own, which must be gone before the
asyncio tests of other suites run); each test gets its own server process and
browser context. Without ``/usr/bin/chromium`` the tests skip, except in CI
(``CI=true``), where a missing browser is a failure: ``scripts/browser``
installs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from shellkit import CHROMIUM, CHROMIUM_ARGS, Shell, start


@pytest.fixture(scope="module")
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


@pytest.fixture
def shell_factory(browser: Any, tmp_path: Path) -> Iterator[Callable[..., Shell]]:
    shells: list[Shell] = []

    def make(**env: str) -> Shell:
        shell = Shell(start(tmp_path, **env), browser, tmp_path, [])
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
