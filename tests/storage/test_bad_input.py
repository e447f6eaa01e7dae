"""Bad input to storage: URLs, document ids, files and disks it cannot use.

Each is refused with a specific error whose message says what to do, and
nothing is written. Regressions: before these, most of them surfaced as raw
``sqlite3`` errors, as the wrong error (a read-only directory reported as
damage, with advice to move good data away), or not at all (a misspelled
option silently ignored, ``sqlite:///`` opening the filesystem root).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from charmspace.errors import InvalidIdError, LimitExceededError, StorageURLError
from charmspace.storage import Commit, Storage, entity_id, open_storage
from charmspace.testing import ManualFlush
from charmspace.types import DID, SpaceDID

X = entity_id({"test": "bad input x"})
GOOD = [entity_id({"test": "bad input", "n": n}) for n in range(10)]

# --- storage URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        ("sqlite:///", "filesystem root"),
        ("sqlite:///~/x", "'~' is not expanded; give the absolute path"),
        ("sqlite://./d", "write sqlite:///./d"),
        ("sqlite:/./d", "sqlite:///./d"),
        ("postgres://host/db", "unknown scheme 'postgres'"),
        ("sqlite:///./d?durabilty=full", "unknown option 'durabilty' (options: durability)"),
        ("sqlite:///./d?durability=full&durability=normal", "given twice; give it once"),
        ("sqlite:///./d?durability", "not name=value pairs"),
        ("sqlite:///dev/null", "is not a directory; name a directory"),
        ("memory://?durability=full", "unknown option 'durability'"),
    ],
)
def test_a_bad_url_is_refused_saying_how_to_write_it(
    url: str, advice: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageURLError) as err:
        open_storage(url)
    assert err.value.url == url
    assert advice in str(err.value)
    assert os.listdir(tmp_path) == []  # nothing created
    assert not Path("/~").exists()


def test_a_url_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(StorageURLError) as err:
        open_storage(123)  # type: ignore[arg-type]
    assert "a storage URL is a string, not int" in str(err.value)
    assert "sqlite:///path/to/dir" in str(err.value)


# --- document ids ----------------------------------------------------------------------

BAD_IDS: list[tuple[object, type[Exception], str]] = [
    (None, InvalidIdError, "it is NoneType, not a string"),
    (42, InvalidIdError, "it is int, not a string"),
    ("", InvalidIdError, "it is empty"),
    ("of:\ud800", InvalidIdError, "lone surrogate"),
    ("x" * (20 * 1024 * 1024), LimitExceededError, "make ids with entity_id(cause)"),
]


@pytest.mark.parametrize(
    ("bad", "error", "advice"), BAD_IDS, ids=["none", "int", "empty", "surrogate", "20MiB"]
)
@pytest.mark.parametrize("where", ["writes", "reads"])
def test_a_bad_id_fails_its_own_commit_and_none_of_its_group(
    storage: Storage,
    space: SpaceDID,
    owner: DID,
    bad: Any,
    error: type[Exception],
    advice: str,
    where: str,
) -> None:
    """Regression: a handler writing id None failed every commit grouped with it."""
    scheduler = ManualFlush()
    storage.flush_scheduler = scheduler
    outcomes: list[BaseException | None] = []
    for n, id in enumerate(GOOD[:5]):
        storage.commit(Commit(space, owner, {id: n}), on_durable=outcomes.append)
    bad_commit = (
        Commit(space, owner, {bad: "v"})
        if where == "writes"
        else Commit(space, owner, {X: "v"}, reads={bad: 0})
    )
    with pytest.raises(error) as err:
        storage.commit(bad_commit, on_durable=outcomes.append)
    assert advice in str(err.value) and "nothing was written" in str(err.value)
    for n, id in enumerate(GOOD[5:], start=5):
        storage.commit(Commit(space, owner, {id: n}), on_durable=outcomes.append)
    scheduler.run()
    assert outcomes == [None] * 10
    assert [storage.read(space, id, owner).value for id in GOOD] == list(range(10))
    assert storage.head(space, owner) == 10


def test_the_id_limit_is_a_setting(storage: Storage, space: SpaceDID, owner: DID) -> None:
    assert storage.limits.max_id_bytes == 1024
    assert storage.commit(Commit(space, owner, {"x" * 1024: 1})) == 1
    with pytest.raises(LimitExceededError) as err:
        storage.commit(Commit(space, owner, {"é" * 513: 1}))  # 1026 bytes in UTF-8
    assert (err.value.actual, err.value.allowed) == (1026, 1024)


def test_reading_a_bad_id_is_refused(storage: Storage, space: SpaceDID, owner: DID) -> None:
    with pytest.raises(InvalidIdError) as err:
        storage.read(space, None, owner)  # type: ignore[arg-type]
    assert err.value.space == space and err.value.id is None
