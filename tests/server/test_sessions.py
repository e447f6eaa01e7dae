"""Browser sessions: challenge login, logout, the one-time link, and R5 for cookies (CSRF).

A refused request is checked against the space's log head: nothing is written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from in_process import BASE, InProcess

from charmspace import write_behind
from charmspace.client import AsyncClient
from charmspace.identity import Identity
from charmspace.server.errors import ServerBusyError
from charmspace.server.sessions import (
    CHALLENGE_TTL,
    CSRF_COOKIE,
    LOGIN_TOKEN_TTL,
    SESSION_COOKIE,
    SESSION_TTL,
    Session,
    SessionStore,
)
from charmspace.signing import b64encode, session_message
from real_server import ServerProcess

ORIGIN = BASE  # the server's own origin, as a browser on its page sends it


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def log_in(http: httpx.AsyncClient, identity: Identity) -> httpx.Response:
    challenge = (await http.get("/api/session/challenge")).json()["challenge"]
    signature = b64encode(identity.sign(session_message(challenge, identity.did)))
    return await http.post(
        "/api/session",
        json={"did": identity.did, "challenge": challenge, "signature": signature},
        headers={"Origin": ORIGIN},
    )


@pytest.fixture
async def browser(served: InProcess, alice: AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A browser logged in as alice (whose home space exists)."""
    async with served.raw() as http:
        response = await log_in(http, Identity.from_passphrase("alice"))
        assert response.status_code == 200, response.text
        yield http


@pytest.fixture
async def counter(alice: AsyncClient) -> str:
    charm: str = (await alice.charms.create("counter"))["id"]
    await alice.stream(alice.did, charm, "increment").call({})
    return charm


def csrf(http: httpx.AsyncClient) -> dict[str, str]:
    """The headers alice's page sends with a state-changing request."""
    return {"X-CSRF-Token": http.cookies[CSRF_COOKIE], "Origin": ORIGIN}


async def test_a_signed_challenge_logs_in_with_strict_cookies(served: InProcess) -> None:
    identity = Identity.generate()
    async with served.raw() as http:
        response = await log_in(http, identity)
        assert response.status_code == 200, response.text
        assert response.json()["did"] == identity.did
        set_cookies = response.headers.get_list("set-cookie")
        session = next(c for c in set_cookies if c.startswith(f"{SESSION_COOKIE}="))
        token = next(c for c in set_cookies if c.startswith(f"{CSRF_COOKIE}="))
        for cookie in (session, token):
            assert "samesite=strict" in cookie.lower()
            assert "Path=/" in cookie
            assert f"Max-Age={int(SESSION_TTL)}" in cookie
            assert "secure" not in cookie.lower()  # served over http here
        assert "httponly" in session.lower()
        assert "httponly" not in token.lower()  # the page reads it to echo it
        assert identity.did not in session  # an opaque id, not the DID

        whoami = (await http.get("/api/session")).json()
        assert whoami["did"] == identity.did
        assert whoami["csrf"] == http.cookies[CSRF_COOKIE]


async def test_a_session_acts_as_its_did(browser: httpx.AsyncClient, alice: AsyncClient) -> None:
    head = await alice.spaces.head(alice.did)
    charms = await browser.post(
        f"/api/spaces/{alice.did}/charms", json={"pattern": "counter"}, headers=csrf(browser)
    )
    assert charms.status_code == 201, charms.text
    listed = await alice.charms.list(alice.did)
    assert charms.json()["id"] in [c["id"] for c in listed]
    assert await alice.spaces.head(alice.did) > head


async def test_logout_ends_the_session(browser: httpx.AsyncClient) -> None:
    session_id = browser.cookies[SESSION_COOKIE]
    response = await browser.delete("/api/session", headers=csrf(browser))
    assert response.status_code == 204, response.text
    assert SESSION_COOKIE not in browser.cookies
    # The old cookie, replayed, is no longer a session.
    browser.cookies.set(SESSION_COOKIE, session_id)
    refused = await browser.get("/api/session")
    assert refused.status_code == 401
    assert refused.json()["error"]["reason"] == "session"


