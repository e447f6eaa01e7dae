"""Group commit: commits given ``on_durable`` share one durable write.

Each commit keeps its own seq and validation; subscribers and ``on_durable``
hear about it only once the group is durable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from charmspace.errors import ConflictError
from charmspace.storage import Change, Commit, Storage, entity_id, open_storage
from charmspace.testing import ManualFlush
from charmspace.types import DID, SpaceDID

NewSpace = Callable[..., SpaceDID]

X = entity_id({"test": "group commit x"})
Y = entity_id({"test": "group commit y"})


@pytest.fixture
def grouped(storage: Storage) -> ManualFlush:
    scheduler = ManualFlush()
    storage.flush_scheduler = scheduler
    return scheduler


def test_grouped_commits_are_validated_at_once_and_seen_when_durable(
    storage: Storage, space: SpaceDID, owner: DID, grouped: ManualFlush
) -> None:
    changes: list[Change] = []
    storage.subscribe(space, changes.append)
    durable: list[object] = []
    storage.commit(Commit(space, owner, {Y: "before"}))
    first = storage.commit(Commit(space, owner, {X: 1}), on_durable=durable.append)
    second = storage.commit(
        Commit(space, owner, {X: 2}, reads={X: first}), on_durable=durable.append
    )
    assert (first, second) == (2, 3)  # the second was validated against the first
    if storage.backend.batches:
        assert changes[1:] == [] and durable == []
        assert len(grouped.requested) == 1  # one flush for the whole group
        # Nothing of the group is seen before it is durable: not the value,
        # not the head, not the log, not a point-in-time read past it.
        assert storage.read(space, X, owner) == storage.read(space, X, owner, at=1)
        assert storage.read(space, X, owner).value is None
        assert storage.read(space, X, owner, at=3).value is None
        assert storage.read(space, Y, owner).value == "before"
        assert storage.head(space, owner) == 1
        assert [e.seq for e in storage.log(space, owner)] == [1]
        assert storage.unsettled(space, X) and not storage.unsettled(space, Y)
    grouped.run()
    assert storage.read(space, X, owner).value == 2
    assert storage.read(space, X, owner, at=2).value == 1
    assert storage.head(space, owner) == 3
    assert [e.seq for e in storage.log(space, owner)] == [1, 2, 3]
    assert [c.seq for c in changes] == [1, 2, 3]
    assert durable == [None, None]
    assert not storage.unsettled(space, X)


def test_a_commit_that_read_the_durable_value_conflicts_with_a_pending_one(
    storage: Storage, space: SpaceDID, owner: DID, grouped: ManualFlush
) -> None:
    durable: list[object] = []
    storage.commit(Commit(space, owner, {X: 1}), on_durable=durable.append)
    seen = storage.read(space, X, owner).seq  # 0 on SQLite: the group is pending
    if storage.backend.batches:
        with pytest.raises(ConflictError):
            storage.commit(Commit(space, owner, {X: 99}, reads={X: seen}))
    grouped.run()
    assert storage.read(space, X, owner).value == 1
    assert durable == [None]


def test_settle_makes_the_group_durable_now(
    storage: Storage, space: SpaceDID, owner: DID, grouped: ManualFlush
) -> None:
    durable: list[object] = []
    storage.commit(Commit(space, owner, {X: 1}), on_durable=durable.append)
    storage.settle(space)
    assert durable == [None]
    assert storage.read(space, X, owner).value == 1
    assert not storage.unsettled(space, X)
    grouped.run()  # nothing left to do
    assert durable == [None]


def test_a_conflict_inside_a_group_writes_nothing_and_keeps_the_group(
    storage: Storage, space: SpaceDID, owner: DID, grouped: ManualFlush
) -> None:
    durable: list[object] = []
    storage.commit(Commit(space, owner, {X: 1}), on_durable=durable.append)
    with pytest.raises(ConflictError):
        storage.commit(Commit(space, owner, {X: 99}, reads={X: 0}), on_durable=durable.append)
    grouped.run()
    assert durable == [None]
    assert storage.read(space, X, owner).value == 1
    assert storage.head(space, owner) == 1


def test_an_ordinary_commit_makes_the_open_group_durable(
    storage: Storage, space: SpaceDID, owner: DID, grouped: ManualFlush
) -> None:
    changes: list[Change] = []
    storage.subscribe(space, changes.append)
    durable: list[object] = []
    storage.commit(Commit(space, owner, {X: 1}), on_durable=durable.append)
    storage.commit(Commit(space, owner, {Y: 1}))
    assert durable == [None]
    assert [c.seq for c in changes] == [1, 2]  # still in seq order
    grouped.run()  # nothing left to do
    assert durable == [None]


def test_closing_makes_grouped_commits_durable(
    sqlite_dir: Path, owner: DID, new_space: NewSpace
) -> None:
    storage = open_storage(f"sqlite://{sqlite_dir}")
    storage.flush_scheduler = ManualFlush()  # never run: close must flush
    space = new_space(storage, owner)
    durable: list[object] = []
    storage.commit(Commit(space, owner, {X: "kept"}), on_durable=durable.append)
    storage.close()
    assert durable == [None]
    with open_storage(f"sqlite://{sqlite_dir}") as again:
        assert again.read(space, X, owner).value == "kept"


def test_another_process_sees_a_group_only_once_it_is_durable(
    sqlite_dir: Path, owner: DID, new_space: NewSpace
) -> None:
    mine = open_storage(f"sqlite://{sqlite_dir}")
    scheduler = ManualFlush()
    mine.flush_scheduler = scheduler
    space = new_space(mine, owner)
    mine.commit(Commit(space, owner, {X: "grouped"}), on_durable=lambda _e: None)
    path = mine.backend.path(space)  # type: ignore[attr-defined]
    other = sqlite3.connect(path)
    assert other.execute("SELECT count(*) FROM revisions").fetchone()[0] == 0
    scheduler.run()
    assert other.execute("SELECT count(*) FROM revisions").fetchone()[0] == 1
    other.close()
    mine.close()


def test_a_failed_group_reports_every_commit_in_it(
    sqlite_dir: Path, owner: DID, monkeypatch: pytest.MonkeyPatch, new_space: NewSpace
) -> None:
    storage = open_storage(f"sqlite://{sqlite_dir}")
    scheduler = ManualFlush()
    storage.flush_scheduler = scheduler
    space = new_space(storage, owner)
    outcomes: list[object] = []
    storage.commit(Commit(space, owner, {X: 1}), on_durable=outcomes.append)
    storage.commit(Commit(space, owner, {Y: 1}), on_durable=outcomes.append)

    def broken_flush(space: SpaceDID) -> None:
        storage.backend._abandon_batch(storage.backend._conns[space])  # type: ignore[attr-defined]
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(storage.backend, "flush", broken_flush)
    scheduler.run()
    assert [type(o) for o in outcomes] == [sqlite3.OperationalError] * 2
    assert storage.read(space, X, owner).value is None  # nothing of the group survived
    assert storage.head(space, owner) == 0
    storage.close()
