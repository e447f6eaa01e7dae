"""B7: does storage stay bounded? Disk and memory as the document and the history grow.

Three workloads, each in a fresh storage directory with the default retention
(a URL's own options, if given with ``--options``, are appended to it):

- **push**: one handler appends a 100-byte item to one list, N times. The file
  (space file plus its WAL) at the end, the events/s of the first and the last
  1,000 events, and the bytes the file grew per event in each 1,000.
- **send**: a sender charm in one space sends N events to a charm in another
  space (durable delivery: an outbox row per send, the target's inbox row).
  Bytes of disk per send at the end, first and last 1,000-event rates.
- **counter**: N increments of one counter on ``memory://`` and on SQLite:
  RSS growth (resident set, from ``/proc/self/statm``) and the file size at
  each tenth of the run.

Events are sent in chunks of 1,000 and each chunk is awaited with
``runtime.idle()``, so a chunk's rate includes everything its events cost.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from charmspace.identity import Identity
from charmspace.runtime import Cell, Runtime, Stream

USER = Identity.from_passphrase("bench b7")
SERVICE = Identity.from_passphrase("bench b7 service")
CHUNK = 1000
ITEM = "x" * 88  # with its JSON quotes and the list's comma: about 100 bytes stored per item


def directory_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _runtime(url: str) -> Runtime:
    return Runtime(url, identity=USER, service=SERVICE, random=random.Random(0))


async def _chunks(
    runtime: Runtime, stream: Stream[Any], n: int, event: Any, directory: Path | None
) -> tuple[list[float], list[int]]:
    """Send ``n`` events in chunks; each chunk's events/s and the directory size after it."""
    rates: list[float] = []
    sizes: list[int] = []
    sent = 0
    while sent < n:
        k = min(CHUNK, n - sent)
        start = time.perf_counter()
        for _ in range(k):
            stream.send(event)
        await runtime.idle()
        rates.append(k / (time.perf_counter() - start))
        sent += k
        if directory is not None:
            sizes.append(directory_bytes(directory))
    return rates, sizes


async def push(directory: Path, n: int, options: str) -> dict[str, Any]:
    runtime = _runtime(f"sqlite:///{directory}{options}")
    try:
        unit = runtime.unit(runtime.create_space(name="todo"), "todo")
        items = unit.cell("items", [])

        def add(event: Any, *, items: Cell[Any]) -> None:
            items.push(event["text"])

        stream = unit.handler("add", add, state={"items": items})
        await unit.start()
        await runtime.idle()
        base = directory_bytes(directory)
        rates, sizes = await _chunks(runtime, stream, n, {"text": ITEM}, directory)
        assert len(items.get()) == n
    finally:
        await runtime.close()
    grown = [b - a for a, b in zip([base, *sizes], sizes, strict=False)]
    return {
        "events": n,
        "file_mb": round(directory_bytes(directory) / 1e6, 2),
        "first_1000_per_s": round(rates[0]),
        "last_1000_per_s": round(rates[-1]),
        "last_over_first": round(rates[-1] / rates[0], 2),
        "bytes_per_event_by_1000": [round(g / CHUNK) for g in grown],
        "file_mb_by_1000": [round(s / 1e6, 2) for s in sizes],
    }


async def send(directory: Path, n: int, options: str) -> dict[str, Any]:
    runtime = _runtime(f"sqlite:///{directory}{options}")
    try:
        target = runtime.unit(runtime.create_space(name="ledger"), "ledger")
        count = target.cell("count", 0)

        def receive(event: Any, *, count: Cell[Any]) -> None:
            count.set(count.get() + 1)

        inbox = target.handler("receive", receive, state={"count": count})
        sender = runtime.unit(runtime.create_space(name="shop"), "shop")
        sales = sender.cell("sales", 0)

        def sell(event: Any, *, sales: Cell[Any], ledger: Stream[Any]) -> None:
            sales.set(sales.get() + 1)
            ledger.send({"line": event["item"]})

        stream = sender.handler("sell", sell, state={"sales": sales, "ledger": inbox})
        await target.start()
        await sender.start()
        await runtime.idle()
        base = directory_bytes(directory)
        rates, sizes = await _chunks(runtime, stream, n, {"item": "apple"}, directory)
        await runtime.idle()
        assert count.get() == n, f"{count.get()} of {n} sends arrived"
    finally:
        await runtime.close()
    total = directory_bytes(directory) - base
    return {
        "sends": n,
        "disk_bytes_per_send": round(total / n),
        "first_1000_per_s": round(rates[0]),
        "last_1000_per_s": round(rates[-1]),
        "last_over_first": round(rates[-1] / rates[0], 2),
        "file_mb_by_1000": [round(s / 1e6, 2) for s in sizes],
    }


async def counter(url: str, directory: Path | None, n: int) -> dict[str, Any]:
    runtime = _runtime(url)
    try:
        unit = runtime.unit(runtime.create_space(name="counter"), "counter")
        value = unit.cell("value", 0)

        def increment(event: Any, *, value: Cell[Any]) -> None:
            value.set(value.get() + 1)

        stream = unit.handler("increment", increment, state={"value": value})
        await unit.start()
        await runtime.idle()
        await _chunks(runtime, stream, min(n, 2 * CHUNK), {}, None)  # warm up
        gc.collect()
        rss_before = rss_bytes()
        tenth = max(CHUNK, n // 10)
        sizes = []
        rates = []
        done = 0
        while done < n:
            k = min(tenth, n - done)
            chunk_rates, _ = await _chunks(runtime, stream, k, {}, None)
            rates.extend(chunk_rates)
            done += k
            if directory is not None:
                sizes.append(directory_bytes(directory))
        gc.collect()
        rss_growth = rss_bytes() - rss_before
    finally:
        await runtime.close()
    return {
        "events": n,
        "rss_growth_mib": round(rss_growth / 2**20, 1),
        "file_mb_by_tenth": [round(s / 1e6, 2) for s in sizes],
        "first_1000_per_s": round(rates[0]),
        "last_1000_per_s": round(rates[-1]),
    }


def run(n_push: int, n_send: int, n_counter: int, options: str) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "B7_growth", "options": options}
    with tempfile.TemporaryDirectory(prefix="bench-b7-push-") as tmp:
        out["push"] = asyncio.run(push(Path(tmp), n_push, options))
    with tempfile.TemporaryDirectory(prefix="bench-b7-send-") as tmp:
        out["send"] = asyncio.run(send(Path(tmp), n_send, options))
    out["counter_memory"] = asyncio.run(counter(f"memory://{options}", None, n_counter))
    with tempfile.TemporaryDirectory(prefix="bench-b7-counter-") as tmp:
        out["counter_sqlite"] = asyncio.run(
            counter(f"sqlite:///{tmp}{options}", Path(tmp), n_counter)
        )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.b7_growth", description=__doc__)
    p.add_argument("--quick", action="store_true", help="2,000 pushes and sends, 10,000 counts")
    p.add_argument("--push", type=int, default=None, help="pushes (default 10,000)")
    p.add_argument("--send", type=int, default=None, help="sends (default 10,000)")
    p.add_argument("--counter", type=int, default=None, help="increments (default 100,000)")
    p.add_argument("--options", default="", help="appended to each storage URL, e.g. '?x=1'")
    args = p.parse_args(argv)
    quick = (2000, 2000, 10_000)
    full = (10_000, 10_000, 100_000)
    n_push, n_send, n_counter = quick if args.quick else full
    result = run(args.push or n_push, args.send or n_send, args.counter or n_counter, args.options)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
