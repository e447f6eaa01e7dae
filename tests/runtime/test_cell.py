"""Cells: immutable reads, writes through a transaction, paths, no-op writes, JSON only."""

from __future__ import annotations

from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import (
    NotJSONError,
    PathTypeError,
    SchemaError,
    TransactionClosedError,
    TransactionRequiredError,
)
from charmspace.runtime import Cell
from charmspace.storage import entity_id
from charmspace.types import SpaceDID
from charmspace.values import MAX_DEPTH


def deep(levels: int) -> list[Any]:
    """``levels`` lists, one inside another."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def doc(runtime: Runtime, space: SpaceDID, name: str) -> Cell[Any]:
    return runtime.cell(space, entity_id({"test": name}))


async def put(cell: Cell[Any], value: Any) -> None:
    async with cell.runtime.edit():
        cell.set(value)


# --- reading -----------------------------------------------------------------------------


async def test_get_returns_what_was_set(runtime: Runtime, space: SpaceDID) -> None:
    cell = doc(runtime, space, "a")
    await put(cell, {"name": "Ada", "tags": ["x", "y"], "n": 1.5, "ok": True, "none": None})
    assert cell.get() == {"name": "Ada", "tags": ["x", "y"], "n": 1.5, "ok": True, "none": None}


async def test_get_of_a_missing_document_is_none(runtime: Runtime, space: SpaceDID) -> None:
    assert doc(runtime, space, "never written").get() is None


async def test_get_returns_immutable_data(runtime: Runtime, space: SpaceDID) -> None:
    cell = doc(runtime, space, "a")
    await put(cell, {"items": [1, 2], "inner": {"k": "v"}})
    value = cell.get()
    with pytest.raises(TypeError, match="immutable"):
        value["new"] = 1
    with pytest.raises(TypeError):
        value["items"].append(3)
    with pytest.raises(TypeError):
        value["inner"].update({"k": "w"})
    with pytest.raises(TypeError):
        del value["inner"]
    items = value["items"]
    with pytest.raises(TypeError):
        items += [3]
    assert cell.get() == {"items": [1, 2], "inner": {"k": "v"}}


async def test_value_read_inside_a_transaction_is_immutable(
    runtime: Runtime, space: SpaceDID
) -> None:
    cell = doc(runtime, space, "a")
    await put(cell, [1, 2])
    async with runtime.edit():
        with pytest.raises(TypeError):
            cell.get().append(3)  # type: ignore[attr-defined]


# --- writing -----------------------------------------------------------------------------


async def test_update_merges_keys(runtime: Runtime, space: SpaceDID) -> None:
    cell = doc(runtime, space, "a")
    await put(cell, {"a": 1, "b": 2})
    async with runtime.edit():
        cell.update({"b": 3, "c": 4})
    assert cell.get() == {"a": 1, "b": 3, "c": 4}


async def test_update_of_a_missing_value_starts_from_empty(
    runtime: Runtime, space: SpaceDID
) -> None:
    cell = doc(runtime, space, "a")
    async with runtime.edit():
        cell.update({"c": 4})
    assert cell.get() == {"c": 4}


async def test_update_of_a_non_object_is_a_schema_error(runtime: Runtime, space: SpaceDID) -> None:
    cell = doc(runtime, space, "a")
    await put(cell, [1])
    with pytest.raises(SchemaError, match="update"):
        async with runtime.edit():
            cell.update({"c": 4})
    assert cell.get() == [1]


async def test_push_appends(runtime: Runtime, space: SpaceDID) -> None:
    cell = doc(runtime, space, "log")
    async with runtime.edit():
        cell.push("a")
        cell.push("b", "c")
    assert cell.get() == ["a", "b", "c"]


async def test_key_and_item_narrow_the_path(runtime: Runtime, space: SpaceDID) -> None:
    cell = doc(runtime, space, "a")
    await put(cell, {"user": {"name": "Ada", "langs": ["en"]}})
    assert cell.key("user", "name").get() == "Ada"
    assert cell["user"]["langs"][0].get() == "en"
    assert cell["user"]["missing"].get() is None
    async with runtime.edit():
        cell["user"]["name"].set("Grace")
        cell.key("user", "langs").push("fr")
        cell["new"]["deep"].set(1)
    assert cell.get() == {"user": {"name": "Grace", "langs": ["en", "fr"]}, "new": {"deep": 1}}


async def test_writing_an_equal_value_commits_nothing(runtime: Runtime, space: SpaceDID) -> None:
    cell = doc(runtime, space, "a")
    await put(cell, {"a": 1, "b": [1, 2]})
    head = runtime.storage.head(space, runtime.principal)
    async with runtime.edit() as tx:
        cell.set({"b": [1, 2], "a": 1})
        cell["a"].set(1)
        cell.update({"a": 1})
    assert tx.result is not None and tx.result.ok and tx.result.seq == 0
    assert runtime.storage.head(space, runtime.principal) == head


async def test_writing_true_over_one_is_a_change(runtime: Runtime, space: SpaceDID) -> None:
    """Regression: ``True == 1`` in Python, so a write of true over 1 was dropped as a no-op."""
    cell = doc(runtime, space, "a")
    await put(cell, {"flag": 1, "n": 0})
    async with runtime.edit():
        cell["flag"].set(True)
        cell["n"].set(False)
    assert cell.get()["flag"] is True
    assert cell.get()["n"] is False
    await put(cell, 1)
    await put(cell, True)
    assert cell.get() is True


async def test_write_of_none_where_nothing_was_is_a_no_op(
    runtime: Runtime, space: SpaceDID
) -> None:
    cell = doc(runtime, space, "a")
    head = runtime.storage.head(space, runtime.principal)
    await put(cell, None)
    assert runtime.storage.head(space, runtime.principal) == head


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": {"b": object()}}, "a/b"),
        ({"a": [1, {1, 2}]}, "a/1"),
        ({"a": float("nan")}, "a"),
        ({"a": {1: "int key"}}, "a"),
        ({"when": b"bytes"}, "when"),
        ({"a": {"b": "\ud800"}}, "a/b"),
        ({"a": {"\udc80": 1}}, "a"),
        ({"a": [1, 2**53]}, "a/1"),
        ({"a": 10**5000}, "a"),
        ({"a": deep(MAX_DEPTH)}, "a/" + "/".join(["0"] * (MAX_DEPTH - 1))),
        ({"a": deep(5000)}, "a/" + "/".join(["0"] * (MAX_DEPTH - 1))),
    ],
)
async def test_non_json_value_is_a_type_error_naming_the_path(
    runtime: Runtime, space: SpaceDID, value: Any, where: str
) -> None:
    cell = doc(runtime, space, "a")
    await put(cell, {"keep": 1})
    head = runtime.storage.head(space, runtime.principal)
    with pytest.raises(TypeError, match=f"at {where}:") as info:
        async with runtime.edit():
            cell["other"].set(1)
            cell.set(value)
    assert isinstance(info.value, NotJSONError)
    assert runtime.storage.head(space, runtime.principal) == head
    assert cell.get() == {"keep": 1}


@pytest.mark.parametrize(
    "value",
    ["\ud800", "ab\udfff", -(2**53), 10**5000],
    ids=["high surrogate", "low surrogate", "-(2**53)", "10**5000"],
)
async def test_a_bad_scalar_set_below_a_path_is_refused_at_set(
    runtime: Runtime, space: SpaceDID, value: Any
) -> None:
    """Regression: a lone string or int skipped freeze(); the storage failed on it at commit
    with a bare UnicodeEncodeError, or stored an integer JavaScript reads as another one."""
    cell = doc(runtime, space, "a")
    await put(cell, {"keep": 1})
    async with runtime.edit():
        with pytest.raises(NotJSONError, match="at profile/token: "):
            cell["profile"]["token"].set(value)
        with pytest.raises(NotJSONError, match="at log/1: "):
            cell["log"].push("fine", value)
    assert cell.get() == {"keep": 1}


async def test_non_json_value_below_a_path_names_the_full_path(
    runtime: Runtime, space: SpaceDID
) -> None:
    cell = doc(runtime, space, "a")
    with pytest.raises(NotJSONError, match="at profile/photo:"):
        async with runtime.edit():
            cell["profile"]["photo"].set(object())
    with pytest.raises(NotJSONError, match="at profile/when:"):
        async with runtime.edit():
            cell["profile"].update({"when": object()})
    assert cell.get() is None


async def test_non_json_push_names_the_index_it_would_land_at(
    runtime: Runtime, space: SpaceDID
) -> None:
    cell = doc(runtime, space, "log")
    await put(cell, ["a", "b"])
    with pytest.raises(NotJSONError, match="at 3:"):
        async with runtime.edit():
            cell.push("c", object())
    assert cell.get() == ["a", "b"]


@pytest.mark.parametrize(
    ("path", "where", "found"),
    [(("items", "x"), "items", "a list"), (("name", "first"), "name", "a string")],
)
async def test_writing_below_a_list_or_string_is_refused_and_writes_nothing(
    runtime: Runtime, space: SpaceDID, path: tuple[str, ...], where: str, found: str
) -> None:
    """Regression: items/x and name/first replaced the list and the string with objects."""
    cell = doc(runtime, space, "john")
    await put(cell, {"items": [1, 2, 3], "name": "John"})
    head = runtime.storage.head(space, runtime.principal)
    for value in (1, None):
        with pytest.raises(PathTypeError) as caught:
            async with runtime.edit():
                cell.key(*path).set(value)
        assert (caught.value.path, caught.value.found) == ((where,), found)
        assert f"{where} holds {found}, not an object; nothing was written" in str(caught.value)
    assert runtime.storage.head(space, runtime.principal) == head
    assert cell.get() == {"items": [1, 2, 3], "name": "John"}


async def test_writing_below_a_missing_key_or_null_creates_objects(
    runtime: Runtime, space: SpaceDID
) -> None:
    cell = doc(runtime, space, "john")
    await put(cell, {"name": None})
    async with runtime.edit():
        cell.key("name", "first").set("J")
        cell.key("address", "city").set("Paris")
    assert cell.get() == {"name": {"first": "J"}, "address": {"city": "Paris"}}


async def test_writes_outside_a_transaction_are_refused(runtime: Runtime, space: SpaceDID) -> None:
    cell = doc(runtime, space, "a")
    with pytest.raises(TransactionRequiredError, match=r"runtime\.edit"):
        cell.set(1)
    with pytest.raises(TransactionRequiredError):
        cell.update({"a": 1})
    with pytest.raises(TransactionRequiredError):
        cell.push(1)
    assert cell.get() is None


async def test_handler_cell_used_after_the_handler_finished_is_closed(
    runtime: Runtime, space: SpaceDID
) -> None:
    unit = runtime.unit(space, "keeper")
    value = unit.cell("value", 0)
    kept: list[Cell[Any]] = []

    def keep(event: Any, *, value: Cell[Any]) -> None:
        value.set(1)
        kept.append(value)

    stream = unit.handler("keep", keep, state={"value": value})
    await unit.start()
    assert (await stream.send({})).ok
    with pytest.raises(TransactionClosedError, match="committed"):
        kept[0].set(2)
    async with runtime.edit():  # another open transaction does not revive it
        with pytest.raises(TransactionClosedError):
            kept[0].set(3)
    assert value.get() == 1


# --- sample ------------------------------------------------------------------------------


async def test_sample_does_not_create_a_dependency(runtime: Runtime, space: SpaceDID) -> None:
    unit = runtime.unit(space, "sampler")
    a = unit.cell("a", 1)
    b = unit.cell("b", 10)
    calls: list[tuple[int, int]] = []

    def total() -> int:
        pair = (a.get(), b.sample())
        calls.append(pair)
        return pair[0] + pair[1]

    out = unit.derive("total", total)
    await unit.start()
    assert out.get() == 11
    await put(b, 20)
    await runtime.idle()
    assert calls == [(1, 10)]
    assert out.get() == 11
    await put(a, 2)
    await runtime.idle()
    assert calls == [(1, 10), (2, 20)]
    assert out.get() == 22


async def test_sample_reads_the_current_value(runtime: Runtime, space: SpaceDID) -> None:
    cell = doc(runtime, space, "a")
    await put(cell, {"v": 1})
    assert cell.sample() == {"v": 1}
    async with runtime.edit():
        cell.set({"v": 2})
        assert cell.sample() == {"v": 2}


# --- on SQLite too -------------------------------------------------------------------------


async def test_cells_round_trip_on_every_backend(runtime: Runtime) -> None:
    space = runtime.create_space(name="home")
    cell = doc(runtime, space, "a")
    await put(cell, {"s": "é", "n": [1, 2.5, None, True]})
    head = runtime.storage.head(space, runtime.principal)
    await put(cell, {"n": [1, 2.5, None, True], "s": "é"})
    assert runtime.storage.head(space, runtime.principal) == head
    with pytest.raises(TypeError):
        cell.get()["s"] = "x"
    assert cell.get() == {"s": "é", "n": [1, 2.5, None, True]}
