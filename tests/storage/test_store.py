"""The storage behaviour suite: every test runs on every backend.

A backend is done when it passes all of it. Tests at the end marked "SQLite
only" cover what only a backend on disk can do (reopen, several processes,
files).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charmspace.errors import (
    AuthorizationError,
    ConflictError,
    CorruptStorageError,
    HistoryPrunedError,
    IdentityError,
    LimitExceededError,
    NotJSONError,
    SpaceExistsError,
    SpaceNotFoundError,
    StorageURLError,
)
from charmspace.identity import Identity
from charmspace.storage import (
    ANYONE,
    DELETE,
    MISSING,
    Capability,
    Change,
    Commit,
    Limits,
    Storage,
    creation_proof,
    entity_id,
    open_storage,
)
from charmspace.types import DID, JSONValue, SpaceDID
from charmspace.values import MAX_INTEGER

NewSpace = Callable[..., SpaceDID]

X = entity_id({"test": "x"})
Y = entity_id({"test": "y"})
Z = entity_id({"test": "z"})
SECRET = "ya29.SECRET-access-token-do-not-leak"


def write(storage: Storage, space: SpaceDID, principal: DID, **values: JSONValue) -> int:
    """Commit ``values`` (keyword names are looked up as X, Y, Z) blindly."""
    ids = {"x": X, "y": Y, "z": Z}
    return storage.commit(Commit(space, principal, {ids[k]: v for k, v in values.items()}))


def collect(storage: Storage, space: SpaceDID | None) -> list[Change]:
    changes: list[Change] = []
    storage.subscribe(space, changes.append)
    return changes


# --- spaces and access control ------------------------------------------------------


def test_a_new_space_is_closed_to_strangers(
    storage: Storage, space: SpaceDID, owner: DID, alice: DID
) -> None:
    with pytest.raises(AuthorizationError) as read:
        storage.read(space, X, alice)
    assert (read.value.principal, read.value.space, read.value.needed) == (alice, space, "READ")

    with pytest.raises(AuthorizationError) as wrote:
        write(storage, space, alice, x=1)
    assert (wrote.value.principal, wrote.value.space, wrote.value.needed) == (alice, space, "WRITE")
    assert alice in str(wrote.value) and "WRITE" in str(wrote.value)

    assert storage.head(space, owner) == 0
    assert storage.read(space, X, owner) == MISSING
    assert storage.space(space, owner).acl == {}


def test_a_refused_access_check_says_what_was_refused_and_how_to_be_let_in(
    storage: Storage, space: SpaceDID, owner: DID, alice: DID
) -> None:
    """Regression: storage.space() refused a stranger "to read the ACL", and said only
    to ask the owner, without naming how the owner grants it."""
    with pytest.raises(AuthorizationError) as err:
        storage.space(space, alice)
    message = str(err.value)
    assert "the ACL" not in message
    assert f"not allowed to read its owner and grants in space {space}" in message
    assert f"`charmspace --space {space} space acl set {alice} READ`" in message
    assert "storage.set_acl(space, owner, principal, Capability.READ)" in message
    assert "Act as an identity that has READ there" in message

    storage.set_acl(space, owner, alice, Capability.READ)  # what the message says to do
    assert storage.space(space, alice).owner == owner


def test_the_owner_reads_and_writes(storage: Storage, space: SpaceDID, owner: DID) -> None:
    assert write(storage, space, owner, x={"n": 1}) == 1
    rev = storage.read(space, X, owner)
    assert (rev.value, rev.seq, rev.exists) == ({"n": 1}, 1, True)
    assert storage.space(space, owner).owner == owner


def test_only_the_owner_changes_the_acl(
    storage: Storage, space: SpaceDID, owner: DID, alice: DID, bob: DID
) -> None:
    storage.set_acl(space, owner, alice, Capability.WRITE)
    with pytest.raises(AuthorizationError) as err:
        storage.set_acl(space, alice, bob, Capability.READ)
    assert (err.value.principal, err.value.needed) == (alice, "OWNER")
    assert storage.space(space, owner).acl == {alice: Capability.WRITE}

    storage.set_acl(space, owner, alice, None)
    assert storage.space(space, owner).acl == {}
    with pytest.raises(AuthorizationError):
        storage.read(space, X, alice)


def test_an_acl_subject_must_be_a_did_or_anyone(
    storage: Storage, space: SpaceDID, owner: DID
) -> None:
    with pytest.raises(IdentityError):
        storage.set_acl(space, owner, "bob", Capability.READ)


@pytest.mark.parametrize(
    ("granted", "can_read", "can_write", "can_own"),
    [
        (Capability.READ, True, False, False),
        (Capability.WRITE, True, True, False),
        (Capability.OWNER, True, True, True),
    ],
)
def test_each_capability_includes_the_ones_below(
    storage: Storage,
    space: SpaceDID,
    owner: DID,
    alice: DID,
    bob: DID,
    granted: Capability,
    can_read: bool,
    can_write: bool,
    can_own: bool,
) -> None:
    storage.set_acl(space, owner, alice, granted)

    def allowed(action: Callable[[], object]) -> bool:
        try:
            action()
        except AuthorizationError:
            return False
        return True

    assert allowed(lambda: storage.read(space, X, alice)) is can_read
    assert allowed(lambda: write(storage, space, alice, x=1)) is can_write
    assert allowed(lambda: storage.set_acl(space, alice, bob, Capability.READ)) is can_own
    assert allowed(lambda: storage.prune(space, alice, before=1)) is can_own


def test_a_grant_to_anyone_applies_to_every_principal(
    storage: Storage, space: SpaceDID, owner: DID, alice: DID, bob: DID
) -> None:
    write(storage, space, owner, x="public")
    storage.set_acl(space, owner, ANYONE, Capability.READ)
    storage.set_acl(space, owner, bob, Capability.WRITE)

    assert storage.read(space, X, alice).value == "public"
    with pytest.raises(AuthorizationError):
        write(storage, space, alice, x="vandalism")
    assert write(storage, space, bob, x="edited") == 2  # the larger grant wins


def test_a_revocation_holds_for_a_principal_that_was_just_let_in(
    storage: Storage, space: SpaceDID, owner: DID, alice: DID
) -> None:
    """Regression: access checks remember the record they let through; a new ACL is a new record."""
    storage.set_acl(space, owner, alice, Capability.WRITE)
    for _ in range(3):  # let in again and again under the same record
        write(storage, space, alice, x="mine")
        assert storage.read(space, X, alice).value == "mine"
    storage.set_acl(space, owner, alice, Capability.READ)
    assert storage.read(space, X, alice).value == "mine"
    with pytest.raises(AuthorizationError):
        write(storage, space, alice, x="again")
    storage.set_acl(space, owner, alice, None)
    with pytest.raises(AuthorizationError):
        storage.read(space, X, alice)


def test_each_use_of_the_service_identity_is_logged(
    storage: Storage, space: SpaceDID, service: DID, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="charmspace.storage.store")
    for _ in range(3):
        storage.read(space, X, service)
    used = [r for r in caplog.records if r.getMessage() == "service identity used"]
    assert len(used) == 3


def test_the_service_identity_is_allowed_everywhere(
    storage: Storage, space: SpaceDID, owner: DID, service: DID
) -> None:
    assert write(storage, space, service, x=1) == 1
    assert storage.read(space, X, service).value == 1
    assert storage.log(space, service)[0].principal == service
    storage.set_acl(space, service, ANYONE, Capability.READ)
    assert storage.space(space, owner).acl == {ANYONE: Capability.READ}


def test_creating_a_space_twice_is_refused(storage: Storage, alice: DID) -> None:
    key = Identity.generate()
    storage.create_space(key.did, alice, proof=creation_proof(key, alice))
    for space, proof in ((key.did, creation_proof(key, alice)), (alice, None)):
        if space == alice:
            storage.create_space(alice, alice)  # a home space needs no proof
        with pytest.raises(SpaceExistsError) as err:
            storage.create_space(space, alice, proof=proof)
        assert err.value.space == space


def test_a_space_is_named_by_a_did(storage: Storage, owner: DID) -> None:
    with pytest.raises(IdentityError):
        storage.create_space("notes", owner)
    with pytest.raises(IdentityError):
        storage.create_space("did:key:z6Mk../../escape", owner)
    assert storage.spaces(owner) == []


def test_spaces_lists_what_a_principal_can_read(
    storage: Storage, owner: DID, alice: DID, new_space: NewSpace
) -> None:
    mine = new_space(storage, owner)
    shared = new_space(storage, owner, {alice: Capability.READ})
    theirs = new_space(storage, alice)
    assert sorted(r.space for r in storage.spaces(owner)) == sorted([mine, shared])
    assert sorted(r.space for r in storage.spaces(alice)) == sorted([shared, theirs])


def test_deleting_a_space_needs_owner_and_removes_it(
    storage: Storage, owner: DID, alice: DID
) -> None:
    key = Identity.generate()
    space = key.did
    storage.create_space(space, owner, proof=creation_proof(key, owner))
    write(storage, space, owner, x=1)
    storage.set_acl(space, owner, alice, Capability.WRITE)
    with pytest.raises(AuthorizationError):
        storage.delete_space(space, alice)

    storage.delete_space(space, owner)
    assert not storage.has_space(space)
    assert storage.spaces(owner) == []
    with pytest.raises(SpaceNotFoundError):
        storage.read(space, X, owner)

    # The DID is free again, for whoever holds its key, and the space is empty.
    storage.create_space(space, alice, proof=creation_proof(key, alice))
    assert storage.read(space, X, alice) == MISSING
    assert storage.head(space, alice) == 0


def test_an_unknown_space_is_not_found(storage: Storage, owner: DID) -> None:
    unknown = Identity.generate().did
    for action in (
        lambda: storage.read(unknown, X, owner),
        lambda: storage.head(unknown, owner),
        lambda: storage.log(unknown, owner),
        lambda: write(storage, unknown, owner, x=1),
        lambda: storage.read("../../etc/passwd", X, owner),
    ):
        with pytest.raises(SpaceNotFoundError):
            action()
    assert not storage.has_space(unknown)


# --- commits -------------------------------------------------------------------------


def test_commits_are_numbered_per_space(
    storage: Storage, space: SpaceDID, owner: DID, new_space: NewSpace
) -> None:
    other = new_space(storage, owner)
    assert [write(storage, space, owner, x=i) for i in range(3)] == [1, 2, 3]
    assert write(storage, other, owner, x="first") == 1
    assert storage.head(space, owner) == 3
    assert storage.head(other, owner) == 1
    assert storage.read(other, X, owner).value == "first"
    assert storage.read(space, X, owner).value == 2


def test_a_commit_writes_every_document_under_one_seq(
    storage: Storage, space: SpaceDID, owner: DID
) -> None:
    assert write(storage, space, owner, x=1, y=[2], z={"three": 3}) == 1
    revs = [storage.read(space, id, owner) for id in (X, Y, Z)]
    assert [(r.value, r.seq) for r in revs] == [(1, 1), ([2], 1), ({"three": 3}, 1)]


def test_a_conflict_writes_nothing_and_names_seqs_not_values(
    storage: Storage, space: SpaceDID, owner: DID, alice: DID
) -> None:
    storage.set_acl(space, owner, alice, Capability.WRITE)
    write(storage, space, owner, x={"token": "old"})
    seen = storage.read(space, X, owner).seq
    write(storage, space, alice, x={"token": SECRET})  # someone else wrote since

    with pytest.raises(ConflictError) as err:
        storage.commit(
            Commit(space, owner, {X: {"token": SECRET + "!"}, Y: "also"}, reads={X: seen})
        )
    error = err.value
    assert (error.space, error.id, error.expected_seq, error.actual_seq) == (space, X, 1, 2)
    assert SECRET not in str(error) and SECRET not in repr(error)
    assert "token" not in str(error)
    assert storage.head(space, owner) == 2
    assert storage.read(space, X, owner).value == {"token": SECRET}
    assert storage.read(space, Y, owner) == MISSING


def test_reading_a_missing_document_conflicts_once_it_exists(
    storage: Storage, space: SpaceDID, owner: DID
) -> None:
    assert storage.read(space, X, owner).seq == 0
    write(storage, space, owner, x="created")
    with pytest.raises(ConflictError) as err:
        storage.commit(Commit(space, owner, {X: "mine"}, reads={X: 0}))
    assert (err.value.expected_seq, err.value.actual_seq) == (0, 1)


def test_a_commit_whose_reads_are_current_succeeds(
    storage: Storage, space: SpaceDID, owner: DID
) -> None:
    write(storage, space, owner, x=1, y=1)
    write(storage, space, owner, y=2)  # changes Y, not X
    seq = storage.commit(Commit(space, owner, {X: 2}, reads={X: 1, Z: 0}))
    assert seq == 3
    assert storage.read(space, X, owner).value == 2


def test_a_blind_write_never_conflicts(storage: Storage, space: SpaceDID, owner: DID) -> None:
    write(storage, space, owner, x=1)
    write(storage, space, owner, x=2)
    assert storage.commit(Commit(space, owner, {X: 3})) == 3
    assert storage.read(space, X, owner).value == 3


def test_delete_removes_the_value_and_keeps_history(
    storage: Storage, space: SpaceDID, owner: DID
) -> None:
    write(storage, space, owner, x="here")
    assert storage.commit(Commit(space, owner, {X: DELETE}, reads={X: 1})) == 2
    gone = storage.read(space, X, owner)
    assert (gone.value, gone.seq, gone.deleted, gone.exists) == (None, 2, True, False)
    assert storage.read(space, X, owner, at=1).value == "here"

    with pytest.raises(ConflictError):  # a reader that saw it before the delete
        storage.commit(Commit(space, owner, {X: "again"}, reads={X: 1}))
    assert storage.commit(Commit(space, owner, {X: "again"}, reads={X: 2})) == 3
    assert storage.read(space, X, owner).exists


def test_an_empty_commit_is_free(storage: Storage, space: SpaceDID, owner: DID) -> None:
    changes = collect(storage, space)
    write(storage, space, owner, x=1)
    assert storage.commit(Commit(space, owner, {}, reads={X: 1}, meta={"why": "nothing"})) == 0
    assert storage.head(space, owner) == 1
    assert [e.seq for e in storage.log(space, owner)] == [1]
    assert [c.seq for c in changes] == [1]


def test_point_in_time_reads(storage: Storage, space: SpaceDID, owner: DID) -> None:
    write(storage, space, owner, y="unrelated")
    write(storage, space, owner, x="v2")
    write(storage, space, owner, y="unrelated again")
    write(storage, space, owner, x="v4")
    storage.commit(Commit(space, owner, {X: DELETE}))

    def at(seq: int) -> tuple[JSONValue, int, bool]:
        rev = storage.read(space, X, owner, at=seq)
        return rev.value, rev.seq, rev.deleted

    assert at(1) == (None, 0, False)
    assert at(2) == at(3) == ("v2", 2, False)
    assert at(4) == ("v4", 4, False)
    assert at(5) == at(99) == (None, 5, True)
    assert storage.read(space, X, owner) == storage.read(space, X, owner, at=5)


def test_the_log_lists_who_wrote_which_ids_without_values(
    storage: Storage, space: SpaceDID, owner: DID, alice: DID
) -> None:
    storage.set_acl(space, owner, alice, Capability.WRITE)
    storage.commit(Commit(space, owner, {X: SECRET, Y: 1}, meta={"event": "first"}))
    storage.commit(Commit(space, alice, {Z: SECRET}, meta={"event": "second", "n": [1, 2]}))
    storage.commit(Commit(space, owner, {X: DELETE}))

    entries = storage.log(space, owner)
    assert [(e.seq, e.principal, set(e.ids)) for e in entries] == [
        (1, owner, {X, Y}),
        (2, alice, {Z}),
        (3, owner, {X}),
    ]
    assert [e.meta for e in entries] == [{"event": "first"}, {"event": "second", "n": [1, 2]}, {}]
    assert all(e.time > 0 for e in entries)
    assert SECRET not in repr(entries)

    assert [e.seq for e in storage.log(space, owner, since=1)] == [2, 3]
    assert [e.seq for e in storage.log(space, owner, since=1, limit=1)] == [2]
    assert storage.log(space, owner, since=3) == []


def test_values_read_are_frozen(storage: Storage, space: SpaceDID, owner: DID) -> None:
    write(storage, space, owner, x={"items": [1, 2], "name": "a"})
    value = storage.read(space, X, owner).value
    assert isinstance(value, dict) and isinstance(value["items"], list)
    with pytest.raises(TypeError):
        value["name"] = "b"
    with pytest.raises(TypeError):
        value["items"].append(3)
    assert storage.read(space, X, owner).value == {"items": [1, 2], "name": "a"}


def test_a_value_committed_cannot_be_changed_afterwards(
    storage: Storage, space: SpaceDID, owner: DID
) -> None:
    mutable = {"items": [1]}
    write(storage, space, owner, x=mutable)
    mutable["items"].append(2)
    assert storage.read(space, X, owner).value == {"items": [1]}


@pytest.mark.parametrize(
    "bad",
    [
        {1, 2},
        object(),
        float("nan"),
        {"k": b"bytes"},
        {1: "int key"},
        {"k": "caf\udce9"},  # a lone surrogate: was a bare UnicodeEncodeError on SQLite
        {"k": [2**53]},  # beyond what JSON readers hold exactly
    ],
)
def test_non_json_values_are_refused_with_nothing_written(
    storage: Storage, space: SpaceDID, owner: DID, bad: object
) -> None:
    changes = collect(storage, space)
    with pytest.raises(TypeError) as err:
        storage.commit(Commit(space, owner, {X: "fine", Y: bad}))  # type: ignore[dict-item]
    assert isinstance(err.value, NotJSONError)
    assert storage.head(space, owner) == 0
    assert storage.read(space, X, owner) == MISSING
    assert changes == []


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_INTEGER, MAX_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=JSON)
def test_any_json_value_round_trips(
    storage: Storage, space: SpaceDID, owner: DID, value: JSONValue
) -> None:
    doc = entity_id({"round trip": value})
    seq = storage.commit(Commit(space, owner, {doc: value}))
    assert storage.read(space, doc, owner).value == value
    assert storage.read(space, doc, owner, at=seq).value == value


# --- limits ------------------------------------------------------------------------


@pytest.fixture
def small(storage_url: str, tmp_path: Path) -> Storage:
    """A storage with tiny limits, on the same kind of backend."""
    url = storage_url if storage_url == "memory://" else f"sqlite://{tmp_path / 'small'}"
    limits = Limits(max_document_bytes=100, max_commit_bytes=250, max_commit_writes=3)
    return open_storage(url, limits=limits)


@pytest.mark.parametrize(
    ("writes", "limit"),
    [
        ({X: "a" * 101}, "document"),
        ({X: "é" * 50}, "document"),  # 100 characters, 102 bytes of UTF-8 with the quotes
        ({X: 1, Y: 2, Z: 3, entity_id("four"): 4}, "number of writes"),
        ({X: "a" * 90, Y: "b" * 90, Z: "c" * 90}, "size of the commit"),
    ],
)
def test_past_a_limit_nothing_is_written(
    small: Storage, owner: DID, writes: dict[str, JSONValue], limit: str, new_space: NewSpace
) -> None:
    with small:
        space = new_space(small, owner)
        changes = collect(small, space)
        with pytest.raises(LimitExceededError) as err:
            small.commit(Commit(space, owner, writes))
        assert limit in str(err.value) and err.value.actual > err.value.allowed
        assert small.head(space, owner) == 0
        assert all(small.read(space, id, owner) == MISSING for id in writes)
        assert changes == []
        assert small.commit(Commit(space, owner, {X: "a" * 98})) == 1  # just under is fine


# --- notifications -------------------------------------------------------------------


def test_subscribers_hear_each_commit_once_in_order(
    storage: Storage, space: SpaceDID, owner: DID, new_space: NewSpace
) -> None:
    other = new_space(storage, owner)
    here, everywhere = collect(storage, space), collect(storage, None)

    write(storage, space, owner, x=1, y=1)
    write(storage, other, owner, z=1)
    write(storage, space, owner, y=2)

    assert [(c.seq, set(c.ids)) for c in here] == [(1, {X, Y}), (2, {Y})]
    assert all(c.space == space for c in here)
    assert [(c.space, c.seq) for c in everywhere] == [(space, 1), (other, 1), (space, 2)]


def test_refused_commits_notify_nobody(
    storage: Storage, space: SpaceDID, owner: DID, alice: DID
) -> None:
    write(storage, space, owner, x=1)
    changes = collect(storage, None)
    with pytest.raises(ConflictError):
        storage.commit(Commit(space, owner, {X: 2}, reads={X: 0}))
    with pytest.raises(AuthorizationError):
        write(storage, space, alice, x=3)
    storage.limits = Limits(max_commit_writes=1)
    with pytest.raises(LimitExceededError):
        write(storage, space, owner, x=4, y=4)
    assert changes == []


def test_a_failing_subscriber_does_not_undo_the_commit_or_starve_others(
    storage: Storage, space: SpaceDID, owner: DID
) -> None:
    def broken(change: Change) -> None:
        raise RuntimeError("subscriber bug")

    storage.subscribe(space, broken)
    changes = collect(storage, space)
    assert write(storage, space, owner, x=1) == 1
    assert [c.seq for c in changes] == [1]
    assert storage.read(space, X, owner).value == 1


def test_unsubscribe_stops_notifications(storage: Storage, space: SpaceDID, owner: DID) -> None:
    changes: list[Change] = []
    unsubscribe = storage.subscribe(space, changes.append)
    write(storage, space, owner, x=1)
    unsubscribe()
    unsubscribe()  # twice is harmless
    write(storage, space, owner, x=2)
    assert [c.seq for c in changes] == [1]


# --- history retention -----------------------------------------------------------------


def test_prune_drops_old_revisions_and_keeps_current_values(
    storage: Storage, space: SpaceDID, owner: DID
) -> None:
    write(storage, space, owner, x=1, y="only")  # 1
    write(storage, space, owner, x=2)  # 2
    write(storage, space, owner, x=3, z="doomed")  # 3
    storage.commit(Commit(space, owner, {Z: DELETE}))  # 4
    write(storage, space, owner, x=5)  # 5

    # X@1, X@2, X@3 and Z@3 go; Y@1 is current and stays. Z@4, a deletion older than
    # the horizon with nothing before it, goes too: Z reads as never written.
    assert storage.prune(space, owner, before=5) == 5
    assert storage.read(space, X, owner).value == 5
    assert storage.read(space, Y, owner).value == "only"  # current, though older than 5
    assert storage.read(space, Z, owner) == MISSING
    assert storage.read(space, Y, owner, at=5).value == "only"
    assert storage.read(space, Z, owner, at=5) == MISSING
    assert storage.horizon(space, owner) == 5
    assert storage.prune(space, owner, before=5) == 0


def test_a_read_older_than_the_horizon_is_refused_naming_it(
    storage: Storage, space: SpaceDID, owner: DID
) -> None:
    """Regression: after prune(before=5), X as of seq 4 read as "did not exist" (it was 3)."""
    write(storage, space, owner, x=1)  # 1
    write(storage, space, owner, x=2)  # 2
    write(storage, space, owner, y="other")  # 3
    storage.prune(space, owner, before=3)
    assert storage.read(space, X, owner, at=3).value == 2  # X as of the horizon is kept
    with pytest.raises(HistoryPrunedError) as error:
        storage.read(space, X, owner, at=2)
    assert (error.value.at, error.value.horizon) == (2, 3)
    assert "keeps history from seq 3 on" in str(error.value)
    assert storage.prune(space, owner, before=1) == 0  # the horizon never moves back
    assert storage.horizon(space, owner) == 3
    assert storage.prune(space, owner, before=99) == 0  # nor past the head
    assert storage.horizon(space, owner) == 3


def test_pruning_keeps_the_log_of_every_revision_still_stored(
    storage: Storage, space: SpaceDID, owner: DID, alice: DID
) -> None:
    """The outbox asks who committed a document's current revision, however old it is."""
    storage.set_acl(space, owner, alice, Capability.WRITE)
    write(storage, space, alice, y="by alice")  # 1
    for i in range(5):
        write(storage, space, owner, x=i)  # 2..6
    storage.prune(space, owner, before=6)
    assert [e.seq for e in storage.log(space, owner)] == [1, 6]
    assert storage.committer(space, 1, owner) == alice


