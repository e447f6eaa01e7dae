"""Edits from outside a charm are checked against the types of the inputs they land in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

import pytest

from charmspace import Runtime
from charmspace.errors import InputTypeError, SchemaError
from charmspace.library.counter import counter
from charmspace.patterns import Default, handler, pattern
from charmspace.patterns.edits import checked_write
from charmspace.runtime import Cell

OpenRuntime = Callable[[], Awaitable[Runtime]]


class Point(TypedDict):
    x: int
    y: int


@pattern
def shapes(
    items: Default[Cell[list[int]], []],
    at: Default[Cell[Point], {"x": 0, "y": 0}],
    ratio: Default[float, 1.0],
    anything: Default[Any, None],
) -> dict[str, object]:
    return {"items": items, "at": at, "ratio": ratio, "anything": anything}


@handler
def spoil(event: dict[str, object], *, value: Cell[Any]) -> None:
    value.set("spoilt")


@pattern
def trusting(value: Default[Cell[int], 0]) -> dict[str, object]:
    return {"value": value, "spoil": spoil.bind(value=value)}


def head(runtime: Runtime) -> int:
    return runtime.storage.head(runtime.principal, runtime.principal)


async def test_a_string_for_the_counter_value_is_refused_and_nothing_is_written(
    runtime: Runtime,
) -> None:
    """The bug: ``charm["value"].set("str")`` was written, and every handler run failed after."""
    charm = await runtime.charms.create(counter, inputs={"value": 2})
    before = head(runtime)
    with pytest.raises(InputTypeError) as refused:
        async with runtime.edit():
            charm["value"].set("str")
    error = refused.value
    assert isinstance(error, SchemaError)
    assert (error.charm_id, error.pattern, error.input) == (charm.id, "counter", "value")
    assert (error.wanted, error.found, error.path) == ("int", "a string", ("value",))
    message = str(error)
    assert "Input 'value' of charm" in message and "(pattern counter) is int" in message
    assert "would make it a string" in message and "nothing was written" in message
    assert "Write a value of type int there" in message
    assert "str" not in message.replace("string", "")  # never the value itself
    assert head(runtime) == before
    assert charm["value"].get() == 2
    assert (await charm.stream("increment").call({})).ok
    assert charm["value"].get() == 3


async def test_a_value_of_the_input_type_is_written(runtime: Runtime) -> None:
    charm = await runtime.charms.create(counter, inputs={"value": 2})
    async with runtime.edit():
        charm["value"].set(40)
    await runtime.idle()
    assert charm["value"].get() == 40 and charm["doubled"].get() == 80


async def test_a_number_in_a_string_is_refused_not_converted(runtime: Runtime) -> None:
    """Stored as given: ``"3"`` would stay a string for the handlers that add to it."""
    charm = await runtime.charms.create(counter)
    with pytest.raises(InputTypeError, match="would make it a string"):
        async with runtime.edit():
            charm["value"].set("3")
    assert charm["value"].get() == 0


async def test_a_refused_write_caught_inside_the_edit_is_not_committed(runtime: Runtime) -> None:
    charm = await runtime.charms.create(counter, inputs={"value": 2})
    other = await runtime.charms.create(counter, inputs={"value": 5})
    async with runtime.edit():
        with pytest.raises(InputTypeError):
            charm["value"].set("str")
        other["value"].set(6)
    assert charm["value"].get() == 2
    assert other["value"].get() == 6


async def test_a_write_under_an_input_checks_the_whole_input_after_it(runtime: Runtime) -> None:
    charm = await runtime.charms.create(shapes, inputs={"items": [1, 2]})
    before = head(runtime)
    with pytest.raises(InputTypeError) as refused:
        async with runtime.edit():
            charm["items"][1].set("two")
    error = refused.value
    assert (error.input, error.wanted, error.path) == ("items", "list[int]", ("items", 1))
    assert "would put a string at items/1" in str(error)
    with pytest.raises(InputTypeError, match="put a string at items/2"):
        async with runtime.edit():
            charm["items"].push("three")
    with pytest.raises(InputTypeError, match="put a string at at/y"):
        async with runtime.edit():
            charm["at"].update({"y": "up"})
    assert head(runtime) == before

    async with runtime.edit():
        charm["items"][1].set(20)
        charm["items"].push(3)
        charm["at"].update({"y": 4})
        charm["ratio"].set(2)  # an integer is a number a float input takes
        charm["anything"].set({"free": "form"})  # Any: not checked
    assert charm.get() == {
        "items": [1, 20, 3],
        "at": {"x": 0, "y": 4},
        "ratio": 2,
        "anything": {"free": "form"},
    }


async def test_the_argument_cells_are_checked_too(runtime: Runtime) -> None:
    charm = await runtime.charms.create(counter, inputs={"value": 2})
    with pytest.raises(InputTypeError, match="'value'"):
        async with runtime.edit():
            charm.argument.key("value").set([1])
    with pytest.raises(InputTypeError, match="'value'"):
        async with runtime.edit():
            charm.argument.set({"value": None})  # every input under the write is checked
    assert charm.argument.get() == {"value": 2}


async def test_a_write_through_a_linked_input_is_checked_where_it_lands(runtime: Runtime) -> None:
    """B's input is linked to A's value: an edit of B's cell lands in A's input."""
    a = await runtime.charms.create(counter, inputs={"value": 1})
    b = await runtime.charms.create(counter)
    await runtime.charms.link(a["value"], b, "value")
    with pytest.raises(InputTypeError) as refused:
        async with runtime.edit():
            b["value"].set("str")
    assert refused.value.charm_id == b.id  # the first input on the way
    assert a["value"].get() == 1
    async with runtime.edit():
        b["value"].set(9)
    assert a["value"].get() == 9


async def test_the_charms_own_handlers_are_trusted(runtime: Runtime) -> None:
    """Not checked: the pattern's code owns its state, and every event would pay."""
    charm = await runtime.charms.create(trusting)
    assert (await charm.stream("spoil").call({})).ok
    assert charm["value"].get() == "spoilt"


async def test_a_charm_not_running_here_is_not_checked(open_runtime: OpenRuntime) -> None:
    """What a charm whose pattern is not installed gets: no types known, edits pass."""
    first = await open_runtime()
    charm = await first.charms.create(counter, inputs={"value": 2})
    await first.close()
    second = await open_runtime()
    async with second.edit() as tx:
        checked_write(second.charms, tx, charm.result.address.key("value"), "str")
    assert second.read(charm.argument.address) == {"value": "str"}
