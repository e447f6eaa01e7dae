"""What the code running now acts within: one context object, one context variable.

Why one: a handler, a derived value and a job each need to know their
transaction, their charm, the action being computed and whom they act for,
and asyncio copies context variables into every task they start. Keeping the
four together means they are set, copied and reset together, and a reader
finds all the ambient state in one place.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING

from charmspace.quick_init import quick_init
from charmspace.types import DID

if TYPE_CHECKING:
    from charmspace.runtime.transaction import Transaction
    from charmspace.runtime.unit import Action, Unit


@quick_init
@dataclass(frozen=True, slots=True)
class RunContext:
    """Where the running code is: each field None when it does not apply."""

    transaction: Transaction | None = None
    """The transaction cells read and write through (a handler's, a wave's, an edit's)."""
    unit: Unit | None = None
    """The charm whose event is running (calls from it are checked for deadlocks)."""
    action: Action | None = None
    """The derived value being computed (``now()`` makes it recompute on a clock)."""
    principal: DID | None = None
    """Whom code outside any transaction acts for (a job: whoever started it)."""


class _Keep:
    """The default of :func:`enter`'s fields: keep the current value."""


_KEEP = _Keep()

OUTSIDE = RunContext()
"""Code outside any handler, derived value or job (frozen, so one instance serves all)."""

_current: contextvars.ContextVar[RunContext] = contextvars.ContextVar(
    "charmspace_run", default=OUTSIDE
)


def current() -> RunContext:
    """The context of the code running now."""
    return _current.get()


def enter(
    *,
    transaction: Transaction | None | _Keep = _KEEP,
    unit: Unit | None | _Keep = _KEEP,
    action: Action | None | _Keep = _KEEP,
    principal: DID | None | _Keep = _KEEP,
) -> contextvars.Token[RunContext]:
    """Run on in the current context with the given fields replaced; :func:`leave` undoes it.

    Spelled out rather than ``dataclasses.replace``: every event enters twice,
    and this is several times cheaper.
    """
    now = _current.get()
    return _current.set(
        RunContext(
            now.transaction if isinstance(transaction, _Keep) else transaction,
            now.unit if isinstance(unit, _Keep) else unit,
            now.action if isinstance(action, _Keep) else action,
            now.principal if isinstance(principal, _Keep) else principal,
        )
    )


def enter_transaction(transaction: Transaction | None) -> contextvars.Token[RunContext]:
    """:func:`enter` with only the transaction replaced: the scheduler's, once per event."""
    now = _current.get()
    return _current.set(RunContext(transaction, now.unit, now.action, now.principal))


def leave(token: contextvars.Token[RunContext]) -> None:
    _current.reset(token)
