"""Deltas: what changed between two revisions of a document, so a write stores only that.

Why: a document rewritten whole by every commit costs the size of the document
per commit — a push to a list of 10,000 items would store (and encode) all of
them again. A delta is a short list of operations, stored as JSON:

- ``["a", path, items]``: append ``items`` to the list at ``path``;
- ``["s", path, value]``: set key (or index) ``path[-1]`` of the container at
  ``path[:-1]`` to ``value``;
- ``["d", path]``: remove key ``path[-1]`` from the object at ``path[:-1]``.

:func:`diff` finds them by identity, not equality: values are frozen, and a
write made from what a transaction read shares every part it did not change
(``setpath``, :func:`~charmspace.values.extend`), so unchanged parts are the
very same objects. Identity is also exact where ``==`` is not (``1 == 1.0 ==
True``). A value built afresh, even if equal, is stored whole.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from charmspace.types import JSONValue, PathSegment
from charmspace.values import FrozenDict, FrozenList, derived_from, dumps, freeze_parsed

MAX_OPS = 64
"""Past this many operations a change is not small: the document is stored whole."""
_CHAIN = 16
"""How many remembered steps (see :func:`~charmspace.values.derived_from`) are followed."""
_ABSENT: Any = object()


@dataclass(frozen=True, slots=True)
class Delta:
    """The operations that turn one value into another, and how many bytes of JSON that adds."""

    ops: list[JSONValue]
    size: int
    """The change in the size of the document's JSON text, in UTF-8 bytes (negative: smaller)."""


def json_size(value: JSONValue) -> int:
    """The size of ``value``'s stored JSON text in UTF-8 bytes."""
    text = dumps(value)
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def diff(old: JSONValue, new: JSONValue) -> Delta | None:
    """The delta from ``old`` to ``new`` (both frozen containers), or None: store ``new`` whole."""
    ops: list[JSONValue] = []
    size = _diff(old, new, [], ops)
    if size is None or len(ops) > MAX_OPS:
        return None
    return Delta(ops, size)


def _commas(n: int) -> int:
    return n - 1 if n else 0


def _diff(
    old: JSONValue, new: JSONValue, path: list[PathSegment], ops: list[JSONValue]
) -> int | None:
    """Append to ``ops`` what turns ``old`` into ``new``; the size change, or None (replace it)."""
    if old is new:
        return 0
    if type(old) is FrozenList and type(new) is FrozenList:
        return _diff_list(old, new, path, ops)
    if type(old) is FrozenDict and type(new) is FrozenDict:
        return _diff_dict(old, new, path, ops)
    return None


def _steps(old: JSONValue, new: JSONValue) -> list[PathSegment] | None:
    """The keys at which remembered steps made ``new`` from ``old`` (None: not known)."""
    keys: list[PathSegment] = []
    value = new
    for _ in range(_CHAIN):
        step = derived_from(value)
        if step is None:
            return None
        value, key = step
        keys.append(key)
        if value is old:
            return keys
    return None


def _child(
    old: JSONValue, new: JSONValue, path: list[PathSegment], key: PathSegment, ops: list[JSONValue]
) -> int | None:
    """The change at ``key`` whose old and new values are both present."""
    if old is new:
        return 0
    if len(ops) > MAX_OPS:
        return None
    at = [*path, key]
    size = _diff(old, new, at, ops)
    if size is None:
        ops.append(["s", at, new])
        size = json_size(new) - json_size(old)
    return size


def _diff_list(
    old: FrozenList, new: FrozenList, path: list[PathSegment], ops: list[JSONValue]
) -> int | None:
    m, n = len(old), len(new)
    keys = _steps(old, new)
    if n > m:
        if keys is not None:
            appended = all(type(k) is int and k >= m for k in keys)  # each step appended
        else:
            appended = all(map(operator.is_, old, new))
        if not appended:
            return None
        items = new[m:]
        ops.append(["a", path, items])
        return sum(json_size(x) for x in items) + _commas(n) - _commas(m)
    if n < m:
        return None
    if keys is not None:
        changed: Iterable[int] = sorted({k for k in keys if type(k) is int and k < n})
    else:
        changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a is not b]
        if len(changed) > MAX_OPS:
            return None
    size = 0
    for i in changed:
        step = _child(old[i], new[i], path, i, ops)
        if step is None:
            return None
        size += step
    return size


def _diff_dict(
    old: FrozenDict, new: FrozenDict, path: list[PathSegment], ops: list[JSONValue]
) -> int | None:
    keys = _steps(old, new)
    if keys is not None:
        candidates: Iterable[str] = {k for k in keys if type(k) is str}
    else:
        candidates = [k for k, v in new.items() if old.get(k, _ABSENT) is not v]
        added = sum(1 for k in candidates if k not in old)
        kept = list(old)
        if len(old) + added != len(new):  # some keys were removed
            candidates.extend(k for k in old if k not in new)
            kept = [k for k in old if k in new]
        if len(candidates) > MAX_OPS or list(new)[: len(kept)] != kept:
            return None  # many changes, or keys in another order (which replaying would lose)
    size = _commas(len(new)) - _commas(len(old))
    for k in candidates:
        before = old.get(k, _ABSENT)
        after = new.get(k, _ABSENT)
        if before is _ABSENT and after is _ABSENT:
            continue
        if before is _ABSENT:
            ops.append(["s", [*path, k], after])
            size += json_size(k) + 1 + json_size(after)
        elif after is _ABSENT:
            ops.append(["d", [*path, k]])
            size -= json_size(k) + 1 + json_size(before)
        else:
            step = _child(before, after, path, k, ops)
            if step is None:
                return None
            size += step
    return size


def replay(base: str, deltas: Iterable[str]) -> JSONValue:
    """The frozen value of stored JSON ``base`` after applying each stored delta in turn.

    The work is done on plain (mutable) values and frozen once at the end, so
    it costs the document's size plus the deltas', however many there are.
    """
    value = json.loads(base)
    for text in deltas:
        for op in json.loads(text):
            value = _apply(value, op)
    return freeze_parsed(value)


def _apply(doc: Any, op: list[Any]) -> Any:
    kind, path = op[0], op[1]
    if kind == "a":
        target = doc
        for seg in path:
            target = target[seg]
        target.extend(op[2])
        return doc
    if not path:  # never written by diff(); the whole document replaced
        return op[2]
    parent = doc
    for seg in path[:-1]:
        parent = parent[seg]
    last = path[-1]
    if kind == "s":
        parent[last] = op[2]
    else:
        del parent[last]
    return doc
