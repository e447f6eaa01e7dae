"""Space hosts: each space propagates on its own, from its commit log, as the charm's creator."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import AuthorizationError, DerivedTimeoutError
from charmspace.identity import Identity
from charmspace.runtime import Cell, ErrorReport, link_to
from charmspace.runtime.propagation import blocks_loop
from charmspace.storage import Capability, creation_proof
from charmspace.types import SpaceDID


async def put(cell: Cell[Any], value: Any) -> None:
    async with cell.runtime.edit():
        cell.set(value)


@pytest.mark.parametrize("pause", [0, 0.001], ids=["next-turn", "1ms"])
@pytest.mark.parametrize("burst", [False, True], ids=["one-per-turn", "all-at-once"])
async def test_async_and_sync_derived_values_catch_up_with_every_event(
    runtime: Runtime, space: SpaceDID, pause: float, burst: bool
) -> None:
    """Regression: on SQLite, an async derive stayed one event behind for good ({'slow': 49}).

    The propagator's own commit flushed the space's grouped handler commits, and
    their notifications were dropped while an "own commit" flag was set. Events
    arrive one per loop turn or all at once; the slow derive awaits the next
    turn or a millisecond (waves then overlap many commits).
    """
    unit = runtime.unit(space, "counter")
    value = unit.cell("value", 0)

    async def slow_copy(v: int) -> int:
        await asyncio.sleep(pause)
        return v

    slow = unit.derive("slow", slow_copy, inputs=[value])
    doubled = unit.derive("doubled", lambda v: v * 2, inputs=[value])

    def adjust(event: Any, *, value: Cell[int]) -> None:
        value.set(value.get() + event["amount"])

    stream = unit.handler("adjust", adjust, state={"value": value})
    await unit.start()
    for _ in range(50):
        stream.send({"amount": 1})
        if not burst:
            await asyncio.sleep(0)
    await runtime.idle()
    assert (value.get(), slow.get(), doubled.get()) == (50, 50, 100)


async def test_an_async_action_reads_the_snapshot_its_wave_began_with(
    runtime: Runtime, space: SpaceDID
) -> None:
    """Regression: an async action that awaited could read a newer input than the
    synchronous actions of its wave (glitch-free held only for synchronous ones)."""
    unit = runtime.unit(space, "snapshot")
    x = unit.cell("x", 1)
    gate = asyncio.Event()
    gate.set()
    waiting = asyncio.Event()
    seen: list[int] = []

    async def after_a_wait() -> int:
        waiting.set()
        await gate.wait()
        seen.append(x.get())
        return seen[-1]

    late = unit.derive("late", after_a_wait)
    await unit.start()
    gate.clear()
    waiting.clear()
    await put(x, 2)
    await waiting.wait()  # the wave for x=2 is waiting at the gate
    await put(x, 3)  # committed while it waits
    gate.set()
    await runtime.idle()
    assert seen == [1, 2, 3]
    assert late.get() == 3


async def test_a_slow_async_derive_in_one_space_does_not_delay_another_space(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID
) -> None:
    """Regression: one propagation loop served every space, so a 1-second derive in
    one user's space delayed everyone's derived values by a second."""
    stuck = asyncio.Event()
    slow_unit = runtime.unit(space, "slow")
    slow_input = slow_unit.cell("a", 0)

    async def wait_for_ever(a: int) -> int:
        if a:
            await stuck.wait()
        return a

    slow_unit.derive("stuck", wait_for_ever, inputs=[slow_input])
    await slow_unit.start()
    fast_unit = runtime.unit(other_space, "fast")
    fast_input = fast_unit.cell("a", 0)
    fast = fast_unit.derive("plus_one", lambda a: a + 1, inputs=[fast_input])
    await fast_unit.start()

    await put(slow_input, 1)  # space's loop now waits on `stuck`
    await put(fast_input, 41)
    await asyncio.wait_for(runtime.host(other_space).propagator.settled(), 2)
    assert fast.get() == 42
    assert runtime.host(space).busy
    stuck.set()
    await runtime.idle()


async def test_a_slow_synchronous_derive_moves_off_the_event_loop(
    runtime: Runtime, space: SpaceDID
) -> None:
    """A synchronous derive that once took more than a few milliseconds runs in a
    thread from then on, so the event loop (other spaces, other events) keeps going."""
    release = threading.Event()
    loop_ran = []

    def slow(a: int) -> int:
        if a == 0:
            time.sleep(0.02)  # the first run shows it is slow
            return a
        release.wait(5)
        return a if release.is_set() else -1

    unit = runtime.unit(space, "slow-sync")
    a = unit.cell("a", 0)
    out = unit.derive("slow", slow, inputs=[a])
    await unit.start()
    await put(a, 7)
    await asyncio.sleep(0.01)  # the wave is inside `slow` now
    loop_ran.append(True)  # only reachable if the loop is not blocked
    release.set()
    await runtime.idle()
    assert loop_ran and out.get() == 7


async def test_a_derive_that_waits_while_the_worker_is_busy_stays_on_the_loop(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID
) -> None:
    """Regression: with other spaces' slow derives in the worker thread, a cheap derive
    that read SQLite looked slow (it waited for the interpreter lock), moved to the
    worker for good, and from then on queued behind them: about a second per change
    (B3-tenants, CPU-bound tenants on SQLite)."""
    release = threading.Event()

    def hog(a: int) -> int:
        if a == 0:
            time.sleep(0.02)  # the first run shows it is slow: it moves to the worker
            return a
        release.wait(5)  # the worker is busy until the test lets go
        return a

    hogging = runtime.unit(space, "hog")
    hog_input = hogging.cell("a", 0)
    hogging.derive("hog", hog, inputs=[hog_input])
    await hogging.start()
    await put(hog_input, 1)
    await asyncio.sleep(0.01)
    assert runtime.offloading  # the worker is held by the hog

    def waits_a_little(a: int) -> int:
        time.sleep(0.01)  # as a wait for the interpreter lock would look
        return a + 1

    cheap = runtime.unit(other_space, "cheap")
    cheap_input = cheap.cell("a", 0)
    out = cheap.derive("plus_one", waits_a_little, inputs=[cheap_input])
    await cheap.start()
    for n in (1, 2, 3):
        await put(cheap_input, n)
        await asyncio.wait_for(runtime.host(other_space).propagator.settled(), 2)
        assert out.get() == n + 1  # computed on the loop, not queued behind the hog
    release.set()
    await runtime.idle()


@pytest.mark.parametrize(
    ("took", "computed", "contended", "blocks"),
    [
        (0.001, 0.001, False, False),  # cheap
        (0.020, 0.019, False, True),  # computes
        (0.020, 0.019, True, True),  # computes, whatever else runs
        (0.020, 0.0001, False, True),  # sleeps or blocks on I/O
        (0.020, 0.0001, True, False),  # may only have waited for the interpreter lock
        (0.200, 0.0001, True, True),  # far longer than such waits
    ],
)
def test_what_counts_as_holding_up_the_loop(
    took: float, computed: float, contended: bool, blocks: bool
) -> None:
    assert blocks_loop(took, computed, contended) is blocks


async def alices_secret_and_bobs_space(
    runtime: Runtime, space: SpaceDID, bob: Identity
) -> tuple[Cell[Any], SpaceDID]:
    """A token in the user's private ``space``, and a space of Bob's own (he may not read it)."""
    secret = runtime.unit(space, "alice-private")
    token = secret.cell("token", "alice-secret-token")
    await secret.start()
    bob_home = bob.derive("bob-home")
    bob_space = runtime.storage.create_space(
        bob_home.did, bob.did, proof=creation_proof(bob_home, bob.did)
    ).space
    return token, bob_space


async def test_a_derived_value_cannot_read_what_its_creator_cannot(
    runtime: Runtime, space: SpaceDID, bob: Identity
) -> None:
    """Regression: Bob's derive over a link into Alice's private space handed Bob her value.

    Derived values used to run as the service identity; now they run as the
    charm's creator, and the link resolves to an error on the charm.
    """
    token, bob_space = await alices_secret_and_bobs_space(runtime, space, bob)
    bobs = runtime.unit(bob_space, "mirror")
    mirrored = bobs.derive("mirror", lambda t: t, inputs=[Cell(runtime, token.address)])
    errors: list[ErrorReport] = []
    runtime.on_error(errors.append)
    await bobs.start(principal=bob.did)
    await runtime.idle()

    assert runtime.read(mirrored.address, bob.did) is None
    assert [type(r.error) for r in errors] == [AuthorizationError]
    entry = runtime.storage.log(bob_space, bob.did)[-1]
    assert entry.principal == bob.did  # the error cell too is written as Bob, in his space


async def test_a_derived_value_over_a_stored_link_cannot_read_what_its_creator_cannot(
    runtime: Runtime, space: SpaceDID, bob: Identity
) -> None:
    """Bob stores a link into Alice's private space in his own charm's cell and derives
    from that cell: following the link is checked as Bob, so he gets an error, and
    nothing of Alice's lands anywhere in his space."""
    token, bob_space = await alices_secret_and_bobs_space(runtime, space, bob)
    bobs = runtime.unit(bob_space, "mirror")
    pointer = bobs.cell("pointer", None)
    async with runtime.edit(bob.did):
        pointer.set(link_to(token.address))
    mirrored = bobs.derive("mirror", lambda t: {"copied": t}, inputs=[pointer])
    errors: list[ErrorReport] = []
    runtime.on_error(errors.append)
    await bobs.start(principal=bob.did)
    await runtime.idle()

    assert runtime.read(mirrored.address, bob.did) is None
    assert [type(r.error) for r in errors] == [AuthorizationError]
    for entry in runtime.storage.log(bob_space, bob.did):
        for id in entry.ids:
            stored = runtime.storage.read(bob_space, id, bob.did).value
            assert "alice-secret-token" not in json.dumps(stored)


