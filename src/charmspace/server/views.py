"""A view's node table: a charm's UI as nodes with stable ids, kept current cell by cell.

The web shell shows a charm's UI as a *view*. The page never learns a cell or
stream address: it gets nodes named by ids, and names a node when it sends an
event or an edit; the node table maps that id back to the stream or cell.

Ids are derived from the path from the view's root (``0``, ``0.2``, ``0.2.1``),
so the same tree gets the same ids after a server restart. A list item is
named by its item cell when the list holds links (``0.2.c:`` and a hash of the
cell's address), else by its ``key`` prop (``0.2.k:42``), else by its
position; so a list keeps its items' nodes (and their focus, caret and open
state) when items are inserted, removed or reordered.

Why no tree diffing: while a view is rendered, the table notes which documents
each node's own props, text and children were read from (links followed), and
for a prop or text that shows a linked plain value, where that value is and
what it was. After a commit, :meth:`Table.update` looks only at the nodes that
read a document the commit changed; one whose shown values are all still what
they were is left alone (one document may hold a whole list, shown in a
hundred places), the others are rendered again and compared with their last
rendering. So the work grows with the changed cells times the places they are
shown, not with the size of the view. Only children need a keyed comparison
(a list that changed); a node whose props and children did not change
produces nothing, so the page never replaces it.

Patch operations: ``text`` (a text node's value), ``attr`` (a plain prop,
``None`` removes it), ``bind`` (a two-way bound value), ``insert``, ``move`` and
``remove``; ``root`` when the view's root itself changed (sent as a ``mount``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charmspace.errors import LinkError
from charmspace.patterns.render import UI_KEY, _render, address_json
from charmspace.patterns.ui import BIND_PROPS, is_event_prop
from charmspace.runtime.address import (
    Address,
    is_link,
    is_stream_marker,
    link_to,
    parse_link,
)
from charmspace.runtime.transaction import MAX_HOPS, DocKey, Transaction
from charmspace.types import DID, EntityId, JSONValue, SpaceDID

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime

MAX_NODES = 20_000
"""A view larger than this is refused: the page could not show it usefully anyway."""

_TOP = ""
"""The pseudo node that read the view's root: a change there renders the whole view."""


@dataclass(frozen=True, slots=True)
class Bound:
    """What a node id stands for on the server: its event streams and bound cells."""

    tag: str
    streams: Mapping[str, Address]  # event name ("click") → stream
    cells: Mapping[str, Address]  # bound prop ("value", "checked") → cell


@dataclass(slots=True)
class Table:
    """The page's nodes (JSON), what each id is bound to, and what each node was read from."""

    root: dict[str, Any] | None
    bound: dict[str, Bound] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, tuple[JSONValue, Address]] = field(default_factory=dict)
    reads: dict[str, frozenset[DocKey]] = field(default_factory=dict)
    structure: dict[str, frozenset[DocKey]] = field(default_factory=dict)
    checks: dict[str, tuple[tuple[Address, JSONValue], ...]] = field(default_factory=dict)
    readers: dict[DocKey, set[str]] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)

    @property
    def spaces(self) -> set[SpaceDID]:
        """The spaces this view shows documents of (embedded charms' included)."""
        return {space for space, _ in self.readers}

    def affected(self, space: SpaceDID, ids: Iterable[EntityId]) -> bool:
        return any((space, id) in self.readers for id in ids)

    def _forget(self, node: dict[str, Any]) -> None:
        id = node["id"]
        self.nodes.pop(id, None)
        self.bound.pop(id, None)
        self.sources.pop(id, None)
        self.parents.pop(id, None)
        self.structure.pop(id, None)
        self.checks.pop(id, None)
        for key in self.reads.pop(id, ()):
            readers = self.readers.get(key)
            if readers is not None:
                readers.discard(id)
                if not readers:
                    del self.readers[key]
        for child in node.get("children", ()):
            self._forget(child)

    def update(
        self, runtime: Runtime, principal: DID, root: Address, changed: set[DocKey]
    ) -> list[dict[str, Any]]:
        """Render again what read a document in ``changed``; the ops that patch the page.

        ``root`` is where the view's UI lives (the charm's ``$UI``). A changed
        document that the root itself was read from renders the whole view (an
        op ``root``, or a diff when only the root's contents changed).
        """
        readers = {id for key in changed for id in self.readers.get(key, ())}
        renderer = _Renderer(runtime, principal, self)
        ids = {id for id in readers if not self._unchanged(renderer.tx, id, changed)}
        if not ids and self.root is not None:
            return []
        if _TOP in ids or self.root is None:
            whole = render(runtime, principal, root)
            patch = diff(self.root, whole.root)
            self._replace_all(whole)
            return patch
        tops = [id for id in ids if not self._has_ancestor_in(id, ids)]
        ops: list[dict[str, Any]] = []
        for id in sorted(tops, key=_depth):
            old = self.nodes.get(id)
            source = self.sources.get(id)
            if old is None or source is None:
                continue
            snapshot = _copy(old)
            parent = self.parents.get(id, _TOP)
            self._forget(old)
            renderer.count = len(self.nodes)
            new = renderer.vnode(source[0], source[1], id, parent)
            if _kind(snapshot) != _kind(new):
                whole = render(runtime, principal, root)  # a node changed kind: start over
                patch = diff(self.root, whole.root)
                self._replace_all(whole)
                return patch
            _diff(snapshot, new, ops)
            old.clear()
            old.update(new)  # the parent's list keeps the same object
            self.nodes[id] = old
        return ops

    def _unchanged(self, tx: _Reads, id: str, changed: set[DocKey]) -> bool:
        """Whether node ``id`` shows the same values: only its shown values' documents
        changed, and each value it shows is still the one at the same place."""
        if id == _TOP or not self.structure.get(id, frozenset()).isdisjoint(changed):
            return False
        for address, value in self.checks.get(id, ()):
            if (address.space, address.id) in changed:
                current = tx.read_doc(address.space, address.id, track=False)
                if not _still(current, address.path, value):
                    return False
        return True

    def _has_ancestor_in(self, id: str, ids: set[str]) -> bool:
        parent = self.parents.get(id)
        while parent is not None and parent != _TOP:
            if parent in ids:
                return True
            parent = self.parents.get(parent)
        return False

    def _replace_all(self, other: Table) -> None:
        for name in Table.__slots__:
            setattr(self, name, getattr(other, name))


