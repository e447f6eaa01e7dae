"""Cells: typed, reactive views onto JSON stored in a space.

A cell is an address plus, optionally, the transaction it is bound to (a handler
gets cells bound to its own transaction). Outside any transaction ``get()`` reads
the latest committed value and writes raise
:class:`~charmspace.errors.TransactionRequiredError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from charmspace.errors import SchemaError, TransactionRequiredError
from charmspace.runtime import context
from charmspace.runtime.address import Address, link_to
from charmspace.runtime.transaction import Transaction
from charmspace.types import JSONValue, Path, PathSegment
from charmspace.values import MAX_DEPTH, FrozenDict, FrozenList, extend, freeze, too_deep

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime

T = TypeVar("T")


class Cell(Generic[T]):
    """A live view of the value at ``address``.

    ``get()`` returns immutable data; ``set``/``update``/``push`` write through
    the bound (or current) transaction. Setting a cell to another cell stores a
    link to it.
    """

    __slots__ = ("_tx", "address", "runtime")

    def __init__(self, runtime: Runtime, address: Address, tx: Transaction | None = None) -> None:
        self.runtime = runtime
        self.address = address
        self._tx = tx

    def __repr__(self) -> str:
        return f"<Cell {self.address}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and other.address == self.address

    def __hash__(self) -> int:
        return hash(self.address)

    @property
    def space(self) -> str:
        return self.address.space

    @property
    def path(self) -> Path:
        return self.address.path

    def key(self, *segments: PathSegment) -> Cell[Any]:
        """The cell at a path below this one."""
        return Cell(self.runtime, self.address.key(*segments), self._tx)

    def __getitem__(self, segment: PathSegment) -> Cell[Any]:
        return self.key(segment)

    def _reading_tx(self) -> Transaction | None:
        tx = self._tx
        if tx is not None and tx.state == "open":
            return tx
        tx = context.current().transaction
        return tx if tx is not None and tx.state == "open" else None

    def _writing_tx(self, verb: str) -> Transaction:
        if self._tx is not None:
            self._tx._check_open()
            return self._tx
        tx = context.current().transaction
        if tx is None:
            raise TransactionRequiredError(f"{verb} {self.address}")
        tx._check_open()
        return tx

    def get(self) -> T:
        """The current value (links resolved), immutable; a reactive dependency in derived code."""
        tx = self._reading_tx()
        if tx is None:
            return self.runtime.read(self.address)  # type: ignore[return-value]
        return tx.read(self.address)  # type: ignore[return-value]

    def sample(self) -> T:
        """Like :meth:`get`, without becoming a reactive dependency."""
        tx = self._reading_tx()
        if tx is None:
            return self.runtime.read(self.address)  # type: ignore[return-value]
        return tx.read(self.address, track=False)  # type: ignore[return-value]

    def set(self, value: T | Cell[T]) -> None:
        """Replace the value. Equal values are a no-op and trigger nobody."""
        tx = self._writing_tx("set")
        tx.write(self.address, to_json(value, self.address.path))

    def update(self, values: Mapping[str, Any]) -> None:
        """Merge ``values`` into the object at this cell (keys not named are kept)."""
        tx = self._writing_tx("update")
        tx.write(self.address, self._updated(tx, values))

    def push(self, *items: Any) -> None:
        """Append ``items`` to the list at this cell (a missing value counts as empty)."""
        tx = self._writing_tx("push to")
        tx.write(self.address, self._pushed(tx, items))

    def _updated(self, tx: Transaction, values: Mapping[str, Any]) -> JSONValue:
        """What :meth:`update` writes here."""
        current = tx.read(self.address, deep=False)
        if current is None:
            current = {}
        if not isinstance(current, dict):
            raise SchemaError(self.address.path, "update() needs an object here; use set()")
        if not isinstance(values, Mapping):
            raise SchemaError(self.address.path, "update() takes a mapping of keys to new values")
        patch = to_json(values, self.address.path)
        assert isinstance(patch, dict)
        return freeze({**current, **patch})

    def _pushed(self, tx: Transaction, items: tuple[Any, ...]) -> JSONValue:
        """What :meth:`push` writes here."""
        current = tx.read(self.address, deep=False)
        if current is None:
            current = []
        if not isinstance(current, list):
            raise SchemaError(self.address.path, "push() needs a list here")
        at = len(current)
        added = [to_json(item, (*self.address.path, at + i)) for i, item in enumerate(items)]
        if type(current) is FrozenList:  # no need to check (freeze) its items again
            return extend(current, added)
        return freeze([*current, *added])


_PLAIN = frozenset({bool, type(None), FrozenDict, FrozenList})


def to_json(value: object, path: Path = (), depth: int = 0) -> JSONValue:
    """Freeze ``value``, turning cells and streams inside it into links to them.

    Objects with a ``__charm_json__()`` method (pattern references, UI nodes)
    contribute the JSON that method returns. Strings and integers are checked
    by :func:`freeze` (lone surrogates, integers out of range) even alone, and
    the nesting limit on the way down, before this recursion could overflow
    the stack.
    """
    cls = type(value)
    if cls in _PLAIN:
        return value  # type: ignore[return-value]
    if cls is str or cls is int:  # inside a container, the freeze() of the container checks it
        return value if depth else freeze(value, path)  # type: ignore[return-value]
    if depth >= MAX_DEPTH and isinstance(value, Mapping | list | tuple):
        raise too_deep(path)
    depth += 1
    if cls is dict:
        return freeze({k: to_json(v, (*path, k), depth) for k, v in value.items()}, path)  # type: ignore[attr-defined]
    if cls is list or cls is tuple:
        items: list[Any] = value  # type: ignore[assignment]
        return freeze([to_json(v, (*path, i), depth) for i, v in enumerate(items)], path)
    if isinstance(value, Cell):
        return link_to(value.address)
    from charmspace.runtime.stream import Stream

    if isinstance(value, Stream):
        return link_to(value.address)
    as_json = getattr(value, "__charm_json__", None)
    if as_json is not None:  # references and UI nodes of the authoring layer
        return freeze(as_json(), path)
    if isinstance(value, Mapping):
        return freeze({k: to_json(v, (*path, str(k)), depth) for k, v in value.items()}, path)
    if isinstance(value, list | tuple):
        return freeze([to_json(v, (*path, i), depth) for i, v in enumerate(value)], path)
    return freeze(value, path)