async def test_a_challenge_is_single_use(served: InProcess) -> None:
    identity = Identity.generate()
    async with served.raw() as http:
        challenge = (await http.get("/api/session/challenge")).json()["challenge"]
        body = {
            "did": identity.did,
            "challenge": challenge,
            "signature": b64encode(identity.sign(session_message(challenge, identity.did))),
        }
        origin = {"Origin": ORIGIN}
        assert (await http.post("/api/session", json=body, headers=origin)).status_code == 200
        replayed = await http.post("/api/session", json=body, headers=origin)
    assert replayed.status_code == 401
    assert replayed.json()["error"]["reason"] == "challenge"


async def test_a_wrong_signature_spends_the_challenge(served: InProcess) -> None:
    identity, other = Identity.generate(), Identity.generate()
    async with served.raw() as http:
        challenge = (await http.get("/api/session/challenge")).json()["challenge"]
        wrong = b64encode(other.sign(session_message(challenge, identity.did)))
        body = {"did": identity.did, "challenge": challenge, "signature": wrong}
        response = await http.post("/api/session", json=body, headers={"Origin": ORIGIN})
        assert response.status_code == 401
        assert response.json()["error"]["reason"] == "bad_signature"
        assert SESSION_COOKIE not in http.cookies
        right = b64encode(identity.sign(session_message(challenge, identity.did)))
        retry = await http.post(
            "/api/session", json={**body, "signature": right}, headers={"Origin": ORIGIN}
        )
    assert retry.json()["error"]["reason"] == "challenge"


async def test_a_login_from_another_origin_is_refused(served: InProcess) -> None:
    identity = Identity.generate()
    async with served.raw() as http:
        challenge = (await http.get("/api/session/challenge")).json()["challenge"]
        signature = b64encode(identity.sign(session_message(challenge, identity.did)))
        response = await http.post(
            "/api/session",
            json={"did": identity.did, "challenge": challenge, "signature": signature},
            headers={"Origin": "http://evil.test"},
        )
    assert response.status_code == 403
    assert SESSION_COOKIE not in http.cookies


def test_an_expired_challenge_is_refused() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    identity = Identity.generate()
    challenge, expires = store.challenge()
    assert expires == clock.now + CHALLENGE_TTL
    clock.now = expires
    signature = b64encode(identity.sign(session_message(challenge, identity.did)))
    with pytest.raises(Exception, match="expired") as refused:
        store.login(identity.did, challenge, signature)
    assert getattr(refused.value, "reason", None) == "challenge"


def test_sessions_expire() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    session = store.open(Identity.generate().did)
    assert store.get(session.id) == session
    clock.now += SESSION_TTL
    assert store.get(session.id) is None


def test_challenges_are_bounded() -> None:
    """A flood of challenges from many addresses evicts the oldest; memory stays bounded."""
    store = SessionStore(clock=Clock())
    first, _ = store.challenge("10.0.0.1")
    for n in range(store.challenges.capacity + 10):
        store.challenge(f"10.1.{n // 256}.{n % 256}")
    assert len(store.challenges) == store.challenges.capacity
    assert store.challenges.take(first) is None
    assert sum(len(pending) for pending in store.by_address.values()) == len(store.challenges)


def test_one_address_flooding_challenges_is_refused_alone() -> None:
    clock = Clock()
    store = SessionStore(clock=clock, max_challenges_per_address=3)
    mine = [store.challenge("10.0.0.1")[0] for _ in range(3)]
    clock.now += 10
    with pytest.raises(ServerBusyError) as refused:
        store.challenge("10.0.0.1")
    assert refused.value.limit == "challenges_per_address"
    assert refused.value.retry_after == CHALLENGE_TTL - 10
    other, _ = store.challenge("10.0.0.2")  # another client is not affected
    identity = Identity.generate()
    signature = b64encode(identity.sign(session_message(other, identity.did)))
    assert store.login(identity.did, other, signature).did == identity.did
    store.challenges.take(mine[0])  # answering one makes room
    store.challenge("10.0.0.1")
    clock.now += CHALLENGE_TTL  # and so does waiting
    assert len([store.challenge("10.0.0.1") for _ in range(3)]) == 3


