"""Transactions: all or nothing, read-your-writes, one writer space, validated reads, ACLs."""

from __future__ import annotations

import asyncio
import random
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import (
    AuthorizationError,
    ConflictError,
    TransactionClosedError,
    WriteIsolationError,
)
from charmspace.identity import Identity
from charmspace.runtime import Cell, CommitResult, Transaction, link_to
from charmspace.storage import Capability, Storage, entity_id
from charmspace.testing import ManualFlush
from charmspace.types import SpaceDID
from charmspace.values import getpath

PASSPHRASE = "runtime suite: user"  # the conftest's USER, for a runtime in another process
USER = Identity.from_passphrase(PASSPHRASE)
SERVICE = Identity.from_passphrase("runtime suite: service")


class Boom(Exception):
    pass


def doc(runtime: Runtime, space: SpaceDID, name: str) -> Cell[Any]:
    return runtime.cell(space, entity_id({"test": name}))


async def put(cell: Cell[Any], value: Any) -> None:
    async with cell.runtime.edit():
        cell.set(value)


def head(runtime: Runtime, space: SpaceDID) -> int:
    return runtime.storage.head(space, runtime.principal)


# --- commit and abort --------------------------------------------------------------------


async def test_edit_commits_on_success(runtime: Runtime, space: SpaceDID) -> None:
    a, b = doc(runtime, space, "a"), doc(runtime, space, "b")
    async with runtime.edit() as tx:
        a.set(1)
        b.set({"x": 2})
    assert (a.get(), b.get()) == (1, {"x": 2})
    assert tx.state == "committed"
    assert tx.result == CommitResult(True, space, head(runtime, space))


async def test_edit_aborts_on_exception_and_reraises_it(runtime: Runtime, space: SpaceDID) -> None:
    a, b = doc(runtime, space, "a"), doc(runtime, space, "b")
    await put(a, 1)
    before = head(runtime, space)
    error = Boom("the original")
    with pytest.raises(Boom) as info:
        async with runtime.edit() as tx:
            a.set(2)
            b.set(3)
            raise error
    assert info.value is error
    assert tx.state == "aborted"
    assert (a.get(), b.get()) == (1, None)
    assert head(runtime, space) == before


async def test_plain_with_works_too(runtime: Runtime, space: SpaceDID) -> None:
    a = doc(runtime, space, "a")
    with runtime.edit():
        a.set("sync")
    assert a.get() == "sync"
    with pytest.raises(Boom), runtime.edit():
        a.set("lost")
        raise Boom
    assert a.get() == "sync"


async def test_read_your_writes(runtime: Runtime, space: SpaceDID) -> None:
    a = doc(runtime, space, "a")
    await put(a, {"n": 1})
    async with runtime.edit():
        a["n"].set(2)
        a["m"].set(3)
        assert a.get() == {"n": 2, "m": 3}
        assert a["n"].get() == 2
        assert runtime.read(a.address) == {"n": 1}  # others see the committed value
    assert a.get() == {"n": 2, "m": 3}


async def test_empty_transaction_commits_trivially(runtime: Runtime, space: SpaceDID) -> None:
    a = doc(runtime, space, "a")
    await put(a, 1)
    before = head(runtime, space)
    async with runtime.edit() as tx:
        assert a.get() == 1
    assert tx.result == CommitResult(True, None, 0, None)
    assert tx.result.ok and tx.result.seq == 0
    assert head(runtime, space) == before


async def test_commit_result_fields(runtime: Runtime, space: SpaceDID) -> None:
    a = doc(runtime, space, "a")
    await put(a, 1)
    async with runtime.edit() as tx:
        a.set(2)
    result = tx.result
    assert result is not None
    assert result.ok is True
    assert result.space == space
    assert result.seq == head(runtime, space) == 2
    assert result.error is None


async def test_a_committed_transaction_is_closed(runtime: Runtime, space: SpaceDID) -> None:
    a = doc(runtime, space, "a")
    async with runtime.edit() as tx:
        a.set(1)
    with pytest.raises(TransactionClosedError, match="committed"):
        tx.write(a.address, 2)
    with pytest.raises(TransactionClosedError):
        tx.commit()


