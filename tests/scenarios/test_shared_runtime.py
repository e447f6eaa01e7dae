"""One runtime, two users: what Bob causes runs as Bob, what fails stays put, closing loses nothing.

Alice runs the runtime. She keeps a private diary in a space of her own and a
notice board in another, where Bob may write. Bob's events run the board's
handlers; whatever those handlers start — tasks included — acts for Bob and
never borrows Alice's rights. A charm that fails or hangs in one space does
not hold up another space, and closing the runtime finishes every space's
queued events (or refuses them clearly), each on memory and on SQLite.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import (
    AuthorizationError,
    CharmspaceError,
    StreamError,
    TransactionClosedError,
)
from charmspace.identity import Identity
from charmspace.runtime import Cell, ErrorReport, FakeClock, Stream
from charmspace.storage import Capability, Storage, open_storage
from charmspace.types import SpaceDID

ALICE = Identity.from_passphrase("shared runtime: alice")
BOB = Identity.from_passphrase("shared runtime: bob")
SERVICE = Identity.from_passphrase("shared runtime: service")

Open = Callable[[], Runtime]


@pytest.fixture
def open_runtime(storage_url: str) -> Iterator[Open]:
    """Opens Alice's runtime over one store, again and again (each open is a restart)."""
    shared: Storage | None = None
    if storage_url.startswith("memory"):
        shared = open_storage(storage_url, service=SERVICE.did)

    def open_() -> Runtime:
        return Runtime(
            shared if shared is not None else storage_url,
            identity=ALICE,
            service=SERVICE,
            clock=FakeClock(),
            random=random.Random(0),
            call_timeout=5,
        )

    yield open_


@pytest.fixture
async def runtime(open_runtime: Open) -> AsyncIterator[Runtime]:
    rt = open_runtime()
    yield rt
    await rt.close()


@pytest.fixture
def diary(runtime: Runtime) -> SpaceDID:
    """Alice's private space: nobody else may read or write it."""
    return runtime.create_space(name="diary")


@pytest.fixture
def board(runtime: Runtime) -> SpaceDID:
    """Alice's notice board: Bob may write it."""
    space = runtime.create_space(name="board")
    runtime.storage.set_acl(space, runtime.principal, BOB.did, Capability.WRITE)
    return space


def head(runtime: Runtime, space: SpaceDID) -> int:
    return runtime.storage.head(space, runtime.principal)


async def diary_charm(runtime: Runtime, diary: SpaceDID) -> tuple[Cell[Any], Stream[Any]]:
    unit = runtime.unit(diary, "diary")
    entries = unit.cell("entries", ["dear diary"])
    write = unit.handler(
        "write", lambda event, *, entries: entries.push(event["line"]), state={"entries": entries}
    )
    await unit.start()
    return entries, write


# --- what Bob causes runs as Bob ------------------------------------------------------------