def test_logging_in_again_and_again_ends_only_the_own_oldest_sessions() -> None:
    store = SessionStore(clock=Clock(), max_sessions_per_did=3)
    alice, mallory = Identity.generate().did, Identity.generate().did
    kept = store.open(alice)
    floods = [store.open(mallory) for _ in range(50)]
    assert store.get(kept.id) == kept
    assert [store.get(s.id) is not None for s in floods[-4:]] == [False, True, True, True]
    assert len(store.sessions) == 4


def test_the_session_cap_counts_sessions_restored_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    did = Identity.generate().did
    before = SessionStore(path=path, max_sessions_per_did=2)
    first, second = before.open(did), before.open(did)
    before.flush()  # a clean stop
    after = SessionStore(path=path, max_sessions_per_did=2)
    assert after.get(first.id) is not None and after.get(second.id) is not None
    third = after.open(did)
    assert after.get(first.id) is None  # the oldest ended, in memory and in the file
    assert after.get(second.id) is not None and after.get(third.id) is not None
    after.flush()
    assert SessionStore(path=path).get(first.id) is None


# A flood of fresh identities from one client address ends only that address's sessions.


def fresh() -> str:
    """A new identity's DID: free to mint, as many as a flood likes."""
    return Identity.generate().did


@pytest.mark.parametrize("kept", [False, True], ids=["in-memory", "with-file"])
def test_a_flood_of_fresh_identities_from_one_address_ends_only_its_own_sessions(
    tmp_path: Path, kept: bool
) -> None:
    """Regression: a full table ended its oldest session, whoever's, so one address
    logging in again and again with fresh identities logged every other user out."""
    clock = Clock()
    path = tmp_path / "sessions.json" if kept else None
    store = SessionStore(clock=clock, max_sessions=10, path=path)
    alice, bob = store.open(fresh(), "10.0.0.1"), store.open(fresh(), "10.0.0.2")
    flood = []
    for _ in range(50):
        clock.now += 1
        flood.append(store.open(fresh(), "10.6.6.6"))
    assert store.get(alice.id) == alice and store.get(bob.id) == bob
    assert [store.get(s.id) is not None for s in flood] == [False] * 42 + [True] * 8
    assert len(store.sessions) == 10
    carol = store.open(fresh(), "10.0.0.3")  # a newcomer gets in, at the flood's expense
    assert [store.get(s.id) is not None for s in (alice, bob, carol)] == [True] * 3
    assert sum(store.get(s.id) is not None for s in flood) == 7
    if path is not None:  # and the file, which a restart reads, kept them too
        store.flush()
        restarted = SessionStore(clock=clock, path=path)
        assert [restarted.get(s.id) is not None for s in (alice, bob, carol)] == [True] * 3


def test_when_every_address_holds_one_session_the_oldest_ends() -> None:
    store = SessionStore(clock=Clock(), max_sessions=3)
    sessions = [store.open(fresh(), f"10.0.0.{n}") for n in range(5)]
    assert [store.get(s.id) is not None for s in sessions] == [False, False, True, True, True]


def test_an_address_at_its_session_cap_is_refused_and_spends_nothing() -> None:
    clock = Clock()
    store = SessionStore(clock=clock, max_sessions_per_address=3)
    first = store.open(fresh(), "10.6.6.6")
    clock.now += 100
    mine = [first, store.open(fresh(), "10.6.6.6"), store.open(fresh(), "10.6.6.6")]
    identity = Identity.generate()
    challenge, _ = store.challenge("10.6.6.6")
    signature = b64encode(identity.sign(session_message(challenge, identity.did)))
    with pytest.raises(ServerBusyError) as refused:
        store.login(identity.did, challenge, signature, "10.6.6.6")
    assert refused.value.limit == "sessions_per_address"
    assert refused.value.retry_after == SESSION_TTL - 100  # when its oldest expires
    assert "log out of one" in str(refused.value)
    token = store.login_token(identity.did)
    with pytest.raises(ServerBusyError):
        store.redeem(token, "10.6.6.6")
    assert [store.get(s.id) for s in mine] == mine  # nothing ended
    assert store.open(fresh(), "10.0.0.2").did  # another address is not affected
    store.close(first.id)  # logging out makes room; the challenge was not spent
    assert store.login(identity.did, challenge, signature, "10.6.6.6").did == identity.did
    with pytest.raises(ServerBusyError):
        store.redeem(token, "10.6.6.6")
    store.close(mine[1].id)  # the login link was not spent either
    assert store.redeem(token, "10.6.6.6").did == identity.did
    clock.now = mine[2].expires  # and waiting for the oldest to expire makes room too
    assert len([store.open(fresh(), "10.6.6.6") for _ in range(2)]) == 2


