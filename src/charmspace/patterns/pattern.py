"""``@pattern``: a Python function that builds a charm's graph.

The function runs once per construction (when a charm is created, and again
when it is reloaded after a restart), with references for its inputs. What it
returns is the charm's result: data, derived values, streams, ``NAME`` and
``UI``. Type hints are the input schema.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints, overload

from charmspace.errors import PatternError, SchemaError
from charmspace.patterns.build import build_child
from charmspace.patterns.markers import NO_DEFAULT, unwrap
from charmspace.patterns.refs import Builder, Ref, StreamRef, current_builder
from charmspace.runtime.address import link_to
from charmspace.runtime.cell import Cell, to_json
from charmspace.runtime.schema import json_schema_for, pydantic_dump, validator_for
from charmspace.runtime.secrets import declare
from charmspace.runtime.stream import Stream
from charmspace.types import JSONValue, Schema

HASHTAG = re.compile(r"(?<![\w#])#[A-Za-z][A-Za-z0-9_-]*")


class Input:
    """One declared input of a pattern."""

    __slots__ = ("default", "kind", "name", "type")

    def __init__(self, name: str, kind: str, type: Any, default: Any) -> None:
        self.name = name
        self.kind = kind
        self.type = type
        self.default = default


class Pattern:
    """A pattern: build it into charms with ``runtime.charms.create(pattern)``."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        tags: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.import_path = f"{fn.__module__}:{fn.__qualname__}"
        self.description = inspect.getdoc(fn) or ""
        found = [*tags, *HASHTAG.findall(self.description)]
        for tag in found:
            if not isinstance(tag, str) or not HASHTAG.fullmatch(tag):
                raise PatternError(
                    f"pattern {self.name}: tag {tag!r} is not a tag; tags look like '#googleAuth'"
                )
        self.tags: tuple[str, ...] = tuple(dict.fromkeys(found))
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            source = self.import_path
        self.source_hash = hashlib.sha256(source.encode()).hexdigest()[:16]
        self.inputs = _inputs_of(fn, self.name)
        self.secret_fields = declare(self.input_schema)
        """Input fields marked ``SECRET``: masked for all but the space's owner (see
        :mod:`charmspace.runtime.secrets`)."""

    def __repr__(self) -> str:
        return f"<pattern {self.name} ({self.import_path})>"

    @property
    def input_schema(self) -> Schema:
        """The JSON Schema of the inputs (``asCell``/``asStream`` for cell and stream inputs)."""
        properties: dict[str, Any] = {}
        required = []
        for i in self.inputs.values():
            if i.kind == "cell":
                properties[i.name] = {**json_schema_for(i.type), "asCell": True}
            elif i.kind == "stream":
                properties[i.name] = {"asStream": True}
            else:
                properties[i.name] = dict(json_schema_for(i.type))
            if i.default is NO_DEFAULT:
                required.append(i.name)
            else:
                properties[i.name]["default"] = to_json(i.default)
        return {"type": "object", "properties": properties, "required": required}

    def argument(self, inputs: Mapping[str, Any] | None) -> dict[str, JSONValue]:
        """Validate ``inputs`` into the charm's argument document.

        Cells, streams and references become redirect links (the input is then
        bound to that cell, live); other values are checked against the input's
        type; missing inputs take their defaults.
        """
        if inputs is not None and not isinstance(inputs, Mapping):
            raise SchemaError(
                (),
                f"the inputs of pattern {self.name} are a mapping of input names to values "
                f"(e.g. {{{next(iter(self.inputs), 'value')!r}: ...}}), not a "
                f"{type(inputs).__name__}",
            )
        inputs = dict(inputs or {})
        unknown = sorted(set(inputs) - set(self.inputs))
        if unknown:
            raise SchemaError(
                (unknown[0],),
                f"pattern {self.name} has no input {unknown[0]!r} "
                f"(its inputs: {', '.join(self.inputs) or 'none'})",
            )
        argument: dict[str, JSONValue] = {}
        for i in self.inputs.values():
            if i.name in inputs:
                value = inputs[i.name]
            elif i.default is not NO_DEFAULT:
                value = i.default
            elif i.kind != "stream":
                value = None  # valid only if the type allows None
            else:
                raise SchemaError(
                    (i.name,),
                    f"input {i.name!r} of pattern {self.name}: a stream is required "
                    "(pass charm.stream(...) or a Stream)",
                )
            if isinstance(value, Cell | Stream | Ref):
                redirect = not isinstance(value, Stream | StreamRef)
                argument[i.name] = link_to(value.address, redirect=redirect)
                continue
            if i.kind != "stream" and i.type is not Any:
                try:
                    value = validator_for(i.type)(to_json(value, (i.name,)))
                except SchemaError as e:
                    reason = "a value is required" if i.name not in inputs else e.reason
                    raise SchemaError(
                        (i.name, *e.path), f"input {i.name!r} of pattern {self.name}: {reason}"
                    ) from None
                value = pydantic_dump(i.type, value)
            argument[i.name] = to_json(value, (i.name,))
        return argument

    def build(self, builder: Builder) -> dict[str, JSONValue]:
        """Run the pattern function against ``builder``; returns the result document."""
        refs = {
            name: Ref(builder.runtime, builder.argument.key(name), f"{self.name}.{name}")
            for name in self.inputs
        }
        token = current_builder.set(builder)
        try:
            result = self.fn(**refs)
        finally:
            current_builder.reset(token)
        if not isinstance(result, Mapping):
            raise PatternError(
                f"pattern {self.name} must return a dict of its results "
                f"(e.g. {{NAME: ..., UI: ..., 'value': value}}), not {type(result).__name__}"
            )
        out: dict[str, JSONValue] = {}
        for key, value in result.items():
            if not isinstance(key, str):
                raise PatternError(f"pattern {self.name}: result keys must be strings, not {key!r}")
            try:
                out[key] = to_json(value, (key,))
            except SchemaError as e:
                raise PatternError(
                    f"pattern {self.name}: result {key!r} cannot be stored: {e.reason}"
                ) from None
        return out

    def __call__(self, **inputs: Any) -> Ref:
        """Inside another pattern: build a child charm of this pattern; returns its result.

        Inputs are the parent's references (bound live, both ways) or plain
        values (validated as in :meth:`argument`). Embed the result
        (``h("render", {"charm": child})``), export it, or use its fields
        (``child["value"]``, ``child["adjust"]`` as a stream).
        """
        builder = current_builder.get()
        if builder is None:
            raise PatternError(
                f"pattern {self.name} is not called directly: create a charm with "
                f"runtime.charms.create({self.name}, inputs={{...}}), or call it inside "
                "another pattern to make a child charm"
            )
        return build_child(builder, self, inputs)