# --- one writer space --------------------------------------------------------------------


async def test_second_space_write_is_refused(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID
) -> None:
    mine, theirs = doc(runtime, space, "log"), doc(runtime, other_space, "auth")
    with pytest.raises(WriteIsolationError) as info:
        async with runtime.edit():
            mine.push("refreshing")
            theirs.set({"token": "new"})
    error = info.value
    assert error.open == space
    assert error.requested == other_space
    message = str(error)
    assert space in message and other_space in message
    assert "stream" in message
    assert mine.get() is None and theirs.get() is None


async def test_refused_write_is_not_journaled(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID
) -> None:
    mine, theirs = doc(runtime, space, "log"), doc(runtime, other_space, "auth")
    await put(theirs, {"token": "old"})
    theirs_head = head(runtime, other_space)
    async with runtime.edit() as tx:
        mine.push("refreshing")
        with pytest.raises(WriteIsolationError):
            theirs.set({"token": "new"})
        assert theirs.get() == {"token": "old"}
        mine.push("refused, carrying on")
    assert tx.result is not None and tx.result.space == space
    assert mine.get() == ["refreshing", "refused, carrying on"]
    assert theirs.get() == {"token": "old"}
    assert head(runtime, other_space) == theirs_head
    entry = runtime.storage.log(space, runtime.principal)[-1]
    assert entry.ids == (mine.address.id,)


async def test_the_first_write_fixes_the_writer_space(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID
) -> None:
    mine, theirs = doc(runtime, space, "log"), doc(runtime, other_space, "auth")
    with pytest.raises(WriteIsolationError) as info:
        async with runtime.edit():
            theirs.set({"token": "new"})
            mine.push("x")
    assert (info.value.open, info.value.requested) == (other_space, space)


async def test_redirect_into_another_space_counts_as_that_space(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID
) -> None:
    mine, theirs = doc(runtime, space, "log"), doc(runtime, other_space, "auth")
    bound = doc(runtime, space, "bound")
    async with runtime.edit() as tx:
        tx.write(bound.address, link_to(theirs.address, redirect=True))
    with pytest.raises(WriteIsolationError) as info:
        async with runtime.edit():
            mine.push("x")
            bound.set({"token": "new"})
    assert info.value.requested == other_space
    assert theirs.get() is None


async def test_a_cell_read_through_a_link_is_written_where_the_link_points_at_the_write(
    runtime: Runtime, space: SpaceDID
) -> None:
    """A write reuses the walk of the read before it (a handler's get-then-set),
    but not once a write in between moved the link."""
    x, y, holder = doc(runtime, space, "x"), doc(runtime, space, "y"), doc(runtime, space, "holder")
    await put(x, 1)
    await put(y, 2)
    await put(holder, {"v": link_to(x.address, redirect=True)})
    tx = Transaction(runtime, runtime.principal, home=space)
    v = Cell(runtime, holder.address.key("v"), tx)
    assert v.get() == 1
    v.set(10)
    assert v.get() == 10
    tx.write_doc(space, holder.address.id, {"v": link_to(y.address, redirect=True)})
    v.set(20)
    assert v.get() == 20
    tx.commit()
    assert (x.get(), y.get()) == (10, 20)


async def test_an_equal_write_elsewhere_is_no_write_at_all(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID
) -> None:
    mine, theirs = doc(runtime, space, "log"), doc(runtime, other_space, "auth")
    await put(theirs, {"token": "same"})
    async with runtime.edit():
        mine.push("x")
        theirs.set({"token": "same"})
    assert mine.get() == ["x"]


# --- reads: validated in the writer space, read-committed elsewhere ---------------------


async def test_writer_space_reads_are_validated_at_commit(
    runtime: Runtime, space: SpaceDID
) -> None:
    counter, total = doc(runtime, space, "counter"), doc(runtime, space, "total")
    await put(counter, {"n": 1})
    with pytest.raises(ConflictError) as info:
        async with runtime.edit():
            seen = counter.get()
            await put(counter, {"n": 5, "note": "secret-value"})  # another edit commits
            total.set(seen["n"] + 1)
    error = info.value
    assert (error.space, error.id) == (space, counter.address.id)
    assert (error.expected_seq, error.actual_seq) == (1, 2)
    assert "secret-value" not in str(error)  # no values in conflict messages
    assert total.get() is None
    assert counter.get() == {"n": 5, "note": "secret-value"}


