"""B3-tenants: one space's slow derived values must not delay another space's.

Ten tenant spaces each hold a charm whose derived value takes 100 ms; a driver
changes each tenant's input every 50 ms, so every tenant is always computing.
An eleventh space holds a fast derived value (``input + 1``). One measured
change is ``async with runtime.edit(): input.set(i)`` in the eleventh space,
then waiting until that space's derived value is committed; the figures are
p50/p99 milliseconds over the changes. Goal: p99 < 5 ms.

The tenants' 100 ms derive comes in three kinds:

- ``async``: ``await asyncio.sleep(0.1)`` (I/O in an async derive);
- ``sync-blocking``: ``time.sleep(0.1)`` (blocking I/O in a plain ``def``),
  which the runtime moves off the event loop after its first slow run;
- ``sync-cpu``: 100 ms of pure-Python arithmetic, also moved off the loop, but
  still sharing the interpreter's lock with it (reported, no goal).

Each kind runs on ``memory://`` and on SQLite; a baseline with no tenants gives
the same-run ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from typing import Any

from charmspace import Runtime
from charmspace.identity import Identity

TENANTS = 10
SLOW_SECONDS = 0.1


async def _async_slow(v: Any) -> Any:
    await asyncio.sleep(SLOW_SECONDS)
    return v


def _blocking_slow(v: Any) -> Any:
    time.sleep(SLOW_SECONDS)
    return v


def _cpu_slow(v: Any) -> Any:
    end = time.perf_counter() + SLOW_SECONDS
    n = 0
    while time.perf_counter() < end:
        n += 1
    return v


KINDS = {"async": _async_slow, "sync-blocking": _blocking_slow, "sync-cpu": _cpu_slow}


async def measure(url: str, kind: str | None, changes: int) -> list[float]:
    """Seconds from edit to committed derived value in the fast space, per change."""
    user = Identity.from_passphrase("bench B3-tenants")
    runtime = Runtime(url, identity=user)
    stop = asyncio.Event()
    drivers: list[asyncio.Task[None]] = []
    try:
        if kind is not None:
            for t in range(TENANTS):
                space = runtime.create_space(name=f"tenant-{t}")
                unit = runtime.unit(space, "slow")
                source = unit.cell("input", 0)
                unit.derive("slow", KINDS[kind], inputs=[source])
                await unit.start()

                async def drive(cell: Any = source) -> None:
                    i = 0
                    while not stop.is_set():
                        i += 1
                        async with runtime.edit():
                            cell.set(i)
                        await asyncio.sleep(0.05)

                drivers.append(asyncio.create_task(drive()))
        fast_space = runtime.create_space(name="fast")
        unit = runtime.unit(fast_space, "fast")
        source = unit.cell("input", 0)
        out = unit.derive("plus_one", lambda v: v + 1, inputs=[source])
        await unit.start()
        propagator = runtime.host(fast_space).propagator
        await asyncio.sleep(0.3)  # tenants busy
        times: list[float] = []
        for i in range(1, changes + 1):
            start = time.perf_counter()
            async with runtime.edit():
                source.set(i)
            await propagator.settled()
            times.append(time.perf_counter() - start)
            assert out.get() == i + 1, out.get()
            await asyncio.sleep(0.005)
    finally:
        stop.set()
        await asyncio.gather(*drivers)
        await runtime.close()
    return times


def _percentiles(times: list[float]) -> tuple[float, float]:
    ms = sorted(t * 1e3 for t in times)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return statistics.median(ms), p99


def run(quick: bool = False) -> list[dict[str, object]]:
    changes = 100 if quick else 400
    lines: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("memory", "sqlite"):
            url = "memory://" if backend == "memory" else f"sqlite:///{tmp}/{backend}"
            base50, base99 = _percentiles(asyncio.run(measure(url, None, changes)))
            for kind in KINDS:
                if backend == "sqlite":
                    url = f"sqlite:///{tmp}/{kind}"
                p50, p99 = _percentiles(asyncio.run(measure(url, kind, changes)))
                lines.append(
                    {
                        "bench": "B3_tenants",
                        "backend": backend,
                        "tenant_derive": kind,
                        "tenants": TENANTS,
                        "p50_ms": round(p50, 3),
                        "p99_ms": round(p99, 3),
                        "no_tenants_p50_ms": round(base50, 3),
                        "no_tenants_p99_ms": round(base99, 3),
                        "goal_p99_ms": None if kind == "sync-cpu" else 5,
                        "goal_met": None if kind == "sync-cpu" else p99 < 5,
                        "changes": changes,
                    }
                )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.b3_tenants", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100 changes instead of 400")
    args = parser.parse_args(argv)
    for line in run(args.quick):
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
