"""R5: every request that is not properly signed, or not allowed, is refused and writes nothing.

Each refusal is checked against the space's log head: a 401 or 403 never commits.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from in_process import InProcess

from charmspace.client import AsyncClient, SignedAuth
from charmspace.identity import Identity
from charmspace.server.auth import NonceCache, Verifier
from charmspace.server.errors import AuthenticationError, ServerBusyError
from charmspace.signing import SignedHeader, parse_header, sign_request


@pytest.fixture
async def counter(alice: AsyncClient) -> str:
    charm: str = (await alice.charms.create("counter"))["id"]
    await alice.stream(alice.did, charm, "increment").call({})
    return charm


@pytest.fixture
async def raw(served: InProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with served.raw() as http:
        yield http


def signed(
    identity: Identity,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    ts: float | None = None,
    nonce: str | None = None,
    did: str | None = None,
) -> dict[str, str]:
    header = sign_request(identity, method, target, body, int(ts or time.time()), nonce)
    if did is not None:
        header = SignedHeader(did, header.ts, header.nonce, header.sig)
    return {"Authorization": header.render(), "Content-Type": "application/json"}


async def assert_refused(
    alice: AsyncClient, response: httpx.Response, status: int, head: int, reason: str = ""
) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if reason:
        assert error["reason"] == reason
    assert await alice.spaces.head(alice.did) == head  # nothing written


def increment_target(alice: AsyncClient, charm: str) -> str:
    return f"/api/spaces/{alice.did}/charms/{charm}/streams/increment?wait=commit"


EVENT = json.dumps({"event": {}}).encode()


async def test_unsigned(alice: AsyncClient, counter: str, raw: httpx.AsyncClient) -> None:
    head = await alice.spaces.head(alice.did)
    response = await raw.post(increment_target(alice, counter), content=EVENT)
    await assert_refused(alice, response, 401, head, "missing")
    assert response.headers["www-authenticate"] == "Charmspace"


async def test_malformed_header(alice: AsyncClient, counter: str, raw: httpx.AsyncClient) -> None:
    head = await alice.spaces.head(alice.did)
    for header in ("Bearer x", "Charmspace", 'Charmspace did="x"', "Charmspace " + "a" * 5000):
        response = await raw.post(
            increment_target(alice, counter), content=EVENT, headers={"Authorization": header}
        )
        await assert_refused(alice, response, 401, head, "malformed")


async def test_wrong_key(alice: AsyncClient, counter: str, raw: httpx.AsyncClient) -> None:
    """Mallory signs with her key but claims to be alice."""
    head = await alice.spaces.head(alice.did)
    target = increment_target(alice, counter)
    headers = signed(Identity.generate(), "POST", target, EVENT, did=alice.did)
    response = await raw.post(target, content=EVENT, headers=headers)
    await assert_refused(alice, response, 401, head, "bad_signature")


async def test_expired_and_future(alice: AsyncClient, counter: str, raw: httpx.AsyncClient) -> None:
    head = await alice.spaces.head(alice.did)
    target = increment_target(alice, counter)
    for skew in (-301, 301):
        headers = signed(alice.identity, "POST", target, EVENT, ts=time.time() + skew)
        response = await raw.post(target, content=EVENT, headers=headers)
        await assert_refused(alice, response, 401, head, "clock_skew")
        assert abs(response.json()["error"]["server_time"] - time.time()) < 5


async def test_replayed(alice: AsyncClient, counter: str, raw: httpx.AsyncClient) -> None:
    target = increment_target(alice, counter)
    headers = signed(alice.identity, "POST", target, EVENT)
    first = await raw.post(target, content=EVENT, headers=headers)
    assert first.status_code == 200 and first.json()["ok"]
    head = await alice.spaces.head(alice.did)
    again = await raw.post(target, content=EVENT, headers=headers)
    await assert_refused(alice, again, 401, head, "replayed")


async def test_tampered_body(alice: AsyncClient, counter: str, raw: httpx.AsyncClient) -> None:
    head = await alice.spaces.head(alice.did)
    target = f"/api/spaces/{alice.did}/charms/{counter}/streams/adjust?wait=commit"
    headers = signed(alice.identity, "POST", target, b'{"event": {"amount": 1}}')
    response = await raw.post(target, content=b'{"event": {"amount": 1000}}', headers=headers)
    await assert_refused(alice, response, 401, head, "bad_signature")


async def test_tampered_query(alice: AsyncClient, counter: str, raw: httpx.AsyncClient) -> None:
    head = await alice.spaces.head(alice.did)
    target = increment_target(alice, counter)
    headers = signed(alice.identity, "POST", target, EVENT)
    response = await raw.post(
        target.replace("wait=commit", "wait=result"), content=EVENT, headers=headers
    )
    await assert_refused(alice, response, 401, head, "bad_signature")


async def test_tampered_method_and_path(
    alice: AsyncClient, counter: str, raw: httpx.AsyncClient
) -> None:
    head = await alice.spaces.head(alice.did)
    path = f"/api/spaces/{alice.did}/charms/{counter}"
    headers = signed(alice.identity, "GET", path)
    response = await raw.delete(path, headers=headers)
    await assert_refused(alice, response, 401, head, "bad_signature")
    other = f"/api/spaces/{alice.did}/charms"
    response = await raw.get(other, headers=signed(alice.identity, "GET", path))
    await assert_refused(alice, response, 401, head, "bad_signature")


async def test_unknown_space(bob: AsyncClient) -> None:
    nowhere = Identity.generate().did
    response = await bob.http.post(
        f"/api/spaces/{nowhere}/charms", json={"pattern": "counter", "inputs": {}}
    )
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "SpaceNotFoundError"
    assert nowhere not in {s["space"] for s in await bob.spaces.list()}


async def test_no_acl_grant(alice: AsyncClient, bob: AsyncClient, counter: str) -> None:
    head = await alice.spaces.head(alice.did)
    charm = f"/api/spaces/{alice.did}/charms/{counter}"
    attempts = [
        await bob.http.post(f"{charm}/streams/increment?wait=commit", json={"event": {}}),
        await bob.http.post(f"{charm}/streams/increment", json={"event": {}}),
        await bob.http.put(f"{charm}/cells/value", json={"value": 99}),
        await bob.http.get(f"{charm}/cells/value"),
        await bob.http.get(charm),
        await bob.http.delete(charm),
        await bob.http.get(f"/api/spaces/{alice.did}/charms"),
        await bob.http.post(f"/api/spaces/{alice.did}/charms", json={"pattern": "counter"}),
        await bob.http.get(f"/api/spaces/{alice.did}/log"),
        await bob.http.post("/api/favorites", json={"space": alice.did, "id": counter}),
    ]
    for response in attempts:
        assert response.status_code == 403, (response.request.url, response.text)
        assert response.json()["error"]["type"] == "AuthorizationError"
    assert await alice.spaces.head(alice.did) == head
    assert await alice.cell(alice.did, counter, "value").get() == 1


async def test_a_refusal_names_what_was_asked_not_the_acl_read_before_it(
    alice: AsyncClient, bob: AsyncClient, counter: str
) -> None:
    """Regression: with no grant at all, every refusal said Bob was "not allowed to read
    the ACL", whatever he had asked; it says what he asked and what that needs."""
    charm = f"/api/spaces/{alice.did}/charms/{counter}"
    asked = [
        (await bob.http.get(f"{charm}/cells/value"), "read a cell", "READ"),
        (await bob.http.put(f"{charm}/cells/value", json={"value": 9}), "edit a cell", "WRITE"),
    ]
    for response, action, needed in asked:
        error = response.json()["error"]
        assert response.status_code == 403
        assert error["message"].startswith(
            f"{bob.did} is not allowed to {action} in space {alice.did}: it needs {needed}."
        )
        assert error["needed"] == needed
        assert "`charmspace --identity FILE`" in error["message"]