def test_sessions_restored_after_a_restart_outlast_a_flood(tmp_path: Path) -> None:
    """Restored sessions have no known address: each counts as its identity's own. Were
    they one holder, it would be the biggest, and a flood would end them first."""
    path = tmp_path / "sessions.json"
    clock = Clock()
    before = SessionStore(clock=clock, path=path)
    users = [before.open(fresh(), f"10.0.0.{n}") for n in range(3)]
    before.flush()
    after = SessionStore(clock=clock, path=path, max_sessions=4)
    flood = [after.open(fresh(), "10.6.6.6") for _ in range(20)]
    assert [after.get(u.id) is not None for u in users] == [True] * 3
    assert [after.get(s.id) is not None for s in flood] == [False] * 19 + [True]
    after.flush()
    again = SessionStore(clock=clock, path=path)
    assert [again.get(u.id) is not None for u in users] == [True] * 3
    clock.now = users[0].expires  # restored sessions still expire, and make room
    assert after.open(fresh(), "10.0.0.9").did
    assert after.holders.total == 1


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["open", "open", "open", "close", "restart"]),
            st.sampled_from(["10.0.0.1", "10.0.0.2", "10.6.6.6"]),
            st.sampled_from([0.0, 0.0, 1.0, SESSION_TTL / 2]),  # the clock moves on
        ),
        max_size=40,
    )
)
def test_the_live_sessions_stay_bounded_and_are_what_a_restart_restores(
    steps: list[tuple[str, str, float]],
) -> None:
    """Whatever happens, no cap is passed, every session get() knows is counted once
    (by address, or restored identity), and the file restores exactly those."""
    clock = Clock()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "sessions.json"

        def store() -> SessionStore:
            return SessionStore(
                clock=clock,
                path=path,
                max_sessions=5,
                max_sessions_per_did=2,
                max_sessions_per_address=3,
            )

        current = store()
        dids = [fresh() for _ in range(3)]
        opened: list[Session] = []
        # session id -> the address it logged in from, since the last restart: restored
        # sessions count as their identity's, not their address's (see SessionStore)
        where: dict[str, str] = {}
        for n, (step, address, tick) in enumerate(steps):
            clock.now += tick
            live = [s for s in opened if current.get(s.id) is not None]
            if step == "open":
                try:
                    opened.append(current.open(dids[n % 3], address))
                    where[opened[-1].id] = address
                except ServerBusyError:
                    assert [where.get(s.id) for s in live].count(address) == 3
            elif step == "close" and opened:
                current.close(opened[n % len(opened)].id)
            elif step == "restart":  # a clean one: the last state is written first
                current.flush()
                current = store()
                where.clear()
            live = [s for s in opened if current.get(s.id) is not None]
            assert len(live) <= 5
            addresses = [where[s.id] for s in live if s.id in where]
            assert all(addresses.count(a) <= 3 for a in addresses)
            assert all([s.did for s in live].count(did) <= 2 for did in dids)
            if step != "close":  # expired sessions left the indexes (a close may not look)
                assert current.holders.total == len(live)
        current.flush()
        restarted = store()
        assert [restarted.get(s.id) is not None for s in opened] == [
            current.get(s.id) is not None for s in opened
        ]


async def test_the_login_link_works_once(served: InProcess) -> None:
    identity = Identity.generate()
    token = served.app.state.sessions.login_token(identity.did)
    async with served.raw() as http:
        response = await http.get(f"/login?token={token}")
        assert response.status_code == 303
        assert response.headers["location"] == "/"
        assert (await http.get("/api/session")).json()["did"] == identity.did
    async with served.raw() as http:
        replayed = await http.get(f"/login?token={token}")
        assert replayed.status_code == 401
        assert replayed.json()["error"]["reason"] == "login_token"
        assert SESSION_COOKIE not in http.cookies


def test_a_login_link_expires() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    token = store.login_token(Identity.generate().did)
    clock.now += LOGIN_TOKEN_TTL
    with pytest.raises(Exception, match="expired"):
        store.redeem(token)


