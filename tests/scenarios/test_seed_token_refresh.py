"""The seed, at the runtime level: "Token refresh blocked by storage transaction isolation".

A google-auth charm in space A owns the OAuth token and exports a ``refresh``
stream. A Gmail consumer charm in space B starts a scan, finds the token
expired, and must get a fresh one. Writing A's token from B's handler is
refused (a transaction writes one space); asking A to refresh — ``await
refresh.call({})`` or ``refresh.send({}, on_commit=cb)`` — runs in A's own
transaction, after which B reads the new token in the same handler.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import TransactionClosedError, WriteIsolationError
from charmspace.identity import Identity
from charmspace.runtime import (
    CallResult,
    Cell,
    CommitResult,
    ErrorReport,
    FakeClock,
    Stream,
    Unit,
    context,
    link_to,
)
from charmspace.runtime.transaction import Transaction
from charmspace.types import SpaceDID
from charmspace.values import FrozenDict

USER = Identity.from_passphrase("seed scenario: user")
SERVICE = Identity.from_passphrase("seed scenario: service")
EXPIRED = {"token": "token-0", "generation": 0, "expired": True}


class RefreshFailed(Exception):
    pass


@pytest.fixture
async def runtime(storage_url: str) -> AsyncIterator[Runtime]:
    rt = Runtime(
        storage_url, identity=USER, service=SERVICE, clock=FakeClock(), random=random.Random(0)
    )
    yield rt
    await rt.close()


@pytest.fixture
def errors(runtime: Runtime) -> list[ErrorReport]:
    reports: list[ErrorReport] = []
    runtime.on_error(reports.append)
    return reports


class GoogleAuth:
    """The google-auth charm in space A: the token, and a ``refresh`` stream."""

    def __init__(self, runtime: Runtime, space: SpaceDID, *, fail: bool = False) -> None:
        self.unit: Unit = runtime.unit(space, "google-auth")
        self.auth = self.unit.cell("auth", EXPIRED)
        self.transactions: list[Transaction] = []

        def refresh_token(event: Any, *, auth: Cell[Any]) -> str:
            tx = context.current().transaction
            assert tx is not None
            self.transactions.append(tx)
            generation = auth.get()["generation"] + 1
            auth.set({"token": f"token-{generation}", "generation": generation, "expired": False})
            if fail:
                raise RefreshFailed("the refresh endpoint answered invalid_grant")
            return f"token-{generation}"

        self.refresh: Stream[Any] = self.unit.handler(
            "refresh_token", refresh_token, state={"auth": self.auth}
        )
        # What the charm exports (what a wish finds): links to its cells and streams.
        self.result = self.unit.cell(
            "result", {"auth": link_to(self.auth.address), "refreshToken": self.refresh}
        )

    async def start(self) -> GoogleAuth:
        await self.unit.start()
        return self


@pytest.fixture
def space_a(runtime: Runtime) -> SpaceDID:
    return runtime.create_space(name="auth-space")


@pytest.fixture
def space_b(runtime: Runtime) -> SpaceDID:
    return runtime.create_space(name="gmail-space")


@pytest.fixture
async def google_auth(runtime: Runtime, space_a: SpaceDID) -> GoogleAuth:
    return await GoogleAuth(runtime, space_a).start()


def head(runtime: Runtime, space: SpaceDID) -> int:
    return runtime.storage.head(space, runtime.principal)


# --- the seed's mistake: writing A's cell from B's handler --------------------------------


async def test_writing_another_spaces_token_is_refused_naming_both_spaces(
    runtime: Runtime,
    google_auth: GoogleAuth,
    space_a: SpaceDID,
    space_b: SpaceDID,
    errors: list[ErrorReport],
) -> None:
    consumer = runtime.unit(space_b, "gmail-agentic-search")
    log = consumer.cell("log", [])

    def start_scan(event: Any, *, auth: Cell[Any], log: Cell[Any]) -> None:
        log.push("scan started")
        auth.update({"token": "token-from-the-refresh-endpoint", "expired": False})

    scan = consumer.handler("start_scan", start_scan, state={"auth": google_auth.auth, "log": log})
    await consumer.start()
    heads = (head(runtime, space_a), head(runtime, space_b))
    result = await scan.send({})
    assert result.ok is False
    error = result.error
    assert isinstance(error, WriteIsolationError)
    assert (error.open, error.requested) == (space_b, space_a)
    assert space_a in str(error) and space_b in str(error)
    assert "stream" in str(error)
    # nothing from that event is committed, in either space
    assert google_auth.auth.get() == EXPIRED
    assert log.get() == []
    assert head(runtime, space_a) == heads[0]
    entries = runtime.storage.log(space_b, runtime.principal, since=heads[1])
    assert [e.ids for e in entries] == [(consumer.error_address.id,)]
    assert [type(r.error) for r in errors] == [WriteIsolationError]


async def test_escaping_the_transaction_with_a_timer_is_impossible(
    runtime: Runtime, google_auth: GoogleAuth, space_b: SpaceDID, errors: list[ErrorReport]
) -> None:
    """The seed's workaround 3, ``setTimeout(() => auth.update(…))``: a task spawned from
    the handler writes after the handler committed. Its cells belong to that closed
    transaction, so the write raises TransactionClosedError and nothing reaches A."""
    consumer = runtime.unit(space_b, "gmail-agentic-search")
    outcome: list[BaseException | None] = []

    async def later(auth: Cell[Any]) -> None:
        await asyncio.sleep(0)
        try:
            auth.update({"token": "written-after-the-handler", "expired": False})
        except BaseException as error:
            outcome.append(error)
        else:
            outcome.append(None)

    tasks: list[asyncio.Task[None]] = []

    def start_scan(event: Any, *, auth: Cell[Any]) -> None:
        tasks.append(asyncio.create_task(later(auth)))

    scan = consumer.handler("start_scan", start_scan, state={"auth": google_auth.auth})
    await consumer.start()
    assert (await scan.send({})).ok
    await asyncio.gather(*tasks)
    await runtime.idle()
    assert len(outcome) == 1 and isinstance(outcome[0], TransactionClosedError)
    assert google_auth.auth.get() == EXPIRED


async def test_a_caught_isolation_error_commits_the_consumers_own_writes_only(
    runtime: Runtime, google_auth: GoogleAuth, space_a: SpaceDID, space_b: SpaceDID
) -> None:
    consumer = runtime.unit(space_b, "gmail-agentic-search")
    log = consumer.cell("log", [])

    def start_scan(event: Any, *, auth: Cell[Any], log: Cell[Any]) -> None:
        log.push("scan started")
        try:
            auth.update({"token": "token-from-the-refresh-endpoint", "expired": False})
        except WriteIsolationError as e:
            log.push(f"refused: {e.requested == space_a}")

    scan = consumer.handler("start_scan", start_scan, state={"auth": google_auth.auth, "log": log})
    await consumer.start()
    before_a = head(runtime, space_a)
    result = await scan.send({})
    assert result.ok and result.space == space_b
    assert log.get() == ["scan started", "refused: True"]
    assert google_auth.auth.get() == EXPIRED
    assert head(runtime, space_a) == before_a


async def test_writing_only_the_other_spaces_cell_succeeds(
    runtime: Runtime, google_auth: GoogleAuth, space_a: SpaceDID, space_b: SpaceDID
) -> None:
    """The first write fixes the writer space: a handler that writes only A writes A."""
    consumer = runtime.unit(space_b, "gmail-agentic-search")

    def fix_token(event: Any, *, auth: Cell[Any]) -> None:
        auth.update({"expired": False})

    stream = consumer.handler("fix_token", fix_token, state={"auth": google_auth.auth})
    await consumer.start()
    result = await stream.send({})
    assert result.ok and result.space == space_a
    assert google_auth.auth.get()["expired"] is False


async def test_a_same_space_consumer_may_write_the_token_directly(
    runtime: Runtime, google_auth: GoogleAuth, space_a: SpaceDID
) -> None:
    consumer = runtime.unit(space_a, "test-auth-consumer")
    log = consumer.cell("log", [])

    def start_scan(event: Any, *, auth: Cell[Any], log: Cell[Any]) -> None:
        log.push("scan started")
        auth.update({"token": "token-direct", "expired": False})

    scan = consumer.handler("start_scan", start_scan, state={"auth": google_auth.auth, "log": log})
    await consumer.start()
    assert (await scan.send({})).ok
    assert google_auth.auth.get()["token"] == "token-direct"
    assert log.get() == ["scan started"]


# --- the fix: ask A to refresh ----------------------------------------------------------


async def test_calling_the_refresh_stream_then_reading_the_new_token(
    runtime: Runtime, google_auth: GoogleAuth, space_a: SpaceDID, space_b: SpaceDID
) -> None:
    consumer = runtime.unit(space_b, "gmail-agentic-search")
    log = consumer.cell("log", [])
    answers: list[CallResult] = []
    consumer_transactions: list[Transaction] = []

    async def start_scan(
        event: Any, *, auth: Cell[Any], refresh: Stream[Any], log: Cell[Any]
    ) -> str:
        tx = context.current().transaction
        assert tx is not None
        consumer_transactions.append(tx)
        log.push("scan started")
        if auth.get()["expired"]:
            answer = await refresh.call({})
            answers.append(answer)
        token = auth.get()["token"]
        log.push(f"scanning with {token}")
        return str(token)

    scan = consumer.handler(
        "start_scan",
        start_scan,
        state={"auth": google_auth.auth, "refresh": google_auth.refresh, "log": log},
    )
    await consumer.start()
    result = await scan.call({})
    assert result.ok and result.value == "token-1" and result.space == space_b
    [answer] = answers
    assert answer == CallResult(True, "token-1", None, space_a, answer.seq)
    # A's handler ran in a transaction of its own, in A, and committed before B read
    [a_tx] = google_auth.transactions
    assert a_tx is not consumer_transactions[0]
    assert a_tx.state == "committed" and a_tx.result is not None
    assert a_tx.result.space == space_a and a_tx.result.seq == answer.seq
    entry = runtime.storage.log(space_a, runtime.principal)[-1]
    assert entry.seq == answer.seq and entry.principal == USER.did
    assert log.get() == ["scan started", "scanning with token-1"]
    assert google_auth.auth.get()["token"] == "token-1"


async def test_send_with_on_commit_runs_after_the_refresh_commits(
    runtime: Runtime, google_auth: GoogleAuth, space_a: SpaceDID, space_b: SpaceDID
) -> None:
    consumer = runtime.unit(space_b, "gmail-agentic-search")
    log = consumer.cell("log", [])
    seen: list[tuple[CommitResult, Any, Any]] = []

    def on_refreshed(result: CommitResult) -> None:
        seen.append((result, google_auth.auth.get(), log.get()))

    def start_scan(event: Any, *, refresh: Stream[Any], log: Cell[Any]) -> None:
        log.push("scan started")
        refresh.send({}, on_commit=on_refreshed)
        log.push("waiting for a fresh token")
        assert seen == []

    scan = consumer.handler(
        "start_scan", start_scan, state={"refresh": google_auth.refresh, "log": log}
    )
    await consumer.start()
    own = await scan.send({})
    await runtime.idle()
    assert own.ok
    [(result, auth_then, log_then)] = seen
    assert result.ok is True and result.error is None
    assert result.space == space_a and result.seq > 0
    assert auth_then["token"] == "token-1"  # after A's commit
    assert log_then == ["scan started", "waiting for a fresh token"]  # after B's commit
    assert own.space == space_b


async def test_a_failing_refresh_is_reported_to_the_caller_and_changes_nothing(
    runtime: Runtime, space_a: SpaceDID, space_b: SpaceDID, errors: list[ErrorReport]
) -> None:
    google_auth = await GoogleAuth(runtime, space_a, fail=True).start()
    consumer = runtime.unit(space_b, "gmail-agentic-search")
    log = consumer.cell("log", [])

    async def start_scan(event: Any, *, refresh: Stream[Any], log: Cell[Any]) -> None:
        answer = await refresh.call({})
        log.push(f"refresh ok={answer.ok}: {answer.error}")

    scan = consumer.handler(
        "start_scan", start_scan, state={"refresh": google_auth.refresh, "log": log}
    )
    await consumer.start()
    assert (await scan.send({})).ok
    assert log.get() == ["refresh ok=False: the refresh endpoint answered invalid_grant"]
    assert google_auth.auth.get() == EXPIRED  # the partial write was not committed
    assert [type(r.error) for r in errors] == [RefreshFailed]
    assert errors[0].pattern == "google-auth" and errors[0].space == space_a


# --- a stream reached through what a wish returns -------------------------------------------


async def test_a_stream_is_a_marker_in_derived_code_and_callable_when_declared(
    runtime: Runtime, google_auth: GoogleAuth, space_b: SpaceDID
) -> None:
    consumer = runtime.unit(space_b, "test-auth-consumer")
    wished = consumer.cell("wished", google_auth.result)  # a link to A's exported result
    log = consumer.cell("log", [])
    refresh_field = wished.key("refreshToken")
    in_derived = consumer.derive("refresh_stream", lambda: refresh_field.get())

    async def declared(event: Any, *, refresh: Stream[Any], log: Cell[Any]) -> None:
        answer = await refresh.call({})
        log.push(f"declared: {answer.value}")

    def undeclared(event: Any, *, refresh: Any, log: Cell[Any]) -> None:
        log.push(f"undeclared: {dict(refresh)} send={hasattr(refresh, 'send')}")

    by_schema = consumer.handler(
        "by_schema",
        declared,
        state={"refresh": refresh_field.address, "log": log},
        state_schema={
            "type": "object",
            "properties": {"refresh": {"asStream": True}, "log": {"asCell": True}},
        },
    )
    by_stream = consumer.handler(
        "by_stream", declared, state={"refresh": Stream(runtime, refresh_field.address), "log": log}
    )
    as_value = consumer.handler(
        "as_value", undeclared, state={"refresh": refresh_field.address, "log": log}
    )
    await consumer.start()
    # derived code sees the plain marker
    assert in_derived.get() == {"$stream": True}
    assert isinstance(in_derived.get(), FrozenDict)
    assert not hasattr(in_derived.get(), "send") and not hasattr(in_derived.get(), "call")
    # a handler that declares a stream can call it
    assert (await by_schema.send({})).ok
    assert (await by_stream.send({})).ok
    # one that does not gets the marker, as the seed found
    assert (await as_value.send({})).ok
    assert log.get() == [
        "declared: token-1",
        "declared: token-2",
        "undeclared: {'$stream': True} send=False",
    ]
    assert google_auth.auth.get()["token"] == "token-2"


async def test_a_stream_extracted_by_a_derive_is_callable_when_declared(
    runtime: Runtime, google_auth: GoogleAuth, space_b: SpaceDID
) -> None:
    """The seed's final pattern: derive the stream out of the wished charm, pass the
    derived value to a handler that declares Stream[...], and send to it."""
    consumer = runtime.unit(space_b, "test-auth-consumer")
    wished = consumer.cell("wished", google_auth.result)
    log = consumer.cell("log", [])
    refresh_stream = consumer.derive(
        "refresh_stream", lambda charm: charm["refreshToken"] if charm else None, inputs=[wished]
    )

    async def attempt_refresh(event: Any, *, refresh: Stream[Any], log: Cell[Any]) -> None:
        answer = await refresh.call({})
        log.push(f"refreshed: {answer.ok} {answer.value}")

    attempt = consumer.handler(
        "attempt_refresh",
        attempt_refresh,
        state={"refresh": Stream(runtime, refresh_stream.address), "log": log},
    )
    await consumer.start()
    assert refresh_stream.get() == {"$stream": True}
    assert (await attempt.send({})).ok
    assert log.get() == ["refreshed: True token-1"]
    assert google_auth.auth.get()["token"] == "token-1"
