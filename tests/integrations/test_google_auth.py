"""The google_auth charm: its refresh stream (the contract consumers rely on) and its alarm.

Each test is a story: given a signed-in auth charm, when something happens to
the token, then what a consumer sees. They run in memory and on SQLite.
"""

from __future__ import annotations

import html
from typing import Any

from charmspace import Runtime
from charmspace.errors import IntegrationError
from charmspace.integrations.google.oauth import GMAIL_READONLY, GoogleOAuth
from charmspace.library.google_auth import google_auth, google_auth_short
from charmspace.patterns import Charm
from charmspace.patterns.html import render_html
from charmspace.patterns.render import render_ui
from charmspace.runtime import FakeClock
from charmspace.testing.google import FakeGoogle


async def signed_in(runtime: Runtime, google: FakeGoogle, pattern: Any = google_auth) -> Charm:
    """An auth charm holding a fresh sign-in (as the callback would have written it)."""
    space = runtime.create_space(name="google-auth")
    issued = google.issue([GMAIL_READONLY])
    auth = {
        "token": issued["access_token"],
        "token_type": "Bearer",
        "scope": [GMAIL_READONLY],
        "expires_in": issued["expires_in"],
        "expires_at": int((runtime.clock.now() + issued["expires_in"]) * 1000),
        "refresh_token": issued["refresh_token"],
        "user": {"email": "alice@example.com", "name": "Alice", "picture": ""},
    }
    charm = await runtime.charms.create(pattern, space=space, inputs={"auth": auth})
    await runtime.idle()
    return charm


async def test_given_a_valid_token_when_a_consumer_names_another_then_nothing_is_refreshed(
    runtime: Runtime, google: FakeGoogle
) -> None:
    charm = await signed_in(runtime, google)
    token = charm["auth"].get()["token"]
    result = await charm.stream("refresh").call({"stale_token": "ya29.someone-elses-old-token"})
    assert result.ok and result.value == "fresh"
    assert charm["auth"].get()["token"] == token
    assert google.calls["refresh_token"] == 0


async def test_given_an_expired_token_when_refresh_is_called_then_the_cell_holds_a_new_one(
    runtime: Runtime, google: FakeGoogle, clock: FakeClock
) -> None:
    """Google was down when the charm tried to refresh ahead of time; the token expired."""
    charm = await signed_in(runtime, google)
    old = charm["auth"].get()
    google.status = 503
    await clock.advance(3601)
    await runtime.idle()
    assert charm["is_expired"].get() is True
    assert "expired" in charm["status"].get()
    google.status = None
    result = await charm.stream("refresh").call({"stale_token": old["token"]})
    await runtime.idle()
    assert result.ok
    new = charm["auth"].get()
    assert new["token"] != old["token"]
    assert google.check_access_token(new["token"]) == "valid"
    assert new["refresh_token"] == old["refresh_token"]
    assert new["scope"] == [GMAIL_READONLY]
    assert new["user"]["email"] == "alice@example.com"
    assert new["expires_at"] == int((clock.now() + 3600) * 1000)
    assert charm["is_expired"].get() is False


async def test_given_a_valid_token_when_the_caller_was_refused_it_then_it_is_refreshed(
    runtime: Runtime, google: FakeGoogle
) -> None:
    """A consumer whose call got 401 names the token it used: refreshed even before expiry."""
    charm = await signed_in(runtime, google)
    old = charm["auth"].get()["token"]
    result = await charm.stream("refresh").call({"stale_token": old})
    assert result.ok and result.value == "refreshed"
    assert charm["auth"].get()["token"] != old


async def test_given_a_revoked_grant_when_refreshing_then_the_token_stays_and_ui_says_sign_in(
    runtime: Runtime, google: FakeGoogle, clock: FakeClock
) -> None:
    charm = await signed_in(runtime, google)
    before = charm["auth"].get()
    google.invalid_grant = True
    await clock.advance(3601)
    result = await charm.stream("refresh").call({"stale_token": before["token"]})
    await runtime.idle()
    assert not result.ok
    assert isinstance(result.error, IntegrationError)
    assert result.error.reason == "invalid_grant"
    assert charm["auth"].get() == before
    assert charm["needs_sign_in"].get() is True
    assert "re-authenticate" in charm["status"].get()


async def test_given_google_is_down_when_refresh_is_called_then_the_reason_says_so(
    runtime: Runtime, google: FakeGoogle
) -> None:
    charm = await signed_in(runtime, google)
    before = charm["auth"].get()
    google.status = 503
    result = await charm.stream("refresh").call({"stale_token": before["token"]})
    assert isinstance(result.error, IntegrationError)
    assert result.error.reason == "upstream_503"
    google.status = None
    google.drop = True
    result = await charm.stream("refresh").call({"stale_token": before["token"]})
    assert isinstance(result.error, IntegrationError)
    assert result.error.reason == "upstream_unreachable"
    assert charm["auth"].get() == before


