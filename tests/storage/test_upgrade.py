"""Data written by earlier releases opens, and reads the same, after an upgrade."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from charmspace.identity import Identity
from charmspace.storage import Storage, open_storage

FIXTURES = Path(__file__).parent / "fixtures"
SERVICE = Identity.from_passphrase("fixture v1: service").did


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    """A copy of the directory written by the release before format versions (see make_v1.py)."""
    directory = tmp_path / "data"
    shutil.copytree(FIXTURES / "v1", directory)
    return directory


def contents(storage: Storage, expected: dict[str, Any]) -> dict[str, Any]:
    """What ``storage`` holds, in the shape of ``expected.json``."""
    out: dict[str, Any] = {}
    for space, want in expected.items():
        record = storage.space(space, SERVICE)
        entries = storage.log(space, SERVICE, limit=100_000)
        docs: dict[str, Any] = {}
        for id, doc in want["documents"].items():
            rev = storage.read(space, id, SERVICE)
            history = []
            for seq, _, _ in doc["history"]:
                old = storage.read(space, id, SERVICE, at=seq)
                history.append([old.seq, old.deleted, old.value])
            docs[id] = {
                "seq": rev.seq,
                "deleted": rev.deleted,
                "value": rev.value,
                "history": history,
            }
        out[space] = {
            "owner": record.owner,
            "head": storage.head(space, SERVICE),
            "log": [[e.seq, e.principal, list(e.ids)] for e in entries],
            "documents": docs,
        }
    return json.loads(json.dumps(out))  # type: ignore[no-any-return]


def test_a_directory_written_by_the_previous_release_reads_the_same(v1: Path) -> None:
    expected = json.loads((FIXTURES / "expected.json").read_text())
    with open_storage(f"sqlite:///{v1}", service=SERVICE) as storage:
        assert {r.space for r in storage.spaces(SERVICE)} == set(expected)
        assert contents(storage, expected) == expected
