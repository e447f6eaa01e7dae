"""Fixtures for the storage suite: one ``storage`` per backend, people, a space."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from charmspace.identity import Identity
from charmspace.storage import Capability, Storage, creation_proof, open_storage
from charmspace.types import DID, SpaceDID

OWNER: DID = Identity.from_passphrase("storage suite: owner").did
ALICE: DID = Identity.from_passphrase("storage suite: alice").did
BOB: DID = Identity.from_passphrase("storage suite: bob").did
SERVICE: DID = Identity.from_passphrase("storage suite: service").did

Reopen = Callable[..., Storage]
NewSpace = Callable[..., SpaceDID]


def create_new_space(
    storage: Storage, owner: DID, acl: dict[str, Capability] | None = None
) -> SpaceDID:
    """A space under a fresh key, created for ``owner`` with the proof storage asks for."""
    key = Identity.generate()
    storage.create_space(key.did, owner, acl, proof=creation_proof(key, owner))
    return key.did


@pytest.fixture
def owner() -> DID:
    return OWNER


@pytest.fixture
def alice() -> DID:
    return ALICE


@pytest.fixture
def bob() -> DID:
    return BOB


@pytest.fixture
def service() -> DID:
    """The server's own identity: allowed everywhere on its storage."""
    return SERVICE


@pytest.fixture(params=["memory", "sqlite"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty storage of each backend."""
    if request.param == "memory":
        return "memory://"
    return f"sqlite://{tmp_path / 'store'}"


@pytest.fixture
def storage(storage_url: str) -> Iterator[Storage]:
    with open_storage(storage_url, service=SERVICE) as opened:
        yield opened


@pytest.fixture
def space(storage: Storage) -> SpaceDID:
    """A fresh space owned by OWNER, with the default (closed) ACL."""
    return create_new_space(storage, OWNER)


@pytest.fixture
def new_space() -> NewSpace:
    """``new_space(storage, owner, acl=None)``: create a space under a fresh key for ``owner``."""
    return create_new_space


@pytest.fixture
def sqlite_dir(tmp_path: Path) -> Path:
    return tmp_path / "sqlite-store"


@pytest.fixture
def reopen(sqlite_dir: Path) -> Iterator[Reopen]:
    """``reopen(old=None, **kwargs)``: close ``old`` and open the same SQLite directory.

    Each call opens a new, independent Storage (as another process would);
    everything opened is closed at the end of the test.
    """
    opened: list[Storage] = []

    def reopen_(old: Storage | None = None, **kwargs: object) -> Storage:
        if old is not None:
            old.close()
        kwargs.setdefault("service", SERVICE)
        fresh = open_storage(f"sqlite://{sqlite_dir}", **kwargs)  # type: ignore[arg-type]
        opened.append(fresh)
        return fresh

    yield reopen_
    for s in opened:
        s.close()
