"""R3: interleaved ``runtime.edit()`` transactions against a reference model.

Several transactions are open at once on two spaces; each reads and writes
cells (two keys of two documents per space) in any order, then commits or
aborts, in any order. The model is ``02-runtime.md``:

- reads return the transaction's own writes, else the latest committed value
  (an ``edit()`` has no home space, so it caches nothing: every read is fresh);
- writing a value equal to the current one is a no-op; the first real write
  fixes the writer space, and a write to the other space raises
  ``WriteIsolationError`` and is not journaled;
- a transaction commits iff no document it read in its writer space, or in a
  space it wrote an equal value to, changed since it first read it
  (per-space serializability; an equal write must not hide a lost update);
  one that wrote nothing then commits trivially, any other under the space's
  next seq.

The storage must always hold exactly the serial application, in commit order,
of the transactions the model says committed. Two drivers share the model: a
Hypothesis state machine (long, open-ended runs) and generated histories (a
few transactions, each with a plan, interleaved step by step: dense in
conflicts). Both run in memory and on SQLite; the edits are plain ``with``
blocks, so each commit is durable when it returns (grouped commits are the
business of the handler tests).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from charmspace import Runtime
from charmspace.errors import ConflictError, WriteIsolationError
from charmspace.identity import Identity
from charmspace.runtime import Address, Cell, CommitResult, Edit, FakeClock, Transaction
from charmspace.storage import entity_id
from charmspace.types import EntityId, JSONValue, SpaceDID

USER = Identity.from_passphrase("transaction model: user")
SERVICE = Identity.from_passphrase("transaction model: service")
DOCS: list[EntityId] = [entity_id({"transaction model": i}) for i in range(2)]
KEYS = ["a", "b"]
MAX_OPEN = 4

DocKey = tuple[SpaceDID, EntityId]
Doc = dict[str, JSONValue] | None
CellRef = tuple[int, EntityId, str]
"""A cell as drawn: which space (0 or 1), which document, which key."""

READ: JSONValue = "<read it>"
"""A step that reads its cell instead of writing a value."""

# Values that are equal in Python but not in JSON (1, 1.0, true) are in on purpose.
values = st.sampled_from([None, 0, 1, 1.0, True, False, "x", [], [1], {}, {"k": 1}]) | st.integers(
    -2, 2
)
cells = st.tuples(st.integers(0, 1), st.sampled_from(DOCS), st.sampled_from(KEYS))
steps = st.lists(st.tuples(cells, values | st.just(READ)), min_size=1, max_size=4)
which = st.integers(0, MAX_OPEN - 1)


class Boom(Exception):
    """What the body of an aborted edit raises."""


def same(a: object, b: object) -> bool:
    """JSON equality that tells true from 1 from 1.0."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def at_key(doc: Doc, key: str) -> JSONValue:
    return doc.get(key) if isinstance(doc, dict) else None


@dataclass
class OpenEdit:
    """An open transaction as the model sees it."""

    edit: Edit
    tx: Transaction
    reads: dict[DocKey, int] = field(default_factory=dict)
    """The seq of each document when this transaction first read it."""
    writes: dict[DocKey, Doc] = field(default_factory=dict)
    writer: SpaceDID | None = None
    noop: set[SpaceDID] = field(default_factory=set)
    """Spaces this transaction wrote an equal value to (a write that wrote nothing)."""