def _depth(id: str) -> int:
    return id.count(".")


def _copy(node: dict[str, Any]) -> dict[str, Any]:
    """The node as the page has it, children copied (they are changed in place later)."""
    if "text" in node:
        return dict(node)
    return {**node, "children": [_copy(c) for c in node["children"]]}


def _still(doc: Any, path: tuple[Any, ...], value: JSONValue) -> bool:
    """Whether ``doc`` holds ``value`` at ``path`` with no link on the way (else: render)."""
    for segment in path:
        if is_link(doc):
            return False
        if isinstance(doc, Mapping) and isinstance(segment, str):
            doc = doc.get(segment)
        elif isinstance(doc, list) and isinstance(segment, int) and 0 <= segment < len(doc):
            doc = doc[segment]
        else:
            return False
    return not is_link(doc) and type(doc) is type(value) and doc == value


class _Reads(Transaction):
    """A rendering's reads: each document once, and who read it (the node being rendered)."""

    __slots__ = ("docs", "sink")

    def __init__(self, runtime: Runtime, principal: DID) -> None:
        super().__init__(runtime, principal)
        self.docs: dict[DocKey, JSONValue] = {}
        self.sink: set[DocKey] = set()

    def read_doc(self, space: SpaceDID, id: EntityId, *, track: bool = True) -> JSONValue:
        key = (space, id)
        self.sink.add(key)
        if key not in self.docs:
            self.docs[key] = super().read_doc(space, id, track=False)
        return self.docs[key]


def render(runtime: Runtime, principal: DID, root: Address) -> Table:
    """The node table of the UI at ``root`` (a charm's ``$UI``), as ``principal`` sees it."""
    table = Table(None)
    renderer = _Renderer(runtime, principal, table)
    tx = renderer.tx
    raw = tx.read(root, deep=False, track=False)
    where = tx.resolve(root, track=False)
    hops = 0
    while is_link(raw) and hops < MAX_HOPS:
        target, _ = parse_link(raw, Address(where.space, where.id))
        where = tx.resolve(target, track=False)
        raw = tx.read(where, deep=False, track=False)
        hops += 1
    if _is_vnode(raw):
        table.root = renderer.vnode(raw, where, "0", _TOP)
    elif raw is not None:
        table.root = renderer.text(raw, where, "0", _TOP)
    renderer.note(_TOP, tx.sink)
    return table


def build(tree: JSONValue) -> Table:
    """The node table of an already resolved UI tree (no reads: nothing to keep current)."""
    table = Table(None)
    count = [0]
    table.root = _node(tree, "0", table, count) if tree is not None else None
    return table