async def test_writes_without_reads_of_a_changed_document_commit(
    runtime: Runtime, space: SpaceDID
) -> None:
    counter, other = doc(runtime, space, "counter"), doc(runtime, space, "other")
    await put(counter, 1)
    async with runtime.edit():
        other.set("unrelated")
        await put(counter, 5)
    assert (counter.get(), other.get()) == (5, "unrelated")


async def test_other_space_reads_are_read_committed(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID
) -> None:
    mine, theirs = doc(runtime, space, "log"), doc(runtime, other_space, "auth")
    await put(theirs, {"token": "old"})
    async with runtime.edit() as tx:
        assert theirs.get() == {"token": "old"}
        mine.push("saw old")
        await put(theirs, {"token": "new"})  # someone else commits in their space
        assert theirs.get() == {"token": "new"}
        mine.push("saw new")
    assert tx.result is not None and tx.result.ok
    assert mine.get() == ["saw old", "saw new"]


async def test_other_space_reads_before_the_first_write_are_not_validated(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID
) -> None:
    mine, theirs = doc(runtime, space, "log"), doc(runtime, other_space, "auth")
    await put(theirs, {"token": "old"})
    async with runtime.edit():
        token = theirs.get()["token"]
        await put(theirs, {"token": "new"})
        mine.set(token)
    assert mine.get() == "old"


# --- access control ----------------------------------------------------------------------


async def test_principal_without_write_gets_authorization_error(
    runtime: Runtime, space: SpaceDID, bob: Identity
) -> None:
    a = doc(runtime, space, "a")
    await put(a, 1)
    runtime.storage.set_acl(space, runtime.principal, bob.did, Capability.READ)
    before = head(runtime, space)
    with pytest.raises(AuthorizationError) as info:
        async with runtime.edit(bob.did):
            assert a.get() == 1
            a.set(2)
    assert info.value.principal == bob.did
    assert info.value.space == space
    assert info.value.needed == "WRITE"
    assert a.get() == 1
    assert head(runtime, space) == before


async def test_principal_without_read_cannot_even_read(
    runtime: Runtime, space: SpaceDID, bob: Identity
) -> None:
    a = doc(runtime, space, "a")
    await put(a, "secret")
    with pytest.raises(AuthorizationError) as info:
        async with runtime.edit(bob.did):
            a.get()
    assert info.value.needed == "READ"
    assert "secret" not in str(info.value)


async def test_principal_with_write_commits_as_itself(
    runtime: Runtime, space: SpaceDID, bob: Identity
) -> None:
    a = doc(runtime, space, "a")
    runtime.storage.set_acl(space, runtime.principal, bob.did, Capability.WRITE)
    async with runtime.edit(bob.did):
        a.set("bob was here")
    assert a.get() == "bob was here"
    assert runtime.storage.log(space, runtime.principal)[-1].principal == bob.did


# --- on SQLite too -------------------------------------------------------------------------


async def test_conflict_and_abort_on_every_backend(runtime: Runtime) -> None:
    runtime = runtime
    space = runtime.create_space(name="home")
    counter, total = doc(runtime, space, "counter"), doc(runtime, space, "total")
    await put(counter, 1)
    with pytest.raises(ConflictError):
        async with runtime.edit():
            counter.get()
            await put(counter, 2)
            total.set(1)
    with pytest.raises(Boom):
        async with runtime.edit():
            total.set(2)
            raise Boom
    assert (counter.get(), total.get()) == (2, None)
    assert head(runtime, space) == 2


# --- no lost updates: a write that turned out equal still validates its reads --------------


async def increment(cell: Cell[Any]) -> bool:
    """One read-modify-write increment with an await in between; False on conflict."""
    try:
        async with cell.runtime.edit():
            seen = cell.get()
            await asyncio.sleep(0)
            cell.set(seen + 1)
    except ConflictError:
        return False
    return True


