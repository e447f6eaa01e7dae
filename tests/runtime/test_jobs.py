"""Jobs: async work a handler starts, outside any transaction, with a status cell."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import ConflictError, TransactionRequiredError
from charmspace.runtime import Cell, ErrorReport, JobContext, Stream, Unit, start_job
from charmspace.types import SpaceDID


class Boom(Exception):
    pass


def status(runtime: Runtime, unit: Unit, name: str) -> Any:
    return Cell(runtime, unit.jobs_address.key(name)).get()


def scanner(
    runtime: Runtime, space: SpaceDID, job: Any, *, fail_handler: bool = False
) -> tuple[Unit, Stream[Any], Stream[Any], Cell[Any]]:
    """A charm whose ``scan`` handler starts ``job`` as "scan" and whose ``stop`` cancels it."""
    unit = runtime.unit(space, "scanner")
    found = unit.cell("found", [])

    def scan(event: Any, *, found: Cell[Any]) -> None:
        found.push("scan requested")
        start_job(job, name="scan")
        if fail_handler:
            raise Boom("the handler failed after starting the job")

    def stop(event: Any) -> None:
        running = unit.jobs.get("scan")
        if running is not None:
            running.cancel()

    scan_stream = unit.handler("scan", scan, state={"found": found})
    stop_stream = unit.handler("stop", stop)
    return unit, scan_stream, stop_stream, found


async def test_job_runs_after_the_handler_commits_and_is_done(
    runtime: Runtime, space: SpaceDID
) -> None:
    gate = asyncio.Event()
    ran_with: list[JobContext] = []

    async def job(ctx: JobContext) -> None:
        ran_with.append(ctx)
        await gate.wait()
        async with ctx.runtime.edit():
            found.push("message 1")

    unit, scan, _, found = scanner(runtime, space, job)
    await unit.start()
    assert (await scan.send({})).ok
    await runtime.idle()
    assert status(runtime, unit, "scan")["status"] == "running"
    assert [ctx.name for ctx in ran_with] == ["scan"]
    assert ran_with[0].principal == runtime.principal
    gate.set()
    await runtime.idle(jobs=True)
    assert status(runtime, unit, "scan")["status"] == "done"
    assert found.get() == ["scan requested", "message 1"]


async def test_idle_with_jobs_waits_for_them(runtime: Runtime, space: SpaceDID) -> None:
    async def job(ctx: JobContext) -> None:
        for i in range(20):
            await asyncio.sleep(0)
            await ctx.progress({"step": i})

    unit, scan, _, _ = scanner(runtime, space, job)
    await unit.start()
    scan.send({})
    await runtime.idle(jobs=True)
    final = status(runtime, unit, "scan")
    assert final["status"] == "done"
    assert final["progress"] == {"step": 19}
    assert runtime.jobs.running == set()


async def test_failing_job_is_failed_with_the_message(
    runtime: Runtime, space: SpaceDID, errors: list[ErrorReport]
) -> None:
    async def job(ctx: JobContext) -> None:
        await asyncio.sleep(0)
        raise Boom("Gmail said 503")

    unit, scan, _, _ = scanner(runtime, space, job)
    await unit.start()
    scan.send({})
    await runtime.idle(jobs=True)
    final = status(runtime, unit, "scan")
    assert final["status"] == "failed"
    assert final["error"] == {"type": "Boom"}  # a user-code message is never stored
    [report] = errors
    assert report.where == "job scan" and isinstance(report.error, Boom)


async def test_cancelled_job_is_cancelled(runtime: Runtime, space: SpaceDID) -> None:
    async def job(ctx: JobContext) -> None:
        await asyncio.Event().wait()  # forever

    unit, scan, stop, _ = scanner(runtime, space, job)
    await unit.start()
    await scan.send({})
    await runtime.idle()
    assert status(runtime, unit, "scan")["status"] == "running"
    await stop.send({})
    await runtime.idle(jobs=True)
    assert status(runtime, unit, "scan")["status"] == "cancelled"


async def test_job_cancelled_before_it_began_is_cancelled(
    runtime: Runtime, space: SpaceDID
) -> None:
    """Regression: a job cancelled before its first step stayed "running" for ever,
    and ``idle(jobs=True)`` spun."""
    began: list[str] = []

    async def job(ctx: JobContext) -> None:
        began.append("began")
        await asyncio.Event().wait()

    unit, scan, stop, _ = scanner(runtime, space, job)
    await unit.start()
    scan.send({})  # "Scan" then "Stop" at once: both handlers run back to back
    stop.send({})
    await asyncio.wait_for(runtime.idle(jobs=True), 5)
    assert status(runtime, unit, "scan")["status"] == "cancelled"
    assert runtime.jobs.running == set()


async def test_restarting_a_job_by_name_cancels_the_old_one(
    runtime: Runtime, space: SpaceDID
) -> None:
    """Regression: the old job's "cancelled" overwrote the new job's "running"."""
    gates: list[asyncio.Event] = []

    async def job(ctx: JobContext) -> None:
        gate = asyncio.Event()
        gates.append(gate)
        await gate.wait()

    unit, scan, _, _ = scanner(runtime, space, job)
    await unit.start()
    await scan.send({})
    await runtime.idle()
    await scan.send({})
    await runtime.idle()
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(gates) == 2
    assert status(runtime, unit, "scan")["status"] == "running"
    gates[1].set()
    await runtime.idle(jobs=True)
    assert status(runtime, unit, "scan")["status"] == "done"


async def test_job_is_not_started_if_the_handler_aborts(runtime: Runtime, space: SpaceDID) -> None:
    began: list[str] = []

    async def job(ctx: JobContext) -> None:
        began.append("began")

    unit, scan, _, found = scanner(runtime, space, job, fail_handler=True)
    await unit.start()
    assert not (await scan.send({})).ok
    await runtime.idle(jobs=True)
    assert began == []
    assert status(runtime, unit, "scan") is None
    assert found.get() == []


async def test_job_can_call_its_own_charm(runtime: Runtime, space: SpaceDID) -> None:
    """Regression: a job inherited its handler's charm and transaction, so calling its
    own charm's stream was taken for a deadlock."""
    results: list[Any] = []

    async def job(ctx: JobContext) -> None:
        result = await record.call({"message": "m1"})
        results.append(result)
        record.send({"message": "m2"})

    unit, scan, _, found = scanner(runtime, space, job)

    def record_message(event: Any, *, found: Cell[Any]) -> None:
        found.push(event["message"])

    record = unit.handler("record", record_message, state={"found": found})
    await unit.start()
    scan.send({})
    await runtime.idle(jobs=True)
    assert [r.ok for r in results] == [True], results
    assert found.get() == ["scan requested", "m1", "m2"]
    assert status(runtime, unit, "scan")["status"] == "done"


