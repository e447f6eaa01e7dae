"""Retention: history is pruned to a horizon in the background, and the disk is given back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from charmspace.errors import AuthorizationError, HistoryPrunedError
from charmspace.identity import Identity
from charmspace.storage import Commit, Storage, creation_proof, entity_id, open_storage
from charmspace.storage.model import Retention
from charmspace.types import DID, SpaceDID

OWNER: DID = Identity.from_passphrase("storage suite: owner").did
SERVICE: DID = Identity.from_passphrase("storage suite: service").did

DOC = entity_id({"test": "retention"})
OTHER = entity_id({"test": "retention, untouched"})


@pytest.fixture
def small(storage_url: str) -> Iterator[Storage]:
    """A storage that keeps the last 10 commits and nothing for its age."""
    sep = "&" if "?" in storage_url else "?"
    with open_storage(f"{storage_url}{sep}keep_commits=10&keep_seconds=0", service=SERVICE) as s:
        yield s


def create_new_space(storage: Storage, owner: DID) -> SpaceDID:
    key = Identity.generate()
    storage.create_space(key.did, owner, proof=creation_proof(key, owner))
    return key.did


def commits(storage: Storage, space: SpaceDID, n: int, size: int = 10) -> None:
    for i in range(n):
        storage.commit(Commit(space, OWNER, {DOC: {"i": i, "pad": "x" * size}}))


def test_the_pruner_keeps_the_last_commits_and_every_current_value(small: Storage) -> None:
    space = create_new_space(small, OWNER)
    small.commit(Commit(space, OWNER, {OTHER: "written once, long ago"}))  # seq 1
    commits(small, space, 100)  # seqs 2..101
    small.pruner.run_once()
    assert small.horizon(space, OWNER) == 91
    assert small.read(space, DOC, OWNER, at=91).value == {"i": 89, "pad": "x" * 10}
    assert small.read(space, OTHER, OWNER, at=91).value == "written once, long ago"
    assert small.read(space, OTHER, OWNER).seq == 1
    with pytest.raises(HistoryPrunedError):
        small.read(space, DOC, OWNER, at=90)
    assert [e.seq for e in small.log(space, OWNER)] == [1, *range(91, 102)]
    assert small.committer(space, 1, OWNER) == OWNER


def test_everything_newer_than_keep_seconds_is_kept(storage_url: str) -> None:
    now = [1000.0]
    with open_storage(
        storage_url + "?keep_commits=1&keep_seconds=60", service=SERVICE, clock=lambda: now[0]
    ) as storage:
        space = create_new_space(storage, OWNER)
        commits(storage, space, 5)  # 1..5 at t=1000
        now[0] = 1050.0
        commits(storage, space, 5)  # 6..10 at t=1050
        storage.pruner.run_once()
        assert storage.horizon(space, OWNER) == 0  # all within the last minute
        now[0] = 1070.0
        storage.commit(Commit(space, OWNER, {OTHER: 1}))  # 11
        storage.pruner.run_once()
        assert storage.horizon(space, OWNER) == 5  # 1..5 are older than a minute


def test_history_never_holds_more_than_max_history_bytes(storage_url: str) -> None:
    """A pass that sums the history's size prunes it to the budget.

    The background pass is stopped: one it ran during the commits would leave
    the test's pass short of a quarter budget written since, which by design
    does not sum the sizes again (the history may then exceed its budget by
    that quarter until the next sum), and the horizon would depend on timing.
    """
    with open_storage(
        storage_url + "?keep_commits=100000&max_history_bytes=20000", service=SERVICE
    ) as storage:
        space = create_new_space(storage, OWNER)
        storage.pruner.close()  # prune only when the test says so
        commits(storage, space, 50, size=1000)  # about 1.2 KB each with id and log
        storage.pruner.prune(space)
        horizon = storage.horizon(space, OWNER)
        assert 30 <= horizon <= 40  # the newest ~16 revisions fit in 20,000 bytes
        assert storage.read(space, DOC, OWNER, at=horizon).value["i"] == horizon - 1  # type: ignore[index]


def test_a_space_has_its_own_policy_and_only_its_owner_sets_it(
    storage: Storage, alice: DID
) -> None:
    space = create_new_space(storage, OWNER)
    assert storage.space_retention(space, OWNER) == storage.retention == Retention()
    with pytest.raises(AuthorizationError):
        storage.set_retention(space, alice, Retention(keep_commits=1))
    storage.set_retention(space, OWNER, Retention(keep_commits=3, keep_seconds=0))
    commits(storage, space, 10)
    storage.pruner.run_once()
    assert storage.horizon(space, OWNER) == 7
    storage.set_retention(space, OWNER, None)
    assert storage.space_retention(space, OWNER) == Retention()


def test_a_space_policy_is_kept_in_its_file(reopen: object) -> None:
    storage = reopen()  # type: ignore[operator]
    space = create_new_space(storage, OWNER)
    storage.set_retention(space, OWNER, Retention(keep_commits=5))
    again = reopen(storage)  # type: ignore[operator]
    assert again.space_retention(space, OWNER) == Retention(keep_commits=5)


def test_floors_hold_the_horizon_back(small: Storage) -> None:
    space = create_new_space(small, OWNER)
    remove = small.add_floor(lambda s: 40 if s == space else None)
    commits(small, space, 100)
    small.pruner.run_once()
    assert small.horizon(space, OWNER) == 40
    remove()
    small.commit(Commit(space, OWNER, {OTHER: 1}))
    small.pruner.run_once()
    assert small.horizon(space, OWNER) == 91


def test_the_pruner_runs_by_itself_and_stops_with_the_storage(storage_url: str) -> None:
    storage = open_storage(storage_url + "?keep_commits=10&keep_seconds=0", service=SERVICE)
    storage.pruner.interval = 0.01
    space = create_new_space(storage, OWNER)
    commits(storage, space, 50)
    deadline = time.monotonic() + 10
    while storage.horizon(space, OWNER) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert storage.horizon(space, OWNER) == 40
    thread = storage.pruner._thread
    storage.close()
    assert thread is not None and not thread.is_alive()


def test_a_pruned_sqlite_file_shrinks(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    with open_storage(f"sqlite:///{directory}?keep_commits=1&keep_seconds=0") as storage:
        space = create_new_space(storage, OWNER)
        storage.pruner.close()  # prune only when the test says so
        commits(storage, space, 300, size=4000)
        storage.flush()
        [path] = directory.glob("*.sqlite")
        wal = Path(f"{path}-wal")
        before = path.stat().st_size + wal.stat().st_size
        assert before > 1_000_000
        storage.pruner.prune(space)
        after = path.stat().st_size + wal.stat().st_size
    assert after < 100_000, (before, after)


def test_pruning_joins_a_group_of_commits_in_flight(small: Storage) -> None:
    """Regression: under steady load a group was always in flight, and nothing was pruned."""
    space = create_new_space(small, OWNER)
    commits(small, space, 50)
    scheduled: list[object] = []
    small.flush_scheduler = scheduled.append  # the group stays open until we flush
    durable: list[BaseException | None] = []
    for i in range(5):
        small.commit(Commit(space, OWNER, {OTHER: i}), on_durable=durable.append)
    small.pruner.run_once()
    horizon = 40 if small.backend.batches else 45  # planned from what is durable
    assert small.horizon(space, OWNER) == horizon
    assert durable == ([] if small.backend.batches else [None] * 5)
    small.flush()
    assert durable == [None] * 5
    assert small.read(space, OTHER, OWNER).value == 4
    assert small.read(space, DOC, OWNER, at=horizon).value["i"] == horizon - 1  # type: ignore[index]


def test_a_failed_prune_inside_a_group_leaves_the_group_s_commits(small: Storage) -> None:
    space = create_new_space(small, OWNER)
    commits(small, space, 50)
    small.flush_scheduler = lambda flush: None  # the group stays open until we flush
    durable: list[BaseException | None] = []
    for i in range(5):
        small.commit(Commit(space, OWNER, {OTHER: i}), on_durable=durable.append)

    def refuse(record: object) -> None:
        raise AuthorizationError(OWNER, space, "OWNER", "prune history")

    with pytest.raises(AuthorizationError):
        small.backend.prune(space, 40, refuse)
    small.flush()
    assert durable == [None] * 5
    assert small.read(space, OTHER, OWNER).value == 4
    assert small.horizon(space, OWNER) == 0


def test_closing_prunes_what_is_owed(reopen: Any) -> None:
    """Files at rest are pruned to their policy, however far the last pass lagged."""
    storage = reopen(retention=Retention(keep_commits=10, keep_seconds=0))
    storage.pruner.interval = 3600.0  # no pass while running
    space = create_new_space(storage, OWNER)
    commits(storage, space, 50)
    assert storage.horizon(space, OWNER) == 0
    assert reopen(storage).horizon(space, OWNER) == 40


def test_the_byte_budget_holds_for_small_values_too(storage_url: str) -> None:
    """Regression: the pruner counted only the values' JSON (a counter's is 1 byte) towards
    re-checking the budget, so a counter's history (ids and log entries) grew forever."""
    with open_storage(
        storage_url + "?keep_commits=100000&max_history_bytes=40000", service=SERVICE
    ) as storage:
        space = create_new_space(storage, OWNER)
        for i in range(600):
            storage.commit(Commit(space, OWNER, {DOC: i}))
            if i % 50 == 0:
                storage.pruner.run_once()
        storage.pruner.run_once()
        assert storage.horizon(space, OWNER) >= 400  # 40,000 bytes hold about 190 revisions