class EditModel:
    """A runtime on two spaces, and what its edits must do, step by step.

    ``backend`` is "memory" or "sqlite"; on SQLite each model (each example) gets a
    directory of its own, removed by :meth:`close`.
    """

    def __init__(self, backend: str = "memory") -> None:
        # Edits set the current transaction in a context variable, and these ones
        # end in any order: keep them in a context of their own.
        self.context = contextvars.copy_context()
        self.directory = Path(tempfile.mkdtemp()) if backend == "sqlite" else None
        url = f"sqlite:///{self.directory / 'store'}" if self.directory else "memory://"
        self.runtime = Runtime(
            url, identity=USER, service=SERVICE, clock=FakeClock(), random=random.Random(0)
        )
        self.spaces = [
            self.runtime.create_space(name="left"),
            self.runtime.create_space(name="right"),
        ]
        self.committed: dict[DocKey, tuple[Doc, int]] = {}
        self.heads = dict.fromkeys(self.spaces, 0)
        self.open: list[OpenEdit] = []
        self.history: list[tuple[SpaceDID, int, dict[DocKey, Doc]]] = []
        """Each commit the model expects, in commit order: space, seq, documents written."""

    def close(self) -> None:
        asyncio.run(self.runtime.close())
        if self.directory is not None:
            shutil.rmtree(self.directory)

    def address(self, cell: CellRef) -> Address:
        space, doc, key = cell
        return Address(self.spaces[space], doc, (key,))

    def cell(self, t: OpenEdit, address: Address) -> Cell[JSONValue]:
        """The cell at ``address`` bound to ``t``, as a handler's state cell is to its own."""
        return Cell(self.runtime, address, t.tx)

    def latest(self, key: DocKey) -> tuple[Doc, int]:
        return self.committed.get(key, (None, 0))

    def view(self, t: OpenEdit, key: DocKey) -> Doc:
        return t.writes[key] if key in t.writes else self.latest(key)[0]

    # --- what a transaction does --------------------------------------------------------

    def begin(self) -> OpenEdit:
        edit = self.runtime.edit()
        t = OpenEdit(edit, self.context.run(edit.__enter__))
        self.open.append(t)
        return t

    def step(self, t: OpenEdit, cell: CellRef, value: JSONValue) -> None:
        if value is READ:
            self.read(t, cell)
        else:
            self.write(t, cell, value)

    def read(self, t: OpenEdit, cell: CellRef) -> None:
        address = self.address(cell)
        got = self.context.run(self.cell(t, address).get)
        assert same(got, at_key(self.view(t, address.doc), cell[2]))
        t.reads.setdefault(address.doc, self.latest(address.doc)[1])

    def write(self, t: OpenEdit, cell: CellRef, value: JSONValue) -> None:
        address = self.address(cell)
        key, name = address.doc, cell[2]
        t.reads.setdefault(key, self.latest(key)[1])  # a write reads the document it changes
        view = self.view(t, key)
        if isinstance(view, dict) and name in view and same(view[name], value):
            self.context.run(self.cell(t, address).set, value)  # a no-op
            t.noop.add(address.space)
            return
        if t.writer is not None and address.space != t.writer:
            with pytest.raises(WriteIsolationError) as refused:
                self.context.run(self.cell(t, address).set, value)
            assert (refused.value.open, refused.value.requested) == (t.writer, address.space)
            assert t.writer in str(refused.value) and address.space in str(refused.value)
            assert all(space == t.writer for space, _ in t.tx.writes)  # not journaled
            return
        self.context.run(self.cell(t, address).set, value)
        t.writer = address.space
        t.writes[key] = {**(view or {}), name: value}

    def commit(self, t: OpenEdit) -> None:
        self.open.remove(t)
        validated = t.noop | ({t.writer} if t.writer is not None else set())
        stale = {
            key: seen
            for key, seen in t.reads.items()
            if key[0] in validated and seen != self.latest(key)[1]
        }
        if stale:
            with pytest.raises(ConflictError) as conflict:
                self.context.run(t.edit.__exit__, None, None, None)
            error = conflict.value
            key = (error.space, error.id)
            assert key in stale
            assert (error.expected_seq, error.actual_seq) == (stale[key], self.latest(key)[1])
            assert t.tx.state == "aborted"
            return
        if not t.writes:
            self.context.run(t.edit.__exit__, None, None, None)
            assert t.tx.state == "committed"
            assert t.tx.result == CommitResult(True)
            return
        space = t.writer
        assert space is not None
        self.context.run(t.edit.__exit__, None, None, None)
        seq = self.heads[space] + 1
        assert t.tx.result == CommitResult(True, space, seq)
        self.heads[space] = seq
        for key, doc in t.writes.items():
            self.committed[key] = (doc, seq)
        self.history.append((space, seq, dict(t.writes)))

    def abort(self, t: OpenEdit) -> None:
        self.open.remove(t)
        self.context.run(t.edit.__exit__, Boom, Boom(), None)
        assert t.tx.state == "aborted"

    def read_outside(self, cell: CellRef) -> None:
        address = self.address(cell)
        got = self.runtime.cell(address.space, address.id, *address.path).get()
        assert same(got, at_key(self.latest(address.doc)[0], cell[2]))

    # --- checks -------------------------------------------------------------------------

    def check(self) -> None:
        """Storage holds what the model committed; open transactions journal what it says."""
        storage = self.runtime.storage
        for space in self.spaces:
            assert storage.head(space, USER.did) == self.heads[space]
            for doc in DOCS:
                rev = storage.read(space, doc, USER.did)
                value, seq = self.latest((space, doc))
                assert rev.seq == seq and same(rev.value, value)
        for t in self.open:
            assert t.tx.state == "open"
            assert t.tx.writer == t.writer
            assert set(t.tx.writes) == set(t.writes)

    def check_serial(self) -> None:
        """The final state is the committed transactions applied one after another."""
        storage = self.runtime.storage
        state: dict[DocKey, Doc] = {}
        for space, seq, writes in self.history:
            [entry] = storage.log(space, USER.did, since=seq - 1, limit=1)
            assert entry.seq == seq and set(entry.ids) == {id for _, id in writes}
            state.update(writes)
        for space in self.spaces:
            for doc in DOCS:
                assert same(storage.read(space, doc, USER.did).value, state.get((space, doc)))