async def test_racing_increments_lose_no_update(runtime: Runtime) -> None:
    """Bug: 20 tasks x 50 read-modify-write increments in runtime.edit() were all
    acknowledged but the counter ended at 50: a write equal to a fresh re-read (the
    value another task had just committed) was dropped as a no-op, and a transaction
    without writes committed without validating its reads."""
    counter = doc(runtime, runtime.create_space(name="home"), "counter")
    await put(counter, 0)

    async def worker() -> int:
        return sum([await increment(counter) for _ in range(50)])

    acknowledged = sum(await asyncio.gather(*(worker() for _ in range(20))))
    assert counter.get() == acknowledged
    assert 0 < acknowledged < 1000


async def test_an_equal_write_over_a_changed_read_conflicts(
    runtime: Runtime, space: SpaceDID
) -> None:
    counter = doc(runtime, space, "counter")
    await put(counter, 1)
    with pytest.raises(ConflictError) as info:
        async with runtime.edit():
            seen = counter.get()
            await put(counter, 2)  # another edit commits the very value we will write
            counter.set(seen + 1)
    assert (info.value.expected_seq, info.value.actual_seq) == (1, 2)


async def test_an_equal_write_over_an_unchanged_read_still_writes_nothing(
    runtime: Runtime, space: SpaceDID
) -> None:
    counter = doc(runtime, space, "counter")
    await put(counter, 1)
    async with runtime.edit() as tx:
        counter.set(counter.get())
    assert tx.result is not None and tx.result.seq == 0
    assert head(runtime, space) == 1


# SQLite only: two connections to one directory is what the next two tests are about.
async def test_two_runtimes_on_one_sqlite_directory_lose_no_update(tmp_path: Path) -> None:
    """Bug: two Storage/Runtime objects on one SQLite directory (as two processes)
    lost hundreds of racing increments without a ConflictError."""
    url = f"sqlite:///{tmp_path / 'store'}"
    first = Runtime(url, identity=USER, service=SERVICE, random=random.Random(0))
    second = Runtime(url, identity=USER, service=SERVICE, random=random.Random(1))
    space = first.create_space(name="home")
    await put(doc(first, space, "counter"), 0)

    async def worker(runtime: Runtime) -> int:
        return sum([await increment(doc(runtime, space, "counter")) for _ in range(100)])

    counts = await asyncio.gather(*(worker(rt) for rt in (first, second) for _ in range(5)))
    assert doc(first, space, "counter").get() == sum(counts)
    await first.close()
    await second.close()


INCREMENTS = """
import asyncio, sys
from charmspace.errors import ConflictError
from charmspace.identity import Identity
from charmspace.runtime import Runtime
from charmspace.storage import entity_id

async def main() -> None:
    runtime = Runtime(sys.argv[1], identity=Identity.from_passphrase(sys.argv[2]))
    counter = runtime.cell(sys.argv[3], entity_id({"test": "counter"}))
    print("ready", flush=True)
    sys.stdin.readline()  # start together

    async def worker() -> int:
        done = 0
        for _ in range(int(sys.argv[4])):
            try:
                async with runtime.edit():
                    seen = counter.get()
                    await asyncio.sleep(0)
                    counter.set(seen + 1)
                done += 1
            except ConflictError:
                pass
        return done

    done = sum(await asyncio.gather(*(worker() for _ in range(5))))
    await runtime.close()
    print(done)

asyncio.run(main())
"""


