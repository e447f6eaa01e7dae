"""B3: reactive propagation — a chain of derived cells, and a fan-out from one input.

Built with the low-level unit API on the memory backend: one data cell
``input`` and derived cells registered with ``unit.derive(name, fn,
inputs=[...])``.

- *chain*: ``d1 = input + 1``, ``d2 = d1 + 1``, …, ``dN = d(N-1) + 1`` (N = 100).
- *fan-out*: ``d_k = input + k`` for k = 1 … N (N = 1,000), all reading ``input``.

One change is ``async with runtime.edit(): input.set(i)`` followed by ``await
runtime.idle()`` (the wave ran and its outputs committed); the figure is the
median ms per change. Goals: chain < 5 ms, fan-out < 50 ms. Final values are
checked. The growth table (06-quality.md) repeats both at sizes 10², 10³ (and
10⁴ outside ``--quick``), one extra JSON line per shape with ms per change and
µs per derived cell — which must stay flat for linear growth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from charmspace import Runtime
from charmspace.identity import Identity
from charmspace.runtime import Cell


def _plus(k: int) -> Callable[[Any], int]:
    return lambda v: (v or 0) + k


async def measure(shape: str, size: int, changes: int) -> float:
    """Median seconds per input change for ``shape`` ("chain" or "fanout") of ``size`` cells."""
    runtime = Runtime("memory://", identity=Identity.from_passphrase("bench"))
    try:
        space = runtime.create_space(name="B3")
        unit = runtime.unit(space, f"b3-{shape}-{size}")
        source = unit.cell("input", 0)
        cells: list[Cell[Any]] = []
        prev = source
        for k in range(1, size + 1):
            if shape == "chain":
                prev = unit.derive(f"d{k}", _plus(1), inputs=[prev])
                cells.append(prev)
            else:
                cells.append(unit.derive(f"d{k}", _plus(k), inputs=[source]))
        await unit.start()
        await runtime.idle()
        times: list[float] = []
        for i in range(1, changes + 1):
            start = time.perf_counter()
            async with runtime.edit():
                source.set(i)
            await runtime.idle()
            times.append(time.perf_counter() - start)
        if shape == "chain":
            assert cells[-1].get() == changes + size, cells[-1].get()
        else:
            values = [c.get() for c in cells]
            assert values == [changes + k for k in range(1, size + 1)], values[:3]
    finally:
        await runtime.close()
    return statistics.median(times)


def run(quick: bool = False) -> list[dict[str, object]]:
    chain_n, fan_n = 100, 1_000
    chain_changes, fan_changes = (20, 10) if quick else (200, 50)
    chain = asyncio.run(measure("chain", chain_n, chain_changes)) * 1e3
    fan = asyncio.run(measure("fanout", fan_n, fan_changes)) * 1e3
    lines: list[dict[str, object]] = [
        {
            "bench": "B3_reactive",
            "chain_ms": round(chain, 3),
            "fanout_ms": round(fan, 3),
            "goal_chain_ms": 5,
            "goal_fanout_ms": 50,
            "goal_met": chain < 5 and fan < 50,
            "chain_size": chain_n,
            "fanout_size": fan_n,
            "chain_changes": chain_changes,
            "fanout_changes": fan_changes,
        }
    ]
    sizes = [100, 1_000] if quick else [100, 1_000, 10_000]
    for shape in ("chain", "fanout"):
        growth: dict[str, object] = {"bench": f"B3_growth_{shape}"}
        for size in sizes:
            changes = max(5, min(50, 200_000 // (size * 10))) if not quick else 5
            ms = asyncio.run(measure(shape, size, changes)) * 1e3
            growth[f"ms_{size}"] = round(ms, 3)
            growth[f"us_per_cell_{size}"] = round(ms * 1e3 / size, 2)
        lines.append(growth)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.b3_reactive", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer changes, sizes up to 10³")
    args = parser.parse_args(argv)
    for line in run(args.quick):
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
