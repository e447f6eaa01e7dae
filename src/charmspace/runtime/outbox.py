"""Durable delivery: a crash between the sender's commit and the target's loses nothing
and applies nothing twice, and a resent event runs only as the principal who sent it.

**Outbox.** A send staged by a handler is written in the sender's own commit:
one *entry document* per send (target, event, claimed principal, sequence
number) and the charm's *outbox index* (``{"next": n, "pending": {delivery id:
seq}}``), which lists the entries whose outcome is not final yet. Once the
target's outcome is final, the entry is deleted and dropped from the index.
When a charm starts (after a restart, say), whatever the index still lists is
sent again, in sequence order.

**Who a resent event runs as.** Anyone with WRITE on the sender's space can
write an outbox entry, so the principal written *in* the entry proves nothing:
Bob could name Alice and Alice's stream and, after a restart, have it run as
Alice. A resent event therefore runs only as the principal storage recorded for
the commit that wrote its entry document (the entry's current revision names
its commit; the space's log names that commit's principal). A legitimate entry
is always written by the transaction that staged the send, whose principal is
the one the event runs as, so the two agree; an entry whose claimed principal
differs from its committer is dropped with a warning. Entries in the layout
used before this check (all entries in one document, rewritten by every send)
cannot be attributed to a committer and are dropped the same way.

**Exactly once.** Every send of an outbox gets the next number of that outbox's
sequence, and records the outbox's *low mark*: the lowest sequence number still
pending when it was staged. Entries below a low mark were cleared before it,
so they are never sent again. The target's inbox keeps, per sender — the outbox
and the principal who committed to it, so one sender cannot make the inbox
forget another's deliveries — the highest low mark seen and the consumed
sequence numbers at or above it. A delivery below the low mark, or one it has
already consumed, is skipped. Nothing ages out while the sender's outbox still
holds the entry; the inbox holds one small record per sender, whose list grows
only while one of that sender's entries is stuck undelivered (until the next
start resends it).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charmspace.runtime.address import Address
from charmspace.runtime.transaction import Transaction
from charmspace.storage import DELETE
from charmspace.storage.ids import entity_id
from charmspace.types import DID, EntityId, JSONValue

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime
    from charmspace.runtime.unit import Unit

log = logging.getLogger(__name__)


def outbox_id(unit_id: EntityId) -> EntityId:
    """The outbox index of a charm."""
    return entity_id({"outbox": unit_id})


def entry_id(unit_id: EntityId, delivery_id: str) -> EntityId:
    """The document holding one send of a charm's outbox."""
    return entity_id({"outbox": unit_id, "delivery": delivery_id})


def inbox_id(unit_id: EntityId) -> EntityId:
    return entity_id({"inbox": unit_id})


@dataclass(eq=False, slots=True)
class StagedSend:
    """A send waiting for its sender's commit; ``outbox``, ``seq`` and ``low`` are set
    when that commit is built (``unit_id``: the sending charm)."""

    delivery_id: str
    target: Address
    payload: JSONValue
    principal: DID
    unit_id: EntityId
    outbox: Address | None = None
    seq: int = 0
    low: int = 0

    @property
    def sender(self) -> str:
        """The inbox's key for this send's sender: its outbox and its principal."""
        assert self.outbox is not None
        return f"{self.outbox.space} {self.outbox.id} {self.principal}"


@dataclass(eq=False, slots=True)
class Staged:
    """The sends one transaction staged, written to the outbox when it commits."""

    unit: Unit
    sends: list[StagedSend] = field(default_factory=list)


def stage(tx: Transaction, unit: Unit, target: Address, payload: JSONValue) -> StagedSend:
    """Record a send in ``tx``: it reaches the sender's outbox in the same commit."""
    send = StagedSend(secrets.token_hex(8), target, payload, tx.principal, unit.id)
    if tx.staged is None:
        tx.staged = Staged(unit)
        tx.before_commit(_write_outbox)
    tx.staged.sends.append(send)
    return send


def _index(value: JSONValue) -> tuple[int, dict[str, int]]:
    """``(next, pending)`` of an outbox index (an empty one for anything else)."""
    if isinstance(value, dict) and isinstance(value.get("pending"), dict):
        nxt = value.get("next")
        pending = {k: v for k, v in value["pending"].items() if isinstance(v, int)}
        return (nxt if isinstance(nxt, int) else 1), pending
    return 1, {}


def _write_outbox(tx: Transaction) -> None:
    staged = tx.staged
    if staged is None or not staged.sends:
        return
    space = tx.writer or staged.unit.space
    address = Address(space, outbox_id(staged.unit.id))
    nxt, pending = _index(tx.read_doc(space, address.id))
    low = min([nxt, *pending.values()])
    for send in staged.sends:
        send.outbox = address
        send.seq, send.low = nxt, low
        nxt += 1
        pending[send.delivery_id] = send.seq
        tx.write_doc(
            space,
            entry_id(staged.unit.id, send.delivery_id),
            {
                "to": {
                    "space": send.target.space,
                    "id": send.target.id,
                    "path": list(send.target.path),
                },
                "event": send.payload,
                "principal": send.principal,
                "seq": send.seq,
                "low": send.low,
            },
        )
    tx.write_doc(space, address.id, {"next": nxt, "pending": pending})


# --- the target's side ---------------------------------------------------------------


