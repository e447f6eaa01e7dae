"""Durable delivery: a crash between the sender's commit and the target's loses nothing
and applies nothing twice, and a resent event runs only as the principal who sent it.

**Rows, not documents.** Everything here lives in storage's rows
(:class:`~charmspace.storage.model.Row`), which are inserted and deleted in
the same atomic commits as documents but never enter a space's history:
a send leaves nothing behind once it is delivered, so there is nothing for
pruning to do for it, however many sends a space has made.

**Outbox.** A send staged by a handler is written in the sender's own commit:
one *entry row* per send (target, event, claimed principal, sequence number),
in the box ``outbox <charm>`` under its zero-padded sequence number, and the
charm's counter (``{"next": n}``, the row ``<charm>`` of box ``outbox``).
Once the target's outcome is final, the entry row is deleted. When a charm
starts (after a restart, say), whatever its outbox still holds is sent again,
in sequence order.

**Who a resent event runs as.** Anyone with WRITE on the sender's space can
write an outbox entry, so the principal written *in* the entry proves nothing:
Bob could name Alice and Alice's stream and, after a restart, have it run as
Alice. A resent event therefore runs only as the principal storage recorded
writing its row. A legitimate entry is always written by the transaction that
staged the send, whose principal is the one the event runs as, so the two
agree; an entry whose claimed principal differs from its writer is dropped
with a warning.

**Outboxes written before rows.** Entries of the earlier layout (one
document per send, listed by an index document ``{"next": n, "pending": {...}}``)
are still resent, each as the principal storage recorded for the commit that
wrote its document, and cleared as before; the counter continues from the
index's ``next``. Entries of the layout before that (all in one document) name
no verifiable sender and are dropped the same way.

**Exactly once.** Every send of an outbox gets the next number of that outbox's
sequence, and records the outbox's *low mark*: the lowest sequence number still
pending when it was staged. Entries below a low mark were cleared before it,
so they are never sent again. The target's inbox keeps, per sender — the outbox
and the principal who committed to it, so one sender cannot make the inbox
forget another's deliveries — a row with the highest low mark seen and the
consumed sequence numbers at or above it. A delivery below the low mark, or
one it has already consumed, is skipped. Nothing ages out while the sender's
outbox still holds the entry; the inbox holds one small row per sender, whose
list grows only while one of that sender's entries is stuck undelivered (until
the next start resends it). An inbox document of the earlier layout is read
for a sender that has no row yet.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charmspace.runtime.address import Address
from charmspace.runtime.transaction import CommitResult, Transaction
from charmspace.storage import DELETE
from charmspace.storage.ids import entity_id
from charmspace.types import DID, EntityId, JSONValue, SpaceDID

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime
    from charmspace.runtime.unit import Unit

log = logging.getLogger(__name__)


def outbox_id(unit_id: EntityId) -> EntityId:
    """The outbox index document of a charm (the earlier layout; also names the sender)."""
    return entity_id({"outbox": unit_id})


def entry_id(unit_id: EntityId, delivery_id: str) -> EntityId:
    """The document holding one send of a charm's outbox (the earlier layout)."""
    return entity_id({"outbox": unit_id, "delivery": delivery_id})


def inbox_id(unit_id: EntityId) -> EntityId:
    """The inbox document of a charm (the earlier layout)."""
    return entity_id({"inbox": unit_id})


COUNTERS = "outbox"
"""The box of every charm's outbox counter, keyed by the charm."""


def outbox_box(unit_id: EntityId) -> str:
    """The box of a charm's pending sends, keyed by :func:`entry_key`."""
    return f"outbox {unit_id}"


def inbox_box(unit_id: EntityId) -> str:
    """The box of a charm's inbox rows, keyed by sender."""
    return f"inbox {unit_id}"


def entry_key(seq: int) -> str:
    """An entry row's key: its sequence number, padded so keys sort in sequence order."""
    return f"{seq:012d}"


