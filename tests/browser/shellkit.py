"""Helpers of the browser tests: servers with the shell's test patterns, logged-in contexts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from charmspace.identity import Identity
from charmspace.signing import b64encode, session_message
from real_server import start_server

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
        return str(self.server.login_link())

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
        self.server = start(self.tmp_path, self.server.data, port=_port(self.url))


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def start(tmp_path: Path, data: Path | None = None, port: int | None = None, **env: str) -> Any:
    variables = {"CHARMSPACE_PATTERNS": str(PATTERNS), **env}
    # On restart, the same port: the page reconnects to the address it knows.
    return start_server(tmp_path, data=data, env=variables, port=port)


def create(context: Any, pattern: str, **inputs: Any) -> str:
    """A charm in the user's home space, made by the page's own fetch (cookie + CSRF)."""
    page = context.new_page()
    page.goto("/")
    created = page.evaluate(
        """async ([pattern, inputs]) => {
            const did = (await (await fetch('/api/session')).json()).did;
            const csrf = /charmspace_csrf=([^;]+)/.exec(document.cookie)[1];
            const r = await fetch(`/api/spaces/${did}/charms`, {method: 'POST',
                headers: {'content-type': 'application/json', 'x-csrf-token': csrf},
                body: JSON.stringify({pattern, inputs})});
            const body = await r.json();
            return `/${did}/${body.id}`;
        }""",
        [pattern, inputs],
    )
    page.close()
    return str(created)


def screenshot(page: Any, name: str) -> None:
    """Keep a picture of the page for people to look at (never compared)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
