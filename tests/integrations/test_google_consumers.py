"""Many consumers, one auth charm: the seed's story at scale.

Ten charms in ten spaces find their token refused at the same moment and each
asks the auth charm to refresh it. Google is called once, every consumer ends
with the new token, the rotated refresh token is the one kept, and the scope
survives.
"""

from __future__ import annotations

import asyncio
from typing import Any

from charmspace import Runtime
from charmspace.integrations.google.oauth import GMAIL_READONLY, GoogleOAuth
from charmspace.library.google_auth import google_auth
from charmspace.patterns import cell, handler, pattern, wish
from charmspace.runtime import Cell, Stream
from charmspace.testing.google import FakeGoogle


@handler
async def use(
    event: dict[str, Any],
    *,
    auth: Cell[dict[str, Any]],
    refresh: Stream[dict[str, Any]],
    seen: Cell[str],
) -> None:
    """A Gmail call was refused with 401: ask the auth charm, then note the token now held."""
    refused = auth.get()["token"]
    result = await refresh.call({"stale_token": refused})
    if not result.ok:
        assert result.error is not None
        raise result.error
    seen.set(auth.get()["token"])


@pattern
def consumer() -> dict[str, Any]:
    found = wish("#googleAuth")
    seen = cell("")
    return {
        "seen": seen,
        "use": use.bind(
            auth=found["result"]["auth"], refresh=found["result"]["refresh"], seen=seen
        ),
    }


async def test_ten_consumers_in_ten_spaces_refresh_at_once_with_one_provider_call(
    runtime: Runtime, google: FakeGoogle, oauth: GoogleOAuth
) -> None:
    google.rotate = True
    issued = google.issue([GMAIL_READONLY])
    space = runtime.create_space(name="google-auth")
    auth = await runtime.charms.create(
        google_auth,
        space=space,
        inputs={
            "auth": {
                "token": issued["access_token"],
                "token_type": "Bearer",
                "scope": [GMAIL_READONLY],
                "expires_in": 3600,
                "expires_at": int((runtime.clock.now() + 3600) * 1000),
                "refresh_token": issued["refresh_token"],
                "user": {"email": "alice@example.com"},
            }
        },
    )
    await runtime.favorites().add(auth)
    consumers = [
        await runtime.charms.create(consumer, space=runtime.create_space(name=f"consumer-{i}"))
        for i in range(10)
    ]
    await runtime.idle()
    results = await asyncio.gather(*(c.stream("use").call({}) for c in consumers))
    await runtime.idle()
    assert [r.ok for r in results] == [True] * 10, [r.error for r in results]
    assert google.calls["refresh_token"] == 1
    assert oauth.provider_calls == 1
    final = auth["auth"].get()
    assert final["token"] != issued["access_token"]
    assert google.check_access_token(final["token"]) == "valid"
    assert final["refresh_token"] != issued["refresh_token"]  # rotated, and the new one kept
    assert google.refresh_token_is_active(final["refresh_token"])
    assert final["scope"] == [GMAIL_READONLY]
    assert final["user"] == {"email": "alice@example.com"}
    assert {c["seen"].get() for c in consumers} == {final["token"]}


async def test_a_hundred_concurrent_refreshes_of_one_token_make_one_provider_call(
    google: FakeGoogle, oauth: GoogleOAuth
) -> None:
    google.rotate = True
    refresh_token = google.issue()["refresh_token"]
    answers = await asyncio.gather(*(oauth.refresh(refresh_token) for _ in range(100)))
    assert google.calls["refresh_token"] == 1
    assert len({a["token"] for a in answers}) == 1
    # A conflicting handler re-run asks again with the same (now rotated) token: same answer.
    again = await oauth.refresh(refresh_token)
    assert again == answers[0] and google.calls["refresh_token"] == 1
