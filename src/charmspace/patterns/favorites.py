"""Favorites: the charms a user starred, with their tags, in the user's home space.

``wish("#tag")`` searches them. Tags are captured when the charm is favorited,
so a wish keeps finding what the user chose even if the pattern's tags change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from charmspace.patterns.index import favorites_address
from charmspace.runtime.address import Address, link_to
from charmspace.runtime.transaction import Transaction
from charmspace.types import DID

if TYPE_CHECKING:
    from charmspace.patterns.charms import Charm
    from charmspace.runtime.runtime import Runtime


class Favorites:
    """``runtime.favorites(user)``: add, remove and list a user's favorite charms."""

    def __init__(self, runtime: Runtime, user: DID) -> None:
        self.runtime = runtime
        self.user = user
        self.address: Address = favorites_address(user)

    def __repr__(self) -> str:
        return f"<Favorites of {self.user}>"

    def list(self) -> list[dict[str, Any]]:
        """The favorites, oldest first: ``{id, space, name, tags, charm}`` each."""
        self.runtime.check_open("list favorites")
        if not self.runtime.storage.has_space(self.user):
            return []
        value = Transaction(self.runtime, self.user).read(self.address, deep=False)
        return [dict(e) for e in value] if isinstance(value, list) else []

    async def add(self, charm: Charm) -> None:
        """Favorite ``charm`` (no duplicate if it already is one)."""
        self.runtime.check_open("add a favorite")
        _require_charm(charm, "favorites().add(charm)")
        self.runtime.storage.ensure_space(self.user, self.user)
        async with self.runtime.edit(self.user) as tx:
            current = tx.read(self.address, deep=False)
            entries = list(current) if isinstance(current, list) else []
            if any(e.get("id") == charm.id and e.get("space") == charm.space for e in entries):
                return
            entries.append(
                {
                    "id": charm.id,
                    "space": charm.space,
                    "name": charm.name,
                    "tags": list(charm.tags),
                    "charm": link_to(charm.result.address),
                }
            )
            tx.write(self.address, entries)

    async def remove(self, charm: Charm) -> None:
        """Unfavorite ``charm`` (nothing happens if it was not a favorite)."""
        self.runtime.check_open("remove a favorite")
        _require_charm(charm, "favorites().remove(charm)")
        if not self.runtime.storage.has_space(self.user):
            return
        async with self.runtime.edit(self.user) as tx:
            current = tx.read(self.address, deep=False)
            entries = list(current) if isinstance(current, list) else []
            kept = [
                e
                for e in entries
                if not (e.get("id") == charm.id and e.get("space") == charm.space)
            ]
            if len(kept) != len(entries):
                tx.write(self.address, kept)


def _require_charm(value: object, where: str) -> None:
    # Imported here: charms.py imports this module.
    from charmspace.patterns.charms import require_charm_given

    require_charm_given(value, where)