# R5 for cookies: a cross-site request carrying the session cookie writes nothing.


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda http: {"Origin": "http://evil.test"}, id="no-token-foreign-origin"),
        pytest.param(lambda http: {}, id="no-token"),
        pytest.param(lambda http: {"X-CSRF-Token": "guessed", "Origin": ORIGIN}, id="wrong-token"),
        pytest.param(
            lambda http: {**csrf(http), "Origin": "http://127.0.0.1:9999"},
            id="token-but-foreign-origin",
        ),
        pytest.param(lambda http: {**csrf(http), "Origin": "null"}, id="token-but-opaque-origin"),
        # A page on another port of this host can read the CSRF cookie (cookies
        # ignore ports); only the Origin header tells it apart.
        pytest.param(
            lambda http: {"X-CSRF-Token": http.cookies[CSRF_COOKIE]}, id="token-but-no-origin"
        ),
    ],
)
async def test_a_cross_site_request_with_the_session_cookie_writes_nothing(
    browser: httpx.AsyncClient, alice: AsyncClient, counter: str, headers: object
) -> None:
    assert callable(headers)
    head = await alice.spaces.head(alice.did)
    url = f"/api/spaces/{alice.did}/charms/{counter}/streams/increment"
    response = await browser.post(url, json={"event": {}}, headers=headers(browser))
    assert response.status_code == 403, response.text
    assert response.json()["error"]["type"] == "CrossSiteRequestError"
    assert await alice.spaces.head(alice.did) == head  # nothing written
    value = await alice.cell(alice.did, counter, "value").get()
    assert value == 1


async def test_a_cookie_whose_csrf_cookie_differs_from_the_header_is_refused(
    browser: httpx.AsyncClient, alice: AsyncClient, counter: str
) -> None:
    """Double submit: a header that matches the session but not the cookie is refused too."""
    head = await alice.spaces.head(alice.did)
    token = browser.cookies[CSRF_COOKIE]
    browser.cookies.set(CSRF_COOKIE, "planted")
    url = f"/api/spaces/{alice.did}/charms/{counter}/streams/increment"
    response = await browser.post(
        url, json={"event": {}}, headers={"X-CSRF-Token": token, "Origin": ORIGIN}
    )
    assert response.status_code == 403
    assert await alice.spaces.head(alice.did) == head


async def test_a_same_origin_session_request_with_its_token_writes(
    browser: httpx.AsyncClient, alice: AsyncClient, counter: str
) -> None:
    url = f"/api/spaces/{alice.did}/charms/{counter}/streams/increment?wait=commit"
    response = await browser.post(url, json={"event": {}}, headers=csrf(browser))
    assert response.status_code == 200, response.text
    assert await alice.cell(alice.did, counter, "value").get() == 2


async def test_a_signed_request_needs_no_csrf_token(served: InProcess, counter: str) -> None:
    """Signed requests carry no cookie a browser could attach, so no CSRF check applies."""
    alice = served.client(Identity.from_passphrase("alice"))
    async with alice:
        await alice.stream(alice.did, counter, "increment").call({})
        assert await alice.cell(alice.did, counter, "value").get() == 2


