"""B5 (WebSocket): one change to a counter delivered to 100 clients subscribed over ``/api/ws``.

A real ``charmspace serve`` process (SQLite in a temporary directory). 100
WebSocket connections in this process, each upgrade signed, each subscribed to
the same counter's ``value``. Then, ``n`` times, one after another: a signed
``POST …/streams/increment?wait=commit`` over HTTP, and a wait until all 100
clients have received the new value. A delivery's latency is the time from
just before that POST was sent to the moment a client's frame with the new value
was parsed, so it includes the HTTP request and the commit as well as the
fan-out; the clients parse their frames in this one process, on the same 2
cores as the server.

Figures: p50, p99 and max delivery latency over all deliveries, the median time
until the last of the 100 clients had the value, and the median time the POST
itself took (its commit was durable when it answered).
"""

from __future__ import annotations

import asyncio
import statistics
import time

from websockets.asyncio.client import ClientConnection

from bench.cli import parser, run_and_print
from bench.server import serving
from bench.stats import percentile
from bench.ws import connect_signed, frames, send
from charmspace.client import AsyncClient
from charmspace.identity import Identity

CLIENTS = 100


async def _listen(
    ws: ClientConnection, receipts: dict[int, list[float]], complete: dict[int, asyncio.Event]
) -> None:
    async for frame in frames(ws):
        if frame.get("op") != "value":
            raise RuntimeError(f"unexpected frame {frame}")
        value = frame["value"]
        arrived = receipts.setdefault(value, [])
        arrived.append(time.perf_counter())
        if len(arrived) == CLIENTS:
            complete.setdefault(value, asyncio.Event()).set()


async def _round(url: str, n: int) -> dict[str, float]:
    owner = Identity.generate()
    async with AsyncClient(url, owner) as client:
        await client.spaces.create()
        charm = (await client.charms.create("counter"))["id"]
        increment = client.stream(owner.did, charm, "increment")
        receipts: dict[int, list[float]] = {}
        complete: dict[int, asyncio.Event] = {}
        sockets: list[ClientConnection] = []
        subscribe = {"op": "subscribe", "id": 1, "space": owner.did, "charm": charm}
        for _ in range(CLIENTS):
            ws = await connect_signed(url, owner)
            await send(ws, {**subscribe, "path": ["value"]})
            sockets.append(ws)
        listeners = [asyncio.create_task(_listen(ws, receipts, complete)) for ws in sockets]
        try:
            await asyncio.wait_for(complete.setdefault(0, asyncio.Event()).wait(), 30)
            latencies: list[float] = []
            last: list[float] = []
            posts: list[float] = []
            for value in range(1, n + 1):
                done = complete.setdefault(value, asyncio.Event())
                sent = time.perf_counter()
                await increment.call({})
                posts.append(time.perf_counter() - sent)
                await asyncio.wait_for(done.wait(), 30)
                arrived = receipts[value]
                latencies += [t - sent for t in arrived]
                last.append(max(arrived) - sent)
        finally:
            for task in listeners:
                task.cancel()
            for ws in sockets:
                await ws.close()
    return {
        "p50_ms": percentile(latencies, 0.50) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "max_ms": max(latencies) * 1e3,
        "last_client_ms": statistics.median(last) * 1e3,
        "post_ms": statistics.median(posts) * 1e3,
    }


def run(n: int = 200, rounds: int = 3) -> dict[str, object]:
    with serving("charmspace-b5ws-") as url:
        results = [asyncio.run(_round(url, n)) for _ in range(rounds)]

    def med(key: str) -> float:
        return round(statistics.median(r[key] for r in results), 2)

    return {
        "bench": "B5_ws",
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "max_ms": med("max_ms"),
        "last_client_ms": med("last_client_ms"),
        "post_ms": med("post_ms"),
        "clients": CLIENTS,
        "changes": n,
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> None:
    args = parser("bench.b5_ws", __doc__, "changes", quick=(20, 1)).parse_args(argv)
    run_and_print(args, run, full=(200, 3), quick=(20, 1))


if __name__ == "__main__":
    main()
