"""The asynchronous storage interface a space's host needs, and its in-process implementation.

Why asynchronous: a database server (PostgreSQL) answers over the network, so
opening a space, reading, committing and listing the log are waits, not
calls. The :class:`~charmspace.storage.store.Storage` facade over memory and
SQLite answers in microseconds (reads come from a cache, a commit is one short
SQLite transaction), so :class:`AsyncStorage` gives it this interface without
moving work to threads.

Why :meth:`SpaceStore.apply` answers only once the commit is durable: no one
else sees a commit before then (see :meth:`Storage.read`), so a caller that
went on earlier could answer a client with a value that never existed. Why it
is submitted at once and awaited apart: a host keeps running a charm's next
events while a commit is in flight (in order), so many events share one
durable write.

Why a lease: for several processes to serve one directory (or one database),
each space must have one host at a time, which runs its handlers and derived
values. On SQLite the lease is a row every process on the directory sees (see
:mod:`charmspace.storage.lease`); in memory, a lock of the one process. Storage
stays correct without it (commits are validated atomically everywhere); the
lease keeps two hosts from computing and committing the same derived values.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Protocol

from charmspace.storage.lease import Lease, check_seconds, hold
from charmspace.storage.model import Commit, LogEntry, Revision, SpaceRecord
from charmspace.storage.store import Storage
from charmspace.types import DID, EntityId, SpaceDID

Durable = Callable[[int, BaseException | None], None]
"""How :meth:`SpaceStore.apply_then` tells the outcome: ``(seq, None)`` or ``(0, error)``."""


class SpaceStore(Protocol):
    """What a space's host asks of storage. Every call acts as ``principal``.

    A backend on a database server implements it directly (an async driver,
    ``SELECT … FOR UPDATE`` or a seq check for the optimistic validation, an
    advisory lock or a lease row for :meth:`lease`); the runtime never sees
    which backend it runs on.
    """

    async def open_space(self, space: SpaceDID, principal: DID) -> SpaceRecord:
        """The space's owner and ACL (needs READ); ``SpaceNotFoundError`` if there is none."""
        ...

    async def head(self, space: SpaceDID, principal: DID) -> int:
        """The seq of the space's latest durable commit."""
        ...

    async def read(
        self, space: SpaceDID, id: EntityId, principal: DID, *, at: int | None = None
    ) -> Revision:
        """The document as of the latest durable commit, or as of commit ``at``."""
        ...

    def apply(self, commit: Commit, *, grouped: bool = True) -> asyncio.Future[int]:
        """Submit ``commit``; the future's result is its seq once durable (0: nothing written).

        Commits are validated in the order they are submitted, and each is
        durable no earlier than those submitted before it. So a host may go on
        while one is in flight: the next event of the same charm may read what
        it wrote (a commit dependency) and is submitted after it.

        Refusals (:class:`~charmspace.errors.ConflictError` if a document it
        read changed since — durable or not, so two writers never both win —
        and every other refusal of :meth:`Storage.commit`) are raised by the
        call or set on the future; either way nothing of the commit is written.

        ``grouped=False`` asks for a commit of its own, durable before the call
        returns (with the space's open group): for an edit from outside, which
        should hold no lock past its call. A backend whose commits are never
        held open may ignore it.
        """
        ...

    def apply_then(self, commit: Commit, answer: Durable, *, grouped: bool = True) -> int | None:
        """:meth:`apply`, with the outcome told through ``answer`` rather than a future.

        Returns the seq if the commit is durable already (``answer`` is then
        never called), else None, and later calls ``answer(seq, None)`` once
        it is durable or ``answer(0, error)`` if it could not be written —
        never before this call has returned. Refusals are raised as by
        :meth:`apply`. Why a second way: the scheduler commits every event
        through it, and a future costs each one an object and, once the
        group is durable, a turn of the event loop for its callback. A
        backend may implement it as :meth:`apply` and ``add_done_callback``.
        """
        ...

    async def log(
        self, space: SpaceDID, principal: DID, *, since: int = 0, limit: int = 1000
    ) -> list[LogEntry]:
        """Durable commits after seq ``since``, oldest first."""
        ...

    def lease(
        self, space: SpaceDID, holder: DID, *, seconds: float = 30.0
    ) -> AbstractAsyncContextManager[Lease]:
        """Hold the right to host ``space`` while the block runs (waits for the current holder).

        Needs READ. The lease is renewed while the block runs and released when
        it ends; a holder that crashes keeps others out for ``seconds`` at most.
        If it is lost meanwhile (:attr:`Lease.lost`, :meth:`Lease.check`), the
        host must stop running the space's handlers and derived values.
        """
        ...