async def test_given_an_idle_signed_in_charm_then_it_refreshes_itself_before_expiry(
    runtime: Runtime, google: FakeGoogle, clock: FakeClock
) -> None:
    charm = await signed_in(runtime, google)
    first = charm["auth"].get()["token"]
    await clock.advance(3600 - 300 - 1)
    await runtime.idle()
    assert google.calls["refresh_token"] == 0
    await clock.advance(2)
    await runtime.idle()
    second = charm["auth"].get()["token"]
    assert google.calls["refresh_token"] == 1
    assert second != first and google.check_access_token(second) == "valid"
    await clock.advance(3600 - 300 + 1)
    await runtime.idle()
    assert google.calls["refresh_token"] == 2


async def test_given_an_idle_charm_then_a_minute_of_time_commits_at_most_twice(
    runtime: Runtime, google: FakeGoogle, clock: FakeClock
) -> None:
    charm = await signed_in(runtime, google)
    head = runtime.storage.head(charm.space, runtime.principal)
    for _ in range(60):
        await clock.advance(1)
    await runtime.idle()
    assert runtime.storage.head(charm.space, runtime.principal) - head <= 2
    assert charm["time_remaining"].get() in (3480, 3540)


async def test_given_the_short_variant_then_the_token_is_refreshed_every_thirty_seconds(
    runtime: Runtime, google: FakeGoogle, clock: FakeClock
) -> None:
    charm = await signed_in(runtime, google, google_auth_short)
    for _ in range(95):
        await clock.advance(1)
        await runtime.idle()  # each refresh lands at the second it was due
    assert google.calls["refresh_token"] == 3
    assert 0 < charm["time_remaining"].get() <= 60


async def test_given_no_google_client_then_refresh_says_it_is_not_configured(
    runtime: Runtime, google: FakeGoogle
) -> None:
    charm = await signed_in(runtime, google)
    runtime.services = type(runtime.services)()
    result = await charm.stream("refresh").call({"stale_token": charm["auth"].get()["token"]})
    assert isinstance(result.error, IntegrationError)
    assert result.error.reason == "not_configured"


async def test_when_the_user_signs_out_then_the_cell_is_empty_and_google_revoked_it(
    runtime: Runtime, google: FakeGoogle
) -> None:
    charm = await signed_in(runtime, google)
    refresh_token = charm["auth"].get()["refresh_token"]
    result = await charm.stream("sign_out").call({})
    await runtime.idle()
    assert result.ok
    assert charm["auth"].get()["token"] == ""
    assert charm["is_authenticated"].get() is False
    assert not google.refresh_token_is_active(refresh_token)


async def test_when_the_user_clicks_sign_in_then_a_login_url_appears(
    runtime: Runtime, google: FakeGoogle, oauth: GoogleOAuth
) -> None:
    space = runtime.create_space(name="google-auth")
    charm = await runtime.charms.create(google_auth, space=space)
    result = await charm.stream("sign_in").call({})
    await runtime.idle()
    assert result.ok
    url = charm["login_url"].get()
    assert url.startswith("http://google.test/o/oauth2/v2/auth?")
    assert "code_challenge_method=S256" in url and "access_type=offline" in url
    assert "gmail.readonly" in url


async def test_the_ui_leads_from_sign_in_to_google_and_never_shows_the_token(
    runtime: Runtime, google: FakeGoogle
) -> None:
    space = runtime.create_space(name="google-auth")
    charm = await runtime.charms.create(google_auth, space=space)
    await runtime.idle()
    page = render_html(render_ui(charm))
    assert "Sign in with Google" in page and "Sign out" not in page
    assert "Continue to Google" not in page
    await charm.stream("sign_in").call({})
    await runtime.idle()
    page = render_html(render_ui(charm))
    assert "Continue to Google" in page
    assert html.escape(charm["login_url"].get()) in page

    signed = await signed_in(runtime, google)
    page = render_html(render_ui(signed))
    assert "Signed in as alice@example.com" in page and "Sign out" in page
    assert signed["auth"].get()["token"] not in page
    assert signed["auth"].get()["refresh_token"] not in page


async def test_a_longer_margin_refreshes_earlier(
    runtime: Runtime, google: FakeGoogle, clock: FakeClock
) -> None:
    space = runtime.create_space(name="google-auth")
    issued = google.issue([GMAIL_READONLY])
    auth = {
        "token": issued["access_token"],
        "token_type": "Bearer",
        "scope": [GMAIL_READONLY],
        "expires_in": 3600,
        "expires_at": int((clock.now() + 3600) * 1000),
        "refresh_token": issued["refresh_token"],
        "user": {},
    }
    await runtime.charms.create(
        google_auth, space=space, inputs={"auth": auth, "refresh_margin": 1200}
    )
    await runtime.idle()
    await clock.advance(2399)
    await runtime.idle()
    assert google.calls["refresh_token"] == 0
    await clock.advance(2)
    await runtime.idle()
    assert google.calls["refresh_token"] == 1