async def test_job_writes_need_their_own_transaction(runtime: Runtime, space: SpaceDID) -> None:
    caught: list[BaseException] = []

    async def job(ctx: JobContext) -> None:
        try:
            found.push("outside any transaction")
        except TransactionRequiredError as e:
            caught.append(e)

    unit, scan, _, found = scanner(runtime, space, job)
    await unit.start()
    scan.send({})
    await runtime.idle(jobs=True)
    assert [type(e) for e in caught] == [TransactionRequiredError]
    assert found.get() == ["scan requested"]


async def test_a_restart_marks_running_jobs_interrupted(runtime: Runtime, space: SpaceDID) -> None:
    async def job(ctx: JobContext) -> None:
        await asyncio.Event().wait()

    unit, _, _, _ = scanner(runtime, space, job)
    await unit.start()
    async with runtime.edit():  # what a process that died mid-scan left behind
        Cell(runtime, unit.jobs_address).set(
            {"scan": {"status": "running", "started_at": 1.0}, "old": {"status": "done"}}
        )
    unit.stop()
    again, _, _, _ = scanner(runtime, space, job)
    assert again.id == unit.id
    await again.start()
    assert status(runtime, again, "scan") == {"status": "interrupted", "started_at": 1.0}
    assert status(runtime, again, "old") == {"status": "done"}


