"""``/api/ws`` against a real server: values in commit order, refusals, origins, slow clients."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from charmspace.client import APIError, AsyncClient
from charmspace.identity import Identity
from charmspace.server.sessions import SESSION_COOKIE
from charmspace.signing import b64encode, session_message
from real_server import ServerProcess, signed_upgrade, start_server

TIMEOUT = 10.0


@asynccontextmanager
async def socket_to(
    server: ServerProcess, headers: dict[str, str], **options: Any
) -> AsyncIterator[ClientConnection]:
    async with connect(
        server.ws_url, additional_headers=headers, compression=None, proxy=None, **options
    ) as ws:
        yield ws


async def frame(ws: ClientConnection) -> dict[str, Any]:
    received: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return received


def subscribe(id: object, space: str, charm: str, *path: str | int) -> str:
    return json.dumps(
        {"op": "subscribe", "id": id, "space": space, "charm": charm, "path": list(path)}
    )


@pytest.fixture
async def alice(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, Identity.from_passphrase("alice")) as client:
        await client.spaces.create()
        yield client


async def test_values_arrive_at_subscription_and_after_each_commit_in_order(
    server: ServerProcess, alice: AsyncClient
) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    me = Identity.from_passphrase("alice")
    async with socket_to(server, signed_upgrade(me)) as ws:
        await ws.send(subscribe("c1", alice.did, charm, "value"))
        first = await frame(ws)
        assert (first["op"], first["id"], first["value"]) == ("value", "c1", 0)
        assert first["seq"] == await alice.spaces.head(alice.did)
        increment = alice.stream(alice.did, charm, "increment")
        seqs = [first["seq"]]
        for n in range(1, 6):
            await increment.call({})
            update = await frame(ws)
            assert (update["op"], update["id"], update["value"]) == ("value", "c1", n)
            seqs.append(update["seq"])
        assert seqs == sorted(set(seqs))  # strictly increasing: commit order
        assert seqs[-1] <= await alice.spaces.head(alice.did)  # later commits may not change it

        await ws.send(json.dumps({"op": "unsubscribe", "id": "c1"}))
        await increment.call({})
        await ws.send(subscribe("c2", alice.did, charm, "value"))
        again = await frame(ws)  # nothing for c1 came in between
        assert (again["id"], again["value"]) == ("c2", 6)


async def test_a_refused_subscription_gets_an_error_and_no_value(
    server: ServerProcess, alice: AsyncClient
) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    bob = Identity.from_passphrase("bob")
    async with socket_to(server, signed_upgrade(bob)) as ws:
        await ws.send(subscribe(7, alice.did, charm, "value"))
        refused = await frame(ws)
        assert refused["op"] == "error" and refused["id"] == 7
        assert refused["error"]["type"] == "AuthorizationError"
        await alice.stream(alice.did, charm, "increment").call({})
        await ws.send(json.dumps({"op": "nonsense", "id": 8}))
        assert (await frame(ws))["error"]["type"] == "BadRequestError"  # and no value for 7


async def test_a_name_the_result_lacks_is_refused_but_shell_names_read_null(
    server: ServerProcess, alice: AsyncClient
) -> None:
    """Regression: subscribing to a misspelt cell name ("vaule") was accepted and
    streamed null, where the HTTP cell routes answer 404. The shell's ``$``-names
    (``$NAME``, ``$UI``) stay allowed, and read null on a charm without them."""
    charm = (await alice.charms.create("counter"))["id"]
    me = Identity.from_passphrase("alice")
    async with socket_to(server, signed_upgrade(me)) as ws:
        await ws.send(subscribe("typo", alice.did, charm, "vaule"))
        refused = await frame(ws)
        assert (refused["op"], refused["id"], refused["status"]) == ("error", "typo", 404)
        assert refused["error"]["type"] == "UnknownCellError"
        assert "value" in refused["error"]["names"]
        assert "has no 'vaule' in its result" in refused["error"]["message"]

        await ws.send(subscribe("absent", alice.did, charm, "$NOT_A_NAME_IT_HAS"))
        absent = await frame(ws)
        assert (absent["op"], absent["id"], absent["value"]) == ("value", "absent", None)
        await ws.send(subscribe("name", alice.did, charm, "$NAME"))
        named = await frame(ws)
        assert (named["op"], named["id"]) == ("value", "name")
        assert isinstance(named["value"], str)


async def log_in(server: ServerProcess, identity: Identity) -> str:
    """A browser session for ``identity``: its session cookie's value."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        challenge = (await http.get("/api/session/challenge")).json()["challenge"]
        signature = b64encode(identity.sign(session_message(challenge, identity.did)))
        response = await http.post(
            "/api/session",
            json={"did": identity.did, "challenge": challenge, "signature": signature},
            headers={"Origin": server.url},  # as a browser on the server's page sends it
        )
        assert response.status_code == 200, response.text
        return http.cookies[SESSION_COOKIE]


