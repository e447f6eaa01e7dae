"""``@pattern``: type hints are the schema; a pattern runs once, with references."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import PatternError, SchemaError
from charmspace.library.counter import counter
from charmspace.patterns import NAME, Default, computed, derive, handler, pattern
from charmspace.patterns.pattern import Pattern
from charmspace.patterns.refs import Ref
from charmspace.runtime import Cell, ErrorReport, Stream


class Settings(typing.TypedDict):
    """A TypedDict from plain ``typing`` (pydantic refuses these on 3.11 unless converted)."""

    label: str
    size: int


class Opaque:
    """A class pydantic has no schema for."""


# --- type hints are the schema ---------------------------------------------------------


def test_counter_input_schema_has_value_default_zero() -> None:
    schema = counter.input_schema
    assert schema["type"] == "object"
    assert schema["properties"]["value"]["type"] == "integer"
    assert schema["properties"]["value"]["default"] == 0
    assert schema["required"] == []


def test_default_marker_gives_type_and_default() -> None:
    @pattern
    def p(name: Default[str, "anon"], count: int, items: Default[list[int], []]) -> Any:
        return {"name": name}

    schema = p.input_schema
    assert schema["properties"]["name"] == {"type": "string", "default": "anon"}
    assert schema["properties"]["items"]["default"] == []
    assert schema["properties"]["items"]["items"] == {"type": "integer"}
    assert schema["required"] == ["count"]


def test_default_marker_needs_a_type_and_a_value() -> None:
    with pytest.raises(PatternError, match=r"Default\[int, 0\]"):
        Default[int]


def test_python_default_counts_as_default() -> None:
    @pattern
    def p(count: int = 3) -> Any:
        return {"count": count}

    assert p.input_schema["properties"]["count"]["default"] == 3


async def test_typeddict_input_from_plain_typing_validates(runtime: Runtime) -> None:
    @pattern
    def p(settings: Settings) -> Any:
        return {"label": derive(settings, lambda s: s["label"].upper())}

    assert p.input_schema["properties"]["settings"]["required"] == ["label", "size"]
    charm = await runtime.charms.create(p, inputs={"settings": {"label": "hi", "size": 2}})
    assert charm["label"].get() == "HI"
    with pytest.raises(SchemaError) as info:
        await runtime.charms.create(p, inputs={"settings": {"label": "hi", "size": "big"}})
    assert info.value.path == ("settings", "size")
    assert "pattern p" in str(info.value)


# --- construction ----------------------------------------------------------------------


async def test_pattern_runs_once_per_construction_with_references(runtime: Runtime) -> None:
    seen: list[Any] = []

    @pattern
    def p(value: Default[int, 1]) -> Any:
        seen.append(value)
        return {"value": value, "plus": derive(value, lambda v: v + 1)}

    first = await runtime.charms.create(p, inputs={"value": 5})
    await runtime.charms.create(p)
    assert len(seen) == 2
    assert all(isinstance(v, Ref) for v in seen)
    async with runtime.edit() as tx:
        first["value"].set(6)
        assert tx.writer == first.space
    await runtime.idle()
    assert first["plus"].get() == 7
    assert len(seen) == 2  # changing a value re-runs derived bodies, never the pattern


@pytest.mark.parametrize(
    "misuse",
    [
        lambda v: v.get(),
        lambda v: bool(v),
        lambda v: v + 1,
        lambda v: 1 + v,
        lambda v: v < 3,
        lambda v: len(v),
        lambda v: list(v),
        lambda v: v.sample(),
        lambda v: v == 1,
        lambda v: v != 1,
        lambda v: f"value: {v}",
    ],
    ids=["get", "bool", "add", "radd", "lt", "len", "iter", "sample", "eq", "ne", "fstring"],
)
async def test_reading_a_reference_at_construction_says_use_derive(
    runtime: Runtime, misuse: Any
) -> None:
    @pattern
    def p(value: Default[int, 1]) -> Any:
        misuse(value)
        return {"value": value}

    with pytest.raises(PatternError) as info:
        await runtime.charms.create(p)
    message = str(info.value)
    assert "derive(" in message
    assert "computed(" in message
    assert runtime.charms.list() == []


async def test_required_cell_and_stream_inputs_are_required(runtime: Runtime) -> None:
    """Regression: a missing Cell[...] or Stream[...] input was silently left unbound."""

    @pattern
    def needs(count: Cell[int]) -> Any:
        return {"count": count}

    @pattern
    def needs_stream(go: Stream[dict[str, Any]]) -> Any:
        return {"go": go}

    assert needs.input_schema["required"] == ["count"]
    with pytest.raises(SchemaError) as info:
        await runtime.charms.create(needs)
    assert info.value.path == ("count",)
    assert "a value is required" in str(info.value)
    with pytest.raises(SchemaError, match="input 'go' of pattern needs_stream: a stream"):
        await runtime.charms.create(needs_stream)
    charm = await runtime.charms.create(needs, inputs={"count": 2})
    assert charm["count"].get() == 2


async def test_if_on_a_reference_raises(runtime: Runtime) -> None:
    @pattern
    def p(value: Default[int, 1]) -> Any:
        if value:
            return {"value": value}
        return {}

    with pytest.raises(PatternError, match="derive"):
        await runtime.charms.create(p)


async def test_derived_bodies_resolve_refs_against_their_own_charm(runtime: Runtime) -> None:
    @pattern
    def p(value: Default[Cell[int], 0]) -> Any:
        return {
            "value": value,
            "tenfold": computed(lambda: value.get() * 10),
            NAME: computed(lambda: f"#{value.get()}"),
        }

    a = await runtime.charms.create(p, inputs={"value": 1})
    b = await runtime.charms.create(p, inputs={"value": 2})
    assert (a["tenfold"].get(), b["tenfold"].get()) == (10, 20)
    assert (a[NAME].get(), b[NAME].get()) == ("#1", "#2")
    async with runtime.edit():
        b["value"].set(3)
    await runtime.idle()
    assert (a["tenfold"].get(), b["tenfold"].get()) == (10, 30)


# --- handlers and references -----------------------------------------------------------


async def test_handler_capturing_a_pattern_reference_is_refused_at_bind(runtime: Runtime) -> None:
    @pattern
    def p(value: Default[Cell[int], 0], other: Default[int, 0]) -> Any:
        @handler
        def sneaky(event: dict[str, Any], *, other: Cell[int]) -> None:
            other.set(value.get())

        return {"go": sneaky.bind(other=other)}

    with pytest.raises(PatternError) as info:
        await runtime.charms.create(p)
    assert "sneaky" in str(info.value)
    assert "p.value" in str(info.value)
    assert "bind()" in str(info.value)


leaked: dict[str, Any] = {}


@handler
def uses_leaked(event: dict[str, Any], *, log: Cell[list[str]]) -> None:
    log.push("started")
    leaked["ref"].get()


async def test_handler_reaching_an_undeclared_reference_fails_and_writes_nothing(
    runtime: Runtime,
) -> None:
    """The runtime half of "handlers get only what they declare": no way around bind()."""

    @pattern
    def p(value: Default[int, 0], log: Default[list[str], []]) -> Any:
        leaked["ref"] = value
        return {"log": log, "go": uses_leaked.bind(log=log)}

    charm = await runtime.charms.create(p)
    reports: list[ErrorReport] = []
    runtime.on_error(reports.append)
    result = await charm.stream("go").call({})
    assert not result.ok
    assert isinstance(result.error, PatternError)
    assert "without declaring it" in str(result.error)
    assert charm["log"].get() == []
    assert [type(r.error) for r in reports] == [PatternError]
    assert charm.error.get()["type"] == "PatternError"


# --- mistakes in the pattern itself ----------------------------------------------------


def test_unresolvable_annotation_names_the_pattern() -> None:
    with pytest.raises(PatternError, match="pattern broken: its annotations cannot be resolved"):

        @pattern
        def broken(value: NoSuchType) -> Any:  # type: ignore[name-defined]
            return {}


def test_annotation_without_a_schema_names_the_pattern_and_input() -> None:
    """Regression: an unschemable input type used to fail only at create, as a SchemaError."""
    with pytest.raises(PatternError) as info:

        @pattern
        def odd(thing: Opaque) -> Any:
            return {}

    assert "pattern odd" in str(info.value)
    assert "thing" in str(info.value)


@pytest.mark.parametrize("star", ["args", "kwargs"])
def test_star_parameters_are_refused(star: str) -> None:
    def with_args(*args: int) -> Any:
        return {}

    def with_kwargs(**kwargs: int) -> Any:
        return {}

    fn = with_args if star == "args" else with_kwargs
    with pytest.raises(PatternError, match=rf"pattern {fn.__name__}: \*{star} is not allowed"):
        pattern(fn)


@pytest.mark.parametrize("result", [None, 5, ["value"], "text"])
async def test_a_non_dict_result_is_refused(runtime: Runtime, result: Any) -> None:
    @pattern
    def p(value: Default[int, 0]) -> Any:
        return result

    with pytest.raises(PatternError, match="pattern p must return a dict"):
        await runtime.charms.create(p)
    assert runtime.charms.list() == []


async def test_result_keys_must_be_strings_and_values_json(runtime: Runtime) -> None:
    @pattern
    def int_key() -> Any:
        return {1: "x"}

    @pattern
    def not_json() -> Any:
        return {"when": object()}

    with pytest.raises(PatternError, match="keys must be strings"):
        await runtime.charms.create(int_key)
    with pytest.raises(PatternError, match="result 'when' cannot be stored"):
        await runtime.charms.create(not_json)


async def test_a_pattern_is_not_called_directly(runtime: Runtime) -> None:
    with pytest.raises(PatternError, match=r"runtime\.charms\.create\(counter"):
        counter(value=1)


# --- tags ------------------------------------------------------------------------------


def test_tags_come_from_the_decorator_and_the_docstring() -> None:
    @pattern(tags=["#googleAuth"])
    def auth() -> Any:
        """Signs in to Google. #oauth #googleAuth, and issue#12 is no tag."""
        return {}

    assert auth.tags == ("#googleAuth", "#oauth")
    assert counter.tags == ("#counter",)


@pytest.mark.parametrize("tag", ["googleAuth", "#", "#1abc", "# x", 5])
def test_a_bad_tag_is_refused(tag: Any) -> None:
    with pytest.raises(PatternError) as info:

        @pattern(tags=[tag])
        def tagged() -> Any:
            return {}

    assert "pattern tagged" in str(info.value)
    assert repr(tag) in str(info.value)


def test_pattern_records_name_import_path_and_source_hash() -> None:
    assert isinstance(counter, Pattern)
    assert counter.name == "counter"
    assert counter.import_path == "charmspace.library.counter:counter"
    assert len(counter.source_hash) == 16


@pytest.mark.parametrize("inputs", [[("value", 3)], "value=3", 3])
async def test_inputs_that_are_not_a_mapping_are_a_schema_error(
    runtime: Runtime, inputs: object
) -> None:
    """Regression: ``create(counter, inputs=[...])`` raised a bare TypeError from ``dict()``."""
    with pytest.raises(SchemaError, match="are a mapping of input names to values") as refused:
        await runtime.charms.create("counter", inputs=inputs)  # type: ignore[arg-type]
    assert f"not a {type(inputs).__name__}" in str(refused.value)
    assert runtime.charms.list() == []
