"""JSON values as charmspace holds them: validated once, then frozen.

Why frozen: ``cell.get()`` hands out the stored value itself (no copy per read,
which keeps reads cheap), so mutating it in place must raise instead of
silently changing nothing — or, worse, changing a cached value behind the
storage's back. :class:`FrozenDict` and :class:`FrozenList` are ``dict`` and
``list`` subclasses, so they compare equal to plain dicts and lists, serialize
with :mod:`json`, and work with pydantic, but every mutating method raises.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from charmspace.errors import NotJSONError, PathTypeError, SchemaError
from charmspace.types import JSONValue, Path, PathSegment


def _refuse(*_args: object, **_kwargs: object) -> NoReturn:
    raise TypeError(
        "This value was read from a cell and is immutable. "
        "Build a new value (e.g. {**old, 'k': v} or [*old, x]) and set() it."
    )


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses every mutation; equal to the plain dict it holds."""

    __slots__ = ()
    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(canonical(self))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_dict, (dict(self),))

    def __repr__(self) -> str:
        return dict.__repr__(self)

    def thaw(self) -> dict[str, Any]:
        """A mutable deep copy."""
        return thaw(self)  # type: ignore[return-value]


class FrozenList(list[Any]):
    """A ``list`` that refuses every mutation; equal to the plain list it holds."""

    __slots__ = ()
    __setitem__ = __delitem__ = append = extend = insert = pop = remove = _refuse
    clear = reverse = sort = _refuse
    __iadd__ = __imul__ = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(canonical(self))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_list, (list(self),))

    def __repr__(self) -> str:
        return list.__repr__(self)

    def thaw(self) -> list[Any]:
        """A mutable deep copy."""
        return thaw(self)  # type: ignore[return-value]


def _rebuild_dict(items: dict[str, Any]) -> FrozenDict:
    return freeze(items)  # type: ignore[return-value]


def _rebuild_list(items: list[Any]) -> FrozenList:
    return freeze(items)  # type: ignore[return-value]


def _new_dict(items: Iterable[tuple[str, Any]] | Mapping[str, Any]) -> FrozenDict:
    """A frozen dict of ``items``, filled at C speed (``dict.__init__`` never calls the
    refusing ``update``)."""
    return FrozenDict(items)


def _new_list(items: Iterable[Any]) -> FrozenList:
    """A frozen list of ``items``, filled at C speed (as :func:`_new_dict`)."""
    return FrozenList(items)


_EMPTY_DICT = FrozenDict()
"""Every empty object frozen: it is immutable, and a queued event ``{}`` then costs no object
of its own (fewer objects that live a while, fewer full garbage collections)."""

MAX_DEPTH = 100
"""How many containers (objects, lists) a value may nest, one inside another.

Why a limit: every layer that walks a value (freezing, JSON encoding, links,
comparison) recurses, and Python stops at about 1,000 frames with a
``RecursionError`` that names nothing; real documents nest a few levels. The
limit counts from the value being written, not the document root; paths into
a document are limited separately (64 segments, storage ``Limits``).
"""

MAX_INTEGER = 2**53 - 1
"""The largest integer a value may hold (and ``-MAX_INTEGER`` the smallest).

Why 2**53 - 1: JSON numbers are read as IEEE doubles by JavaScript and most
JSON libraries, which hold integers exactly only up to 2**53 (RFC 8259,
section 6, names this as the interoperable range). A larger integer would
come back rounded to a different number in a browser or another client, with
no error; store it as a string instead. Python's own ``int`` would also
happily hold numbers of thousands of digits, which ``json`` refuses to print.
"""

_SURROGATE = re.compile("[\ud800-\udfff]")
"""A lone UTF-16 surrogate: Python strings may hold one, UTF-8 cannot encode it."""