# --- concurrency --------------------------------------------------------------------------


def increment(storage: Storage, space: SpaceDID, principal: DID, times: int) -> int:
    """Read-modify-write ``times`` increments, retrying on conflict; returns the retries."""
    retries = 0
    for _ in range(times):
        while True:
            rev = storage.read(space, X, principal)
            n = rev.value["n"] if isinstance(rev.value, dict) else 0
            try:
                storage.commit(Commit(space, principal, {X: {"n": n + 1}}, reads={X: rev.seq}))
                break
            except ConflictError:
                retries += 1
    return retries


def run_threads(targets: list[Callable[[], object]]) -> None:
    errors: list[BaseException] = []

    def run(target: Callable[[], object]) -> None:
        try:
            target()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_concurrent_increments_from_threads_are_never_lost(
    storage: Storage, space: SpaceDID, owner: DID
) -> None:
    threads, times = 8, 50
    changes = collect(storage, space)
    run_threads([partial(increment, storage, space, owner, times)] * threads)
    assert storage.read(space, X, owner).value == {"n": threads * times}
    assert storage.head(space, owner) == threads * times
    assert [c.seq for c in changes] == list(range(1, threads * times + 1))


async def test_concurrent_increments_from_tasks_are_never_lost(
    storage: Storage, space: SpaceDID, owner: DID
) -> None:
    await asyncio.gather(
        *(asyncio.to_thread(increment, storage, space, owner, 25) for _ in range(8))
    )
    assert storage.read(space, X, owner).value == {"n": 200}


