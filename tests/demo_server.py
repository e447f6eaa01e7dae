"""``charmspace serve --demo`` as a real process, and a browser-like user of it over HTTP.

:class:`DemoUser` does what the web shell does, with the session cookie and the
CSRF header: it logs in with the printed link, starts the Google sign-in from
the auth charm's button (the props the page reads), follows the fake Google's
consent back to the callback, and clicks Scan. ``/_demo/`` answers what the
fakes saw and moves the demo clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from real_server import ServerProcess, start_server

FINISHED = frozenset({"done", "failed", "stopped", "budget reached"})


def start_demo(tmp_path: Path, **env: str) -> ServerProcess:
    return start_server(tmp_path, "--demo", env=env)


def find_node(tree: Any, node_id: str) -> dict[str, Any] | None:
    """The UI node with ``props.id == node_id`` in a rendered tree."""
    if isinstance(tree, dict):
        if tree.get("props", {}).get("id") == node_id:
            return tree
        tree = tree.get("children", [])
    if isinstance(tree, list):
        for child in tree:
            found = find_node(child, node_id)
            if found is not None:
                return found
    return None


@dataclass
class DemoUser:
    server: ServerProcess
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.server.url, follow_redirects=True, timeout=15)
        page = self.http.get(self.server.login_link())
        assert page.status_code == 200, page.text
        self.headers = {
            "x-csrf-token": self.http.cookies["charmspace_csrf"],
            "origin": self.server.url,
        }
        self.auth, self.gmail = self._seeded()

    def close(self) -> None:
        self.http.close()

    def _seeded(self) -> tuple[str, str]:
        """The paths of the seeded auth charm (a favorite) and the Gmail search charm."""
        favorites = self.http.get("/api/favorites").json()
        assert [f["name"] for f in favorites] == ["google_auth"], favorites
        auth = f"/api/spaces/{favorites[0]['space']}/charms/{favorites[0]['id']}"
        gmail = [
            f"/api/spaces/{space['space']}/charms/{charm['id']}"
            for space in self.http.get("/api/spaces").json()
            for charm in self.http.get(f"/api/spaces/{space['space']}/charms").json()
            if charm["pattern"] == "gmail_agentic_search"
        ]
        assert len(gmail) == 1, gmail
        return auth, gmail[0]

    def result(self, charm: str) -> dict[str, Any]:
        answer = self.http.get(charm)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()["result"]
        return result

    def sign_in(self) -> httpx.Response:
        """Click "Sign in with Google" (as the shell does) and consent: the callback page."""
        ui = self.http.get(f"{self.auth}/cells/%24UI").json()["value"]
        button = find_node(ui, "sign-in")
        assert button is not None and button["name"] == "oauth-button", ui
        props = button["props"]
        link = {
            "space": props["data_auth_space"],
            "id": props["data_auth_id"],
            "path": props["data_auth_path"],
        }
        started = self.http.post(
            "/api/integrations/google-oauth/login",
            json={"auth_cell": {"/": {"link@1": link}}, "scopes": props["data_scopes"]},
            headers=self.headers,
        )
        assert started.status_code == 200, started.text
        return self.http.get(started.json()["url"])

    def scan(self, timeout: float = 30) -> dict[str, Any]:
        """Click Scan and wait until the scan finishes: the charm's result then."""
        sent = self.http.post(
            f"{self.gmail}/streams/scan?wait=commit", json={"event": {}}, headers=self.headers
        )
        assert sent.status_code == 200 and sent.json()["ok"], sent.text
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.result(self.gmail)
            if result["progress"]["status"] in FINISHED:
                return result
            time.sleep(0.1)
        raise AssertionError(f"the scan did not finish: {self.result(self.gmail)['progress']}")

    def demo(self, path: str, body: Any = None) -> dict[str, Any]:
        """``GET /_demo/status`` (no body) or a ``POST`` to a control route."""
        if body is None:
            answer = self.http.get(f"/_demo/{path}")
        else:
            answer = self.http.post(f"/_demo/{path}", json=body)
        assert answer.status_code == 200, answer.text
        state: dict[str, Any] = answer.json()
        return state
