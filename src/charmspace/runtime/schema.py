"""Schemas: Python types validate events; ``asCell``/``asStream`` mark live state.

Type hints are the schema. A handler's event type is validated with pydantic
before the handler runs; its state schema's properties carry the markers that
decide what the handler receives for each field (a live cell, a stream, or an
immutable snapshot).
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import pydantic
import typing_extensions

from charmspace.errors import SchemaError
from charmspace.types import JSONValue, Schema

Validator = Callable[[JSONValue], Any]

AS_CELL = "asCell"
AS_STREAM = "asStream"


def field_kind(schema: Schema | None, field: str) -> str:
    """``"cell"``, ``"stream"`` or ``"value"`` for one property of a state schema."""
    if not schema:
        return "value"
    prop = schema.get("properties", {}).get(field, {})
    if not isinstance(prop, Mapping):
        return "value"
    if prop.get(AS_CELL):
        return "cell"
    if prop.get(AS_STREAM):
        return "stream"
    return "value"


@lru_cache(maxsize=512)
def _adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(_pydantic_compatible(tp))


def _pydantic_compatible(tp: Any) -> Any:
    """``tp`` with every ``typing.TypedDict`` rebuilt as a ``typing_extensions`` one.

    Why: on Python < 3.12 pydantic refuses ``typing.TypedDict``, yet that is what
    authors naturally import. The rebuilt class has the same fields and totality.
    """
    if sys.version_info >= (3, 12):
        return tp
    if typing.is_typeddict(tp) and type(tp).__module__ == "typing":
        hints = typing.get_type_hints(tp, include_extras=True)
        required = getattr(tp, "__required_keys__", frozenset(hints))
        fields = {
            k: (
                typing_extensions.Required[_pydantic_compatible(v)]
                if k in required
                else typing_extensions.NotRequired[_pydantic_compatible(v)]
            )
            for k, v in hints.items()
        }
        return typing_extensions.TypedDict(tp.__name__, fields)  # type: ignore[operator]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is None or not args:
        return tp
    converted = tuple(_pydantic_compatible(a) for a in args)
    if converted == args:
        return tp
    if origin is typing.Annotated:
        return typing.Annotated[(converted[0], *args[1:])]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[converted]  # noqa: UP007
    if origin is typing.Literal:
        return tp
    try:
        return origin[converted if len(converted) > 1 else converted[0]]
    except TypeError:
        return tp


def validator_for(tp: Any) -> Validator:
    """A function that validates JSON against the Python type ``tp`` (via pydantic).

    Strict about structure, lenient about nothing else: a wrong type or a missing
    required key raises :class:`~charmspace.errors.SchemaError` with the path.
    """
    try:
        adapter = _adapter(tp)
    except (pydantic.PydanticSchemaGenerationError, TypeError) as e:
        raise SchemaError((), f"{tp!r} cannot be used as a schema: {e}") from None

    def validate(value: JSONValue) -> Any:
        try:
            return adapter.validate_python(value, strict=False)
        except pydantic.ValidationError as e:
            first = e.errors()[0]
            raise SchemaError(tuple(first["loc"]), first["msg"].lower()) from None

    return validate


def json_schema_for(tp: Any) -> Schema:
    """The JSON Schema of a Python type (as pydantic generates it)."""
    try:
        return _adapter(tp).json_schema()
    except (
        pydantic.PydanticSchemaGenerationError,
        pydantic.errors.PydanticInvalidForJsonSchema,
        TypeError,
    ) as e:
        raise SchemaError((), f"{tp!r} has no JSON Schema: {e}") from None


def pydantic_dump(tp: Any, value: Any) -> JSONValue:
    """A validated value of type ``tp`` as JSON (models and dataclasses become objects)."""
    return _adapter(tp).dump_python(value, mode="json")  # type: ignore[no-any-return]
