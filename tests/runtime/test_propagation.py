"""Derived values: computed on start and on change, glitch-free, read-only, on a clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import CycleError, ReadOnlyCellError
from charmspace.identity import Identity
from charmspace.runtime import Cell, ErrorReport, FakeClock
from charmspace.runtime.propagation import Reads, recording
from charmspace.runtime.transaction import Transaction
from charmspace.storage import creation_proof
from charmspace.types import SpaceDID


async def put(cell: Cell[Any], value: Any) -> None:
    async with cell.runtime.edit():
        cell.set(value)
    await cell.runtime.idle()


async def test_derived_value_is_computed_on_start_and_after_changes(
    runtime: Runtime, space: SpaceDID
) -> None:
    unit = runtime.unit(space, "doubler")
    a = unit.cell("a", 2)
    doubled = unit.derive("doubled", lambda a: a * 2, inputs=[a])
    await unit.start()
    assert doubled.get() == 4
    await put(a, 5)
    assert doubled.get() == 10


async def test_computed_reads_cells_itself(runtime: Runtime, space: SpaceDID) -> None:
    unit = runtime.unit(space, "greeter")
    name = unit.cell("name", "Ada")
    greeting = unit.derive("greeting", lambda: f"Hello, {name.get()}!")
    await unit.start()
    assert greeting.get() == "Hello, Ada!"
    await put(name, "Grace")
    assert greeting.get() == "Hello, Grace!"


async def test_async_derive_function(runtime: Runtime, space: SpaceDID) -> None:
    unit = runtime.unit(space, "async")
    a = unit.cell("a", 1)

    async def plus_one(a: int) -> int:
        return a + 1

    out = unit.derive("plus_one", plus_one, inputs=[a])
    await unit.start()
    assert out.get() == 2
    await put(a, 2)
    assert out.get() == 3


@pytest.mark.parametrize("declared", [True, False], ids=["inputs", "computed"])
async def test_diamond_is_glitch_free(runtime: Runtime, space: SpaceDID, declared: bool) -> None:
    unit = runtime.unit(space, "diamond")
    a = unit.cell("a", 1)
    calls: list[tuple[Any, Any]] = []
    if declared:
        b = unit.derive("b", lambda a: a * 10, inputs=[a])
        c = unit.derive("c", lambda a: a + 1, inputs=[a])

        def d_fn(b: Any, c: Any) -> Any:
            calls.append((b, c))
            return b + c

        d = unit.derive("d", d_fn, inputs=[b, c])
    else:
        b = unit.derive("b", lambda: a.get() * 10)
        c = unit.derive("c", lambda: a.get() + 1)

        def d_computed() -> Any:
            pair = (b.get(), c.get())
            calls.append(pair)
            return pair[0] + pair[1]

        d = unit.derive("d", d_computed)
    await unit.start()
    assert d.get() == 12
    for value in (2, 3, 7):
        await put(a, value)
        assert d.get() == value * 10 + value + 1
    # d never saw b and c from different waves
    consistent = [(x * 10, x + 1) for x in (1, 2, 3, 7)]
    assert calls[-1] == (70, 8)
    assert [pair for pair in calls if pair not in consistent] == []
    if declared:
        assert calls == consistent  # exactly once per wave


async def test_each_action_runs_at_most_once_per_wave(runtime: Runtime, space: SpaceDID) -> None:
    unit = runtime.unit(space, "fan")
    a, b = unit.cell("a", 1), unit.cell("b", 1)
    runs: dict[str, int] = {"sum": 0, "twice": 0}

    def total(a: int, b: int) -> int:
        runs["sum"] += 1
        return a + b

    def twice(s: int, a: int) -> int:
        runs["twice"] += 1
        return s * 2 + a

    s = unit.derive("sum", total, inputs=[a, b])
    unit.derive("twice", twice, inputs=[s, a])
    await unit.start()
    runs.update({"sum": 0, "twice": 0})
    async with runtime.edit():  # one commit changing both inputs
        a.set(2)
        b.set(3)
    await runtime.idle()
    assert runs == {"sum": 1, "twice": 1}


async def test_chain_runs_in_dependency_order(runtime: Runtime, space: SpaceDID) -> None:
    unit = runtime.unit(space, "chain")
    a = unit.cell("a", 0)
    order: list[str] = []

    def step(name: str) -> Any:
        def fn(x: int) -> int:
            order.append(name)
            return x + 1

        return fn

    d_in = a
    cells = {}
    # declared last-first, so registration order is not dependency order
    names = ["b", "c", "d", "e"]
    for name in names:
        d_in = cells[name] = unit.derive(name, step(name), inputs=[d_in])
    unit.actions.reverse()
    await unit.start()
    assert cells["e"].get() == 4
    order.clear()
    await put(a, 10)
    assert order == names
    assert cells["e"].get() == 14


async def test_an_action_never_retriggers_itself(runtime: Runtime, space: SpaceDID) -> None:
    unit = runtime.unit(space, "selfish")
    a = unit.cell("a", 1)
    runs = 0
    out: Cell[Any]

    def accumulate() -> int:
        nonlocal runs
        runs += 1
        return int((out.get() or 0) + a.get())

    out = unit.derive("accumulate", accumulate)
    await unit.start()
    assert (runs, out.get()) == (1, 1)
    await put(a, 5)
    assert (runs, out.get()) == (2, 6)


async def test_cycle_is_reported_and_does_not_spin(
    runtime: Runtime, space: SpaceDID, errors: list[ErrorReport]
) -> None:
    unit = runtime.unit(space, "loop")
    seed = unit.cell("seed", 1)
    cells: dict[str, Cell[Any]] = {}
    runs = {"ping": 0, "pong": 0}

    def ping() -> int:
        runs["ping"] += 1
        return int(seed.get() + (cells["pong"].get() or 0))

    def pong() -> int:
        runs["pong"] += 1
        return int((cells["ping"].get() or 0) + 1)

    cells["ping"] = unit.derive("ping", ping)
    cells["pong"] = unit.derive("pong", pong)
    await unit.start()
    await put(seed, 2)
    await runtime.idle()
    cycles = [r for r in errors if isinstance(r.error, CycleError)]
    assert cycles, "the cycle was not reported"
    error = cycles[0].error
    assert isinstance(error, CycleError)
    assert set(error.actions) == {"loop.ping", "loop.pong"}
    assert "loop.ping" in str(error) and "loop.pong" in str(error)
    assert {r.where for r in cycles} <= {"ping", "pong"}
    assert runs["ping"] < 10 and runs["pong"] < 10


async def test_writing_a_derived_cell_is_refused(
    runtime: Runtime, space: SpaceDID, errors: list[ErrorReport]
) -> None:
    unit = runtime.unit(space, "readonly")
    a = unit.cell("a", 1)
    doubled = unit.derive("doubled", lambda a: a * 2, inputs=[a])

    def overwrite(event: Any, *, doubled: Cell[Any]) -> None:
        doubled.set(99)

    stream = unit.handler("overwrite", overwrite, state={"doubled": doubled})
    await unit.start()
    with pytest.raises(ReadOnlyCellError) as info:
        async with runtime.edit():
            doubled.set(99)
    assert info.value.action == "readonly.doubled"
    assert doubled.address.id in info.value.cell
    assert "readonly.doubled" in str(info.value) and doubled.address.id in str(info.value)
    with pytest.raises(ReadOnlyCellError):
        async with runtime.edit():
            doubled["part"].set(1)
    result = await stream.send({})
    assert not result.ok and isinstance(result.error, ReadOnlyCellError)
    assert doubled.get() == 2


async def test_time_dependent_value_recomputes_on_a_clock_tick(
    runtime: Runtime, space: SpaceDID, clock: FakeClock
) -> None:
    unit = runtime.unit(space, "token")
    token = unit.cell("token", {"expires_at": clock.now() + 3600})
    remaining = unit.derive(
        "time_remaining", lambda: token.get()["expires_at"] - runtime.now(resolution=60)
    )
    seconds = unit.derive("seconds", lambda: runtime.now(resolution=1))
    await unit.start()
    start = clock.now()
    assert remaining.get() == 3600
    assert seconds.get() == start
    await clock.advance(1)
    await runtime.idle()
    assert seconds.get() == start + 1
    assert remaining.get() == 3600
    await clock.advance(59)
    await runtime.idle()
    assert remaining.get() == 3540
    await clock.advance(600)
    await runtime.idle()
    assert remaining.get() == 2940
    assert seconds.get() == start + 660


async def test_action_exception_is_reported_and_output_unchanged(
    runtime: Runtime, space: SpaceDID, errors: list[ErrorReport]
) -> None:
    unit = runtime.unit(space, "divider")
    x = unit.cell("x", 2)
    out = unit.derive("inverse", lambda x: 10 / x, inputs=[x])
    await unit.start()
    assert out.get() == 5
    await put(x, 0)
    assert out.get() == 5
    [report] = errors
    assert (report.where, report.pattern, report.charm) == ("inverse", "divider", unit.id)
    assert isinstance(report.error, ZeroDivisionError)
    assert runtime.error_cell(unit).get()["where"] == "inverse"
    await put(x, 4)
    assert out.get() == 2.5


async def test_an_async_action_that_raises_keeps_its_previous_value_and_sets_the_error(
    runtime: Runtime, space: SpaceDID, errors: list[ErrorReport]
) -> None:
    unit = runtime.unit(space, "async divider")
    x = unit.cell("x", 2)

    async def inverse(x: int) -> float:
        await asyncio.sleep(0)
        return 10 / x

    out = unit.derive("inverse", inverse, inputs=[x])
    await unit.start()
    assert out.get() == 5
    await put(x, 0)
    assert out.get() == 5
    assert [(r.where, type(r.error)) for r in errors] == [("inverse", ZeroDivisionError)]
    recorded = runtime.error_cell(unit).get()
    assert (recorded["where"], recorded["type"]) == ("inverse", "ZeroDivisionError")
    await put(x, 4)
    assert out.get() == 2.5


async def test_a_clock_driven_recomputation_runs_as_the_charms_creator(
    runtime: Runtime, clock: FakeClock, bob: Identity
) -> None:
    """Nobody caused a tick: the recomputation acts for whoever created the charm, in
    the charm's space (here Bob's, where the runtime's own user may not write)."""
    home = bob.derive("bob-home")
    space = runtime.storage.create_space(home.did, bob.did, proof=creation_proof(home, bob.did))
    unit = runtime.unit(space.space, "bob's clock")
    minute = unit.derive("minute", lambda: runtime.now(resolution=60))
    await unit.start(principal=bob.did)
    start = runtime.read(minute.address, bob.did)
    await clock.advance(60)
    await runtime.idle()
    assert runtime.read(minute.address, bob.did) == start + 60
    last = runtime.storage.log(space.space, bob.did)[-1]
    assert last.ids == (minute.address.id,) and last.principal == bob.did


