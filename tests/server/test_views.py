"""Node tables and patches: stable ids, keyed lists, nothing sent for what did not change."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from charmspace.facade import Runtime
from charmspace.identity import Identity
from charmspace.patterns import NAME, UI, Default, pattern
from charmspace.patterns.charms import Charm
from charmspace.patterns.render import UI_KEY, render_ui
from charmspace.patterns.ui import h
from charmspace.runtime.address import Address, link_to
from charmspace.runtime.cell import Cell
from charmspace.server.view_protocol import ViewProtocol
from charmspace.server.views import build, diff, render
from charmspace.storage.model import Change

STREAM = {"$stream": {"space": "did:key:z6Mkx", "id": "of:s", "path": ["inc"]}}
CELL = {"$cell": {"space": "did:key:z6Mkx", "id": "of:c", "path": ["text"]}, "value": "hi"}


def node(name: str, props: dict[str, Any] | None = None, *children: Any) -> dict[str, Any]:
    return {"type": "vnode", "name": name, "props": props or {}, "children": list(children)}


def items(*keys: str) -> dict[str, Any]:
    return node("list", {}, *(node("text", {"key": k}, f"item {k}") for k in keys))


def test_ids_follow_the_path_and_the_page_never_sees_an_address() -> None:
    table = build(
        node(
            "div",
            {},
            node("button", {"on_click": STREAM}, "+1"),
            node("input", {"bind_value": CELL}),
        )
    )
    root = table.root
    assert root is not None
    assert [c["id"] for c in root["children"]] == ["0.0", "0.1"]
    assert root["children"][0]["on"] == ["click"] and root["children"][0]["props"] == {}
    assert root["children"][1]["bind"] == {"value": "hi"}
    assert "$stream" not in str(root) and "$cell" not in str(root)
    assert table.bound["0.0"].streams["click"].path == ("inc",)
    assert table.bound["0.1"].cells["value"].id == "of:c"


def test_an_unchanged_tree_is_no_patch_and_a_text_change_is_one_op() -> None:
    before = build(node("div", {}, node("span", {}, "1"))).root
    assert diff(before, build(node("div", {}, node("span", {}, "1"))).root) == []
    after = build(node("div", {}, node("span", {}, "2"))).root
    assert diff(before, after) == [{"op": "text", "node": "0.0.0", "value": "2"}]


def test_keyed_items_are_inserted_moved_and_removed_not_rebuilt() -> None:
    before = build(items("a", "b", "c")).root
    after = build(items("c", "a", "new")).root
    assert before is not None and after is not None
    ops = diff(before, after)
    kinds = [(op["op"], op.get("node") if op["op"] != "insert" else op["node"]["id"]) for op in ops]
    assert ("remove", '0.k:"b"') in kinds
    assert ("insert", '0.k:"new"') in kinds
    assert ("move", '0.k:"c"') in kinds
    assert not any(op["op"] == "text" for op in ops)  # the kept items' text did not change
    order = [c["id"] for c in before["children"]]  # the page's bookkeeping, as shell.js does it
    for op in ops:
        if op["op"] == "remove":
            order.remove(op["node"])
        elif op["op"] == "insert":
            order.insert(op["index"], op["node"]["id"])
        elif op["op"] == "move":
            order.remove(op["node"])
            order.insert(op["index"], op["node"])
    assert order == [c["id"] for c in after["children"]]


def test_props_and_bound_values_patch_one_by_one() -> None:
    before = build(node("input", {"placeholder": "x", "bind_value": CELL})).root
    changed = {**CELL, "value": "ho"}
    after = build(node("input", {"bind_value": changed, "title": "t"})).root
    assert diff(before, after) == [
        {"op": "attr", "node": "0", "name": "placeholder", "value": None},
        {"op": "attr", "node": "0", "name": "title", "value": "t"},
        {"op": "bind", "node": "0", "prop": "value", "value": "ho"},
    ]


# --- views kept current by the cells they read (a real runtime, memory and SQLite) ---------


@pattern
def window(other: Cell[Any]) -> dict[str, object]:
    """Another charm's UI, embedded: the charm may live in another space."""
    return {NAME: "Window", UI: h("div", {}, h("render", {"charm": other}))}


@pattern
def pinboard(pins: Default[Cell[list[Any]], []]) -> dict[str, object]:
    """A list whose items are links to cells: each item is named by its item cell."""
    return {NAME: "Pins", UI: h("ul", {}, pins), "pins": pins}


@pytest.fixture
async def runtime(storage_url: str) -> AsyncIterator[Runtime]:
    rt = Runtime(storage_url, identity=Identity.generate())
    yield rt
    await rt.close()


class Changes:
    """The documents each commit of a space changed, as the view protocol hears of them."""

    def __init__(self, runtime: Runtime, *spaces: str) -> None:
        self.keys: set[tuple[str, str]] = set()
        for space in spaces:
            runtime.storage.subscribe(space, self.heard)

    def heard(self, change: Change) -> None:
        self.keys.update((change.space, id) for id in change.ids)

    def take(self) -> set[tuple[str, str]]:
        keys, self.keys = self.keys, set()
        return keys


def ui_of(charm: Charm) -> Address:
    return charm.result.address.key(UI_KEY)