async def test_a_task_bobs_handler_spawned_acts_as_bob_after_the_commit(
    runtime: Runtime, diary: SpaceDID, board: SpaceDID
) -> None:
    """Regression: a task a handler spawned with ``asyncio.create_task`` ran on after the
    handler committed as the runtime's own user, so Bob's event could make it read and
    write Alice's private diary. It acts for Bob, like the handler that spawned it."""
    entries, write_diary = await diary_charm(runtime, diary)
    before = head(runtime, diary)
    unit = runtime.unit(board, "board")
    notes = unit.cell("notes", [])
    outcomes: dict[str, Any] = {}
    tasks: list[asyncio.Task[None]] = []

    async def afterwards(notes: Cell[Any]) -> None:
        await asyncio.sleep(0)  # the handler has committed by now
        try:
            notes.push("written after the handler")
        except CharmspaceError as e:
            outcomes["handler's cell"] = e
        try:
            outcomes["diary read"] = entries.get()
        except CharmspaceError as e:
            outcomes["diary read"] = e
        try:
            async with runtime.edit():
                entries.push("written into Alice's diary")
        except CharmspaceError as e:
            outcomes["diary edit"] = e
        try:
            outcomes["diary send"] = write_diary.send({"line": "sent to Alice's diary"})
        except CharmspaceError as e:
            outcomes["diary send"] = e
        async with runtime.edit() as tx:
            runtime.cell(board, unit.cell("notes").address.id).push("edited by the task")
        outcomes["board edit"] = tx.result

    def post(event: Any, *, notes: Cell[Any]) -> None:
        notes.push(event["text"])
        tasks.append(asyncio.create_task(afterwards(notes)))

    stream = unit.handler("post", post, state={"notes": notes})
    await unit.start()
    assert (await stream.send({"text": "hello"}, principal=BOB.did)).ok
    await asyncio.gather(*tasks)
    await runtime.idle()

    assert isinstance(outcomes["handler's cell"], TransactionClosedError)
    for what in ("diary read", "diary edit", "diary send"):  # Bob may not even read it
        assert isinstance(outcomes[what], AuthorizationError), what
        assert outcomes[what].principal == BOB.did
    assert entries.get() == ["dear diary"]
    assert head(runtime, diary) == before
    assert outcomes["board edit"].ok  # what Bob may do, the task does, as Bob
    assert notes.get() == ["hello", "edited by the task"]
    last = runtime.storage.log(board, ALICE.did)[-1]
    assert (last.seq, last.principal) == (outcomes["board edit"].seq, BOB.did)


# --- one space's trouble stays in that space ------------------------------------------------


async def test_a_failing_or_hanging_charm_in_one_space_never_stalls_another(
    runtime: Runtime, diary: SpaceDID, board: SpaceDID
) -> None:
    """The board's handler raises, another hangs, its derived values raise (sync and
    async): the diary's events still commit and its derived value keeps up."""
    stuck = asyncio.Event()
    errors: list[ErrorReport] = []
    runtime.on_error(errors.append)

    broken = runtime.unit(board, "broken board")
    a = broken.cell("a", 0)

    def fail(event: Any, *, a: Cell[int]) -> None:
        a.set(a.get() + 1)
        raise RuntimeError("the board's handler failed")

    async def hang(event: Any, *, a: Cell[int]) -> None:
        await stuck.wait()

    async def fail_later(a: int) -> int:
        await asyncio.sleep(0)
        if a:
            raise RuntimeError("the board's async derived value failed")
        return a

    failing = broken.handler("fail", fail, state={"a": a})
    hanging = runtime.unit(board, "hung board")
    hung = hanging.handler("hang", hang, state={"a": a})
    broken.derive("inverse", lambda a: 1 / (a - 1), inputs=[a])
    broken.derive("later", fail_later, inputs=[a])
    await broken.start()
    await hanging.start()

    count_unit = runtime.unit(diary, "diary counter")
    count = count_unit.cell("count", 0)
    doubled = count_unit.derive("doubled", lambda n: n * 2, inputs=[count])
    bump = count_unit.handler(
        "bump", lambda event, *, count: count.set(count.get() + 1), state={"count": count}
    )
    await count_unit.start()

    hanging_delivery = hung.send({})
    async with runtime.edit():
        a.set(1)  # both of the board's derived values fail on this
    failures = [failing.send({}) for _ in range(3)]
    bumps = [bump.send({}) for _ in range(10)]
    results = await asyncio.wait_for(asyncio.gather(*bumps), 5)
    await asyncio.wait_for(runtime.host(diary).propagator.settled(), 5)

    assert all(r.ok for r in results)
    assert (count.get(), doubled.get()) == (10, 20)
    assert not hanging_delivery.done
    assert [(await f).ok for f in failures] == [False] * 3
    assert a.get() == 1  # the failing handler wrote nothing
    assert {r.where for r in errors} >= {"fail", "inverse", "later"}
    stuck.set()
    assert (await hanging_delivery).ok
    await runtime.idle()