async def test_read_grant_is_not_write(alice: AsyncClient, bob: AsyncClient, counter: str) -> None:
    await alice.spaces.set_acl(alice.did, bob.did, "read")
    head = await alice.spaces.head(alice.did)
    assert await bob.cell(alice.did, counter, "value").get() == 1
    charm = f"/api/spaces/{alice.did}/charms/{counter}"
    for response in (
        await bob.http.post(f"{charm}/streams/increment?wait=commit", json={"event": {}}),
        await bob.http.put(f"{charm}/cells/value", json={"value": 99}),
        await bob.http.delete(charm),
    ):
        assert response.status_code == 403, response.text
    assert await alice.spaces.head(alice.did) == head


async def test_non_owner_acl_change(alice: AsyncClient, bob: AsyncClient) -> None:
    await alice.spaces.set_acl(alice.did, bob.did, "write")
    response = await bob.http.put(
        f"/api/spaces/{alice.did}/acl", json={"subject": bob.did, "capability": "OWNER"}
    )
    assert response.status_code == 403
    assert (await alice.spaces.acl(alice.did))["acl"] == {bob.did: "WRITE"}


async def test_a_signed_client_reaches_only_api_routes_it_signs(served: InProcess) -> None:
    """SignedAuth signs the query as sent, including percent-encoding."""
    async with httpx.AsyncClient(
        base_url="http://charmspace.test",
        transport=served.transport,
        auth=SignedAuth(Identity.generate()),
    ) as http:
        response = await http.get("/api/wish", params={"q": "#any thing"})
    assert response.status_code == 400  # signed fine; the query is not a tag
    assert response.json()["error"]["type"] == "PatternError"


