"""B5: 8 concurrent clients send signed events to one counter charm over HTTP on loopback.

A real ``charmspace serve`` process (SQLite storage in a temporary directory) and,
as the baseline, a no-op FastAPI JSON endpoint served by the same uvicorn
settings (HTTP/1.1 with h11, asyncio loop, no access log) in another process.
The same client code drives both: 8 ``httpx.AsyncClient``s in this process, each
signing its requests with :class:`charmspace.client.SignedAuth` and sending
the next only when the previous answered (8 requests in flight). Against the
server each request is ``POST …/streams/increment?wait=commit``: the answer
comes once the event's commit is durable. Against the baseline it is a POST of
the same body to ``/noop``, which parses the JSON and answers ``{"ok": true}``.

Figures: events/s (all clients' events ÷ wall time), p50/p99 latency of one
request as the client sees it, and ``ratio`` = events/s ÷ baseline requests/s
measured in the same run (rounds alternate). The count is checked at the end.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, JsonValue

from bench.cli import parser, run_and_print
from bench.server import charmspace_serve, free_port, start, stop
from bench.stats import percentile
from charmspace.client import AsyncClient, SignedAuth
from charmspace.identity import Identity

CLIENTS = 8


class _Event(BaseModel):
    event: JsonValue


def noop_app() -> FastAPI:
    """The baseline: parse a JSON body, answer a JSON object (``uvicorn --factory``)."""
    app = FastAPI()

    @app.post("/noop")
    async def noop(body: _Event) -> dict[str, bool]:
        return {"ok": True}

    return app


async def _drive(
    url: str, path: str, identities: list[Identity], n: int
) -> tuple[float, list[float]]:
    """Each identity sends ``n`` requests one after another; all identities at once."""
    latencies: list[float] = []
    body = b'{"event": {}}'
    headers = {"Content-Type": "application/json"}

    async def one(identity: Identity) -> None:
        async with httpx.AsyncClient(base_url=url, auth=SignedAuth(identity), timeout=60) as http:
            for _ in range(n):
                start = time.perf_counter()
                response = await http.post(path, content=body, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200 or not response.json().get("ok"):
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")

    start = time.perf_counter()
    await asyncio.gather(*(one(identity) for identity in identities))
    return time.perf_counter() - start, latencies


async def _server_round(url: str, n: int) -> dict[str, float]:
    owner = Identity.generate()
    others = [Identity.generate() for _ in range(CLIENTS - 1)]
    async with AsyncClient(url, owner) as client:
        await client.spaces.create()
        charm = (await client.charms.create("counter"))["id"]
        for other in others:
            await client.spaces.set_acl(owner.did, other.did, "write")
        path = f"/api/spaces/{owner.did}/charms/{charm}/streams/increment?wait=commit"
        await _drive(url, path, [owner, *others], 5)  # warm-up, not measured
        before = await client.cell(owner.did, charm, "value").get()
        elapsed, latencies = await _drive(url, path, [owner, *others], n)
        after = await client.cell(owner.did, charm, "value").get()
    if after - before != CLIENTS * n:
        raise RuntimeError(f"the counter moved by {after - before}, not {CLIENTS * n}")
    return _figures(elapsed, latencies, CLIENTS * n)


async def _noop_round(url: str, n: int) -> dict[str, float]:
    identities = [Identity.generate() for _ in range(CLIENTS)]
    await _drive(url, "/noop", identities, 5)
    elapsed, latencies = await _drive(url, "/noop", identities, n)
    return _figures(elapsed, latencies, CLIENTS * n)


def _figures(elapsed: float, latencies: list[float], total: int) -> dict[str, float]:
    return {
        "per_s": total / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
    }


def run(n: int = 500, rounds: int = 3) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="charmspace-b5-") as tmp:
        root = Path(tmp)
        server_port, noop_port = free_port(), free_port()
        server_url = f"http://127.0.0.1:{server_port}"
        noop_url = f"http://127.0.0.1:{noop_port}"
        server = start(charmspace_serve(server_port, root / "data"), server_url, root)
        noop = start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.b5_http:noop_app",
                "--factory",
                "--port",
                str(noop_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            noop_url,
            Path(__file__).resolve().parent.parent,
        )
        try:
            ours: list[dict[str, float]] = []
            base: list[dict[str, float]] = []
            for _ in range(rounds):
                ours.append(asyncio.run(_server_round(server_url, n)))
                base.append(asyncio.run(_noop_round(noop_url, n)))
        finally:
            stop(server)
            stop(noop)

    def med(results: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in results)

    ratios = [o["per_s"] / b["per_s"] for o, b in zip(ours, base, strict=True)]
    return {
        "bench": "B5_http",
        "events_per_s": round(med(ours, "per_s")),
        "p50_ms": round(med(ours, "p50_ms"), 2),
        "p99_ms": round(med(ours, "p99_ms"), 2),
        "noop_per_s": round(med(base, "per_s")),
        "noop_p50_ms": round(med(base, "p50_ms"), 2),
        "noop_p99_ms": round(med(base, "p99_ms"), 2),
        "ratio": round(statistics.median(ratios), 3),
        "clients": CLIENTS,
        "rounds": rounds,
        "n_per_client": n,
    }


def main(argv: list[str] | None = None) -> None:
    args = parser("bench.b5_http", __doc__, "events per client", quick=(100, 1)).parse_args(argv)
    run_and_print(args, run, full=(500, 3), quick=(100, 1))


if __name__ == "__main__":
    main()
