"""Private JSON files: written whole with mode 0600, read back, or ignored when unreadable."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from charmspace.private_json import load_private_json, write_private_text


def test_a_saved_value_reads_back_from_a_file_only_its_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "kept" / "things.json"
    leftover = path.parent / "things.tmp"
    leftover.parent.mkdir()
    leftover.write_text("half written")
    leftover.chmod(0o644)
    write_private_text(path, '{"a": [1, "b"]}')
    assert load_private_json(path, what="things") == {"a": [1, "b"]}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not leftover.exists()


def test_a_missing_or_unreadable_file_reads_as_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert load_private_json(tmp_path / "missing.json", what="things") is None
    assert caplog.records == []
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    assert load_private_json(garbled, what="things") is None
    assert "unreadable things file" in caplog.text


def test_a_file_that_cannot_be_written_raises_for_its_caller_to_report(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(OSError):
        write_private_text(blocked / "things.json", "{}")
