"""UI trees: ``h(tag, props, *children)`` builds the JSON the web shell renders.

A node is ``{"type": "vnode", "name": tag, "props": {…}, "children": […]}``.
While a pattern is built, children and prop values may be *references* (any
object with a ``__charm_json__()`` method): cells render live, streams receive
events. ``h`` turns them into the links they stand for at once, so a
:class:`VNode` is plain frozen JSON from then on.

Mistakes are caught here, where the author can see the line that made them,
rather than in the browser: a handler function where a stream belongs, an
inline ``onclick`` string, a ``<script>`` element. The shell strips those
anyway (see :mod:`charmspace.patterns.html`); failing early says why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from charmspace.errors import PatternError
from charmspace.types import JSONValue
from charmspace.values import freeze

COMPONENTS: Final = frozenset(
    {"stack", "row", "button", "input", "checkbox", "select", "list", "render", "oauth-button"}
)
"""Tags the shell renders as components; every other tag is a plain HTML element."""

BIND_PROPS: Final = frozenset({"bind_value", "bind_checked"})
"""Two-way bound props: user input is written to the cell they reference."""

FORBIDDEN_TAGS: Final = frozenset({"script", "style"})
"""Elements the shell never renders: all logic runs on the server."""

MAX_EVENT_STRING: Final = 10_000
"""Strings in a sanitized event are cut to this many characters."""

_MAX_EVENT_DEPTH = 32
_TAG = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_EVENT_PROP = re.compile(r"on_[a-zA-Z0-9_]+")

_CHILDREN_ALLOWED = (
    "children may be strings, numbers, other h(...) nodes, references to cells, "
    "lists of these, or None/False (left out)"
)
_PROPS_ALLOWED = (
    "prop values may be strings, numbers, booleans, None, lists and dicts of these, "
    "h(...) nodes, or references to cells"
)


@dataclass(frozen=True, slots=True)
class VNode:
    """One element of a UI tree, already converted to frozen JSON. Build it with :func:`h`."""

    name: str
    props: Mapping[str, JSONValue]
    children: tuple[JSONValue, ...]

    def to_json(self) -> JSONValue:
        """The frozen vnode JSON: ``{"type": "vnode", "name", "props", "children"}``."""
        return freeze(
            {
                "type": "vnode",
                "name": self.name,
                "props": self.props,
                "children": list(self.children),
            }
        )

    def __charm_json__(self) -> JSONValue:
        return self.to_json()


def is_reference(value: object) -> bool:
    """Whether ``value`` stands for a cell or stream (it has ``__charm_json__``, and is no node)."""
    return not isinstance(value, VNode) and callable(getattr(value, "__charm_json__", None))


def is_event_prop(name: str) -> bool:
    """``on_click``, ``on_change``, ``on_submit``, …: props that take a stream."""
    return _EVENT_PROP.fullmatch(name) is not None


def h(tag: str, props: Mapping[str, object] | None = None, *children: object) -> VNode:
    """A UI node ``tag`` with ``props`` and ``children``.

    Lists (and generators) of children are flattened; ``None`` and booleans are
    left out, so ``cond and h(...)`` works. Event props (``on_*``) take a stream
    (``handler.bind(...)``); ``bind_value``/``bind_checked`` take a cell, which
    the shell writes the user's input to. Raises :class:`PatternError` naming
    the tag and the offending prop or child.
    """
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise PatternError(
            f"h({tag!r}): a tag is a name such as 'div', 'span' or 'stack' "
            "(a letter, then letters, digits or '-')."
        )
    if tag.lower() in FORBIDDEN_TAGS:
        raise PatternError(
            f"h({tag!r}): <{tag}> elements are never rendered: charm logic runs on the server. "
            "Use handlers for behaviour and the style prop for looks."
        )
    if props is None:
        props = {}
    elif not isinstance(props, Mapping):
        raise PatternError(
            f"h({tag!r}, {_show(props)}): the second argument is the props dict; "
            "pass {} (or None) before the children."
        )
    converted: dict[str, JSONValue] = {}
    for name, value in props.items():
        _check_name(tag, name)
        converted[name] = _prop(tag, name, value)
    out: list[JSONValue] = []
    _flatten(tag, children, out, [0])
    return VNode(tag, freeze(converted), tuple(out))  # type: ignore[arg-type]


def _check_name(tag: str, name: object) -> None:
    if not isinstance(name, str) or not name:
        raise PatternError(f"h({tag!r}): prop names must be non-empty strings, got {_show(name)}.")


def _prop(tag: str, name: str, value: object) -> JSONValue:
    if is_event_prop(name):
        if not is_reference(value):
            raise PatternError(
                f"h({tag!r}): prop {name!r} got {_show(value)}; event props take a stream: "
                "bind a handler with handler.bind(...) and pass the result."
            )
        return _reference(value)
    if name.lower().startswith("on"):
        raise PatternError(
            f"h({tag!r}): prop {name!r} looks like an inline event handler, which the shell "
            "strips. Use an on_* prop (on_click, on_change, …) with a stream from "
            "handler.bind(...)."
        )
    if name.startswith("bind_"):
        if name not in BIND_PROPS:
            raise PatternError(
                f"h({tag!r}): unknown prop {name!r}; two-way binding supports "
                + " and ".join(sorted(BIND_PROPS))
                + "."
            )
        if not is_reference(value):
            raise PatternError(
                f"h({tag!r}): prop {name!r} got {_show(value)}; {name} takes a cell "
                "(a pattern input or a cell(...)) so the user's input can be written to it."
            )
        return _reference(value)
    return _value(tag, name, value, 0)


def _value(tag: str, name: str, value: object, depth: int) -> JSONValue:
    if is_reference(value):
        return _reference(value)
    if isinstance(value, VNode):
        return value.to_json()
    if value is None or isinstance(value, bool | str):
        return freeze(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return freeze(value)
    if depth < 64 and isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return freeze({k: _value(tag, name, v, depth + 1) for k, v in value.items()})
    if depth < 64 and isinstance(value, list | tuple):
        return freeze([_value(tag, name, v, depth + 1) for v in value])
    raise PatternError(f"h({tag!r}): prop {name!r} got {_show(value)}; {_PROPS_ALLOWED}.")


def _flatten(tag: str, children: Any, out: list[JSONValue], position: list[int]) -> None:
    for child in children:
        if child is None or isinstance(child, bool):
            position[0] += 1
        elif is_reference(child):
            out.append(_reference(child))
            position[0] += 1
        elif isinstance(child, VNode):
            out.append(child.to_json())
            position[0] += 1
        elif isinstance(child, str):
            out.append(str(child))
            position[0] += 1
        elif isinstance(child, int | float) and math.isfinite(child):
            out.append(freeze(child))
            position[0] += 1
        elif isinstance(child, Mapping) and child.get("type") == "vnode":
            out.append(freeze(child))  # a node already turned into JSON
            position[0] += 1
        elif isinstance(child, list | tuple | Iterator):
            _flatten(tag, child, out, position)
        else:
            raise PatternError(
                f"h({tag!r}): child {position[0]} is {_show(child)}; {_CHILDREN_ALLOWED}."
            )


def _reference(value: Any) -> JSONValue:
    return freeze(value.__charm_json__())


def _show(value: object) -> str:
    if callable(value) and hasattr(value, "__name__"):
        return f"the function {value.__name__}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


# --- events ----------------------------------------------------------------------


class _Drop:
    """Marks a value that is left out of a sanitized event."""


_DROP: Final = _Drop()


def sanitize_event(raw: Mapping[str, Any]) -> dict[str, JSONValue]:
    """The event a handler receives, from what the browser sent: JSON only, known fields only.

    Kept: ``type``, ``key``, ``target.value``, ``target.checked``, the element's
    ``data_*`` attributes (given as ``data_*`` keys or as a ``dataset`` mapping,
    at the top or under ``target``) and ``detail``. Everything else is dropped,
    as is anything that is not JSON; strings are cut to :data:`MAX_EVENT_STRING`
    characters. Why so strict: the event is untrusted input and is stored in the
    commit log, so it must never carry a DOM object or a page's worth of text.
    """
    out: dict[str, JSONValue] = {}
    if not isinstance(raw, Mapping):
        return out
    for field in ("type", "key"):
        value = raw.get(field)
        if isinstance(value, str):
            out[field] = _cut(value)
    target = raw.get("target")
    if isinstance(target, Mapping):
        kept: dict[str, JSONValue] = {}
        if "value" in target:
            value = _clean(target["value"], 0)
            if not isinstance(value, _Drop):
                kept["value"] = value
        if isinstance(target.get("checked"), bool):
            kept["checked"] = target["checked"]
        if kept:
            out["target"] = kept
        _data(target.get("dataset"), out)
    _data(raw.get("dataset"), out)
    _data({k: v for k, v in raw.items() if isinstance(k, str) and k.startswith("data_")}, out)
    if "detail" in raw:
        detail = _clean(raw["detail"], 0)
        if not isinstance(detail, _Drop):
            out["detail"] = detail
    return out


def _data(dataset: object, out: dict[str, JSONValue]) -> None:
    if not isinstance(dataset, Mapping):
        return
    for key, value in dataset.items():
        name = _data_name(key)
        cleaned = _clean(value, 0)
        if name is not None and not isinstance(cleaned, _Drop):
            out[name] = cleaned


def _data_name(key: object) -> str | None:
    """``itemId`` (a DOM dataset key), ``item-id`` or ``data_item_id`` → ``data_item_id``."""
    if not isinstance(key, str) or len(key) > 200:
        return None
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower().replace("-", "_")
    if not snake.startswith("data_"):
        snake = "data_" + snake
    return snake if re.fullmatch(r"data_[a-z0-9_]+", snake) else None


def _clean(value: object, depth: int) -> JSONValue | _Drop:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else _DROP
    if isinstance(value, str):
        return _cut(value)
    if depth >= _MAX_EVENT_DEPTH:
        return _DROP
    if isinstance(value, Mapping):
        items: dict[str, JSONValue] = {}
        for k, v in value.items():
            if isinstance(k, str) and len(k) <= MAX_EVENT_STRING:
                cleaned = _clean(v, depth + 1)
                if not isinstance(cleaned, _Drop):
                    items[k] = cleaned
        return items
    if isinstance(value, list | tuple):
        kept = [_clean(v, depth + 1) for v in value]
        return [v for v in kept if not isinstance(v, _Drop)]
    return _DROP


def _cut(text: str) -> str:
    return str(text[:MAX_EVENT_STRING])
