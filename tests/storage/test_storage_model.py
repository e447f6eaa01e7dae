"""R3: storage against a reference model, as a Hypothesis state machine, on every backend.

The model is what ``01-storage.md`` promises, kept as plain dictionaries: per
space a head seq, each document's revisions ``(seq, value, deleted)`` and the
commit log. The machine commits with random reads (current or stale seqs) and
writes (values or DELETE), grouped (``on_durable=``, flushed by a rule) or not,
reads now and in the past, and lists the log. On SQLite it also reopens the
directory, and another process looks at it (it must see exactly the durable
commits) or commits to it (this process must see and validate against that
commit). After every step the storage agrees with the model, and subscribers
have heard of exactly this process's durable commits, once each, in seq order;
``on_durable`` is called once, after the notification, never for a conflict.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from charmspace.errors import ConflictError
from charmspace.identity import Identity
from charmspace.storage import (
    DELETE,
    Change,
    Commit,
    Storage,
    creation_proof,
    entity_id,
    open_storage,
)
from charmspace.storage.backends import sqlite as sqlite_backend
from charmspace.testing import ManualFlush
from charmspace.types import DID, EntityId, JSONValue, SpaceDID

OWNER: DID = Identity.from_passphrase("storage model: owner").did
SPACE_KEYS = [Identity.from_passphrase(f"storage model: space {i}") for i in range(3)]
SPACES: list[SpaceDID] = [key.did for key in SPACE_KEYS]
IDS: list[EntityId] = [entity_id({"storage model": i}) for i in range(4)]

json_values: st.SearchStrategy[JSONValue] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=5,
)
writes_strategy = st.dictionaries(
    st.sampled_from(IDS), json_values | st.just(DELETE), min_size=1, max_size=3
)
# What a commit says it saw, for each document it read: mostly the current seq, else an
# earlier one, 0 (as if it did not exist) or one from the future.
reads_strategy = st.dictionaries(
    st.sampled_from(IDS),
    st.sampled_from(["current"] * 6 + ["stale", "zero", "future"]),
    max_size=3,
)
space_index = st.integers(0, len(SPACES) - 1)
seqs = st.integers(0, 40)


def same(a: object, b: object) -> bool:
    """JSON equality that tells true from 1 from 1.0."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@dataclass
class SpaceModel:
    """A space as the model sees it."""

    head: int = 0
    revisions: dict[EntityId, list[tuple[int, JSONValue, bool]]] = field(default_factory=dict)
    log: list[tuple[int, tuple[EntityId, ...]]] = field(default_factory=list)
    announced: list[int] = field(default_factory=list)
    """Seqs whose notification must have arrived, in order (this process's durable commits)."""
    pending: list[int] = field(default_factory=list)
    """Grouped seqs applied but not yet durable (SQLite only)."""
    durable_head: int = 0
    """What another process sees."""

    def current(self, id: EntityId) -> tuple[int, JSONValue, bool]:
        return self.revisions.get(id, [(0, None, False)])[-1]

    def at(self, id: EntityId, seq: int) -> tuple[int, JSONValue, bool]:
        found: tuple[int, JSONValue, bool] = (0, None, False)
        for rev in self.revisions.get(id, []):
            if rev[0] <= seq:
                found = rev
        return found

    def apply(self, seq: int, writes: Mapping[EntityId, JSONValue | object]) -> None:
        assert seq == self.head + 1
        self.head = seq
        for id, value in writes.items():
            deleted = value is DELETE
            stored = None if deleted else cast(JSONValue, value)
            self.revisions.setdefault(id, []).append((seq, stored, deleted))
        self.log.append((seq, tuple(writes)))

    def make_durable(self, *, also: int | None = None) -> None:
        """The pending group is durable (and commit ``also`` after it)."""
        self.announced.extend(self.pending)
        self.pending.clear()
        if also is not None:
            self.announced.append(also)
        self.durable_head = self.head


