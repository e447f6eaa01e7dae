"""Patterns the shell's tests install with ``CHARMSPACE_PATTERNS``."""

from __future__ import annotations

import asyncio

from charmspace import start_job
from charmspace.patterns import NAME, UI, Default, computed, derive, handler, pattern
from charmspace.patterns.ui import h
from charmspace.runtime.cell import Cell
from charmspace.runtime.jobs import JobContext


@handler
def shout(event: dict[str, object], *, text: Cell[str], said: Cell[str]) -> None:
    """Copy what the text input holds right now to ``said``."""
    said.set(text.get() or "")


@handler
def explode(event: dict[str, object], *, said: Cell[str]) -> None:
    raise ValueError("the explode button always fails")


@pattern(tags=["#form"])
def form(text: Default[Cell[str], ""], said: Default[Cell[str], ""]) -> dict[str, object]:  # noqa: F722
    """A text input, its upper-case version (derived) and a button that reads the input."""
    upper = derive(text, lambda t: (t or "").upper())
    return {
        NAME: computed(lambda: f"Form: {text.get()}"),
        UI: h(
            "stack",
            {},
            h("input", {"id": "text", "bind_value": text, "placeholder": "type here"}),
            h("input", {"id": "upper", "bind_value": upper}),
            h("button", {"id": "shout", "on_click": shout.bind(text=text, said=said)}, "Shout"),
            h("button", {"id": "explode", "on_click": explode.bind(said=said)}, "Explode"),
            h("text", {"id": "said"}, said),
            h("text", {"id": "upper-text"}, upper),
        ),
        "text": text,
        "said": said,
        "upper": upper,
    }


@handler
def add_one(event: dict[str, object], *, count: Cell[int]) -> None:
    count.set((count.get() or 0) + 1)


@pattern
def tally(count: Default[Cell[int], 0]) -> dict[str, object]:
    """A number input bound to an ``int`` input, a "+1" button and the count as text."""
    return {
        NAME: computed(lambda: f"Tally: {count.get()}"),
        UI: h(
            "stack",
            {},
            h("input", {"id": "count", "type": "number", "bind_value": count}),
            h("button", {"id": "add", "on_click": add_one.bind(count=count)}, "+1"),
            h("text", {"id": "shown"}, count),
        ),
        "count": count,
    }


_HOSTILE = {
    "type": "vnode",
    "name": "stack",
    "props": {},
    "children": [
        {"type": "vnode", "name": "script", "props": {}, "children": ["window.pwned = 1"]},
        "<img src=x onerror=window.pwned=2>",
        {
            "type": "vnode",
            "name": "a",
            "props": {"id": "js-link", "href": "java\tscript:window.pwned=3"},
            "children": ["link"],
        },
        {
            "type": "vnode",
            "name": "a",
            "props": {"id": "blank", "href": "https://example.invalid/", "target": "_blank"},
            "children": ["out"],
        },
        {
            "type": "vnode",
            "name": "div",
            "props": {"id": "onprops", "onclick": "window.pwned=4", "onmouseover": "x()"},
            "children": ["hover"],
        },
        {
            "type": "vnode",
            "name": "iframe",
            "props": {"srcdoc": "<script>parent.pwned=5</script>"},
            "children": [],
        },
        {
            "type": "vnode",
            "name": "div",
            "props": {"id": "styled", "style": {"background": "url(javascript:window.pwned=6)"}},
            "children": ["styled"],
        },
        {
            "type": "vnode",
            "name": "svg",
            "props": {},
            "children": [
                {"type": "vnode", "name": "script", "props": {}, "children": ["window.pwned=7"]}
            ],
        },
        {
            "type": "vnode",
            "name": "img",
            "props": {"id": "img", "src": "javascript:window.pwned=8", "onerror": "pwned=9"},
            "children": [],
        },
        {
            "type": "vnode",
            "name": "button",
            "props": {"id": "formaction", "formaction": "javascript:window.pwned=10"},
            "children": ["go"],
        },
        {"type": "vnode", "name": "span", "props": {"id": "safe"}, "children": ["still here"]},
    ],
}


@pattern
def hostile(tree: Default[Cell[dict[str, object]], _HOSTILE]) -> dict[str, object]:
    """A UI tree anyone with WRITE could have written: every trick in the book."""
    return {NAME: "Hostile", UI: h("div", {}, tree), "tree": tree}


async def _count(ctx: JobContext) -> None:
    for done in range(1, 5):
        await ctx.progress({"done": done, "total": 4})
        await asyncio.sleep(0.15)


@handler
def begin(event: dict[str, object], *, started: Cell[int]) -> None:
    started.set((started.get() or 0) + 1)
    start_job(_count, name="count")


@pattern
def worker(started: Default[Cell[int], 0]) -> dict[str, object]:
    """A button that starts a job reporting its progress in four steps."""
    return {
        NAME: "Worker",
        UI: h("button", {"id": "begin", "on_click": begin.bind(started=started)}, "Start"),
        "started": started,
    }


@pattern
def gallery(
    title: Default[Cell[str], "Gallery"],
    body: Default[Cell[str], "some text"],  # noqa: F722
    agree: Default[Cell[bool], False],
    color: Default[Cell[str], "red"],
) -> dict[str, object]:
    """Every component the shell renders, bound where it can be."""
    return {
        NAME: "Gallery",
        UI: h(
            "screen",
            {"title": "Gallery"},
            h(
                "card",
                {},
                h("heading", {"level": 3}, "Card heading"),
                h("label", {}, "A label"),
                h("text", {"id": "title"}, title),
            ),
            h(
                "row",
                {},
                h("input", {"id": "email", "type": "email", "bind_value": title}),
                h("textarea", {"id": "body", "bind_value": body}),
                h("checkbox", {"id": "agree", "bind_checked": agree}),
                h("switch", {"id": "switch", "bind_checked": agree}),
                h(
                    "select",
                    {
                        "id": "color",
                        "bind_value": color,
                        "options": ["red", "green", {"value": "blue", "label": "Blue"}],
                    },
                ),
            ),
            h("text", {"id": "agreed"}, agree),
            h("text", {"id": "chosen"}, color),
            h("list", {"id": "items"}, "one", "two"),
            h(
                "tabs",
                {},
                h("stack", {"title": "First"}, "first panel"),
                h("stack", {"title": "Second"}, "second panel"),
            ),
            h("link", {"id": "link", "href": "https://example.invalid/x"}, "a link"),
            h("progress", {"id": "bar", "value": 3, "max": 10}),
            h("loader", {}),
        ),
        "title": title,
        "body": body,
        "agree": agree,
        "color": color,
    }
