"""The lease on a space, within one process: renewal, loss, release, refusals.

Two ``Storage`` objects on one SQLite directory stand in for two processes
here (they share nothing but the files); tests/storage/test_sqlite_leases.py
runs real processes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from charmspace import LeaseLostError
from charmspace.errors import StorageError
from charmspace.storage import Capability, Storage, open_storage
from charmspace.storage.interface import AsyncStorage
from charmspace.types import DID, SpaceDID

Reopen = Callable[..., Storage]
NewSpace = Callable[..., SpaceDID]


async def test_a_memory_lease_never_expires(owner: DID) -> None:
    storage = open_storage("memory://")
    storage.create_space(owner, owner)
    async with AsyncStorage(storage).lease(owner, owner, seconds=0.1) as lease:
        await asyncio.sleep(0.2)
        assert lease.expires == math.inf and not lease.lost
        lease.check()


@pytest.mark.parametrize("seconds", [0, 0.01, -1, math.inf, math.nan, True, "5"])
async def test_a_lease_length_that_cannot_work_is_refused(
    storage: Storage, space: SpaceDID, owner: DID, seconds: object
) -> None:
    with pytest.raises(StorageError, match="seconds"):
        async with AsyncStorage(storage).lease(space, owner, seconds=seconds):  # type: ignore[arg-type]
            pass


async def test_a_lease_on_sqlite_keeps_another_storage_out_until_released(
    reopen: Reopen, owner: DID, new_space: NewSpace
) -> None:
    first, second = AsyncStorage(reopen()), AsyncStorage(reopen())
    space = new_space(first.storage, owner)
    async with first.lease(space, owner, seconds=0.3) as held:
        assert held.generation == 1
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_enter(second, space, owner), 0.8)  # > 2 × seconds
        assert not held.lost  # renewed in the background, past its 0.3 s
        assert held.expires > time.time()
    async with second.lease(space, owner, seconds=0.3) as taken:
        assert taken.generation == 2  # the abandoned wait took nothing


async def test_waiting_for_a_lease_leaves_the_event_loop_free(
    reopen: Reopen, owner: DID, new_space: NewSpace
) -> None:
    first, second = AsyncStorage(reopen()), AsyncStorage(reopen())
    space = new_space(first.storage, owner)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    async with first.lease(space, owner, seconds=5):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_enter(second, space, owner), 0.5)
    ticker.cancel()
    assert ticks >= 25  # of 50 at most: the loop ran other work all along


async def test_an_exception_in_the_block_releases_the_lease(
    reopen: Reopen, owner: DID, new_space: NewSpace
) -> None:
    first, second = AsyncStorage(reopen()), AsyncStorage(reopen())
    space = new_space(first.storage, owner)
    with pytest.raises(KeyError):
        async with first.lease(space, owner, seconds=5):
            raise KeyError("the host failed")
    await asyncio.wait_for(_enter(second, space, owner), 0.2)


async def test_a_holder_that_stalls_past_expiry_has_lost_its_lease(
    reopen: Reopen, owner: DID, new_space: NewSpace
) -> None:
    store = AsyncStorage(reopen())
    space = new_space(store.storage, owner)
    async with store.lease(space, owner, seconds=0.2) as lease:
        time.sleep(0.3)  # noqa: ASYNC251 (a stalled event loop, on purpose)
        assert lease.lost
        with pytest.raises(LeaseLostError) as caught:
            lease.check()
        assert caught.value.space == space and caught.value.holder == owner
        assert "before it could be renewed" in str(caught.value)
        assert "Stop running the space's handlers and derived values" in str(caught.value)
        assert (await lease.wait_lost()) is caught.value
    async with store.lease(space, owner, seconds=0.2) as again:  # it can be taken again
        assert not again.lost


async def test_a_holder_whose_access_is_revoked_loses_the_lease(
    storage: Storage, owner: DID, alice: DID, new_space: NewSpace
) -> None:
    space = new_space(storage, owner, {alice: Capability.READ})
    async with AsyncStorage(storage).lease(space, alice, seconds=0.3) as lease:
        lease.check()
        storage.set_acl(space, owner, alice, None)
        if lease.expires < math.inf:  # renewed in the background: it notices by itself
            await asyncio.wait_for(lease.wait_lost(), 1.0)
        with pytest.raises(LeaseLostError) as caught:
            lease.check()
        assert caught.value.holder == alice and "may no longer host it" in caught.value.reason


async def test_a_holder_whose_lease_file_was_deleted_loses_the_lease(
    reopen: Reopen, sqlite_dir: Path, owner: DID, new_space: NewSpace
) -> None:
    first, second = AsyncStorage(reopen()), AsyncStorage(reopen())
    space = new_space(first.storage, owner)
    async with first.lease(space, owner, seconds=0.3) as lease:
        for name in ("leases.sqlite", "leases.sqlite-wal", "leases.sqlite-shm"):
            (sqlite_dir / name).unlink(missing_ok=True)
        error = await asyncio.wait_for(lease.wait_lost(), 1.0)
        assert "its record is gone" in error.reason
        await asyncio.wait_for(_enter(second, space, owner), 0.2)  # nobody holds it now


async def test_a_damaged_lease_file_is_reported_with_what_to_do(
    reopen: Reopen, sqlite_dir: Path, owner: DID, new_space: NewSpace
) -> None:
    store = AsyncStorage(reopen())
    space = new_space(store.storage, owner)
    (sqlite_dir / "leases.sqlite").write_bytes(b"not a database, " * 512)
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(_enter(store, space, owner), 1.0)
    assert type(caught.value) is StorageError
    assert "leases.sqlite is damaged" in str(caught.value)
    assert "It holds no data" in str(caught.value) and "delete the file" in str(caught.value)


async def test_two_spaces_are_leased_independently(
    reopen: Reopen, owner: DID, new_space: NewSpace
) -> None:
    first, second = AsyncStorage(reopen()), AsyncStorage(reopen())
    a, b = new_space(first.storage, owner), new_space(first.storage, owner)
    async with first.lease(a, owner, seconds=5):
        await asyncio.wait_for(_enter(second, b, owner), 0.2)


async def _enter(store: AsyncStorage, space: SpaceDID, holder: DID) -> None:
    async with store.lease(space, holder, seconds=0.3):
        pass
