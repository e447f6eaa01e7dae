"""``@handler``: the state a handler declares decides what it gets; events are validated first."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from typing import Any, TypedDict

import pydantic
import pytest
import typing_extensions

from charmspace import Runtime
from charmspace.errors import (
    DeadlockError,
    NotAStreamError,
    PatternError,
    SchemaError,
    UnknownStreamError,
)
from charmspace.patterns import Default, cell, handler, pattern
from charmspace.patterns.handler import HandlerDef
from charmspace.runtime import Cell, Stream
from charmspace.runtime.schema import event_validator_for
from charmspace.values import freeze


class Adjust(TypedDict):
    amount: int


class Move(pydantic.BaseModel):
    dx: int
    dy: int = 0


@handler
def adjust(event: Adjust, *, value: Cell[int]) -> int:
    value.set(value.get() + event["amount"])
    return value.get()


@handler
def move(event: Move, *, position: Cell[list[int]]) -> None:
    x, y = position.get()
    position.set([x + event.dx, y + event.dy])


@handler
def set_to(event: int, *, value: Cell[int]) -> None:
    value.set(event)


@handler
async def relay(event: Adjust, *, target: Stream[Adjust], log: Cell[list[str]]) -> None:
    """Reaches another handler only through the stream it declared."""
    result = await target.call({"amount": event["amount"]})
    log.push(f"call ok={result.ok} value={result.value}")
    target.send({"amount": 100})


@handler
def snapshot(event: dict[str, Any], *, settings: dict[str, Any], log: Cell[list[str]]) -> None:
    log.push(f"label={settings['label']}")
    settings["label"] = "changed"  # a snapshot is immutable


@handler
def record(event: dict[str, Any], *, prefix: str, times: int, log: Cell[list[str]]) -> None:
    log.push(prefix * times)


@handler
async def slow_add(event: Adjust, *, value: Cell[int]) -> int:
    await asyncio.sleep(0)
    value.set(value.get() + event["amount"])
    return value.get()


@pattern
def board(
    value: Default[int, 0],
    position: Default[list[int], [0, 0]],
    settings: Default[dict[str, Any], {"label": "x"}],
) -> Any:
    log = cell([], name="log")
    bump = adjust.bind(value=value)
    return {
        "value": value,
        "position": position,
        "settings": settings,
        "log": log,
        "adjust": bump,
        "move": move.bind(position=position),
        "set_to": set_to.bind(value=value),
        "slow_add": slow_add.bind(value=value),
        "relay": relay.bind(target=bump, log=log),
        "snapshot": snapshot.bind(settings=settings, log=log),
        "record": record.bind(prefix="ab", times=2, log=log),
    }


@pytest.fixture
async def charm(runtime: Runtime) -> Any:
    return await runtime.charms.create(board)


# --- what the handler receives ---------------------------------------------------------


async def test_cell_state_is_live_and_writable(runtime: Runtime, charm: Any) -> None:
    result = await charm.stream("adjust").call({"amount": 3})
    assert (result.ok, result.value) == (True, 3)
    assert charm["value"].get() == 3


@pattern
def remote(target: Stream[Adjust], log: Default[list[str], []]) -> Any:
    return {"log": log, "relay": relay.bind(target=target, log=log)}


async def test_async_handlers_work_the_same(runtime: Runtime, charm: Any) -> None:
    result = await charm.stream("slow_add").call({"amount": 5})
    assert (result.ok, result.value) == (True, 5)
    assert charm["value"].get() == 5


async def test_stream_state_can_send_and_call(runtime: Runtime, charm: Any) -> None:
    other = await runtime.charms.create(remote, inputs={"target": charm.stream("adjust")})
    result = await other.stream("relay").call({"amount": 2})
    assert result.ok, result.error
    await runtime.idle()
    assert other["log"].get() == ["call ok=True value=2"]
    assert charm["value"].get() == 102  # the call, then the send after relay committed


async def test_a_charm_calling_its_own_stream_is_a_deadlock(runtime: Runtime, charm: Any) -> None:
    result = await charm.stream("relay").call({"amount": 2})
    assert not result.ok
    assert isinstance(result.error, DeadlockError)
    assert charm["value"].get() == 0


async def test_plain_state_is_an_immutable_snapshot(runtime: Runtime, charm: Any) -> None:
    result = await charm.stream("snapshot").call({})
    assert not result.ok
    assert isinstance(result.error, TypeError)
    assert charm["log"].get() == []  # the push before the mutation was not committed
    assert charm["settings"].get() == {"label": "x"}


async def test_constants_are_bound_into_state(runtime: Runtime, charm: Any) -> None:
    assert (await charm.stream("record").call({})).ok
    assert charm["log"].get() == ["abab"]


def test_state_kinds_follow_the_annotations() -> None:
    assert relay.state_kinds == {"target": "stream", "log": "cell"}
    assert snapshot.state_kinds == {"settings": "value", "log": "cell"}
    assert relay.state_schema["properties"] == {
        "target": {"asStream": True},
        "log": {"asCell": True},
    }


def test_a_handler_can_be_called_directly() -> None:
    assert record.name == "record"
    assert isinstance(record, HandlerDef)

    class Log(list[str]):
        def push(self, item: str) -> None:
            self.append(item)

    log = Log()
    record({}, prefix="x", times=3, log=log)
    assert log == ["xxx"]


# --- binding ---------------------------------------------------------------------------


async def test_bind_with_unknown_state_lists_the_declared_fields(runtime: Runtime) -> None:
    @pattern
    def p(value: Default[int, 0]) -> Any:
        return {"go": adjust.bind(value=value, amount=value)}

    with pytest.raises(PatternError) as info:
        await runtime.charms.create(p)
    assert "handler adjust does not declare amount" in str(info.value)
    assert "it declares: value" in str(info.value)


async def test_bind_with_missing_state_lists_the_declared_fields(runtime: Runtime) -> None:
    @pattern
    def p(value: Default[int, 0]) -> Any:
        return {"go": relay.bind(target=value)}

    with pytest.raises(PatternError) as info:
        await runtime.charms.create(p)
    assert "relay.bind() is missing log" in str(info.value)
    assert "it declares: target, log" in str(info.value)


def test_bind_outside_a_pattern_is_refused() -> None:
    with pytest.raises(PatternError, match=r"adjust\.bind\(\) can only be used while a pattern"):
        adjust.bind(value=1)


@pytest.mark.parametrize(
    "fn",
    [
        lambda: None,
        lambda event, other: None,
    ],
    ids=["no-event", "two-positional"],
)
def test_a_handler_takes_exactly_one_positional_event(fn: Any) -> None:
    with pytest.raises(PatternError, match="exactly one positional parameter"):
        handler(fn)


def test_handler_decorates_functions_only() -> None:
    with pytest.raises(PatternError, match="decorates a function"):
        handler(5)  # type: ignore[arg-type]


def test_an_event_type_without_schema_is_refused_at_decoration() -> None:
    """Regression: an unschemable event type used to fail only when a pattern bound it."""
    with pytest.raises(PatternError) as info:
        handler(opaque_event)
    assert "handler opaque_event" in str(info.value)


class Opaque:
    """A class pydantic has no schema for."""


def opaque_event(event: Opaque, *, value: Cell[int]) -> None:
    pass


# --- events are validated before the handler runs --------------------------------------


@pytest.mark.parametrize(
    ("stream", "event", "path"),
    [
        ("adjust", {"amount": "lots"}, ("amount",)),
        ("adjust", {}, ("amount",)),
        ("move", {"dx": 1, "dy": "up"}, ("dy",)),
        ("move", {"dy": 1}, ("dx",)),
        ("set_to", "seven", ()),
    ],
    ids=["typeddict-type", "typeddict-missing", "model-type", "model-missing", "int"],
)
async def test_an_invalid_event_is_a_schema_error_and_writes_nothing(
    runtime: Runtime, charm: Any, stream: str, event: Any, path: tuple[str, ...]
) -> None:
    before = runtime.storage.head(charm.space, runtime.principal)
    result = await charm.stream(stream).call(event)
    assert not result.ok
    assert isinstance(result.error, SchemaError)
    assert result.error.path == path
    assert result.error.reason
    assert charm["value"].get() == 0
    assert charm["position"].get() == [0, 0]
    assert runtime.storage.head(charm.space, runtime.principal) == before + 1  # the error cell
    assert charm.error.get()["type"] == "SchemaError"


async def test_valid_events_reach_the_handler_as_their_type(runtime: Runtime, charm: Any) -> None:
    assert (await charm.stream("move").call({"dx": 2})).ok
    assert (await charm.stream("move").call({"dx": 1, "dy": 5})).ok
    assert charm["position"].get() == [3, 5]
    assert (await charm.stream("set_to").call(9)).ok
    assert charm["value"].get() == 9


# --- events are validated strictly -----------------------------------------------------


class Point(TypedDict):
    x: int
    weight: float


class Scale(pydantic.BaseModel):
    factor: int
    offset: float = 0.0


class Where(typing_extensions.TypedDict):
    """Nested in a dataclass: on Python < 3.12 pydantic needs typing_extensions' TypedDict there."""

    x: int
    weight: float