async def test_a_session_upgrade_needs_our_own_origin(
    server: ServerProcess, alice: AsyncClient
) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    cookie = {
        "Cookie": f"{SESSION_COOKIE}={await log_in(server, Identity.from_passphrase('alice'))}"
    }
    with pytest.raises(InvalidStatus) as refused:
        async with socket_to(server, cookie, origin="http://evil.test"):
            pass
    assert refused.value.response.status_code == 403
    host = urlsplit(server.url).netloc
    assert host.startswith("127.0.0.1:")
    with pytest.raises(InvalidStatus) as other_port:
        async with socket_to(server, cookie, origin="http://127.0.0.1:1"):
            pass
    assert other_port.value.response.status_code == 403
    async with socket_to(server, cookie, origin=server.url) as ws:
        await ws.send(subscribe("s", alice.did, charm, "value"))
        assert (await frame(ws))["value"] == 0


async def test_an_unauthenticated_upgrade_is_refused(server: ServerProcess) -> None:
    for headers in ({}, {"Cookie": f"{SESSION_COOKIE}=made-up"}):
        with pytest.raises(InvalidStatus) as refused:
            async with socket_to(server, headers):
                pass
        assert refused.value.response.status_code == 401
    stale = signed_upgrade(Identity.generate())
    async with socket_to(server, stale):
        pass
    with pytest.raises(InvalidStatus) as replayed:
        async with socket_to(server, stale):  # the same nonce again
            pass
    assert replayed.value.response.status_code == 401


def small_window_socket(server: ServerProcess) -> socket.socket:
    """A client socket with a tiny receive buffer, so the server's sends back up quickly."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    address = urlsplit(server.url)
    sock.connect((address.hostname, address.port))
    return sock


async def test_a_slow_client_is_dropped_while_a_fast_one_keeps_receiving(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path, env={"CHARMSPACE_WS_SEND_QUEUE": "4"})
    try:
        await _slow_and_fast(server, server.log_text)
    finally:
        assert server.stop() == 0, server.log_text()


async def _slow_and_fast(server: ServerProcess, log: Callable[[], str]) -> None:
    me = Identity.from_passphrase("alice")
    async with AsyncClient(server.url, me) as client:
        await client.spaces.create()
        charm = (await client.charms.create("notes", inputs={"title": "", "notes": []}))["id"]
        title = client.cell(me.did, charm, "title")
        async with (
            socket_to(server, signed_upgrade(me), max_size=None) as fast,
            socket_to(
                server,
                signed_upgrade(me),
                max_size=None,
                max_queue=1,
                sock=small_window_socket(server),
            ) as slow,
        ):
            for ws in (fast, slow):
                await ws.send(subscribe("t", me.did, charm, "title"))
            assert (await frame(fast))["value"] == ""
            for n in range(300):
                text = f"{n}:" + os.urandom(100_000).hex()
                await title.set(text)
                while (await frame(fast))["value"] != text:  # the fast client sees every one
                    pass
                if "send queue of 4 frames is full" in log():
                    break
            else:
                raise AssertionError(f"the slow client was never dropped:\n{log()}")
            # Still live for the fast client after the drop.
            await title.set("after")
            while (await frame(fast))["value"] != "after":
                pass
            # The slow client, reading at last, finds the close with its reason.
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(slow.recv(), TIMEOUT)
            assert slow.close_code == 1013
            assert "send queue full" in (slow.close_reason or "")


async def test_the_client_watches_a_cell(server: ServerProcess, alice: AsyncClient) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    increment = alice.stream(alice.did, charm, "increment")
    changes = alice.cell(alice.did, charm, "value").watch()
    try:
        first = await anext(changes)
        assert first.value == 0
        seen = [first]
        for n in (1, 2):
            await increment.call({})
            seen.append(await asyncio.wait_for(anext(changes), TIMEOUT))
            assert seen[-1].value == n
        assert [c.seq for c in seen] == sorted({c.seq for c in seen})
    finally:
        await changes.aclose()


async def test_watching_a_cell_one_may_not_read_raises(
    server: ServerProcess, alice: AsyncClient
) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    async with AsyncClient(server.url, Identity.from_passphrase("bob")) as bob:
        with pytest.raises(APIError) as refused:
            await anext(bob.cell(alice.did, charm, "value").watch())
    assert (refused.value.status, refused.value.type) == (403, "AuthorizationError")
