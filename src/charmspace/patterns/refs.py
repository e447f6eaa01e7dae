"""References: what a pattern function works with while it is being built.

A pattern runs once per construction, before any value exists, so its inputs
and intermediate results are references to future values, not values. Reading
one at construction time is a mistake the reference system let through (and
failed at later with "space is required"); here it raises a
:class:`~charmspace.errors.PatternError` that says what to do instead. Inside
``derive``/``computed`` bodies, which run later inside the runtime, a reference
reads its live value in the running charm's context.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from charmspace.errors import PatternError
from charmspace.runtime import context
from charmspace.runtime.address import Address, link_to
from charmspace.runtime.cell import Cell
from charmspace.types import DID, JSONValue, PathSegment, SpaceDID

if TYPE_CHECKING:
    from charmspace.patterns.build import Built
    from charmspace.patterns.pattern import Pattern
    from charmspace.runtime.runtime import Runtime
    from charmspace.runtime.unit import Unit


@dataclass(eq=False)
class Builder:
    """The charm being constructed: where its references point."""

    runtime: Runtime
    unit: Unit
    pattern_name: str
    creator: DID
    argument: Address
    internal: Address
    values: dict[str, JSONValue] = field(default_factory=dict)
    cells: dict[str, JSONValue] = field(default_factory=dict)
    streams: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    pattern: Pattern | None = None
    parent: Builder | None = None
    """The charm whose construction called this one's pattern (a child charm's parent)."""
    children: list[Built] = field(default_factory=list)

    @property
    def space(self) -> SpaceDID:
        return self.unit.space

    def ancestry(self) -> list[Pattern]:
        """The patterns being built, outermost first, ending with this one's."""
        chain: list[Pattern] = []
        builder: Builder | None = self
        while builder is not None:
            if builder.pattern is not None:
                chain.append(builder.pattern)
            builder = builder.parent
        return chain[::-1]

    def root(self) -> Builder:
        """The top-level charm being built (the one ``charms.create`` or a reload started)."""
        builder = self
        while builder.parent is not None:
            builder = builder.parent
        return builder

    def name(self, kind: str, hint: str | None = None) -> str:
        """A name for a node, stable across constructions (construction order)."""
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        return f"{kind}{n}" + (f"_{hint}" if hint else "")


current_builder: contextvars.ContextVar[Builder | None] = contextvars.ContextVar(
    "charmspace_builder", default=None
)


def active_builder(what: str) -> Builder:
    builder = current_builder.get()
    if builder is None:
        raise PatternError(
            f"{what} can only be used while a pattern is being built "
            "(inside a function decorated with @pattern)."
        )
    return builder


class Ref:
    """A reference to a value of the charm being built (an input, a derived value, …)."""

    __slots__ = ("_label", "address", "runtime")

    def __init__(self, runtime: Runtime, address: Address, label: str) -> None:
        self.runtime = runtime
        self.address = address
        self._label = label

    def __repr__(self) -> str:
        return f"<Ref {self._label}>"

    def __charm_json__(self) -> JSONValue:
        return link_to(self.address, redirect=True)

    def key(self, *segments: PathSegment) -> Ref:
        """A reference to a value inside this one (``ref["a"]`` is the same)."""
        label = self._label + "".join(f"[{s!r}]" for s in segments)
        return type(self)(self.runtime, self.address.key(*segments), label)

    def __getitem__(self, segment: PathSegment) -> Ref:
        return self.key(segment)

    def _check_readable(self) -> None:
        if current_builder.get() is not None and context.current().transaction is None:
            raise PatternError(
                f"Cannot read the value of {self._label} while the pattern is being built: "
                "a pattern runs once, before any value exists. "
                "Use derive(...), computed(...) or lift(...) to compute with it."
            )
        if context.current().action is None and context.current().unit is not None:
            raise PatternError(
                f"A handler used {self._label} without declaring it. Handlers may only touch "
                "what their state declares: pass it in the handler's state, e.g. "
                "my_handler.bind(name=...), and declare it as Cell[...] to write it."
            )

    def get(self) -> Any:
        """The live value; only inside derive/computed/lift bodies."""
        self._check_readable()
        if context.current().transaction is None:
            raise PatternError(
                f"{self._label} can only be read inside derive/computed/lift, or through a "
                "Cell given to a handler."
            )
        return Cell(self.runtime, self.address).get()

    def sample(self) -> Any:
        """The live value without a reactive dependency."""
        self._check_readable()
        return Cell(self.runtime, self.address).sample()

    def set(self, value: Any) -> NoReturn:
        raise PatternError(
            f"Cannot set {self._label} here. Write cells from a handler that declares them as "
            "Cell[...] in its state."
        )

    update = push = set

    def _misuse(self, *_args: Any) -> NoReturn:
        raise PatternError(
            f"{self._label} is a reference to a future value, not a value: it cannot be used "
            "in Python expressions while the pattern is built. Use derive(...) or computed(...) "
            "(and if_else(...) for conditions)."
        )

    __bool__ = __iter__ = __len__ = __int__ = __float__ = __index__ = _misuse
    __add__ = __radd__ = __sub__ = __mul__ = __truediv__ = __lt__ = __gt__ = _misuse
    __le__ = __ge__ = __contains__ = _misuse

    def __eq__(self, other: object) -> bool:
        self._misuse()

    def __ne__(self, other: object) -> bool:
        self._misuse()

    def __format__(self, spec: str) -> str:
        self._misuse()

    __hash__ = object.__hash__


class StreamRef(Ref):
    """A reference to a stream (a bound handler). Hand it to UI event props or handler state."""

    __slots__ = ()

    def __charm_json__(self) -> JSONValue:
        return link_to(self.address)

    def send(self, *_args: Any, **_kwargs: Any) -> NoReturn:
        raise PatternError(
            f"{self._label} cannot be sent to while the pattern is built. To send from a "
            "handler, declare it as Stream[...] in the handler's state and pass it with bind()."
        )

    call = send
