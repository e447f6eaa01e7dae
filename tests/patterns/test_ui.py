from __future__ import annotations

import pytest

from charmspace.errors import PatternError
from charmspace.patterns.ui import (
    COMPONENTS,
    MAX_EVENT_STRING,
    VNode,
    h,
    is_event_prop,
    is_reference,
    sanitize_event,
)
from charmspace.runtime.address import Address, link_to
from charmspace.types import JSONValue
from charmspace.values import FrozenDict

SPACE = "did:key:z6MkSpace"


class FakeRef:
    """A stand-in for a pattern reference: only ``__charm_json__`` matters to ui.py."""

    def __init__(self, id: str, *path: str | int) -> None:
        self.address = Address(SPACE, id, path)

    def __charm_json__(self) -> JSONValue:
        return link_to(self.address)

    def __bool__(self) -> bool:  # like Ref: a future value has no truth value yet
        raise AssertionError("h() must not ask a reference for its truth value")


def link(id: str, *path: str | int) -> JSONValue:
    return link_to(Address(SPACE, id, path))


def test_h_builds_a_frozen_vnode() -> None:
    node = h("div", {"id": "x", "class": "box"}, "hello", 3, 1.5)
    assert node.to_json() == {
        "type": "vnode",
        "name": "div",
        "props": {"id": "x", "class": "box"},
        "children": ["hello", 3, 1.5],
    }
    assert type(node.to_json()) is FrozenDict
    assert node.__charm_json__() == node.to_json()


def test_h_without_props_or_children() -> None:
    assert h("br").to_json() == {"type": "vnode", "name": "br", "props": {}, "children": []}
    assert h("hr", None).props == {}


def test_nested_nodes_and_references_become_json() -> None:
    value = FakeRef("of:value")
    node = h("div", {}, h("span", {"id": "value"}, value), h("b", {}, "bold"))
    assert node.to_json() == {
        "type": "vnode",
        "name": "div",
        "props": {},
        "children": list(node.children),
    }
    assert node.children[0] == {
        "type": "vnode",
        "name": "span",
        "props": {"id": "value"},
        "children": [link("of:value")],
    }
    assert node.children[1] == {"type": "vnode", "name": "b", "props": {}, "children": ["bold"]}


def test_children_lists_are_flattened_and_none_false_dropped() -> None:
    items = [h("li", {}, "a"), [h("li", {}, "b"), None], (x for x in ["c"])]
    node = h("ul", {}, items, None, False, True, "", 0)
    names = [c["name"] if isinstance(c, dict) else c for c in node.children]
    assert names == ["li", "li", "c", "", 0]


def test_reference_props_and_nested_prop_values() -> None:
    done, index = FakeRef("of:notes", 0, "done"), FakeRef("of:i")
    node = h("checkbox", {"checked": done, "data_index": index, "style": {"color": "red"}})
    assert node.props == {
        "checked": link("of:notes", 0, "done"),
        "data_index": link("of:i"),
        "style": {"color": "red"},
    }


def test_event_props_take_a_stream() -> None:
    stream = FakeRef("of:stream")
    node = h("button", {"on_click": stream, "on_keydown": stream}, "+1")
    assert node.props == {"on_click": link("of:stream"), "on_keydown": link("of:stream")}


@pytest.mark.parametrize("bad", [lambda e: None, "alert(1)", None, {"a": 1}])
def test_event_prop_without_a_stream_is_a_pattern_error(bad: object) -> None:
    with pytest.raises(PatternError) as info:
        h("button", {"on_click": bad})
    message = str(info.value)
    assert "h('button')" in message
    assert "'on_click'" in message
    assert "event props take a stream: bind a handler with handler.bind(...)" in message


def test_event_prop_error_names_the_function() -> None:
    def increment(event: object) -> None: ...

    with pytest.raises(PatternError, match="the function increment"):
        h("button", {"on_click": increment})


def test_inline_handler_props_are_refused() -> None:
    with pytest.raises(PatternError, match="inline event handler"):
        h("img", {"onerror": "alert(1)"})
    with pytest.raises(PatternError, match="inline event handler"):
        h("div", {"onClick": FakeRef("of:s")})


def test_bind_props_take_a_cell() -> None:
    text, flag = FakeRef("of:text"), FakeRef("of:flag")
    node = h("input", {"bind_value": text})
    assert node.props == {"bind_value": link("of:text")}
    assert h("checkbox", {"bind_checked": flag}).props == {"bind_checked": link("of:flag")}
    with pytest.raises(PatternError, match="bind_value takes a cell"):
        h("input", {"bind_value": "hello"})
    with pytest.raises(PatternError, match="supports bind_checked and bind_value"):
        h("input", {"bind_text": text})