# --- SQLite only -------------------------------------------------------------------------


def test_sqlite_keeps_everything_across_a_reopen(
    reopen: Callable[..., Storage], owner: DID, alice: DID, new_space: NewSpace
) -> None:
    first = reopen()
    space = new_space(first, owner, {alice: Capability.READ})
    first.set_acl(space, owner, ANYONE, Capability.READ)
    first.commit(Commit(space, owner, {X: {"v": 1}, Y: [1]}, meta={"event": "one"}))
    first.commit(Commit(space, owner, {X: {"v": 2}}))
    first.commit(Commit(space, owner, {Y: DELETE}))

    again = reopen(first)
    record = again.space(space, owner)
    assert (record.owner, record.acl) == (owner, {alice: Capability.READ, ANYONE: Capability.READ})
    assert again.head(space, owner) == 3
    assert again.read(space, X, alice).value == {"v": 2}
    assert again.read(space, X, owner, at=1).value == {"v": 1}
    assert again.read(space, Y, owner).deleted
    assert [(e.seq, e.meta) for e in again.log(space, owner)] == [
        (1, {"event": "one"}),
        (2, {}),
        (3, {}),
    ]
    assert again.commit(Commit(space, owner, {X: {"v": 4}}, reads={X: 2})) == 4
    assert [r.space for r in again.spaces(owner)] == [space]


