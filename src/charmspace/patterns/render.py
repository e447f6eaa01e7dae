"""A charm's UI tree, resolved to the JSON the shell renders.

Cells in the tree become their current values; streams in event props become
``{"$stream": address}`` so the shell knows where to send events; two-way bound
props become ``{"$cell": address, "value": current}`` so the shell knows where
to write. ``h("render", {"charm": other})`` embeds another charm's UI: the
``charm`` prop becomes ``{"$charm": address}`` of its result and its resolved
``$UI`` is the node's first child.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from charmspace.errors import LinkError
from charmspace.runtime.address import Address, is_link, is_stream_marker, link_to, parse_link
from charmspace.runtime.transaction import MAX_HOPS, Transaction
from charmspace.types import DID, JSONValue
from charmspace.values import freeze

if TYPE_CHECKING:
    from charmspace.patterns.charms import Charm

UI_KEY = "$UI"


def address_json(address: Address) -> dict[str, Any]:
    return {"space": address.space, "id": address.id, "path": list(address.path)}


def render_ui(charm: Charm, principal: DID | None = None) -> JSONValue:
    """The charm's UI with every reference resolved, as the user ``principal`` sees it."""
    runtime = charm.runtime
    tx = Transaction(runtime, principal or runtime.principal)
    at = charm.result.address.key(UI_KEY)
    raw = tx.read(at, deep=False, track=False)
    where = tx.resolve(at, track=False)
    return freeze(_render(tx, raw, where, None, 0))


def _render(tx: Transaction, value: JSONValue, at: Address, prop: str | None, depth: int) -> Any:
    if depth > MAX_HOPS * 4:
        raise LinkError("the UI tree nests too deeply", str(at))
    if is_link(value):
        target, _ = parse_link(value, Address(at.space, at.id))
        final = tx.resolve(target, track=False)
        raw = tx.read(final, deep=False, track=False)
        if is_stream_marker(raw):
            return {"$stream": address_json(final)}
        if prop is not None and prop.startswith("bind_"):
            return {"$cell": address_json(final), "value": tx.read(final, track=False)}
        return _render(tx, raw, final, prop, depth + 1)
    if isinstance(value, dict):
        if value.get("type") == "vnode":
            props = value.get("props") or {}
            children = _children(tx, value.get("children") or [], at, depth)
            rendered = {
                k: _render(tx, v, at.key("props", k), k, depth + 1)
                for k, v in props.items()
                if not (k == "charm" and value.get("name") == "render" and is_link(v))
            }
            if len(rendered) < len(props):  # <render charm=…>: embed that charm's UI
                target, _ = parse_link(props["charm"], Address(at.space, at.id))
                charm = tx.resolve(target, track=False)
                rendered["charm"] = {"$charm": address_json(charm)}
                embedded = _render(tx, link_to(charm.key(UI_KEY)), at, None, depth + 1)
                children = [embedded, *children] if embedded is not None else children
            return {
                "type": "vnode",
                "name": value.get("name"),
                "props": rendered,
                "children": children,
            }
        return {k: _render(tx, v, at.key(k), None, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(tx, v, at.key(i), prop, depth + 1) for i, v in enumerate(value)]
    return value


def _children(tx: Transaction, children: Any, at: Address, depth: int) -> list[Any]:
    out: list[Any] = []
    for i, child in enumerate(children):
        rendered = _render(tx, child, at.key("children", i), None, depth + 1)
        if isinstance(rendered, list):  # a mapped list of nodes spliced in place
            out.extend(rendered)
        elif rendered is not None:
            out.append(rendered)
    return out
