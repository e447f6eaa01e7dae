"""Storage URLs: which directory a sqlite URL names, and how a wrong one is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from charmspace.errors import StorageURLError
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
