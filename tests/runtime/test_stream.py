"""Streams: send tells (staged inside a handler), call asks; deadlocks, timeouts and ACLs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import (
    AuthorizationError,
    AwaitedSendError,
    CallTimeoutError,
    DeadlockError,
    NotAStreamError,
    StreamError,
)
from charmspace.identity import Identity
from charmspace.runtime import (
    Address,
    CallResult,
    Cell,
    CommitResult,
    Delivery,
    ErrorReport,
    HandlerSpec,
    Stream,
    Unit,
)
from charmspace.storage import Capability, entity_id
from charmspace.types import SpaceDID


class Boom(Exception):
    pass


def head(runtime: Runtime, space: SpaceDID) -> int:
    return runtime.storage.head(space, runtime.principal)


def auth_unit(runtime: Runtime, space: SpaceDID, *, fail: bool = False) -> tuple[Unit, Cell[Any]]:
    """A charm holding a token, with a ``refresh`` handler that bumps it and returns it."""
    unit = runtime.unit(space, "auth", id=entity_id({"test": "auth", "space": space}))
    token = unit.cell("token", {"token": "t0", "n": 0})

    def refresh(event: Any, *, token: Cell[Any]) -> str:
        n = token.get()["n"] + 1
        token.set({"token": f"t{n}", "n": n})
        if fail:
            raise Boom("the refresh endpoint said no")
        return f"t{n}"

    unit.handler("refresh", refresh, state={"token": token})
    return unit, token


@pytest.fixture
async def auth(runtime: Runtime, other_space: SpaceDID) -> tuple[Stream[Any], Cell[Any]]:
    """A started auth charm in the "other" space: its refresh stream and its token cell."""
    unit, token = auth_unit(runtime, other_space)
    await unit.start()
    return Stream(runtime, unit.handlers[0].address), token


# --- send ----------------------------------------------------------------------------------


async def test_send_outside_a_transaction_delivers_at_once(
    runtime: Runtime, auth: tuple[Stream[Any], Cell[Any]]
) -> None:
    refresh, token = auth
    delivery = refresh.send({})
    assert isinstance(delivery, Delivery)
    assert not delivery.done
    result = await delivery
    assert isinstance(result, CommitResult)
    assert result.ok and result.space == token.space
    assert result.seq == head(runtime, token.space)
    assert token.get() == {"token": "t1", "n": 1}


async def test_delivery_result_is_available_after_it_is_done(
    runtime: Runtime, auth: tuple[Stream[Any], Cell[Any]]
) -> None:
    refresh, _ = auth
    delivery = refresh.send({})
    await runtime.idle()
    assert delivery.done
    assert delivery.result is not None and delivery.result.ok
    assert await delivery == delivery.result


async def test_send_inside_a_handler_is_staged_until_it_commits(
    runtime: Runtime, space: SpaceDID, auth: tuple[Stream[Any], Cell[Any]]
) -> None:
    refresh, token = auth
    unit = runtime.unit(space, "consumer")
    log = unit.cell("log", [])
    seen_in_handler: list[Any] = []
    results: list[tuple[CommitResult, Any, Any]] = []

    async def scan(event: Any, *, log: Cell[Any], refresh: Stream[Any]) -> None:
        log.push("asked")
        refresh.send({}, on_commit=lambda r: results.append((r, token.get(), log.get())))
        for _ in range(20):  # plenty of chances for an early delivery to run
            await asyncio.sleep(0)
        seen_in_handler.append(token.get())
        log.push("done")

    stream = unit.handler("scan", scan, state={"log": log, "refresh": refresh})
    await unit.start()
    own = await stream.send({})
    await runtime.idle()
    assert own.ok
    assert seen_in_handler == [{"token": "t0", "n": 0}]
    [(result, token_then, log_then)] = results
    assert result.ok and result.space == token.space and result.seq > 0
    assert token_then == {"token": "t1", "n": 1}  # after the target committed
    assert log_then == ["asked", "done"]  # and after the sender committed


async def test_send_is_dropped_if_the_sender_aborts(
    runtime: Runtime, space: SpaceDID, auth: tuple[Stream[Any], Cell[Any]]
) -> None:
    refresh, token = auth
    unit = runtime.unit(space, "consumer")
    results: list[CommitResult] = []

    def scan(event: Any, *, refresh: Stream[Any]) -> None:
        refresh.send({}, on_commit=results.append)
        raise Boom

    stream = unit.handler("scan", scan, state={"refresh": refresh})
    await unit.start()
    before = head(runtime, token.space)
    assert not (await stream.send({})).ok
    await runtime.idle()
    [result] = results
    assert result.ok is False
    assert isinstance(result.error, StreamError)
    assert token.get() == {"token": "t0", "n": 0}
    assert head(runtime, token.space) == before


async def test_on_commit_runs_once_even_when_the_sender_is_rerun_after_a_conflict(
    runtime: Runtime, space: SpaceDID, auth: tuple[Stream[Any], Cell[Any]]
) -> None:
    """Regression: a conflict re-run reported the first attempt's staged send as dropped."""
    refresh, token = auth
    unit = runtime.unit(space, "consumer")
    counter = unit.cell("counter", 0)
    results: list[CommitResult] = []
    runs = 0

    def scan(event: Any, *, counter: Cell[Any], refresh: Stream[Any]) -> None:
        nonlocal runs
        runs += 1
        value = counter.get()
        refresh.send({}, on_commit=results.append)
        if runs == 1:
            with runtime.edit():
                Cell(runtime, counter.address).set(value + 10)
        counter.set(value + 1)

    stream = unit.handler("scan", scan, state={"counter": counter, "refresh": refresh})
    await unit.start()
    assert (await stream.send({})).ok
    await runtime.idle()
    assert runs == 2
    assert counter.get() == 11
    assert [r.ok for r in results] == [True]
    assert token.get()["n"] == 1