# --- closing --------------------------------------------------------------------------------


Counter = tuple[Stream[Any], Cell[int], Cell[int]]


async def counters(runtime: Runtime, spaces: list[SpaceDID]) -> list[Counter]:
    """A counter with a derived double in each space, whose handler awaits before it writes."""
    made = []
    for space in spaces:
        unit = runtime.unit(space, "counter")
        count = unit.cell("count", 0)
        doubled = unit.derive("doubled", lambda n: n * 2, inputs=[count])

        async def bump(event: Any, *, count: Cell[int]) -> None:
            await asyncio.sleep(0.001)
            count.set(count.get() + 1)

        made.append((unit.handler("bump", bump, state={"count": count}), count, doubled))
        await unit.start()
    return made


async def test_closing_commits_the_events_every_space_had_queued(
    open_runtime: Open, tmp_path: Path
) -> None:
    """Events queued in several spaces when ``close()`` is called all run and commit,
    and a new runtime on the same store finds them, derived values included."""
    runtime = open_runtime()
    spaces = [runtime.create_space(name=name) for name in ("one", "two", "three")]
    made = await counters(runtime, spaces)
    deliveries = [stream.send({}) for stream, _, _ in made for _ in range(10)]
    await runtime.close()

    assert all(d.done and d.result is not None and d.result.ok for d in deliveries)
    again = open_runtime()
    try:
        for _, count, doubled in made:
            seen = (Cell(again, count.address).get(), Cell(again, doubled.address).get())
            assert seen == (10, 20), count.address.space
    finally:
        await again.close()


async def test_events_still_queued_when_close_gives_up_are_refused_not_left_waiting(
    open_runtime: Open,
) -> None:
    runtime = open_runtime()
    space = runtime.create_space(name="stuck")
    unit = runtime.unit(space, "stuck")
    count = unit.cell("count", 0)
    gate = asyncio.Event()

    async def bump(event: Any, *, count: Cell[int]) -> None:
        if event.get("wait"):
            await gate.wait()
        count.set(count.get() + 1)

    stream = unit.handler("bump", bump, state={"count": count})
    await unit.start()
    running = stream.send({"wait": True})
    queued = [stream.send({}) for _ in range(3)]
    await asyncio.sleep(0.01)
    await runtime.close(drain=0.05)
    await asyncio.sleep(0.01)
    try:
        assert all(d.done for d in queued)
        assert all(d.result is not None and not d.result.ok for d in queued)
        assert all(isinstance(d.result.error, StreamError) for d in queued if d.result)
        assert "closed before" in str(queued[0].result.error if queued[0].result else "")
        assert running.result is not None and not running.result.ok  # cancelled, told why
        assert "closed while" in str(running.result.error)
    finally:
        gate.set()
        await asyncio.sleep(0.01)


async def test_an_event_sent_after_close_is_refused(open_runtime: Open) -> None:
    """Regression: in memory a closed runtime still ran and committed events sent to it
    (on SQLite they failed on the closed files): both refuse them, saying why."""
    runtime = open_runtime()
    [(stream, count, _)] = await counters(runtime, [runtime.create_space(name="closed")])
    await runtime.close()
    with pytest.raises(StreamError, match="The runtime is closed"):
        stream.send({})
    with pytest.raises(StreamError, match="The runtime is closed"):
        await stream.call({})
    again = open_runtime()
    try:
        assert Cell(again, count.address).get() == 0
    finally:
        await again.close()


