"""Units: the runtime's view of a charm — its space, handlers and derived actions.

The authoring layer (:mod:`charmspace.patterns`) turns a pattern into a unit; the
runtime only needs to know which handler answers which stream, what state each
handler declared, and which actions compute which derived documents.
"""

from __future__ import annotations

import inspect
import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charmspace.errors import PatternError
from charmspace.runtime.address import Address
from charmspace.runtime.cell import Cell
from charmspace.runtime.schema import Validator, event_validator_for, field_kind
from charmspace.runtime.stream import Stream
from charmspace.runtime.transaction import Transaction
from charmspace.storage.ids import entity_id
from charmspace.types import DID, EntityId, Handler, JSONValue, Schema, SpaceDID
from charmspace.values import FrozenDict

if TYPE_CHECKING:
    from charmspace.runtime.alarms import Alarm
    from charmspace.runtime.jobs import Job
    from charmspace.runtime.runtime import Runtime
    from charmspace.runtime.scheduler import Event


@dataclass(eq=False, slots=True)
class HandlerSpec:
    """A handler registered on a stream location, with the state it declared."""

    unit: Unit
    name: str
    fn: Handler
    address: Address
    state: Mapping[str, Address]
    state_schema: Schema | None
    validate: Validator | None
    is_async: bool
    meta: Mapping[str, JSONValue] = field(default_factory=dict)
    kinds: tuple[tuple[str, Address, str], ...] = ()

    def __post_init__(self) -> None:
        self.kinds = tuple(
            (name, address, field_kind(self.state_schema, name))
            for name, address in self.state.items()
        )

    def bind(self, tx: Transaction) -> dict[str, Any]:
        """What the handler receives: live cells, streams, or immutable snapshots."""
        runtime = self.unit.runtime
        out: dict[str, Any] = {}
        for name, address, kind in self.kinds:
            if kind == "cell":
                out[name] = Cell(runtime, address, tx)
            elif kind == "stream":
                out[name] = Stream(runtime, address)
            else:
                out[name] = tx.read(address)
        return out


_action_order = itertools.count()


@dataclass(eq=False, slots=True)
class Action:
    """A derived computation: re-run when a document it read changes."""

    unit: Unit
    name: str
    fn: Handler
    inputs: tuple[Cell[Any], ...] | None
    output: Address
    is_async: bool
    deps: set[tuple[SpaceDID, EntityId]] = field(default_factory=set)
    resolution: float | None = None
    offload: bool = False
    """Computed off the event loop: a synchronous function that once took too long."""
    order: int = field(default_factory=lambda: next(_action_order))

    @property
    def qualname(self) -> str:
        return f"{self.unit.name}.{self.name}"


def _address_of(value: Address | Cell[Any] | Stream[Any], what: str) -> Address:
    if isinstance(value, Address):
        return value
    if isinstance(value, Cell | Stream):
        return value.address
    raise PatternError(
        f"{what} must be a Cell, a Stream or an Address, not {type(value).__name__}. "
        "Pass cells in the handler's state; do not capture them."
    )