async def test_a_toggled_note_renders_one_node_again_and_patches_one_prop(
    runtime: Runtime,
) -> None:
    notes = [{"title": f"note {i}", "done": False} for i in range(50)]
    charm = await runtime.charms.create("notes", inputs={"notes": notes})
    await runtime.idle()
    table = render(runtime, runtime.principal, ui_of(charm))
    assert table.root == build(render_ui(charm)).root  # the same nodes as a whole rendering
    kept = {id: node for id, node in table.nodes.items() if id != "0.1.3.0"}
    changes = Changes(runtime, charm.space)
    await charm.stream("toggle").call({"index": 3})
    await runtime.idle()
    ops = table.update(runtime, runtime.principal, ui_of(charm), changes.take())
    assert ops == [{"op": "attr", "node": "0.1.3.0", "name": "checked", "value": True}]
    assert all(table.nodes[id] is node for id, node in kept.items())  # nothing else re-rendered
    assert table.root == build(render_ui(charm)).root


async def test_a_pushed_note_is_one_insert_and_a_renamed_one_one_text(runtime: Runtime) -> None:
    charm = await runtime.charms.create("notes", inputs={"notes": [{"title": "a", "done": False}]})
    await runtime.idle()
    table = render(runtime, runtime.principal, ui_of(charm))
    changes = Changes(runtime, charm.space)
    await charm.stream("add").call({"title": "b"})
    await runtime.idle()
    ops = table.update(runtime, runtime.principal, ui_of(charm), changes.take())
    assert [(op["op"], op["node"]["id"]) for op in ops] == [("insert", "0.1.1")]
    assert table.root == build(render_ui(charm)).root
    async with runtime.edit() as tx:
        tx.write(charm["notes"].key(0).key("title").address, "renamed")
    await runtime.idle()
    ops = table.update(runtime, runtime.principal, ui_of(charm), changes.take())
    assert ops == [{"op": "text", "node": "0.1.0.1.0", "value": "renamed"}]


async def test_list_items_that_are_links_are_named_by_their_item_cell(runtime: Runtime) -> None:
    a = await runtime.charms.create("counter", inputs={"value": 1})
    b = await runtime.charms.create("counter", inputs={"value": 2})
    charm = await runtime.charms.create(
        pinboard,
        inputs={
            "pins": [link_to(a.result.address.key(UI_KEY)), link_to(b.result.address.key(UI_KEY))]
        },
    )
    await runtime.idle()
    table = render(runtime, runtime.principal, ui_of(charm))
    assert table.root is not None
    before = [c["id"] for c in table.root["children"]]
    assert all(id.startswith("0.c:") for id in before) and len(set(before)) == 2
    changes = Changes(runtime, charm.space)
    async with runtime.edit() as tx:
        pins = tx.read(charm["pins"].address, deep=False)
        assert isinstance(pins, list | tuple)
        tx.write(charm["pins"].address, list(reversed(pins)))
    await runtime.idle()
    ops = table.update(runtime, runtime.principal, ui_of(charm), changes.take())
    assert [op["op"] for op in ops] == ["move"]  # the items keep their nodes
    assert [c["id"] for c in table.root["children"]] == list(reversed(before))


async def test_an_embedded_charm_of_another_space_updates_the_view_live(
    runtime: Runtime,
) -> None:
    counter = await runtime.charms.create("counter", space=runtime.create_space(name="elsewhere"))
    charm = await runtime.charms.create(window, inputs={"other": counter.result})
    await runtime.idle()
    frames: list[dict[str, Any]] = []
    views = ViewProtocol(runtime, runtime.principal, None, frames.append)
    await views.handle({"type": "hello", "v": 1, "tab": "t"})
    where = {"space": charm.space, "id": charm.id}
    await views.handle({"type": "open", "id": "t:1", "view": "v", "charm": where})
    mount = next(f for f in frames if f["type"] == "mount")
    assert '"text": "0"' in json.dumps(mount["root"])
    await counter.stream("increment").call({})
    await runtime.idle()
    for _ in range(200):
        if any(f["type"] == "patch" for f in frames):
            break
        await asyncio.sleep(0.01)
    patches = [f for f in frames if f["type"] == "patch"]
    assert patches and {"op": "text", "node": "0.0.0.0.0", "value": "1"} in patches[0]["ops"]
    views.close()


async def test_clearing_done_notes_patches_the_list_and_matches_a_whole_rendering(
    runtime: Runtime,
) -> None:
    notes = [{"title": f"note {i}", "done": i % 2 == 1} for i in range(6)]
    charm = await runtime.charms.create("notes", inputs={"notes": notes})
    await runtime.idle()
    table = render(runtime, runtime.principal, ui_of(charm))
    changes = Changes(runtime, charm.space)
    await charm.stream("clear_done").call({})
    await runtime.idle()
    ops = table.update(runtime, runtime.principal, ui_of(charm), changes.take())
    assert sorted(op["node"] for op in ops if op["op"] == "remove") == ["0.1.3", "0.1.4", "0.1.5"]
    assert table.root == build(render_ui(charm)).root
    texts = [
        li["children"][1]["children"][0]["text"] for li in table.root["children"][1]["children"]
    ]
    assert texts == ["note 0", "note 2", "note 4"]
