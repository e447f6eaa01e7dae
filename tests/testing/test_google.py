"""The fake Google behaves like Google where our code could tell: PKCE, single-use codes,
rotation, revocation, expiry on its clock, and Google's own error bodies."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from charmspace.runtime import FakeClock
from charmspace.testing._serve import serve_asgi
from charmspace.testing.google import FakeGoogle

REDIRECT = "http://app.test/callback"
VERIFIER = "v" * 64
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def google(clock: FakeClock) -> FakeGoogle:
    return FakeGoogle(clock=clock, lifetime=60)


@pytest.fixture
async def http(google: FakeGoogle) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url="http://google.test", transport=httpx.ASGITransport(app=google)
    ) as client:
        yield client


async def code_for(http: httpx.AsyncClient, google: FakeGoogle) -> str:
    response = await http.get(
        "/o/oauth2/v2/auth",
        params={
            "client_id": google.client_id,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid email",
            "code_challenge": CHALLENGE.decode(),
            "code_challenge_method": "S256",
            "state": "s1",
        },
    )
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


def exchange(
    google: FakeGoogle, code: str, verifier: str = VERIFIER, **more: str
) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": REDIRECT,
        "client_id": google.client_id,
        "client_secret": google.client_secret,
        **more,
    }


async def test_a_code_exchanged_with_its_verifier_gives_tokens_once(
    http: httpx.AsyncClient, google: FakeGoogle
) -> None:
    code = await code_for(http, google)
    first = await http.post("/token", data=exchange(google, code))
    assert first.status_code == 200
    body = first.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 60
    assert body["scope"] == "openid email"
    assert google.check_access_token(body["access_token"]) == "valid"
    again = await http.post("/token", data=exchange(google, code))
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert google.calls["authorization_code"] == 2


@pytest.mark.parametrize(
    "change, error",
    [
        ({"verifier": "w" * 64}, "invalid_grant"),
        ({"verifier": ""}, "invalid_grant"),
        ({"redirect_uri": "http://evil.test/callback"}, "redirect_uri_mismatch"),
        ({"client_secret": "wrong"}, "invalid_client"),
    ],
)
async def test_a_wrong_exchange_is_refused_as_google_refuses_it(
    http: httpx.AsyncClient, google: FakeGoogle, change: dict[str, str], error: str
) -> None:
    code = await code_for(http, google)
    verifier = change.pop("verifier", VERIFIER)
    response = await http.post("/token", data=exchange(google, code, verifier, **change))
    assert response.status_code == (401 if error == "invalid_client" else 400)
    assert response.json()["error"] == error
    assert "error_description" in response.json()


async def test_access_tokens_expire_on_the_clock(
    http: httpx.AsyncClient, google: FakeGoogle, clock: FakeClock
) -> None:
    token = google.issue()["access_token"]
    assert google.check_access_token(token) == "valid"
    assert google.email_of(token) == "alice@example.com"
    await clock.advance(60)
    assert google.check_access_token(token) == "expired"
    assert google.email_of(token) is None
    assert google.check_access_token("ya29.never-issued") == "invalid"
    userinfo = await http.get("/v1/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert userinfo.status_code == 401
    assert userinfo.json() == {
        "error": "invalid_request",
        "error_description": "Invalid Credentials",
    }


async def test_rotation_invalidates_the_old_refresh_token(
    http: httpx.AsyncClient, google: FakeGoogle
) -> None:
    google.rotate = True
    old = google.issue()["refresh_token"]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": old,
        "client_id": google.client_id,
        "client_secret": google.client_secret,
    }
    first = await http.post("/token", data=form)
    assert first.status_code == 200 and first.json()["refresh_token"] != old
    second = await http.post("/token", data=form)
    assert second.status_code == 400
    assert second.json() == {"error": "invalid_grant", "error_description": "Bad Request"}
    assert google.calls["refresh_token"] == 2


async def test_revoking_ends_the_refresh_token_and_its_access_tokens(
    http: httpx.AsyncClient, google: FakeGoogle
) -> None:
    issued = google.issue()
    response = await http.post("/revoke", data={"token": issued["refresh_token"]})
    assert response.status_code == 200
    assert google.check_access_token(issued["access_token"]) == "invalid"
    assert not google.refresh_token_is_active(issued["refresh_token"])
    again = await http.post("/revoke", data={"token": issued["refresh_token"]})
    assert again.status_code == 400 and again.json()["error"] == "invalid_token"


async def test_the_user_can_refuse_consent(http: httpx.AsyncClient, google: FakeGoogle) -> None:
    google.deny = True
    response = await http.get(
        "/o/oauth2/v2/auth",
        params={
            "client_id": google.client_id,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "state": "s",
        },
    )
    assert parse_qs(urlsplit(response.headers["location"]).query) == {
        "error": ["access_denied"],
        "state": ["s"],
    }


def test_google_auths_own_client_refreshes_against_the_fake() -> None:
    """The fake answers a real Google client library the way Google does."""
    import google.auth.exceptions
    import google.auth.transport.requests
    import google.oauth2.credentials

    fake = FakeGoogle(lifetime=3600)
    with serve_asgi(fake) as base:
        credentials = google.oauth2.credentials.Credentials(
            token=None,
            refresh_token=fake.issue(["openid"])["refresh_token"],
            token_uri=f"{base}/token",
            client_id=fake.client_id,
            client_secret=fake.client_secret,
        )
        credentials.refresh(google.auth.transport.requests.Request())
        assert credentials.token is not None
        assert fake.check_access_token(credentials.token) == "valid"
        assert credentials.expiry is not None
        fake.invalid_grant = True
        with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
            credentials.refresh(google.auth.transport.requests.Request())


def test_a_dropped_connection_is_dropped_for_real_over_http() -> None:
    fake = FakeGoogle()
    fake.drop = True
    with serve_asgi(fake) as base, pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{base}/token", data={"grant_type": "refresh_token"})
    assert fake.calls["refresh_token"] == 1


def test_expire_ends_a_token_now_and_gmail_would_refuse_it() -> None:
    google = FakeGoogle(FakeClock())
    token = google.issue()["access_token"]
    assert google.check_access_token(token) == "valid"
    google.expire(token)
    assert google.check_access_token(token) == "expired"
    google.expire("not-a-token")  # unknown: nothing to end
