"""``render_ui``: a charm's UI tree with cells resolved to values and streams to addresses."""

from __future__ import annotations

from typing import Any

from charmspace import Runtime
from charmspace.patterns import UI, Charm, Default, if_else, pattern
from charmspace.patterns.html import render_html
from charmspace.patterns.render import render_ui
from charmspace.patterns.ui import h
from charmspace.runtime import Address, Cell, Stream


def ui(charm: Charm) -> Any:
    """The rendered tree, typed loosely so tests can index into it."""
    return render_ui(charm)


def stream_of(rendered: Any) -> Address:
    """The address a rendered event prop tells the shell to send to."""
    where = rendered["$stream"]
    return Address(where["space"], where["id"], tuple(where["path"]))


async def test_counter_renders_values_and_stream_addresses(runtime: Runtime) -> None:
    charm = await runtime.charms.create("counter", inputs={"value": 2})
    tree = ui(charm)
    span, button = tree["children"]
    assert span == {"type": "vnode", "name": "span", "props": {"id": "value"}, "children": [2]}
    assert button["name"] == "button"
    assert button["children"] == ["+1"]
    on_click = button["props"]["on_click"]
    assert set(on_click) == {"$stream"}
    assert set(on_click["$stream"]) == {"space", "id", "path"}
    assert on_click["$stream"]["space"] == charm.space


async def test_an_event_sent_where_the_ui_says_changes_the_rendering(runtime: Runtime) -> None:
    charm = await runtime.charms.create("counter", inputs={"value": 2})
    button = ui(charm)["children"][1]
    result = await Stream[Any](runtime, stream_of(button["props"]["on_click"])).call(
        {"type": "click"}
    )
    assert result.ok, result.error
    await runtime.idle()
    assert ui(charm)["children"][0]["children"] == [3]
    assert '<span id="value">3</span>' in render_html(ui(charm))


async def test_render_html_of_the_counter_contains_its_value(runtime: Runtime) -> None:
    charm = await runtime.charms.create("counter", inputs={"value": 41})
    html = render_html(ui(charm))
    assert '<span id="value">41</span>' in html
    assert "+1</button>" in html


async def test_notes_render_their_list_through_map(runtime: Runtime) -> None:
    charm = await runtime.charms.create("notes", inputs={"title": "Shop"})
    assert ui(charm)["children"][1] == {
        "type": "vnode",
        "name": "ul",
        "props": {},
        "children": [],
    }
    for title in ("milk", "eggs <b>"):
        assert (await charm.stream("add").call({"title": title})).ok
    await runtime.idle()
    tree = ui(charm)
    heading, ul, _clear = tree["children"]
    assert heading["children"] == ["Shop"]
    items = ul["children"]
    assert [li["children"][1]["children"] for li in items] == [["milk"], ["eggs <b>"]]
    checkboxes = [li["children"][0]["props"] for li in items]
    assert [(c["checked"], c["data_index"]) for c in checkboxes] == [(False, 0), (False, 1)]
    toggle = stream_of(checkboxes[1]["on_change"])
    assert (await Stream[Any](runtime, toggle).call({"data_index": 1})).ok
    await runtime.idle()
    items = ui(charm)["children"][1]["children"]
    assert [li["children"][0]["props"]["checked"] for li in items] == [False, True]
    html = render_html(ui(charm))
    assert "<span>milk</span>" in html
    assert "eggs &lt;b&gt;" in html
    assert "<script" not in html


@pattern
def form(name: Default[str, "Ada"], shout: Default[bool, False]) -> Any:
    return {
        "name": name,
        "shout": shout,
        UI: h(
            "div",
            {},
            h("input", {"bind_value": name}),
            if_else(shout, h("b", {}, name), h("i", {}, "quiet")),
        ),
    }


async def test_two_way_bound_props_render_their_cell_and_value(runtime: Runtime) -> None:
    charm = await runtime.charms.create(form)
    bound = ui(charm)["children"][0]["props"]["bind_value"]
    assert bound["value"] == "Ada"
    where = bound["$cell"]
    cell: Cell[str] = Cell(runtime, Address(where["space"], where["id"], tuple(where["path"])))
    async with runtime.edit():
        cell.set("Grace")
    assert charm["name"].get() == "Grace"
    assert ui(charm)["children"][0]["props"]["bind_value"]["value"] == "Grace"


async def test_if_else_switches_the_rendered_tree(runtime: Runtime) -> None:
    charm = await runtime.charms.create(form)
    assert ui(charm)["children"][1]["name"] == "i"
    async with runtime.edit():
        charm["shout"].set(True)
    await runtime.idle()
    shown = ui(charm)["children"][1]
    assert (shown["name"], shown["children"]) == ("b", ["Ada"])


async def test_a_charm_without_ui_renders_none(runtime: Runtime) -> None:
    @pattern
    def headless() -> Any:
        return {"x": 1}

    assert ui(await runtime.charms.create(headless)) is None