def _is_vnode(value: object) -> bool:
    return isinstance(value, Mapping) and value.get("type") == "vnode"


class _Renderer:
    """Renders raw UI documents into nodes, noting each node's reads in the table."""

    def __init__(self, runtime: Runtime, principal: DID, table: Table) -> None:
        self.tx = _Reads(runtime, principal)
        self.table = table
        self.count = 0

    def note(
        self,
        id: str,
        reads: set[DocKey],
        checks: tuple[tuple[Address, JSONValue], ...] = (),
        structure: set[DocKey] | None = None,
    ) -> None:
        self.table.reads[id] = frozenset(reads)
        self.table.structure[id] = frozenset(reads if structure is None else structure)
        if checks:
            self.table.checks[id] = checks
        for key in reads:
            self.table.readers.setdefault(key, set()).add(id)

    def _counted(self) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise ValueError(f"the UI has more than {MAX_NODES} nodes")

    def text(self, value: JSONValue, at: Address, id: str, parent: str) -> dict[str, Any]:
        self._counted()
        node = {"id": id, "text": _text(_render(self.tx, value, at, None, 0))}
        self.table.nodes[id] = node
        self.table.parents[id] = parent
        return node

    def vnode(self, raw: Any, at: Address, id: str, parent: str) -> dict[str, Any]:
        """A raw vnode at ``at`` as node ``id``: its own reads are noted under ``id``.

        A prop or text child that is a link to a plain value is noted as a
        *check* (where the value is, what it was): a commit that changed that
        document elsewhere leaves the node alone. Every other read (links on
        the way, list documents, the node's own document) is its *structure*.
        """
        self._counted()
        tx = self.tx
        outer, tx.sink = tx.sink, set()
        structure: set[DocKey] = set()
        checks: list[tuple[Address, JSONValue]] = []
        reads: set[DocKey] = set()

        def measured(reads_of: set[DocKey], final: Address | None, shown: Any) -> None:
            reads.update(reads_of)
            if final is not None and _scalar(shown):
                structure.update(k for k in reads_of if k != (final.space, final.id))
                checks.append((final, shown))
            else:
                structure.update(reads_of)

        try:
            raw_props = raw.get("props")
            raw_props = raw_props if isinstance(raw_props, Mapping) else {}
            props: dict[str, Any] = {}
            children: list[tuple[Any, Address, str | None]] = []
            for name, value in raw_props.items():
                tx.sink = set()
                if name == "charm" and raw.get("name") == "render" and is_link(value):
                    target, _ = parse_link(value, Address(at.space, at.id))
                    charm = tx.resolve(target, track=False)
                    props[name] = {"$charm": address_json(charm)}
                    children = self._resolved(link_to(charm.key(UI_KEY)), at)
                    measured(tx.sink, None, None)
                    continue
                shown, final = self._prop(value, at.key("props", name), name)
                props[name] = shown
                bound = name in BIND_PROPS and isinstance(shown, Mapping) and "$cell" in shown
                measured(tx.sink, final, shown.get("value") if bound else shown)
            raw_children = raw.get("children")
            for i, child in enumerate(raw_children if isinstance(raw_children, list) else []):
                tx.sink = set()
                where = at.key("children", i)
                if is_link(child):
                    target, _ = parse_link(child, Address(where.space, where.id))
                    final = tx.resolve(target, track=False)
                    value = tx.read(final, deep=False, track=False)
                    same_doc = (final.space, final.id) == (target.space, target.id)
                    if _scalar(value) and (final == target or not same_doc):
                        measured(tx.sink, final, value)
                        if value is not None:
                            children.append((value, final, None))
                        continue
                children.extend(self._resolved(child, where))
                measured(tx.sink, None, None)
            nodes: list[dict[str, Any]] = []
            seen: set[str] = set()
            for index, (child, where, item) in enumerate(children):
                tx.sink = set()
                if item is not None:
                    key = "c:" + item
                elif _is_vnode(child):
                    key = _raw_key(tx, child, where, index)
                else:
                    key = str(index)
                measured(tx.sink, None, None)
                child_id = f"{id}.{key}"
                if child_id in seen:  # a duplicate key: fall back to the position
                    child_id = f"{id}.{index}"
                seen.add(child_id)
                if _is_vnode(child):
                    nodes.append(self.vnode(child, where, child_id, id))
                else:
                    tx.sink = set()
                    nodes.append(self.text(child, where, child_id, id))
                    measured(tx.sink, None, None)
            node = _shape(id, raw.get("name"), props, nodes, self.table)
        finally:
            tx.sink = outer
        self.note(id, reads, tuple(checks), structure)
        self.table.nodes[id] = node
        self.table.sources[id] = (raw, at)
        self.table.parents[id] = parent
        return node

    def _prop(self, value: Any, at: Address, prop: str) -> tuple[Any, Address | None]:
        """A prop's shown value, and where it was read from if it is a link's plain value."""
        tx = self.tx
        if is_link(value):
            target, _ = parse_link(value, Address(at.space, at.id))
            final = tx.resolve(target, track=False)
            raw = tx.read(final, deep=False, track=False)
            same_doc = (final.space, final.id) == (target.space, target.id)
            checked = final if final == target or not same_doc else None
            if is_stream_marker(raw):
                return {"$stream": address_json(final)}, None
            if prop.startswith("bind_"):
                bound = tx.read(final, track=False)
                return {"$cell": address_json(final), "value": bound}, checked
            return _render(tx, raw, final, prop, 1), checked
        return _render(tx, value, at, prop, 0), None

    def _resolved(self, child: Any, at: Address) -> list[tuple[Any, Address, str | None]]:
        """A raw child, links followed: one child, none, or a list's items spliced in.

        An item that is a link is named by the cell it points to (its item cell).
        """
        tx = self.tx
        child, at = self._follow(child, at)
        if child is None:
            return []
        if not isinstance(child, list):
            return [(child, at, None)]
        items: list[tuple[Any, Address, str | None]] = []
        for i, item in enumerate(child):
            where = at.key(i)
            cell: str | None = None
            if is_link(item):
                target, _ = parse_link(item, Address(where.space, where.id))
                final = tx.resolve(target, track=False)
                cell = _cell_key(final)
            item, where = self._follow(item, where)
            if item is not None:
                items.append((item, where, cell))
        return items

    def _follow(self, value: Any, at: Address) -> tuple[Any, Address]:
        tx = self.tx
        hops = 0
        while is_link(value):
            hops += 1
            if hops > MAX_HOPS:
                raise LinkError("the UI tree links too deeply", str(at))
            target, _ = parse_link(value, Address(at.space, at.id))
            at = tx.resolve(target, track=False)
            value = tx.read(at, deep=False, track=False)
        return value, at