def _resolve(durable: asyncio.Future[int], seq: int, error: BaseException | None) -> None:
    if durable.done():
        return
    if error is None:
        durable.set_result(seq)
    else:
        durable.set_exception(error)


class _Waiting:
    """A grouped commit's ``on_durable``: answers once both the seq and the outcome are known.

    Storage calls ``on_durable`` before :meth:`Storage.commit` returns the seq
    when the commit is durable at once (memory); the answer then waits for it.
    """

    __slots__ = ("answer", "early", "seq")

    def __init__(self, answer: Durable) -> None:
        self.answer = answer
        self.seq: int | None = None
        self.early: BaseException | None | _NotYet = _NOT_YET

    def durable(self, error: BaseException | None) -> None:
        if self.seq is None:
            self.early = error  # inside commit(): told by known()
        else:
            self.answer(0 if error is not None else self.seq, error)

    def known(self, seq: int) -> int | None:
        """Commit returned ``seq``: it, if durable already; else None (answer comes later)."""
        early = self.early
        if early is _NOT_YET:
            self.seq = seq
            return None
        if early is None:
            return seq
        # the group failed within commit() (no flush scheduler): answer after returning
        assert isinstance(early, BaseException)
        asyncio.get_running_loop().call_soon(self.answer, 0, early)
        return None


class _NotYet:
    pass


_NOT_YET = _NotYet()


class AsyncStorage:
    """:class:`SpaceStore` over a :class:`Storage` (memory or SQLite), in one process.

    Reads answer from the facade at once. :meth:`apply` validates and writes
    at once; on SQLite the commit joins its space's group and is durable with
    it (group commit), on memory at once.
    The lease is a lock per space in this process and, on SQLite, a row in the
    directory's ``leases.sqlite`` that keeps every other process out too.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._leases: dict[SpaceDID, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"AsyncStorage({self.storage!r})"

    async def open_space(self, space: SpaceDID, principal: DID) -> SpaceRecord:
        return self.storage.space(space, principal)

    async def head(self, space: SpaceDID, principal: DID) -> int:
        return self.storage.head(space, principal)

    async def read(
        self, space: SpaceDID, id: EntityId, principal: DID, *, at: int | None = None
    ) -> Revision:
        return self.storage.read(space, id, principal, at=at)

    def apply(self, commit: Commit, *, grouped: bool = True) -> asyncio.Future[int]:
        durable: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        seq = self.apply_then(commit, partial(_resolve, durable), grouped=grouped)
        if seq is not None:
            durable.set_result(seq)
        return durable

    def apply_then(self, commit: Commit, answer: Durable, *, grouped: bool = True) -> int | None:
        # Validated and written now, in the space's open SQLite write transaction;
        # durable when the group is (its COMMIT at the end of this loop turn, or
        # sooner if a reader settles it). Memory is durable at once.
        if not grouped:  # one COMMIT now: another Storage on the directory, in this
            # thread, would otherwise wait for the group with the loop blocked
            return self.storage.commit(commit)
        waiting = _Waiting(answer)
        return waiting.known(self.storage.commit(commit, on_durable=waiting.durable))

    async def log(
        self, space: SpaceDID, principal: DID, *, since: int = 0, limit: int = 1000
    ) -> list[LogEntry]:
        return self.storage.log(space, principal, since=since, limit=limit)

    def lease(
        self, space: SpaceDID, holder: DID, *, seconds: float = 30.0
    ) -> AbstractAsyncContextManager[Lease]:
        return self._lease(space, holder, seconds)

    @asynccontextmanager
    async def _lease(self, space: SpaceDID, holder: DID, seconds: float) -> AsyncIterator[Lease]:
        seconds = check_seconds(seconds)

        def may_host() -> None:  # only someone who may read the space hosts it
            self.storage.space(space, holder)

        may_host()
        records = self.storage.backend.lease_records()
        lock = self._leases.setdefault(space, asyncio.Lock())
        async with lock:  # this process's hosts wait here, not by polling the records
            if records is None:
                yield Lease(space, holder, may_host=may_host)
                return
            async with hold(records, space, holder, seconds, may_host=may_host) as lease:
                yield lease