def freeze(value: object, path: Path = (), depth: int = 0) -> JSONValue:
    """Validate that ``value`` is JSON and return a frozen deep copy of it.

    Already-frozen containers are returned as they are: they were validated when
    they were frozen. Tuples are accepted as lists. Raises :class:`NotJSONError`
    naming the path of the first offending value: something that is not JSON,
    NaN or infinity, a string with a lone surrogate, an integer beyond
    :data:`MAX_INTEGER`, or containers nested more than :data:`MAX_DEPTH` deep
    (``depth`` is how deep ``value`` sits in what is being frozen). The checks
    ride on the one traversal freezing needs anyway: ASCII strings and
    integers in range cost one comparison each.
    """
    cls = type(value)
    if cls is str:
        if value.isascii() or _SURROGATE.search(value) is None:  # type: ignore[attr-defined, call-overload]
            return value  # type: ignore[return-value]
        raise _lone_surrogate(path, "the string")
    if cls is int:
        if -MAX_INTEGER <= value <= MAX_INTEGER:  # type: ignore[operator]
            return value  # type: ignore[return-value]
        raise _integer_out_of_range(path)
    if cls is FrozenDict or cls is FrozenList or cls is bool or value is None:
        return value  # type: ignore[return-value]
    if cls is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise NotJSONError(path, f"{value!r} is not a JSON number (NaN and infinity are not)")
        return value  # type: ignore[return-value]
    if cls is not dict and isinstance(value, FrozenDict | FrozenList):
        return value  # subclasses carry extra meaning; keep them
    if type(value) is dict or isinstance(value, Mapping):  # a plain dict need not ask the ABC
        if depth >= MAX_DEPTH:
            raise too_deep(path)
        for k in value:
            if type(k) is not str:
                raise NotJSONError(path, f"object keys must be strings, got {type(k).__name__}")
            if not k.isascii() and _SURROGATE.search(k) is not None:
                raise _lone_surrogate(path, "a key of this object")
        if not value:
            return _EMPTY_DICT
        depth += 1
        return _new_dict((k, freeze(v, (*path, k), depth)) for k, v in value.items())
    if type(value) is list or isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            raise too_deep(path)
        depth += 1
        return _new_list(freeze(v, (*path, i), depth) for i, v in enumerate(value))
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):  # str subclasses such as StrEnum members
        return freeze(str(value), path)
    if isinstance(value, int):
        return freeze(int(value), path)
    if isinstance(value, float):
        return freeze(float(value), path)
    raise NotJSONError(
        path, f"{type(value).__name__} is not JSON (use dict, list, str, int, float, bool, None)"
    )


def too_deep(path: Path) -> NotJSONError:
    """The error for a container nested deeper than :data:`MAX_DEPTH`."""
    return NotJSONError(
        path,
        f"containers nest more than {MAX_DEPTH} deep here; flatten the value "
        "(e.g. keep items in a list and refer to them by index or id)",
    )


def _lone_surrogate(path: Path, what: str) -> NotJSONError:
    return NotJSONError(
        path,
        f"{what} holds a lone UTF-16 surrogate (U+D800 to U+DFFF), which is not Unicode "
        "text and cannot be stored; decode the text properly "
        "(bytes.decode('utf-8'), not errors='surrogateescape')",
    )


def _integer_out_of_range(path: Path) -> NotJSONError:
    return NotJSONError(
        path,
        f"the integer is outside -{MAX_INTEGER}..{MAX_INTEGER} (2**53 - 1), the range JSON "
        "readers such as JavaScript hold exactly; store it as a string",
    )


def thaw(value: JSONValue) -> JSONValue:
    """A plain, mutable deep copy of a (possibly frozen) JSON value."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value


def canonical(value: JSONValue) -> str:
    """Compact JSON text with sorted keys: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

_C_ENCODE = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None,  # no cycle check: values are validated, hence acyclic, before they are encoded
        _ENCODER.default,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )
    if getattr(json.encoder, "c_make_encoder", None) is not None
    else None
)
"""CPython's C encoder, made once: ``JSONEncoder.encode`` makes a new one per call, which
is half the cost of encoding a small document, and this is on every commit's path."""


def dumps(value: JSONValue) -> str:
    """Compact JSON text, as stored."""
    if _C_ENCODE is None:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODE(value, 0))


def loads(text: str | bytes) -> JSONValue:
    """Parse stored JSON text into a frozen value."""
    return freeze_parsed(json.loads(text, parse_constant=_no_constant))


def freeze_parsed(value: Any) -> JSONValue:
    """Freeze what :func:`json.loads` returned (or a thawed copy of it): known JSON, no checks."""
    cls = type(value)
    if cls is dict:
        return _new_dict((k, freeze_parsed(v)) for k, v in value.items())
    if cls is list:
        return _new_list(freeze_parsed(v) for v in value)
    return value  # type: ignore[no-any-return]


def extend(base: FrozenList, items: Iterable[JSONValue]) -> FrozenList:
    """``base`` followed by ``items`` (already frozen), remembered as an append to ``base``.

    Why remember: storage then stores the appended items as the change, without
    comparing the two lists item by item (see :func:`derived_from`).
    """
    new = FrozenList(list.__add__(base, list(items)))  # two copies at C speed; extending
    _remember(new, base, len(base))  # a FrozenList item by item is slower than both
    return new


_DERIVED_MAX = 16
_DERIVED: list[tuple[JSONValue, JSONValue, PathSegment] | None] = [None] * _DERIVED_MAX
"""``(new, base, key)`` for the last few containers made from another one, a ring.

A list ``new`` with more items than ``base`` is ``base`` plus items appended
from index ``key``; otherwise ``new`` (a list or an object) differs from
``base`` at ``key`` only. Only the last :data:`_DERIVED_MAX` are kept (a write
is committed soon after it is made), and a value without an entry is simply
compared item by item. A ring rather than a dict by id: every write adds an
entry, while only the writes to large documents look one up (storage's
deltas), so adding is one list store and finding is a scan of 16.
"""
_DERIVED_NEXT = itertools.count()


