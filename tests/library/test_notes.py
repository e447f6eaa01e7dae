"""The bundled ``notes`` pattern, instantiated by name."""

from __future__ import annotations

from typing import Any

import pytest

from charmspace import Runtime
from charmspace.patterns import NAME, Charm


@pytest.fixture
async def notes(runtime: Runtime) -> Charm:
    return await runtime.charms.create("notes", inputs={"title": "Groceries"})


async def send(runtime: Runtime, charm: Charm, stream: str, event: Any) -> None:
    result = await charm.stream(stream).call(event)
    assert result.ok, result.error
    await runtime.idle()


async def test_starts_empty(notes: Charm) -> None:
    assert notes["notes"].get() == []
    assert notes["remaining"].get() == 0
    assert notes["title"].get() == "Groceries"
    assert notes.tags == ("#notes", "#todo")


async def test_name_counts_open_notes_from_the_start(notes: Charm) -> None:
    assert notes[NAME].get() == "Groceries (0 open)"


async def test_add_appends_and_counts(runtime: Runtime, notes: Charm) -> None:
    await send(runtime, notes, "add", {"title": "  milk "})
    await send(runtime, notes, "add", {"title": "eggs"})
    assert notes["notes"].get() == [
        {"title": "milk", "done": False},
        {"title": "eggs", "done": False},
    ]
    assert notes["remaining"].get() == 2
    assert notes[NAME].get() == "Groceries (2 open)"


async def test_a_blank_title_is_ignored(runtime: Runtime, notes: Charm) -> None:
    await send(runtime, notes, "add", {"title": "   "})
    await send(runtime, notes, "add", {"title": ""})
    assert notes["notes"].get() == []


async def test_toggle_by_index_or_data_index(runtime: Runtime, notes: Charm) -> None:
    for title in ("a", "b", "c"):
        await send(runtime, notes, "add", {"title": title})
    await send(runtime, notes, "toggle", {"index": 1})
    await send(runtime, notes, "toggle", {"data_index": 2})
    assert [n["done"] for n in notes["notes"].get()] == [False, True, True]
    assert notes["remaining"].get() == 1
    await send(runtime, notes, "toggle", {"index": 1})
    assert [n["done"] for n in notes["notes"].get()] == [False, False, True]
    await send(runtime, notes, "toggle", {"index": 7})  # out of range: nothing happens
    await send(runtime, notes, "toggle", {})
    assert notes["remaining"].get() == 2


async def test_clear_done_removes_checked_notes(runtime: Runtime, notes: Charm) -> None:
    for title in ("a", "b", "c"):
        await send(runtime, notes, "add", {"title": title})
    await send(runtime, notes, "toggle", {"index": 0})
    await send(runtime, notes, "toggle", {"index": 2})
    await send(runtime, notes, "clear_done", {})
    assert notes["notes"].get() == [{"title": "b", "done": False}]
    assert notes["remaining"].get() == 1
    assert notes[NAME].get() == "Groceries (1 open)"


async def test_initial_notes_are_validated(runtime: Runtime) -> None:
    charm = await runtime.charms.create("notes", inputs={"notes": [{"title": "x", "done": True}]})
    assert charm["remaining"].get() == 0
    assert charm[NAME].get() == "Notes (0 open)"