@dataclass(eq=False, slots=True)
class StagedSend:
    """A send waiting for its sender's commit; ``outbox``, ``seq`` and ``low`` are set
    when that commit is built (``unit_id``: the sending charm; ``legacy``: an entry
    document of the earlier layout)."""

    delivery_id: str
    """Random until the sender commits; then the key of its entry (row or legacy document)."""
    target: Address
    payload: JSONValue
    principal: DID
    unit_id: EntityId
    outbox: Address | None = None
    seq: int = 0
    low: int = 0
    legacy: bool = False

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


def _int(value: JSONValue, name: str) -> int | None:
    found = value.get(name) if isinstance(value, dict) else None
    return found if isinstance(found, int) else None


def _write_outbox(tx: Transaction) -> None:
    staged = tx.staged
    if staged is None or not staged.sends:
        return
    unit_id = staged.unit.id
    space = tx.writer or staged.unit.space
    address = Address(space, outbox_id(unit_id))
    counter = tx.read_row(space, COUNTERS, unit_id)
    legacy_next, legacy_pending = _index(tx.read_doc(space, address.id))
    nxt = _int(counter.value, "next") if counter is not None else None
    if nxt is None:
        nxt = legacy_next
    box = outbox_box(unit_id)
    # The oldest pending entry, not validated at commit: a concurrent clear only
    # raises the true low mark, and a concurrent send conflicts on the counter.
    oldest = tx.runtime.storage.rows(space, box, tx.principal, limit=1)
    pending = [*legacy_pending.values(), *(_int(row.value, "seq") or 0 for _, row in oldest)]
    low = min([nxt, *pending])
    for send in staged.sends:
        send.outbox = address
        send.seq, send.low = nxt, low
        send.delivery_id = entry_key(nxt)  # the entry row's key from here on
        nxt += 1
        tx.write_row(
            space,
            box,
            send.delivery_id,
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
    tx.write_row(space, COUNTERS, unit_id, {"next": nxt})


# --- the target's side ---------------------------------------------------------------


def _record(value: JSONValue) -> tuple[int, list[int]]:
    """``(low, seen)`` of one sender's inbox record."""
    if isinstance(value, dict):
        low, seen = value.get("low"), value.get("seen")
        return (low if isinstance(low, int) else 0), (
            [s for s in seen if isinstance(s, int)] if isinstance(seen, list) else []
        )
    return 0, []


def _sender_record(
    tx: Transaction, space: SpaceDID, unit: Unit, sender: str
) -> tuple[int, list[int]]:
    """The inbox's record of ``sender``: its row, else the earlier layout's document."""
    row = tx.read_row(space, inbox_box(unit.id), sender)
    if row is not None:
        return _record(row.value)
    inbox = tx.read_doc(space, inbox_id(unit.id))
    if isinstance(inbox, dict) and isinstance(inbox.get("senders"), dict):
        return _record(inbox["senders"].get(sender))
    return 0, []


def already_consumed(tx: Transaction, unit: Unit, send: StagedSend) -> bool:
    """Whether the target charm applied this delivery before (read in its transaction)."""
    low, seen = _sender_record(tx, unit.space, unit, send.sender)
    return send.seq < low or send.seq in seen


def consume(tx: Transaction, unit: Unit, send: StagedSend) -> None:
    """Record the delivery in the target's inbox, in the handler's own commit."""
    space = tx.writer or unit.space
    low, seen = _sender_record(tx, space, unit, send.sender)
    low = max(low, send.low)
    record = {"low": low, "seen": sorted({s for s in seen if s >= low} | {send.seq})}
    tx.write_row(space, inbox_box(unit.id), send.sender, record)


# --- clearing and resending ----------------------------------------------------------


def clear(runtime: Runtime, send: StagedSend) -> None:
    """The delivery's outcome is final: drop it from the sender's outbox."""
    outbox = send.outbox
    if outbox is None:
        return
    # The service clears it: the event's own principal may since have lost WRITE
    # there, and a stuck entry would be sent again at every start.
    log.debug("service identity used", extra={"reason": "clear a delivered outbox entry"})
    tx = Transaction(runtime, runtime.service_did, meta={"outbox": "delivered"})
    try:
        if send.legacy:
            nxt, pending = _index(tx.read_doc(outbox.space, outbox.id))
            if send.delivery_id in pending:
                del pending[send.delivery_id]
                tx.write_doc(outbox.space, outbox.id, {"next": nxt, "pending": pending})
            entry = entry_id(send.unit_id, send.delivery_id)
            if tx.read_doc(outbox.space, entry) is not None:
                tx.write_doc(outbox.space, entry, DELETE)
        else:
            tx.write_row(outbox.space, outbox_box(send.unit_id), send.delivery_id, DELETE)
        tx.submit(runtime.store).add_done_callback(_cleared)
    except Exception:
        tx.abort()
        log.exception("could not clear a delivered event from its outbox")


def _cleared(done: asyncio.Future[CommitResult]) -> None:
    if not done.cancelled() and done.exception() is not None:
        # Delivered but still listed: resent at the next start and recognised
        # then by the target's inbox, so nothing runs twice.
        log.error(
            "could not clear a delivered event from its outbox: %s",
            type(done.exception()).__name__,
        )


def pending(runtime: Runtime, unit: Unit) -> list[StagedSend]:
    """What the unit's outbox still holds, oldest first, each as the principal who sent it.

    An entry whose claimed principal is not the one storage recorded writing
    it, or that cannot be read, is dropped from the outbox with a warning.
    """
    service = runtime.service_did
    log.debug("service identity used", extra={"reason": "read an outbox to resend it"})
    space = unit.space
    address = Address(space, outbox_id(unit.id))
    out = _legacy_pending(runtime, unit, address)
    for key, row in runtime.storage.rows(space, outbox_box(unit.id), service):
        send = _verified(unit, address, key, row.value, row.principal, legacy=False)
        if send is None:
            clear(runtime, _unverified(unit, address, key))
        else:
            out.append(send)
    return out


def _unverified(unit: Unit, address: Address, key: str) -> StagedSend:
    """A send naming only where its row is, so that :func:`clear` can delete it."""
    return StagedSend(key, address, None, "", unit.id, address)


def _legacy_pending(runtime: Runtime, unit: Unit, address: Address) -> list[StagedSend]:
    """The entries of the earlier layout, verified by the committer of their documents."""
    storage, service, space = runtime.storage, runtime.service_did, unit.space
    index = storage.read(space, address.id, service).value
    if isinstance(index, dict) and "pending" not in index:
        if index:
            _drop_legacy(runtime, address, len(index))
        return []
    _, listed = _index(index)
    out: list[StagedSend] = []
    for delivery_id, seq in sorted(listed.items(), key=lambda kv: kv[1]):
        rev = storage.read(space, entry_id(unit.id, delivery_id), service)
        send = None
        if rev.exists:  # else cleared while the index was being written: nothing to send
            recorded = storage.committer(space, rev.seq, service)
            send = _verified(unit, address, delivery_id, rev.value, recorded, legacy=True, seq=seq)
        if send is None:
            gone = StagedSend(delivery_id, address, None, "", unit.id, address, seq, legacy=True)
            clear(runtime, gone)
        else:
            out.append(send)
    return out


def _verified(
    unit: Unit,
    address: Address,
    key: str,
    entry: Any,
    recorded: DID | None,
    *,
    legacy: bool,
    seq: int | None = None,
) -> StagedSend | None:
    """The entry as a send, if the principal who wrote it vouches for it; else None (logged)."""
    try:
        claimed = str(entry["principal"])
        to = entry["to"]
        target = Address(str(to["space"]), str(to["id"]), tuple(to["path"]))
        seq = int(entry["seq"]) if seq is None else seq
        low = int(entry.get("low", seq))
        payload = entry["event"]
    except (KeyError, TypeError, ValueError, AttributeError):
        log.warning(
            "skipping a malformed outbox entry", extra={"charm": unit.id, "outbox": str(address)}
        )
        return None
    if recorded != claimed:
        log.warning(
            "dropping an outbox entry of %s that claims principal %s but was written by %s",
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
    return StagedSend(key, target, payload, claimed, unit.id, address, seq, low, legacy)


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
