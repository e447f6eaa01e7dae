"""The server as a real process: ready fast, its identity kept, logs without secrets, clean stop."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from charmspace.client import AsyncClient, Client
from charmspace.identity import Identity
from real_server import ServerProcess, start_server


def test_ready_quickly_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    started = time.monotonic()
    server = start_server(tmp_path)
    ready = time.monotonic() - started
    try:
        assert httpx.get(f"{server.url}/_health").json() == {"ok": True}
    finally:
        assert server.stop() == 0, server.log_text()
    assert ready < 5  # the design asks < 2 s; CI machines are slower than laptops
    log = server.log_text()
    assert "storage closed" in log


def test_identity_is_created_private_and_reused(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    first = server_factory()
    did = httpx.get(f"{first.url}/api/meta").json()["server"]
    key = first.data / "server.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert Identity.load(key).did == did
    assert first.stop() == 0
    second = server_factory(data=first.data)
    assert httpx.get(f"{second.url}/api/meta").json()["server"] == did


def test_commits_survive_a_restart(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    me = Identity.generate()
    first = server_factory()
    with Client(first.url, me) as client:
        client.spaces.create()
        charm = client.charms.create("counter")["id"]
        for _ in range(3):
            assert client.stream(me.did, charm, "increment").call({})["ok"]
    assert first.stop() == 0
    second = server_factory(data=first.data)
    with Client(second.url, me) as client:
        assert client.cell(me.did, charm, "value").get() == 3
        assert client.stream(me.did, charm, "increment").call({})["ok"]  # rebuilt on demand
        assert client.cell(me.did, charm, "value").get() == 4


def test_one_json_log_line_per_request_without_secrets(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory("--log-json")
    me = Identity.generate()
    with Client(server.url, me) as client:
        client.spaces.create()
        response = client.http.get("/api/spaces")
        request_id = response.headers["x-request-id"]
        authorization = response.request.headers["authorization"]
    assert server.stop() == 0
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("request_id") == request_id]
    assert len(requests) == 1
    assert requests[0]["status"] == 200 and requests[0]["principal"] == me.did
    signature = authorization.split('sig="')[1].rstrip('"')
    assert signature not in server.log_text()


async def test_sigterm_with_calls_in_flight_keeps_every_acknowledged_commit(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """Shutdown lets the requests in flight finish; each answered call is durable after it."""
    me = Identity.generate()
    first = server_factory()
    async with AsyncClient(first.url, me, timeout=30) as client:
        await client.spaces.create()
        charm = (await client.charms.create("counter"))["id"]
        stream = client.stream(me.did, charm, "increment")
        calls = [asyncio.ensure_future(stream.call({})) for _ in range(100)]
        await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
        first.process.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert first.process.wait(timeout=15) == 0, first.log_text()
    acknowledged = [r for r in results if isinstance(r, dict) and r["ok"]]
    refused = [r for r in results if not isinstance(r, dict)]
    assert all(isinstance(r, httpx.HTTPError) for r in refused)  # never a wrong answer
    assert acknowledged
    second = server_factory(data=first.data)
    async with AsyncClient(second.url, me) as client:
        value = await client.cell(me.did, charm, "value").get()
    assert len(acknowledged) <= value <= len(calls)


def test_the_login_link_logs_in_as_the_local_identity_once(
    server: ServerProcess, tmp_path: Path
) -> None:
    link = server.login_link()
    key = tmp_path / ".config" / "charmspace" / "identity.pem"  # HOME is tmp_path
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    local = Identity.load(key)
    assert link.startswith(f"{server.url}/login?token=")
    assert link not in server.log_text().split(link, 1)[1]  # printed once, never logged again
    with httpx.Client() as browser:
        opened = browser.get(link, follow_redirects=False)
        assert opened.status_code == 303
        assert opened.headers["location"] == "/"
        assert browser.get(f"{server.url}/api/session").json()["did"] == local.did
    with httpx.Client() as other:
        replayed = other.get(link, follow_redirects=False)
        assert replayed.status_code == 401
        assert other.get(f"{server.url}/api/session").status_code == 401
