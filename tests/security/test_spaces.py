"""Attacks on spaces, and how storage refuses them.

Storage trusts the acting principal it is given (the layer above authenticates
it) and nothing else: not a claim to a space named by someone else's key, not
a missing principal, not a record it read before another process changed it,
not an empty file where a space used to be. Each test is one attack.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from charmspace import Runtime
from charmspace.errors import (
    AuthorizationError,
    CorruptStorageError,
    MissingPrincipalError,
    SpaceClaimError,
    SpaceNotFoundError,
)
from charmspace.identity import Identity
from charmspace.storage import (
    ANYONE,
    MISSING,
    Capability,
    Commit,
    Storage,
    creation_proof,
    entity_id,
    open_storage,
)

ALICE = Identity.from_passphrase("security suite: alice")
BOB = Identity.from_passphrase("security suite: bob")
X = entity_id({"security": "x"})


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A storage with no service identity: nobody is allowed everywhere."""
    url = "memory://" if request.param == "memory" else f"sqlite://{tmp_path / 'store'}"
    with open_storage(url) as opened:
        yield opened


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[tuple[Storage, Storage]]:
    """Two independent storages on one SQLite directory, as two processes would have."""
    url = f"sqlite://{tmp_path / 'shared'}"
    with open_storage(url) as one, open_storage(url) as two:
        yield one, two


# --- squatting ---------------------------------------------------------------------------


def test_bob_cannot_create_alices_home_space(storage: Storage) -> None:
    """Regression: create_space(space=<Alice's DID>, owner=<Bob>) made Bob its owner."""
    with pytest.raises(SpaceClaimError) as err:
        storage.create_space(ALICE.did, BOB.did, {BOB.did: Capability.WRITE})
    assert (err.value.space, err.value.owner) == (ALICE.did, BOB.did)
    assert "creation_proof" in str(err.value)
    assert not storage.has_space(ALICE.did)
    assert storage.create_space(ALICE.did, ALICE.did).owner == ALICE.did  # hers to create


def test_bob_cannot_create_alices_named_space(storage: Storage) -> None:
    notes = ALICE.derive("notes")
    for proof in (
        None,  # no proof at all
        creation_proof(BOB, BOB.did),  # signed, but by Bob's own key
        creation_proof(notes, ALICE.did),  # Alice's real proof, replayed for Bob
        b"\0" * 64,
    ):
        with pytest.raises(SpaceClaimError) as err:
            storage.create_space(notes.did, BOB.did, proof=proof)
        assert "signed with the space's key" in str(err.value)
    assert not storage.has_space(notes.did)
    record = storage.create_space(notes.did, ALICE.did, proof=creation_proof(notes, ALICE.did))
    assert record.owner == ALICE.did


async def test_a_runtime_creates_its_users_spaces_and_nobody_elses(storage_url: str) -> None:
    shared = open_storage(storage_url)
    alice, bob = Runtime(shared, identity=ALICE), Runtime(shared, identity=BOB)
    try:
        with pytest.raises(SpaceClaimError):
            bob.create_space(ALICE.derive("notes").did)
        assert alice.create_space(name="notes") == ALICE.derive("notes").did
        assert alice.create_space() == ALICE.did
        assert shared.space(ALICE.derive("notes").did, ALICE.did).owner == ALICE.did
        assert bob.create_space(name="notes") == BOB.derive("notes").did
    finally:
        await bob.close()
        await alice.close()


# --- no principal ------------------------------------------------------------------------


ATTEMPTS = {
    "read": lambda s, space: s.read(space, X, None),
    "head": lambda s, space: s.head(space, None),
    "log": lambda s, space: s.log(space, None),
    "acl": lambda s, space: s.space(space, None),
    "list": lambda s, space: s.spaces(None),
    "commit": lambda s, space: s.commit(Commit(space, None, {X: "anonymous"})),
    "grant": lambda s, space: s.set_acl(space, None, ANYONE, Capability.OWNER),
    "prune": lambda s, space: s.prune(space, None, before=2),
    "delete": lambda s, space: s.delete_space(space, None),
}


@pytest.mark.parametrize("attempt", ATTEMPTS.values(), ids=ATTEMPTS.keys())
def test_a_missing_principal_is_refused_everywhere(storage: Storage, attempt: object) -> None:
    """Regression: with no service identity, principal=None passed every check (None == None)."""
    storage.create_space(ALICE.did, ALICE.did)
    storage.commit(Commit(ALICE.did, ALICE.did, {X: "hers"}))
    with pytest.raises(MissingPrincipalError) as err:
        attempt(storage, ALICE.did)  # type: ignore[operator]
    assert "Pass the DID of the identity acting" in str(err.value)
    assert isinstance(err.value, AuthorizationError)
    assert storage.space(ALICE.did, ALICE.did).acl == {}
    assert storage.read(ALICE.did, X, ALICE.did).value == "hers"
    assert storage.head(ALICE.did, ALICE.did) == 1


# --- stale records in another process -------------------------------------------------------


