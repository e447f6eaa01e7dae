"""Notes: a list you add to, check off and clear — ``map`` and ``push`` at work."""

from __future__ import annotations

from typing import TypedDict

from charmspace.patterns import NAME, UI, Default, computed, handler, map, pattern
from charmspace.patterns.ui import h
from charmspace.runtime.cell import Cell


class Note(TypedDict):
    title: str
    done: bool


class AddNote(TypedDict):
    title: str


class NoteIndex(TypedDict, total=False):
    index: int
    data_index: int


@handler
def add_note(event: AddNote, *, notes: Cell[list[Note]]) -> None:
    """Append a note; blank titles are ignored."""
    title = event["title"].strip()
    if title:
        notes.push({"title": title, "done": False})


@handler
def toggle_note(event: NoteIndex, *, notes: Cell[list[Note]]) -> None:
    """Check or uncheck the note at ``index`` (or ``data_index`` from a UI event)."""
    i = event.get("index", event.get("data_index", -1))
    current = notes.get() or []
    if 0 <= i < len(current):
        notes[i].key("done").set(not current[i]["done"])


@handler
def clear_done(event: dict[str, object], *, notes: Cell[list[Note]]) -> None:
    """Remove every checked note."""
    notes.set([n for n in notes.get() or [] if not n["done"]])


@pattern(tags=["#notes"])
def notes(
    title: Default[Cell[str], "Notes"], notes: Default[Cell[list[Note]], []]
) -> dict[str, object]:
    """A checklist of notes. #notes #todo"""
    add = add_note.bind(notes=notes)
    toggle = toggle_note.bind(notes=notes)
    clear = clear_done.bind(notes=notes)
    items = map(
        notes,
        lambda note, i: h(
            "li",
            {},
            h("checkbox", {"checked": note["done"], "on_change": toggle, "data_index": i}),
            h("span", {}, note["title"]),
        ),
    )
    remaining = computed(lambda: sum(1 for n in notes.get() or [] if not n["done"]))
    return {
        NAME: computed(lambda: f"{title.get()} ({remaining.get()} open)"),
        UI: h(
            "stack",
            {},
            h("h2", {}, title),
            h("ul", {}, items),
            h("button", {"on_click": clear}, "Clear done"),
        ),
        "title": title,
        "notes": notes,
        "remaining": remaining,
        "add": add,
        "toggle": toggle,
        "clear_done": clear,
    }
