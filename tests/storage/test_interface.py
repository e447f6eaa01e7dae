"""The async storage interface: reads, durable commits, the log and leases, on memory and SQLite."""

from __future__ import annotations

import asyncio

import pytest

from charmspace.errors import AuthorizationError, ConflictError, SpaceNotFoundError
from charmspace.storage import Commit, Storage, entity_id
from charmspace.storage.interface import AsyncStorage, SpaceStore
from charmspace.testing import ManualFlush
from charmspace.types import DID, SpaceDID

X = entity_id({"test": "interface x"})
Y = entity_id({"test": "interface y"})


@pytest.fixture
def store(storage: Storage) -> AsyncStorage:
    return AsyncStorage(storage)


async def test_apply_returns_once_the_commit_is_durable(
    storage: Storage, store: AsyncStorage, space: SpaceDID, owner: DID
) -> None:
    assert await store.apply(Commit(space, owner, {X: "hello"})) == 1
    assert (await store.read(space, X, owner)).value == "hello"
    assert await store.head(space, owner) == 1
    assert [e.seq for e in await store.log(space, owner)] == [1]
    assert await store.apply(Commit(space, owner, {})) == 0  # nothing to write


async def test_apply_makes_a_pending_group_durable_with_it(
    storage: Storage, store: AsyncStorage, space: SpaceDID, owner: DID
) -> None:
    storage.flush_scheduler = ManualFlush()  # never run
    durable: list[object] = []
    storage.commit(Commit(space, owner, {Y: "grouped"}), on_durable=durable.append)
    if storage.backend.batches:
        assert (await store.read(space, Y, owner)).value is None  # pending: not seen
    assert await store.apply(Commit(space, owner, {X: "direct"}), grouped=False) == 2
    assert durable == [None]
    assert (await store.read(space, Y, owner)).value == "grouped"
    assert [e.seq for e in await store.log(space, owner)] == [1, 2]


async def test_a_grouped_apply_answers_when_its_group_is_durable(
    storage: Storage, store: AsyncStorage, space: SpaceDID, owner: DID
) -> None:
    flush = ManualFlush()
    storage.flush_scheduler = flush
    first = store.apply(Commit(space, owner, {X: 1}))
    second = store.apply(Commit(space, owner, {X: 2}, reads={X: 1}))  # builds on the first
    if storage.backend.batches:
        await asyncio.sleep(0)
        assert not first.done() and not second.done()  # applied in order, not durable yet
        assert (await store.read(space, X, owner)).value is None
        flush.run()
    assert (await first, await second) == (1, 2)
    assert (await store.read(space, X, owner)).value == 2


async def test_apply_then_answers_through_its_callback_once_durable(
    storage: Storage, store: AsyncStorage, space: SpaceDID, owner: DID
) -> None:
    flush = ManualFlush()
    storage.flush_scheduler = flush
    answers: list[tuple[int, BaseException | None]] = []
    first = store.apply_then(Commit(space, owner, {X: 1}), lambda *a: answers.append(a))
    second = store.apply_then(
        Commit(space, owner, {X: 2}, reads={X: 1}), lambda *a: answers.append(a)
    )
    if storage.backend.batches:
        assert (first, second, answers) == (None, None, [])  # applied, not durable yet
        assert (await store.read(space, X, owner)).value is None
        flush.run()
        assert answers == [(1, None), (2, None)]
    else:  # durable at once: the seq is the answer, and the callback is never called
        assert (first, second, answers) == (1, 2, [])
    assert (await store.read(space, X, owner)).value == 2
    with pytest.raises(ConflictError):
        store.apply_then(Commit(space, owner, {X: 3}, reads={X: 1}), lambda *a: answers.append(a))
    flush.run()
    assert len(answers) == (2 if storage.backend.batches else 0)
    assert (await store.read(space, X, owner)).value == 2


async def test_apply_refuses_a_stale_read_and_writes_nothing(
    store: AsyncStorage, space: SpaceDID, owner: DID
) -> None:
    await store.apply(Commit(space, owner, {X: 1}))
    with pytest.raises(ConflictError):
        await store.apply(Commit(space, owner, {X: 2}, reads={X: 0}))
    assert (await store.read(space, X, owner)).value == 1


async def test_every_call_checks_the_principal(
    store: AsyncStorage, space: SpaceDID, owner: DID, bob: DID
) -> None:
    assert (await store.open_space(space, owner)).owner == owner
    with pytest.raises(AuthorizationError):
        await store.open_space(space, bob)
    with pytest.raises(AuthorizationError):
        await store.apply(Commit(space, bob, {X: 1}))
    with pytest.raises(AuthorizationError):
        async with store.lease(space, bob):
            pass
    with pytest.raises(SpaceNotFoundError):
        await store.open_space(bob, owner)  # type: ignore[arg-type]


async def test_a_lease_is_held_by_one_holder_at_a_time(
    store: AsyncStorage, space: SpaceDID, owner: DID
) -> None:
    held: list[str] = []

    async def host(name: str) -> None:
        async with store.lease(space, owner, seconds=5) as lease:
            assert lease.space == space and lease.holder == owner
            held.append(f"{name} in")
            await asyncio.sleep(0.01)
            held.append(f"{name} out")

    await asyncio.gather(host("a"), host("b"))
    assert held == ["a in", "a out", "b in", "b out"]


def test_the_in_process_store_is_a_space_store(store: AsyncStorage) -> None:
    implementation: SpaceStore = store
    assert implementation is store
