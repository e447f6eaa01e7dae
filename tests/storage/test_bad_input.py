"""Bad input to storage: URLs, document ids, files and disks it cannot use.

Each is refused with a specific error whose message says what to do, and
nothing is written. Regressions: before these, most of them surfaced as raw
``sqlite3`` errors, as the wrong error (a read-only directory reported as
damage, with advice to move good data away), or not at all (a misspelled
option silently ignored, ``sqlite:///`` opening the filesystem root).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from charmspace.errors import (
    CorruptStorageError,
    DiskFullError,
    InvalidIdError,
    LimitExceededError,
    MissingPrincipalError,
    StoragePermissionError,
    StorageURLError,
)
from charmspace.identity import Identity
from charmspace.storage import Commit, Storage, creation_proof, entity_id, open_storage
from charmspace.testing import ManualFlush
from charmspace.types import DID, SpaceDID

NewSpace = Callable[..., SpaceDID]
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
        ("sqlite:///./d?durabilty=full", "unknown option 'durabilty' (options: durability, keep"),
        ("sqlite:///./d?keep_commits=0", "keep_commits (1 or more)"),
        ("memory://?keep_seconds=soon", "are whole numbers"),
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


def test_a_value_passed_as_an_id_or_a_principal_is_not_repeated_in_the_error(
    storage: Storage, space: SpaceDID, owner: DID
) -> None:
    """Regression: the message quoted the repr of whatever came instead of an id or a
    principal; a value passed in the wrong place (a token) went into errors and logs."""
    token = {"access_token": "ya29.secret"}
    with pytest.raises(InvalidIdError) as bad_id:
        storage.read(space, token, owner)  # type: ignore[arg-type]
    with pytest.raises(MissingPrincipalError) as bad_principal:
        storage.read(space, "of:x", token)  # type: ignore[arg-type]
    for error in (bad_id.value, bad_principal.value):
        assert "ya29" not in str(error) and "dict" in str(error)


# --- files that cannot be used -----------------------------------------------------------


@pytest.fixture
def sqlite_space(
    reopen: Callable[..., Storage], owner: DID, new_space: NewSpace
) -> tuple[SpaceDID, Path]:
    """A space with 50 documents of 3 KB (several pages), written and closed; and its file."""
    storage = reopen()
    space = new_space(storage, owner)
    for n in range(50):
        storage.commit(Commit(space, owner, {entity_id({"n": n}): "x" * 3000}))
    path: Path = storage.backend.path(space)  # type: ignore[attr-defined]
    storage.close()
    return space, path


def assert_damage_reported(error: CorruptStorageError, space: SpaceDID, path: Path) -> None:
    assert error.space == space and error.path == str(path)
    assert str(path) in str(error)
    assert "Keep the file" in str(error) and "restore the space from a backup" in str(error)


def test_an_empty_space_file_is_damage_not_an_absent_space(
    reopen: Callable[..., Storage], sqlite_dir: Path, owner: DID
) -> None:
    """Regression: a zero-length file made its space vanish, free for anyone to create."""
    storage = reopen()
    key = Identity.generate()
    storage.create_space(key.did, owner, proof=creation_proof(key, owner))
    path: Path = storage.backend.path(key.did)  # type: ignore[attr-defined]
    storage.close()
    path.write_bytes(b"")  # what a failed disk or a careless copy can leave

    storage = reopen()
    for attempt in (
        lambda: storage.read(key.did, X, owner),
        lambda: storage.has_space(key.did),
        lambda: storage.create_space(key.did, owner, proof=creation_proof(key, owner)),
    ):
        with pytest.raises(CorruptStorageError) as err:
            attempt()
        assert_damage_reported(err.value, key.did, path)
        assert "empty (0 bytes)" in str(err.value)
    assert path.stat().st_size == 0  # never overwritten


@pytest.mark.parametrize("damage", ["header", "pages"])
def test_damaged_pages_are_reported_with_the_file_and_what_to_do(
    sqlite_space: tuple[SpaceDID, Path], reopen: Callable[..., Storage], owner: DID, damage: str
) -> None:
    """Regression: a damaged file surfaced as a raw sqlite3.DatabaseError."""
    space, path = sqlite_space
    data = bytearray(path.read_bytes())
    start, end = (0, 100) if damage == "header" else (2 * 4096, len(data))
    data[start:end] = b"\x5a" * (end - start)
    path.write_bytes(bytes(data))
    storage = reopen()
    with pytest.raises(CorruptStorageError) as err:
        storage.read(space, entity_id({"n": 3}), owner)
    assert_damage_reported(err.value, space, path)
    assert path.read_bytes() == bytes(data)  # kept as it was, for recovery


class _FullDisk:
    """A cursor whose writes fail the way SQLite's do when the disk is full."""

    def __init__(self, cursor: sqlite3.Cursor, failing: str) -> None:
        self._cursor = cursor
        self._failing = failing

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith(self._failing):
            raise sqlite3.OperationalError("database or disk is full")
        return self._cursor.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        if sql.startswith(self._failing):
            raise sqlite3.OperationalError("database or disk is full")
        return self._cursor.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def fill_disk(storage: Storage, space: SpaceDID, failing: str) -> None:
    conn = storage.backend._conns[space]  # type: ignore[attr-defined]
    conn.cur = _FullDisk(conn.cur, failing)


