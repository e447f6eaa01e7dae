"""Rows: bookkeeping committed with documents, but kept outside their history."""

from __future__ import annotations

from typing import Any

import pytest

from charmspace.errors import AuthorizationError, ConflictError, InvalidIdError, LimitExceededError
from charmspace.identity import Identity
from charmspace.storage import DELETE, Capability, Change, Commit, Limits, Storage, open_storage
from charmspace.types import DID, SpaceDID

OWNER: DID = Identity.from_passphrase("storage suite: owner").did  # the suite's people
ALICE: DID = Identity.from_passphrase("storage suite: alice").did
BOB: DID = Identity.from_passphrase("storage suite: bob").did
SERVICE: DID = Identity.from_passphrase("storage suite: service").did

KEY = ("outbox charm", "000000000001")


def test_a_row_is_written_with_the_commit_and_records_its_writer(
    storage: Storage, space: SpaceDID
) -> None:
    seq = storage.commit(Commit(space, OWNER, {"doc": 1}, rows={KEY: {"n": 1}}))
    row = storage.row(space, *KEY, OWNER)
    assert row is not None
    assert (row.value, row.principal, row.version) == ({"n": 1}, OWNER, 1)
    assert [e.ids for e in storage.log(space, OWNER)] == [("doc",)]  # the row is not in it
    assert storage.head(space, OWNER) == seq


def test_a_commit_of_rows_only_takes_no_seq_and_notifies_no_one(
    storage: Storage, space: SpaceDID
) -> None:
    seen: list[Change] = []
    storage.subscribe(space, seen.append)
    assert storage.commit(Commit(space, OWNER, {}, rows={KEY: {"n": 1}})) == 0
    assert storage.commit(Commit(space, OWNER, {}, rows={KEY: DELETE})) == 0
    assert storage.row(space, *KEY, OWNER) is None
    assert storage.head(space, OWNER) == 0
    assert storage.log(space, OWNER) == []
    assert seen == []


def test_rows_are_listed_by_box_in_key_order(storage: Storage, space: SpaceDID) -> None:
    rows: dict[Any, Any] = {("box", f"{n:03d}"): n for n in (3, 1, 2)}
    rows[("other box", "000")] = 0
    storage.commit(Commit(space, OWNER, {}, rows=rows))
    assert [(k, r.value) for k, r in storage.rows(space, "box", OWNER)] == [
        ("001", 1),
        ("002", 2),
        ("003", 3),
    ]
    assert [k for k, _ in storage.rows(space, "box", OWNER, limit=1)] == ["001"]
    assert storage.rows(space, "no such box", OWNER) == []


def test_a_row_read_that_changed_since_makes_the_commit_conflict(
    storage: Storage, space: SpaceDID
) -> None:
    storage.commit(Commit(space, OWNER, {}, rows={KEY: {"n": 1}}))
    storage.commit(Commit(space, OWNER, {}, rows={KEY: {"n": 2}}))
    row = storage.row(space, *KEY, OWNER)
    assert row is not None and row.version == 2
    with pytest.raises(ConflictError) as error:
        storage.commit(Commit(space, OWNER, {"doc": 1}, rows={KEY: {"n": 3}}, row_reads={KEY: 1}))
    assert (error.value.expected_seq, error.value.actual_seq) == (1, 2)
    assert storage.row(space, *KEY, OWNER) == row  # nothing written
    assert not storage.read(space, "doc", OWNER).exists
    storage.commit(Commit(space, OWNER, {}, rows={KEY: {"n": 3}}, row_reads={KEY: 2}))
    with pytest.raises(ConflictError):  # read as absent, written since
        storage.commit(Commit(space, OWNER, {}, rows={("b", "k"): 1, KEY: 4}, row_reads={KEY: 0}))
    assert storage.row(space, "b", "k", OWNER) is None


def test_rows_need_read_to_read_and_write_to_write(storage: Storage, space: SpaceDID) -> None:
    storage.set_acl(space, OWNER, ALICE, Capability.READ)
    storage.commit(Commit(space, OWNER, {}, rows={KEY: {"secret": "s3cret"}}))
    assert storage.row(space, *KEY, ALICE) is not None
    with pytest.raises(AuthorizationError):
        storage.row(space, *KEY, BOB)
    with pytest.raises(AuthorizationError):
        storage.rows(space, KEY[0], BOB)
    with pytest.raises(AuthorizationError):
        storage.commit(Commit(space, ALICE, {}, rows={KEY: DELETE}))
    assert storage.row(space, *KEY, OWNER) is not None


@pytest.mark.parametrize("key", [("box",), ("", "k"), ("box", 7), "box key", ("box", "k" * 2000)])
def test_a_row_key_that_is_not_two_short_strings_is_refused(
    storage: Storage, space: SpaceDID, key: Any
) -> None:
    with pytest.raises((InvalidIdError, LimitExceededError)):
        storage.commit(Commit(space, OWNER, {"doc": 1}, rows={key: 1}))
    assert storage.head(space, OWNER) == 0


def test_a_row_past_the_document_limit_is_refused(storage_url: str, new_space: Any) -> None:
    with open_storage(storage_url, service=SERVICE, limits=Limits(max_document_bytes=100)) as s:
        space = new_space(s, OWNER)
        with pytest.raises(LimitExceededError) as error:
            s.commit(Commit(space, OWNER, {}, rows={KEY: "x" * 200}))
        assert "row" in str(error.value)
        assert s.row(space, *KEY, OWNER) is None


def test_rows_survive_a_reopen_and_pruning(reopen: Any, new_space: Any) -> None:
    storage = reopen()
    space = new_space(storage, OWNER)
    storage.commit(Commit(space, OWNER, {"doc": 0}, rows={KEY: {"n": 1}}))
    for n in range(1, 20):
        storage.commit(Commit(space, OWNER, {"doc": n}))
    storage.prune(space, OWNER, before=storage.head(space, OWNER))
    again = reopen(storage)
    row = again.row(space, *KEY, OWNER)
    assert row is not None and (row.value, row.principal) == ({"n": 1}, OWNER)