async def test_on_commit_reports_a_failing_target(
    runtime: Runtime, other_space: SpaceDID, errors: list[ErrorReport]
) -> None:
    unit, token = auth_unit(runtime, other_space, fail=True)
    await unit.start()
    results: list[CommitResult] = []
    delivery = Stream(runtime, unit.handlers[0].address).send({}, on_commit=results.append)
    await runtime.idle()
    assert [r.ok for r in results] == [False]
    assert isinstance(results[0].error, Boom)
    assert delivery.result == results[0]
    assert token.get() == {"token": "t0", "n": 0}


# --- call ----------------------------------------------------------------------------------


async def test_call_returns_the_handler_value_after_the_commit(
    runtime: Runtime, auth: tuple[Stream[Any], Cell[Any]]
) -> None:
    refresh, token = auth
    result = await refresh.call({})
    assert isinstance(result, CallResult)
    assert result == CallResult(True, "t1", None, token.space, head(runtime, token.space))
    assert token.get()["token"] == "t1"


async def test_call_to_a_failing_handler_is_not_ok_and_changes_nothing(
    runtime: Runtime, other_space: SpaceDID
) -> None:
    unit, token = auth_unit(runtime, other_space, fail=True)
    await unit.start()
    before = head(runtime, other_space)
    result = await Stream(runtime, unit.handlers[0].address).call({})
    assert result.ok is False
    assert isinstance(result.error, Boom)
    assert result.value is None
    assert token.get() == {"token": "t0", "n": 0}
    assert head(runtime, other_space) == before + 1  # the error cell only
    assert runtime.error_cell(unit).get()["type"] == "Boom"