def test_header_parsing_refuses_anything_irregular() -> None:
    good = sign_request(Identity.generate(), "GET", "/", b"", 1, "n" * 16).render()
    assert parse_header(good) is not None
    assert parse_header(good.replace('ts="1"', 'ts="-1"')) is None
    assert parse_header(good.replace('nonce="', 'nonce="!')) is None
    assert parse_header(good + ', ts="2"') is None
    assert parse_header(good.replace("Charmspace", "charmspace")) is None


def test_the_verifier_remembers_a_nonce_only_for_a_valid_signature() -> None:
    verifier = Verifier(skew=300, max_nonces=10, max_nonces_per_did=10, clock=lambda: 1000.0)
    alice = Identity.generate()
    header = sign_request(alice, "GET", "/api/x", b"", 1000, "n" * 16)
    forged = SignedHeader(alice.did, 1000, "n" * 16, b"\0" * 64)
    with pytest.raises(AuthenticationError):
        verifier.verify("GET", "/api/x", b"", forged.render())
    assert len(verifier.nonces) == 0
    assert verifier.verify("GET", "/api/x", b"", header.render()) == alice.did


# The nonce cache: per-DID caps, the total cap, and why forgetting never lets a replay in.


def test_a_did_over_its_cap_is_refused_alone() -> None:
    cache = NonceCache(capacity=100, per_did=3, skew=300)
    for n in range(3):
        assert cache.add("mallory", f"m{n}", 1000, now=1000)
    with pytest.raises(ServerBusyError) as refused:
        cache.add("mallory", "m3", 1000, now=1000)
    assert refused.value.limit == "nonces_per_did"
    assert refused.value.retry_after == 301  # when its oldest nonce is outside the window
    assert cache.add("alice", "a0", 1000, now=1000)  # anyone else is served
    assert cache.add("mallory", "m3", 1301, now=1301)  # its old nonces expired
    assert cache.held("mallory") == 1