@dataclasses.dataclass
class Shift:
    by: int
    at: Where | None = None


@handler
def place(event: Point, *, log: Cell[list[str]]) -> None:
    log.push(f"{event['x']!r} {event['weight']!r}")


@handler
def scale(event: Scale, *, log: Cell[list[str]]) -> None:
    log.push(f"{event.factor!r} {event.offset!r}")


@handler
def shift(event: Shift, *, log: Cell[list[str]]) -> None:
    log.push(f"{event.by!r} {event.at!r}")


@pattern
def shapes() -> Any:
    log = cell([], name="log")
    return {
        "log": log,
        "place": place.bind(log=log),
        "scale": scale.bind(log=log),
        "shift": shift.bind(log=log),
        "set_to": set_to.bind(value=cell(0, name="value")),
    }


@pytest.mark.parametrize(
    ("stream", "event", "path", "got"),
    [
        ("place", {"x": "3", "weight": 1.5}, ("x",), "a string"),
        ("place", {"x": True, "weight": 1.5}, ("x",), "a boolean"),
        ("place", {"x": 3.0, "weight": 1.5}, ("x",), "a number with a decimal point"),
        ("place", {"x": 3, "weight": "1.5"}, ("weight",), "a string"),
        ("scale", {"factor": "2"}, ("factor",), "a string"),
        ("shift", {"by": "1"}, ("by",), "a string"),
        ("shift", {"by": 1, "at": {"x": 1.0, "weight": 1}}, ("at", "x"), "a number with a decimal"),
        ("set_to", "3", (), "a string"),
        ("set_to", False, (), "a boolean"),
    ],
    ids=[
        "str-for-int",
        "bool-for-int",
        "float-for-int",
        "str-for-float",
        "model",
        "dataclass",
        "nested",
        "top-level-str",
        "top-level-bool",
    ],
)
async def test_events_are_not_coerced(
    runtime: Runtime, stream: str, event: Any, path: tuple[str, ...], got: str
) -> None:
    """Regression: event validation was lax, so "3", True and 3.0 all reached an int field as 3."""
    charm = await runtime.charms.create(shapes)
    result = await charm.stream(stream).call(event)
    assert not result.ok
    assert isinstance(result.error, SchemaError)
    assert result.error.path == path
    assert got in result.error.reason
    assert "events are not converted: send the value as that type" in str(result.error)
    assert charm["log"].get() == []


