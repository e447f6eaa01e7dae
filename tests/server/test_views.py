"""Node tables and patches: stable ids, keyed lists, nothing sent for what did not change."""

from __future__ import annotations

from typing import Any

from charmspace.server.views import build, diff

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
