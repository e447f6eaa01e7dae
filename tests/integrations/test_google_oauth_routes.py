"""The server's Google OAuth routes, against the app in process and a fake Google.

Stories: Alice signs in (login, Google's consent, callback) and her auth cell
holds the whole sign-in; every way the callback can be abused or fail leaves the
cell as it was; refresh says which failure it was; logout clears and revokes;
and nobody but the owner of the space ever reads the token over the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from charmspace.client.auth import SignedAuth
from charmspace.identity import Identity
from charmspace.integrations.google.oauth import GMAIL_READONLY, GoogleOAuth
from charmspace.runtime import FakeClock
from charmspace.runtime.secrets import MASK
from charmspace.server import Settings, create_app
from charmspace.testing.google import FakeGoogle

BASE = "http://charmspace.test"
PREFIX = "/api/integrations/google-oauth"
ALICE = Identity.from_passphrase("google routes: alice")
BOB = Identity.from_passphrase("google routes: bob")


@dataclass
class Server:
    app: Any
    transport: httpx.ASGITransport
    oauth: GoogleOAuth
    google: FakeGoogle
    space: str
    charm: str

    def client(self, who: Identity | None = ALICE) -> httpx.AsyncClient:
        auth = SignedAuth(who) if who is not None else None
        return httpx.AsyncClient(base_url=BASE, transport=self.transport, auth=auth)

    @property
    def auth_cell(self) -> dict[str, Any]:
        """A link to the charm's ``auth`` result cell."""
        return {"/": {"link@1": {"space": self.space, "id": self.result_id, "path": ["auth"]}}}

    @property
    def result_id(self) -> str:
        from charmspace.server.deps import docs_of

        return docs_of(self.space, self.charm)[2].id

    async def auth(self, who: Identity = ALICE) -> Any:
        async with self.client(who) as http:
            response = await http.get(f"/api/spaces/{self.space}/charms/{self.charm}/cells/auth")
            response.raise_for_status()
            return response.json()["value"]


@pytest.fixture
async def server(
    tmp_path: Path, google: FakeGoogle, clock: FakeClock, settings_for: Any
) -> AsyncIterator[Server]:
    app = create_app(Settings(data=tmp_path / "data", google=settings_for(google)))
    oauth = GoogleOAuth(
        settings_for(google), clock=clock, transport=httpx.ASGITransport(app=google)
    )
    app.state.google_oauth = oauth
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            base_url=BASE, transport=transport, auth=SignedAuth(ALICE)
        ) as http:
            (await http.post("/api/spaces", json={"space": ALICE.did})).raise_for_status()
            created = await http.post(
                f"/api/spaces/{ALICE.did}/charms", json={"pattern": "google_auth"}
            )
            created.raise_for_status()
            (
                await http.put(
                    f"/api/spaces/{ALICE.did}/acl", json={"subject": BOB.did, "capability": "READ"}
                )
            ).raise_for_status()
        yield Server(app, transport, oauth, google, ALICE.did, created.json()["id"])