async def test_call_from_a_handler_then_reading_sees_the_commit(
    runtime: Runtime, space: SpaceDID, auth: tuple[Stream[Any], Cell[Any]]
) -> None:
    refresh, token = auth
    unit = runtime.unit(space, "consumer")
    log = unit.cell("log", [])

    async def scan(event: Any, *, log: Cell[Any], token: Cell[Any], refresh: Stream[Any]) -> None:
        log.push(token.get()["token"])
        result = await refresh.call({})
        log.push(result.value)
        log.push(token.get()["token"])

    stream = unit.handler("scan", scan, state={"log": log, "token": token, "refresh": refresh})
    await unit.start()
    assert (await stream.send({})).ok
    assert log.get() == ["t0", "t1", "t1"]


async def test_same_space_call_then_read_sees_the_commit(runtime: Runtime, space: SpaceDID) -> None:
    """Regression: reads of the handler's own space were served from the transaction
    after a call into that space changed them."""
    auth, token = auth_unit(runtime, space)
    await auth.start()
    unit = runtime.unit(space, "consumer")
    log = unit.cell("log", [])

    async def scan(event: Any, *, log: Cell[Any], token: Cell[Any], refresh: Stream[Any]) -> None:
        before = token.get()["token"]
        await refresh.call({})
        log.push([before, token.get()["token"]])

    refresh = Stream(runtime, auth.handlers[0].address)
    stream = unit.handler("scan", scan, state={"log": log, "token": token, "refresh": refresh})
    await unit.start()
    assert (await stream.send({})).ok
    await runtime.idle()
    # the first run may be re-run after its read of the token was overtaken;
    # every run read the token the call had just committed
    entries = log.get()
    assert len(entries) == 1
    before, after = entries[0]
    assert after == f"t{int(before[1:]) + 1}"
    assert token.get()["token"] == after


async def test_a_charm_calling_itself_is_a_deadlock_error(
    runtime: Runtime, space: SpaceDID
) -> None:
    unit = runtime.unit(space, "narcissus")
    caught: list[BaseException] = []
    me = Stream(runtime, unit.address("stream", "echo"))

    async def echo(event: Any, *, me: Stream[Any]) -> str:
        if event.get("again"):
            try:
                await me.call({})
            except DeadlockError as e:
                caught.append(e)
        return "echo"

    unit.handler("echo", echo, state={"me": me})
    await unit.start()
    result = await me.call({"again": True})
    assert result.ok and result.value == "echo"
    [error] = caught
    assert isinstance(error, DeadlockError)
    assert "narcissus" in str(error)


async def test_a_cycle_of_calls_is_a_deadlock_error(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID
) -> None:
    a, b = runtime.unit(space, "alpha"), runtime.unit(other_space, "beta")
    a_ping = Stream(runtime, a.address("stream", "ping"))
    a_pong = Stream(runtime, a.address("stream", "pong"))
    b_relay = Stream(runtime, b.address("stream", "relay"))

    async def ping(event: Any, *, relay: Stream[Any]) -> Any:
        result = await relay.call({})
        return result.value

    async def relay(event: Any, *, pong: Stream[Any]) -> str:
        try:
            await pong.call({})
        except DeadlockError as e:
            return f"deadlock: {' -> '.join(e.cycle)}"
        return "no deadlock"

    a.handler("ping", ping, state={"relay": b_relay})
    a.handler("pong", lambda event: "pong")
    b.handler("relay", relay, state={"pong": a_pong})
    await a.start()
    await b.start()
    result = await a_ping.call({})
    assert result.ok
    assert result.value.startswith("deadlock: ")
    assert "alpha" in result.value and "beta" in result.value


async def test_call_times_out(runtime: Runtime, space: SpaceDID) -> None:
    gate = asyncio.Event()
    unit = runtime.unit(space, "sleepy")

    async def wait(event: Any) -> str:
        await gate.wait()
        return "finally"

    stream = unit.handler("wait", wait)
    await unit.start()
    with pytest.raises(CallTimeoutError) as info:
        await stream.call({}, timeout=0.01)
    assert info.value.timeout == 0.01
    assert "0.01" in str(info.value)
    gate.set()
    await runtime.idle()


