"""Threats to delivery: each test is an attack on how events reach charms, and its refusal.

Alice runs a counter in her own space; Bob owns a shop charm in his. Bob can
write anything in his own space — including his charm's outbox — and nothing
in Alice's. Restarts are simulated by opening a second runtime on the same
storage (the same in-memory store, or the same SQLite directory).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.identity import Identity
from charmspace.runtime import Address, Cell, FakeClock, Stream, Unit, outbox
from charmspace.storage import Capability, Storage, creation_proof
from charmspace.types import SpaceDID

ALICE = Identity.from_passphrase("delivery threats: alice")
BOB = Identity.from_passphrase("delivery threats: bob")
SERVICE = Identity.from_passphrase("delivery threats: service")
SECRET = "payload-secret-4242"

Open = Callable[[], Runtime]


@pytest.fixture
def open_runtime(lasting_store: str | Storage) -> Open:
    """Opens Alice's runtime over one store, again and again (each open is a restart)."""
    return lambda: Runtime(
        lasting_store, identity=ALICE, service=SERVICE, clock=FakeClock(), random=random.Random(0)
    )


async def alices_counter(runtime: Runtime) -> tuple[Stream[Any], Cell[Any]]:
    space = runtime.create_space(name="counter")
    unit = runtime.unit(space, "counter")
    count = unit.cell("count", 0)

    def increment(event: Any, *, count: Cell[Any]) -> None:
        count.set(count.get() + 1)

    stream = unit.handler("increment", increment, state={"count": count})
    await unit.start()
    return stream, count


def bobs_space(runtime: Runtime) -> SpaceDID:
    shop = BOB.derive("shop")
    runtime.storage.ensure_space(shop.did, BOB.did, proof=creation_proof(shop, BOB.did))
    return shop.did


async def bobs_shop(runtime: Runtime) -> Unit:
    """Bob's charm; starting it (here: after a restart) resends its outbox."""
    unit = runtime.unit(bobs_space(runtime), "shop")
    unit.handler("noop", lambda event: None)
    await unit.start(BOB.did)
    return unit


def target_json(stream: Stream[Any]) -> dict[str, Any]:
    a: Address = stream.address
    return {"space": a.space, "id": a.id, "path": list(a.path)}


# --- who a resent event runs as -----------------------------------------------------------


def pending_rows(runtime: Runtime, unit: Unit) -> list[tuple[str, Any]]:
    """The entry rows the unit's outbox still holds, key and value."""
    rows = runtime.storage.rows(unit.space, outbox.outbox_box(unit.id), SERVICE.did)
    return [(key, row.value) for key, row in rows]


async def test_a_forged_outbox_entry_naming_alice_is_not_resent_as_alice(
    open_runtime: Open, caplog: pytest.LogCaptureFixture
) -> None:
    """Bug: a resent outbox entry ran as the principal written in the entry, which
    anyone with WRITE on the outbox's space writes. Bob named Alice and Alice's
    counter in his own charm's outbox; after a restart the counter went up as Alice."""
    runtime = open_runtime()
    increment, count = await alices_counter(runtime)
    shop = await bobs_shop(runtime)
    async with runtime.edit(BOB.did) as tx:  # Bob, in his own space, writes the entry by hand
        tx.write_row(
            shop.space,
            outbox.outbox_box(shop.id),
            outbox.entry_key(1),
            {
                "to": target_json(increment),
                "event": {"note": SECRET},
                "principal": ALICE.did,
                "seq": 1,
                "low": 1,
            },
        )
        tx.write_row(shop.space, outbox.COUNTERS, shop.id, {"next": 2})
    await runtime.close()

    again = open_runtime()
    _, count = await alices_counter(again)
    with caplog.at_level(logging.WARNING, logger="charmspace"):
        shop = await bobs_shop(again)
        await again.idle()
    assert count.get() == 0
    [warning] = [r for r in caplog.records if "claims principal" in r.getMessage()]
    assert ALICE.did in warning.getMessage() and BOB.did in warning.getMessage()
    assert SECRET not in caplog.text
    assert pending_rows(again, shop) == []
    await again.close()


