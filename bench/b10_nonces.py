"""B10: what replay protection costs at its limits: time per nonce and memory per nonce.

The server's :class:`~charmspace.server.auth.NonceCache` with its default limits
(1,000,000 nonces, 10,000 per DID) is filled the way a flood of fresh
identities fills it: 100 DIDs at their cap. Then, with the cache full, new
nonces arrive from fresh DIDs, so every one of them makes the biggest holder
forget one (the eviction path, with its periodic rebuild of the expiry heap).
Reported: microseconds per ``add`` while filling and while evicting (median,
p99, and the worst single call: one rebuild of the expiry heap happens in the
run, and so do the interpreter's full garbage collections), and resident memory
per remembered nonce (``/proc/self/statm``, before and after filling). The
baseline, measured in the same run: one Ed25519 verification of a request's
signature, which every signed request costs before its nonce is looked at.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import secrets
import statistics
import time

from charmspace.identity import Identity, verify
from charmspace.server.auth import NonceCache
from charmspace.server.errors import ServerBusyError
from charmspace.signing import request_message, sign_request

SKEW = 300.0


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verify_us(n: int = 2000) -> float:
    """Median microseconds of one request signature's verification: the baseline."""
    me = Identity.generate()
    header = sign_request(me, "GET", "/api/session", b"", 1_800_000_000, "n" * 22)
    message = request_message("GET", "/api/session", b"", header.ts, header.nonce, me.did)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        verify(me.did, message, header.sig)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e6, 2)


def run(capacity: int, per_did: int, evictions: int) -> dict[str, object]:
    # DIDs as the cache sees them (it never parses one): distinct did:key-shaped strings,
    # each filled to half its cap so that the flood can go on after the cache is full.
    dids = [f"did:key:z6Mk{secrets.token_urlsafe(33)}" for _ in range(2 * capacity // per_did)]
    nonces = [secrets.token_urlsafe(16) for _ in range(capacity + evictions)]
    start = 1_800_000_000
    gc.collect()
    before = rss_bytes()
    cache = NonceCache(capacity, per_did, SKEW)
    fill: list[float] = []
    for n in range(capacity):
        started = time.perf_counter()
        cache.add(dids[n % len(dids)], nonces[n], start, start)
        fill.append(time.perf_counter() - started)
    gc.collect()
    held = rss_bytes() - before
    evict: list[float] = []
    refused = 0
    for n in range(evictions):
        ts = start + 1 + n // 10_000  # the flood goes on, one second per 10,000 requests
        started = time.perf_counter()
        try:
            cache.add(dids[n % len(dids)], nonces[capacity + n], ts, ts)
        except ServerBusyError:
            refused += 1
        evict.append(time.perf_counter() - started)
    assert len(cache) == capacity
    return {
        "capacity": capacity,
        "per_did": per_did,
        "fill_us_p50": round(statistics.median(fill) * 1e6, 2),
        "fill_us_p99": round(percentile(fill, 0.99) * 1e6, 2),
        "evict_us_p50": round(statistics.median(evict) * 1e6, 2),
        "evict_us_p99": round(percentile(evict, 0.99) * 1e6, 2),
        "evict_us_max": round(max(evict) * 1e6, 1),
        "refused": refused,
        "bytes_per_nonce": round(held / capacity),
        "mib_at_capacity": round(held / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.b10_nonces", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 nonces instead of 10^6")
    args = parser.parse_args(argv)
    capacity = 100_000 if args.quick else 1_000_000
    # Past ``capacity`` evictions the expiry heap is rebuilt once: the worst call shows it.
    result = run(capacity, per_did=10_000, evictions=capacity + capacity // 10)
    print(json.dumps({"bench": "b10_nonces", **result, "verify_us_p50": verify_us()}), flush=True)


if __name__ == "__main__":
    main()
