"""The Google sign-in and refresh with every part real: a server process, and the fake
Google served over HTTP on loopback (as Google would be, only closer)."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect

from charmspace.client.auth import SignedAuth
from charmspace.errors import IntegrationError
from charmspace.identity import Identity
from charmspace.integrations.google.oauth import GoogleOAuth, GoogleSettings
from charmspace.runtime import FakeClock
from charmspace.runtime.secrets import MASK
from charmspace.testing._serve import serve_asgi
from charmspace.testing.google import FakeGoogle
from real_server import ServerProcess, free_port, signed_upgrade, start_server

ALICE = Identity.from_passphrase("google process: alice")
BOB = Identity.from_passphrase("google process: bob")
PREFIX = "/api/integrations/google-oauth"


@pytest.fixture
def real_google() -> Iterator[tuple[FakeGoogle, str]]:
    google = FakeGoogle(lifetime=3600)
    with serve_asgi(google) as base:
        yield google, base


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def google_env(tmp_path: Path, real_google: tuple[FakeGoogle, str], port: int) -> dict[str, str]:
    """The ``CHARMSPACE_GOOGLE_*`` settings of a server on ``port`` that uses the fake Google."""
    google, base = real_google
    secret = tmp_path / "client-secret"
    secret.write_text(google.client_secret)
    secret.chmod(0o600)
    return {
        "CHARMSPACE_GOOGLE_CLIENT_ID": google.client_id,
        "CHARMSPACE_GOOGLE_CLIENT_SECRET_FILE": str(secret),
        "CHARMSPACE_GOOGLE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **{f"CHARMSPACE_GOOGLE_{k.upper()}": v for k, v in FakeGoogle.urls(base).items()},
    }


@pytest.fixture
def server(tmp_path: Path, google_env: dict[str, str], port: int) -> Iterator[ServerProcess]:
    server = start_server(tmp_path, env=google_env, port=port)
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log_text()


async def watch_auth(server: ServerProcess, space: str, charm: str, who: Identity) -> Any:
    """The auth cell's value as the live WebSocket sends it to ``who``."""
    async with connect(server.ws_url, additional_headers=signed_upgrade(who), proxy=None) as ws:
        subscribe = {"op": "subscribe", "id": 1, "space": space, "charm": charm, "path": ["auth"]}
        await ws.send(json.dumps(subscribe))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert frame["op"] == "value", frame
    return frame["value"]


def start_sign_in(http: httpx.Client) -> tuple[str, str]:
    """Alice's auth charm, and the login URL its "Sign in with Google" button asked for."""
    http.post("/api/spaces", json={"space": ALICE.did}).raise_for_status()
    charm = http.post(f"/api/spaces/{ALICE.did}/charms", json={"pattern": "google_auth"})
    charm.raise_for_status()
    charm_path = f"/api/spaces/{ALICE.did}/charms/{charm.json()['id']}"
    return charm_path, click_sign_in(http, charm_path)


def click_sign_in(http: httpx.Client, charm_path: str) -> str:
    """The UI's button: the handler asks the server's Google client for a login URL."""
    called = http.post(
        f"{charm_path}/streams/sign_in", params={"wait": "result"}, json={"event": {}}
    )
    assert called.status_code == 200 and called.json()["ok"], called.text
    login_url: str = http.get(f"{charm_path}/cells/login_url").json()["value"]
    return login_url


def consent(login_url: str, server: ServerProcess) -> str:
    """Google's consent, approved at once: where it sends the browser back."""
    answer = httpx.get(login_url)
    assert answer.status_code == 302
    back = answer.headers["location"]
    assert back.startswith(f"{server.url}{PREFIX}/callback?")
    return back


