"""B2: a handler of charm A ``call``s charm B's stream in another space, N times.

Charm A (space SA) has a handler whose state declares ``target: Stream[...]``,
bound to the ``increment`` stream of a ``counter`` charm B in space SB. Each
event to A runs ``await target.call({})`` — B's handler runs in its own
transaction in SB, commits, and the result comes back — then A counts the call
in its own cell and commits. The benchmark sends N events to A one after
another (``await a.stream("ping").call({})``, the next only after the previous
committed), on the memory backend.

Figures: calls/s (N ÷ wall time for the whole loop) and p50/p99 of the inner
call latency in ms (``time.perf_counter`` around ``await target.call({})``
inside A's handler). The outer round trip (send to A, A's commit) is reported
too. Goal: inner p99 < 10 ms.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bench.cli import parser, run_and_print
from bench.stats import percentile
from charmspace import Runtime
from charmspace.identity import Identity
from charmspace.patterns import Default, handler, pattern
from charmspace.runtime import Cell, Stream

# The handler cannot capture pattern references, but it may append to a plain
# module-level list: that is where the inner latencies go.
_INNER: list[float] = []


@handler
async def ping(event: dict[str, Any], *, target: Stream[dict[str, Any]], calls: Cell[int]) -> int:
    start = time.perf_counter()
    result = await target.call({})
    _INNER.append(time.perf_counter() - start)
    if not result.ok:
        raise RuntimeError(f"the inner call failed: {result.error!r}")
    n = (calls.get() or 0) + 1
    calls.set(n)
    return n


@pattern
def caller(target: Stream[dict[str, Any]], calls: Default[int, 0]) -> dict[str, Any]:
    """Calls ``target`` once per ``ping``."""
    return {"calls": calls, "ping": ping.bind(target=target, calls=calls)}


async def one_round(n: int) -> dict[str, float]:
    runtime = Runtime("memory://", identity=Identity.from_passphrase("bench"))
    try:
        space_a = runtime.create_space(name="SA")
        space_b = runtime.create_space(name="SB")
        b = await runtime.charms.create("counter", space=space_b)
        a = await runtime.charms.create(
            caller, space=space_a, inputs={"target": b.stream("increment")}
        )
        stream = a.stream("ping")
        await runtime.idle()
        # warm-up (not measured): resolution caches, first-call paths
        for _ in range(10):
            assert (await stream.call({})).ok
        _INNER.clear()
        outer: list[float] = []
        start = time.perf_counter()
        for _ in range(n):
            t = time.perf_counter()
            result = await stream.call({})
            outer.append(time.perf_counter() - t)
            assert result.ok, result.error
        elapsed = time.perf_counter() - start
        await runtime.idle()
        assert a["calls"].get() == n + 10, a["calls"].get()
        assert b["value"].get() == n + 10, b["value"].get()
        assert len(_INNER) == n
        inner = list(_INNER)
    finally:
        await runtime.close()
    return {
        "calls_per_s": n / elapsed,
        "p50_ms": percentile(inner, 0.50) * 1e3,
        "p99_ms": percentile(inner, 0.99) * 1e3,
        "max_ms": max(inner) * 1e3,
        "outer_p50_ms": percentile(outer, 0.50) * 1e3,
        "outer_p99_ms": percentile(outer, 0.99) * 1e3,
    }


def run(n: int = 2_000, rounds: int = 5) -> dict[str, object]:
    results = [asyncio.run(one_round(n)) for _ in range(rounds)]

    def med(key: str, digits: int = 3) -> float:
        return round(statistics.median(r[key] for r in results), digits)

    return {
        "bench": "B2_call",
        "calls_per_s": round(med("calls_per_s")),
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "max_ms": med("max_ms"),
        "outer_p50_ms": med("outer_p50_ms"),
        "outer_p99_ms": med("outer_p99_ms"),
        "goal_p99_ms": 10,
        "goal_met": med("p99_ms") < 10,
        "rounds": rounds,
        "n": n,
    }


def main(argv: list[str] | None = None) -> None:
    args = parser("bench.b2_call", __doc__, "calls", quick=(500, 3)).parse_args(argv)
    run_and_print(args, run, full=(2000, 5), quick=(500, 3))


if __name__ == "__main__":
    main()