class TransactionMachine(RuleBasedStateMachine):
    backend = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.model = EditModel(self.backend)

    def teardown(self) -> None:
        model = self.model
        try:
            while model.open:  # the ones still open commit last, oldest first
                model.commit(model.open[0])
                model.check()
            model.check_serial()
        finally:
            model.close()

    def pick(self, i: int) -> OpenEdit:
        return self.model.open[i % len(self.model.open)]

    @initialize()
    def two_at_once(self) -> None:
        self.model.begin()
        self.model.begin()

    @precondition(lambda self: len(self.model.open) < MAX_OPEN)
    @rule()
    def begin(self) -> None:
        self.model.begin()

    @precondition(lambda self: self.model.open)
    @rule(i=which, steps=steps, then=st.sampled_from(["stay open", "stay open", "commit", "abort"]))
    def work(self, i: int, steps: list[tuple[CellRef, JSONValue]], then: str) -> None:
        """Transaction ``i`` reads and writes a few cells, in the order drawn, and maybe ends."""
        t = self.pick(i)
        for cell, value in steps:
            self.model.step(t, cell, value)
        if then == "commit":
            self.model.commit(t)
        elif then == "abort":
            self.model.abort(t)

    @precondition(lambda self: self.model.open)
    @rule(i=which)
    def commit(self, i: int) -> None:
        self.model.commit(self.pick(i))

    @precondition(lambda self: self.model.open)
    @rule(i=which)
    def abort(self, i: int) -> None:
        self.model.abort(self.pick(i))

    @rule(cell=cells)
    def read_outside(self, cell: CellRef) -> None:
        self.model.read_outside(cell)

    @invariant()
    def agrees_with_the_model(self) -> None:
        self.model.check()


# Both backends, but not through the storage_url fixture: every example needs a store of
# its own. SQLite runs fewer examples (each opens files); memory explores the most histories.
EXAMPLES = {"memory": 100, "sqlite": 25}


@pytest.mark.parametrize("backend", EXAMPLES)
def test_interleaved_edits_agree_with_the_model(backend: str) -> None:
    machine = type(f"TransactionMachine_{backend}", (TransactionMachine,), {"backend": backend})
    run_state_machine_as_test(
        machine,
        settings=settings(max_examples=EXAMPLES[backend], stateful_step_count=40, deadline=None),
    )


# --- generated histories ------------------------------------------------------------------

Plan = tuple[list[tuple[CellRef, JSONValue]], str]
"""A transaction's steps, then how it ends: "commit" or "abort"."""


@st.composite
def rounds(draw: st.DrawFn) -> tuple[list[Plan], list[int]]:
    """Two to four planned transactions, and the order their events interleave in.

    A transaction's events are: begin, each step, end; ``order`` lists whose
    event comes next.
    """
    plans = draw(
        st.lists(
            st.tuples(steps, st.sampled_from(["commit"] * 5 + ["abort"])), min_size=2, max_size=4
        )
    )
    events = [n for n, (planned, _) in enumerate(plans) for _ in range(len(planned) + 2)]
    return plans, draw(st.permutations(events))


def check_history(backend: str, history: list[tuple[list[Plan], list[int]]]) -> None:
    """Play ``history`` on a fresh model over ``backend``, checking every step."""
    model = EditModel(backend)
    try:
        for plans, order in history:
            opened: dict[int, OpenEdit] = {}
            done = [0] * len(plans)
            for n in order:
                planned, end = plans[n]
                if n not in opened:
                    opened[n] = model.begin()
                elif done[n] < len(planned):
                    model.step(opened[n], *planned[done[n]])
                    done[n] += 1
                elif end == "commit":
                    model.commit(opened[n])
                else:
                    model.abort(opened[n])
                model.check()
        model.check_serial()
    finally:
        model.close()


histories = st.lists(rounds(), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(histories)
def test_generated_histories_are_serializable_per_space(
    history: list[tuple[list[Plan], list[int]]],
) -> None:
    check_history("memory", history)


@settings(max_examples=60, deadline=None)
@given(histories)
def test_generated_histories_are_serializable_per_space_on_sqlite(
    history: list[tuple[list[Plan], list[int]]],
) -> None:
    check_history("sqlite", history)