async def test_two_processes_on_one_sqlite_directory_lose_no_update(tmp_path: Path) -> None:
    """The same race across real processes: every acknowledged increment is counted."""
    url = f"sqlite:///{tmp_path / 'store'}"
    runtime = Runtime(url, identity=USER, service=SERVICE)
    space = runtime.create_space(name="home")
    counter = doc(runtime, space, "counter")
    await put(counter, 0)
    script = tmp_path / "increments.py"
    script.write_text(INCREMENTS)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(script), url, PASSPHRASE, space, "100", stdin=PIPE, stdout=PIPE
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and await p.stdout.readline() == b"ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        await p.stdin.drain()

    async def worker() -> int:
        return sum([await increment(counter) for _ in range(100)])

    ours = sum(await asyncio.gather(*(worker() for _ in range(5))))
    outputs = [await p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    theirs = sum(int(out.decode()) for out, _ in outputs)
    assert counter.get() == ours + theirs
    await runtime.close()


# --- rows ----------------------------------------------------------------------------


async def test_rows_commit_with_the_documents_and_read_back_in_the_transaction(
    runtime: Runtime, space: SpaceDID
) -> None:
    a = doc(runtime, space, "a")
    async with runtime.edit() as tx:
        a.set(1)
        tx.write_row(space, "box", "k", {"n": 1})
        mine = tx.read_row(space, "box", "k")
        assert mine is not None and (mine.value, mine.principal) == ({"n": 1}, runtime.principal)
    row = runtime.storage.row(space, "box", "k", runtime.principal)
    assert row is not None and row.value == {"n": 1}
    assert [e.seq for e in runtime.storage.log(space, runtime.principal)] == [tx.result.seq]  # type: ignore[union-attr]


async def test_a_transaction_of_rows_only_commits_without_a_seq(
    runtime: Runtime, space: SpaceDID
) -> None:
    async with runtime.edit() as tx:
        tx.write_row(space, "box", "k", 1)
    assert tx.result == CommitResult(True, space, 0)
    assert head(runtime, space) == 0
    assert runtime.storage.row(space, "box", "k", runtime.principal) is not None


async def test_an_aborted_transaction_writes_no_row(runtime: Runtime, space: SpaceDID) -> None:
    with pytest.raises(Boom):
        async with runtime.edit() as tx:
            tx.write_row(space, "box", "k", 1)
            raise Boom
    assert runtime.storage.row(space, "box", "k", runtime.principal) is None


async def test_a_row_in_a_second_space_is_refused(runtime: Runtime, space: SpaceDID) -> None:
    other = runtime.create_space(name="other rows")
    async with runtime.edit() as tx:
        doc(runtime, space, "a").set(1)
        with pytest.raises(WriteIsolationError):
            tx.write_row(other, "box", "k", 1)
    assert runtime.storage.row(other, "box", "k", runtime.principal) is None


async def test_a_row_read_that_changed_before_the_commit_conflicts(
    runtime: Runtime, space: SpaceDID
) -> None:
    async with runtime.edit() as tx:
        tx.write_row(space, "box", "k", 1)
    with pytest.raises(ConflictError):
        async with runtime.edit() as tx:
            assert tx.read_row(space, "box", "k") is not None
            async with runtime.edit() as meanwhile:
                meanwhile.write_row(space, "box", "k", 2)
            tx.write_row(space, "box", "k", 3)
    row = runtime.storage.row(space, "box", "k", runtime.principal)
    assert row is not None and row.value == 2


# --- a commit is seen only once it is durable -------------------------------------------


async def _pending_handler_commit(
    runtime: Runtime, space: SpaceDID
) -> tuple[Cell[int], Any, ManualFlush, int]:
    """A counter whose handler set 1, applied but (on SQLite) not durable; and the head before."""
    unit = runtime.unit(space, "durable counter")
    value = unit.cell("value", 0)

    def set_one(_event: Any, *, value: Cell[int]) -> None:
        value.set(1)

    stream = unit.handler("set", set_one, state={"value": value})
    await unit.start()
    await runtime.idle()
    runtime.storage.flush_scheduler = manual = ManualFlush()
    head = runtime.storage.head(space, USER.did)
    delivery = stream.send({})
    for _ in range(5):
        await asyncio.sleep(0)
    return value, delivery, manual, head


async def test_a_handler_commit_is_seen_by_others_only_once_durable(
    runtime: Runtime, space: SpaceDID
) -> None:
    value, delivery, manual, head = await _pending_handler_commit(runtime, space)
    storage, address = runtime.storage, value.address
    if storage.backend.batches:  # applied, validated against, but not seen yet
        assert storage.head(space, USER.did) == head
        assert not delivery.done  # the writer's own wait is not over either
        rev = storage.read(space, address.id, USER.did)
        assert getpath(rev.value, address.path) == 0 and rev.seq <= head
        assert storage.log(space, USER.did, since=head) == []
        manual.run()
    result = await delivery
    assert result.ok
    assert storage.head(space, USER.did) == result.seq == head + 1
    assert [e.seq for e in storage.log(space, USER.did, since=head)] == [head + 1]
    assert value.get() == 1


async def test_a_call_answers_only_once_the_handlers_commit_is_durable(
    runtime: Runtime, space: SpaceDID
) -> None:
    unit = runtime.unit(space, "durable caller")
    value = unit.cell("value", 0)
    stream = unit.handler("set", lambda _event, *, value: value.set(1), state={"value": value})
    await unit.start()
    await runtime.idle()
    runtime.storage.flush_scheduler = manual = ManualFlush()
    head = runtime.storage.head(space, USER.did)
    calling = asyncio.create_task(stream.call({}))
    for _ in range(5):
        await asyncio.sleep(0)
    if runtime.storage.backend.batches:  # applied, not durable: the caller still waits
        assert not calling.done()
        assert runtime.storage.head(space, USER.did) == head
        manual.run()
    result = await asyncio.wait_for(calling, 5)
    assert result.ok and result.seq == head + 1
    assert runtime.storage.head(space, USER.did) == head + 1


async def test_another_runtime_on_the_same_store_never_reads_a_pending_group(
    lasting_store: str | Storage,
) -> None:
    """A second runtime (on SQLite: another connection, as another process has) reads
    a handler's write only once its group's COMMIT made it durable, never before."""
    first = Runtime(lasting_store, identity=USER, service=SERVICE, random=random.Random(0))
    second = Runtime(lasting_store, identity=USER, service=SERVICE, random=random.Random(1))
    try:
        space = first.create_space(name="home")
        value, delivery, manual, head = await _pending_handler_commit(first, space)
        seen = Cell(second, value.address).get()
        durable = first.storage.durable_head(space)
        assert (seen, durable) in {(0, head), (1, head + 1)}  # never 1 while not durable
        if first.storage.backend.batches:
            assert (seen, durable) == (0, head) and not delivery.done
            async with second.edit():  # nor inside a transaction of its own
                assert Cell(second, value.address).get() == 0
        manual.run()
        assert (await delivery).ok
        assert Cell(second, value.address).get() == 1
    finally:
        await second.close()
        await first.close()


async def test_a_transaction_never_reads_a_value_that_is_not_durable(
    runtime: Runtime, space: SpaceDID
) -> None:
    """It makes the pending group durable first: an older value would only conflict."""
    value, delivery, _manual, head = await _pending_handler_commit(runtime, space)
    async with runtime.edit():
        assert value.get() == 1
        # the value it read was durable when it read it
        assert runtime.storage.head(space, USER.did) == head + 1
    assert (await delivery).ok


async def test_a_read_that_raced_a_pending_commit_conflicts_and_runs_again(
    runtime: Runtime, space: SpaceDID
) -> None:
    """Commits are validated against pending ones: two increments never lose one."""
    unit = runtime.unit(space, "racing counter")
    value = unit.cell("value", 0)
    gate = asyncio.Event()
    runs: list[int] = []

    async def slow_increment(_event: Any, *, value: Cell[int]) -> None:
        seen = value.get()
        runs.append(seen)
        await gate.wait()
        value.set(seen + 1)

    def increment(_event: Any, *, value: Cell[int]) -> None:
        value.set(value.get() + 1)

    slow = unit.handler("slow", slow_increment, state={"value": value})
    other = runtime.unit(space, "another writer")  # a charm of its own: not queued behind slow
    fast = other.handler("fast", increment, state={"value": value})
    await unit.start()
    await other.start()
    runtime.storage.flush_scheduler = manual = ManualFlush()
    slow_call = asyncio.create_task(slow.call({}))
    await asyncio.sleep(0.01)
    fast.send({})
    await asyncio.sleep(0.01)  # fast's commit is applied; on SQLite not durable yet
    gate.set()
    while not slow_call.done():
        manual.run()
        await asyncio.sleep(0.001)
    result = slow_call.result()
    manual.run()
    assert result.ok and value.get() == 2
    assert runs[0] == 0 and runs[-1] == 1  # ran again after the conflict, on the durable value
