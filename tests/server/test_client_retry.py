"""The clients against a busy real server: a 429 is waited out and sent again, signed anew.

The server runs with a replay window of 3 s and 4 signed requests per identity
in it, so a client that sends more than 4 requests within 3 s is refused (429,
``nonces_per_did``) with a ``Retry-After`` of a few seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from charmspace.client import APIError, AsyncClient, Client, Retry
from charmspace.identity import Identity
from real_server import ServerProcess

BUSY = {
    "CHARMSPACE_CLOCK_SKEW": "3",
    "CHARMSPACE_MAX_NONCES_PER_DID": "4",
    "CHARMSPACE_MAX_WEBSOCKETS_PER_DID": "1",
}


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(env=BUSY)


def refusals(server: ServerProcess, me: Identity, limit: str) -> int:
    return server.log_text().count(f"{me.did} refused: {limit}")


def test_sends_refused_as_busy_are_sent_again_and_each_counts_once(
    server: ServerProcess,
) -> None:
    me = Identity.generate()
    with Client(server.url, me) as client:
        client.spaces.create()
        charm = client.charms.create("counter")["id"]
        for _ in range(8):
            assert client.stream(me.did, charm, "increment").call({})["ok"]
        assert client.cell(me.did, charm, "value").get() == 8
    assert refusals(server, me, "nonces_per_did") >= 1  # it was refused, and got through


def test_without_retries_the_busy_error_says_what_the_server_said_and_what_to_do(
    server: ServerProcess,
) -> None:
    me = Identity.generate()
    with (
        Client(server.url, me, retry=Retry(retries=0)) as client,
        pytest.raises(APIError) as refused,
    ):
        for _ in range(6):
            client.favorites.list()
    error = refused.value
    assert (error.status, error.type, error.fields["limit"]) == (
        429,
        "ServerBusyError",
        "nonces_per_did",
    )
    assert "slow down and retry later" in str(error)  # the server's message
    assert "Sent once; send it again in " in str(error)  # not retried, and what to do


def test_a_wait_longer_than_the_client_allows_is_not_begun(server: ServerProcess) -> None:
    me = Identity.generate()
    client = Client(server.url, me, retry=Retry(retries=5, max_wait=0.5))
    with client, pytest.raises(APIError) as refused:
        for _ in range(6):
            client.favorites.list()
    assert refused.value.status == 429 and "Sent once" in str(refused.value)


def test_retry_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValidationError, match="retries"):
        Retry(retries=-1)
    with pytest.raises(ValidationError, match="max_wait"):
        Retry(max_wait=-2)


async def test_the_async_client_and_a_watch_wait_for_room_too(server: ServerProcess) -> None:
    me = Identity.generate()
    async with AsyncClient(server.url, me) as client:
        await client.spaces.create()
        charm = (await client.charms.create("counter"))["id"]
        for _ in range(5):
            assert (await client.stream(me.did, charm, "increment").call({}))["ok"]
        cell = client.cell(me.did, charm, "value")
        first = cell.watch()
        assert (await anext(first)).value == 5
        # One live connection per identity: the second watch is refused (429,
        # Retry-After 5 s) until the first one closes, then gets in.
        second = cell.watch()
        waiting = asyncio.ensure_future(anext(second))
        await until_logged(server, "refused: websockets_per_did")
        assert not waiting.done()
        await first.aclose()
        assert (await asyncio.wait_for(waiting, 20)).value == 5
        await second.aclose()


async def until_logged(server: ServerProcess, line: str) -> None:
    for _ in range(200):
        if line in server.log_text():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{line!r} never logged:\n{server.log_text()}")