async def test_json_natural_events_of_every_kind_of_type_are_accepted(runtime: Runtime) -> None:
    """An int for a float field is JSON's way of writing 2.0; objects are dicts, not instances."""
    charm = await runtime.charms.create(shapes)
    assert (await charm.stream("place").call({"x": 3, "weight": 2})).ok
    assert (await charm.stream("scale").call({"factor": 2, "offset": 1})).ok
    assert (await charm.stream("shift").call({"by": 1, "at": {"x": 1, "weight": 0.5}})).ok
    assert (await charm.stream("set_to").call(7)).ok
    assert charm["log"].get() == ["3 2.0", "2 1.0", "1 {'x': 1, 'weight': 0.5}"]


@pytest.mark.parametrize(
    ("stream", "event", "path", "fields"),
    [
        ("place", {"x": 1, "weight": 1, "colour": "red"}, ("colour",), "x, weight"),
        ("scale", {"factor": 1, "factr": 2}, ("factr",), "factor, offset"),
        ("shift", {"by": 1, "to": 2}, ("to",), "by, at"),
        ("shift", {"by": 1, "at": {"x": 1, "weight": 1, "z": 0}}, ("at", "z"), "x, weight"),
    ],
    ids=["typeddict", "model", "dataclass", "nested"],
)
async def test_unknown_event_keys_are_refused_with_the_fields_that_exist(
    runtime: Runtime, stream: str, event: Any, path: tuple[str, ...], fields: str
) -> None:
    """Regression: unknown event keys were dropped silently, so a misspelt field did nothing."""
    charm = await runtime.charms.create(shapes)
    result = await charm.stream(stream).call(event)
    assert not result.ok
    assert isinstance(result.error, SchemaError)
    assert result.error.path == path
    assert f"the event has no field {path[-1]!r} (its fields: {fields})" in str(result.error)
    assert "remove it or correct its name" in str(result.error)
    assert charm["log"].get() == []