def _sender_record(inbox: JSONValue, sender: str) -> tuple[int, list[int]]:
    if isinstance(inbox, dict) and isinstance(inbox.get("senders"), dict):
        record = inbox["senders"].get(sender)
        if isinstance(record, dict):
            low, seen = record.get("low"), record.get("seen")
            return (low if isinstance(low, int) else 0), (
                [s for s in seen if isinstance(s, int)] if isinstance(seen, list) else []
            )
    return 0, []


def already_consumed(tx: Transaction, unit: Unit, send: StagedSend) -> bool:
    """Whether the target charm applied this delivery before (read in its transaction)."""
    low, seen = _sender_record(tx.read_doc(unit.space, inbox_id(unit.id)), send.sender)
    return send.seq < low or send.seq in seen


def consume(tx: Transaction, unit: Unit, send: StagedSend) -> None:
    """Record the delivery in the target's inbox, in the handler's own commit."""
    space = tx.writer or unit.space
    current = tx.read_doc(space, inbox_id(unit.id))
    senders: dict[str, Any] = {}
    if isinstance(current, dict) and isinstance(current.get("senders"), dict):
        senders = dict(current["senders"])  # an inbox of the old layout is simply replaced
    low, seen = _sender_record(current, send.sender)
    low = max(low, send.low)
    senders[send.sender] = {"low": low, "seen": sorted({s for s in seen if s >= low} | {send.seq})}
    tx.write_doc(space, inbox_id(unit.id), {"senders": senders})


# --- clearing and resending ----------------------------------------------------------


def clear(runtime: Runtime, outbox: Address, unit_id: EntityId, delivery_id: str) -> None:
    """The delivery's outcome is final: drop it from the sender's outbox."""
    # The service clears it: the event's own principal may since have lost WRITE
    # there, and a stuck entry would be sent again at every start.
    log.debug("service identity used", extra={"reason": "clear a delivered outbox entry"})
    tx = Transaction(runtime, runtime.service_did, meta={"outbox": "delivered"})
    try:
        nxt, pending = _index(tx.read_doc(outbox.space, outbox.id))
        if delivery_id in pending:
            del pending[delivery_id]
            tx.write_doc(outbox.space, outbox.id, {"next": nxt, "pending": pending})
        entry = entry_id(unit_id, delivery_id)
        if tx.read_doc(outbox.space, entry) is not None:
            tx.write_doc(outbox.space, entry, DELETE)
        tx.commit(on_durable=lambda _result: None)
    except Exception:
        tx.abort()
        log.exception("could not clear a delivered event from its outbox")


def pending(runtime: Runtime, unit: Unit) -> list[StagedSend]:
    """What the unit's outbox still holds, oldest first, each as the principal who sent it.

    An entry whose claimed principal is not the one that committed it, or that
    cannot be read, is dropped from the outbox with a warning.
    """
    service = runtime.service_did
    log.debug("service identity used", extra={"reason": "read an outbox to resend it"})
    space = unit.space
    address = Address(space, outbox_id(unit.id))
    index = Transaction(runtime, service).read_doc(space, address.id)
    if isinstance(index, dict) and "pending" not in index:
        if index:
            _drop_legacy(runtime, address, len(index))
        return []
    _, listed = _index(index)
    out: list[StagedSend] = []
    for delivery_id, seq in sorted(listed.items(), key=lambda kv: kv[1]):
        send = _verified(runtime, unit, address, delivery_id, seq)
        if send is None:
            clear(runtime, address, unit.id, delivery_id)
        else:
            out.append(send)
    return out


def _verified(
    runtime: Runtime, unit: Unit, address: Address, delivery_id: str, seq: int
) -> StagedSend | None:
    """The entry as a send, if its committer vouches for it; else None (logged)."""
    storage, service, space = runtime.storage, runtime.service_did, unit.space
    rev = storage.read(space, entry_id(unit.id, delivery_id), service)
    if not rev.exists:
        return None  # cleared while the index was being written: nothing to send
    entry: Any = rev.value
    try:
        claimed = str(entry["principal"])
        to = entry["to"]
        target = Address(str(to["space"]), str(to["id"]), tuple(to["path"]))
        low = int(entry.get("low", seq))
        payload = entry["event"]
    except (KeyError, TypeError, ValueError, AttributeError):
        log.warning(
            "skipping a malformed outbox entry", extra={"charm": unit.id, "outbox": str(address)}
        )
        return None
    recorded = storage.committer(space, rev.seq, service)
    if recorded != claimed:
        log.warning(
            "dropping an outbox entry of %s that claims principal %s but was committed by %s",
            address,
            claimed,
            recorded,
            extra={
                "charm": unit.id,
                "outbox": str(address),
                "claimed": claimed,
                "recorded": recorded,
            },
        )
        return None
    return StagedSend(delivery_id, target, payload, claimed, unit.id, address, seq, low)


def _drop_legacy(runtime: Runtime, address: Address, count: int) -> None:
    """An outbox of the old layout: its entries name no verifiable sender, so they go."""
    log.warning(
        "dropping %d outbox entries of %s stored in the old layout: the principal who "
        "sent them cannot be verified",
        count,
        address,
        extra={"outbox": str(address)},
    )
    log.debug("service identity used", extra={"reason": "drop an unverifiable outbox"})
    tx = Transaction(runtime, runtime.service_did, meta={"outbox": "dropped"})
    try:
        tx.write_doc(address.space, address.id, DELETE)
        tx.commit()
    except Exception:
        tx.abort()
        log.exception("could not drop an outbox of the old layout")
