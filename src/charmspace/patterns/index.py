"""Where charms and favorites are recorded in storage.

A space's charms are listed in 256 index documents (by a hash of the charm id)
rather than one, so creating the ten-thousandth charm rewrites a few kilobytes,
not the whole list.
"""

from __future__ import annotations

import hashlib
from typing import Any

from charmspace.runtime.address import Address, link_to
from charmspace.runtime.transaction import Transaction
from charmspace.storage.ids import entity_id
from charmspace.types import DID, EntityId, JSONValue, SpaceDID

BUCKETS = 256


def favorites_address(user: DID) -> Address:
    """A user's favorites: a list in a document of their home space."""
    return Address(user, entity_id({"favorites": user}))


def bucket_of(charm_id: EntityId) -> int:
    return hashlib.sha256(charm_id.encode()).digest()[0] % BUCKETS


def index_address(space: SpaceDID, bucket: int) -> Address:
    return Address(space, entity_id({"charms-in": space, "bucket": bucket}))


def index_entries(tx: Transaction, space: SpaceDID) -> list[dict[str, Any]]:
    """Every charm recorded in ``space`` (creation order within a bucket)."""
    entries: list[dict[str, Any]] = []
    for bucket in range(BUCKETS):
        doc = tx.read_doc(space, index_address(space, bucket).id)
        if isinstance(doc, dict):
            entries.extend(e for e in doc.get("charms", ()) if isinstance(e, dict))
    entries.sort(key=lambda e: (e.get("created_at", 0), e.get("id", "")))
    return entries


def charm_links(
    tx: Transaction, space: SpaceDID, *, exclude: EntityId | None = None
) -> list[JSONValue]:
    """Links to the results of every charm in ``space`` but ``exclude``."""
    return [
        link_to(Address(space, e["result"]))
        for e in index_entries(tx, space)
        if "result" in e and e.get("id") != exclude
    ]
