"""The lease on a space: one host at a time, across every process sharing a storage.

Why a lease and not a lock: a lock held by a process that died is held for
ever, while a lease ends by itself ``seconds`` after its last renewal, so
another process takes over a crashed host's spaces without anyone's help. The
price is that a holder which stalls for longer than that (a paused process, an
event loop blocked by a long computation) may find on waking that another host
has taken the space. That cannot un-happen, so it is reported, not repaired:
:attr:`Lease.lost` becomes true for good, :meth:`Lease.check` raises
:class:`~charmspace.errors.LeaseLostError`, and the holder must stop running
the space's handlers and derived values and leave the block.

Why polling: processes sharing a directory of SQLite files have no way to
wake each other, so a waiting host asks again with exponential back-off
(jittered, so waiters do not ask in lockstep), never later than the current
holder's expiry. Each question is one short write transaction, made on the
event loop's thread like every other storage call (they take microseconds).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from charmspace.backoff import Backoff
from charmspace.errors import LeaseLostError, StorageError, StorageIOError
from charmspace.types import DID, SpaceDID

log = logging.getLogger(__name__)

POLL = Backoff(base=0.01, cap=0.5)
"""How often a waiting host asks again: from 10 ms, doubling, to at most 0.5 s apart."""
RENEW_FRACTION = 1 / 3
"""A lease is renewed each time this share of its ``seconds`` has passed, so two renewals
in a row may fail (a busy file, a short stall) before it expires."""
MIN_SECONDS = 0.1

_jitter = random.Random()


@dataclass(frozen=True, slots=True)
class Claim:
    """What the lease records say about a space: who holds it, and until when."""

    holder: DID
    token: str
    """The holding block's secret (never logged nor shown): only it may renew or release."""
    expires: float
    generation: int
    """Counts the blocks that have taken the space's lease, so a later holder has a higher one."""


class LeaseRecords(Protocol):
    """The leases of every space, shared by every process on one storage.

    Each call is one short write transaction, which takes ``now`` as the time
    (``time.time()``: comparable across the processes of one machine).
    """

    def take(self, space: SpaceDID, holder: DID, token: str, seconds: float, now: float) -> Claim:
        """Record ``token``'s lease until ``now + seconds`` unless another unexpired one is there.

        Returns the claim in force afterwards: ours if its token is ``token``.
        """
        ...

    def renew(self, space: SpaceDID, token: str, seconds: float, now: float) -> Claim | None:
        """Extend ``token``'s lease to ``now + seconds`` if it is still the space's.

        Returns the claim in force: ours renewed, another's (ours was taken),
        or None (no lease is recorded).
        """
        ...

    def release(self, space: SpaceDID, token: str) -> None:
        """End ``token``'s lease at once if it is still the space's; otherwise do nothing."""
        ...


class Lease:
    """The right of ``holder`` to host ``space`` until ``expires`` (a ``time.time()``).

    Renewed in the background while its block runs, which moves ``expires``
    on. A lease that passes ``expires`` unrenewed is lost, even if nobody took
    the space meanwhile: its holder cannot know that nobody did.
    """

    __slots__ = ("_error", "_lost", "_may_host", "expires", "generation", "holder", "space")

    def __init__(
        self,
        space: SpaceDID,
        holder: DID,
        expires: float = math.inf,
        generation: int = 0,
        *,
        may_host: Callable[[], object] | None = None,
    ) -> None:
        self._may_host = may_host
        self.space = space
        self.holder = holder
        self.expires = expires
        """``math.inf`` for a lease held within one process, which cannot expire."""
        self.generation = generation
        """Greater than every earlier holder's of this space (0 within one process)."""
        self._error: LeaseLostError | None = None
        self._lost = asyncio.Event()

    def __repr__(self) -> str:
        state = "lost" if self._error is not None else f"expires={self.expires:.3f}"
        return f"Lease({self.space}, holder={self.holder}, {state})"

    @property
    def lost(self) -> bool:
        """Whether the lease ended before its block did; once true, true for good.

        Asking also checks that the holder may still host the space (read it):
        a revoked holder has lost its lease, however it is stored.
        """
        if self._error is None and time.time() >= self.expires:
            self._lose(f"it expired at {_clock(self.expires)} before it could be renewed")
        if self._error is None and self._may_host is not None:
            self._check_access()
        return self._error is not None

    def _check_access(self) -> bool:
        assert self._may_host is not None
        try:
            self._may_host()
        except StorageError as error:
            self._lose(f"{self.holder} may no longer host it ({error})")
            return False
        return True

    def check(self) -> None:
        """Raise :class:`~charmspace.errors.LeaseLostError` if the lease is lost.

        A host calls it before each piece of work it does as the space's host
        (a derived value's commit, say), so a lost lease stops it at the next one.
        """
        if self.lost:
            assert self._error is not None
            raise self._error

    async def wait_lost(self) -> LeaseLostError:
        """Wait until the lease is lost (for a host that stops on it); returns why.

        Renewals notice a loss by themselves; a lease within one process,
        which is never renewed, is found lost only by :attr:`lost` or :meth:`check`.
        """
        await self._lost.wait()
        assert self._error is not None
        return self._error

    def _lose(self, reason: str) -> None:
        if self._error is None:
            self._error = LeaseLostError(self.space, self.holder, reason)
            self._lost.set()
            log.warning(
                "lost the lease on a space: %s",
                reason,
                extra={"space": self.space, "holder": self.holder},
            )


