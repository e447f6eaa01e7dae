"""B12: a flood of browser logins with 20,000 sessions kept: what the event loop pays.

The server's :class:`~charmspace.server.sessions.SessionStore` with its file in
a temporary directory, loaded with ``--sessions`` sessions (20,000). Logins
are offered at ``--rate`` per second (200) for ``--seconds`` (2), each one
:meth:`~SessionStore.open` on the event loop, as the login route calls it.
Meanwhile a probe task sleeps 1 ms again and again and records how late it
wakes: what any other request or WebSocket on the loop waits.

Two ways of keeping the file, alternated round by round in one process:

- ``before``: the file rewritten whole on each login, on the loop, as the
  server did before it wrote the file behind (:func:`write_as_before`, that
  code as it was: Python's streaming JSON encoder, one list per session);
- ``behind``: the server's way now, written behind by its writer task
  (:mod:`charmspace.write_behind`), at most once a second, in a thread,
  encoded in pieces.

Reported for each (medians over rounds): logins done per second; the time
on the loop of one login (median, p99); the probe's lateness (p50, p99, max);
writes of the file and megabytes written per second of flood.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest.mock import patch

from charmspace import write_behind
from charmspace.identity import Identity
from charmspace.private_json import write_private_text
from charmspace.server.sessions import SessionStore

from .stats import percentile

PROBE = 0.001  # the probe sleeps this long each time


class Written:
    """Counts the file's writes and their size (the write itself is the real one)."""

    def __init__(self) -> None:
        self.writes = 0
        self.bytes = 0

    def __call__(self, path: Path, text: str) -> None:
        write_private_text(path, text)
        self.writes += 1
        self.bytes += path.stat().st_size


def write_as_before(store: SessionStore, written: Written) -> None:
    """What each login cost before: every live session copied, the whole file dumped."""
    assert store.path is not None
    now = store.clock()
    store.kept = {d: v for d, v in store.kept.items() if v[2] > now}
    value = {d: list(v) for d, v in store.kept.items()}
    temporary = store.path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        json.dump(value, out)
    os.replace(temporary, store.path)
    written.writes += 1
    written.bytes += store.path.stat().st_size


def filled(directory: Path, sessions: int) -> Path:
    """A sessions file holding ``sessions`` live sessions, of 1,000 identities."""
    path = directory / "filled.json"
    dids = [Identity.generate().did for _ in range(1_000)]
    store = SessionStore(path=path, max_sessions=sessions, max_sessions_per_address=sessions)
    for n in range(sessions):
        store.open(dids[n % len(dids)], f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    store.flush()
    return path


async def flood(store: SessionStore, way: str, rate: float, seconds: float) -> dict[str, Any]:
    """Offer logins at ``rate`` for ``seconds`` while the probe measures the loop."""
    lateness: list[float] = []
    on_loop: list[float] = []
    flooding = True
    started = float("inf")  # when the flood starts; the probe's samples before it are dropped

    async def probe() -> None:
        while flooding:
            slept = time.perf_counter()
            await asyncio.sleep(PROBE)
            if slept >= started:
                lateness.append(time.perf_counter() - slept - PROBE)

    dids = [Identity.generate().did for _ in range(100)]
    written = Written()
    with patch.object(write_behind, "write_private_text", written):
        if way == "behind":
            store.start_writing()
        probing = asyncio.ensure_future(probe())
        await asyncio.sleep(0.05)  # the probe is running
        started = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) < started + seconds:
            due = started + n / rate
            if due > now:
                await asyncio.sleep(due - now)
            t = time.perf_counter()
            store.open(dids[n % len(dids)], f"192.0.2.{n % 200}")
            if way == "before":
                write_as_before(store, written)
            on_loop.append(time.perf_counter() - t)
            n += 1
            await asyncio.sleep(0)
        elapsed = time.perf_counter() - started
        flooding = False
        await probing
        writes, size = written.writes, written.bytes  # during the flood
        if way == "behind":
            await store.stop_writing()
    return {
        "logins_per_s": n / elapsed,
        "login_ms_p50": statistics.median(on_loop) * 1e3,
        "login_ms_p99": percentile(on_loop, 0.99) * 1e3,
        "probe_late_ms_p50": percentile(lateness, 0.5) * 1e3,
        "probe_late_ms_p99": percentile(lateness, 0.99) * 1e3,
        "probe_late_ms_max": max(lateness) * 1e3,
        "writes_per_s": writes / elapsed,
        "mb_written_per_s": size / elapsed / 1e6,
    }


def run(sessions: int, rate: float, seconds: float, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        source = filled(Path(directory), sessions)
        results: dict[str, list[dict[str, Any]]] = {"before": [], "behind": []}
        for r in range(rounds):
            ways = ["before", "behind"] if r % 2 == 0 else ["behind", "before"]
            for way in ways:
                path = Path(directory) / f"{way}-{r}.json"
                shutil.copyfile(source, path)
                store = SessionStore(path=path, max_sessions_per_address=sessions)
                assert len(store.kept) == sessions
                results[way].append(asyncio.run(flood(store, way, rate, seconds)))
    medians = {
        way: {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
        for way, runs in results.items()
    }
    return {
        "benchmark": "b12_sessions",
        "sessions": sessions,
        "offered_logins_per_s": rate,
        "seconds": seconds,
        "rounds": rounds,
        **medians,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.b12_sessions", description=__doc__)
    p.add_argument("--quick", action="store_true", help="2,000 sessions, 1 s, 2 rounds")
    p.add_argument("--sessions", type=int, default=None, help="sessions kept (20,000)")
    p.add_argument("--rate", type=float, default=200.0, help="logins offered per second")
    p.add_argument("--seconds", type=float, default=None, help="of flood per round (2)")
    p.add_argument("--rounds", type=int, default=None, help="per way, alternated (3)")
    args = p.parse_args(argv)
    sessions = args.sessions or (2_000 if args.quick else 20_000)
    seconds = args.seconds or (1.0 if args.quick else 2.0)
    rounds = args.rounds or (2 if args.quick else 3)
    print(json.dumps(run(sessions, args.rate, seconds, rounds)), flush=True)


if __name__ == "__main__":
    main()
