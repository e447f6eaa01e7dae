"""Edits from outside a charm, checked against the types of the inputs they land in.

A pattern's inputs are typed, and ``charms.create`` validates them
(:meth:`~charmspace.patterns.pattern.Pattern.argument`). An edit afterwards
goes through here: the HTTP cell route (so ``charmspace charm set`` too) and a
charm's cells in Python (``charm["value"].set(...)``). If the write lands in
one of a running charm's typed inputs, or under one (links followed: the
counter's result cell ``value`` is a redirect link to its input), the input
as it would be after the write is validated first, and a mismatch is an
:class:`~charmspace.errors.InputTypeError` with nothing written.

What is not checked, and why:

- Writes by a charm's own handlers: the pattern's code is trusted with its
  state, and every event would pay for the check (a handler gets plain cells).
- Charms that are not running here, such as one whose pattern is not
  installed: its types live in the pattern's code, which this process does
  not have. Refusing every edit of it would leave its data impossible to
  repair, so such edits are written as before.
- Inputs declared without a type (``Any``) and streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from charmspace.errors import InputTypeError, SchemaError
from charmspace.runtime.address import Address
from charmspace.runtime.cell import Cell, to_json
from charmspace.runtime.schema import stored_validator_for
from charmspace.runtime.transaction import Transaction
from charmspace.types import JSONValue, PathSegment
from charmspace.values import json_type

if TYPE_CHECKING:
    from charmspace.patterns.charms import Charm, Charms
    from charmspace.patterns.pattern import Input

T = TypeVar("T")


class CharmCell(Cell[T]):
    """A cell of a charm as code outside it gets it (``charm["value"]``, ``charm.argument``).

    Reads as any cell; ``set``, ``update`` and ``push`` are checked by
    :func:`checked_write` against the charm's input types.
    """

    __slots__ = ("charms",)

    def __init__(self, charms: Charms, address: Address, tx: Transaction | None = None) -> None:
        super().__init__(charms.runtime, address, tx)
        self.charms = charms

    def key(self, *segments: PathSegment) -> CharmCell[Any]:
        return CharmCell(self.charms, self.address.key(*segments), self._tx)

    def set(self, value: T | Cell[T]) -> None:
        tx = self._writing_tx("set")
        checked_write(self.charms, tx, self.address, to_json(value, self.address.path))

    def update(self, values: Mapping[str, Any]) -> None:
        tx = self._writing_tx("update")
        checked_write(self.charms, tx, self.address, self._updated(tx, values))

    def push(self, *items: Any) -> None:
        tx = self._writing_tx("push to")
        checked_write(self.charms, tx, self.address, self._pushed(tx, items))


def checked_write(charms: Charms, tx: Transaction, address: Address, value: JSONValue) -> None:
    """``tx.write(address, value)``, refused with :class:`InputTypeError` (nothing written)
    if it would give a running charm's typed input a value of another type.

    A write under an input (``items/2``) is checked by validating the whole
    input as it would read after the write; one above the inputs (the whole
    argument document) checks each of them.
    """
    inputs = _inputs_written(charms, tx.write_route(address))
    if not inputs:
        tx.write(address, value)
        return
    tx.write_checked(address, value, partial(_check, tx, inputs))


def _inputs_written(charms: Charms, route: list[Address]) -> list[tuple[Charm, Input]]:
    """The typed inputs of running charms that a write along ``route`` lands in or under."""
    found: list[tuple[Charm, Input]] = []
    for at in route:
        charm = charms.with_argument(at.space, at.id)
        if charm is None:
            continue
        inputs = charm.pattern.inputs
        names = [at.path[0]] if at.path else list(inputs)
        for name in names:
            i = inputs.get(name) if isinstance(name, str) else None
            if i is not None and i.kind != "stream" and i.type is not Any:
                found.append((charm, i))
    return found


def _check(tx: Transaction, inputs: list[tuple[Charm, Input]]) -> None:
    """Validate each input as ``tx`` reads it now (the write done, links followed)."""
    for charm, i in inputs:
        value = tx.read(charm.argument.address.key(i.name), track=False)
        try:
            stored_validator_for(i.type)(value)
        except SchemaError as e:
            path, found = _found(value, e.path)
            raise InputTypeError(
                charm.id,
                charm.pattern.name,
                i.name,
                type_text(i.type),
                (i.name, *path),
                found,
                e.reason,
            ) from None


def _found(value: JSONValue, path: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], str]:
    """Where in ``value`` an error's location really is, and the JSON type found there.

    A validator's location may name things that are not in the value (a
    missing key, a branch of a union): it is cut where the value ends.
    """
    walked: list[str | int] = []
    for seg in path:
        in_object = isinstance(value, dict) and isinstance(seg, str) and seg in value
        in_list = isinstance(value, list) and type(seg) is int and 0 <= seg < len(value)
        if not (in_object or in_list):
            break
        value = value[seg]  # type: ignore[index]
        walked.append(seg)
    return tuple(walked), json_type(value)


def type_text(tp: Any) -> str:
    """A Python type as its author wrote it: ``int``, ``list[str]``, ``Note``."""
    if isinstance(tp, type) and not getattr(tp, "__args__", None):
        return tp.__name__
    return repr(tp).replace("typing_extensions.", "").replace("typing.", "")
