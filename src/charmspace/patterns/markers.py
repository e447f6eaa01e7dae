"""Type markers that turn annotations into schema: ``Cell[T]``, ``Stream[T]``, ``Default[T, v]``.

Type hints are the schema. ``Cell[T]`` in a handler's state means "give me a live
cell I may write" (``asCell``), ``Stream[T]`` means "give me a stream I may send
to" (``asStream``), a plain ``T`` means "give me an immutable snapshot".
``Default[T, v]`` is ``T`` with default ``v`` (for pattern inputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin

from charmspace.runtime.cell import Cell
from charmspace.runtime.stream import Stream

__all__ = ["NAME", "NO_DEFAULT", "UI", "Default", "DefaultValue", "unwrap"]

NAME = "$NAME"
"""The result key for a charm's display name."""

UI = "$UI"
"""The result key for a charm's UI tree."""


@dataclass(frozen=True, slots=True)
class DefaultValue:
    value: Any


if TYPE_CHECKING:
    from typing import Annotated as Default
else:

    class Default:
        """``Default[int, 0]``: an ``int`` input whose default is ``0``."""

        def __class_getitem__(cls, params: tuple[Any, Any]) -> Any:
            if not isinstance(params, tuple) or len(params) != 2:
                from charmspace.errors import PatternError

                raise PatternError("Default takes a type and a value: Default[int, 0]")
            tp, value = params
            return Annotated[tp, DefaultValue(value)]


def unwrap(annotation: Any) -> tuple[str, Any, Any]:
    """``(kind, inner type, default)`` of an annotation; kind is cell, stream or value."""
    default: Any = _NO_DEFAULT
    if get_origin(annotation) is Annotated:
        args = get_args(annotation)
        annotation = args[0]
        for meta in args[1:]:
            if isinstance(meta, DefaultValue):
                default = meta.value
    origin = get_origin(annotation)
    if annotation is Cell or origin is Cell:
        args = get_args(annotation)
        return "cell", args[0] if args else Any, default
    if annotation is Stream or origin is Stream:
        args = get_args(annotation)
        return "stream", args[0] if args else Any, default
    return "value", annotation, default


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


_NO_DEFAULT: Any = _NoDefault()
NO_DEFAULT: Any = _NO_DEFAULT