class StorageMachine(RuleBasedStateMachine):
    """The machine on ``memory://``; :class:`SQLiteStorageMachine` runs it on disk."""

    on_disk = False
    max_open: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="charmspace-r3-")) if self.on_disk else None
        self.url = f"sqlite://{self.directory}" if self.directory else "memory://"
        self.scheduler = ManualFlush()
        self.storage = self.open()
        self.model: dict[SpaceDID, SpaceModel] = {}
        self.heard: dict[SpaceDID, list[Change]] = {}
        self.heard_anywhere: list[Change] = []
        self.durable_calls: dict[tuple[SpaceDID, int], list[BaseException | None]] = {}
        self.storage.subscribe(None, self.heard_anywhere.append)

    @property
    def batches(self) -> bool:
        return self.storage.backend.batches

    def open(self) -> Storage:
        if self.directory is not None and self.max_open is not None:
            backend = sqlite_backend.SQLiteBackend(self.directory, max_open=self.max_open)
            storage = Storage(backend, url=self.url)
        else:
            storage = open_storage(self.url)
        storage.flush_scheduler = self.scheduler
        return storage

    def teardown(self) -> None:
        self.storage.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def pick(self, i: int) -> tuple[SpaceDID, SpaceModel]:
        spaces = list(self.model)
        space = spaces[i % len(spaces)]
        return space, self.model[space]

    @staticmethod
    def seen(m: SpaceModel, id: EntityId, how: str) -> int:
        current = m.current(id)[0]
        if how == "stale":
            revisions = m.revisions.get(id, [])
            return revisions[-2][0] if len(revisions) > 1 else current + 1
        return {"current": current, "zero": 0, "future": m.head + 1}[how]

    # --- rules ---------------------------------------------------------------------------

    @initialize()
    def first_space(self) -> None:
        self.create_space()

    @precondition(lambda self: len(self.model) < len(SPACES))
    @rule()
    def create_space(self) -> None:
        key = SPACE_KEYS[len(self.model)]
        space = key.did
        self.storage.create_space(space, OWNER, proof=creation_proof(key, OWNER))
        self.model[space] = SpaceModel()
        self.heard[space] = []
        self.storage.subscribe(space, self.heard[space].append)

    @rule(i=space_index, reads=reads_strategy, writes=writes_strategy)
    def commit(
        self, i: int, reads: dict[EntityId, str], writes: dict[EntityId, JSONValue | object]
    ) -> None:
        self.commit_as(i, reads, writes, grouped=False)

    @rule(i=space_index, reads=reads_strategy, writes=writes_strategy)
    def commit_grouped(
        self, i: int, reads: dict[EntityId, str], writes: dict[EntityId, JSONValue | object]
    ) -> None:
        self.commit_as(i, reads, writes, grouped=True)

    @rule(i=space_index, reads=reads_strategy, grouped=st.booleans())
    def commit_nothing(self, i: int, reads: dict[EntityId, str], grouped: bool) -> None:
        self.commit_as(i, reads, {}, grouped=grouped)

    def commit_as(
        self,
        i: int,
        reads: dict[EntityId, str],
        writes: dict[EntityId, JSONValue | object],
        *,
        grouped: bool,
    ) -> None:
        space, m = self.pick(i)
        seen = {id: self.seen(m, id, s) for id, s in reads.items()}
        stale = {id: s for id, s in seen.items() if s != m.current(id)[0]}
        outcomes: list[BaseException | None] = []
        commit = Commit(space, OWNER, writes, seen)  # type: ignore[arg-type]
        on_durable = outcomes.append if grouped else None

        if not writes:  # free: no seq, no validation, durable at once
            assert self.storage.commit(commit, on_durable=on_durable) == 0
            assert outcomes == ([None] if grouped else [])
            return
        if stale:
            with pytest.raises(ConflictError) as conflict:
                self.storage.commit(commit, on_durable=on_durable)
            error = conflict.value
            assert error.space == space and error.id in stale
            assert (error.expected_seq, error.actual_seq) == (
                stale[error.id],
                m.current(error.id)[0],
            )
            assert outcomes == []  # never told about an aborted commit
            if not (grouped and self.batches):
                m.make_durable()  # an ordinary commit makes the open group durable
            return

        seq = self.storage.commit(commit, on_durable=on_durable)
        m.apply(seq, writes)
        if grouped:
            self.durable_calls[(space, seq)] = outcomes
        if grouped and self.batches:
            m.pending.append(seq)
        else:
            m.make_durable(also=seq)

    @rule()
    def flush(self) -> None:
        self.scheduler.run()
        for m in self.model.values():
            m.make_durable()

    @rule(i=space_index, id=st.sampled_from(IDS), at=seqs)
    def read_in_the_past(self, i: int, id: EntityId, at: int) -> None:
        space, m = self.pick(i)
        rev = self.storage.read(space, id, OWNER, at=at)
        seq, value, deleted = m.at(id, min(at, m.durable_head))  # never past what is durable
        assert (rev.seq, rev.deleted) == (seq, deleted)
        assert same(rev.value, value)

    @rule(i=space_index, since=seqs, limit=st.integers(1, 5))
    def log_since(self, i: int, since: int, limit: int) -> None:
        space, m = self.pick(i)
        entries = self.storage.log(space, OWNER, since=since, limit=limit)
        expected = [e for e in m.log if since < e[0] <= m.durable_head][:limit]
        assert [(e.seq, e.ids) for e in entries] == expected
        assert all(e.principal == OWNER for e in entries)

    @precondition(lambda self: self.directory is not None)
    @rule()
    def reopen(self) -> None:
        """Close and open the directory again: everything, grouped commits too, persists."""
        self.storage.close()
        for m in self.model.values():
            m.make_durable()
        self.check_notifications()  # close flushed and announced the last group
        self.scheduler.requested.clear()  # flushes of the closed storage
        self.storage = self.open()
        self.storage.subscribe(None, self.heard_anywhere.append)
        for space, heard in self.heard.items():
            self.storage.subscribe(space, heard.append)

    @precondition(lambda self: self.directory is not None)
    @rule(i=space_index)
    def another_process_looks(self, i: int) -> None:
        """Another process sees exactly the durable commits, never a pending group."""
        space, m = self.pick(i)
        with open_storage(self.url) as other:
            assert other.head(space, OWNER) == m.durable_head
            for id in IDS:
                rev = other.read(space, id, OWNER)
                seq, value, deleted = m.at(id, m.durable_head)
                assert (rev.seq, rev.deleted) == (seq, deleted) and same(rev.value, value)

    @precondition(lambda self: self.directory is not None)
    @rule(i=space_index, writes=writes_strategy)
    def another_process_commits(self, i: int, writes: dict[EntityId, JSONValue | object]) -> None:
        """Its commit is durable, seen here and validated against; no one here hears of it."""
        space, m = self.pick(i)
        if m.pending:
            return  # our open group holds the space's write lock: it would wait for us
        with open_storage(self.url) as other:
            seq = other.commit(Commit(space, OWNER, writes))  # type: ignore[arg-type]
        m.apply(seq, writes)
        m.durable_head = seq

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def every_read_matches_the_model(self) -> None:
        """Reads here see the durable commits too: a pending group is validated against only."""
        for space, m in self.model.items():
            assert self.storage.head(space, OWNER) == m.durable_head
            assert [e.seq for e in self.storage.log(space, OWNER)] == [
                seq for seq, _ in m.log if seq <= m.durable_head
            ]
            for id in IDS:
                rev = self.storage.read(space, id, OWNER)
                seq, value, deleted = m.at(id, m.durable_head)
                assert (rev.seq, rev.deleted, rev.exists) == (seq, deleted, seq > 0 and not deleted)
                assert same(rev.value, value)

    @invariant()
    def check_notifications(self) -> None:
        """Durable commits are announced in seq order, once each; pending ones not yet."""
        for space, m in self.model.items():
            assert [c.seq for c in self.heard[space]] == m.announced
            ids = dict(m.log)
            assert all(c.space == space and c.ids == ids[c.seq] for c in self.heard[space])
            assert [c.seq for c in self.heard_anywhere if c.space == space] == m.announced
            for seq in m.announced:
                assert self.durable_calls.get((space, seq), [None]) == [None]
            for seq in m.pending:
                assert self.durable_calls[(space, seq)] == []
        if any(m.pending for m in self.model.values()):
            assert len(self.scheduler.requested) == 1  # one flush for the whole group
        assert len(self.scheduler.requested) <= 1


class SQLiteStorageMachine(StorageMachine):
    """The same machine on SQLite in a fresh directory, which it removes at the end."""

    on_disk = True


class OneFileSQLiteStorageMachine(SQLiteStorageMachine):
    """SQLite keeping one file open at a time: spaces are closed and reopened all along."""

    max_open = 1


@pytest.mark.parametrize(
    ("machine", "examples"),
    [(StorageMachine, 120), (SQLiteStorageMachine, 60), (OneFileSQLiteStorageMachine, 30)],
    ids=["memory", "sqlite", "sqlite-one-open-file"],
)
def test_storage_agrees_with_the_model(machine: type[StorageMachine], examples: int) -> None:
    run_state_machine_as_test(
        machine, settings=settings(max_examples=examples, stateful_step_count=50, deadline=None)
    )