def check_seconds(seconds: float) -> float:
    """``seconds`` as a lease's length, or a :class:`StorageError` saying what to give."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise StorageError(f"A lease's seconds is a number, not {type(seconds).__name__}.")
    if not MIN_SECONDS <= seconds < math.inf:
        raise StorageError(
            f"A lease's seconds must be at least {MIN_SECONDS} and finite, not {seconds}: "
            "it is how long a crashed host keeps others out, and is renewed well before then."
        )
    return float(seconds)


@asynccontextmanager
async def hold(
    records: LeaseRecords,
    space: SpaceDID,
    holder: DID,
    seconds: float,
    *,
    may_host: Callable[[], object],
) -> AsyncIterator[Lease]:
    """Take the space's lease in ``records`` (waiting for it), renew it, release it on exit.

    ``may_host`` raises unless ``holder`` may host the space (may read it); it
    is asked before every attempt and every renewal, so a holder whose access
    is revoked loses the lease at its next renewal.
    """
    token = secrets.token_hex(16)
    lease = await _take(records, space, holder, token, seconds, may_host)
    renewer = asyncio.create_task(_renew(records, lease, token, seconds))
    try:
        yield lease
    finally:
        renewer.cancel()  # it runs no more: it only ever waits in a sleep, which this cancels
        try:
            records.release(space, token)
        except StorageError as error:  # it expires by itself; the block's own error matters more
            log.warning(
                "could not release a lease, so it ends when it expires: %s",
                error,
                extra={"space": space, "holder": holder},
            )
        await asyncio.gather(renewer, return_exceptions=True)


async def _take(
    records: LeaseRecords,
    space: SpaceDID,
    holder: DID,
    token: str,
    seconds: float,
    may_host: Callable[[], object],
) -> Lease:
    attempt = 0
    while True:
        may_host()
        now = time.time()
        wait = POLL.delay(min(attempt, 16), _jitter)
        try:
            claim = records.take(space, holder, token, seconds, now)
        except StorageIOError:  # the lease file was busy: ask again
            pass
        else:
            if claim.token == token:
                return Lease(space, holder, claim.expires, claim.generation, may_host=may_host)
            wait = min(wait, max(0.0, claim.expires - now) + 0.001)
        attempt += 1
        await asyncio.sleep(wait)


async def _renew(records: LeaseRecords, lease: Lease, token: str, seconds: float) -> None:
    every = seconds * RENEW_FRACTION
    due = lease.expires - seconds + every
    while True:
        await asyncio.sleep(max(0.0, due - time.time()))
        now = time.time()
        if lease._error is not None or not lease._check_access():  # lost, for good
            return
        try:
            claim = records.renew(lease.space, token, seconds, now)
        except StorageError as error:
            if now >= lease.expires:
                lease._lose(f"it expired at {_clock(lease.expires)} unrenewed ({error})")
                return
            log.warning(
                "could not renew a lease, will try again: %s",
                error,
                extra={"space": lease.space, "holder": lease.holder},
            )
            due = now + min(every, max(0.0, lease.expires - now) / 2)
            continue
        if claim is None:
            lease._lose("its record is gone (the lease file was removed or replaced)")
            return
        if claim.token != token:
            lease._lose(
                f"it expired at {_clock(lease.expires)} and {claim.holder} took the space over"
            )
            return
        if now >= lease.expires:  # late: whatever we did after it expired was unprotected
            lease._lose(f"it expired at {_clock(lease.expires)} before it could be renewed")
            return
        lease.expires = claim.expires
        due = now + every


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
