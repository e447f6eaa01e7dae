"""B9: N concurrent refreshes of one refresh token through ``POST /refresh``.

The server app runs in process with its Google client pointed at the fake
Google (in process too, refresh-token rotation on, 20 ms of latency per call so
the requests really overlap). N signed requests for the same refresh token are
sent at once (``asyncio.gather``). Single flight means one call reaches the
provider and every request gets the same answer; with rotation on, a second
call would have failed with ``invalid_grant``.

Figures: provider calls (goal: exactly 1 per round), distinct tokens answered
(goal: 1), wall time for the whole burst in ms.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.cli import parser, run_and_print
from charmspace.client.auth import SignedAuth
from charmspace.identity import Identity
from charmspace.integrations.google.oauth import GoogleOAuth, GoogleSettings
from charmspace.server import Settings, create_app
from charmspace.testing.google import FakeGoogle

ROUTE = "/api/integrations/google-oauth/refresh"


async def one_round(n: int) -> dict[str, float]:
    google = FakeGoogle(rotate=True)
    google.latency = 0.02
    settings = GoogleSettings(
        client_id=google.client_id,
        client_secret=google.client_secret,
        **FakeGoogle.urls("http://google.bench"),
    )
    with tempfile.TemporaryDirectory(prefix="charmspace-b9-") as directory:
        app = create_app(Settings(data=Path(directory), storage="memory://"))
        app.state.google_oauth = GoogleOAuth(settings, transport=httpx.ASGITransport(app=google))
        refresh_token = google.issue()["refresh_token"]
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                base_url="http://charmspace.bench",
                transport=httpx.ASGITransport(app=app),
                auth=SignedAuth(Identity.from_passphrase("bench")),
            ) as http,
        ):
            start = time.perf_counter()
            answers = await asyncio.gather(
                *(http.post(ROUTE, json={"refresh_token": refresh_token}) for _ in range(n))
            )
            elapsed = time.perf_counter() - start
    assert {a.status_code for a in answers} == {200}, {a.status_code for a in answers}
    return {
        "provider_calls": google.calls["refresh_token"],
        "distinct_tokens": len({a.json()["token_info"]["token"] for a in answers}),
        "burst_ms": elapsed * 1e3,
    }


def run(n: int = 100, rounds: int = 5) -> dict[str, object]:
    results = [asyncio.run(one_round(n)) for _ in range(rounds)]
    calls = sorted({int(r["provider_calls"]) for r in results})
    return {
        "bench": "B9_refresh",
        "provider_calls": calls,
        "distinct_tokens": sorted({int(r["distinct_tokens"]) for r in results}),
        "burst_ms": round(statistics.median(r["burst_ms"] for r in results), 1),
        "goal_met": calls == [1],
        "rounds": rounds,
        "n": n,
    }


def main(argv: list[str] | None = None) -> None:
    args = parser(__name__, __doc__, "concurrent refreshes", (100, 2)).parse_args(argv)
    run_and_print(args, run, full=(100, 5), quick=(100, 2))


if __name__ == "__main__":
    main()
