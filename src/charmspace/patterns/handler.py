"""``@handler``: a function run for one event, with declared state.

The handler's first parameter is the event (its annotation is the event
schema, validated strictly before the handler runs: no conversions, no
unknown keys, see :func:`~charmspace.runtime.schema.event_validator_for`);
keyword-only parameters are its
state, and their annotations decide what it receives: ``Cell[T]`` a live cell,
``Stream[T]`` a stream, plain ``T`` an immutable snapshot. A handler can reach
nothing else — no cells captured from the pattern — which is what keeps its
transaction's writes where its author can see them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

from charmspace.errors import PatternError, SchemaError
from charmspace.patterns.markers import unwrap
from charmspace.patterns.refs import Ref, StreamRef, active_builder
from charmspace.runtime.cell import to_json
from charmspace.runtime.schema import AS_CELL, AS_STREAM, Validator, event_validator_for
from charmspace.types import Schema


class HandlerDef:
    """A handler definition; ``.bind(**state)`` inside a pattern makes it a stream."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise PatternError(f"@handler decorates a function, not {type(fn).__name__}")
        self.fn = fn
        self.name = getattr(fn, "__name__", "handler")
        try:
            hints = get_type_hints(fn, include_extras=True)
        except Exception as e:
            raise PatternError(
                f"handler {self.name}: its annotations cannot be resolved: {e}"
            ) from None
        params = list(inspect.signature(fn).parameters.values())
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) != 1:
            raise PatternError(
                f"handler {self.name} must take exactly one positional parameter, the event, "
                "and its state as keyword-only parameters: def h(event: E, *, count: Cell[int])"
            )
        self.event_type: Any = hints.get(positional[0].name)
        self.validate_event: Validator | None = None
        if self.event_type is not None and self.event_type is not Any:
            try:
                self.validate_event = event_validator_for(self.event_type)
            except SchemaError as e:
                raise PatternError(
                    f"handler {self.name}: the event type {self.event_type!r} "
                    f"cannot be a schema: {e.reason}"
                ) from None
        self.state_kinds: dict[str, str] = {}
        properties: dict[str, Any] = {}
        for p in params:
            if p.kind is not p.KEYWORD_ONLY:
                continue
            kind, _inner, _default = unwrap(hints.get(p.name, Any))
            self.state_kinds[p.name] = kind
            properties[p.name] = (
                {AS_CELL: True}
                if kind == "cell"
                else ({AS_STREAM: True} if kind == "stream" else {})
            )
        self.state_schema: Schema = {"type": "object", "properties": properties}

    def __repr__(self) -> str:
        return f"<handler {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly (useful in unit tests of the handler itself)."""
        return self.fn(*args, **kwargs)

    def bind(self, **state: Any) -> StreamRef:
        """Bind the handler's state to the pattern's references; returns an exportable stream."""
        builder = active_builder(f"{self.name}.bind()")
        unknown = sorted(set(state) - set(self.state_kinds))
        if unknown:
            raise PatternError(
                f"handler {self.name} does not declare {', '.join(unknown)} in its state "
                f"(it declares: {', '.join(self.state_kinds) or 'nothing'})"
            )
        missing = sorted(set(self.state_kinds) - set(state))
        if missing:
            raise PatternError(
                f"handler {self.name}.bind() is missing {', '.join(missing)} "
                f"(it declares: {', '.join(self.state_kinds)})"
            )
        _refuse_captured_refs(self.fn, self.name)
        name = builder.name("handler", self.name)
        bound: dict[str, Any] = {}
        for key, value in state.items():
            if isinstance(value, Ref):
                bound[key] = value.address
            else:  # a constant: stored in the charm's internal document
                builder.values[f"{name}.{key}"] = to_json(value)
                bound[key] = builder.internal.key("values", f"{name}.{key}")
        address = builder.internal.key("streams", name)
        builder.streams.append(name)
        builder.unit.handler(
            name,
            self.fn,
            state=bound,
            state_schema=self.state_schema,
            event=self.validate_event,
            at=address,
        )
        return StreamRef(builder.runtime, address, f"{builder.pattern_name}.{self.name}")


def _refuse_captured_refs(fn: Callable[..., Any], name: str) -> None:
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, Ref):
            raise PatternError(
                f"handler {name} captures {value!r} from the pattern. Handlers may only touch "
                "what their state declares: add it as a keyword-only parameter and pass it "
                "with bind()."
            )


def handler(fn: Callable[..., Any]) -> HandlerDef:
    """Declare a handler; see :class:`HandlerDef`."""
    return HandlerDef(fn)