def _remember(new: JSONValue, base: JSONValue, key: PathSegment) -> None:
    # one store into the list: two threads at once at worst lose an entry, never corrupt one
    _DERIVED[next(_DERIVED_NEXT) % _DERIVED_MAX] = (new, base, key)


def derived_from(new: JSONValue) -> tuple[JSONValue, PathSegment] | None:
    """``(base, key)`` if ``new`` was recently made from ``base`` by a change at ``key``."""
    for hit in _DERIVED:
        if hit is not None and hit[0] is new:
            return hit[1], hit[2]
    return None


def _no_constant(name: str) -> NoReturn:
    raise NotJSONError((), f"{name} is not a JSON number")


def same(a: JSONValue, b: JSONValue) -> bool:
    """Whether ``a`` and ``b`` are the same JSON: ``==``, except that true is not 1, 1 not 1.0.

    Why not ``==``: Python says ``True == 1 == 1.0``, so a write of ``true`` over
    ``1`` would pass for a no-op and be dropped.
    """
    if a is b:
        return True
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        return all(k in b and same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return False
        return all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def getpath(value: JSONValue, path: Path) -> JSONValue:
    """The value at ``path`` inside ``value``, or None where the path does not exist."""
    for seg in path:
        if isinstance(value, dict):
            value = value.get(seg) if isinstance(seg, str) else None
        elif isinstance(value, list):
            i = list_index(seg)
            value = value[i] if i is not None and i < len(value) else None
        else:
            return None
    return value


def list_index(seg: object) -> int | None:
    """The list index a path segment names: an int, or a string of ASCII digits; else None.

    Digit strings count because paths written in JSON (links) may spell indexes
    as text. Booleans do not, although Python says ``True == 1``.
    """
    if type(seg) is int:
        return seg if seg >= 0 else None
    if type(seg) is str and seg.isascii() and seg.isdigit():
        return int(seg)
    return None


def json_type(value: object) -> str:
    """The JSON type of ``value`` (``"a list"``), for messages that must not show the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def setpath(value: JSONValue, path: Path, new: JSONValue) -> JSONValue:
    """A frozen copy of ``value`` with ``new`` placed at ``path``.

    Objects are created where the path reaches a missing key or null, so
    writing ``a/b`` into ``{}`` gives ``{"a": {"b": ...}}``. Anything else in the
    way is refused with :class:`PathTypeError` rather than replaced: a key
    below a list, string or number, or an index below an object or null,
    would otherwise drop what is there. A list index may be at most the
    list's length (which appends). Only the containers along the path are
    copied; everything else is shared, which is safe because everything is
    frozen.
    """
    return _setpath(value, path, 0, new)


def _setpath(value: JSONValue, path: Path, at: int, new: JSONValue) -> JSONValue:
    if at == len(path):
        return new
    seg = path[at]
    if type(seg) is not str and type(seg) is not int:
        raise SchemaError(
            path,
            f"path segment {at} is {type(seg).__name__}; use a str key or an int list index",
        )
    if isinstance(value, list):
        i = list_index(seg)
        if i is None and type(seg) is str:
            here = _where(path[:at])
            raise _mismatch(
                path,
                at,
                value,
                "an object",
                f"Write at {here}/<index> with an index from 0 to {len(value)}, "
                f"or set {here} to an object first.",
            )
        if i is None or i > len(value):
            here = _where(path[:at])
            raise SchemaError(
                path[: at + 1],
                f"index {seg} is outside the list at {here}, which has {len(value)} items; "
                f"nothing was written. Write at an index from 0 to {len(value)} "
                "(that one appends), or push() to the list",
            )
        items = list(value)
        if i == len(items):
            items.append(_setpath(None, path, at + 1, new))
        else:
            items[i] = _setpath(items[i], path, at + 1, new)
        made = _new_list(items)
        _remember(made, value, i)
        return made
    if not isinstance(seg, str):
        hint = f"Set {_where(path[:at])} to a list first, or use a string key below it."
        raise _mismatch(path, at, value, "a list", hint)
    if value is None or isinstance(value, dict):
        base: Mapping[str, Any] = value if value is not None else _EMPTY_DICT
        changed = _new_dict(base)
        dict.__setitem__(changed, seg, _setpath(base.get(seg), path, at + 1, new))
        if value is not None:
            _remember(changed, value, seg)
        return changed
    hint = f"Set {_where(path[:at])} to an object first if it should hold keys."
    raise _mismatch(path, at, value, "an object", hint)


def _where(path: Path) -> str:
    return "/".join(str(p) for p in path) or "the document root"


def _mismatch(path: Path, at: int, value: JSONValue, needed: str, hint: str) -> PathTypeError:
    return PathTypeError(path[:at], json_type(value), needed, path, hint)
