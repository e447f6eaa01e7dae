"""What the code running now acts within: one context object, one context variable.

Why one: a handler, a derived value and a job each need to know their
transaction, their charm, the action being computed and whom they act for,
and asyncio copies context variables into every task they start. Keeping the
four together means they are set, copied and reset together, and a reader
finds all the ambient state in one place.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from charmspace.types import DID

if TYPE_CHECKING:
    from charmspace.runtime.transaction import Transaction
    from charmspace.runtime.unit import Action, Unit


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


OUTSIDE = RunContext()
"""Code outside any handler, derived value or job (frozen, so one instance serves all)."""

_current: contextvars.ContextVar[RunContext] = contextvars.ContextVar(
    "charmspace_run", default=OUTSIDE
)


def current() -> RunContext:
    """The context of the code running now."""
    return _current.get()


def enter(**fields: Any) -> contextvars.Token[RunContext]:
    """Run on in the current context with ``fields`` replaced; :func:`leave` undoes it."""
    return _current.set(replace(_current.get(), **fields))


def leave(token: contextvars.Token[RunContext]) -> None:
    _current.reset(token)
