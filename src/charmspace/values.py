"""JSON values as charmspace holds them: validated once, then frozen.

Why frozen: ``cell.get()`` hands out the stored value itself (no copy per read,
which keeps reads cheap), so mutating it in place must raise instead of
silently changing nothing — or, worse, changing a cached value behind the
storage's back. :class:`FrozenDict` and :class:`FrozenList` are ``dict`` and
``list`` subclasses, so they compare equal to plain dicts and lists, serialize
with :mod:`json`, and work with pydantic, but every mutating method raises.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from charmspace.errors import NotJSONError, PathTypeError, SchemaError
from charmspace.types import JSONValue, Path


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


def _new_dict(items: Iterable[tuple[str, Any]]) -> FrozenDict:
    d = FrozenDict()
    for k, v in items:
        dict.__setitem__(d, k, v)
    return d


def _new_list(items: Iterable[Any]) -> FrozenList:
    lst = FrozenList()
    list.extend(lst, items)
    return lst


_SCALARS = (str, bool, int, type(None))


def freeze(value: object, path: Path = ()) -> JSONValue:
    """Validate that ``value`` is JSON and return a frozen deep copy of it.

    Already-frozen containers are returned as they are: they were validated when
    they were frozen. Tuples are accepted as lists. Raises :class:`NotJSONError`
    naming the path of the first offending value.
    """
    cls = type(value)
    if cls in (FrozenDict, FrozenList) or cls in _SCALARS:
        return value  # type: ignore[return-value]
    if cls is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise NotJSONError(path, f"{value!r} is not a JSON number (NaN and infinity are not)")
        return value  # type: ignore[return-value]
    if isinstance(value, FrozenDict | FrozenList):  # subclasses carry extra meaning; keep them
        return value
    if isinstance(value, Mapping):
        for k in value:
            if type(k) is not str:
                raise NotJSONError(path, f"object keys must be strings, got {type(k).__name__}")
        return _new_dict((k, freeze(v, (*path, k))) for k, v in value.items())
    if isinstance(value, list | tuple):
        return _new_list(freeze(v, (*path, i)) for i, v in enumerate(value))
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):  # str subclasses such as StrEnum members
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return freeze(float(value), path)
    raise NotJSONError(
        path, f"{type(value).__name__} is not JSON (use dict, list, str, int, float, bool, None)"
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


def dumps(value: JSONValue) -> str:
    """Compact JSON text, as stored (one reused encoder: this is on every commit's path)."""
    return _ENCODER.encode(value)


def loads(text: str | bytes) -> JSONValue:
    """Parse stored JSON text into a frozen value."""
    return _freeze_parsed(json.loads(text, parse_constant=_no_constant))


def _freeze_parsed(value: Any) -> JSONValue:
    """Freeze what :func:`json.loads` returned: known to be JSON, so no checks."""
    cls = type(value)
    if cls is dict:
        return _new_dict((k, _freeze_parsed(v)) for k, v in value.items())
    if cls is list:
        return _new_list(_freeze_parsed(v) for v in value)
    return value  # type: ignore[no-any-return]


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
    here = _where(path[:at])
    if isinstance(value, list):
        i = list_index(seg)
        if i is None and type(seg) is str:
            raise _mismatch(
                path,
                at,
                value,
                "an object",
                f"Write at {here}/<index> with an index from 0 to {len(value)}, "
                f"or set {here} to an object first.",
            )
        if i is None or i > len(value):
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
        return _new_list(items)
    if not isinstance(seg, str):
        hint = f"Set {here} to a list first, or use a string key below it."
        raise _mismatch(path, at, value, "a list", hint)
    if value is None or isinstance(value, dict):
        base: Mapping[str, Any] = value if value is not None else {}
        d = dict(base)
        d[seg] = _setpath(base.get(seg), path, at + 1, new)
        return _new_dict(d.items())
    hint = f"Set {here} to an object first if it should hold keys."
    raise _mismatch(path, at, value, "an object", hint)


def _where(path: Path) -> str:
    return "/".join(str(p) for p in path) or "the document root"


def _mismatch(path: Path, at: int, value: JSONValue, needed: str, hint: str) -> PathTypeError:
    return PathTypeError(path[:at], json_type(value), needed, path, hint)
