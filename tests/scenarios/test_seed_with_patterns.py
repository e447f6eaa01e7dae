"""The seed, told with patterns: refreshing a token owned by a charm in another space.

Given an auth charm favorited with ``#googleAuth`` in space A and a Gmail consumer
in space B that wishes for it: writing the token directly from the consumer's
handler is refused (a transaction writes one space) and nothing of that event
is committed; calling the auth charm's ``refresh`` stream — declared
``Stream[...]`` in the handler's state, reached through the wish result —
refreshes the token in A's own transaction, and the consumer reads the new
token in the same handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import WriteIsolationError
from charmspace.identity import Identity
from charmspace.patterns import Charm, Default, cell, computed, derive, handler, pattern, wish
from charmspace.runtime import Cell, FakeClock, Stream


@handler
def refresh_token(event: dict[str, Any], *, auth: Cell[dict[str, Any]]) -> str:
    """Runs in the auth charm's transaction, in its space: it may write the token."""
    generation = auth.get()["generation"] + 1
    auth.set({"token": f"token-{generation}", "generation": generation})
    return f"token-{generation}"


@pattern(tags=["#googleAuth"])
def google_auth(
    auth: Default[dict[str, Any], {"token": "token-0", "generation": 0}],
) -> dict[str, Any]:
    """Owns the Google token. #googleAuth"""
    return {"auth": auth, "refresh": refresh_token.bind(auth=auth)}


@handler
def write_token_directly(
    event: dict[str, Any], *, auth: Cell[dict[str, Any]], log: Cell[list[str]]
) -> None:
    """The seed's mistake: ``auth.update(newAuthData)`` from the consumer's handler."""
    log.push("scan started")
    auth.set({"token": "forged", "generation": 99})


@handler
async def scan(
    event: dict[str, Any],
    *,
    auth: Cell[dict[str, Any]],
    refresh: Stream[dict[str, Any]],
    log: Cell[list[str]],
) -> str:
    """The fix: ask the auth charm to refresh, then read the token it wrote."""
    log.push(f"token was {auth.get()['token']}")
    answer = await refresh.call({})
    log.push(f"refresh ok={answer.ok} in {answer.space}")
    token: str = auth.get()["token"]
    log.push(f"token is {token}")
    return token


@pattern
def gmail_search() -> dict[str, Any]:
    found = wish("#googleAuth")
    log = cell([], name="log")
    auth, refresh = found["result"]["auth"], found["result"]["refresh"]
    return {
        "found": found,
        "log": log,
        "refresh_seen_by_derive": derive(found, lambda f: f["result"]["refresh"]),
        "refresh_is_callable_in_derive": computed(
            lambda: hasattr(found["result"]["refresh"].get(), "send")
        ),
        "forge": write_token_directly.bind(auth=auth, log=log),
        "scan_via_derived_stream": scan.bind(
            auth=auth, refresh=derive(found, lambda f: f["result"]["refresh"]), log=log
        ),
        "scan": scan.bind(auth=auth, refresh=refresh, log=log),
    }


@pytest.fixture
async def runtime(storage_url: str) -> AsyncIterator[Runtime]:
    rt = Runtime(
        storage_url,
        identity=Identity.from_passphrase("seed scenario: user"),
        clock=FakeClock(),
        call_timeout=5,
    )
    yield rt
    await rt.close()


@pytest.fixture
async def charms(runtime: Runtime) -> tuple[Charm, Charm]:
    auth = await runtime.charms.create(google_auth, space=runtime.create_space(name="auth"))
    await runtime.favorites().add(auth)
    gmail = await runtime.charms.create(gmail_search, space=runtime.create_space(name="gmail"))
    await runtime.idle()
    assert gmail["found"]["result"]["auth"]["token"].get() == "token-0"
    return auth, gmail


async def test_writing_the_token_directly_is_refused_and_commits_nothing(
    runtime: Runtime, charms: tuple[Charm, Charm]
) -> None:
    auth, gmail = charms
    heads = {s: runtime.storage.head(s, runtime.principal) for s in (auth.space, gmail.space)}
    result = await gmail.stream("forge").call({})
    await runtime.idle()
    assert not result.ok
    error = result.error
    assert isinstance(error, WriteIsolationError)
    assert (error.open, error.requested) == (gmail.space, auth.space)
    assert auth.space in str(error)
    assert gmail.space in str(error)
    assert auth["auth"].get() == {"token": "token-0", "generation": 0}
    assert gmail["log"].get() == []  # "scan started" was not committed either
    assert runtime.storage.head(auth.space, runtime.principal) == heads[auth.space]
    entries = runtime.storage.log(gmail.space, runtime.principal, since=heads[gmail.space])
    assert all("handler" not in e.meta for e in entries)  # only the error cell was written
    assert gmail.error.get()["type"] == "WriteIsolationError"


async def test_calling_the_refresh_stream_refreshes_in_the_auth_space(
    runtime: Runtime, charms: tuple[Charm, Charm]
) -> None:
    auth, gmail = charms
    auth_head = runtime.storage.head(auth.space, runtime.principal)
    result = await gmail.stream("scan").call({})
    await runtime.idle()
    assert result.ok, result.error
    assert result.value == "token-1"
    assert result.space == gmail.space
    assert gmail["log"].get() == [
        "token was token-0",
        f"refresh ok=True in {auth.space}",
        "token is token-1",
    ]
    assert auth["auth"].get() == {"token": "token-1", "generation": 1}
    refreshes = [
        e
        for e in runtime.storage.log(auth.space, runtime.principal, since=auth_head)
        if "handler" in e.meta
    ]
    assert len(refreshes) == 1
    assert refreshes[0].principal == runtime.principal  # as the user who clicked, in A
    assert gmail["found"]["result"]["auth"]["token"].get() == "token-1"


async def test_inside_derive_the_wished_stream_is_a_plain_marker(
    charms: tuple[Charm, Charm],
) -> None:
    _auth, gmail = charms
    assert gmail["refresh_seen_by_derive"].get() == {"$stream": True}
    assert gmail["refresh_is_callable_in_derive"].get() is False
    assert gmail["found"]["result"].get()["refresh"] == {"$stream": True}


async def test_a_stream_derived_out_of_the_wish_is_callable_when_declared(
    runtime: Runtime, charms: tuple[Charm, Charm]
) -> None:
    """The seed's final form: ``derive(wished, lambda c: c.refresh)`` handed to a handler
    that declares ``Stream[...]`` — the derived value keeps where the stream lives."""
    auth, gmail = charms
    result = await gmail.stream("scan_via_derived_stream").call({})
    await runtime.idle()
    assert result.ok, result.error
    assert result.value == "token-1"
    assert auth["auth"].get()["token"] == "token-1"