def test_when_full_the_biggest_holder_forgets_its_oldest_and_its_floor_rises() -> None:
    cache = NonceCache(capacity=4, per_did=10, skew=300)
    for n, ts in enumerate((1000, 1001, 1002)):
        assert cache.add("mallory", f"m{n}", ts, now=1002)
    assert cache.add("alice", "a0", 1002, now=1002)
    assert cache.add("bob", "b0", 1003, now=1003)  # full: mallory's oldest goes
    assert len(cache) == 4
    assert (cache.held("mallory"), cache.floor("mallory")) == (2, 1000)
    with pytest.raises(ServerBusyError) as refused:  # its replay: refused by the floor
        cache.add("mallory", "m0", 1000, now=1003)
    assert refused.value.limit == "nonce_floor"
    assert not cache.add("alice", "a0", 1002, now=1003)  # everyone else's replays: remembered
    assert not cache.add("mallory", "m1", 1001, now=1003)
    assert cache.add("mallory", "m9", 1003, now=1003)  # signed after the floor: fine


def test_when_every_did_holds_one_nonce_nothing_is_forgotten() -> None:
    cache = NonceCache(capacity=2, per_did=10, skew=300)
    assert cache.add("a", "n" * 16, 1000, now=1000)
    assert cache.add("b", "n" * 16, 1000, now=1000)
    with pytest.raises(ServerBusyError) as refused:
        cache.add("c", "n" * 16, 1000, now=1000)
    assert (refused.value.limit, refused.value.retry_after) == ("nonces", 301)
    assert cache.add("c", "n" * 16, 1301, now=1301)
    assert len(cache) == 1


def test_a_nonce_is_remembered_until_its_time_is_outside_the_window() -> None:
    cache = NonceCache(capacity=10, per_did=10, skew=300)
    assert cache.add("a", "early", 700, now=1000)  # signed 300 s ago: the oldest accepted
    assert not cache.add("a", "early", 700, now=1000)
    assert cache.add("a", "late", 1300, now=1000)  # 300 s ahead: remembered until 1600
    assert not cache.add("a", "late", 1300, now=1600)
    assert cache.add("a", "other", 1600, now=1600.5)
    assert cache.held("a") == 1  # both expired


SKEW = 5


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 6),
    per_did=st.integers(1, 4),
    steps=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "replay"]),  # who sends, or a replay of a request
            st.integers(-SKEW, SKEW),  # the request's time, from the server's (or: which replay)
            st.sampled_from([0.0, 0.0, 0.5, 1.0, 3.0]),  # the server's clock moves on
        ),
        max_size=80,
    ),
)
def test_no_request_is_ever_accepted_twice_and_memory_stays_bounded(
    capacity: int, per_did: int, steps: list[tuple[str, int, float]]
) -> None:
    """Whatever the cache forgets, a signed request (did, nonce, ts) is accepted at most once.

    Each step sends a new request, or replays one accepted earlier, if it is
    still within the clock window (the verifier refuses the rest before the
    cache sees them); after each, every accepted request is replayed too.
    """
    cache = NonceCache(capacity, per_did, skew=SKEW)
    now = 1000.0
    sent: list[tuple[str, str, int]] = []
    accepted: set[tuple[str, str, int]] = set()
    for n, (who, offset, tick) in enumerate(steps):
        now += tick
        if who == "replay":
            if not sent:
                continue
            request = sent[offset % len(sent)]
        else:
            request = (who, f"nonce-{n}", int(now) + offset)
            sent.append(request)
        did, nonce, ts = request
        if abs(now - ts) > SKEW:
            continue
        try:
            fresh = cache.add(did, nonce, ts, now)
        except ServerBusyError as busy:
            assert busy.retry_after is not None and busy.retry_after >= 0
            continue
        if fresh:
            assert request not in accepted, "a replay was accepted"
            accepted.add(request)
        else:
            assert request in accepted  # only a replay is refused as one
        assert len(cache) <= capacity
        assert cache.held(did) <= per_did
        for earlier in accepted:  # and every replay still in the window is refused now
            if abs(now - earlier[2]) <= SKEW:
                with contextlib.suppress(ServerBusyError):
                    assert not cache.add(*earlier, now), f"the replay of {earlier} was accepted"