async def test_starting_a_charm_never_writes_through_a_link_into_another_space(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID, bob: Identity
) -> None:
    """Regression: a start-up default was written through a redirect link into the
    linked space, so whoever could store a link in a charm's document (Bob, with
    WRITE on this space only) could make its start-up write elsewhere."""
    victim = runtime.unit(other_space, "victim")
    target = victim.cell("target", None)
    await victim.start()
    before = runtime.storage.head(other_space, runtime.principal)
    runtime.storage.set_acl(space, runtime.principal, bob.did, Capability.WRITE)

    unit = runtime.unit(space, "linked")
    field = unit.cell("field", "default written at start")
    async with runtime.edit(bob.did) as tx:
        tx.write_doc(space, field.address.id, link_to(target.address, redirect=True))
    await unit.start()

    assert target.get() is None
    assert runtime.storage.head(other_space, runtime.principal) == before


async def test_an_async_derive_that_hangs_times_out_and_keeps_its_previous_value(
    runtime: Runtime, space: SpaceDID, errors: list[ErrorReport]
) -> None:
    """A derived value that never returns would freeze its space's waves: it is bounded
    by ``derived_timeout``, fails with the charm's error set, and the space goes on."""
    runtime.derived_timeout = 0.05
    unit = runtime.unit(space, "hangs")
    a = unit.cell("a", 1)

    async def hang_on_two(a: int) -> int:
        if a == 2:
            await asyncio.Event().wait()
        return a * 10

    out = unit.derive("times_ten", hang_on_two, inputs=[a])
    plus = unit.derive("plus_one", lambda a: a + 1, inputs=[a])
    await unit.start()
    await put(a, 2)
    await runtime.idle()
    assert (out.get(), plus.get()) == (10, 3)
    assert [type(r.error) for r in errors] == [DerivedTimeoutError]
    assert "start_job" in str(errors[0].error)
    assert runtime.cell(*unit.error_address.doc).get()["type"] == "DerivedTimeoutError"
    await put(a, 3)
    await runtime.idle()
    assert (out.get(), plus.get()) == (30, 4)


async def test_a_space_whose_last_charm_stopped_has_no_host_left(
    runtime: Runtime, space: SpaceDID
) -> None:
    """A server hosts many spaces over time: a space whose charms all stopped keeps no
    host following its commits (it would run on every commit, for ever)."""
    unit = runtime.unit(space, "short-lived")
    a = unit.cell("a", 1)
    unit.derive("double", lambda a: a * 2, inputs=[a])
    await unit.start()
    assert runtime.host(space).units
    unit.stop()
    assert space not in runtime._hosts
    async with runtime.edit():
        a.set(2)
    await runtime.idle()  # nobody propagates, nothing is pending
    unit = runtime.unit(space, "short-lived")  # started again, it gets a host again
    again = unit.derive("double", lambda a: a * 2, inputs=[a])
    await unit.start()
    assert again.get() == 4