async def test_a_forged_entry_document_of_the_earlier_layout_is_not_resent_as_alice(
    open_runtime: Open, caplog: pytest.LogCaptureFixture
) -> None:
    """The same forgery in the layout before rows (a document per entry, listed by an
    index document): the entry is checked against the committer of its document."""
    runtime = open_runtime()
    increment, count = await alices_counter(runtime)
    shop = await bobs_shop(runtime)
    async with runtime.edit(BOB.did) as tx:  # Bob, in his own space, writes the entry by hand
        tx.write_doc(
            shop.space,
            outbox.entry_id(shop.id, "forged"),
            {
                "to": target_json(increment),
                "event": {"note": SECRET},
                "principal": ALICE.did,
                "seq": 1,
                "low": 1,
            },
        )
        tx.write_doc(shop.space, outbox.outbox_id(shop.id), {"next": 2, "pending": {"forged": 1}})
    await runtime.close()

    again = open_runtime()
    _, count = await alices_counter(again)
    with caplog.at_level(logging.WARNING, logger="charmspace"):
        shop = await bobs_shop(again)
        await again.idle()
    assert count.get() == 0
    [warning] = [r for r in caplog.records if "claims principal" in r.getMessage()]
    assert ALICE.did in warning.getMessage() and BOB.did in warning.getMessage()
    assert SECRET not in caplog.text
    index: Any = again.storage.read(shop.space, outbox.outbox_id(shop.id), BOB.did).value
    assert index["pending"] == {}
    await again.close()


async def test_a_forged_entry_in_the_old_outbox_layout_is_not_resent(
    open_runtime: Open, caplog: pytest.LogCaptureFixture
) -> None:
    """Bug: the same forgery in the layout outboxes had before (one document holding
    every entry with its principal) incremented Alice's counter after a restart."""
    runtime = open_runtime()
    increment, count = await alices_counter(runtime)
    shop = await bobs_shop(runtime)
    async with runtime.edit(BOB.did) as tx:
        tx.write_doc(
            shop.space,
            outbox.outbox_id(shop.id),
            {
                "forged": {
                    "to": target_json(increment),
                    "event": {"note": SECRET},
                    "principal": ALICE.did,
                }
            },
        )
    await runtime.close()

    again = open_runtime()
    _, count = await alices_counter(again)
    with caplog.at_level(logging.WARNING, logger="charmspace"):
        await bobs_shop(again)
        await again.idle()
    assert count.get() == 0
    assert "old layout" in caplog.text
    assert SECRET not in caplog.text
    await again.close()


