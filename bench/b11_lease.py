"""B11: what a lease on a space costs, and how soon another process gets a space.

- ``take_release_us``: one uncontended ``async with store.lease(…)`` on SQLite
  (taking is one write transaction on ``leases.sqlite``, releasing another),
  with memory's in-process lock for reference;
- ``renew_us``: one renewal (what a holder pays every third of ``seconds``);
- ``handover_ms``: from a holder's release to the moment a process that has
  been waiting a second gets the space (bounded by the 0.5 s polling cap);
- ``takeover_ms``: from a killed holder's expiry to the moment the waiting
  process gets the space.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.cli import parser, run_and_print
from charmspace.identity import Identity
from charmspace.storage import open_storage
from charmspace.storage.backends.sqlite import SQLiteBackend
from charmspace.storage.interface import AsyncStorage

OWNER = Identity.from_passphrase("bench B11 owner").did
SECONDS = 1.0

# argv: directory, space, "hold" (print, hold until stdin closes) or "wait" (print when held)
CHILD = """
import asyncio, sys, time
from charmspace.storage import open_storage
from charmspace.storage.interface import AsyncStorage

store = AsyncStorage(open_storage("sqlite:///" + sys.argv[1]))


async def main():
    async with store.lease(sys.argv[2], sys.argv[2], seconds=float(sys.argv[4])):
        print(time.time(), flush=True)
        if sys.argv[3] == "hold":
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(main())
"""


def _child(directory: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), OWNER, mode, str(SECONDS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


async def _cycles(store: AsyncStorage, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        async with store.lease(OWNER, OWNER, seconds=30):
            pass
    return (time.perf_counter() - start) / n * 1e6


def take_release(url: str, n: int) -> float:
    with open_storage(url) as storage:
        storage.ensure_space(OWNER, OWNER)
        return asyncio.run(_cycles(AsyncStorage(storage), n))


def renew(directory: Path, n: int) -> float:
    with open_storage(f"sqlite:///{directory}") as storage:
        storage.ensure_space(OWNER, OWNER)
        assert isinstance(storage.backend, SQLiteBackend)
        records = storage.backend.lease_records()
        records.take(OWNER, OWNER, "bench", 30, time.time())
        start = time.perf_counter()
        for _ in range(n):
            claim = records.renew(OWNER, "bench", 30, time.time())
        elapsed = time.perf_counter() - start
        assert claim is not None and claim.token == "bench"
        return elapsed / n * 1e6


async def _handover(directory: Path) -> float:
    store = AsyncStorage(open_storage(f"sqlite:///{directory}"))
    store.storage.ensure_space(OWNER, OWNER)
    try:
        async with store.lease(OWNER, OWNER, seconds=SECONDS):
            waiter = _child(directory, "wait")
            await asyncio.sleep(1.0)  # the waiter's polling has reached its cap
        released = time.time()
        assert waiter.stdout is not None
        took = float(await asyncio.to_thread(waiter.stdout.readline))
        waiter.wait()
        return (took - released) * 1000
    finally:
        store.storage.close()


def takeover(directory: Path) -> float:
    with open_storage(f"sqlite:///{directory}") as storage:
        storage.ensure_space(OWNER, OWNER)
    holder = _child(directory, "hold")
    assert holder.stdout is not None
    holder.stdout.readline()
    waiter = _child(directory, "wait")
    time.sleep(0.5)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    db = sqlite3.connect(directory / "leases.sqlite")
    (expires,) = db.execute("SELECT expires FROM leases").fetchone()
    db.close()
    assert waiter.stdout is not None
    took = float(waiter.stdout.readline())
    waiter.wait()
    return (took - expires) * 1000


def run(n: int = 2000, rounds: int = 5) -> dict[str, object]:
    sqlite_us: list[float] = []
    memory_us: list[float] = []
    renew_us: list[float] = []
    handover: list[float] = []
    takeovers: list[float] = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-b11-") as tmp:
            sqlite_us.append(take_release(f"sqlite:///{tmp}/a", n))
            memory_us.append(take_release("memory://", n))
            renew_us.append(renew(Path(tmp) / "b", n))
            handover.append(asyncio.run(_handover(Path(tmp) / "c")))
            takeovers.append(takeover(Path(tmp) / "d"))
    return {
        "bench": "B11_lease",
        "take_release_us": round(statistics.median(sqlite_us), 1),
        "memory_take_release_us": round(statistics.median(memory_us), 1),
        "renew_us": round(statistics.median(renew_us), 1),
        "handover_ms_median": round(statistics.median(handover), 1),
        "handover_ms_max": round(max(handover), 1),
        "takeover_ms_median": round(statistics.median(takeovers), 1),
        "takeover_ms_max": round(max(takeovers), 1),
        "rounds": rounds,
        "n": n,
    }


def main(argv: list[str] | None = None) -> None:
    args = parser("bench.b11_lease", __doc__, "lease cycles", quick=(500, 2)).parse_args(argv)
    run_and_print(args, run, full=(2000, 7), quick=(500, 2))


if __name__ == "__main__":
    main()
