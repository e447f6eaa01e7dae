"""A resolved UI tree as HTML text: what the shell would show, for tests and previews.

The input is the JSON :func:`charmspace.patterns.render.render_ui` returns:
cells already replaced by their values, event props as ``{"$stream": {…}}``,
two-way bound props as ``{"$cell": {…}, "value": …}``. No JavaScript is
emitted: event props become ``data-on-click="stream"``-style markers.

The tree is data anyone with write access to a cell can shape, so it is
treated as untrusted: text and attribute values are escaped, ``<script>`` and
``<style>`` (and other elements that load or run code) are dropped with their
content, inline ``on…`` handlers, ``javascript:`` URLs and CSS ``expression(``
are stripped. The output is deterministic (attributes sorted), so tests can
compare it as a string.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Final

from charmspace.patterns.ui import BIND_PROPS, COMPONENTS, is_event_prop
from charmspace.types import JSONValue
from charmspace.values import canonical

COMPONENT_TAGS: Final[Mapping[str, str]] = {
    "stack": "div",
    "row": "div",
    "list": "ul",
    "checkbox": "input",
    "input": "input",
    "button": "button",
    "select": "select",
    "render": "div",
    "oauth-button": "button",
}
"""The plain element each component renders as (with a ``data-component`` attribute)."""

VOID_ELEMENTS: Final = frozenset(
    {"input", "br", "img", "hr", "meta", "link", "area", "col", "source", "track", "wbr"}
)
DROPPED_ELEMENTS: Final = frozenset(
    {"script", "style", "iframe", "frame", "frameset", "object", "embed", "base"}
)
"""Elements left out with everything inside them: they run code or load other pages."""

_URL_ATTRS = frozenset(
    {"href", "src", "action", "formaction", "xlink:href", "poster", "background", "cite"}
)
_DROPPED_ATTRS = frozenset({"srcdoc", "http-equiv"})
_UNSAFE_CSS = ("expression(", "javascript:", "vbscript:", "behavior:", "-moz-binding")
_TAG = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_ATTR = re.compile(r"[a-zA-Z_:][-a-zA-Z0-9_:.]*")

Attrs = dict[str, str | bool]


def render_html(tree: JSONValue) -> str:
    """HTML text for a resolved UI tree: a vnode, or any JSON value shown as text.

    Lists are not spliced (the resolver already spliced mapped children), so a
    list that reaches here is data and shows as JSON, like a dict.
    """
    if isinstance(tree, Mapping) and tree.get("type") == "vnode":
        return _element(tree)
    return _text(tree)


def _text(value: JSONValue) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return html.escape(canonical(value))


def _element(node: Mapping[str, JSONValue]) -> str:
    name = node.get("name")
    props = node.get("props")
    children = node.get("children")
    props = props if isinstance(props, Mapping) else {}
    children = children if isinstance(children, list) else []
    if not isinstance(name, str) or not _TAG.fullmatch(name):
        return "".join(render_html(child) for child in children)  # no safe tag: content only
    if name.lower() in DROPPED_ELEMENTS:
        return ""
    tag = COMPONENT_TAGS.get(name, name)
    attrs = _attrs(props)
    if name in COMPONENTS:
        attrs["data-component"] = name
    if name == "checkbox":
        attrs["type"] = "checkbox"
    opening = tag + "".join(_attr_text(k, attrs[k]) for k in sorted(attrs))
    if tag.lower() in VOID_ELEMENTS:
        return f"<{opening} />"
    if name == "list":
        inner = "".join(f"<li>{render_html(child)}</li>" for child in children)
    else:
        inner = "".join(render_html(child) for child in children)
    return f"<{opening}>{inner}</{tag}>"


def _attrs(props: Mapping[str, JSONValue]) -> Attrs:
    attrs: Attrs = {}
    bound: list[tuple[str, JSONValue]] = []
    for key, value in props.items():
        if key.lower().startswith("on"):
            if is_event_prop(key) and isinstance(value, Mapping) and "$stream" in value:
                attrs["data-" + key.replace("_", "-")] = "stream"
            continue  # an inline handler, or an event prop with no stream behind it
        if key in BIND_PROPS:
            current = value.get("value") if isinstance(value, Mapping) else value
            bound.append((key.removeprefix("bind_"), current))
            continue
        _set(attrs, key, value)
    for key, current in bound:  # the bound cell's value wins over a plain prop of the same name
        _set(attrs, key, current)
    return attrs


def _set(attrs: Attrs, key: str, value: JSONValue) -> None:
    name = _attr_name(key)
    if name is None or name.lower() in _DROPPED_ATTRS:
        return
    if value is None or value is False:
        attrs.pop(name, None)
        return
    if value is True:
        attrs[name] = True
        return
    if name.lower() == "style" and isinstance(value, Mapping):
        text = ";".join(f"{k.replace('_', '-')}:{_plain(v)}" for k, v in sorted(value.items()))
    else:
        text = _plain(value)
    if name.lower() in _URL_ATTRS and _unsafe_url(text):
        return
    if name.lower() == "style" and _unsafe_css(text):
        return
    attrs[name] = text


def _attr_name(key: str) -> str | None:
    """``data_foo`` → ``data-foo`` (``aria_*`` too); names HTML would misread are refused."""
    if key.startswith(("data_", "aria_")):
        key = key.replace("_", "-")
    return key if _ATTR.fullmatch(key) else None


def _plain(value: JSONValue) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return canonical(value)


def _attr_text(name: str, value: str | bool) -> str:
    if value is True:
        return f" {name}"
    return f' {name}="{html.escape(str(value), quote=True)}"'


def _unsafe_url(url: str) -> bool:
    # Browsers ignore control characters and whitespace inside a scheme ("java\tscript:").
    compact = "".join(ch for ch in url if ch > " ").lower()
    if compact.startswith(("javascript:", "vbscript:")):
        return True
    return compact.startswith("data:") and not compact.startswith("data:image/")


def _unsafe_css(css: str) -> bool:
    text = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    text = re.sub(
        r"\\([0-9a-fA-F]{1,6})\s?", lambda m: chr(min(int(m.group(1), 16), 0x10FFFF)), text
    )
    compact = "".join(ch for ch in text if not ch.isspace() and ch != "\\").lower()
    return any(bad in compact for bad in _UNSAFE_CSS)