def test_sqlite_two_processes_see_each_others_commits(
    reopen: Callable[..., Storage], owner: DID, new_space: NewSpace
) -> None:
    one, two = reopen(), reopen()
    space = new_space(one, owner)
    one.commit(Commit(space, owner, {X: "from one"}))

    assert two.read(space, X, owner).value == "from one"  # two caches it now
    one.commit(Commit(space, owner, {X: "one again"}))
    assert two.read(space, X, owner).value == "one again"
    assert two.head(space, owner) == 2

    stale = one.read(space, X, owner)
    two.commit(Commit(space, owner, {X: "from two"}, reads={X: stale.seq}))
    with pytest.raises(ConflictError) as err:
        one.commit(Commit(space, owner, {X: "lost update"}, reads={X: stale.seq}))
    assert (err.value.expected_seq, err.value.actual_seq) == (2, 3)
    assert one.read(space, X, owner).value == "from two"  # the commit's check refreshed it
    assert one.commit(Commit(space, owner, {Y: 1})) == 4  # the seq continues across both


def test_sqlite_two_processes_increment_without_losing_updates(
    reopen: Callable[..., Storage], owner: DID, new_space: NewSpace
) -> None:
    stores = [reopen(), reopen()]
    space = new_space(stores[0], owner)
    run_threads([partial(increment, s, space, owner, 50) for s in stores for _ in range(4)])
    assert stores[0].read(space, X, owner).value == {"n": 400}
    assert stores[1].read(space, X, owner).value == {"n": 400}


