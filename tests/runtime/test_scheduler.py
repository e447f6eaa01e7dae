"""The scheduler: one event at a time per charm, in order; abort on error; re-run on conflict."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

from charmspace import Runtime
from charmspace.errors import ConflictError, SchemaError
from charmspace.identity import Identity
from charmspace.runtime import Cell, ErrorReport, Stream
from charmspace.runtime.scheduler import MAX_ATTEMPTS
from charmspace.storage import Storage
from charmspace.types import SpaceDID


class Boom(Exception):
    pass


# --- order and concurrency ---------------------------------------------------------------


async def test_events_to_one_charm_run_one_at_a_time_in_order(
    runtime: Runtime, space: SpaceDID
) -> None:
    unit = runtime.unit(space, "ordered")
    log = unit.cell("log", [])
    trace: list[tuple[str, int]] = []

    async def append(event: Any, *, log: Cell[Any]) -> None:
        i = event["i"]
        trace.append(("start", i))
        for _ in range(10 - i):  # early events wait longest: tempting to reorder
            await asyncio.sleep(0)
        log.push(i)
        trace.append(("end", i))

    stream = unit.handler("append", append, state={"log": log})
    await unit.start()
    deliveries = [stream.send({"i": i}) for i in range(10)]
    await runtime.idle()
    assert all(d.done and d.result is not None and d.result.ok for d in deliveries)
    assert log.get() == list(range(10))
    assert trace == [(kind, i) for i in range(10) for kind in ("start", "end")]


async def test_different_charms_run_concurrently(runtime: Runtime, space: SpaceDID) -> None:
    gate = asyncio.Event()
    slow_unit, fast_unit = runtime.unit(space, "slow"), runtime.unit(space, "fast")
    slow_out, fast_out = slow_unit.cell("out"), fast_unit.cell("out")

    async def slow(event: Any, *, out: Cell[Any]) -> None:
        await gate.wait()  # awaiting I/O
        out.set("slow done")

    async def fast(event: Any, *, out: Cell[Any]) -> None:
        out.set("fast done")

    slow_stream = slow_unit.handler("slow", slow, state={"out": slow_out})
    fast_stream = fast_unit.handler("fast", fast, state={"out": fast_out})
    await slow_unit.start()
    await fast_unit.start()
    slow_delivery = slow_stream.send({})
    fast_result = await fast_stream.send({})
    assert fast_result.ok
    assert fast_out.get() == "fast done"
    assert not slow_delivery.done
    assert slow_out.get() is None
    gate.set()
    assert (await slow_delivery).ok
    assert slow_out.get() == "slow done"


async def test_handlers_may_be_def_or_async_def(runtime: Runtime, space: SpaceDID) -> None:
    unit = runtime.unit(space, "both")
    out = unit.cell("out", [])

    def sync_handler(event: Any, *, out: Cell[Any]) -> str:
        out.push("sync")
        return "from def"

    async def async_handler(event: Any, *, out: Cell[Any]) -> str:
        await asyncio.sleep(0)
        out.push("async")
        return "from async def"

    sync_stream = unit.handler("sync", sync_handler, state={"out": out})
    async_stream = unit.handler("async", async_handler, state={"out": out})
    await unit.start()
    assert (await sync_stream.call({})).value == "from def"
    assert (await async_stream.call({})).value == "from async def"
    assert out.get() == ["sync", "async"]


async def test_idle_waits_for_chains_of_events(runtime: Runtime, space: SpaceDID) -> None:
    last = runtime.unit(space, "last")
    seen = last.cell("seen", [])

    def record(event: Any, *, seen: Cell[Any]) -> None:
        seen.push(event["hops"])

    next_stream = last.handler("record", record, state={"seen": seen})
    units = [last]
    for i in range(3):
        unit = runtime.unit(space, f"hop {i}")

        async def forward(event: Any, *, next: Stream[Any]) -> None:
            await asyncio.sleep(0)
            next.send({"hops": event["hops"] + 1})

        next_stream = unit.handler("forward", forward, state={"next": next_stream})
        units.append(unit)
    for unit in units:
        await unit.start()
    next_stream.send({"hops": 0})
    await runtime.idle()
    assert seen.get() == [3]


# --- errors abort, are reported, and are not retried -------------------------------------


async def test_handler_exception_aborts_reports_and_is_not_retried(
    runtime: Runtime, space: SpaceDID, errors: list[ErrorReport]
) -> None:
    unit = runtime.unit(space, "fragile")
    a, b = unit.cell("a", 0), unit.cell("b", [])
    calls = 0

    def fail(event: Any, *, a: Cell[Any], b: Cell[Any]) -> None:
        nonlocal calls
        calls += 1
        a.set(1)
        b.push("partial")
        raise Boom("token refresh failed")

    stream = unit.handler("refresh", fail, state={"a": a, "b": b})
    await unit.start()
    head = runtime.storage.head(space, runtime.principal)
    result = await stream.send({})
    await runtime.idle()
    assert calls == 1
    assert result.ok is False
    assert isinstance(result.error, Boom)
    assert (a.get(), b.get()) == (0, [])
    [report] = errors
    assert (report.charm, report.pattern, report.space, report.where) == (
        unit.id,
        "fragile",
        space,
        "refresh",
    )
    assert isinstance(report.error, Boom)
    recorded = runtime.error_cell(unit).get()
    assert recorded["where"] == "refresh"
    assert recorded["type"] == "Boom"
    assert "message" not in recorded  # user code's message: see tests/security/test_secrets.py
    # only the error cell was written
    entries = runtime.storage.log(space, runtime.principal, since=head)
    assert [e.ids for e in entries] == [(unit.error_address.id,)]


async def test_the_next_event_runs_after_a_failure(runtime: Runtime, space: SpaceDID) -> None:
    unit = runtime.unit(space, "resilient")
    log = unit.cell("log", [])

    def handle(event: Any, *, log: Cell[Any]) -> None:
        log.push(event["n"])
        if event["n"] == 1:
            raise Boom

    stream = unit.handler("handle", handle, state={"log": log})
    await unit.start()
    results = [stream.send({"n": n}) for n in range(3)]
    await runtime.idle()
    assert [r.result.ok for r in results if r.result] == [True, False, True]
    assert log.get() == [0, 2]


async def test_non_json_return_value_aborts(
    runtime: Runtime, space: SpaceDID, errors: list[ErrorReport]
) -> None:
    unit = runtime.unit(space, "returns")
    out = unit.cell("out", 0)

    def handle(event: Any, *, out: Cell[Any]) -> object:
        out.set(1)
        return object()

    stream = unit.handler("handle", handle, state={"out": out})
    await unit.start()
    result = await stream.call({})
    assert not result.ok
    assert isinstance(result.error, TypeError)
    assert out.get() == 0


async def test_snapshot_state_is_immutable(runtime: Runtime, space: SpaceDID) -> None:
    unit = runtime.unit(space, "snapshots")
    settings = unit.cell("settings", {"tags": ["a"]})
    seen: list[Any] = []

    def handle(event: Any, *, settings: Any) -> None:
        seen.append(settings)
        settings["tags"].append("b")

    stream = unit.handler("handle", handle, state={"settings": settings.address})
    await unit.start()
    result = await stream.send({})
    assert not result.ok and isinstance(result.error, TypeError)
    assert seen == [{"tags": ["a"]}]
    assert settings.get() == {"tags": ["a"]}


# --- conflicts are re-run ----------------------------------------------------------------


async def conflicting_counter(
    runtime: Runtime, space: SpaceDID, conflicts: int
) -> tuple[Stream[Any], Cell[Any], list[int]]:
    """A started charm whose handler increments a counter; its first ``conflicts`` runs
    lose a race."""
    unit = runtime.unit(space, "counter")
    counter = unit.cell("counter", 0)
    runs: list[int] = []

    def increment(event: Any, *, counter: Cell[Any]) -> int:
        value = counter.get()
        runs.append(value)
        if len(runs) <= conflicts:  # someone else commits the counter meanwhile
            with runtime.edit():
                Cell(runtime, counter.address).set(value + 100)
        counter.set(value + 1)
        return int(value + 1)

    stream = unit.handler("increment", increment, state={"counter": counter})
    await unit.start()
    return stream, counter, runs


async def test_conflicting_handler_is_rerun_with_fresh_reads(
    runtime: Runtime, space: SpaceDID, errors: list[ErrorReport]
) -> None:
    stream, counter, runs = await conflicting_counter(runtime, space, conflicts=2)
    result = await stream.call({})
    assert runs == [0, 100, 200]
    assert result.ok and result.value == 201
    assert counter.get() == 201
    assert errors == []


async def test_handler_that_always_conflicts_fails_after_five_reruns(
    runtime: Runtime, space: SpaceDID, errors: list[ErrorReport]
) -> None:
    stream, counter, runs = await conflicting_counter(runtime, space, conflicts=1000)
    result = await stream.call({})
    assert MAX_ATTEMPTS == 6
    assert len(runs) == 6
    assert result.ok is False
    assert isinstance(result.error, ConflictError)
    assert counter.get() == 600  # only the competing edits landed
    [report] = errors
    assert isinstance(report.error, ConflictError) and report.where == "increment"


# --- event schemas -----------------------------------------------------------------------


class Move(TypedDict):
    dx: int
    dy: int


async def test_event_schema_mismatch_is_a_schema_error_and_skips_the_handler(
    runtime: Runtime, space: SpaceDID, errors: list[ErrorReport]
) -> None:
    unit = runtime.unit(space, "mover")
    position = unit.cell("position", {"x": 0, "y": 0})
    runs: list[Any] = []

    def move(event: Move, *, position: Cell[Any]) -> None:
        runs.append(event)
        here = position.get()
        position.set({"x": here["x"] + event["dx"], "y": here["y"] + event["dy"]})

    stream = unit.handler("move", move, state={"position": position}, event=Move)
    await unit.start()
    bad = stream.send({"dx": 1, "dy": "up"})
    good = stream.send({"dx": 1, "dy": 2})
    await runtime.idle()
    assert bad.result is not None and not bad.result.ok
    error = bad.result.error
    assert isinstance(error, SchemaError)
    assert error.path == ("dy",)
    assert "dy" in str(error)
    assert good.result is not None and good.result.ok
    assert runs == [{"dx": 1, "dy": 2}]
    assert position.get() == {"x": 1, "y": 2}
    assert [type(r.error) for r in errors] == [SchemaError]


async def test_missing_event_field_names_the_field(runtime: Runtime, space: SpaceDID) -> None:
    unit = runtime.unit(space, "mover")
    stream = unit.handler("move", lambda event: None, event=Move)
    await unit.start()
    result = await stream.call({"dx": 1})
    assert not result.ok
    assert isinstance(result.error, SchemaError) and result.error.path == ("dy",)


async def test_closing_lets_queued_events_finish(lasting_store: str | Storage) -> None:
    """Shutdown finishes the handlers already queued and keeps their commits."""
    user = Identity.from_passphrase("scheduler suite: closing user")
    runtime = Runtime(lasting_store, identity=user)
    space = runtime.create_space(name="close")
    unit = runtime.unit(space, "counter")
    count = unit.cell("count", 0)

    async def bump(event: Any, *, count: Cell[Any]) -> None:
        await asyncio.sleep(0)
        count.set(count.get() + 1)

    stream = unit.handler("bump", bump, state={"count": count})
    await unit.start()
    for _ in range(20):
        stream.send({})
    await runtime.close()
    again = Runtime(lasting_store, identity=user)
    assert again.cell(count.space, count.address.id).get() == 20
    await again.close()
