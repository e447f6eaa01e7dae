"""Storage URLs: which directory a sqlite URL names, and how a wrong one is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from charmspace.errors import StorageError, StoragePathError, StorageURLError
from charmspace.identity import Identity
from charmspace.storage import open_storage


def test_a_dot_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: sqlite:///./data used to name /data, at the filesystem root."""
    monkeypatch.chdir(tmp_path)
    owner = Identity.from_passphrase("open test").did
    with open_storage("sqlite:///./data") as storage:
        storage.create_space(owner, owner)
    assert any((tmp_path / "data").iterdir())


def test_an_absolute_path_stays_absolute(tmp_path: Path) -> None:
    owner = Identity.from_passphrase("open test").did
    with open_storage(f"sqlite://{tmp_path}/abs") as storage:
        storage.create_space(owner, owner)
    assert any((tmp_path / "abs").iterdir())


def test_a_doubled_slash_before_an_absolute_path_names_the_same_directory(tmp_path: Path) -> None:
    """f"sqlite:///{absolute}" gives four slashes; it names the absolute directory."""
    owner = Identity.from_passphrase("open test").did
    with open_storage(f"sqlite:///{tmp_path}/four") as storage:
        storage.create_space(owner, owner)
    assert any((tmp_path / "four").iterdir())


def test_a_host_is_refused_rather_than_read_as_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite://./data used to be accepted as ./data; it now says to write sqlite:///./data."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageURLError) as err:
        open_storage("sqlite://./data")
    assert "sqlite:///./data" in str(err.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("below", ["a-file/store", "a-file/deeper/store"])
def test_a_directory_that_cannot_be_made_says_to_change_the_path_not_to_retry(
    tmp_path: Path, below: str
) -> None:
    """Regression: a storage directory below a file (or in /proc) said "Nothing was
    written; retry.", which can never help: the path has to change."""
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(StoragePathError) as err:
        open_storage(f"sqlite://{tmp_path}/{below}")
    message = str(err.value)
    assert str(tmp_path / below) in message
    assert "retry" not in message
    assert "Change the path" in message
    assert err.value.path == str(tmp_path / below)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_runtime_in_proc_says_to_change_the_path() -> None:
    """The newcomer's case: Runtime("sqlite:///proc/y") cannot create /proc/y."""
    from charmspace import Runtime

    with pytest.raises(StoragePathError) as err:
        Runtime("sqlite:///proc/charmspace-test-y")
    assert "retry" not in str(err.value)
    assert "/proc/charmspace-test-y" in str(err.value)


def test_a_closed_sqlite_storage_says_to_open_it_again(tmp_path: Path) -> None:
    """Regression: a call after close() said only "The storage in X is closed."."""
    owner = Identity.from_passphrase("open test").did
    storage = open_storage(f"sqlite://{tmp_path}/closed")
    storage.create_space(owner, owner)
    storage.close()
    with pytest.raises(StorageError) as err:
        storage.head(owner, owner)
    assert str(err.value) == (
        f"The storage in {tmp_path}/closed is closed, so it cannot be read or written; "
        "nothing was done. Open it again (open_storage(url), or a new Runtime on it) to go on."
    )
