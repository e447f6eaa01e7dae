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

import pytest

from charmspace.errors import StorageURLError
from charmspace.storage import open_storage

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