async def test_sending_to_a_location_without_a_stream_fails(
    runtime: Runtime, space: SpaceDID
) -> None:
    plain = runtime.cell(space, entity_id({"test": "plain"}))
    async with runtime.edit():
        plain.set({"not": "a stream"})
    for address in (plain.address, plain.address.key("not"), Address(space, "of:nothing")):
        stream = Stream(runtime, address)
        with pytest.raises(NotAStreamError) as info:
            stream.send({})
        assert info.value.location == str(address)
        with pytest.raises(NotAStreamError):
            await stream.call({})


async def test_stream_reached_through_a_link_is_delivered(
    runtime: Runtime, space: SpaceDID, auth: tuple[Stream[Any], Cell[Any]]
) -> None:
    refresh, _ = auth
    holder = runtime.cell(space, entity_id({"test": "holder"}))
    async with runtime.edit():
        holder.set({"refreshToken": refresh})
    result = await Stream(runtime, holder.address.key("refreshToken")).call({})
    assert result.ok and result.value == "t1"


# --- who the target acts as ------------------------------------------------------------------


async def test_target_writes_as_the_principal_who_caused_the_event(
    runtime: Runtime, space: SpaceDID, auth: tuple[Stream[Any], Cell[Any]], bob: Identity
) -> None:
    refresh, token = auth
    runtime.storage.set_acl(token.space, runtime.principal, bob.did, Capability.WRITE)
    assert (await refresh.call({}, principal=bob.did)).ok
    assert runtime.storage.log(token.space, runtime.principal)[-1].principal == bob.did
    assert (await refresh.send({}, principal=bob.did)).ok
    assert runtime.storage.log(token.space, runtime.principal)[-1].principal == bob.did


async def test_target_write_without_write_capability_fails(
    runtime: Runtime, space: SpaceDID, auth: tuple[Stream[Any], Cell[Any]], bob: Identity
) -> None:
    refresh, token = auth
    runtime.storage.set_acl(token.space, runtime.principal, bob.did, Capability.READ)
    before = head(runtime, token.space)
    result = await refresh.call({}, principal=bob.did)
    assert result.ok is False
    assert isinstance(result.error, AuthorizationError)
    assert result.error.principal == bob.did and result.error.needed == "WRITE"
    delivery = await refresh.send({}, principal=bob.did)
    assert not delivery.ok and isinstance(delivery.error, AuthorizationError)
    assert token.get() == {"token": "t0", "n": 0}
    log = runtime.storage.log(token.space, runtime.principal, since=before)
    # the error cell, written for the charm's creator; nothing as Bob
    assert [e.principal for e in log] == [runtime.principal]


async def test_events_sent_by_a_handler_carry_its_principal(
    runtime: Runtime, space: SpaceDID, auth: tuple[Stream[Any], Cell[Any]], bob: Identity
) -> None:
    """A stream never escalates: the consumer's user, not the runtime's, acts in the target."""
    refresh, token = auth
    runtime.storage.set_acl(space, runtime.principal, bob.did, Capability.WRITE)
    runtime.storage.set_acl(token.space, runtime.principal, bob.did, Capability.READ)
    unit = runtime.unit(space, "consumer")
    log = unit.cell("log", [])

    async def scan(event: Any, *, log: Cell[Any], refresh: Stream[Any]) -> None:
        result = await refresh.call({})
        log.push(type(result.error).__name__)
        refresh.send({})

    stream = unit.handler("scan", scan, state={"log": log, "refresh": refresh})
    await unit.start()
    assert (await stream.send({}, principal=bob.did)).ok
    await runtime.idle()
    assert log.get() == ["AuthorizationError"]
    assert token.get() == {"token": "t0", "n": 0}
    scans = [e for e in runtime.storage.log(space, runtime.principal) if e.meta.get("handler")]
    assert scans[-1].principal == bob.did


