"""A process killed (SIGKILL) while pruning or vacuuming loses nothing it acknowledged."""

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

owner = Identity.from_passphrase("crash suite: owner").did
storage = open_storage("sqlite:///" + sys.argv[1])
storage.pruner.close()  # pruning happens below, where this script says
storage.ensure_space(owner, owner)
ids = [entity_id({"crash": i}) for i in range(20)]
n = int(sys.argv[2])
while True:
    for _ in range(100):
        i = n % len(ids)
        seq = storage.commit(Commit(owner, owner, {ids[i]: {"n": n, "pad": "x" * 3000}}))
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