def test_sign_in_then_a_consumer_refresh_through_the_charm_with_every_part_real(
    server: ServerProcess, real_google: tuple[FakeGoogle, str]
) -> None:
    google, _ = real_google
    with httpx.Client(base_url=server.url, auth=SignedAuth(ALICE), timeout=10) as http:
        charm_path, login_url = start_sign_in(http)
        page = httpx.get(consent(login_url, server))
        assert page.status_code == 200 and "alice@example.com" in page.text
        auth = http.get(f"{charm_path}/cells/auth").json()["value"]
        assert google.check_access_token(auth["token"]) == "valid"
        # A consumer was refused the token: it asks the charm, which refreshes.
        refreshed = http.post(
            f"{charm_path}/streams/refresh",
            params={"wait": "result"},
            json={"event": {"stale_token": auth["token"]}},
        )
        assert refreshed.json()["ok"] and refreshed.json()["value"] == "refreshed"
        new = http.get(f"{charm_path}/cells/auth").json()["value"]
        assert new["token"] != auth["token"]
        assert google.check_access_token(new["token"]) == "valid"
        assert google.calls["refresh_token"] == 1
        http.put(
            f"/api/spaces/{ALICE.did}/acl", json={"subject": BOB.did, "capability": "READ"}
        ).raise_for_status()
    watched = asyncio.run(watch_auth(server, ALICE.did, charm_path.rsplit("/", 1)[1], BOB))
    assert watched["token"] == MASK and watched["refresh_token"] == MASK
    assert watched["user"]["email"] == "alice@example.com"
    text = server.log_text()
    for secret in (auth["token"], auth["refresh_token"], new["token"], google.client_secret):
        assert secret not in text


def consented_then_stopped(tmp_path: Path, env: dict[str, str], port: int) -> tuple[str, str]:
    """Alice starts a sign-in and consents, and the server stops before her browser is back:
    her auth charm, and the callback URL Google sent her browser to."""
    server = start_server(tmp_path, env=env, port=port)
    try:
        with httpx.Client(base_url=server.url, auth=SignedAuth(ALICE), timeout=10) as http:
            charm_path, login_url = start_sign_in(http)
        return charm_path, consent(login_url, server)
    finally:
        assert server.stop() == 0, server.log_text()


def test_a_restart_between_the_sign_in_and_the_callback_loses_nothing(
    tmp_path: Path, google_env: dict[str, str], port: int, real_google: tuple[FakeGoogle, str]
) -> None:
    google, _ = real_google
    charm_path, back = consented_then_stopped(tmp_path, google_env, port)
    kept = tmp_path / "data" / "google-sign-ins.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert parse_qs(urlsplit(back).query)["state"][0] not in kept.read_text()
    second = start_server(tmp_path, env=google_env, port=port)
    try:
        page = httpx.get(back)
        assert page.status_code == 200 and "Signed in as alice@example.com." in page.text
        with httpx.Client(base_url=second.url, auth=SignedAuth(ALICE), timeout=10) as http:
            auth = http.get(f"{charm_path}/cells/auth").json()["value"]
        assert google.check_access_token(auth["token"]) == "valid"
    finally:
        assert second.stop() == 0, second.log_text()


def test_a_sign_in_the_restarted_server_lost_shows_a_page_that_says_to_start_again(
    tmp_path: Path, google_env: dict[str, str], port: int, real_google: tuple[FakeGoogle, str]
) -> None:
    google, _ = real_google
    charm_path, back = consented_then_stopped(tmp_path, google_env, port)
    (tmp_path / "data" / "google-sign-ins.json").unlink()  # as if it could not be kept
    second = start_server(tmp_path, env=google_env, port=port)
    try:
        page = httpx.get(back)
        assert page.status_code == 400
        assert page.headers["content-type"].startswith("text/html")
        assert "Google sign-in failed" in page.text and "start the sign-in again" in page.text
        assert 'href="/"' in page.text  # "Back to charmspace"
        assert google.calls["authorization_code"] == 0
        with httpx.Client(base_url=second.url, auth=SignedAuth(ALICE), timeout=10) as http:
            auth = http.get(f"{charm_path}/cells/auth").json()["value"]
            assert auth["token"] == ""
            again = click_sign_in(http, charm_path)  # starting again works
            assert httpx.get(consent(again, second)).status_code == 200
            auth = http.get(f"{charm_path}/cells/auth").json()["value"]
        assert google.check_access_token(auth["token"]) == "valid"
    finally:
        assert second.stop() == 0, second.log_text()


async def test_refresh_gives_up_on_a_slow_google_within_its_timeout(
    real_google: tuple[FakeGoogle, str],
) -> None:
    google, base = real_google
    settings = GoogleSettings(
        client_id=google.client_id,
        client_secret=google.client_secret,
        timeout=0.3,
        **FakeGoogle.urls(base),
    )
    oauth = GoogleOAuth(settings, clock=FakeClock())
    refresh_token = google.issue()["refresh_token"]
    google.latency = 3.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(IntegrationError) as raised:
        await oauth.refresh(refresh_token)
    assert raised.value.reason == "upstream_unreachable"
    assert loop.time() - started < 2.0
