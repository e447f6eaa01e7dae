"""A space's host: the charms of one space and the propagation of their derived values.

Why one per space: spaces are the unit of sharing, and a multi-tenant runtime
must keep one user's slow or failing charm from delaying anyone else's. Each
host runs its own propagation loop (an asyncio task of its own), so a derived
value that awaits for a second holds up only the space it lives in.

The :class:`~charmspace.runtime.runtime.Runtime` is the facade: it finds or
creates the host of a space and forwards to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from charmspace.runtime.propagation import Propagator
from charmspace.types import EntityId, SpaceDID

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime
    from charmspace.runtime.transaction import CommitResult, Transaction
    from charmspace.runtime.unit import Unit


class SpaceHost:
    """Runs one space: its started units (charms) and its derived values."""

    def __init__(self, runtime: Runtime, space: SpaceDID) -> None:
        self.runtime = runtime
        self.space = space
        self.units: dict[EntityId, Unit] = {}
        self.propagator = Propagator(runtime, space)

    def __repr__(self) -> str:
        return f"<SpaceHost {self.space} units={len(self.units)}>"

    @property
    def busy(self) -> bool:
        """Whether a derived value of this space is pending or being computed."""
        return self.propagator.busy

    def add(self, unit: Unit) -> None:
        self.units[unit.id] = unit
        for action in unit.actions:
            self.propagator.add(action)

    def remove(self, unit: Unit) -> None:
        for action in unit.actions:
            self.propagator.remove(action)
        self.units.pop(unit.id, None)

    async def commit(self, tx: Transaction) -> CommitResult:
        """Commit ``tx`` (which writes this space) and return once it is durable.

        Through the runtime's :class:`~charmspace.storage.interface.SpaceStore`,
        as a commit of its own (an edit from outside holds no lock past its
        call); nobody — this caller included — sees it before it is durable.
        """
        return await tx.commit_to(self.runtime.store, grouped=False)

    def stop(self) -> None:
        self.propagator.stop()