def test_a_grant_revoked_by_another_process_stops_the_next_write(
    two_processes: tuple[Storage, Storage],
) -> None:
    """Regression: the other process kept its copy of the ACL and let Bob write on."""
    alices, bobs = two_processes
    alices.create_space(ALICE.did, ALICE.did)
    alices.set_acl(ALICE.did, ALICE.did, BOB.did, Capability.WRITE)
    bobs.commit(Commit(ALICE.did, BOB.did, {X: "while allowed"}))  # Bob's side knows the ACL

    alices.set_acl(ALICE.did, ALICE.did, BOB.did, None)
    with pytest.raises(AuthorizationError) as err:
        bobs.commit(Commit(ALICE.did, BOB.did, {X: "after the revocation"}))
    assert "have the space's owner grant it" in str(err.value)
    with pytest.raises(AuthorizationError):
        bobs.read(ALICE.did, X, BOB.did)
    assert alices.read(ALICE.did, X, ALICE.did).value == "while allowed"


def test_a_space_deleted_by_another_process_takes_no_more_commits(
    two_processes: tuple[Storage, Storage],
) -> None:
    """Regression: the other process acknowledged commits into the deleted file, and lost them."""
    one, two = two_processes
    one.create_space(ALICE.did, ALICE.did)
    two.commit(Commit(ALICE.did, ALICE.did, {X: "before"}))  # two has the file open

    one.delete_space(ALICE.did, ALICE.did)
    with pytest.raises(SpaceNotFoundError):
        two.commit(Commit(ALICE.did, ALICE.did, {X: "into the void"}))
    assert not two.has_space(ALICE.did)

    one.create_space(ALICE.did, ALICE.did)  # created again: two sees the new, empty space
    assert two.read(ALICE.did, X, ALICE.did) == MISSING
    assert two.commit(Commit(ALICE.did, ALICE.did, {X: "after"})) == 1
    assert one.read(ALICE.did, X, ALICE.did).value == "after"


_OTHER_PROCESS = """
import sys
from charmspace.identity import Identity
from charmspace.storage import open_storage

url, action = sys.argv[1], sys.argv[2]
alice = Identity.from_passphrase("security suite: alice").did
bob = Identity.from_passphrase("security suite: bob").did
with open_storage(url) as storage:
    if action == "revoke":
        storage.set_acl(alice, alice, bob, None)
    else:
        storage.delete_space(alice, alice)
"""


@pytest.mark.parametrize("action", ["revoke", "delete"])
def test_a_real_second_process_revoking_or_deleting_is_seen_at_once(
    tmp_path: Path, action: str
) -> None:
    url = f"sqlite://{tmp_path / 'shared'}"
    with open_storage(url) as storage:
        storage.create_space(ALICE.did, ALICE.did, {BOB.did: Capability.WRITE})
        assert storage.commit(Commit(ALICE.did, BOB.did, {X: "kept"})) == 1
        subprocess.run([sys.executable, "-c", _OTHER_PROCESS, url, action], check=True)
        refused = AuthorizationError if action == "revoke" else SpaceNotFoundError
        with pytest.raises(refused):
            storage.commit(Commit(ALICE.did, BOB.did, {X: "never acknowledged"}))
    with open_storage(url) as again:
        if action == "revoke":
            assert again.read(ALICE.did, X, ALICE.did).value == "kept"
        else:
            assert not again.has_space(ALICE.did)


# --- damaged spaces -----------------------------------------------------------------------


@pytest.mark.parametrize("left", [0, 100, 4096])
def test_nobody_can_create_a_space_again_over_its_damaged_file(tmp_path: Path, left: int) -> None:
    """Regression: a zero-length file made the space vanish, and anyone could create it anew."""
    url = f"sqlite://{tmp_path / 'store'}"
    with open_storage(url) as storage:
        storage.create_space(ALICE.did, ALICE.did)
        storage.commit(Commit(ALICE.did, ALICE.did, {X: "precious"}))
        path: Path = storage.backend.path(ALICE.did)  # type: ignore[attr-defined]
    damaged = path.read_bytes()[:left]
    path.write_bytes(damaged)

    with open_storage(url) as storage:
        for attempt in (
            lambda: storage.create_space(ALICE.did, ALICE.did),
            lambda: storage.ensure_space(ALICE.did, ALICE.did),
            lambda: storage.commit(Commit(ALICE.did, ALICE.did, {X: "overwritten"})),
        ):
            with pytest.raises(CorruptStorageError) as err:
                attempt()
            assert err.value.path == str(path)
            assert "Keep the file" in str(err.value)
        assert storage.spaces(ALICE.did) == []  # left out of listings, not forgotten
    assert path.read_bytes() == damaged


def test_other_local_users_cannot_read_a_space_file(tmp_path: Path) -> None:
    """Attack: another account on the same machine reads the space's file (tokens and
    all) under a permissive umask. Refusal: space files and their WAL are 0600."""
    import os

    old = os.umask(0o022)
    try:
        with open_storage(f"sqlite://{tmp_path / 'store'}") as storage:
            storage.create_space(ALICE.did, ALICE.did)
            storage.commit(Commit(ALICE.did, ALICE.did, {X: "secret"}))
            path: Path = storage.backend.path(ALICE.did)  # type: ignore[attr-defined]
            files = [f for f in path.parent.iterdir() if f.name.startswith(path.name)]
            assert files and all(f.stat().st_mode & 0o077 == 0 for f in files), [
                (f.name, oct(f.stat().st_mode)) for f in files
            ]
    finally:
        os.umask(old)
