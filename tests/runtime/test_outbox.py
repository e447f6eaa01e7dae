"""Durable delivery (R8): a handler's send survives a crash between the sender's
commit and the target's, and is applied exactly once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.identity import Identity
from charmspace.runtime import Cell, FakeClock, Stream, Unit, outbox
from charmspace.storage import Storage
from charmspace.types import SpaceDID

USER = Identity.from_passphrase("outbox suite: user")
SERVICE = Identity.from_passphrase("outbox suite: service")


Open = Callable[[], Runtime]


@pytest.fixture
def open_runtime(lasting_store: str | Storage) -> Open:
    """Opens a runtime over one store, again and again (each open is a restart)."""
    return lambda: Runtime(
        lasting_store, identity=USER, service=SERVICE, clock=FakeClock(), random=random.Random(0)
    )


def ledger(runtime: Runtime, space: SpaceDID) -> tuple[Unit, Stream[Any], Cell[Any]]:
    """The target: appends each event's line to its entries."""
    unit = runtime.unit(space, "ledger")
    entries = unit.cell("entries", [])

    def append(event: Any, *, entries: Cell[Any]) -> None:
        entries.push(event["line"])

    return unit, unit.handler("append", append, state={"entries": entries}), entries


def shop(runtime: Runtime, space: SpaceDID, append: Stream[Any]) -> tuple[Unit, Stream[Any]]:
    """The sender: records a sale in its own space and tells the ledger in another."""
    unit = runtime.unit(space, "shop")
    sales = unit.cell("sales", 0)

    def sell(event: Any, *, sales: Cell[Any], ledger: Stream[Any]) -> None:
        sales.set(sales.get() + 1)
        ledger.send({"line": event["item"]})

    return unit, unit.handler("sell", sell, state={"sales": sales, "ledger": append})


async def build(runtime: Runtime) -> tuple[Unit, Stream[Any], Cell[Any], Unit]:
    shop_space = runtime.create_space(name="shop")
    ledger_space = runtime.create_space(name="ledger")
    target, append, entries = ledger(runtime, ledger_space)
    sender, sell = shop(runtime, shop_space, append)
    await target.start()
    await sender.start()
    return sender, sell, entries, target


def outbox_of(runtime: Runtime, unit: Unit) -> Any:
    """The sends the unit's outbox still holds, key → seq (None: it never sent one)."""
    storage, space, service = runtime.storage, unit.space, runtime.service_did
    if storage.row(space, outbox.COUNTERS, unit.id, service) is None:
        return None
    rows = storage.rows(space, outbox.outbox_box(unit.id), service)
    return {key: row.value["seq"] for key, row in rows}  # type: ignore[call-overload,index]


async def test_a_send_goes_through_the_outbox_in_the_senders_commit(open_runtime: Open) -> None:
    runtime = open_runtime()
    sender, sell, entries, _ = await build(runtime)
    seen: list[Any] = []
    runtime.storage.subscribe(sender.space, seen.append)
    assert (await sell.send({"item": "apple"})).ok
    await runtime.idle()
    assert entries.get() == ["apple"]
    # The entry is a row written with the sale and deleted once the ledger committed:
    # the sale is the only commit in the sender's space, and the outbox is empty.
    [sale] = seen
    assert len(sale.ids) == 1
    assert runtime.storage.log(sender.space, USER.did, since=sale.seq - 1)[0].seq == sale.seq
    assert outbox_of(runtime, sender) == {}
    await runtime.close()


async def test_a_crash_before_delivery_delivers_after_restart(
    open_runtime: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = open_runtime()
    sender, sell, entries, _ = await build(runtime)
    real_dispatch = runtime.scheduler.dispatch

    def crash_before_delivery(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("send") is None:
            real_dispatch(*args, **kwargs)

    monkeypatch.setattr(runtime.scheduler, "dispatch", crash_before_delivery)
    await sell.send({"item": "apple"})
    await runtime.idle()
    assert entries.get() == []  # the sale committed; the ledger never heard of it
    assert len(outbox_of(runtime, sender)) == 1
    await runtime.close()

    again = open_runtime()
    sender, _sell, entries, _ = await build(again)  # starting the shop resends its outbox
    await again.idle()
    assert entries.get() == ["apple"]
    assert outbox_of(again, sender) == {}
    await again.close()


async def test_a_crash_after_delivery_does_not_apply_it_twice(
    open_runtime: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = open_runtime()
    sender, sell, entries, _ = await build(runtime)
    monkeypatch.setattr(outbox, "clear", lambda *args: None)  # crash before the outbox is cleared
    await sell.send({"item": "apple"})
    await runtime.idle()
    assert entries.get() == ["apple"]
    assert len(outbox_of(runtime, sender)) == 1
    await runtime.close()
    monkeypatch.undo()

    again = open_runtime()
    sender, sell, entries, _ = await build(again)
    await again.idle()
    assert entries.get() == ["apple"]  # the redelivery was recognised and skipped
    assert outbox_of(again, sender) == {}
    await sell.send({"item": "pear"})
    await again.idle()
    assert entries.get() == ["apple", "pear"]
    await again.close()


async def test_an_aborted_sender_leaves_nothing_in_its_outbox(runtime: Runtime) -> None:
    shop_space = runtime.create_space(name="shop")
    ledger_space = runtime.create_space(name="ledger")
    target, append, entries = ledger(runtime, ledger_space)
    unit = runtime.unit(shop_space, "failing shop")

    def sell(event: Any, *, ledger: Stream[Any]) -> None:
        ledger.send({"line": "never"})
        raise RuntimeError("the sale failed")

    failing = unit.handler("sell", sell, state={"ledger": append})
    await target.start()
    await unit.start()
    assert not (await failing.send({})).ok
    await runtime.idle()
    assert entries.get() == []
    assert outbox_of(runtime, unit) is None


async def test_a_send_to_a_charm_in_the_same_space_completes(open_runtime: Open) -> None:
    """Regression (SQLite): settling a grouped commit ran under the space's commit lock,
    and clearing the outbox in that same space then waited on the lock forever."""
    runtime = open_runtime()
    space = runtime.create_space(name="shop")
    target, append, entries = ledger(runtime, space)
    sender, sell = shop(runtime, space, append)
    await target.start()
    await sender.start()
    assert (await asyncio.wait_for(sell.send({"item": "apple"}), 5)).ok
    await asyncio.wait_for(runtime.idle(), 5)
    assert entries.get() == ["apple"]
    assert outbox_of(runtime, sender) == {}
    await runtime.close()
