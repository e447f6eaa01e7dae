"""B0: read-modify-write commits of one counter document, plain sqlite3 vs storage.

The plain ``sqlite3`` loop is the physical ceiling for anything charmspace does
on SQLite: the same pragmas (WAL, ``synchronous=NORMAL``), one ``BEGIN
IMMEDIATE`` … ``SELECT`` … ``UPDATE``/``INSERT`` … ``COMMIT`` per increment, and
the document stored as JSON text like charmspace stores it. The storage loop
does the same increments through :mod:`charmspace.storage` (ACL check,
validation, optimistic read check, history, notifications). Rounds alternate
so that machine noise hits both alike; the figures are medians.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bench.cli import parser, run_and_print
from charmspace.identity import Identity
from charmspace.storage import Commit, creation_proof, entity_id, open_storage

COUNTER = entity_id({"bench": "B0", "document": "counter"})


def plain_sqlite(directory: Path, n: int) -> float:
    """Seconds for ``n`` increments with plain sqlite3."""
    db = sqlite3.connect(directory / "b0.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA busy_timeout = 5000")
    db.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, value TEXT NOT NULL)")
    start = time.perf_counter()
    for _ in range(n):
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT value FROM docs WHERE id = ?", (COUNTER,)).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO docs (id, value) VALUES (?, ?)", (COUNTER, json.dumps({"value": 1}))
            )
        else:
            value = json.loads(row[0])["value"] + 1
            db.execute(
                "UPDATE docs SET value = ? WHERE id = ?", (json.dumps({"value": value}), COUNTER)
            )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    (text,) = db.execute("SELECT value FROM docs WHERE id = ?", (COUNTER,)).fetchone()
    db.close()
    assert json.loads(text) == {"value": n}
    return elapsed


def through_storage(directory: Path, n: int) -> float:
    """Seconds for ``n`` increments through charmspace.storage on SQLite."""
    owner = Identity.from_passphrase("bench B0 owner").did
    space_key = Identity.from_passphrase("bench B0 space")
    space = space_key.did
    with open_storage(f"sqlite://{directory}") as storage:
        storage.create_space(space, owner, proof=creation_proof(space_key, owner))
        start = time.perf_counter()
        for _ in range(n):
            rev = storage.read(space, COUNTER, owner)
            value = rev.value["value"] + 1 if isinstance(rev.value, dict) else 1
            storage.commit(
                Commit(space, owner, {COUNTER: {"value": value}}, reads={COUNTER: rev.seq})
            )
        elapsed = time.perf_counter() - start
        assert storage.read(space, COUNTER, owner).value == {"value": n}
    return elapsed


def run(n: int = 10_000, rounds: int = 5) -> dict[str, object]:
    b0: list[float] = []
    ours: list[float] = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-b0-") as tmp:
            b0.append(n / plain_sqlite(Path(tmp), n))
        with tempfile.TemporaryDirectory(prefix="bench-b0-storage-") as tmp:
            ours.append(n / through_storage(Path(tmp), n))
    b0_median, ours_median = statistics.median(b0), statistics.median(ours)
    return {
        "bench": "B0_storage",
        "b0_commits_per_s": round(b0_median),
        "storage_commits_per_s": round(ours_median),
        "ratio": round(ours_median / b0_median, 3),
        "rounds": rounds,
        "n": n,
    }


def main(argv: list[str] | None = None) -> None:
    args = parser("bench.b0_storage", __doc__, "commits", quick=(1000, 3)).parse_args(argv)
    run_and_print(args, run, full=(10000, 5), quick=(1000, 3))


if __name__ == "__main__":
    main()
