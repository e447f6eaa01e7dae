from __future__ import annotations

from charmspace.patterns.html import COMPONENT_TAGS, render_html
from charmspace.patterns.ui import COMPONENTS
from charmspace.types import JSONValue

STREAM = {"$stream": {"space": "did:key:z6MkS", "id": "of:s", "path": ["inc"]}}


def node(name: str, props: dict[str, JSONValue] | None = None, *children: JSONValue) -> JSONValue:
    return {"type": "vnode", "name": name, "props": props or {}, "children": list(children)}


def bound(value: JSONValue) -> JSONValue:
    return {"$cell": {"space": "did:key:z6MkS", "id": "of:c", "path": []}, "value": value}


def test_plain_elements_and_text() -> None:
    tree = node("div", {"id": "value", "class": "big"}, node("span", {}, "hello"), 42)
    assert render_html(tree) == '<div class="big" id="value"><span>hello</span>42</div>'


def test_text_and_attributes_are_escaped() -> None:
    tree = node("p", {"title": '"><script>x</script>'}, "<b>bold</b> & co")
    assert render_html(tree) == (
        '<p title="&quot;&gt;&lt;script&gt;x&lt;/script&gt;">&lt;b&gt;bold&lt;/b&gt; &amp; co</p>'
    )


def test_non_vnode_values_render_as_text() -> None:
    assert render_html("a<b") == "a&lt;b"
    assert render_html(1.5) == "1.5"
    assert render_html(None) == ""
    assert render_html(True) == "true"
    assert (
        render_html({"b": 1, "a": "<x>"}) == "{&quot;a&quot;:&quot;&lt;x&gt;&quot;,&quot;b&quot;:1}"
    )
    assert render_html(node("div", {}, [1, "two"])) == "<div>[1,&quot;two&quot;]</div>"
    assert render_html(["x", 2]) == "[&quot;x&quot;,2]"


def test_script_and_style_elements_are_dropped_entirely() -> None:
    tree = node(
        "div",
        {},
        "before",
        node("script", {}, "alert(1)"),
        node("STYLE", {}, "body{}"),
        node("iframe", {"src": "https://evil.example"}),
        "after",
    )
    assert render_html(tree) == "<div>beforeafter</div>"


def test_inline_handlers_are_stripped_and_streams_become_markers() -> None:
    tree = node(
        "a",
        {"on_click": STREAM, "onclick": "alert(1)", "onMouseOver": STREAM, "on_change": "x"},
        "+1",
    )
    assert render_html(tree) == '<a data-on-click="stream">+1</a>'


def test_javascript_urls_are_stripped() -> None:
    assert render_html(node("a", {"href": "javascript:alert(1)"}, "x")) == "<a>x</a>"
    assert render_html(node("a", {"href": " JaVa\tScRiPt:alert(1)"}, "x")) == "<a>x</a>"
    assert render_html(node("img", {"src": "vbscript:msgbox"})) == "<img />"
    assert render_html(node("a", {"href": "data:text/html,<script>"}, "x")) == "<a>x</a>"
    assert render_html(node("a", {"href": "https://example.com/?a=1&b=2"}, "x")) == (
        '<a href="https://example.com/?a=1&amp;b=2">x</a>'
    )
    assert render_html(node("img", {"src": "data:image/png;base64,AAAA"})) == (
        '<img src="data:image/png;base64,AAAA" />'
    )


def test_css_expressions_are_stripped() -> None:
    assert render_html(node("div", {"style": "width: expression(alert(1))"})) == "<div></div>"
    assert render_html(node("div", {"style": "width: EXPR/**/ESSION(alert(1))"})) == "<div></div>"
    assert render_html(node("div", {"style": r"width: expr\65 ssion(1)"})) == "<div></div>"
    assert render_html(node("div", {"style": "color: red"})) == '<div style="color: red"></div>'
    assert render_html(node("div", {"style": {"font_size": "2em", "color": "red"}})) == (
        '<div style="color:red;font-size:2em"></div>'
    )


def test_components_render_as_plain_elements() -> None:
    assert render_html(node("stack", {}, node("row", {}, "a"))) == (
        '<div data-component="stack"><div data-component="row">a</div></div>'
    )
    assert render_html(node("button", {"on_click": STREAM}, "Go")) == (
        '<button data-component="button" data-on-click="stream">Go</button>'
    )
    assert render_html(node("oauth-button", {}, "Sign in")) == (
        '<button data-component="oauth-button">Sign in</button>'
    )
    assert render_html(node("render", {}, node("p", {}, "embedded"))) == (
        '<div data-component="render"><p>embedded</p></div>'
    )
    assert render_html(node("select", {"bind_value": bound("b")}, node("option", {}, "b"))) == (
        '<select data-component="select" value="b"><option>b</option></select>'
    )


def test_list_wraps_each_child_in_li() -> None:
    assert render_html(node("list", {}, "a", node("b", {}, "c"))) == (
        '<ul data-component="list"><li>a</li><li><b>c</b></li></ul>'
    )


def test_checkbox_and_input_with_bindings() -> None:
    assert render_html(node("checkbox", {"checked": True, "on_change": STREAM})) == (
        '<input checked data-component="checkbox" data-on-change="stream" type="checkbox" />'
    )
    assert render_html(node("checkbox", {"checked": True, "bind_checked": bound(False)})) == (
        '<input data-component="checkbox" type="checkbox" />'
    )
    assert render_html(node("input", {"bind_value": bound('say "hi"')})) == (
        '<input data-component="input" value="say &quot;hi&quot;" />'
    )
    assert render_html(node("input", {"value": "plain", "bind_value": bound(7)})) == (
        '<input data-component="input" value="7" />'
    )


def test_void_elements_self_close_and_ignore_children() -> None:
    for tag in ("br", "hr", "img", "meta", "link"):
        assert render_html(node(tag, {}, "ignored")) == f"<{tag} />"


def test_booleans_and_none_props() -> None:
    tree = node("details", {"open": True, "hidden": False, "title": None, "tabindex": 0})
    assert render_html(tree) == '<details open tabindex="0"></details>'


def test_data_and_aria_props_become_dashed_attributes() -> None:
    tree = node("li", {"data_index": 3, "data_item_id": "a", "aria_label": "Item", "x": [1]})
    assert render_html(tree) == (
        '<li aria-label="Item" data-index="3" data-item-id="a" x="[1]"></li>'
    )


def test_attribute_order_is_sorted() -> None:
    tree = node("a", {"title": "t", "id": "i", "href": "/x", "class": "c"}, "x")
    assert render_html(tree) == '<a class="c" href="/x" id="i" title="t">x</a>'


def test_malformed_names_and_attributes_do_not_inject_markup() -> None:
    assert render_html(node("x onload=alert(1)", {}, "kept")) == "kept"
    assert render_html(node("div", {'x" onload="alert(1)': "v", "http-equiv": "refresh"})) == (
        "<div></div>"
    )
    assert (
        render_html({"type": "vnode", "name": "p", "props": "junk", "children": "x"}) == "<p></p>"
    )


def test_every_component_has_an_element() -> None:
    assert set(COMPONENT_TAGS) == COMPONENTS
