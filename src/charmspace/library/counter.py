"""The counter: the smallest charm with state, a derived value, a handler and a UI."""

from __future__ import annotations

from typing import TypedDict

from charmspace.patterns import NAME, UI, Default, computed, derive, handler, pattern
from charmspace.patterns.ui import h
from charmspace.runtime.cell import Cell


class Adjust(TypedDict):
    amount: int


@handler
def adjust(event: Adjust, *, value: Cell[int]) -> None:
    """Add ``event["amount"]`` (negative to subtract) to the value."""
    value.set((value.get() or 0) + event["amount"])


@handler
def increment(event: dict[str, object], *, value: Cell[int]) -> None:
    """Add one, whatever the event says (a button click)."""
    value.set((value.get() or 0) + 1)


@pattern(tags=["#counter"])
def counter(value: Default[Cell[int], 0]) -> dict[str, object]:
    """A number you can adjust. #counter"""
    doubled = derive(value, lambda v: (v or 0) * 2)
    bump = adjust.bind(value=value)
    inc = increment.bind(value=value)
    return {
        NAME: computed(lambda: f"Counter: {value.get()}"),
        UI: h(
            "div",
            {},
            h("span", {"id": "value"}, value),
            h("button", {"id": "inc", "on_click": inc}, "+1"),
        ),
        "value": value,
        "doubled": doubled,
        "adjust": bump,
        "increment": inc,
    }
