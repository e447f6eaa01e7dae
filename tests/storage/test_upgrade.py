"""Data written by earlier releases opens, and reads the same, after an upgrade."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from charmspace.errors import StorageVersionError
from charmspace.identity import Identity
from charmspace.runtime import outbox
from charmspace.storage import Storage, open_storage
from charmspace.storage.backends.sqlite import SCHEMA_VERSION

FIXTURES = Path(__file__).parent / "fixtures"

_spec = importlib.util.spec_from_file_location("make_v3", FIXTURES / "make_v3.py")
assert _spec is not None and _spec.loader is not None
make_v3 = importlib.util.module_from_spec(_spec)  # the charms that wrote the v3 fixture
_spec.loader.exec_module(make_v3)

SERVICE = Identity.from_passphrase("fixture v1: service").did


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    """A copy of the directory written by the release before format versions (see make_v1.py)."""
    directory = tmp_path / "data"
    shutil.copytree(FIXTURES / "v1", directory)
    return directory


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    """A copy of a directory in format 2, every revision stored whole (see make_v2.py)."""
    directory = tmp_path / "data2"
    shutil.copytree(FIXTURES / "v2", directory)
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


def pragma(path: Path, name: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        db.close()


def dump(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def test_opening_migrates_each_file_in_place_after_backing_it_up(v1: Path) -> None:
    files = sorted(v1.glob("*.sqlite"))
    originals = {f: dump(f) for f in files}
    assert {pragma(f, "user_version") for f in files} == {1}
    expected = json.loads((FIXTURES / "expected.json").read_text())
    with open_storage(f"sqlite:///{v1}", service=SERVICE) as storage:
        assert contents(storage, expected) == expected
    for f in files:
        assert pragma(f, "user_version") == SCHEMA_VERSION
        assert pragma(f, "auto_vacuum") == 2  # incremental: pruning gives disk back
        backup = f.with_name(f.name + ".schema1.bak")
        assert pragma(backup, "user_version") == 1
        assert dump(backup) == originals[f]
    with open_storage(f"sqlite:///{v1}", service=SERVICE) as storage:  # once is enough
        assert contents(storage, expected) == expected
        assert len(storage.spaces(SERVICE)) == 3  # backups are not spaces


def test_a_file_from_a_newer_release_is_refused_and_left_untouched(v1: Path) -> None:
    target = sorted(v1.glob("*.sqlite"))[0]
    db = sqlite3.connect(target)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    before = target.read_bytes()
    space = target.name.removesuffix(".sqlite").replace("_", ":")
    with (
        open_storage(f"sqlite:///{v1}", service=SERVICE) as storage,
        pytest.raises(StorageVersionError) as error,
    ):
        storage.read(space, "x", SERVICE)
    assert (error.value.version, error.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert "written by a newer charmspace" in str(error.value)
    assert target.read_bytes() == before


def test_a_format_2_directory_is_migrated_in_place_after_a_backup_and_reads_the_same(
    v2: Path,
) -> None:
    files = sorted(v2.glob("*.sqlite"))
    originals = {f: dump(f) for f in files}
    assert {pragma(f, "user_version") for f in files} == {2}
    expected = json.loads((FIXTURES / "expected_v2.json").read_text())
    with open_storage(f"sqlite:///{v2}", service=SERVICE) as storage:
        assert contents(storage, expected) == expected
    for f in files:
        assert pragma(f, "user_version") == SCHEMA_VERSION
        backup = f.with_name(f.name + ".schema2.bak")
        assert dump(backup) == originals[f]
    with open_storage(f"sqlite:///{v2}", service=SERVICE) as storage:
        assert contents(storage, expected) == expected


def test_pushes_after_the_migration_are_stored_as_deltas_and_history_still_reads(
    v2: Path,
) -> None:
    from charmspace.storage import Commit
    from charmspace.values import extend, freeze, setpath

    expected = json.loads((FIXTURES / "expected_v2.json").read_text())
    home = Identity.from_passphrase("fixture v1: user").did
    [list_id] = [
        id for id, doc in expected[home]["documents"].items() if "items" in (doc["value"] or {})
    ]
    with open_storage(f"sqlite:///{v2}", service=SERVICE) as storage:
        doc = storage.read(home, list_id, home).value
        for i in range(30):
            item = freeze({"n": 20 + i, "text": "x" * 40})
            items = extend(doc["items"], [item])  # type: ignore[index, call-overload]
            doc = setpath(doc, ("items",), items)
            storage.commit(Commit(home, home, {list_id: doc}))
    [path] = [f for f in v2.glob("*.sqlite") if home.replace(":", "_") in f.name]
    db = sqlite3.connect(path)
    deltas = db.execute("SELECT count(*) FROM revisions WHERE delta = 1").fetchone()[0]
    db.close()
    assert deltas >= 15  # the first pushes, to a document under 1 KiB, store it whole
    with open_storage(f"sqlite:///{v2}", service=SERVICE) as storage:
        assert storage.read(home, list_id, home).value == doc
        assert len(doc["items"]) == 50  # type: ignore[index, call-overload]
        for id, want in expected[home]["documents"].items():  # written before: unchanged
            for seq, deleted, value in want["history"]:
                old = storage.read(home, id, SERVICE, at=seq)
                assert (old.deleted, old.value) == (deleted, value)


@pytest.fixture
def v3(tmp_path: Path) -> Path:
    """A copy of a directory in format 3 with deliveries in flight (see make_v3.py)."""
    directory = tmp_path / "data3"
    shutil.copytree(FIXTURES / "v3", directory)
    return directory


def test_deliveries_in_flight_in_format_3_complete_once_after_the_upgrade(v3: Path) -> None:
    """The outbox and inbox of format 3 were documents: after the upgrade the
    pending send is delivered, the one already applied is not applied again,
    and new sends go on from there (as rows, leaving no history behind)."""
    files = sorted(v3.glob("*.sqlite"))
    originals = {f: dump(f) for f in files}
    assert {pragma(f, "user_version") for f in files} == {3}
    asyncio.run(deliver_in_flight(v3))
    for f in files:
        assert pragma(f, "user_version") == SCHEMA_VERSION
        assert dump(f.with_name(f.name + ".schema3.bak")) == originals[f]


async def deliver_in_flight(v3: Path) -> None:
    runtime = make_v3.open_runtime(v3)
    shop, sell, entries = await make_v3.build(runtime)
    await runtime.idle()
    assert entries.get() == ["apple", "pear"]
    index: Any = runtime.cell(shop.space, outbox.outbox_id(shop.id)).get()
    assert index["pending"] == {}
    head = runtime.storage.head(shop.space, make_v3.USER.did)
    await sell.send({"item": "plum"})
    await runtime.idle()
    assert entries.get() == ["apple", "pear", "plum"]
    assert runtime.storage.head(shop.space, make_v3.USER.did) == head + 1  # the sale alone
    service = make_v3.SERVICE.did
    assert runtime.storage.rows(shop.space, outbox.outbox_box(shop.id), service) == []
    counter = runtime.storage.row(shop.space, outbox.COUNTERS, shop.id, service)
    assert counter is not None and counter.value == {"next": 4}  # after apple 1, pear 2, plum 3
    await runtime.close()