def _inputs_of(fn: Callable[..., Any], name: str) -> dict[str, Input]:
    try:
        hints = get_type_hints(fn, include_extras=True)
    except Exception as e:
        raise PatternError(f"pattern {name}: its annotations cannot be resolved: {e}") from None
    inputs: dict[str, Input] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise PatternError(
                f"pattern {name}: *{p.name} is not allowed; declare each input by name"
            )
        annotation = hints.get(p.name, Any)
        kind, inner, default = unwrap(annotation)
        if kind != "stream" and inner is not Any:
            try:
                json_schema_for(inner)
            except SchemaError as e:
                raise PatternError(
                    f"pattern {name}: input {p.name!r} is annotated {inner!r}, "
                    f"which cannot be a schema: {e.reason}"
                ) from None
        if default is NO_DEFAULT and p.default is not p.empty:
            default = p.default
        inputs[p.name] = Input(p.name, kind, inner, default)
    return inputs


@overload
def pattern(fn: Callable[..., Any], /) -> Pattern: ...


@overload
def pattern(
    *, name: str | None = None, tags: tuple[str, ...] | list[str] = ()
) -> Callable[[Callable[..., Any]], Pattern]: ...


def pattern(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    tags: tuple[str, ...] | list[str] = (),
) -> Pattern | Callable[[Callable[..., Any]], Pattern]:
    """Declare a pattern: ``@pattern`` or ``@pattern(tags=["#counter"])``."""
    if fn is not None:
        return Pattern(fn, name=name, tags=tags)

    def decorate(f: Callable[..., Any]) -> Pattern:
        return Pattern(f, name=name, tags=tags)

    return decorate