async def test_derived_values_commit_in_their_own_space(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID
) -> None:
    source = runtime.unit(other_space, "source")
    a = source.cell("a", 1)
    await source.start()
    unit = runtime.unit(space, "mirror")
    mirrored = unit.derive("mirror", lambda a: a, inputs=[a])
    await unit.start()
    assert mirrored.get() == 1
    other_head = runtime.storage.head(other_space, runtime.principal)
    await put(a, 2)
    assert mirrored.get() == 2
    assert runtime.storage.head(other_space, runtime.principal) == other_head + 1
    entry = runtime.storage.log(space, runtime.principal)[-1]
    assert entry.ids == (mirrored.address.id,)
    assert entry.principal == runtime.principal  # the charm's creator, not the service


async def test_an_equal_result_commits_nothing(runtime: Runtime, space: SpaceDID) -> None:
    unit = runtime.unit(space, "parity")
    a = unit.cell("a", 1)
    parity = unit.derive("parity", lambda a: a % 2, inputs=[a])
    await unit.start()
    await put(a, 3)
    head = runtime.storage.head(space, runtime.principal)
    await put(a, 5)
    assert parity.get() == 1
    assert runtime.storage.head(space, runtime.principal) == head + 1  # only the input


async def test_a_change_of_type_is_a_change(runtime: Runtime, space: SpaceDID) -> None:
    """Regression: ``True == 1`` made a derived value of true look equal to 1."""
    unit = runtime.unit(space, "typed")
    a = unit.cell("a", 1)
    out = unit.derive("same", lambda a: {"v": a}, inputs=[a])
    await unit.start()
    await put(a, True)
    assert out.get()["v"] is True


