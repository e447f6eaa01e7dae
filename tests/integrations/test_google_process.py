"""The Google sign-in and refresh with every part real: a server process, and the fake
Google served over HTTP on loopback (as Google would be, only closer)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from charmspace.client.auth import SignedAuth
from charmspace.errors import IntegrationError
from charmspace.identity import Identity
from charmspace.integrations.google.oauth import GoogleOAuth, GoogleSettings
from charmspace.runtime import FakeClock
from charmspace.runtime.secrets import MASK
from charmspace.signing import sign_request
from charmspace.testing._serve import serve_asgi
from charmspace.testing.google import FakeGoogle

ALICE = Identity.from_passphrase("google process: alice")
BOB = Identity.from_passphrase("google process: bob")
PREFIX = "/api/integrations/google-oauth"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def real_google() -> Iterator[tuple[FakeGoogle, str]]:
    google = FakeGoogle(lifetime=3600)
    with serve_asgi(google) as base:
        yield google, base


@pytest.fixture
def server(tmp_path: Path, real_google: tuple[FakeGoogle, str]) -> Iterator[tuple[str, Path]]:
    google, base = real_google
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = {
        "CHARMSPACE_GOOGLE_CLIENT_ID": google.client_id,
        "CHARMSPACE_GOOGLE_PUBLIC_URL": url,
        **{f"CHARMSPACE_GOOGLE_{k.upper()}": v for k, v in FakeGoogle.urls(base).items()},
    }
    secret = tmp_path / "client-secret"
    secret.write_text(google.client_secret)
    secret.chmod(0o600)
    settings["CHARMSPACE_GOOGLE_CLIENT_SECRET_FILE"] = str(secret)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHARMSPACE_")}
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "charmspace",
                "serve",
                "--port",
                str(port),
                "--data",
                str(tmp_path / "data"),
            ],
            cwd=tmp_path,
            env={**clean, "HOME": str(tmp_path), **settings},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/_health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield url, log
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0, log.read_text()


async def watch_auth(url: str, space: str, charm: str, who: Identity) -> Any:
    """The auth cell's value as the live WebSocket sends it to ``who``."""
    header = sign_request(who, "GET", "/api/ws", b"", int(time.time())).render()
    ws_url = url.replace("http://", "ws://") + "/api/ws"
    async with connect(ws_url, additional_headers={"Authorization": header}, proxy=None) as ws:
        subscribe = {"op": "subscribe", "id": 1, "space": space, "charm": charm, "path": ["auth"]}
        await ws.send(json.dumps(subscribe))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert frame["op"] == "value", frame
    return frame["value"]


def test_sign_in_then_a_consumer_refresh_through_the_charm_with_every_part_real(
    server: tuple[str, Path], real_google: tuple[FakeGoogle, str]
) -> None:
    url, log = server
    google, _ = real_google
    with httpx.Client(base_url=url, auth=SignedAuth(ALICE), timeout=10) as http:
        http.post("/api/spaces", json={"space": ALICE.did}).raise_for_status()
        charm = http.post(f"/api/spaces/{ALICE.did}/charms", json={"pattern": "google_auth"})
        charm.raise_for_status()
        charm_path = f"/api/spaces/{ALICE.did}/charms/{charm.json()['id']}"
        # The UI's button: the handler asks the server's Google client for a login URL.
        called = http.post(
            f"{charm_path}/streams/sign_in", params={"wait": "result"}, json={"event": {}}
        )
        assert called.status_code == 200 and called.json()["ok"], called.text
        login_url = http.get(f"{charm_path}/cells/login_url").json()["value"]
        consent = httpx.get(login_url)  # Google's consent, approved at once
        assert consent.status_code == 302
        back = consent.headers["location"]
        assert back.startswith(f"{url}{PREFIX}/callback?")
        page = httpx.get(back)
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
    watched = asyncio.run(watch_auth(url, ALICE.did, charm.json()["id"], BOB))
    assert watched["token"] == MASK and watched["refresh_token"] == MASK
    assert watched["user"]["email"] == "alice@example.com"
    text = log.read_text()
    for secret in (auth["token"], auth["refresh_token"], new["token"], google.client_secret):
        assert secret not in text


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