@pytest.mark.parametrize("tag", ["", "1div", "my tag", "<b>", "a_b"])
def test_bad_tags_are_pattern_errors(tag: str) -> None:
    with pytest.raises(PatternError, match="a tag is a name such as"):
        h(tag)


def test_non_string_tag_is_a_pattern_error() -> None:
    with pytest.raises(PatternError, match="a tag is a name"):
        h(VNode, {})  # type: ignore[arg-type]


@pytest.mark.parametrize("tag", ["script", "STYLE"])
def test_script_and_style_elements_are_refused(tag: str) -> None:
    with pytest.raises(PatternError, match="never rendered"):
        h(tag, {}, "alert(1)")


def test_custom_element_tags_are_allowed() -> None:
    assert h("oauth-button").name == "oauth-button"
    assert h("my-widget2").name == "my-widget2"


@pytest.mark.parametrize("bad", [object(), {"a": 1}, b"bytes", float("nan"), {1, 2}])
def test_bad_children_are_pattern_errors(bad: object) -> None:
    with pytest.raises(PatternError) as info:
        h("div", {}, "ok", bad)
    message = str(info.value)
    assert message.startswith("h('div'): child 1 is ")
    assert "children may be strings, numbers, other h(...) nodes, references to cells" in message


def test_bad_prop_values_and_names_are_pattern_errors() -> None:
    with pytest.raises(PatternError, match=r"prop 'title' got .*prop values may be strings"):
        h("div", {"title": object()})
    with pytest.raises(PatternError, match="prop 'n' got"):
        h("div", {"n": float("inf")})
    with pytest.raises(PatternError, match="prop names must be non-empty strings"):
        h("div", {1: "x"})  # type: ignore[dict-item]
    with pytest.raises(PatternError, match="the second argument is the props dict"):
        h("span", "hello")  # type: ignore[arg-type]


def test_already_built_vnode_json_is_a_valid_child() -> None:
    inner = h("i", {}, "x").to_json()
    assert h("p", {}, inner).children == (inner,)


def test_components_and_event_prop_names() -> None:
    assert {"stack", "row", "button", "input", "checkbox", "select"} <= COMPONENTS
    assert {"list", "render", "oauth-button"} <= COMPONENTS
    assert is_event_prop("on_click") and is_event_prop("on_submit")
    assert not is_event_prop("onclick") and not is_event_prop("on_")
    assert is_reference(FakeRef("of:x")) and not is_reference(h("div"))


def test_sanitize_event_keeps_only_known_json_fields() -> None:
    raw = {
        "type": "change",
        "key": "Enter",
        "target": {"value": "hi", "checked": True, "ownerDocument": object(), "id": "x"},
        "dataset": {"index": 2, "itemId": "a7", "bad": object()},
        "data_amount": 1,
        "detail": {"x": [1, object(), float("nan"), "y"], "fn": print, 3: "int key"},
        "timeStamp": 123.4,
        "view": object(),
    }
    assert sanitize_event(raw) == {
        "type": "change",
        "key": "Enter",
        "target": {"value": "hi", "checked": True},
        "data_index": 2,
        "data_item_id": "a7",
        "data_amount": 1,
        "detail": {"x": [1, "y"]},
    }


def test_sanitize_event_drops_non_json_and_wrong_types() -> None:
    raw = {"type": 5, "key": None, "target": {"value": object(), "checked": "yes"}, "detail": print}
    assert sanitize_event(raw) == {}
    assert sanitize_event({"target": "not a mapping", "dataset": ["x"]}) == {}


def test_sanitize_event_reads_the_dataset_under_target() -> None:
    raw = {"type": "click", "target": {"dataset": {"data-index": "4"}}}
    assert sanitize_event(raw) == {"type": "click", "data_index": "4"}


def test_sanitize_event_truncates_long_strings() -> None:
    long = "x" * (MAX_EVENT_STRING + 50)
    event = sanitize_event({"type": "input", "target": {"value": long}, "detail": [long]})
    assert event["target"] == {"value": "x" * MAX_EVENT_STRING}
    assert event["detail"] == ["x" * MAX_EVENT_STRING]


def test_sanitize_event_stops_at_deep_nesting() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(100):
        node["next"] = {}
        node = node["next"]  # type: ignore[assignment]
    event = sanitize_event({"detail": deep})
    depth, value = 0, event["detail"]
    while isinstance(value, dict) and "next" in value:
        depth, value = depth + 1, value["next"]
    assert depth < 40