def test_sqlite_a_read_sees_every_commit_acknowledged_before_it(
    reopen: Callable[..., Storage], owner: DID, monkeypatch: pytest.MonkeyPatch, new_space: NewSpace
) -> None:
    # However little time passes between another process's commit and the read:
    # reads once trusted their cache for a millisecond, long enough for the final
    # read of the increments test above to see n=388 of 400. The clock is stopped
    # here, so that no time passes at all.
    monkeypatch.setattr(time, "monotonic", lambda: 0.0)
    one, two = reopen(), reopen()
    space = new_space(one, owner)
    for n in range(1, 5):
        writer, reader = (one, two) if n % 2 else (two, one)
        seen = reader.read(space, X, owner)  # the reader has it cached now
        writer.commit(Commit(space, owner, {X: n}, reads={X: seen.seq}))
        assert reader.read(space, X, owner).value == n

    # Inside its own open group (which holds the write lock) a reader need not ask:
    # it saw everything acknowledged before the group began.
    one.commit(Commit(space, owner, {X: "before the group"}))
    flushes: list[Callable[[], None]] = []
    two.flush_scheduler = flushes.append
    two.commit(Commit(space, owner, {Y: 1}), on_durable=lambda error: None)
    assert two.read(space, X, owner).value == "before the group"
    flushes.pop()()
    assert one.read(space, Y, owner).value == 1


