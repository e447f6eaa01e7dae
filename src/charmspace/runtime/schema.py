"""Schemas: Python types validate events; ``asCell``/``asStream`` mark live state.

Type hints are the schema. A handler's event type is validated with pydantic
before the handler runs; its state schema's properties carry the markers that
decide what the handler receives for each field (a live cell, a stream, or an
immutable snapshot).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import pydantic

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
    return pydantic.TypeAdapter(tp)


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
    except (pydantic.PydanticSchemaGenerationError, pydantic.errors.PydanticInvalidForJsonSchema, TypeError) as e:
        raise SchemaError((), f"{tp!r} has no JSON Schema: {e}") from None
