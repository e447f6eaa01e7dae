"""Schemas: Python types validate events; ``asCell``/``asStream`` mark live state.

Type hints are the schema. A handler's event type is validated with pydantic
before the handler runs (strictly: see :func:`event_validator_for`); its state
schema's properties carry the markers that decide what the handler receives
for each field (a live cell, a stream, or an immutable snapshot).
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
from charmspace.values import dumps, thaw

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


def _schema_adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    """:func:`_adapter`, or a :class:`SchemaError` saying ``tp`` cannot be a schema."""
    try:
        return _adapter(tp)
    except (pydantic.PydanticUserError, TypeError) as e:
        raise SchemaError((), f"{tp!r} cannot be used as a schema: {e}") from None


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
    adapter = _schema_adapter(tp)

    def validate(value: JSONValue) -> Any:
        try:
            return adapter.validate_python(value, strict=False)
        except pydantic.ValidationError as e:
            first = e.errors()[0]
            raise SchemaError(tuple(first["loc"]), first["msg"].lower()) from None

    return validate


def event_validator_for(tp: Any) -> Validator:
    """A function that validates an event against ``tp``: strictly, as JSON, no unknown keys.

    Why strict: an event comes from another principal, a UI or a stored
    delivery, and a lax validator would turn ``"3"``, ``True`` and ``3.0``
    into the ``3`` an ``int`` field asks for, hiding the sender's mistake.
    Why as JSON: events are JSON wherever they come from, so what JSON writes
    naturally is accepted: ``3`` for a ``float``, an object for a TypedDict,
    a pydantic model or a dataclass, a string for a ``datetime``. Why no
    unknown keys: a misspelt field would otherwise be dropped silently, as a
    pattern's unknown inputs would be (and those are refused too). A model
    whose config says ``extra="allow"`` still accepts them.
    """
    adapter = _schema_adapter(tp)
    try:
        schema: Schema | None = json_schema_for(tp)
    except SchemaError:
        schema = None  # validated all the same; unknown keys cannot be told apart

    # Computed once: most event types have no closed object anywhere (a plain dict,
    # a number), and then no key can be unknown.
    top = _options(schema, schema) if schema is not None and _has_closed_object(schema) else None

    if schema == {"type": "object", "additionalProperties": True}:  # dict, dict[str, Any|object]
        # Any JSON object is valid and nothing is converted: skip the JSON round
        # trip (every event pays it) and hand over a plain copy, as pydantic would.
        def any_object(value: JSONValue) -> Any:
            if isinstance(value, dict):
                return thaw(value)
            raise SchemaError(
                (),
                f"input should be a valid dictionary, not {_json_kind(value)}; "
                "events are not converted: send the value as that type",
            )

        return any_object

    def validate(value: JSONValue) -> Any:
        if top is not None:
            assert schema is not None
            _refuse_unknown_keys(value, top, schema, ())
        try:
            return adapter.validate_json(dumps(value), strict=True)
        except pydantic.ValidationError as e:
            raise _event_error(e.errors(include_url=False)[0]) from None

    return validate


def stored_validator_for(tp: Any) -> Validator:
    """A function that checks JSON about to be stored as a value of ``tp``: strictly, as JSON.

    Why strict: the value is stored as given, not converted, so ``"3"`` in an
    ``int`` would stay a string for whoever reads it. Why as JSON: stored
    values are JSON, so ``3`` is a ``float``, an object a TypedDict or model,
    a string a ``datetime``. Unlike an event, unknown keys pass: they are
    kept, not dropped, and a value stored before may have them.
    """
    adapter = _schema_adapter(tp)

    def validate(value: JSONValue) -> Any:
        try:
            return adapter.validate_json(dumps(value), strict=True)
        except pydantic.ValidationError as e:
            first = e.errors(include_url=False)[0]
            raise SchemaError(tuple(first["loc"]), str(first["msg"]).lower()) from None

    return validate


def _event_error(error: Any) -> SchemaError:
    """A pydantic error as a SchemaError that says what to send instead.

    Never includes the value sent: events can carry secrets.
    """
    path = tuple(error["loc"])
    msg = str(error["msg"]).lower()
    if str(error["type"]).endswith("_type") and "input" in error:
        return SchemaError(
            path,
            f"{msg}, not {_json_kind(error['input'])}; "
            "events are not converted: send the value as that type",
        )
    return SchemaError(path, msg)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a decimal point"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _options(node: object, root: Schema) -> list[Mapping[str, Any]]:
    """The schemas a JSON Schema ``node`` may be: references followed, unions flattened."""
    if not isinstance(node, Mapping):
        return []
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _options(root.get("$defs", {}).get(ref.rsplit("/", 1)[-1]), root)
    branches = node.get("anyOf") or node.get("oneOf") or node.get("allOf")
    if isinstance(branches, list):
        return [option for branch in branches for option in _options(branch, root)]
    return [node]


def _has_closed_object(node: object) -> bool:
    """Whether a JSON Schema has, anywhere (``$defs`` included), an object schema with
    ``properties`` and no ``additionalProperties``: the only kind a key can be unknown to."""
    if isinstance(node, Mapping):
        if isinstance(node.get("properties"), Mapping) and not node.get("additionalProperties"):
            return True
        return any(_has_closed_object(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_closed_object(v) for v in node)
    return False


def _refuse_unknown_keys(
    value: JSONValue, nodes: list[Mapping[str, Any]], root: Schema, path: tuple[str | int, ...]
) -> None:
    """Raise SchemaError for the first key of ``value`` that no object schema in ``nodes`` has.

    An object schema with ``properties`` and no ``additionalProperties`` is a
    TypedDict, model or dataclass: its keys are all it may have.
    """
    if isinstance(value, dict):
        objects = [n for n in nodes if isinstance(n.get("properties"), Mapping)]
        open_ = any(
            n.get("additionalProperties")
            or (not n.get("properties") and n.get("type") in (None, "object"))
            for n in nodes
        )
        closed = bool(objects) and not open_
        fields = list(dict.fromkeys(k for n in objects for k in n["properties"]))
        for key, item in value.items():
            if closed and key not in fields:
                raise SchemaError(
                    (*path, key),
                    f"the event has no field {key!r} (its fields: {', '.join(fields)}); "
                    "remove it or correct its name",
                )
            inner = [o for n in objects for o in _options(n["properties"].get(key), root)]
            inner += [o for n in nodes for o in _options(n.get("additionalProperties"), root)]
            _refuse_unknown_keys(item, inner, root, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            inner = [o for n in nodes for o in _options(n.get("items"), root)]
            prefix = [n["prefixItems"][i] for n in nodes if len(n.get("prefixItems", ())) > i]
            inner += [o for p in prefix for o in _options(p, root)]
            _refuse_unknown_keys(item, inner, root, (*path, i))


def json_schema_for(tp: Any) -> Schema:
    """The JSON Schema of a Python type (as pydantic generates it)."""
    try:
        return _adapter(tp).json_schema()
    except (pydantic.PydanticUserError, TypeError) as e:
        raise SchemaError((), f"{tp!r} has no JSON Schema: {e}") from None


def pydantic_dump(tp: Any, value: Any) -> JSONValue:
    """A validated value of type ``tp`` as JSON (models and dataclasses become objects)."""
    return _adapter(tp).dump_python(value, mode="json")  # type: ignore[no-any-return]
