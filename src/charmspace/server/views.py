"""A view's node table: a resolved UI tree as nodes with stable ids, and the patch between two.

The web shell shows a charm's UI as a *view*. The page never learns a cell or
stream address: it gets nodes named by ids, and names a node when it sends an
event or an edit; the node table maps that id back to the stream or cell.

Ids are derived from the path from the view's root (``0``, ``0.2``, ``0.2.1``),
so the same tree gets the same ids after a server restart. A child with a
``key`` prop is named by its key instead of its position (``0.2.k:42``), so a
keyed list keeps its items' nodes (and their focus, caret and open state) when
items are inserted, removed or reordered.

:func:`diff` turns two renderings of the same view into patch operations:
``text`` (a text node's value), ``attr`` (a plain prop, ``None`` removes it),
``bind`` (a two-way bound value), ``insert``, ``move`` and ``remove``. A node
whose props and children did not change produces nothing, so the page never
replaces it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from charmspace.patterns.ui import BIND_PROPS, is_event_prop
from charmspace.runtime.address import Address
from charmspace.types import JSONValue

MAX_NODES = 20_000
"""A view larger than this is refused: the page could not show it usefully anyway."""


@dataclass(frozen=True, slots=True)
class Bound:
    """What a node id stands for on the server: its event streams and bound cells."""

    tag: str
    streams: Mapping[str, Address]  # event name ("click") → stream
    cells: Mapping[str, Address]  # bound prop ("value", "checked") → cell


@dataclass(slots=True)
class Table:
    """One rendering of a view: the page's nodes (JSON) and what each id is bound to."""

    root: dict[str, Any] | None
    bound: dict[str, Bound] = field(default_factory=dict)


def build(tree: JSONValue) -> Table:
    """The node table of a resolved UI tree (:func:`charmspace.patterns.render.render_ui`)."""
    table = Table(None)
    count = [0]
    table.root = _node(tree, "0", table, count) if tree is not None else None
    return table


def _address(value: object) -> Address | None:
    if not isinstance(value, Mapping):
        return None
    raw = value.get("$stream") or value.get("$cell")
    if not isinstance(raw, Mapping):
        return None
    path = raw.get("path")
    return Address(str(raw.get("space")), str(raw.get("id")), tuple(path or ()))


def _node(value: Any, id: str, table: Table, count: list[int]) -> dict[str, Any]:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ValueError(f"the UI has more than {MAX_NODES} nodes")
    if not (isinstance(value, Mapping) and value.get("type") == "vnode"):
        return {"id": id, "text": _text(value)}
    tag = value.get("name")
    raw_props = value.get("props")
    props: dict[str, Any] = {}
    events: list[str] = []
    streams: dict[str, Address] = {}
    cells: dict[str, Address] = {}
    bind: dict[str, Any] = {}
    for name, prop in (raw_props if isinstance(raw_props, Mapping) else {}).items():
        if not isinstance(name, str):
            continue
        if is_event_prop(name):
            address = _address(prop)
            if address is not None and "$stream" in prop:
                event = name.removeprefix("on_")
                events.append(event)
                streams[event] = address
            continue
        if name in BIND_PROPS:
            address = _address(prop)
            target = name.removeprefix("bind_")
            if address is not None and "$cell" in prop:
                cells[target] = address
                bind[target] = prop.get("value")
            else:
                bind[target] = prop
            continue
        if name == "charm" and isinstance(prop, Mapping) and "$charm" in prop:
            continue  # an embedded charm's address: the page never needs it
        props[name] = prop
    children: list[dict[str, Any]] = []
    seen: set[str] = set()
    raw_children = value.get("children")
    for i, child in enumerate(raw_children if isinstance(raw_children, list) else []):
        child_id = f"{id}.{_child_key(child, i)}"
        if child_id in seen:  # a duplicate key: fall back to the position
            child_id = f"{id}.{i}"
        seen.add(child_id)
        children.append(_node(child, child_id, table, count))
    node: dict[str, Any] = {"id": id, "tag": str(tag), "props": props, "children": children}
    if events:
        node["on"] = sorted(events)
    if bind:
        node["bind"] = bind
    if streams or cells:
        table.bound[id] = Bound(str(tag), streams, cells)
    return node


def _child_key(child: Any, index: int) -> str:
    if isinstance(child, Mapping) and child.get("type") == "vnode":
        props = child.get("props")
        key = props.get("key") if isinstance(props, Mapping) else None
        if isinstance(key, str | int) and not isinstance(key, bool):
            return "k:" + json.dumps(key)[:200]
    return str(index)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The operations that turn the page's ``old`` tree into ``new`` (same view)."""
    if old is None or new is None or old["id"] != new["id"] or _kind(old) != _kind(new):
        return [{"op": "root", "node": new}]
    ops: list[dict[str, Any]] = []
    _diff(old, new, ops)
    return ops


def _kind(node: dict[str, Any]) -> str:
    return "#text" if "text" in node else str(node.get("tag"))


def _diff(old: dict[str, Any], new: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    id = new["id"]
    if "text" in new:
        if old.get("text") != new["text"]:
            ops.append({"op": "text", "node": id, "value": new["text"]})
        return
    if old.get("on") != new.get("on"):
        ops.append({"op": "attr", "node": id, "name": "$on", "value": new.get("on", [])})
    old_props, new_props = old["props"], new["props"]
    for name in sorted(old_props.keys() | new_props.keys()):
        if old_props.get(name) != new_props.get(name) or (name in old_props) != (name in new_props):
            ops.append({"op": "attr", "node": id, "name": name, "value": new_props.get(name)})
    old_bind, new_bind = old.get("bind", {}), new.get("bind", {})
    for name in sorted(old_bind.keys() | new_bind.keys()):
        if old_bind.get(name) != new_bind.get(name):
            ops.append({"op": "bind", "node": id, "prop": name, "value": new_bind.get(name)})
    _children(old["children"], new["children"], id, ops)


def _children(
    old: list[dict[str, Any]], new: list[dict[str, Any]], parent: str, ops: list[dict[str, Any]]
) -> None:
    """Keyed: nodes kept by id are diffed in place, moved if their position changed."""
    new_ids = {c["id"] for c in new}
    old_by_id = {c["id"]: c for c in old}
    order = []
    for child in old:
        if child["id"] not in new_ids or _kind(child) != _kind(_find(new, child["id"])):
            ops.append({"op": "remove", "node": child["id"]})
        else:
            order.append(child["id"])
    for index, child in enumerate(new):
        previous = old_by_id.get(child["id"])
        if previous is None or _kind(previous) != _kind(child):
            ops.append({"op": "insert", "parent": parent, "index": index, "node": child})
            order.insert(index, child["id"])
            continue
        if order.index(child["id"]) != index:
            ops.append({"op": "move", "node": child["id"], "parent": parent, "index": index})
            order.remove(child["id"])
            order.insert(index, child["id"])
        _diff(previous, child, ops)


def _find(nodes: list[dict[str, Any]], id: str) -> dict[str, Any]:
    return next(c for c in nodes if c["id"] == id)
