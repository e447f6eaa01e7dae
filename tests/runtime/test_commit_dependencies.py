"""Commit dependencies: a handler that does not await may build on a pending commit.

On SQLite, the commits of one loop turn are made durable together (group
commit). A synchronous handler may read what a commit of its own space still
in that group wrote, so a charm's queue of events shares one ``COMMIT``. It
answers no one before its own commit is durable, and it fails if the group
does. A handler that awaits reads durable values only: what it does with them
(I/O) may be seen outside at once.

Memory has no groups (every commit is durable when made), so these tests run
on SQLite only; the behaviour they guard does not exist on memory.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import DiskFullError
from charmspace.identity import Identity
from charmspace.runtime import Cell, Transaction
from charmspace.runtime.outbox import outbox_box
from charmspace.storage import open_storage
from charmspace.storage.backends.sqlite import SQLiteBackend
from charmspace.testing import ManualFlush
from charmspace.types import SpaceDID
from charmspace.values import getpath

USER = Identity.from_passphrase("commit dependencies: user")


@pytest.fixture
async def sqlite_runtime(tmp_path: Path) -> Any:
    rt = Runtime(f"sqlite:///{tmp_path / 'store'}", identity=USER)
    yield rt
    await rt.close()


def count_commits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many SQLite ``COMMIT``s each space's groups took (one entry per COMMIT)."""
    commits: list[int] = []
    real = SQLiteBackend._commit_batch

    def counted(self: SQLiteBackend, conn: Any) -> None:
        commits.append(conn.batch)
        real(self, conn)

    monkeypatch.setattr(SQLiteBackend, "_commit_batch", counted)
    return commits


def fail_next_group(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Fail the next group's COMMIT as a full disk would; returns the sizes of failed groups."""
    failed: list[int] = []
    real = SQLiteBackend._commit_batch

    def failing(self: SQLiteBackend, conn: Any) -> None:
        if not failed:
            failed.append(conn.batch)
            self._abandon_batch(conn)
            raise sqlite3.OperationalError("database or disk is full")
        real(self, conn)

    monkeypatch.setattr(SQLiteBackend, "_commit_batch", failing)
    return failed


async def counter(runtime: Runtime, space: SpaceDID) -> tuple[Cell[Any], Any]:
    unit = runtime.unit(space, "counter")
    value = unit.cell("value", 0)

    def increment(event: Any, *, value: Cell[int]) -> int:
        value.set(value.get() + 1)
        return value.get()

    stream = unit.handler("increment", increment, state={"value": value})
    await unit.start()
    return value, stream


async def test_events_that_build_on_each_other_share_one_commit(
    sqlite_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = sqlite_runtime.create_space(name="home")
    value, stream = await counter(sqlite_runtime, space)
    commits = count_commits(monkeypatch)
    deliveries = [stream.send({}) for _ in range(20)]
    await sqlite_runtime.idle()
    assert [d.result.ok for d in deliveries if d.result] == [True] * 20
    assert value.get() == 20
    handler_commits = sum(commits)
    assert handler_commits >= 20  # every event committed…
    assert len(commits) < 10  # …in a few groups, not one COMMIT each


async def test_no_one_is_answered_with_a_value_a_failed_group_lost(
    sqlite_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = sqlite_runtime.create_space(name="home")
    value, stream = await counter(sqlite_runtime, space)
    failed = fail_next_group(monkeypatch)
    lost = await asyncio.gather(*(stream.call({}) for _ in range(10)))
    kept = await asyncio.gather(*(stream.call({}) for _ in range(5)))
    await sqlite_runtime.idle()
    assert failed == [10]  # one group held ten events, each building on the one before
    assert [(r.ok, type(r.error)) for r in lost] == [(False, DiskFullError)] * 10
    # The next events start from what is durable: no answer names a value that was lost.
    assert [r.value for r in kept] == [1, 2, 3, 4, 5]
    assert value.get() == 5


async def test_a_handler_that_awaits_never_acts_on_a_pending_value(
    sqlite_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = sqlite_runtime.create_space(name="home")
    value, stream = await counter(sqlite_runtime, space)
    outside: list[int] = []  # what an HTTP call with the value would have told the world
    reporter = sqlite_runtime.unit(space, "reporter")

    async def report(event: Any, *, value: Cell[int]) -> None:
        outside.append(value.get())
        await asyncio.sleep(0)

    report_stream = reporter.handler("report", report, state={"value": value})
    await reporter.start()
    fail_next_group(monkeypatch)
    increment = stream.send({})  # pending: its group will fail
    reported = report_stream.send({})
    await sqlite_runtime.idle()
    assert increment.result is not None and not increment.result.ok
    assert reported.result is not None and reported.result.ok
    assert outside == [0]  # the increment that was lost was never shown
    assert value.get() == 0


async def test_idle_means_everything_so_far_is_durable(
    sqlite_runtime: Runtime, tmp_path: Path
) -> None:
    """After idle() another process sees every commit, bookkeeping included."""
    shop_space = sqlite_runtime.create_space(name="shop")
    ledger_space = sqlite_runtime.create_space(name="ledger")
    ledger = sqlite_runtime.unit(ledger_space, "ledger")
    lines = ledger.cell("lines", [])
    append = ledger.handler(
        "append", lambda event, *, lines: lines.push(event["line"]), state={"lines": lines}
    )
    shop = sqlite_runtime.unit(shop_space, "shop")

    def sell(event: Any, *, ledger: Any) -> None:
        ledger.send({"line": event["item"]})

    stream = shop.handler("sell", sell, state={"ledger": append})
    await ledger.start()
    await shop.start()
    for item in ("apple", "pear"):
        stream.send({"item": item})
    await sqlite_runtime.idle()
    other = open_storage(f"sqlite:///{tmp_path / 'store'}")  # as another process reads it
    try:
        owner = USER.did
        assert getpath(
            other.read(ledger_space, lines.address.id, owner).value, lines.address.path
        ) == [
            "apple",
            "pear",
        ]
        assert other.rows(shop_space, outbox_box(shop.id), owner) == []  # delivered, cleared
    finally:
        other.close()


async def test_idle_makes_a_group_nobody_waits_for_durable(
    sqlite_runtime: Runtime, tmp_path: Path
) -> None:
    """idle() leaves nothing in an open group, even a commit nobody awaits.

    Bookkeeping (a delivered event cleared from its outbox) commits in the
    space's group and nobody waits for it; its flush normally comes within the
    loop turn, so here the flush scheduler never runs one by itself.
    """
    space = sqlite_runtime.create_space(name="notes")
    unit = sqlite_runtime.unit(space, "notes")
    note = unit.cell("note", "")
    await unit.start()
    await sqlite_runtime.idle()
    sqlite_runtime.storage.flush_scheduler = ManualFlush()  # no flush comes by itself
    tx = Transaction(sqlite_runtime, USER.did)
    tx.write(note.address, "kept")
    unwaited = tx.submit(sqlite_runtime.store)
    assert sqlite_runtime.storage.grouping and not unwaited.done()
    await asyncio.wait_for(sqlite_runtime.idle(), 5)
    assert unwaited.done() and unwaited.result().ok
    other = open_storage(f"sqlite:///{tmp_path / 'store'}")  # as another process reads it
    try:
        rev = other.read(space, note.address.id, USER.did)
        assert getpath(rev.value, note.address.path) == "kept"
    finally:
        other.close()
