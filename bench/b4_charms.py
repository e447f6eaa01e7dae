"""B4: many ``counter`` charms in one space on SQLite — memory per idle charm, restart.

Each round uses two fresh subprocesses, so nothing else in the benchmark run
pollutes the process's memory:

1. *create*: open ``Runtime("sqlite:///<tmpdir>")`` with the identity
   ``Identity.from_passphrase("bench")``, create one warm-up charm (imports,
   caches), read the resident set size (``/proc/self/statm``, after
   ``gc.collect()``), create N ``counter`` charms in one space with
   ``runtime.charms.create("counter", space=…)``, let the runtime go idle and
   read the RSS again. The difference ÷ N is the memory per idle (started,
   resident) charm; no tracemalloc, which would inflate it. The creation rate
   is N ÷ the time spent creating.
2. *restart*: a new process opens a new ``Runtime`` on the same directory with
   the same identities and times ``await runtime.charms.get(space, id)`` plus
   ``await charm.stream("increment").call({})`` for one charm created in step 1
   (the one in the middle): the time to the first event after a restart.
   Opening the runtime itself is reported separately.

Goals: < 20 KiB per charm; < 2 s to the first event.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from charmspace import Runtime
from charmspace.identity import Identity

ROOT = Path(__file__).resolve().parent.parent


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _runtime(directory: str) -> Runtime:
    return Runtime(
        f"sqlite://{directory}",
        identity=Identity.from_passphrase("bench"),
        service=Identity.from_passphrase("bench service"),
    )


async def create(directory: str, n: int) -> dict[str, object]:
    runtime = _runtime(directory)
    try:
        space = runtime.create_space(name="B4")
        warm = await runtime.charms.create("counter", space=space)
        assert (await warm.stream("increment").call({})).ok
        await runtime.idle()
        gc.collect()
        before = rss_bytes()
        ids: list[str] = []
        start = time.perf_counter()
        half = 0.0
        for i in range(n):
            charm = await runtime.charms.create("counter", space=space)
            ids.append(charm.id)
            if i + 1 == n // 2:
                half = time.perf_counter() - start
        await runtime.idle()
        elapsed = time.perf_counter() - start
        gc.collect()
        after = rss_bytes()
        assert len(runtime.charms.list(space)) == n + 1
    finally:
        await runtime.close()
    return {
        "space": space,
        "id": ids[n // 2],
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "kib_per_charm": (after - before) / n / 1024,
        "create_per_s": n / elapsed,
        # time for the second half of the charms ÷ the first: ≈ 1 when creation cost is flat
        "create_second_half_time_ratio": (elapsed - half) / half if half else 0.0,
    }


async def restart(directory: str, space: str, charm_id: str) -> dict[str, object]:
    start = time.perf_counter()
    runtime = _runtime(directory)
    opened = time.perf_counter() - start
    try:
        start = time.perf_counter()
        charm = await runtime.charms.get(space, charm_id)
        result = await charm.stream("increment").call({})
        first_event = time.perf_counter() - start
        assert result.ok, result.error
        assert charm["value"].get() == 1, charm["value"].get()
    finally:
        await runtime.close()
    return {"open_s": opened, "first_event_s": first_event}


def _child(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.b4_charms", "--child", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(n: int = 10_000, rounds: int = 3) -> dict[str, object]:
    results: list[dict[str, object]] = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-b4-") as tmp:
            made = _child("create", tmp, str(n))
            again = _child("restart", tmp, str(made["space"]), str(made["id"]))
            results.append({**made, **again})

    def med(key: str) -> float:
        return statistics.median(float(r[key]) for r in results)  # type: ignore[arg-type]

    kib, first = med("kib_per_charm"), med("first_event_s")
    return {
        "bench": "B4_charms",
        "kib_per_charm": round(kib, 2),
        "first_event_after_restart_s": round(first, 4),
        "open_runtime_s": round(med("open_s"), 4),
        "create_per_s": round(med("create_per_s")),
        "create_second_half_time_ratio": round(med("create_second_half_time_ratio"), 2),
        "rss_after_mib": round(med("rss_after_mib"), 1),
        "goal_kib_per_charm": 20,
        "goal_first_event_s": 2,
        "goal_met": kib < 20 and first < 2,
        "rounds": rounds,
        "n": n,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.b4_charms", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 charms, 1 round")
    parser.add_argument("-n", type=int, default=None, help="charms per round")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        what, *rest = args.child
        if what == "create":
            out = asyncio.run(create(rest[0], int(rest[1])))
        else:
            out = asyncio.run(restart(rest[0], rest[1], rest[2]))
        print(json.dumps(out), flush=True)
        return
    n = args.n or (1_000 if args.quick else 10_000)
    rounds = args.rounds or (1 if args.quick else 3)
    print(json.dumps(run(n, rounds)), flush=True)


if __name__ == "__main__":
    main()