def test_sqlite_durability_full(tmp_path: Path, owner: DID, new_space: NewSpace) -> None:
    url = f"sqlite://{tmp_path}?durability=full"
    with open_storage(url) as storage:
        space = new_space(storage, owner)
        assert storage.commit(Commit(space, owner, {X: 1})) == 1
    with open_storage(f"sqlite://{tmp_path}", durability="full") as storage:
        assert storage.read(space, X, owner).value == 1


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///tmp/x?durability=sometimes", "ftp://host/dir", "/just/a/path", ""],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(StorageURLError) as err:
        open_storage(url)
    assert err.value.url == url


def test_sqlite_a_garbage_file_named_like_a_space_is_a_clear_error(
    reopen: Callable[..., Storage], sqlite_dir: Path, owner: DID, new_space: NewSpace
) -> None:
    storage = reopen()
    keys = {key.did: key for key in (Identity.generate(), Identity.generate())}
    garbage, foreign = keys
    new_space(storage, owner)
    (sqlite_dir / (garbage.replace(":", "_") + ".sqlite")).write_bytes(b"not a database " * 100)
    with sqlite3.connect(sqlite_dir / (foreign.replace(":", "_") + ".sqlite")) as db:
        db.execute("CREATE TABLE notes (text)")
    db.close()

    for space in (garbage, foreign):
        with pytest.raises(CorruptStorageError) as err:
            storage.read(space, X, owner)
        assert err.value.space == space and space.replace(":", "_") in str(err.value)
        with pytest.raises(CorruptStorageError):
            storage.create_space(space, owner, proof=creation_proof(keys[space], owner))
        assert space.replace(":", "_") in str(err.value)  # never overwritten
    # one bad file does not hide the good spaces from everyone
    assert [r.owner for r in storage.spaces(owner)] == [owner]