async def test_a_genuine_send_still_survives_a_restart_as_its_sender(
    open_runtime: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check refuses forgeries only: Alice's own pending send, cut off by a crash
    before delivery, still runs after the restart — as Alice."""
    runtime = open_runtime()
    increment, count = await alices_counter(runtime)
    unit = runtime.unit(runtime.create_space(name="clicker"), "clicker")

    def click(event: Any, *, counter: Stream[Any]) -> None:
        counter.send({})

    clicks = unit.handler("click", click, state={"counter": increment})
    await unit.start()
    real_dispatch = runtime.scheduler.dispatch

    def crash_before_delivery(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("send") is None:
            real_dispatch(*args, **kwargs)

    monkeypatch.setattr(runtime.scheduler, "dispatch", crash_before_delivery)
    await clicks.send({})
    await runtime.idle()
    assert count.get() == 0
    await runtime.close()
    monkeypatch.undo()

    again = open_runtime()
    _, count = await alices_counter(again)
    unit = again.unit(again.create_space(name="clicker"), "clicker")
    unit.handler("click", click, state={"counter": increment})
    await unit.start()
    await again.idle()
    assert count.get() == 1
    await again.close()


# --- applied exactly once -------------------------------------------------------------------


async def test_a_redelivery_after_a_thousand_other_deliveries_is_still_skipped(
    open_runtime: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug: the inbox remembered the last 1,000 delivery ids, so a sender that
    restarted after the target had consumed 1,000 other deliveries got its
    pending entry applied twice."""
    runtime = open_runtime()
    increment, count = await alices_counter(runtime)
    unit = runtime.unit(runtime.create_space(name="clicker"), "clicker")

    def click(event: Any, *, counter: Stream[Any]) -> None:
        for _ in range(event["times"]):
            counter.send({})

    def build(rt: Runtime) -> tuple[Unit, Stream[Any]]:
        u = rt.unit(rt.create_space(name="clicker"), "clicker")
        return u, u.handler("click", click, state={"counter": increment})

    unit, clicks = build(runtime)
    await unit.start()
    real_clear = outbox.clear
    monkeypatch.setattr(outbox, "clear", lambda *args: None)  # a crash before clearing
    await clicks.send({"times": 1})
    await runtime.idle()
    monkeypatch.setattr(outbox, "clear", real_clear)
    await clicks.send({"times": 1000})
    await runtime.idle()
    assert count.get() == 1001
    await runtime.close()

    again = open_runtime()
    _, count = await alices_counter(again)
    unit, _ = build(again)
    await unit.start()  # resends the one entry whose clearing crashed
    await again.idle()
    assert count.get() == 1001
    assert pending_rows(again, unit) == []
    await again.close()


def forward(event: Any, *, counter: Stream[Any]) -> None:
    counter.send({})


async def start_shop(rt: Runtime, increment: Stream[Any]) -> tuple[Unit, Stream[Any]]:
    """Bob's shop with a ``forward`` handler that tells Alice's counter."""
    unit = rt.unit(bobs_space(rt), "shop")
    stream = unit.handler("forward", forward, state={"counter": increment})
    await unit.start(BOB.did)
    return unit, stream


async def alice_pending_in_bobs_shop(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> tuple[Stream[Any], Unit, list[tuple[str, Any]]]:
    """Alice's event passes through Bob's shop (she may write there; Bob may increment
    her counter too) and a crash leaves it undelivered in the shop's outbox."""
    increment, _ = await alices_counter(runtime)
    runtime.storage.set_acl(increment.address.space, ALICE.did, BOB.did, Capability.WRITE)
    runtime.storage.set_acl(bobs_space(runtime), BOB.did, ALICE.did, Capability.WRITE)
    shop, forwards = await start_shop(runtime, increment)
    real_dispatch = runtime.scheduler.dispatch

    def crash_before_delivery(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("send") is None:
            real_dispatch(*args, **kwargs)

    monkeypatch.setattr(runtime.scheduler, "dispatch", crash_before_delivery)
    assert (await forwards.send({})).ok  # runs as Alice in Bob's shop
    await runtime.idle()
    monkeypatch.undo()
    return increment, shop, pending_rows(runtime, shop)


async def test_bob_cannot_make_the_counter_skip_alices_pending_delivery(
    open_runtime: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox keys its records by outbox *and* committing principal. Bob plants an
    entry of his own in his shop's outbox, resent before Alice's pending one, whose
    low mark claims every lower sequence number is done; keyed by outbox alone,
    the counter would then skip Alice's event."""
    runtime = open_runtime()
    increment, shop, pending = await alice_pending_in_bobs_shop(runtime, monkeypatch)
    [(_, alices)] = pending
    async with runtime.edit(BOB.did) as tx:
        tx.write_row(  # sorts before Alice's entry, so it is resent first
            shop.space,
            outbox.outbox_box(shop.id),
            outbox.entry_key(0),
            {
                "to": target_json(increment),
                "event": {},
                "principal": BOB.did,
                "seq": 0,
                "low": 1000,
            },
        )
    assert alices["seq"] == 1
    await runtime.close()

    again = open_runtime()
    _, count = await alices_counter(again)
    await start_shop(again, increment)  # resends Bob's entry (as Bob), then Alice's (as Alice)
    await again.idle()
    assert count.get() == 2
    await again.close()


async def test_bob_rewriting_alices_pending_entry_cannot_send_it_as_alice(
    open_runtime: Open, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Tampering with a genuine entry makes Bob its writer: it claims Alice, so it
    is dropped instead of running as Alice with Bob's event."""
    runtime = open_runtime()
    increment, shop, pending = await alice_pending_in_bobs_shop(runtime, monkeypatch)
    [(key, genuine)] = pending
    async with runtime.edit(BOB.did) as tx:
        tx.write_row(
            shop.space, outbox.outbox_box(shop.id), key, {**genuine, "event": {"note": SECRET}}
        )
    await runtime.close()

    again = open_runtime()
    _, count = await alices_counter(again)
    with caplog.at_level(logging.WARNING, logger="charmspace"):
        await start_shop(again, increment)
        await again.idle()
    assert count.get() == 0
    assert "claims principal" in caplog.text and SECRET not in caplog.text
    await again.close()
