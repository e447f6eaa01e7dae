"""What one principal may hold on a real server, and that reaching it locks out nobody else.

Each test runs ``charmspace serve`` as a process with small limits and floods it
from one identity (or address) while another keeps working. Every test client
connects from 127.0.0.1; another address is one a proxy names: the server
believes ``X-Forwarded-For`` from 127.0.0.1, as it does from a proxy in front.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from test_live import log_in, signed_upgrade, socket_to
from websockets.exceptions import InvalidStatus

from charmspace.identity import Identity
from charmspace.server.sessions import CSRF_COOKIE, SESSION_COOKIE, SESSION_TTL
from charmspace.signing import b64encode, session_message, sign_request
from real_server import ServerProcess

LIMITS = {
    "CHARMSPACE_MAX_NONCES_PER_DID": "25",
    "CHARMSPACE_MAX_NONCES": "80",
    "CHARMSPACE_MAX_WEBSOCKETS_PER_DID": "2",
    "CHARMSPACE_MAX_SESSIONS_PER_DID": "2",
    "CHARMSPACE_MAX_CHALLENGES_PER_ADDRESS": "3",
}


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(env=LIMITS)


def signed(identity: Identity, at: int | None = None) -> dict[str, str]:
    """Headers of a signed ``GET /api/session``, signed now or at Unix time ``at``."""
    ts = int(time.time()) if at is None else at
    header = sign_request(identity, "GET", "/api/session", b"", ts)
    return {"Authorization": header.render()}


def seconds_left(lifetime: float, since: float) -> tuple[int, int]:
    """The bounds of a ``Retry-After`` for something that began at ``since``.

    Read the clock just before the refused request: the server's answer lies
    between what is left now and a second or two later, however slow the run.
    """
    left = since + lifetime - time.time()
    return int(left) - 2, int(left) + 2


def whoami(http: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    return http.get("/api/session", headers=headers)


def test_a_flooding_identity_is_refused_alone_and_no_replay_gets_in(
    server: ServerProcess,
) -> None:
    alice, mallory = Identity.generate(), Identity.generate()
    with httpx.Client(base_url=server.url) as http:
        alice_first = signed(alice)
        assert whoami(http, alice_first).json()["did"] == alice.did
        oldest = int(time.time()) - 10
        mallory_first = signed(mallory, at=oldest)  # its oldest: the first it forgets
        assert whoami(http, mallory_first).status_code == 200
        statuses = []
        for n in range(30):
            statuses.append(whoami(http, signed(mallory)).status_code)
            if n % 3 == 0:
                assert whoami(http, signed(alice)).status_code == 200  # alice never notices
        assert statuses == [200] * 24 + [429] * 6
        low, high = seconds_left(300, since=oldest)  # when its oldest expires
        refused = whoami(http, signed(mallory))
        error = refused.json()["error"]
        assert (error["type"], error["limit"]) == ("ServerBusyError", "nonces_per_did")
        assert low <= int(refused.headers["retry-after"]) <= high
        assert "slow down" in error["message"]
        assert error["principal"] == mallory.did

        # Fresh identities (free to mint) fill the server's total: the biggest holder,
        # mallory, forgets its oldest nonces; alice and the newcomers are served.
        newcomers = [whoami(http, signed(Identity.generate())).status_code for _ in range(50)]
        assert newcomers == [200] * 50
        assert whoami(http, signed(alice)).status_code == 200

        # No replay gets in: alice's is remembered, mallory's forgotten one is below its floor.
        replayed = whoami(http, alice_first)
        assert (replayed.status_code, replayed.json()["error"]["reason"]) == (401, "replayed")
        replayed = whoami(http, mallory_first)
        assert replayed.status_code == 429
        assert replayed.json()["error"]["limit"] == "nonce_floor"
        assert "sign the request again" in replayed.json()["error"]["message"]
    # The request log names who was refused, and why: the operator sees who floods.
    assert "429 " in server.log_text()
    assert f"{mallory.did} refused: nonces_per_did" in server.log_text()
    assert f"{alice.did} refused" not in server.log_text()


async def test_open_websockets_are_bounded_per_identity(server: ServerProcess) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    async with socket_to(server, signed_upgrade(alice)), socket_to(server, signed_upgrade(alice)):
        with pytest.raises(InvalidStatus) as refused:
            async with socket_to(server, signed_upgrade(alice)):
                pass
        assert refused.value.response.status_code == 429
        assert b"websockets_per_did" in refused.value.response.body
        async with socket_to(server, signed_upgrade(bob)):
            pass  # another identity is not affected
    async with socket_to(server, signed_upgrade(alice)):
        pass  # closing them made room


async def test_logging_in_again_ends_only_the_own_oldest_session(server: ServerProcess) -> None:
    alice, mallory = Identity.generate(), Identity.generate()
    alice_cookie = await log_in(server, alice)
    first, *_ = [await log_in(server, mallory) for _ in range(5)]
    async with httpx.AsyncClient(base_url=server.url) as http:
        http.cookies.set(SESSION_COOKIE, alice_cookie)
        assert (await http.get("/api/session")).json()["did"] == alice.did
        http.cookies.set(SESSION_COOKIE, first)
        ended = await http.get("/api/session")
        assert (ended.status_code, ended.json()["error"]["reason"]) == (401, "session")


def test_unanswered_challenges_are_bounded_per_address(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as http:
        first_asked = time.time()
        challenges = [http.get("/api/session/challenge") for _ in range(3)]
        low, high = seconds_left(120, since=first_asked)  # when the oldest lapses
        challenges.append(http.get("/api/session/challenge"))
        assert [c.status_code for c in challenges] == [200, 200, 200, 429]
        error = challenges[-1].json()["error"]
        assert error["limit"] == "challenges_per_address"
        assert low <= int(challenges[-1].headers["retry-after"]) <= high
        identity = Identity.generate()  # answering one makes room for the next login
        challenge = challenges[0].json()["challenge"]
        signature = b64encode(identity.sign(session_message(challenge, identity.did)))
        login = http.post(
            "/api/session",
            json={"did": identity.did, "challenge": challenge, "signature": signature},
            headers={"Origin": server.url},
        )
        assert login.status_code == 200, login.text
        assert http.get("/api/session/challenge").status_code == 200


FLOOD = {
    **LIMITS,
    "CHARMSPACE_MAX_SESSIONS_PER_ADDRESS": "4",
    "CHARMSPACE_MAX_WEBSOCKETS_PER_ADDRESS": "3",
    "CHARMSPACE_MAX_WEBSOCKETS": "5",
}


def from_address(address: str | None) -> dict[str, str]:
    """The headers that make a request come from ``address`` (None: 127.0.0.1 itself)."""
    return {"X-Forwarded-For": address} if address else {}


def log_in_from(server: ServerProcess, identity: Identity, address: str | None) -> httpx.Response:
    """A browser at ``address`` logs in as ``identity`` (the response sets its cookies)."""
    with httpx.Client(base_url=server.url, headers=from_address(address)) as http:
        challenge = http.get("/api/session/challenge").json()["challenge"]
        signature = b64encode(identity.sign(session_message(challenge, identity.did)))
        return http.post(
            "/api/session",
            json={"did": identity.did, "challenge": challenge, "signature": signature},
            headers={"Origin": server.url},
        )


def test_a_flood_of_fresh_identities_from_one_address_logs_out_no_one_else(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(env=FLOOD)
    alice = Identity.generate()
    at_home = log_in_from(server, alice, "10.0.0.1")
    assert at_home.status_code == 200, at_home.text
    first_flooded = time.time()
    flood = [log_in_from(server, Identity.generate(), None) for _ in range(4)]
    assert [r.status_code for r in flood] == [200] * 4
    low, high = seconds_left(SESSION_TTL, since=first_flooded)  # when its oldest expires
    refused = log_in_from(server, Identity.generate(), None)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["limit"]) == ("ServerBusyError", "sessions_per_address")
    assert "log out of one" in error["message"]
    assert low <= int(refused.headers["retry-after"]) <= high
    with httpx.Client(base_url=server.url) as http:
        http.cookies.set(SESSION_COOKIE, at_home.cookies[SESSION_COOKIE])
        assert http.get("/api/session").json()["did"] == alice.did  # still logged in
    assert log_in_from(server, Identity.generate(), "10.0.0.2").status_code == 200

    # The login link, opened from the flooding address, shows the refusal and stays
    # unspent: once one of that address's sessions logs out, it logs the browser in.
    link = server.login_link().removeprefix(server.url)
    with httpx.Client(base_url=server.url, headers={"Accept": "text/html"}) as browser:
        busy = browser.get(link)
        assert busy.status_code == 429 and "log out of one" in busy.text
        assert int(busy.headers["retry-after"]) > 0
        with httpx.Client(base_url=server.url, cookies=flood[0].cookies) as flooder:
            csrf = flood[0].cookies[CSRF_COOKIE]
            logout = flooder.delete(
                "/api/session", headers={"X-CSRF-Token": csrf, "Origin": server.url}
            )
            assert logout.status_code == 204, logout.text
        assert browser.get(link).status_code == 303
    assert "refusing a session from 127.0.0.1: the address holds 4" in server.log_text()


async def test_open_websockets_are_bounded_per_address_and_in_all(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(env=FLOOD)
    alice = Identity.generate()
    async with AsyncExitStack() as sockets:
        home = await sockets.enter_async_context(
            socket_to(server, {**signed_upgrade(alice), **from_address("10.0.0.1")})
        )
        flood = [
            await sockets.enter_async_context(
                socket_to(server, signed_upgrade(Identity.generate()))
            )
            for _ in range(3)
        ]
        mallory = Identity.generate()  # fresh, but its address has 3 open already
        with pytest.raises(InvalidStatus) as refused:
            async with socket_to(server, signed_upgrade(mallory)):
                pass
        response = refused.value.response
        assert (response.status_code, response.headers["retry-after"]) == (429, "5")
        assert b'"limit": "websockets_per_address"' in response.body
        assert b"close a page" in response.body
        await asyncio.wait_for(await home.ping(), 10)  # alice's connection lives on

        # Five open in all: whatever the address, one more is refused until one closes.
        await sockets.enter_async_context(
            socket_to(server, {**signed_upgrade(Identity.generate()), **from_address("10.0.0.2")})
        )
        carol = Identity.generate()
        with pytest.raises(InvalidStatus) as refused:
            async with socket_to(server, {**signed_upgrade(carol), **from_address("10.0.0.3")}):
                pass
        assert refused.value.response.status_code == 429
        assert b'"limit": "websockets"' in refused.value.response.body
        await flood[0].close()
        await until_open(server, carol, "10.0.0.3")
    log = server.log_text()
    assert f"from 127.0.0.1 {mallory.did} refused: websockets_per_address" in log
    assert f"from 10.0.0.3 {carol.did} refused: websockets" in log
    assert f"{alice.did} refused" not in log


async def until_open(server: ServerProcess, identity: Identity, address: str) -> None:
    """Open (and close) a socket for ``identity`` at ``address``, once the server has room:
    a closed socket leaves the count when the server has seen the close."""
    for _ in range(100):
        try:
            async with socket_to(server, {**signed_upgrade(identity), **from_address(address)}):
                return
        except InvalidStatus as refused:
            assert refused.value.response.status_code == 429
            await asyncio.sleep(0.05)
    raise AssertionError(f"no room made for {identity.did}:\n{server.log_text()}")