async def test_an_on_commit_callback_never_acts_for_whoever_shared_the_commit_group(
    runtime: Runtime, diary: SpaceDID, board: SpaceDID
) -> None:
    """On SQLite the commits of one loop turn are made durable together, by one flush.
    It must not run in the context of whichever handler committed first: Alice's
    ``on_commit`` callback, which that flush finishes, would then act for Bob."""
    entries, write_diary = await diary_charm(runtime, diary)
    bobs, alices = runtime.unit(board, "bob's notes"), runtime.unit(board, "alice's notes")
    note = lambda event, *, notes: notes.push(event["text"])  # noqa: E731
    bob_posts = bobs.handler("post", note, state={"notes": bobs.cell("notes", [])})
    alice_posts = alices.handler("post", note, state={"notes": alices.cell("notes", [])})
    await bobs.start()
    await alices.start()
    followed: list[Any] = []

    def then_write_the_diary(result: Any) -> None:
        followed.append(write_diary.send({"line": "posted on the board"}))

    bobs_post = bob_posts.send({"text": "bob's"}, principal=BOB.did)  # commits first
    alices_post = alice_posts.send({"text": "alice's"}, on_commit=then_write_the_diary)
    assert (await bobs_post).ok and (await alices_post).ok
    [diary_write] = followed
    assert (await diary_write).ok
    assert entries.get() == ["dear diary", "posted on the board"]


async def test_an_on_commit_callback_of_bobs_event_acts_as_bob_when_a_flush_finishes_it(
    runtime: Runtime, diary: SpaceDID, board: SpaceDID
) -> None:
    """Regression: the flush that makes a group durable runs in a context of its own;
    the answers it gives must still run as each event's submitter. Run in the flush's
    context, Bob's ``on_commit`` callback acted for the runtime's user, Alice, and
    could write her private diary."""
    entries, write_diary = await diary_charm(runtime, diary)
    bobs = runtime.unit(board, "bob's notes")
    note = lambda event, *, notes: notes.push(event["text"])  # noqa: E731
    bob_posts = bobs.handler("post", note, state={"notes": bobs.cell("notes", [])})
    await bobs.start()
    outcomes: list[Any] = []

    def then_write_the_diary(result: Any) -> None:
        try:
            outcomes.append(write_diary.send({"line": "bob was here"}))
        except CharmspaceError as e:
            outcomes.append(e)

    posted = bob_posts.send({"text": "bob's"}, principal=BOB.did, on_commit=then_write_the_diary)
    assert (await posted).ok
    await runtime.idle()
    [outcome] = outcomes
    if not isinstance(outcome, CharmspaceError):
        result = await outcome
        assert not result.ok
        outcome = result.error
    assert isinstance(outcome, AuthorizationError)
    assert outcome.principal == BOB.did
    assert entries.get() == ["dear diary"]


async def test_an_on_commit_callback_never_acts_for_a_reader_that_settled_its_commit(
    runtime: Runtime, diary: SpaceDID, board: SpaceDID
) -> None:
    """A handler that awaits and reads what a pending grouped commit wrote makes the
    group durable first; the group's callbacks must not run in the reader's handler."""
    entries, write_diary = await diary_charm(runtime, diary)
    alices = runtime.unit(board, "alice's notes")
    notes = alices.cell("notes", [])
    post = alices.handler(
        "post", lambda event, *, notes: notes.push(event["text"]), state={"notes": notes}
    )
    bobs = runtime.unit(board, "bob's reader")
    seen = bobs.cell("seen", None)

    async def read_notes(event: Any, *, notes: Cell[Any], seen: Cell[Any]) -> None:
        seen.set(notes.get())  # awaits, so reads durable values only: settles alice's group

    read = bobs.handler("read", read_notes, state={"notes": notes, "seen": seen})
    await alices.start()
    await bobs.start()
    followed: list[Any] = []

    def then_write_the_diary(result: Any) -> None:
        followed.append(write_diary.send({"line": "posted on the board"}))

    alices_post = post.send({"text": "alice's"}, on_commit=then_write_the_diary)
    bobs_read = read.send({}, principal=BOB.did)  # reads the notes alice's post wrote
    assert (await alices_post).ok and (await bobs_read).ok
    await runtime.idle()
    assert len(followed) == 1 and (await followed[0]).ok
    assert entries.get() == ["dear diary", "posted on the board"]
