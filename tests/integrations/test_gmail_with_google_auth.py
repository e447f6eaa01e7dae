"""Gmail agentic search with the real ``google_auth`` charm and a fake Google over HTTP.

The token the fake Gmail checks is one the fake Google issued; when it has
expired, the auth charm refreshes it through its ``refresh`` stream (one call to
Google's token endpoint, whether the scan or the charm's own alarm asks first),
and the scan finds mail with the new one.
"""

from __future__ import annotations

from gmail_world import google_world

from charmspace.integrations.google.oauth import GMAIL_READONLY
from charmspace.testing.gmail import messages_matching
from charmspace.testing.llm import gmail_policy


async def test_given_a_valid_token_scan_finds_mail_without_a_refresh(storage_url: str) -> None:
    async with google_world(storage_url, gmail_policy(searches=1)) as world:
        world.sign_in()
        charm = await world.search_charm(goal="invoice")
        await world.runtime.idle()
        assert charm["connection"].get() == "connected"
        assert (await charm.stream("scan").call({})).ok
        await world.runtime.idle(jobs=True)
        assert charm["progress"].get()["status"] == "done"
        expected = min(10, len(list(messages_matching(world.gmail, "subject:invoice"))))
        assert expected and len(charm["results"].get()) == expected
        assert world.google.calls["refresh_token"] == 0


async def test_given_an_expired_token_when_the_user_clicks_scan_the_auth_charm_refreshes_once(
    storage_url: str,
) -> None:
    async with google_world(storage_url, gmail_policy(searches=1), lifetime=60) as world:
        charm = await world.search_charm(goal="invoice")
        issued_at = world.clock.now()
        issued = world.google.issue([GMAIL_READONLY])
        await world.clock.advance(61)
        first = world.store(issued, issued_at)  # the sign-in the auth charm holds: expired
        assert world.google.check_access_token(first["token"]) == "expired"
        assert (await charm.stream("scan").call({})).ok
        await world.runtime.idle(jobs=True)
        assert charm["progress"].get()["status"] == "done", charm["progress"].get()
        assert charm["results"].get()
        assert world.google.calls["refresh_token"] == 1
        assert 401 not in world.gmail.statuses
        auth = world.auth_charm["auth"].get()
        assert auth["token"] != first["token"]
        assert world.google.check_access_token(auth["token"]) == "valid"
        assert auth["refresh_token"] == first["refresh_token"]
        assert auth["user"] == {"email": "alice@example.com"}
