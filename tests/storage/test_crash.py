"""A process killed (SIGKILL) while pruning, vacuuming or migrating loses no acknowledged commit."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from charmspace.identity import Identity
from charmspace.storage import entity_id, open_storage

OWNER = Identity.from_passphrase("crash suite: owner").did

CHILD = """
import sys
from charmspace.identity import Identity
from charmspace.storage import Commit, entity_id, open_storage
from charmspace.values import extend, freeze

owner = Identity.from_passphrase("crash suite: owner").did
storage = open_storage("sqlite:///" + sys.argv[1])
storage.pruner.close()  # pruning happens below, where this script says
storage.ensure_space(owner, owner)
ids = [entity_id({"crash": i}) for i in range(20)]
n = int(sys.argv[2])
log = storage.read(owner, "log", owner).value or freeze([])
while True:
    for _ in range(100):
        i = n % len(ids)
        log = extend(log, [n])  # stored as deltas once the list passes 1 KiB
        writes = {ids[i]: {"n": n, "pad": "x" * 3000}, "log": log}
        seq = storage.commit(Commit(owner, owner, writes))
        print(seq, i, n, flush=True)  # acknowledged: durable once commit() returns
        n += 1
    print("prune", flush=True)
    storage.prune(owner, owner, before=seq - 5)
"""


def run_and_kill(directory: Path, start: int, delay: float) -> dict[int, int]:
    """Run the child until ``delay`` seconds after it starts pruning; SIGKILL it.

    Returns the last acknowledged ``n`` of each document.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), str(start)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acked: dict[int, int] = {}
    prunes = 0
    killed_at: float | None = None
    for line in child.stdout:
        if line.startswith("prune"):
            prunes += 1
            if prunes == 2:
                killed_at = time.monotonic() + delay
        elif line.endswith("\n") and line.count(" ") == 2:  # a whole line only
            _, i, n = line.split()
            acked[int(i)] = int(n)
        if killed_at is not None and time.monotonic() >= killed_at:
            break
    if killed_at is not None:
        time.sleep(max(0.0, killed_at - time.monotonic()))
    os.kill(child.pid, signal.SIGKILL)
    for line in child.stdout:  # acknowledged before the kill landed
        if not line.startswith("prune") and line.endswith("\n") and line.count(" ") == 2:
            _, i, n = line.split()
            acked[int(i)] = int(n)
    child.wait()
    return acked


