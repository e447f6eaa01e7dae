"""Durable delivery: a crash between the sender's commit and the target's loses nothing
and applies nothing twice.

A send staged by a handler is written to the sender charm's **outbox** in the
sender's own commit. The target records each delivery id it consumed in its
**inbox**, in the same commit as the handler's effect, and skips an id it has
seen. Once the target's outcome is final, the sender's outbox entry is cleared.
When a charm starts (after a restart, say), whatever is still in its outbox is
sent again; the inbox makes the second delivery a no-op if the first one had
landed.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charmspace.runtime.address import Address
from charmspace.runtime.transaction import Transaction
from charmspace.storage.ids import entity_id
from charmspace.types import DID, EntityId, JSONValue

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime
    from charmspace.runtime.unit import Unit

log = logging.getLogger(__name__)

INBOX_KEEP = 1000
"""Delivery ids a charm remembers; redeliveries come within moments, not thousands of events."""


def outbox_id(unit_id: EntityId) -> EntityId:
    return entity_id({"outbox": unit_id})


def inbox_id(unit_id: EntityId) -> EntityId:
    return entity_id({"inbox": unit_id})


@dataclass(eq=False, slots=True)
class StagedSend:
    """A send waiting for its sender's commit; ``outbox`` is set when that commit is built."""

    delivery_id: str
    target: Address
    payload: JSONValue
    principal: DID
    outbox: Address | None = None


@dataclass(eq=False, slots=True)
class Staged:
    """The sends one transaction staged, written to the outbox when it commits."""

    unit: Unit
    sends: list[StagedSend] = field(default_factory=list)


def stage(tx: Transaction, unit: Unit, target: Address, payload: JSONValue) -> StagedSend:
    """Record a send in ``tx``: it reaches the sender's outbox in the same commit."""
    send = StagedSend(secrets.token_hex(8), target, payload, tx.principal)
    if tx.staged is None:
        tx.staged = Staged(unit)
        tx.before_commit(_write_outbox)
    tx.staged.sends.append(send)
    return send


def _write_outbox(tx: Transaction) -> None:
    staged = tx.staged
    if staged is None or not staged.sends:
        return
    space = tx.writer or staged.unit.space
    address = Address(space, outbox_id(staged.unit.id))
    current = tx.read_doc(space, address.id)
    entries: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    for send in staged.sends:
        send.outbox = address
        entries[send.delivery_id] = {
            "to": {
                "space": send.target.space,
                "id": send.target.id,
                "path": list(send.target.path),
            },
            "event": send.payload,
            "principal": send.principal,
        }
    tx.write_doc(space, address.id, entries)


def already_consumed(tx: Transaction, unit: Unit, delivery_id: str) -> bool:
    """Whether the target charm applied this delivery before (read in its transaction)."""
    inbox = tx.read_doc(unit.space, inbox_id(unit.id))
    return isinstance(inbox, dict) and delivery_id in inbox


def consume(tx: Transaction, unit: Unit, delivery_id: str, now: float) -> None:
    """Record ``delivery_id`` in the target's inbox, in the handler's own commit."""
    space = tx.writer or unit.space
    current = tx.read_doc(space, inbox_id(unit.id))
    entries = dict(current) if isinstance(current, dict) else {}
    entries[delivery_id] = now
    if len(entries) > INBOX_KEEP:
        newest = sorted(entries.items(), key=lambda kv: kv[1])[-INBOX_KEEP:]
        entries = dict(newest)
    tx.write_doc(space, inbox_id(unit.id), entries)


def clear(runtime: Runtime, outbox: Address, delivery_id: str) -> None:
    """The delivery's outcome is final: drop it from the sender's outbox."""
    tx = Transaction(runtime, runtime.service_did, meta={"outbox": "delivered"})
    try:
        current = tx.read_doc(outbox.space, outbox.id)
        if isinstance(current, dict) and delivery_id in current:
            tx.write_doc(
                outbox.space, outbox.id, {k: v for k, v in current.items() if k != delivery_id}
            )
        tx.commit(on_durable=lambda _result: None)
    except Exception:
        tx.abort()
        log.exception("could not clear a delivered event from its outbox")


def pending(runtime: Runtime, unit: Unit) -> list[StagedSend]:
    """What the unit's outbox still holds (sends whose outcome was never recorded)."""
    address = Address(unit.space, outbox_id(unit.id))
    doc = Transaction(runtime, runtime.service_did).read_doc(unit.space, address.id)
    out: list[StagedSend] = []
    if not isinstance(doc, dict):
        return out
    for delivery_id, entry in doc.items():
        try:
            to = entry["to"]
            target = Address(str(to["space"]), str(to["id"]), tuple(to["path"]))
            out.append(
                StagedSend(delivery_id, target, entry["event"], str(entry["principal"]), address)
            )
        except (KeyError, TypeError):
            log.warning("skipping a malformed outbox entry", extra={"charm": unit.id})
    return out
