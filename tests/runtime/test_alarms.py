"""Alarms: an event sent to a charm's stream when the time held in a cell comes."""

from __future__ import annotations

import random
from typing import Any

from charmspace import Runtime
from charmspace.errors import IntegrationError
from charmspace.identity import Identity
from charmspace.patterns import Default, alarm, cell, handler, pattern
from charmspace.runtime import Cell, FakeClock
from charmspace.storage import Storage, creation_proof
from charmspace.types import SpaceDID

USER = Identity.from_passphrase("runtime suite: user")
SERVICE = Identity.from_passphrase("runtime suite: service")


@handler
def ring(event: dict[str, Any], *, rings: Cell[list[Any]], fail: bool) -> None:
    if fail:
        raise IntegrationError("upstream_503", "the alarm's work failed")
    from charmspace.patterns import now

    rings.set([*(rings.get() or []), [now(), event]])


@pattern
def alarm_clock(due: Default[Cell[float | None], None], fail: Default[bool, False]) -> Any:
    rings = cell([])
    alarm(due, ring.bind(rings=rings, fail=fail), {"why": "due"})
    return {"due": due, "rings": rings}


async def test_an_alarm_sends_its_event_once_at_the_time_in_its_cell(
    runtime: Runtime, space: SpaceDID, clock: FakeClock
) -> None:
    start = clock.now()
    charm = await runtime.charms.create(alarm_clock, space=space, inputs={"due": start + 100})
    await clock.advance(99)
    await runtime.idle()
    assert charm["rings"].get() == []
    await clock.advance(1)
    await runtime.idle()
    assert charm["rings"].get() == [[start + 100, {"why": "due"}]]
    await clock.advance(3600)
    await runtime.idle()
    assert len(charm["rings"].get()) == 1


async def test_changing_the_time_rearms_and_none_disarms(
    runtime: Runtime, space: SpaceDID, clock: FakeClock
) -> None:
    start = clock.now()
    charm = await runtime.charms.create(alarm_clock, space=space, inputs={"due": start + 100})
    async with runtime.edit():
        charm["due"].set(start + 10)
    await clock.advance(10)
    await runtime.idle()
    assert [t for t, _ in charm["rings"].get()] == [start + 10]
    async with runtime.edit():
        charm["due"].set(None)
    await clock.advance(1000)
    await runtime.idle()
    assert len(charm["rings"].get()) == 1


async def test_an_idle_alarm_writes_nothing(
    runtime: Runtime, space: SpaceDID, clock: FakeClock
) -> None:
    charm = await runtime.charms.create(
        alarm_clock, space=space, inputs={"due": clock.now() + 10_000}
    )
    await runtime.idle()
    head = runtime.storage.head(space, runtime.principal)
    for _ in range(120):
        await clock.advance(1)
    await runtime.idle()
    assert runtime.storage.head(space, runtime.principal) == head
    assert charm["rings"].get() == []


async def test_an_alarms_event_runs_as_the_charms_creator(
    runtime: Runtime, clock: FakeClock, bob: Identity
) -> None:
    """No user caused the alarm: its event acts for whoever created the charm, in the
    charm's space (here Bob's, where the runtime's own user may not write)."""
    home = bob.derive("bob-home")
    space = runtime.storage.create_space(home.did, bob.did, proof=creation_proof(home, bob.did))
    start = clock.now()
    charm = await runtime.charms.create(
        alarm_clock, space=space.space, principal=bob.did, inputs={"due": start + 10}
    )
    await clock.advance(10)
    await runtime.idle()
    assert runtime.read(charm["rings"].address, bob.did) == [[start + 10, {"why": "due"}]]
    last = runtime.storage.log(space.space, bob.did)[-1]
    assert last.principal == bob.did


async def test_a_time_that_passed_while_stopped_fires_at_start(
    lasting_store: str | Storage, clock: FakeClock
) -> None:
    first = Runtime(
        lasting_store, identity=USER, service=SERVICE, clock=clock, random=random.Random(0)
    )
    space = first.create_space(name="home")
    charm = await first.charms.create(alarm_clock, space=space, inputs={"due": clock.now() + 60})
    id = charm.id
    await first.close()
    await clock.advance(600)
    second = Runtime(
        lasting_store, identity=USER, service=SERVICE, clock=clock, random=random.Random(0)
    )
    try:
        again = await second.charms.get(space, id)
        await second.idle()
        assert len(again["rings"].get()) == 1
    finally:
        await second.close()


async def test_a_failing_event_is_retried_with_a_growing_back_off(
    runtime: Runtime, space: SpaceDID, clock: FakeClock
) -> None:
    fired: list[float] = []
    charm = await runtime.charms.create(
        alarm_clock, space=space, inputs={"due": clock.now() + 1, "fail": True}
    )
    runtime.on_error(lambda report: fired.append(clock.now()))
    await runtime.idle()
    start = clock.now()
    for _ in range(200):
        await clock.advance(1)
        await runtime.idle()
    assert [round(t - start) for t in fired] == [1, 31, 91, 211][: len(fired)]
    assert len(fired) == 3  # then 30 s, then 60 s later; the next would be 120 s on
    assert charm["rings"].get() == []
