"""Transactions: read any space, write exactly one.

Why one writer space: every space commits on its own sequence (and may live in
its own file or server), so a commit that spans two spaces could land in one and
not the other. A transaction therefore fixes its writer space at its first write
and refuses writes elsewhere with :class:`~charmspace.errors.WriteIsolationError`.
Changing another space's data is done by asking a charm that lives there: send
an event to one of its streams, which runs in that charm's own transaction.

Reads of the writer space are validated at commit (serializable per space).
Reads of other spaces are read-committed: each read returns the latest
committed value, so a handler that ``call``-ed another space's stream sees the
result when it reads again.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from charmspace.errors import (
    AuthorizationError,
    ConflictError,
    HistoryPrunedError,
    LimitExceededError,
    LinkError,
    ReadOnlyCellError,
    RuntimeClosedError,
    SpaceNotFoundError,
    TransactionClosedError,
    WriteIsolationError,
)
from charmspace.quick_init import quick_init
from charmspace.runtime import context
from charmspace.runtime.address import Address, StreamMarker, is_link, mark_stream, parse_link
from charmspace.runtime.redaction import log_error
from charmspace.storage import DELETE, Commit, Row
from charmspace.types import DID, EntityId, JSONValue, Path, PathSegment, SpaceDID
from charmspace.values import FrozenDict, FrozenList, freeze, getpath, list_index, same, setpath

if TYPE_CHECKING:
    from charmspace.runtime.outbox import Staged
    from charmspace.runtime.runtime import Runtime
    from charmspace.storage.interface import SpaceStore

log = logging.getLogger(__name__)

MAX_HOPS = 64
DocKey = tuple[SpaceDID, EntityId]


@quick_init
@dataclass(frozen=True, slots=True)
class CommitResult:
    """The outcome of a commit: ``ok`` with the space and seq, or the error.

    ``space`` is None and ``seq`` 0 when nothing was written.
    """

    ok: bool
    space: SpaceDID | None = None
    seq: int = 0
    error: BaseException | None = None


EMPTY_COMMIT = CommitResult(True)

Answer = Callable[[CommitResult | None, BaseException | None], None]
"""How :meth:`Transaction.submit_then` tells the outcome: the result, or the error."""


class Transaction:
    """One unit of work: reads recorded with the seq seen, writes to one space.

    Use :meth:`Runtime.edit` (``async with runtime.edit() as tx``) rather than
    constructing one. Cells used inside the block write through it.
    ``rerun_on_conflict`` says the scheduler runs the handler again if the
    commit conflicts: that run's staged sends then vanish quietly (see :meth:`abort`).

    **Commit dependencies.** A transaction reads only durable commits, except
    one with ``may_read_pending``: it reads what a grouped commit of its home
    space wrote before that group is durable, and so depends on it. That is
    safe because such a transaction cannot act on the value before the group
    is durable: its reads of that space are validated when it commits (in the
    same group or a later one, so it fails if the group does, which rolls
    back what it read), its answer, sends and jobs wait for its own
    durability, and the scheduler grants it only to a handler that does not
    await (no I/O while it depends). A commit that wrote nothing or wrote
    another space makes the group durable and checks its reads first.
    """

    __slots__ = (
        "_after_commit",
        "_before_commit",
        "_cache",
        "_noop_spaces",
        "_on_abort",
        "_on_applied",
        "_reads",
        "_row_reads",
        "_rows",
        "_targets",
        "_writes",
        "allowed_derived",
        "confine",
        "home",
        "may_read_pending",
        "meta",
        "principal",
        "rerun_on_conflict",
        "result",
        "runtime",
        "staged",
        "state",
        "writer",
    )

    def __init__(
        self,
        runtime: Runtime,
        principal: DID,
        *,
        allowed_derived: frozenset[DocKey] = frozenset(),
        meta: Mapping[str, JSONValue] | None = None,
        home: SpaceDID | None = None,
        rerun_on_conflict: bool = False,
        confine: SpaceDID | None = None,
    ) -> None:
        # Once per transaction, not per read: every read outside a handler (a
        # cell's get(), charms.list()) opens one, so a closed runtime refuses them
        # alike on every backend (memory would still answer; SQLite's files are
        # closed), while reads inside a handler's transaction cost nothing more.
        if runtime.closed:
            raise RuntimeClosedError("read or write its spaces")
        self.runtime = runtime
        self.confine = confine
        self.home = home
        self.rerun_on_conflict = rerun_on_conflict
        self.principal = principal
        self.allowed_derived = allowed_derived
        self.meta = meta or {}
        self.state = "open"
        self.writer: SpaceDID | None = None
        self.result: CommitResult | None = None
        self._reads: dict[DocKey, int] = {}
        self._cache: dict[DocKey, JSONValue] = {}
        self._targets: dict[Address, tuple[Address, JSONValue]] | None = None
        """Where a write to an address read here would land, and that document's value
        (see :meth:`_walk`); forgotten at every write, as a write may move a link."""
        self._writes: dict[DocKey, JSONValue | object] = {}
        self._rows: dict[tuple[str, str], JSONValue | object] = {}
        self._row_reads: dict[tuple[SpaceDID, str, str], int] = {}
        self._noop_spaces: set[SpaceDID] = set()
        # Callbacks: None until the first one (most transactions have none, and one
        # is made per event).
        self._after_commit: list[Callable[[CommitResult], None]] | None = None
        self._on_abort: list[Callable[[], None]] | None = None
        self._on_applied: list[Callable[[], None]] | None = None
        self._before_commit: list[Callable[[Transaction], None]] | None = None
        self.staged: Staged | None = None
        self.may_read_pending = False
        """Whether this transaction may read its home space's pending commits (and so
        depend on them): set by the scheduler for a handler that cannot await
        (see :meth:`read_doc`)."""

    def __repr__(self) -> str:
        return f"<Transaction {self.state} writer={self.writer} principal={self.principal}>"

    # --- documents -------------------------------------------------------------------

    def read_doc(self, space: SpaceDID, id: EntityId, *, track: bool = True) -> JSONValue:
        """A whole document's value (None if absent), your own writes included.

        Documents of the transaction's home space (the charm's own space, while
        it is or may become the writer space) are read once and then served
        from the transaction: those reads are validated at commit anyway.
        Other spaces are read afresh each time (read-committed).
        """
        if self.state != "open":
            raise TransactionClosedError(self.state)
        key = (space, id)
        written = self._writes.get(key, _ABSENT)
        if written is not _ABSENT:
            return None if written is DELETE else written  # type: ignore[return-value]
        cached = self._cache.get(key, _ABSENT)
        if cached is not _ABSENT:
            return cached  # type: ignore[return-value]
        storage = self.runtime.storage
        pending = False
        if storage.unsettled(space, id):
            if self.may_read_pending and space == self.home:
                pending = True  # a commit dependency (see the class docstring)
                self._noop_spaces.add(space)  # validated at commit whatever it writes
            else:
                storage.settle(space)  # the older value would only conflict at commit
        rev = storage.read(space, id, self.principal, pending=pending)
        if (track or pending) and key not in self._reads:
            self._reads[key] = rev.seq
        if space == self.home and (self.writer is None or self.writer == space):
            self._cache[key] = rev.value
        return rev.value

    def write_doc(self, space: SpaceDID, id: EntityId, value: JSONValue | object) -> None:
        """Replace a whole document (or delete it with ``DELETE``) in this transaction."""
        self._check_open()
        key = (space, id)
        self._check_writable(key)
        self._put(key, value)

    def _put(self, key: DocKey, value: JSONValue | object) -> None:
        """Record a write already checked by :meth:`_check_writable`."""
        if self.writer is None:
            self.writer = key[0]
            if key[0] != self.home:
                self._cache.clear()
        self._targets = None
        self._writes[key] = value

    def _check_writable(self, key: DocKey) -> None:
        """Refuse a write to a derived document or to a second space, before it is computed."""
        space, id = key
        owner = self.runtime.derived_owner(key)
        if owner is not None and key not in self.allowed_derived:
            raise ReadOnlyCellError(f"{space}/{id}", owner)
        if self.confine is not None and space != self.confine:
            raise WriteIsolationError(self.confine, space)
        if self.writer is not None and space != self.writer:
            raise WriteIsolationError(self.writer, space)

    # --- rows (bookkeeping outside the documents' history) -----------------------------

    def read_row(self, space: SpaceDID, box: str, key: str) -> Row | None:
        """A row (your own writes included); validated at commit if ``space`` is written.

        A row written here reads back as written by this transaction's principal.
        """
        self._check_open()
        if space == self.writer:
            written = self._rows.get((box, key), _ABSENT)
            if written is not _ABSENT:
                if written is DELETE:
                    return None
                seen = self._row_reads.get((space, box, key), 0)
                return Row(written, self.principal, seen + 1)  # type: ignore[arg-type]
        storage = self.runtime.storage
        pending = self.may_read_pending and space == self.home and storage.rows_unsettled(space)
        if pending:
            self._noop_spaces.add(space)  # a commit dependency, as in read_doc
        row = storage.row(space, box, key, self.principal, pending=pending)
        self._row_reads.setdefault((space, box, key), 0 if row is None else row.version)
        return row

    def write_row(self, space: SpaceDID, box: str, key: str, value: JSONValue | object) -> None:
        """Write (or with ``DELETE`` remove) a row of the writer space in this commit."""
        self._check_open()
        self._check_row_space(space)
        if self.writer is None:
            self.writer = space
            if space != self.home:
                self._cache.clear()
                self._targets = None
        self._rows[(box, key)] = value

    def _check_row_space(self, space: SpaceDID) -> None:
        """Rows are written in the writer space, like documents."""
        if self.confine is not None and space != self.confine:
            raise WriteIsolationError(self.confine, space)
        if self.writer is not None and space != self.writer:
            raise WriteIsolationError(self.writer, space)

    def stop_reading_pending(self) -> None:
        """From now on read durable commits only; make those read so far durable.

        For a handler about to await (I/O may follow): what it does next may be
        seen outside before its own commit is, so it must not rest on a value
        that could still vanish.
        """
        if self.may_read_pending:
            self.may_read_pending = False
            if self.home is not None:
                self.runtime.storage.settle(self.home)

    @property
    def reads(self) -> dict[DocKey, int]:
        return self._reads

    @property
    def writes(self) -> dict[DocKey, JSONValue | object]:
        return self._writes

    # --- values at addresses (links followed) -----------------------------------------

    def read(self, address: Address, *, track: bool = True, deep: bool = True) -> JSONValue:
        """The value at ``address``, following links; nested links resolved when ``deep``."""
        value, where = self._walk(address, track=track)
        if deep and (type(value) is FrozenDict or type(value) is FrozenList):  # else no link inside
            value = self._resolve_nested(value, where, track, (where,))
        return value

    def resolve(self, address: Address, *, track: bool = True) -> Address:
        """Where ``address`` finally points after following every link on the way."""
        return self._walk(address, track=track)[1]

    def _walk(self, address: Address, *, track: bool) -> tuple[JSONValue, Address]:
        space, id = address.space, address.id
        doc = value = self.read_doc(space, id, track=track)
        remaining: Path = address.path
        walked: list[PathSegment] = []
        seen: set[tuple[SpaceDID, EntityId, Path]] | None = None
        # Where a write to ``address`` lands (``_write_target``), noted on the way:
        # a handler sets the cell it just read, and need not walk its links twice.
        write_at: tuple[Address, JSONValue] | None = None
        home_only = space == self.home
        i = 0
        while True:
            if type(value) is FrozenDict and is_link(value):
                here = (space, id, tuple(walked))
                if seen is None:
                    seen = set()
                if here in seen:
                    raise LinkError("links form a cycle", str(address))
                seen.add(here)
                if len(seen) > MAX_HOPS:
                    raise LinkError(f"more than {MAX_HOPS} links in a row", str(address))
                target, redirect = parse_link(value, Address(space, id))
                if write_at is None and i == len(remaining) and not redirect:
                    write_at = (Address(space, id, here[2]), doc)  # a write replaces the link
                space, id = target.space, target.id
                home_only = home_only and space == self.home
                doc = value = self._follow(space, id, track, address)
                remaining = (*target.path, *remaining[i:])
                walked = []
                i = 0
                continue
            if i == len(remaining):
                # no link on the way: the address itself (most reads; one object less)
                where = address if seen is None else Address(space, id, tuple(walked))
                if track and home_only and (self.writer is None or self.writer == space):
                    # every document on the way is cached here and validated at commit
                    if self._targets is None:
                        self._targets = {}
                    self._targets[address] = write_at or (where, doc)
                return mark_stream(value, where), where
            seg = remaining[i]
            i += 1
            if type(value) is FrozenDict and type(seg) is str:  # most steps: a key of an object
                value = value.get(seg)
            else:
                value = getpath(value, (seg,))
            walked.append(seg)

    def _follow(self, space: SpaceDID, id: EntityId, track: bool, origin: Address) -> JSONValue:
        """The document a link points at; a link into a space that does not exist is a LinkError."""
        try:
            return self.read_doc(space, id, track=track)
        except SpaceNotFoundError:
            raise LinkError(
                f"it points into space {space}, which does not exist", str(origin)
            ) from None

    def _resolve_nested(
        self, value: JSONValue, at: Address, track: bool, chain: tuple[Address, ...]
    ) -> JSONValue:
        """``value`` with the links inside it replaced by what they point at.

        ``chain`` holds the targets of the links followed to get here: meeting
        one again is a cycle (a value that would contain itself).
        """
        if type(value) is FrozenDict:
            changed = False
            items = {}
            for k, v in value.items():
                if type(v) is FrozenDict or type(v) is FrozenList:
                    nv = self._resolve_item(mark_stream(v, at.key(k)), at.key(k), track, chain)
                    if nv is not v:
                        changed = True
                    items[k] = nv
                else:
                    items[k] = v
            return freeze(items) if changed else value
        if type(value) is FrozenList:
            changed = False
            out = []
            for i, v in enumerate(value):
                if type(v) is FrozenDict or type(v) is FrozenList:
                    nv = self._resolve_item(mark_stream(v, at.key(i)), at.key(i), track, chain)
                    changed = changed or nv is not v
                    out.append(nv)
                else:
                    out.append(v)
            return freeze(out) if changed else value
        return value

    def _resolve_item(
        self, value: JSONValue, at: Address, track: bool, chain: tuple[Address, ...]
    ) -> JSONValue:
        if type(value) is StreamMarker:
            return value
        if not is_link(value):
            return self._resolve_nested(value, at, track, chain)
        target, where = self._walk(at, track=track)
        if where in chain:
            raise LinkError("links nested in values form a cycle", str(at))
        if len(chain) > MAX_HOPS:
            raise LinkError(f"values nest links more than {MAX_HOPS} deep", str(at))
        return self._resolve_nested(target, where, track, (*chain, where))

    def write(self, address: Address, value: JSONValue) -> None:
        """Write ``value`` at ``address``; links on the way are followed, redirect links too.

        Writing a value equal to the current one writes nothing and triggers
        nobody, but the transaction's reads of that space are still validated
        at commit: the value may be equal only because another commit wrote it
        since this transaction read (two read-modify-write increments racing),
        and committing then would lose an update without a conflict.
        """
        known = self._targets.get(address) if self._targets else None
        if known is None:
            target, doc = self._write_target(address)
        else:
            self._check_open()
            target, doc = known
        limit = self.runtime.storage.limits.max_path_segments
        if len(target.path) > limit:
            raise LimitExceededError("The path length", len(target.path), limit)
        if target.path:
            if same(getpath(doc, target.path), value) and _exists(doc, target.path):
                self._noop_spaces.add(target.space)
                return
        elif same(doc, value):
            self._noop_spaces.add(target.space)
            return
        key = (target.space, target.id)
        self._check_open()
        self._check_writable(key)  # its refusal comes before setpath's
        self._put(key, setpath(doc, target.path, value))

    def write_route(self, address: Address) -> list[Address]:
        """Every place a write at ``address`` passes through: ``address``, then each
        link it follows (as the location inside that link's target), the last
        one being where it lands. Nothing is written.

        For checks that depend on whose data a write changes (an edit from
        outside a charm is checked against the input it lands in).
        """
        self._check_open()
        route = [address]
        self._write_target(address, route)
        return route

    def write_checked(self, address: Address, value: JSONValue, check: Callable[[], None]) -> None:
        """:meth:`write`, then ``check()``, which may read the result through this
        transaction; if it raises, the write is undone before the error propagates.

        Why undo rather than rely on the abort: a caller may catch the error and
        go on, and then commit; what the check refused must not be committed.
        """
        writes, writer, noop = dict(self._writes), self.writer, set(self._noop_spaces)
        self.write(address, value)
        try:
            check()
        except BaseException:
            self._writes, self.writer, self._noop_spaces = writes, writer, noop
            self._targets = None
            raise

    def _write_target(
        self, address: Address, route: list[Address] | None = None
    ) -> tuple[Address, JSONValue]:
        """Where a write lands, and the current value of the document it lands in.

        ``route`` (if given) gets the location in each document the write enters
        after following a link (see :meth:`write_route`).
        """
        space, id = address.space, address.id
        doc = value = self.read_doc(space, id)
        remaining: Path = address.path
        walked: list[PathSegment] = []
        seen: set[tuple[SpaceDID, EntityId, Path]] = set()
        i = 0
        while True:
            if type(value) is FrozenDict and is_link(value):
                target, redirect = parse_link(value, Address(space, id))
                if i < len(remaining) or redirect:
                    here = (space, id, tuple(walked))
                    if here in seen:
                        raise LinkError("links form a cycle", str(address))
                    seen.add(here)
                    if len(seen) > MAX_HOPS:
                        raise LinkError(f"more than {MAX_HOPS} links in a row", str(address))
                    space, id = target.space, target.id
                    doc = value = self._follow(space, id, True, address)
                    remaining = (*target.path, *remaining[i:])
                    walked = []
                    i = 0
                    if route is not None:
                        route.append(Address(space, id, remaining))
                    continue
            if i == len(remaining):
                return Address(space, id, tuple(walked)), doc
            seg = remaining[i]
            i += 1
            value = getpath(value, (seg,))
            walked.append(seg)

    def saw_commit(self, space: SpaceDID, seq: int) -> None:
        """Take in commit ``seq`` of ``space``, made on this transaction's behalf by a call.

        Why: a handler that reads its token, calls the charm that refreshes it
        (in its own space) and reads it again must see the new token, and must
        not then conflict with the very commit it asked for — that would re-run
        it, call again, and conflict again. Documents that commit changed are
        read afresh from here on, and a read of one is validated as if made
        just after that commit, unless another commit changed it too.
        """
        if space != self.home and space != self.writer:
            return  # read-committed there anyway: nothing cached, nothing validated
        storage = self.runtime.storage
        try:
            [entry] = storage.log(space, self.principal, since=seq - 1, limit=1)
        except (AuthorizationError, ValueError):
            return
        self._targets = None
        for id in entry.ids:
            key = (space, id)
            self._cache.pop(key, None)
            seen = self._reads.get(key)
            if seen is None or key in self._writes:
                continue  # our own write over theirs must still conflict
            try:
                before = storage.read(space, id, self.principal, at=seq - 1)
            except HistoryPrunedError:
                continue  # pruned already: validate as read, at worst a conflict and a retry
            if before.seq == seen:
                self._reads[key] = seq

    # --- lifecycle ---------------------------------------------------------------------

    def after_commit(self, callback: Callable[[CommitResult], None]) -> None:
        """Run ``callback(result)`` once the commit succeeded (dropped on abort)."""
        self._check_open()
        if self._after_commit is None:
            self._after_commit = []
        self._after_commit.append(callback)

    def before_commit(self, callback: Callable[[Transaction], None]) -> None:
        """Run ``callback(tx)`` when the commit starts; it may still write (the outbox does)."""
        self._check_open()
        if self._before_commit is None:
            self._before_commit = []
        self._before_commit.append(callback)

    def on_applied(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` once the commit is applied: later commits are validated against it.

        With a grouped commit that is before it is durable (and before anyone
        reads it); if the group then fails, the ``on_abort`` callbacks run.
        """
        self._check_open()
        if self._on_applied is None:
            self._on_applied = []
        self._on_applied.append(callback)

    def on_abort(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` if this transaction aborts (or its commit fails)."""
        self._check_open()
        if self._on_abort is None:
            self._on_abort = []
        self._on_abort.append(callback)

    def commit(self) -> CommitResult:
        """Make every write durable in the writer space now, or raise and write nothing.

        The synchronous path, for bookkeeping that cannot wait (an error cell, a
        job's status) and for ``with runtime.edit()``: one storage commit of its
        own, which also makes the space's open group durable. Work that can wait
        commits through the host's store with :meth:`submit` or :meth:`commit_to`.
        """
        commit = self._seal()
        if commit is None:
            return EMPTY_COMMIT
        try:
            seq = self.runtime.storage.commit(commit)
        except BaseException as e:
            self.abort(rerun=self.rerun_on_conflict and isinstance(e, ConflictError))
            raise
        return self._applied(commit.space, seq, durable=True)

    def submit(self, store: SpaceStore, *, grouped: bool = True) -> asyncio.Future[CommitResult]:
        """Hand the commit to ``store``; the returned future is done once it is durable.

        How a space's host commits (:meth:`SpaceHost.commit`): as
        :meth:`submit_then`, with the outcome as a future to await. What
        storage refuses at once (a conflict, no WRITE) is raised here, having
        aborted; a failure later is the future's exception.
        """
        done: asyncio.Future[CommitResult] = asyncio.get_running_loop().create_future()
        self.submit_then(store, partial(_settle_future, done), grouped=grouped)
        done.add_done_callback(_retrieved)  # a caller that stopped waiting is not an error
        return done

    def submit_then(self, store: SpaceStore, answer: Answer, *, grouped: bool = True) -> None:
        """Hand the commit to ``store``; call ``answer(result, None)`` once it is durable.

        ``store`` validates commits in the order they are submitted and makes
        each durable no earlier than those before it, so the caller may go on
        (the scheduler runs the charm's next event) while this one joins the
        space's group. What storage refuses at once (a conflict, no WRITE) is
        raised here, having aborted, and ``answer`` is never called; a failure
        later (the group could not be written) is ``answer(None, error)``,
        after the abort callbacks. The after-commit callbacks (staged sends,
        jobs) run before ``answer``. A callback rather than a future because
        the scheduler answers every event this way: a future would cost each
        event one more turn of the event loop.
        """
        commit = self._seal()
        if commit is None:
            answer(EMPTY_COMMIT, None)
            return
        self.state = "committing"
        submitted = _Submitted(self, commit.space, answer)
        try:
            seq = store.apply_then(commit, submitted.durable, grouped=grouped)
        except BaseException as e:
            self._failed(e)
            raise
        if seq is None:  # answered later: as the submitter, so in a copy of this context
            submitted.context = contextvars.copy_context()
        self._run_applied()
        if seq is not None:  # durable already (memory): answer in this turn, as the submitter
            answer(self._applied(commit.space, seq), None)

    async def commit_to(self, store: SpaceStore, *, grouped: bool = True) -> CommitResult:
        """:meth:`submit`, and wait until the commit is durable (or raise, having written nothing).

        A caller cancelled meanwhile gets ``CancelledError`` at once; the commit
        still completes (or fails) and its callbacks (or abort callbacks) run when it does.
        """
        return await asyncio.shield(self.submit(store, grouped=grouped))

    def _seal(self) -> Commit | None:
        """Run the before-commit callbacks and validate no-op spaces; the commit to make.

        None for a transaction that wrote nothing: it is committed here.
        """
        self._check_open()
        if self._before_commit is not None:
            for callback in self._before_commit:  # one may add another: it runs too
                callback(self)
        if self._noop_spaces:
            self._validate_noop_spaces()
        if not self._writes and not self._rows:
            self.state = "committed"
            self.result = EMPTY_COMMIT
            self._run_applied()
            self._run_after_commit(EMPTY_COMMIT)
            return None
        space = self.writer
        assert space is not None
        reads = {id: seq for (s, id), seq in self._reads.items() if s == space}
        writes = {id: v for (s, id), v in self._writes.items()}
        row_reads = self._row_reads
        return Commit(
            space,
            self.principal,
            writes,  # type: ignore[arg-type]
            reads,
            self.meta,
            self._rows,  # type: ignore[arg-type]
            {(box, key): v for (s, box, key), v in row_reads.items() if s == space}
            if row_reads
            else _NO_ROW_READS,
        )

    def _applied(self, space: SpaceDID, seq: int, *, durable: bool = False) -> CommitResult:
        """The commit is durable: it is committed, and the after-commit callbacks run.

        ``durable``: applied and durable at once (:meth:`commit`), so the
        on-applied callbacks run first.
        """
        self.state = "committed"
        self.result = CommitResult(True, space, seq)
        if durable:
            self._run_applied()
        self._run_after_commit(self.result)
        return self.result

    def _failed(self, error: BaseException) -> None:
        self.state = "open"  # so that abort runs its callbacks
        self.abort(rerun=self.rerun_on_conflict and isinstance(error, ConflictError))

    def _validate_noop_spaces(self) -> None:
        """Raise ConflictError (aborting) if a read of a space that storage will not
        validate changed since: one written only by no-op writes, or one whose
        pending commits this transaction read but does not write (its group is
        made durable first). The writer space's reads are validated by storage.

        Why checking one document after another is enough: each read seq was
        seen before the first check, so a document found unchanged at its check
        was unchanged when the first check ran, and all of them held together
        then. ``head`` first makes storage look past its cache of other
        processes' commits.
        """
        storage = self.runtime.storage
        for space in self._noop_spaces:
            if space == self.writer:
                continue
            try:
                storage.settle(space)  # validated against every commit, durable or not
                storage.head(space, self.principal)
                for (s, id), seen in self._reads.items():
                    if s == space:
                        actual = storage.read(space, id, self.principal).seq
                        if actual != seen:
                            raise ConflictError(space, id, seen, actual)
                for (s, box, key), seen in self._row_reads.items():
                    if s == space:
                        row = storage.row(space, box, key, self.principal)
                        version = 0 if row is None else row.version
                        if version != seen:
                            raise ConflictError(space, f"row {box} {key}", seen, version)
            except BaseException as e:
                self.abort(rerun=self.rerun_on_conflict and isinstance(e, ConflictError))
                raise

    def _run_applied(self) -> None:
        callbacks, self._on_applied = self._on_applied, None
        if callbacks is None:
            return
        for callback in callbacks:
            try:
                callback()
            except Exception as error:  # user code: no message, no traceback
                log_error(log, "on-applied callback", error, {})

    def _run_after_commit(self, result: CommitResult) -> None:
        callbacks, self._after_commit = self._after_commit, None
        self._on_abort = None
        if callbacks is None:
            return
        for callback in callbacks:
            try:
                callback(result)
            except Exception as error:  # user code: no message, no traceback
                log_error(log, "after-commit callback", error, {})

    def abort(self, *, rerun: bool = False) -> None:
        """Drop every write; staged sends are dropped too.

        With ``rerun`` (a conflict: the handler runs again and sends again), the
        staged sends vanish without telling their ``on_commit``, which then
        hears only about the run that counts.
        """
        if self.state != "open":
            return
        self.state = "aborted"
        self._writes.clear()
        self._rows.clear()
        self._after_commit = None
        callbacks, self._on_abort = self._on_abort, None
        if rerun or callbacks is None:
            return
        for callback in callbacks:
            try:
                callback()
            except Exception as error:  # user code: no message, no traceback
                log_error(log, "abort callback", error, {})

    def _check_open(self) -> None:
        if self.state != "open":
            raise TransactionClosedError(self.state)


class _Submitted:
    """A commit handed to the store by :meth:`Transaction.submit_then`, until it is durable.

    The answer runs as the submitter (in the context it submitted from, so its
    callbacks act for its principal), never inside the code that made the
    group durable: a flush answers at once, but a transaction that settled
    the group in the middle of its own code (a read) has it answered on the
    next turn of the loop, as a future's callback would be; and while such
    answers wait, later ones wait behind them, so senders hear in the order
    their commits became durable.
    """

    __slots__ = ("answer", "context", "space", "tx")

    def __init__(self, tx: Transaction, space: SpaceDID, answer: Answer) -> None:
        self.tx = tx
        self.space = space
        self.answer = answer
        self.context: contextvars.Context | None = None

    def durable(self, seq: int, error: BaseException | None) -> None:
        """The store's answer (see :meth:`SpaceStore.apply_then`)."""
        submitter = self.context
        assert submitter is not None  # set before apply_then could answer
        runtime = self.tx.runtime
        running = context.current().transaction
        if runtime.answers_queued or (running is not None and running.state == "open"):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                runtime.answers_queued += 1
                loop.call_soon(self._queued, seq, error, context=submitter)
                return
        submitter.run(self._answer, seq, error)

    def _queued(self, seq: int, error: BaseException | None) -> None:
        self.tx.runtime.answers_queued -= 1
        self._answer(seq, error)

    def _answer(self, seq: int, error: BaseException | None) -> None:
        tx = self.tx
        if error is not None:
            tx._failed(error)
            self.answer(None, error)
        else:
            self.answer(tx._applied(self.space, seq), None)


def _settle_future(
    done: asyncio.Future[CommitResult], result: CommitResult | None, error: BaseException | None
) -> None:
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    elif result is not None:
        done.set_result(result)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _Absent:
    pass


_NO_ROW_READS: Mapping[tuple[str, str], int] = MappingProxyType({})
"""The row reads of a commit that read no row (most): one shared, immutable mapping."""


_ABSENT: Any = _Absent()


def _exists(doc: JSONValue, path: Path) -> bool:
    parent = getpath(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        return last in parent
    if isinstance(parent, list):
        i = list_index(last)
        return i is not None and i < len(parent)
    return False