async def follow_consent(server: Server, url: str) -> httpx.Response:
    """The browser's trip: Google's consent (auto-approved), then back to our callback."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.google)) as browser:
        consent = await browser.get(url)
    assert consent.status_code == 302
    back = urlsplit(consent.headers["location"])
    async with server.client(None) as browser:
        return await browser.get(f"{back.path}?{back.query}")


async def start_login(server: Server, who: Identity = ALICE) -> httpx.Response:
    async with server.client(who) as http:
        return await http.post(
            f"{PREFIX}/login", json={"auth_cell": server.auth_cell, "scopes": [GMAIL_READONLY]}
        )


async def test_alice_signs_in_and_her_auth_cell_holds_the_whole_sign_in(server: Server) -> None:
    response = await start_login(server)
    assert response.status_code == 200
    url = response.json()["url"]
    query = parse_qs(urlsplit(url).query)
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert query["redirect_uri"] == [f"{BASE}{PREFIX}/callback"]
    assert GMAIL_READONLY in query["scope"][0].split()
    page = await follow_consent(server, url)
    assert page.status_code == 200
    assert "Signed in as alice@example.com" in page.text
    auth = await server.auth()
    assert server.google.check_access_token(auth["token"]) == "valid"
    assert auth["token"] not in page.text and auth["refresh_token"] not in page.text
    assert auth["token_type"] == "Bearer"
    assert GMAIL_READONLY in auth["scope"]
    assert auth["expires_in"] == 3600 and auth["expires_at"] > 0
    assert server.google.refresh_token_is_active(auth["refresh_token"])
    assert auth["user"] == {
        "email": "alice@example.com",
        "name": "Alice Example",
        "picture": "https://example.com/alice.png",
    }


async def test_the_callback_writes_as_the_principal_who_asked(server: Server) -> None:
    url = (await start_login(server)).json()["url"]
    await follow_consent(server, url)
    async with server.client() as http:
        log = (await http.get(f"/api/spaces/{server.space}/log", params={"limit": 1000})).json()
    writes = [e for e in log if e["meta"].get("edit") == "google-oauth"]
    assert [e["principal"] for e in writes] == [ALICE.did]


async def test_a_reader_may_not_start_a_sign_in_for_her_cell(server: Server) -> None:
    response = await start_login(server, BOB)
    assert response.status_code == 403
    assert server.google.calls["authorize"] == 0


@pytest.mark.parametrize(
    "query, reason",
    [
        ("state=forged-state&code=4/x", "unknown_state"),
        ("code=4/x", "unknown_state"),
        (f"state={'s' * 201}&code=4/x", "bad_link"),
        (f"state=forged-state&code={'c' * 2001}", "bad_link"),
    ],
)
async def test_a_forged_state_changes_nothing(server: Server, query: str, reason: str) -> None:
    before = await server.auth()
    async with server.client(None) as browser:
        page = await browser.get(f"{PREFIX}/callback?{query}")
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert reason in page.text and "start the sign-in again" in page.text
    assert await server.auth() == before
    assert server.google.calls["authorization_code"] == 0


async def test_a_reused_state_is_refused_the_second_time(server: Server) -> None:
    url = (await start_login(server)).json()["url"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.google)) as browser:
        back = urlsplit((await browser.get(url)).headers["location"])
    async with server.client(None) as browser:
        first = await browser.get(f"{back.path}?{back.query}")
        signed_in = await server.auth()
        second = await browser.get(f"{back.path}?{back.query}")
    assert first.status_code == 200 and second.status_code == 400
    assert "unknown_state" in second.text
    assert await server.auth() == signed_in


async def test_an_expired_state_is_refused(server: Server, clock: FakeClock) -> None:
    before = await server.auth()
    url = (await start_login(server)).json()["url"]
    await clock.advance(601)
    page = await follow_consent(server, url)
    assert page.status_code == 400 and "expired_state" in page.text
    assert await server.auth() == before


async def test_when_the_user_refuses_consent_then_the_page_says_so(server: Server) -> None:
    before = await server.auth()
    server.google.deny = True
    page = await follow_consent(server, (await start_login(server)).json()["url"])
    assert page.status_code == 400 and "access_denied" in page.text
    assert await server.auth() == before


async def test_a_callback_without_a_code_is_refused(server: Server) -> None:
    url = (await start_login(server)).json()["url"]
    state = parse_qs(urlsplit(url).query)["state"][0]
    async with server.client(None) as browser:
        page = await browser.get(f"{PREFIX}/callback", params={"state": state})
    assert page.status_code == 400 and "missing_code" in page.text


async def test_a_stolen_code_without_the_verifier_is_useless(server: Server) -> None:
    """PKCE for real: a code exchanged with another sign-in's verifier fails."""
    before = await server.auth()
    first = (await start_login(server)).json()["url"]
    second = (await start_login(server)).json()["url"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server.google)) as browser:
        code = parse_qs(urlsplit((await browser.get(first)).headers["location"]).query)["code"][0]
    state = parse_qs(urlsplit(second).query)["state"][0]
    async with server.client(None) as browser:
        page = await browser.get(f"{PREFIX}/callback", params={"state": state, "code": code})
    assert page.status_code == 400 and "invalid_grant" in page.text
    assert await server.auth() == before


@pytest.mark.parametrize(
    "fault, reason", [("status", "upstream_503"), ("drop", "upstream_unreachable")]
)
async def test_a_failed_exchange_changes_nothing(server: Server, fault: str, reason: str) -> None:
    before = await server.auth()
    url = (await start_login(server)).json()["url"]
    setattr(server.google, fault, 503 if fault == "status" else True)
    page = await follow_consent(server, url)
    assert page.status_code == 400 and reason in page.text
    assert await server.auth() == before


async def test_a_failed_userinfo_changes_nothing(server: Server) -> None:
    before = await server.auth()
    url = (await start_login(server)).json()["url"]
    server.google.userinfo_status = 500
    page = await follow_consent(server, url)
    assert page.status_code == 400 and "upstream_500" in page.text
    assert await server.auth() == before


async def signed_in(server: Server) -> dict[str, Any]:
    await follow_consent(server, (await start_login(server)).json()["url"])
    auth: dict[str, Any] = await server.auth()
    return auth