def test_a_kill_during_pruning_or_vacuum_loses_no_acknowledged_commit(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    acked: dict[int, int] = {}
    start = 0
    for delay in (0.0, 0.002, 0.005, 0.01, 0.02, 0.05):
        acked.update(run_and_kill(directory, start, delay))
        start = max(acked.values()) + 21  # past a commit made but not acknowledged
        [path] = directory.glob("*.sqlite")
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        with open_storage(f"sqlite:///{directory}") as storage:
            horizon = storage.horizon(OWNER, OWNER)
            head = storage.head(OWNER, OWNER)
            assert horizon <= head
            for i, n in acked.items():
                id = entity_id({"crash": i})
                current = storage.read(OWNER, id, OWNER)
                # a commit durable just before the kill may not have been acknowledged yet
                assert current.value["n"] >= n  # type: ignore[index]
                assert storage.committer(OWNER, current.seq, OWNER) == OWNER
                assert storage.read(OWNER, id, OWNER, at=horizon).exists
            log = storage.read(OWNER, "log", OWNER).value
            assert list(log) == sorted(set(log))  # type: ignore[call-overload, arg-type]
            assert set(acked.values()) <= set(log)  # type: ignore[arg-type]
            at_horizon = storage.read(OWNER, "log", OWNER, at=horizon).value
            assert list(log)[: len(at_horizon)] == list(at_horizon)  # type: ignore[call-overload, arg-type]


MIGRATING_CHILD = """
import sys
from charmspace.identity import Identity
from charmspace.storage import Commit, open_storage
from charmspace.values import extend, freeze

user = Identity.from_passphrase("fixture v1: user").did
print("start", flush=True)
storage = open_storage("sqlite:///" + sys.argv[1])  # opening a space migrates its file
storage.pruner.close()
items = storage.read(user, "crash", user).value or freeze([])
n = len(items)  # item n is the n-th commit of this document, whichever process made it
while True:
    items = extend(items, [freeze({"n": n, "pad": "x" * 200})])  # stored as deltas
    storage.commit(Commit(user, user, {"crash": items}))
    print(n, flush=True)  # acknowledged
    n += 1
"""


def test_a_kill_during_the_format_migration_loses_nothing(tmp_path: Path) -> None:
    """Killed while backing up, migrating or rebuilding a format 2 file: it opens complete."""
    import json
    import shutil

    fixtures = Path(__file__).parent / "fixtures"
    service = Identity.from_passphrase("fixture v1: service").did
    expected = json.loads((fixtures / "expected_v2.json").read_text())
    user = Identity.from_passphrase("fixture v1: user").did
    for delay in (0.0, 0.001, 0.003, 0.01, 0.03, 0.1):
        directory = tmp_path / f"data-{delay}"
        shutil.copytree(fixtures / "v2", directory)
        acked = -1
        for attempt in range(2):  # killed while migrating, then while writing after it
            child = subprocess.Popen(
                [sys.executable, "-c", MIGRATING_CHILD, str(directory)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            assert child.stdout.readline() == "start\n"
            time.sleep(delay * (attempt + 1))
            os.kill(child.pid, signal.SIGKILL)
            for line in child.stdout:
                if line.endswith("\n"):
                    acked = int(line)
            child.wait()
        for path in directory.glob("*.sqlite"):
            db = sqlite3.connect(path)
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            db.close()
        with open_storage(f"sqlite:///{directory}", service=service) as storage:
            for space, want in expected.items():
                for id, doc in want["documents"].items():
                    assert storage.read(space, id, service).value == doc["value"]
                    for seq, deleted, value in doc["history"]:
                        old = storage.read(space, id, service, at=seq)
                        assert (old.deleted, old.value) == (deleted, value)
            items = storage.read(user, "crash", service).value or []
            assert len(items) >= acked + 1  # type: ignore[arg-type]
            assert [item["n"] for item in items] == list(range(len(items)))  # type: ignore[index, arg-type]


ROWS_CHILD = """
import sys
from charmspace.identity import Identity
from charmspace.storage import DELETE, Commit, open_storage

owner = Identity.from_passphrase("crash suite: owner").did
storage = open_storage("sqlite:///" + sys.argv[1])
storage.pruner.close()
storage.ensure_space(owner, owner)
n = storage.read(owner, "count", owner).value or 0
while True:
    n += 1
    key = ("outbox", f"{n:012d}")
    # a send: the document and its entry row in one commit
    storage.commit(Commit(owner, owner, {"count": n}, rows={key: {"n": n, "pad": "x" * 500}}))
    print("sent", n, flush=True)
    if n % 3:  # delivered: the row is deleted by a commit of rows only
        storage.commit(Commit(owner, owner, {}, rows={key: DELETE}))
        print("cleared", n, flush=True)
"""


def test_a_kill_while_writing_and_deleting_rows_keeps_them_atomic_with_their_commit(
    tmp_path: Path,
) -> None:
    """Each entry row exists exactly when its commit is durable and its deletion is not."""
    directory = tmp_path / "store"
    sent: set[int] = set()
    cleared: set[int] = set()
    stuck: set[int] = set()  # the last send of a killed run, perhaps never cleared
    for delay in (0.0, 0.01, 0.05, 0.2):
        child = subprocess.Popen(
            [sys.executable, "-c", ROWS_CHILD, str(directory)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        lines = [child.stdout.readline()]  # the first acknowledgement: it is writing
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        for line in [*lines, *child.stdout]:
            if line.endswith("\n") and " " in line:
                what, n = line.split()
                (sent if what == "sent" else cleared).add(int(n))
        child.wait()
        assert sent, "the child acknowledged nothing before it was killed"
        [path] = directory.glob("*.sqlite")
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        with open_storage(f"sqlite:///{directory}") as storage:
            count = storage.read(OWNER, "count", OWNER).value
            assert isinstance(count, int) and count >= max(sent)
            rows = dict(storage.rows(OWNER, "outbox", OWNER))
            keys = {int(k) for k in rows}
            stuck.add(count)
            assert all(k <= count for k in keys)  # no row without its document commit
            assert keys >= sent - cleared - stuck  # an acknowledged entry stays until cleared
            assert not keys & cleared  # an acknowledged deletion stays deleted
            never_cleared = {n for n in range(1, count) if n % 3 == 0}
            assert keys - stuck == never_cleared - stuck
            assert {(r.principal, r.version) for r in rows.values()} <= {(OWNER, 1)}