class Open(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")

    at: datetime.datetime


def test_what_json_writes_naturally_is_accepted_and_a_model_may_allow_extra_keys() -> None:
    validate = event_validator_for(Open)
    event = validate({"at": "2026-12-02T05:00:00Z", "note": "kept"})
    assert event.at == datetime.datetime(2026, 12, 2, 5, tzinfo=datetime.UTC)
    assert event.model_extra == {"note": "kept"}
    assert event_validator_for(dict[str, int])({"any": 1}) == {"any": 1}
    assert event_validator_for(tuple[int, float])([1, 2]) == (1, 2.0)
    with pytest.raises(SchemaError, match="at 1: input should be a valid number, not a string"):
        event_validator_for(tuple[int, float])([1, "2"])


async def test_an_unknown_stream_name_lists_the_streams(runtime: Runtime) -> None:
    """Regression: charm.stream("nope") failed only on send, naming an address, not the streams."""
    charm = await runtime.charms.create(shapes)
    with pytest.raises(UnknownStreamError) as info:
        charm.stream("nope")
    error = info.value
    assert isinstance(error, NotAStreamError)
    assert (error.charm_id, error.name) == (charm.id, "nope")
    assert error.streams == ("place", "scale", "set_to", "shift")
    assert "its streams are: place, scale, set_to, shift" in str(error)
    with pytest.raises(UnknownStreamError, match="its streams are: place"):
        charm.stream("log")  # a cell, not a stream


# --- the bound stream ------------------------------------------------------------------


async def test_bind_returns_an_exportable_stream(runtime: Runtime, charm: Any) -> None:
    assert charm.get()["adjust"] == {"$stream": True}
    delivery = charm.stream("adjust").send({"amount": 4})
    assert (await delivery).ok
    await runtime.idle()
    assert charm["value"].get() == 4


async def test_a_stream_passed_to_another_space_runs_in_its_owner(runtime: Runtime) -> None:
    owner = await runtime.charms.create(board)
    other = await runtime.charms.create(
        remote,
        space=runtime.create_space(name="elsewhere"),
        inputs={"target": owner.stream("adjust")},
    )
    assert other.space != owner.space
    assert (await other.stream("relay").call({"amount": 1})).ok
    await runtime.idle()
    assert owner["value"].get() == 101
    assert other["log"].get() == ["call ok=True value=1"]


@pytest.mark.parametrize("event_type", [dict, dict[str, Any], dict[str, object]])
def test_an_any_object_event_is_any_json_object_and_a_plain_copy(event_type: Any) -> None:
    """``dict`` events skip the JSON round trip; they still refuse what is not an
    object, and the handler gets a mutable copy, never the stored frozen value."""
    validate = event_validator_for(event_type)
    frozen = freeze({"a": [1, {"b": 2}]})
    event = validate(frozen)
    assert event == {"a": [1, {"b": 2}]}
    event["a"].append(3)  # a plain copy: mutating it changes nothing stored
    assert frozen == {"a": [1, {"b": 2}]}
    for not_an_object in ([1], "x", 3, None):
        with pytest.raises(SchemaError, match="valid dictionary"):
            validate(not_an_object)