class Unit:
    """A charm as the runtime sees it. Register handlers and actions, then ``await start()``."""

    def __init__(self, runtime: Runtime, space: SpaceDID, id: EntityId, name: str) -> None:
        self.runtime = runtime
        self.space = space
        self.id = id
        self.name = name
        self.creator: DID = runtime.principal
        """Who made the charm: its derived values, start-up and bookkeeping act for them."""
        self.handlers: list[HandlerSpec] = []
        self.actions: list[Action] = []
        self.queue: deque[Event] = deque()
        self.draining = False
        self.started = False
        self.jobs: dict[str, Job] = {}
        self.alarms: list[Alarm] = []
        self.error_address = Address(space, entity_id({"unit": id, "cell": "error"}))
        self.jobs_address = Address(space, entity_id({"unit": id, "cell": "jobs"}))
        self._initial: list[tuple[Address, Any]] = []

    def __repr__(self) -> str:
        return f"<Unit {self.name} {self.id} in {self.space}>"

    def address(self, *cause: str) -> Address:
        """A document of this unit, its id derived from the unit and ``cause``."""
        return Address(self.space, entity_id({"unit": self.id, "cell": list(cause)}))

    def cell(self, name: str, default: Any = None) -> Cell[Any]:
        """A data cell of this unit, created with ``default`` when the unit starts."""
        address = self.address(name)
        self.initial_value(address, default)
        return Cell(self.runtime, address)

    def initial_value(self, address: Address, default: Any) -> None:
        """Write ``default`` at ``address`` when the unit starts, unless a value is there."""
        self._initial.append((address, default))

    def handler(
        self,
        name: str,
        fn: Handler,
        *,
        state: Mapping[str, Address | Cell[Any] | Stream[Any]] | None = None,
        state_schema: Schema | None = None,
        event: Any = None,
        at: Address | None = None,
    ) -> Stream[Any]:
        """Register ``fn`` to run for each event sent to the returned stream.

        ``state`` names what the handler may touch; ``state_schema`` marks each
        field ``asCell`` (live cell), ``asStream`` (stream) or neither (snapshot).
        Without a schema, a :class:`Cell` in ``state`` is live, a :class:`Stream`
        is a stream and an :class:`Address` is a snapshot. ``event`` is the event
        type (validated before the handler runs) or a validator function.
        """
        if not callable(fn):
            raise PatternError(f"handler {name!r} of {self.name} is not callable")
        state = dict(state or {})
        if state_schema is None:
            props: dict[str, Any] = {}
            for key, value in state.items():
                if isinstance(value, Cell):
                    props[key] = {"asCell": True}
                elif isinstance(value, Stream):
                    props[key] = {"asStream": True}
            state_schema = {"type": "object", "properties": props}
        addresses = {
            k: _address_of(v, f"state field {k!r} of handler {name!r}") for k, v in state.items()
        }
        validate: Validator | None
        if event is None:
            validate = None
        elif inspect.isfunction(event) and not isinstance(event, type):
            validate = event
        else:
            validate = event_validator_for(event)
        address = at or self.address("stream", name)
        spec = HandlerSpec(
            self,
            name,
            fn,
            address,
            addresses,
            state_schema,
            validate,
            inspect.iscoroutinefunction(fn),
            FrozenDict(handler=name, charm=self.id),
        )
        self.handlers.append(spec)
        if self.started:
            self.runtime.register_handler(spec)
        return Stream(self.runtime, address)

    def derive(
        self,
        name: str,
        fn: Handler,
        *,
        inputs: Sequence[Cell[Any]] | None = None,
        output: Address | None = None,
    ) -> Cell[Any]:
        """Register a derived value: ``fn(*input values)`` or ``fn()`` reading cells itself.

        The returned cell is read-only for everyone but the action.
        """
        if not callable(fn):
            raise PatternError(f"derived value {name!r} of {self.name} is not callable")
        out = output or self.address("derived", name)
        action = Action(
            self,
            name,
            fn,
            tuple(inputs) if inputs is not None else None,
            out,
            inspect.iscoroutinefunction(fn),
        )
        self.actions.append(action)
        if self.started:
            self.runtime.host(self.space).propagator.add(action)
        return Cell(self.runtime, out)

    def alarm(self, name: str, at: Address, stream: Address, event: JSONValue) -> Alarm:
        """Send ``event`` to ``stream`` when the epoch seconds held at ``at`` come (see
        :mod:`charmspace.runtime.alarms`); armed while the unit runs."""
        from charmspace.runtime.alarms import Alarm

        alarm = Alarm(self, name, at, stream, event)
        self.alarms.append(alarm)
        if self.started:
            alarm.start()
        return alarm

    async def start(self, principal: DID | None = None) -> None:
        """Write initial values and stream markers, register everything, compute derived values.

        ``principal`` is the charm's creator (default: the runtime's user); the
        start-up writes, the derived values and the charm's bookkeeping act for them.
        """
        await self.runtime.start_unit(self, self._initial, principal)
        self._initial = []

    def stop(self) -> None:
        """Unregister handlers and actions; queued events still run."""
        self.runtime.stop_unit(self)