async def test_start_job_outside_a_handler_is_refused(runtime: Runtime) -> None:
    async def job(ctx: JobContext) -> None:
        pass

    with pytest.raises(TransactionRequiredError):
        start_job(job)


async def test_a_job_acts_for_whoever_started_it(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID, bob: Any
) -> None:
    """Regression: sends and edits from a job used the runtime's own user, so a job
    started by someone without WRITE could change data that person cannot."""
    from charmspace.storage import Capability

    runtime.storage.set_acl(space, runtime.principal, bob.did, Capability.WRITE)
    runtime.storage.set_acl(other_space, runtime.principal, bob.did, Capability.READ)
    target = runtime.unit(other_space, "ledger")
    entries = target.cell("entries", [])
    append = target.handler(
        "append", lambda event, *, entries: entries.push(event["line"]), state={"entries": entries}
    )
    await target.start()
    outcomes: list[Any] = []

    async def job(ctx: JobContext) -> None:
        outcomes.append(await append.call({"line": "from bob's job"}))
        try:
            async with ctx.runtime.edit():
                entries.push("edited by bob's job")
        except Exception as e:
            outcomes.append(e)

    unit, scan, _, _ = scanner(runtime, space, job)
    await unit.start()
    assert (await scan.send({}, principal=bob.did)).ok
    await runtime.idle(jobs=True)
    call_result, edit_error = outcomes
    assert not call_result.ok
    assert type(call_result.error).__name__ == "AuthorizationError"
    assert call_result.error.principal == bob.did
    assert type(edit_error).__name__ == "AuthorizationError"
    assert entries.get() == []


async def test_jobs_racing_on_one_counter_lose_no_update(runtime: Runtime, space: SpaceDID) -> None:
    """Bug: jobs change state through runtime.edit(), whose read-modify-write lost
    updates when the value written equalled what another job had just committed."""
    unit = runtime.unit(space, "tally")
    count = unit.cell("count", 0)
    acknowledged: list[int] = []

    async def tally(ctx: JobContext) -> None:
        for _ in range(30):
            try:
                async with ctx.runtime.edit():
                    seen = count.get()
                    await asyncio.sleep(0)
                    count.set(seen + 1)
                acknowledged.append(1)
            except ConflictError:
                pass

    def start(event: Any) -> None:
        for i in range(5):
            start_job(tally, name=f"tally {i}")

    go = unit.handler("start", start)
    await unit.start()
    assert (await go.send({})).ok
    await runtime.idle(jobs=True)
    assert count.get() == len(acknowledged) > 0


async def test_jobs_racing_read_modify_write_edits_lose_no_update(
    runtime: Runtime, space: SpaceDID
) -> None:
    """Jobs change state through short ``runtime.edit()`` transactions: ten jobs racing
    read-modify-write increments (an await between read and write) either commit or
    get ConflictError; the counter equals the number acknowledged (none lost)."""
    unit = runtime.unit(space, "racers")
    counter = unit.cell("counter", 0)
    acknowledged: list[int] = []

    async def race(ctx: JobContext) -> None:
        for _ in range(20):
            try:
                async with ctx.runtime.edit():
                    seen = counter.get()
                    await asyncio.sleep(0)
                    counter.set(seen + 1)
            except ConflictError:
                continue
            acknowledged.append(1)

    def start(event: Any) -> None:
        start_job(race, name=f"racer-{event['n']}")

    stream = unit.handler("start", start)
    await unit.start()
    for n in range(10):
        stream.send({"n": n})
    await runtime.idle(jobs=True)
    assert counter.get() == len(acknowledged)
    assert 0 < len(acknowledged) < 200
