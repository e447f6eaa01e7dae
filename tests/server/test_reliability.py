"""R1: 8 clients × 500 concurrent increment calls to one counter, over HTTP to a real server.

Pass means the final value is exactly 4,000 and every call got its result.
"""

from __future__ import annotations

import asyncio
import time

from charmspace.client import AsyncClient
from charmspace.identity import Identity
from real_server import ServerProcess

CLIENTS = 8
CALLS = 500
IN_FLIGHT = 16


async def test_r1_concurrent_increments_over_http(server: ServerProcess) -> None:
    owner = Identity.generate()
    async with AsyncClient(server.url, owner) as client:
        await client.spaces.create()
        charm = (await client.charms.create("counter"))["id"]
        others = [Identity.generate() for _ in range(CLIENTS - 1)]
        for other in others:
            await client.spaces.set_acl(owner.did, other.did, "write")

    async def run(identity: Identity) -> list[dict[str, object]]:
        # All 500 calls are issued at once; IN_FLIGHT of them are on the wire at a time
        # (a connection pool's job, done here because httpx's pool slows down
        # quadratically with the requests queued in it).
        in_flight = asyncio.Semaphore(IN_FLIGHT)

        async def call() -> dict[str, object]:
            async with in_flight:
                result: dict[str, object] = await stream.call({})
                return result

        async with AsyncClient(server.url, identity, timeout=120) as client:
            stream = client.stream(owner.did, charm, "increment")
            return list(await asyncio.gather(*(call() for _ in range(CALLS))))

    started = time.monotonic()
    results = await asyncio.gather(*(run(i) for i in [owner, *others]))
    elapsed = time.monotonic() - started
    answers = [answer for per_client in results for answer in per_client]
    assert len(answers) == CLIENTS * CALLS
    assert all(answer["ok"] for answer in answers)
    seqs = [answer["seq"] for answer in answers]
    assert len(set(seqs)) == len(seqs)  # each call its own commit
    async with AsyncClient(server.url, owner) as client:
        assert await client.cell(owner.did, charm, "value").get() == CLIENTS * CALLS
    print(f"R1: {CLIENTS * CALLS} calls in {elapsed:.1f} s ({CLIENTS * CALLS / elapsed:.0f}/s)")
    assert elapsed < 120