async def test_propagation_on_every_backend(runtime: Runtime) -> None:
    runtime = runtime
    space = runtime.create_space(name="home")
    unit = runtime.unit(space, "doubler")
    a = unit.cell("a", 2)
    b = unit.derive("b", lambda a: a * 2, inputs=[a])
    c = unit.derive("c", lambda a, b: a + b, inputs=[a, b])
    await unit.start()
    assert c.get() == 6
    await put(a, 5)
    assert c.get() == 15


async def test_propagated_returns_once_the_commits_derived_values_are_in(
    runtime: Runtime, space: SpaceDID
) -> None:
    unit = runtime.unit(space, "slow-doubler")
    a = unit.cell("a", 1)

    async def slow_double(a: int) -> int:
        await asyncio.sleep(0.05)
        return a * 2

    doubled = unit.derive("doubled", slow_double, inputs=[a])
    await unit.start()
    tx = Transaction(runtime, runtime.principal)
    tx.write(a.address, 5)
    seq = tx.commit().seq
    assert doubled.get() == 2  # the commit alone does not wait for what it derives
    await asyncio.wait_for(runtime.propagated(space, seq), 5)
    assert doubled.get() == 10


async def test_a_recording_notes_each_value_a_derived_value_reads_and_whether_it_read_the_clock(
    runtime: Runtime, space: SpaceDID
) -> None:
    unit = runtime.unit(space, "recorded")
    a = unit.cell("a", {"x": 1})
    noted: list[Reads] = []

    def body() -> Any:
        reads = Reads()
        token = recording.set(reads)
        try:
            x = a.key("x").get()
            seen = a.sample()
            if x > 1:
                runtime.now()
        finally:
            recording.reset(token)
        noted.append(reads)
        return [x, seen]

    unit.derive("body", body)
    await unit.start()
    first = noted[-1]
    assert [(r[0], r[1], r[3]) for r in first.seen] == [
        (a.address.key("x"), True, 1),
        (a.address, False, {"x": 1}),
    ]
    assert not first.volatile
    await put(a.key("x"), 2)
    assert noted[-1].volatile  # read the clock: reading again cannot check it
    assert recording.get() is None
