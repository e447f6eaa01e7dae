"""``Client`` and ``AsyncClient`` against a real server: the same calls, the same answers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from charmspace.client import APIError, AsyncClient, Client, ServerUnreachableError
from charmspace.client.ops import APIURLError
from charmspace.errors import CharmspaceError, NotJSONError
from charmspace.identity import Identity
from real_server import ServerProcess, free_port


def _story_sync(url: str, me: Identity) -> dict[str, Any]:
    with Client(url, me) as client:
        client.spaces.create()
        charm = client.charms.create("counter", inputs={"value": 2})["id"]
        before = client.spaces.head(me.did)
        client.stream(me.did, charm, "increment").call({})
        seen: dict[str, Any] = {
            "head": before,
            "advanced": client.spaces.head(me.did) > before,
            "value": client.cell(me.did, charm, "value").get(),
            "favorite": client.favorites.add(me.did, charm)["id"] == charm,
            "unfavorited": client.favorites.remove(me.did, charm),
            "favorites": client.favorites.list(),
            "removed": client.charms.remove(me.did, charm),
        }
        with pytest.raises(APIError) as gone:
            client.charms.get(me.did, charm)
        seen["gone"] = gone.value.status
        return seen


async def _story_async(url: str, me: Identity) -> dict[str, Any]:
    async with AsyncClient(url, me) as client:
        await client.spaces.create()
        charm = (await client.charms.create("counter", inputs={"value": 2}))["id"]
        before = await client.spaces.head(me.did)
        await client.stream(me.did, charm, "increment").call({})
        seen: dict[str, Any] = {
            "head": before,
            "advanced": await client.spaces.head(me.did) > before,
            "value": await client.cell(me.did, charm, "value").get(),
            "favorite": (await client.favorites.add(me.did, charm))["id"] == charm,
            "unfavorited": await client.favorites.remove(me.did, charm),
            "favorites": await client.favorites.list(),
            "removed": await client.charms.remove(me.did, charm),
        }
        with pytest.raises(APIError) as gone:
            await client.charms.get(me.did, charm)
        seen["gone"] = gone.value.status
        return seen


def test_both_clients_read_answers_alike(server: ServerProcess) -> None:
    sync = _story_sync(server.url, Identity.from_passphrase("sync"))
    async_ = asyncio.run(_story_async(server.url, Identity.from_passphrase("async")))
    assert sync == async_
    assert isinstance(sync["head"], int)
    assert sync["advanced"] is True
    assert sync["value"] == 3  # the cell's value, not the answer around it
    assert sync["favorite"] is True
    assert sync["unfavorited"] is None and sync["removed"] is None
    assert sync["favorites"] == []
    assert sync["gone"] == 404


@pytest.mark.parametrize("url", ["http://127.0.0.1:abc", "ftp://127.0.0.1:8000", "", "http://"])
def test_a_url_no_request_can_use_is_refused_when_the_client_is_made(url: str) -> None:
    """Regression: ``Client("http://127.0.0.1:abc")`` raised httpx's ``InvalidURL`` and
    ``Client("ftp://…")`` waited for its first request to fail."""
    me = Identity.from_passphrase("url checks")
    with pytest.raises(APIURLError, match="Give the server's address as host:port") as refused:
        Client(url, me)
    assert refused.value.url == url
    assert isinstance(refused.value, ValueError)
    with pytest.raises(APIURLError):
        AsyncClient(url, me)


@pytest.mark.parametrize(
    ("value", "where"),
    [({1, 2}, "event/tags"), (float("nan"), "event/tags"), (object(), "event/tags")],
)
def test_a_value_that_is_not_json_is_refused_before_it_is_sent(value: Any, where: str) -> None:
    """Regression: ``stream.call({"tags": {1, 2}})`` raised json's bare TypeError
    ("Object of type set is not JSON serializable") from inside httpx."""
    me = Identity.from_passphrase("json checks")
    with Client("127.0.0.1:9", me) as client:  # nothing listens: nothing may be sent
        with pytest.raises(NotJSONError, match=f"Invalid value at {where}:"):
            client.stream(me.did, "of:x", "adjust").call({"tags": value})
        with pytest.raises(NotJSONError):
            client.cell(me.did, "of:x", "value").set({"tags": value})


def test_an_unreachable_url_is_named_without_its_password() -> None:
    port = free_port()
    url = f"http://bob:s3cret@127.0.0.1:{port}"
    with (
        Client(url, Identity.generate()) as client,
        pytest.raises(ServerUnreachableError) as refused,
    ):
        client.meta()
    assert refused.value.url == f"http://127.0.0.1:{port}"
    assert "s3cret" not in str(refused.value)


def test_no_server_answering_is_our_error_naming_the_url_and_what_to_do() -> None:
    """Regression: with no server running, Client and AsyncClient raised httpx's
    ConnectError, outside charmspace's errors, saying nothing about what to do."""
    me = Identity.from_passphrase("no server")
    url = f"http://127.0.0.1:{free_port()}"

    async def from_async() -> list[BaseException]:
        raised: list[BaseException] = []
        async with AsyncClient(url, me) as client:
            with pytest.raises(ServerUnreachableError) as refused:
                await client.meta()
            raised.append(refused.value)
            with pytest.raises(ServerUnreachableError) as refused:
                async for _ in client.cell(me.did, "of:x", "value").watch():
                    pass
            raised.append(refused.value)
        return raised

    with Client(url, me) as client, pytest.raises(ServerUnreachableError) as refused:
        client.charms.list(me.did)
    for error in [refused.value, *asyncio.run(from_async())]:
        assert isinstance(error, CharmspaceError)
        assert isinstance(error, httpx.ConnectError)  # code written for httpx still works
        assert error.url == url
        assert str(error).startswith(f"No charmspace server answers at {url} (")
        assert "Start it with `charmspace serve`" in str(error)
        assert "--api-url" in str(error)
        assert error.__cause__ is not None  # httpx's (or the socket's) own error