# --- stopped targets -----------------------------------------------------------------------


async def test_sending_to_a_stopped_charm_starts_it(
    runtime: Runtime, other_space: SpaceDID
) -> None:
    unit, token = auth_unit(runtime, other_space)
    await unit.start()
    refresh = Stream(runtime, unit.handlers[0].address)
    unit.stop()
    loads: list[Address] = []

    async def load(address: Address) -> HandlerSpec | None:
        loads.append(address)
        again, _ = auth_unit(runtime, other_space)
        await again.start()
        return runtime.handler_at(address)

    runtime.owner_loader = load
    result = await refresh.call({})
    assert result.ok and result.value == "t1"
    assert loads == [refresh.address]
    assert (await refresh.send({})).ok  # now running: no second load
    assert loads == [refresh.address]
    assert token.get()["n"] == 2


async def test_sending_to_a_stopped_charm_nobody_can_start_fails(
    runtime: Runtime, other_space: SpaceDID
) -> None:
    unit, token = auth_unit(runtime, other_space)
    await unit.start()
    refresh = Stream(runtime, unit.handlers[0].address)
    unit.stop()

    async def load(address: Address) -> HandlerSpec | None:
        return None

    runtime.owner_loader = load
    result = await refresh.send({})
    assert not result.ok and isinstance(result.error, StreamError)
    assert token.get()["n"] == 0
    await runtime.idle()


# --- on SQLite too (grouped commits) -----------------------------------------------------------


async def test_send_and_call_on_every_backend(runtime: Runtime) -> None:
    runtime = runtime
    space_a, space_b = runtime.create_space(name="a"), runtime.create_space(name="b")
    auth, token = auth_unit(runtime, space_a)
    await auth.start()
    refresh = Stream(runtime, auth.handlers[0].address)
    consumer = runtime.unit(space_b, "consumer")
    log = consumer.cell("log", [])
    seen: list[tuple[bool, Any, Any]] = []

    async def scan(event: Any, *, log: Cell[Any], token: Cell[Any], refresh: Stream[Any]) -> None:
        answer = await refresh.call({})
        log.push(f"{answer.value} {token.get()['token']}")
        refresh.send({}, on_commit=lambda r: seen.append((r.ok, token.get(), log.get())))

    stream = consumer.handler("scan", scan, state={"log": log, "token": token, "refresh": refresh})
    await consumer.start()
    results = [stream.send({}) for _ in range(3)]
    await runtime.idle()
    assert [r.result.ok for r in results if r.result] == [True] * 3
    # each read after a call sees at least the call's commit
    answers = [entry.split() for entry in log.get()]
    assert answers[0] == ["t1", "t1"]
    assert all(int(read[1:]) >= int(value[1:]) for value, read in answers)
    assert [ok for ok, _, _ in seen] == [True] * 3
    assert all(len(log_then) >= 1 for _, _, log_then in seen)
    assert token.get()["n"] == 6


# --- a handler awaiting its own send ---------------------------------------------------------


async def test_a_handler_awaiting_its_own_send_gets_an_error_instead_of_hanging(
    runtime: Runtime, space: SpaceDID, auth: tuple[Stream[Any], Cell[Any]]
) -> None:
    """Bug: ``await stream.send(...)`` inside a handler waited for a delivery that is
    made only once the handler commits, so the handler — and its charm — hung for good."""
    refresh, token = auth
    unit = runtime.unit(space, "impatient")

    async def go(event: Any, *, auth: Stream[Any]) -> None:
        await auth.send({})

    stream = unit.handler("go", go, state={"auth": refresh})
    await unit.start()
    result = await asyncio.wait_for(stream.call({}), 5)
    assert not result.ok and isinstance(result.error, AwaitedSendError)
    assert result.error.location == str(refresh.address)
    assert "call(" in str(result.error)
    await runtime.idle()
    assert token.get()["n"] == 0  # the handler aborted, so its send was dropped
    assert (await asyncio.wait_for(stream.send({"after": True}), 5)) is not None  # not stuck


