"""Storage URLs: which directory a sqlite URL names."""

from __future__ import annotations

from pathlib import Path

import pytest

from charmspace.identity import Identity
from charmspace.storage import open_storage


@pytest.mark.parametrize("url", ["sqlite:///./data", "sqlite://./data"])
def test_a_dot_path_is_relative_to_the_working_directory(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: sqlite:///./data used to name /data, at the filesystem root."""
    monkeypatch.chdir(tmp_path)
    owner = Identity.from_passphrase("open test").did
    with open_storage(url) as storage:
        storage.create_space(owner, owner)
    assert any((tmp_path / "data").iterdir())


def test_an_absolute_path_stays_absolute(tmp_path: Path) -> None:
    owner = Identity.from_passphrase("open test").did
    with open_storage(f"sqlite://{tmp_path}/abs") as storage:
        storage.create_space(owner, owner)
    assert any((tmp_path / "abs").iterdir())