async def test_refresh_answers_a_new_token(server: Server, clock: FakeClock) -> None:
    auth = await signed_in(server)
    await clock.advance(10)
    async with server.client() as http:
        response = await http.post(
            f"{PREFIX}/refresh", json={"refresh_token": auth["refresh_token"]}
        )
    assert response.status_code == 200
    info = response.json()["token_info"]
    assert set(info) == {
        "token",
        "token_type",
        "scope",
        "expires_in",
        "expires_at",
        "refresh_token",
    }
    assert info["token"] != auth["token"]
    assert server.google.check_access_token(info["token"]) == "valid"
    assert info["refresh_token"] == auth["refresh_token"]
    assert info["expires_at"] == int((clock.now() + 3600) * 1000)


async def test_refresh_accepts_a_form_body(server: Server) -> None:
    auth = await signed_in(server)
    async with server.client() as http:
        response = await http.post(
            f"{PREFIX}/refresh", data={"refresh_token": auth["refresh_token"]}
        )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "fault, status, reason",
    [
        ("invalid_grant", 401, "invalid_grant"),
        ("status", 502, "upstream_503"),
        ("drop", 504, "upstream_unreachable"),
    ],
)
async def test_refresh_says_which_failure_it_was(
    server: Server, fault: str, status: int, reason: str
) -> None:
    auth = await signed_in(server)
    setattr(server.google, fault, 503 if fault == "status" else True)
    async with server.client() as http:
        response = await http.post(
            f"{PREFIX}/refresh", json={"refresh_token": auth["refresh_token"]}
        )
    assert response.status_code == status
    assert response.json()["error"]["reason"] == reason
    assert auth["refresh_token"] not in response.text


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[]", b'{"refresh_token": 3}', b'{"refresh_token": ""}', b"{}"]
)
async def test_refresh_refuses_a_malformed_body(server: Server, body: bytes) -> None:
    async with server.client() as http:
        response = await http.post(
            f"{PREFIX}/refresh", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "BadRequestError"


async def test_a_hundred_concurrent_refreshes_make_one_provider_call(server: Server) -> None:
    auth = await signed_in(server)
    server.google.rotate = True
    async with server.client() as http:
        responses = await asyncio.gather(
            *(
                http.post(f"{PREFIX}/refresh", json={"refresh_token": auth["refresh_token"]})
                for _ in range(100)
            )
        )
    assert {r.status_code for r in responses} == {200}
    assert server.google.calls["refresh_token"] == 1
    tokens = {r.json()["token_info"]["token"] for r in responses}
    assert len(tokens) == 1


async def test_logout_clears_the_cell_revokes_and_no_past_read_returns_the_token(
    server: Server,
) -> None:
    auth = await signed_in(server)
    async with server.client() as http:
        response = await http.post(f"{PREFIX}/logout", json={"auth_cell": server.auth_cell})
        assert response.status_code == 200
        assert response.json() == {"ok": True, "revoked": True}
        assert (await server.auth())["token"] == ""
        assert not server.google.refresh_token_is_active(auth["refresh_token"])
        assert server.google.check_access_token(auth["token"]) == "invalid"
        head = (await http.get(f"/api/spaces/{server.space}/head")).json()
        log = (await http.get(f"/api/spaces/{server.space}/log", params={"limit": 1000})).json()
        for entry in log:
            for id in entry["ids"]:
                for at in range(entry["seq"], head + 1):
                    past = await http.get(
                        f"/api/spaces/{server.space}/docs/{id}", params={"at": at}
                    )
                    assert auth["token"] not in past.text
                    assert auth["refresh_token"] not in past.text


async def test_logout_clears_the_cell_even_when_google_is_down(server: Server) -> None:
    await signed_in(server)
    server.google.drop = True
    async with server.client() as http:
        response = await http.post(f"{PREFIX}/logout", json={"auth_cell": server.auth_cell})
    assert response.status_code == 200 and response.json()["revoked"] is False
    assert (await server.auth())["token"] == ""


async def test_only_the_owner_reads_the_token_over_the_api(server: Server) -> None:
    auth = await signed_in(server)
    assert auth["token"].startswith("ya29.")
    theirs = await server.auth(BOB)
    assert theirs["token"] == MASK and theirs["refresh_token"] == MASK
    assert theirs["user"]["email"] == "alice@example.com"
    async with server.client(BOB) as http:
        summary = await http.get(f"/api/spaces/{server.space}/charms/{server.charm}")
        raw = await http.get(f"/api/spaces/{server.space}/docs/{server.result_id}")
    assert summary.status_code == 200 and raw.status_code == 200
    for text in (summary.text, raw.text):
        assert auth["token"] not in text and auth["refresh_token"] not in text
    assert summary.json()["result"]["auth"]["token"] == MASK
