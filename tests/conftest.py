"""Fixtures every suite shares: the storage backends a runtime test runs on, the local key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from charmspace.storage import Storage, open_storage

BACKENDS = ("memory", "sqlite")


@pytest.fixture(autouse=True, scope="session")
def local_identity_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The local user's key file of the whole run, never the real one in the home directory.

    A ``Runtime`` over SQLite with no identity acts as the local user; so does
    every documentation example the doc test runs (they inherit the variable).
    """
    path = tmp_path_factory.mktemp("local-user") / "identity.pem"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHARMSPACE_IDENTITY", str(path))
        yield path


@pytest.fixture(params=BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each runtime, pattern and scenario test runs once in memory and once on SQLite.

    The SQLite leg uses the production path (files in ``tmp_path``, group commit
    on), so a bug that shows only on the default backend cannot hide.
    """
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'store'}"


@pytest.fixture
def lasting_store(storage_url: str) -> Iterator[str | Storage]:
    """What each runtime of a restart test opens: a store that outlives the runtime.

    On SQLite the directory's URL, as a restarted process would open it; in memory
    one ``Storage`` every runtime of the test shares (closing a runtime leaves its
    data readable), so restart tests run on both backends too.
    """
    if storage_url.startswith("memory"):
        with open_storage(storage_url) as shared:
            yield shared
    else:
        yield storage_url
