"""B1: one ``counter`` charm, N ``increment`` events from outside, on SQLite vs B0.

The bundled ``counter`` pattern (``runtime.charms.create("counter")``) runs on
``sqlite:///<tmpdir>``; the benchmark sends N events with
``charm.stream("increment").send({})`` in a loop and then ``await
runtime.idle()``. Every event is one handler run and one transaction commit
(read ``value``, write ``value + 1``), plus the derived ``doubled`` value kept
up to date. The figure is events/s; the goal is ≥ 0.5 × B0, the plain
``sqlite3`` read-modify-write loop of :mod:`bench.b0_storage`, run in the same
process with rounds alternating. The same workload on ``memory://`` is
reported for reference (no storage cost at all: what the runtime itself costs).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.b0_storage import plain_sqlite
from bench.cli import parser, run_and_print
from charmspace import Runtime
from charmspace.identity import Identity


async def counter_events(storage: str, n: int) -> float:
    """Seconds for ``n`` ``increment`` events to one counter charm on ``storage``."""
    runtime = Runtime(storage, identity=Identity.from_passphrase("bench"))
    try:
        charm = await runtime.charms.create("counter")
        stream = charm.stream("increment")
        await runtime.idle()
        start = time.perf_counter()
        for _ in range(n):
            stream.send({})
        await runtime.idle()
        elapsed = time.perf_counter() - start
        value, doubled = charm["value"].get(), charm["doubled"].get()
        assert value == n, f"counter is {value}, expected {n}"
        assert doubled == 2 * n, f"doubled is {doubled}, expected {2 * n}"
    finally:
        await runtime.close()
    return elapsed


def run(n: int = 10_000, rounds: int = 5) -> dict[str, object]:
    b0: list[float] = []
    sqlite_rates: list[float] = []
    memory_rates: list[float] = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-b1-b0-") as tmp:
            b0.append(n / plain_sqlite(Path(tmp), n))
        with tempfile.TemporaryDirectory(prefix="bench-b1-") as tmp:
            sqlite_rates.append(n / asyncio.run(counter_events(f"sqlite://{tmp}", n)))
        memory_rates.append(n / asyncio.run(counter_events("memory://", n)))
    b0_median = statistics.median(b0)
    b1_median = statistics.median(sqlite_rates)
    return {
        "bench": "B1_counter",
        "b1_events_per_s": round(b1_median),
        "b0_commits_per_s": round(b0_median),
        "ratio": round(b1_median / b0_median, 3),
        # the median of the per-round ratios (each round's pair ran back to back)
        "ratio_paired": round(
            statistics.median(b1 / base for b1, base in zip(sqlite_rates, b0, strict=True)), 3
        ),
        "goal_ratio": 0.5,
        "goal_met": b1_median / b0_median >= 0.5,
        "memory_events_per_s": round(statistics.median(memory_rates)),
        "rounds": rounds,
        "n": n,
    }


def main(argv: list[str] | None = None) -> None:
    args = parser("bench.b1_counter", __doc__, "events", quick=(1000, 3)).parse_args(argv)
    run_and_print(args, run, full=(10000, 5), quick=(1000, 3))


if __name__ == "__main__":
    main()