def test_sqlite_an_interrupted_create_leaves_no_space_and_nothing_in_the_way(
    reopen: Callable[..., Storage], sqlite_dir: Path, owner: DID
) -> None:
    """A space is written under a temporary name and linked into place when complete."""
    storage = reopen()
    key = Identity.generate()
    space = key.did
    leftover = sqlite_dir / f".{space.replace(':', '_')}.sqlite.0123456789abcdef.new"
    leftover.write_bytes(b"")  # what a crash while writing the new space leaves
    assert not storage.has_space(space)
    assert storage.spaces(owner) == []
    storage.create_space(space, owner, proof=creation_proof(key, owner))
    assert storage.commit(Commit(space, owner, {X: 1})) == 1


def test_sqlite_files_stay_inside_the_directory_and_go_with_the_space(
    reopen: Callable[..., Storage], sqlite_dir: Path, owner: DID, new_space: NewSpace
) -> None:
    storage = reopen()
    space = new_space(storage, owner)
    storage.commit(Commit(space, owner, {X: 1}))
    assert all(p.name.startswith(space.replace(":", "_")) for p in sqlite_dir.iterdir())
    (sqlite_dir / "notes.txt").write_text("not a space")
    assert [r.space for r in storage.spaces(owner)] == [space]

    storage.delete_space(space, owner)
    assert [p.name for p in sqlite_dir.iterdir()] == ["notes.txt"]


def test_sqlite_closes_idle_files_and_reopens_them(
    reopen: Callable[..., Storage], owner: DID, new_space: NewSpace
) -> None:
    storage = reopen()
    storage.backend.max_open = 2  # type: ignore[attr-defined]
    spaces = [new_space(storage, owner) for _ in range(6)]

    run_threads([partial(increment, storage, s, owner, 20) for s in spaces])
    assert [storage.read(s, X, owner).value for s in spaces] == [{"n": 20}] * 6
    open_files = list(Path("/proc/self/fd").iterdir()) if Path("/proc/self/fd").exists() else []
    names = {str(p.readlink()) for p in open_files if p.exists()}
    assert sum(n.endswith(".sqlite") for n in names) <= 2 or not open_files


def test_sqlite_close_is_idempotent(reopen: Callable[..., Storage], owner: DID) -> None:
    storage = reopen()
    storage.close()
    storage.close()