async def test_awaiting_a_send_after_the_handler_is_fine_from_outside(
    runtime: Runtime, auth: tuple[Stream[Any], Cell[Any]]
) -> None:
    refresh, token = auth
    assert (await refresh.send({})).ok
    assert token.get()["n"] == 1


# --- cancelling a caller -----------------------------------------------------------------------


async def test_a_cancelled_caller_stops_at_once_and_the_event_still_runs(
    runtime: Runtime, space: SpaceDID
) -> None:
    """Bug: on Python 3.11 ``wait_for(shield(...))`` in call() swallowed a cancellation
    that arrived as the answer did, so one Ctrl-C did not stop a program awaiting a
    call. The caller's cancellation now always propagates; the event, already
    queued, runs to completion and its commit stands."""
    unit = runtime.unit(space, "slow")
    done = unit.cell("done", False)
    gate = asyncio.Event()

    async def slow(event: Any, *, done: Cell[Any]) -> str:
        await gate.wait()
        done.set(True)
        return "finished"

    stream = unit.handler("slow", slow, state={"done": done})
    await unit.start()
    task = asyncio.create_task(stream.call({}))
    loop = asyncio.get_running_loop()
    # Cancel in the very loop iteration in which the answer arrives.
    runtime.storage.subscribe(space, lambda change: loop.call_soon(task.cancel))
    await asyncio.sleep(0.01)
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert task.cancelled()
    await runtime.idle()
    assert done.get() is True
    await asyncio.wait_for(runtime.close(), 2)


async def test_cancelling_a_caller_of_a_slow_handler_ends_it_promptly(
    runtime: Runtime, space: SpaceDID
) -> None:
    unit = runtime.unit(space, "slower")
    gate = asyncio.Event()

    async def slow(event: Any) -> None:
        await gate.wait()

    stream = unit.handler("slow", slow)
    await unit.start()
    task = asyncio.create_task(stream.call({}))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    gate.set()
    await asyncio.wait_for(runtime.close(), 2)


# --- failed sends are logged -------------------------------------------------------------------


async def test_a_send_nobody_can_handle_is_logged_as_a_warning(
    runtime: Runtime, other_space: SpaceDID, caplog: pytest.LogCaptureFixture
) -> None:
    """Bug: a failed send was silent unless someone read the error cell or listened
    with on_error."""
    unit, _ = auth_unit(runtime, other_space)
    await unit.start()
    refresh = Stream(runtime, unit.handlers[0].address)
    unit.stop()

    async def load(address: Address) -> HandlerSpec | None:
        return None

    runtime.owner_loader = load
    with caplog.at_level(logging.WARNING, logger="charmspace"):
        assert not (await refresh.send({"password": "hunter2"})).ok
    [record] = [r for r in caplog.records if "send to" in r.getMessage()]
    assert record.levelno == logging.WARNING and record.name.startswith("charmspace.")
    assert str(refresh.address) in record.getMessage()
    assert "StreamError" in record.getMessage()
    assert "hunter2" not in caplog.text


async def test_a_send_whose_handler_fails_is_logged_without_payload_or_message(
    runtime: Runtime, other_space: SpaceDID, caplog: pytest.LogCaptureFixture
) -> None:
    unit, _ = auth_unit(runtime, other_space, fail=True)
    await unit.start()
    refresh = Stream(runtime, unit.handlers[0].address)
    with caplog.at_level(logging.WARNING, logger="charmspace"):
        assert not (await refresh.send({"password": "hunter2"})).ok
    [record] = [r for r in caplog.records if "send to" in r.getMessage()]
    text = record.getMessage()
    assert str(refresh.address) in text and "Boom" in text and "auth" in text
    assert "hunter2" not in text and "refresh endpoint said no" not in text