async def test_every_state_changing_method_needs_the_token(
    browser: httpx.AsyncClient, alice: AsyncClient, counter: str
) -> None:
    head = await alice.spaces.head(alice.did)
    charm = f"/api/spaces/{alice.did}/charms/{counter}"
    foreign = {"Origin": "http://evil.test"}
    refused = [
        await browser.put(f"{charm}/cells/value", json={"value": 99}, headers=foreign),
        await browser.delete(charm, headers=foreign),
        await browser.post("/api/spaces", json={"space": alice.did}, headers=foreign),
        await browser.delete("/api/session", headers=foreign),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    assert await alice.spaces.head(alice.did) == head
    assert (await browser.get("/api/session")).status_code == 200  # still logged in


def test_sessions_survive_a_restart_and_the_file_holds_no_session_id(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    identity = Identity.generate()
    before = SessionStore(path=path)
    session = before.open(identity.did)
    ended = before.open(identity.did)
    before.close(ended.id)
    before.flush()
    assert session.id not in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o600
    after = SessionStore(path=path)
    restored = after.get(session.id)
    assert restored is not None and (restored.did, restored.csrf) == (identity.did, session.csrf)
    assert after.get(ended.id) is None
    assert after.get("not-a-session") is None


# The sessions file is written behind the logins: off the event loop, coalesced.


async def test_a_flood_of_logins_is_a_few_writes_of_the_file_and_a_restart_restores_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: every login rewrote the whole file, on the event loop (60 ms with
    20,000 sessions), so a flood of logins stalled every other request."""
    writes: list[int] = []  # how many sessions each write held
    real = write_behind.write_private_text

    def counted(path: Path, text: str) -> None:
        writes.append(len(json.loads(text)))
        real(path, text)

    monkeypatch.setattr(write_behind, "write_private_text", counted)
    path = tmp_path / "sessions.json"
    store = SessionStore(path=path, write_interval=3600)  # one write, then one on the stop
    store.start_writing()
    logins = []
    for n in range(300):
        logins.append(store.open(fresh(), f"10.0.{n // 256}.{n % 256}"))
        await asyncio.sleep(0)  # the writer may run between logins
    await store.stop_writing()
    assert len(writes) <= 2 and writes[-1] == 300
    restarted = SessionStore(path=path)
    assert all(restarted.get(s.id) == s for s in logins)


def test_a_crash_forgets_only_the_logins_since_the_last_write(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    before = SessionStore(path=path)
    written = before.open(fresh())
    before.flush()
    unwritten = before.open(fresh())  # the process dies before the next write
    after = SessionStore(path=path)
    assert after.get(written.id) == written
    assert after.get(unwritten.id) is None  # that browser logs in again


def test_an_unwritable_sessions_file_is_logged_once_and_logins_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.write_text("not a directory")  # as root, permissions would not stop a write
    store = SessionStore(path=data / "sessions.json")
    with caplog.at_level(logging.WARNING):
        sessions = []
        for _ in range(3):
            sessions.append(store.open(fresh()))
            store.flush()
    assert all(store.get(s.id) == s for s in sessions)  # served from memory
    warnings = [r.getMessage() for r in caplog.records if "could not write" in r.getMessage()]
    assert len(warnings) == 1
    assert "make the data directory writable" in warnings[0]
    assert not any(s.id in warnings[0] for s in sessions)


def real_login(http: httpx.Client, url: str, identity: Identity) -> None:
    """What a browser's page does to log in, against a real server."""
    challenge = http.get(f"{url}/api/session/challenge").json()["challenge"]
    signature = b64encode(identity.sign(session_message(challenge, identity.did)))
    response = http.post(
        f"{url}/api/session",
        json={"did": identity.did, "challenge": challenge, "signature": signature},
        headers={"Origin": url},
    )
    assert response.status_code == 200, response.text


def test_browsers_that_logged_in_just_before_a_clean_stop_stay_logged_in_after_it(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """The stop writes what the writer had not written yet: nobody is logged out."""
    first = server_factory()
    with ExitStack() as closing:
        browsers = [(closing.enter_context(httpx.Client()), Identity.generate()) for _ in range(20)]
        for http, identity in browsers:
            real_login(http, first.url, identity)
        assert first.stop() == 0, first.log_text()  # at once: within the writer's interval
        ids = [http.cookies[SESSION_COOKIE] for http, _ in browsers]
        kept = (first.data / "sessions.json").read_text()
        assert not any(id in kept for id in ids)  # a digest of each, never the id
        second = server_factory(data=first.data)
        for http, identity in browsers:
            assert http.get(f"{second.url}/api/session").json()["did"] == identity.did


def test_a_server_that_cannot_write_its_sessions_file_says_so_once_and_serves_on(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "sessions.tmp").mkdir(parents=True, mode=0o700)  # where each write begins
    server = server_factory(data=data)
    with ExitStack() as closing:
        browsers = [(closing.enter_context(httpx.Client()), Identity.generate()) for _ in range(5)]
        for http, identity in browsers:
            real_login(http, server.url, identity)
        for http, identity in browsers:
            assert http.get(f"{server.url}/api/session").json()["did"] == identity.did
    assert server.stop() == 0, server.log_text()  # and the stop's last try fails too
    assert server.log_text().count("could not write the sessions file") == 1
