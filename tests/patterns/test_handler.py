"""``@handler``: the state a handler declares decides what it gets; events are validated first."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import pydantic
import pytest

from charmspace.errors import DeadlockError, PatternError, SchemaError
from charmspace.patterns import Default, cell, handler, pattern
from charmspace.patterns.handler import HandlerDef
from charmspace.runtime import Cell, Runtime, Stream


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
