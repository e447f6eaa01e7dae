"""How many entries each holder has, and who has the most: for tables that take from the biggest.

Anyone can mint identities for free, and one client address can hold as many
as it likes, so a bounded table that evicts its *oldest* entry when full lets
a flood push out everyone else's. The server's tables evict from the holder
with the most entries instead (the nonce cache from the DID holding the most
nonces, the session table from the client address holding the most sessions),
so the one who floods is the one who pays. A :class:`Tally` keeps the counts
that decision needs, in O(1) per change.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Tally(Generic[K]):
    """Each holder's count, their total, and the holder with the most.

    Counts move by one at a time, which keeps finding the most O(1): when the
    last holder with the most loses one, it still holds the most, one fewer.
    Among holders with equally many, :meth:`biggest` is the one that reached
    that count first: when everyone holds one, that is the one that has held it
    longest, so a full table then behaves like one that evicts its oldest.
    """

    __slots__ = ("_by_count", "_counts", "_most", "total")

    def __init__(self) -> None:
        self._counts: dict[K, int] = {}
        # count -> the holders with that count, in the order they reached it (a dict
        # as an ordered set: the first is the one :meth:`biggest` names)
        self._by_count: dict[int, dict[K, None]] = {}
        self._most = 0
        self.total = 0
        """All holders' entries together."""

    def __getitem__(self, holder: K) -> int:
        """How many ``holder`` has (0 for one never seen)."""
        return self._counts.get(holder, 0)

    def __len__(self) -> int:
        """How many holders have at least one."""
        return len(self._counts)

    @property
    def most(self) -> int:
        """The biggest holder's count (0 when nobody holds any)."""
        return self._most

    def biggest(self) -> K | None:
        """The holder with the most (see the class docstring for ties), or None."""
        holders = self._by_count.get(self._most)
        return next(iter(holders)) if holders else None

    # add and remove are the hot path of every signed request (the nonce cache):
    # written out in full, without a shared helper call.

    def add(self, holder: K) -> int:
        """One more for ``holder``; its new count."""
        counts, by_count = self._counts, self._by_count
        before = counts.get(holder, 0)
        after = counts[holder] = before + 1
        if before:
            holders = by_count[before]
            del holders[holder]
            if not holders:
                del by_count[before]
        joined = by_count.get(after)
        if joined is None:
            joined = by_count[after] = {}
        joined[holder] = None
        if after > self._most:
            self._most = after
        self.total += 1
        return after

    def remove(self, holder: K) -> int:
        """One fewer for ``holder`` (which must have one); its new count."""
        counts, by_count = self._counts, self._by_count
        before = counts[holder]
        after = before - 1
        holders = by_count[before]
        del holders[holder]
        if not holders:
            del by_count[before]
            if self._most == before:
                self._most = after  # counts move by one: ``after`` is the new most
        if after:
            counts[holder] = after
            joined = by_count.get(after)
            if joined is None:
                joined = by_count[after] = {}
            joined[holder] = None
        else:
            del counts[holder]
        self.total -= 1
        return after