def _cell_key(address: Address) -> str:
    """An item cell's name in node ids: stable, and no address the page could use."""
    text = json.dumps([address.space, address.id, list(address.path)], separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=9).hexdigest()


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _raw_key(tx: Transaction, child: Any, at: Address, index: int) -> str:
    props = child.get("props")
    key = props.get("key") if isinstance(props, Mapping) else None
    if is_link(key):
        key = _render(tx, key, at.key("props", "key"), "key", 0)
    if isinstance(key, str | int) and not isinstance(key, bool):
        return "k:" + json.dumps(key)[:200]
    return str(index)


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
    if not _is_vnode(value):
        return {"id": id, "text": _text(value)}
    children: list[dict[str, Any]] = []
    seen: set[str] = set()
    raw_children = value.get("children")
    for i, child in enumerate(raw_children if isinstance(raw_children, list) else []):
        child_id = f"{id}.{_child_key(child, i)}"
        if child_id in seen:  # a duplicate key: fall back to the position
            child_id = f"{id}.{i}"
        seen.add(child_id)
        children.append(_node(child, child_id, table, count))
    raw_props = value.get("props")
    return _shape(
        id, value.get("name"), raw_props if isinstance(raw_props, Mapping) else {}, children, table
    )


def _shape(
    id: str, tag: Any, rendered: Mapping[str, Any], children: list[dict[str, Any]], table: Table
) -> dict[str, Any]:
    """A node from its rendered props: events and bound cells go to the table, not the page."""
    props: dict[str, Any] = {}
    events: list[str] = []
    streams: dict[str, Address] = {}
    cells: dict[str, Address] = {}
    bind: dict[str, Any] = {}
    for name, prop in rendered.items():
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
    node: dict[str, Any] = {"id": id, "tag": str(tag), "props": props, "children": children}
    if events:
        node["on"] = sorted(events)
    if bind:
        node["bind"] = bind
    if streams or cells:
        table.bound[id] = Bound(str(tag), streams, cells)
    return node


def _child_key(child: Any, index: int) -> str:
    if _is_vnode(child):
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