def test_a_full_disk_is_reported_as_such_and_nothing_is_acknowledged(
    reopen: Callable[..., Storage], owner: DID, new_space: NewSpace
) -> None:
    """Regression: a full disk surfaced as a raw sqlite3.OperationalError."""
    storage = reopen()
    space = new_space(storage, owner)
    storage.commit(Commit(space, owner, {X: 1}))
    fill_disk(storage, space, "INSERT")
    with pytest.raises(DiskFullError) as err:
        storage.commit(Commit(space, owner, {X: 2}, reads={X: 1}))
    assert "is full; nothing was written" in str(err.value) and "Free space" in str(err.value)
    assert storage.read(space, X, owner).value == 1
    assert reopen().read(space, X, owner).value == 1


def test_a_full_disk_fails_a_group_with_the_same_error_for_each(
    reopen: Callable[..., Storage], owner: DID, new_space: NewSpace
) -> None:
    storage = reopen()
    space = new_space(storage, owner)
    scheduler = ManualFlush()
    storage.flush_scheduler = scheduler
    outcomes: list[BaseException | None] = []
    storage.commit(Commit(space, owner, {GOOD[0]: 1}), on_durable=outcomes.append)
    storage.commit(Commit(space, owner, {GOOD[1]: 1}), on_durable=outcomes.append)
    fill_disk(storage, space, "COMMIT")
    scheduler.run()
    assert [type(e) for e in outcomes] == [DiskFullError, DiskFullError]
    assert reopen().head(space, owner) == 0


@contextlib.contextmanager
def mounted(*commands: list[str], target: Path) -> Iterator[None]:
    """Run mount ``commands`` (root only; skip the test if the system refuses), unmount after."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    for command in commands:
        try:
            done = subprocess.run(command, capture_output=True)
        except OSError:  # no mount(8) on this system
            pytest.skip(f"cannot run {command[0]} here")
        if done.returncode != 0:
            subprocess.run(["umount", str(target)], capture_output=True)
            pytest.skip(f"cannot run {' '.join(command)} here")
    try:
        yield
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], check=True)  # once files are closed


def test_a_really_full_disk_keeps_what_was_acknowledged(tmp_path: Path, owner: DID) -> None:
    directory = tmp_path / "tiny"
    directory.mkdir()
    tmpfs = ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(directory)]
    with mounted(tmpfs, target=directory):
        storage = open_storage(f"sqlite://{directory}")
        acknowledged = 0
        try:
            storage.create_space(owner, owner)
            with pytest.raises(DiskFullError):
                for n in range(1000):
                    storage.commit(Commit(owner, owner, {entity_id({"n": n}): "x" * 8000}))
                    acknowledged += 1
        finally:
            storage.close()
        with open_storage(f"sqlite://{directory}") as again:
            assert again.head(owner, owner) == acknowledged > 0


def _read_only(directory: Path) -> contextlib.AbstractContextManager[None]:
    if os.geteuid() == 0:  # root ignores permission bits: make the file system read-only
        return mounted(
            ["mount", "--bind", str(directory), str(directory)],
            ["mount", "-o", "remount,bind,ro", str(directory)],
            target=directory,
        )
    for path in directory.iterdir():
        path.chmod(0o444)
    directory.chmod(0o555)
    return contextlib.nullcontext()


def test_a_read_only_directory_is_a_permissions_problem_not_damage(
    sqlite_space: tuple[SpaceDID, Path], sqlite_dir: Path, owner: DID
) -> None:
    """Regression: it was reported as a damaged file, with advice to move the (good) data away."""
    space, _ = sqlite_space
    try:
        with _read_only(sqlite_dir), pytest.raises(StoragePermissionError) as err:
            storage = open_storage(f"sqlite://{sqlite_dir}")
            try:
                storage.commit(Commit(space, owner, {X: 1}))
            finally:
                storage.close()
        assert not isinstance(err.value, CorruptStorageError)
        assert "The data is not damaged" in str(err.value)
        assert "read and write access" in str(err.value)
        with _read_only(sqlite_dir), pytest.raises(StoragePermissionError) as err:
            storage = open_storage(f"sqlite://{sqlite_dir}")
            try:
                storage.create_space(owner, owner)
            finally:
                storage.close()
        assert err.value.path == str(sqlite_dir)
    finally:
        sqlite_dir.chmod(0o700)
        for file in sqlite_dir.iterdir():
            file.chmod(0o600)
    with open_storage(f"sqlite://{sqlite_dir}") as storage:
        assert storage.head(space, owner) == 50  # nothing was lost or moved
