"""``map``'s derived value: each position of the list mapped once, and kept while it holds.

``map(items, fn)`` gives ``fn`` a reference to each position's cell
(``items[i]``) and, if it takes two parameters, the index; not the item's
value. So what ``fn`` returns for position ``i`` can differ from one run to
the next only if something it read differs: a reference's or a cell's
``get()`` or ``sample()``, or ``now()``. Each position therefore keeps its
output together with what ``fn`` read to build it (every read of the wave's
transaction while ``fn`` ran: the address and the value), and when the
list changes ``fn`` runs again only for new positions and for positions whose
reads now give another value. Everything else keeps its output, the very same
frozen object, and so does the list when no position changed: storage and the
views then see an unchanged value at once, without comparing item by item.

Why this is exactly a full recompute: re-reading a position's recorded reads
in the same transaction (same snapshot, same tracking) gives the values
``fn`` would see, and records the same reactive dependencies it would. What
cannot be checked by reading it again is never kept: an output that read the
clock or asked where a link points, or whose function caught a read that
raised, is built again each time.
``fn`` must be a function of its arguments and of what it reads, as every
derived value must.

So toggling one item of a 200-item list whose ``fn`` builds UI from
references calls ``fn`` zero times; appending calls it once; an edit calls it
for the positions that read the edited value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from charmspace.errors import PatternError
from charmspace.patterns.refs import Ref
from charmspace.runtime import context
from charmspace.runtime.address import Address
from charmspace.runtime.cell import to_json
from charmspace.runtime.propagation import Reads, recording
from charmspace.types import JSONValue
from charmspace.values import FrozenList, freeze, same

if TYPE_CHECKING:
    from charmspace.runtime.transaction import Transaction


@dataclass(frozen=True, slots=True)
class _Built:
    """One position's output, and what its function read to build it."""

    output: JSONValue
    reads: tuple[tuple[Address, bool, bool, JSONValue], ...]


class MappedList:
    """What a ``map`` node's derived value runs: ``fn`` over ``items``, kept per position."""

    __slots__ = ("_built", "_fn", "_items", "_last", "_with_index")

    def __init__(self, items: Ref, fn: Callable[..., Any], *, with_index: bool) -> None:
        self._items = items
        self._fn = fn
        self._with_index = with_index
        self._built: list[_Built | None] = []
        self._last: FrozenList | None = None
        """The list last returned, while every kept position's output is still in it."""

    def __call__(self) -> JSONValue:
        value = self._items.get()
        if value is None:
            value = ()
        elif not isinstance(value, list):
            raise PatternError(f"map() over {self._items!r}: the value is not a list")
        n = len(value)
        built = self._built
        del built[n:]
        built.extend([None] * (n - len(built)))
        tx = context.current().transaction
        assert tx is not None  # a derived value runs in its wave's transaction
        outputs: list[JSONValue] = []
        for i in range(n):
            kept = built[i]
            if kept is None or not _still(tx, kept.reads):
                self._last = None  # a position is built again: the last list no longer holds
                kept, built[i] = self._build(i)
            outputs.append(kept.output)
        last = self._last
        if last is not None and len(last) == n:
            return last
        new = freeze(outputs)
        assert isinstance(new, FrozenList)
        self._last = new
        return new

    def _build(self, i: int) -> tuple[_Built, _Built | None]:
        """Position ``i`` built by ``fn``: its output, and what to keep (None: nothing)."""
        item = Ref(self._items.runtime, self._items.address.key(i), f"{self._items!r}[{i}]")
        reads = Reads()
        token = recording.set(reads)
        try:
            output = to_json(self._fn(item, i) if self._with_index else self._fn(item))
        finally:
            recording.reset(token)
        built = _Built(output, tuple(reads.seen))
        return built, (None if reads.volatile else built)


def _still(tx: Transaction, reads: tuple[tuple[Address, bool, bool, JSONValue], ...]) -> bool:
    """Whether every read gives the value it gave (read again, so it stays a dependency)."""
    for address, track, deep, value in reads:
        try:
            now = tx.read(address, track=track, deep=deep)
        except Exception:
            return False  # building it again raises, or handles it, as fn would
        if not same(now, value):
            return False
    return True
