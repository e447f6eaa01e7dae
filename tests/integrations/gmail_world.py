"""The world the Gmail tests run in: a runtime on a fake clock, an auth charm, and the fakes.

The auth charm here is a stand-in of the contract's shape (tag ``#googleAuth``,
result ``auth`` and ``refresh``; ``{"stale_token": …}`` events; failures as
``IntegrationError(reason)``), with :class:`TokenIssuer` standing in for
Google's token endpoint. Fake Gmail and the scripted LLM are served over real
HTTP on loopback ports. :func:`google_world` swaps the stand-ins for the real
``google_auth`` charm and ``FakeGoogle`` (served over HTTP too), whose live
tokens are the ones the fake Gmail accepts.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr

from charmspace import Runtime
from charmspace.backoff import Backoff
from charmspace.errors import IntegrationError
from charmspace.identity import Identity
from charmspace.integrations.google.gmail import GMAIL_READONLY, GmailClient, needs_refresh
from charmspace.integrations.google.oauth import EMPTY_AUTH, GoogleOAuth, GoogleSettings
from charmspace.integrations.llm import LLMClient
from charmspace.integrations.services import Services, configure, services_of
from charmspace.library.gmail_agentic_search import gmail_agentic_search
from charmspace.library.google_auth import google_auth
from charmspace.patterns import Charm, Default, handler, now, pattern
from charmspace.runtime import Cell, FakeClock
from charmspace.testing._serve import serve_asgi
from charmspace.testing.gmail import FakeGmail
from charmspace.testing.google import FakeGoogle
from charmspace.testing.llm import Policy, ScriptedLLM, Step

USER = Identity.from_passphrase("gmail suite: user")
LLM_KEY = "sk-test-llm-key-0123456789"


class TokenIssuer:
    """Google's token endpoint, reduced: issues, checks and refreshes access tokens."""

    def __init__(self, clock: FakeClock, lifetime: int = 3600) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.expiry: dict[str, float] = {}
        self.refreshes = 0
        self.revoked = False
        self.refresh_token = "1//refresh-" + secrets.token_hex(8)

    def issue(self) -> dict[str, Any]:
        token = "ya29.test-" + secrets.token_hex(12)
        self.expiry[token] = self.clock.now() + self.lifetime
        return {
            "token": token,
            "token_type": "Bearer",
            "scope": [GMAIL_READONLY],
            "expires_in": self.lifetime,
            "expires_at": int((self.clock.now() + self.lifetime) * 1000),
            "refresh_token": self.refresh_token,
            "user": {"email": "me@example.com", "name": "Me", "picture": ""},
        }

    def check(self, token: str) -> Literal["valid", "expired", "invalid"]:
        expires = self.expiry.get(token)
        if expires is None:
            return "invalid"
        return "valid" if self.clock.now() < expires else "expired"

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        self.refreshes += 1
        if self.revoked or refresh_token != self.refresh_token:
            raise IntegrationError(
                "invalid_grant", "Google refused the refresh token (invalid_grant): sign in again."
            )
        return self.issue()

    @property
    def tokens(self) -> list[str]:
        """Every access token issued (what must never show up in a log)."""
        return list(self.expiry)


ISSUER: list[TokenIssuer] = []
"""The issuer of the world being run (a handler reaches only module-level code)."""


@handler
def refresh_google_token(event: dict[str, Any], *, auth: Cell[dict[str, Any]]) -> None:
    """The contract's refresh: skip when someone already refreshed past ``stale_token``."""
    current = auth.get() or {}
    stale = event.get("stale_token")
    if current.get("token") and current["token"] != stale and not needs_refresh(current, now()):
        return
    auth.set({**current, **ISSUER[-1].refresh(str(current.get("refresh_token", "")))})


@pattern(tags=["#googleAuth"])
def stand_in_google_auth(
    auth: Default[Cell[dict[str, Any]], EMPTY_AUTH],
) -> dict[str, Any]:
    """Owns the Google token, as the real auth charm does. #googleAuth"""
    return {"auth": auth, "refresh": refresh_google_token.bind(auth=auth)}


class WithSearch:
    """What both worlds offer: a Gmail search charm in a space of its own."""

    runtime: Runtime

    async def search_charm(self, goal: str = "invoice", budget: int = 5) -> Charm:
        space = self.runtime.create_space(name="gmail")
        return await self.runtime.charms.create(
            gmail_agentic_search, space=space, inputs={"goal": goal, "budget": budget}
        )


@dataclass
class World(WithSearch):
    runtime: Runtime
    clock: FakeClock
    issuer: TokenIssuer
    gmail: FakeGmail
    gmail_url: str
    llm: ScriptedLLM
    llm_url: str
    auth_charm: Charm
    sleeps: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        """Retries wait here: recorded, not waited."""
        self.sleeps.append(seconds)
        await asyncio.sleep(0)

    def sign_in(self) -> dict[str, Any]:
        """A fresh token in the auth cell, as after the OAuth callback."""
        auth = self.issuer.issue()
        with self.runtime.edit():
            self.auth_charm["auth"].set(auth)
        return auth

    def client(self, **options: Any) -> GmailClient:
        return GmailClient(
            self.auth_charm["auth"],
            self.auth_charm.stream("refresh"),
            base_url=self.gmail_url,
            clock=self.clock,
            sleep=self.sleep,
            rng=random.Random(1),
            **options,
        )


@asynccontextmanager
async def gmail_world(
    storage_url: str, script: Sequence[Step] | Policy, *, lifetime: int = 3600
) -> AsyncIterator[World]:
    clock = FakeClock()
    issuer = TokenIssuer(clock, lifetime)
    ISSUER.append(issuer)
    gmail = FakeGmail(issuer.check, clock)
    llm = ScriptedLLM(script, api_key=LLM_KEY)
    runtime = Runtime(storage_url, identity=USER, clock=clock, random=random.Random(0))
    try:
        with ExitStack() as stack:
            gmail_url = stack.enter_context(serve_asgi(gmail))
            llm_url = stack.enter_context(serve_asgi(llm))
            auth_space = runtime.create_space(name="google-auth")
            auth_charm = await runtime.charms.create(stand_in_google_auth, space=auth_space)
            await runtime.favorites().add(auth_charm)
            world = World(runtime, clock, issuer, gmail, gmail_url, llm, llm_url, auth_charm)
            client = LLMClient(
                base_url=f"{llm_url}/v1",
                model="scripted",
                api_key=SecretStr(LLM_KEY),
                sleep=world.sleep,
                now=clock.now,
                rng=random.Random(2),
            )
            configure(
                runtime,
                Services(
                    llm=client,
                    gmail_base_url=gmail_url,
                    sleep=world.sleep,
                    rng=random.Random(3),
                    backoff=Backoff(),
                ),
            )
            try:
                yield world
            finally:
                await services_of(runtime).aclose()
    finally:
        await runtime.close()
        ISSUER.remove(issuer)


@dataclass
class GoogleWorld(WithSearch):
    """The real ``google_auth`` charm, signed in at a fake Google served over HTTP, whose
    live tokens are what the fake Gmail accepts."""

    runtime: Runtime
    clock: FakeClock
    google: FakeGoogle
    gmail: FakeGmail
    auth_charm: Charm

    def sign_in(self) -> dict[str, Any]:
        """What the OAuth callback writes: a token Google issued, with its refresh token."""
        return self.store(self.google.issue([GMAIL_READONLY]), self.clock.now())

    def store(self, issued: dict[str, Any], issued_at: float) -> dict[str, Any]:
        """Write a token Google issued at ``issued_at`` into the auth charm."""
        auth = {
            "token": issued["access_token"],
            "token_type": "Bearer",
            "scope": [GMAIL_READONLY],
            "expires_in": self.google.lifetime,
            "expires_at": int((issued_at + self.google.lifetime) * 1000),
            "refresh_token": issued["refresh_token"],
            "user": {"email": self.google.user.email},
        }
        with self.runtime.edit():
            self.auth_charm["auth"].set(auth)
        return auth


@asynccontextmanager
async def google_world(
    storage_url: str, script: Sequence[Step] | Policy, *, lifetime: int = 3600
) -> AsyncIterator[GoogleWorld]:
    """Like :func:`gmail_world`, with Google's side real: ``google_auth`` and ``FakeGoogle``."""
    clock = FakeClock()
    google = FakeGoogle(clock, lifetime=lifetime)
    gmail = FakeGmail(google.check_access_token, clock)
    llm = ScriptedLLM(script, api_key=LLM_KEY)
    runtime = Runtime(storage_url, identity=USER, clock=clock, random=random.Random(0))
    try:
        with ExitStack() as stack:
            google_url = stack.enter_context(serve_asgi(google))
            gmail_url = stack.enter_context(serve_asgi(gmail))
            llm_url = stack.enter_context(serve_asgi(llm))
            settings = GoogleSettings(
                client_id=google.client_id,
                client_secret=google.client_secret,
                **FakeGoogle.urls(google_url),
            )
            withdraw = runtime.services.provide(GoogleOAuth, GoogleOAuth(settings, clock=clock))
            stack.callback(withdraw)
            auth_space = runtime.create_space(name="google-auth")
            auth_charm = await runtime.charms.create(google_auth, space=auth_space)
            await runtime.favorites().add(auth_charm)
            client = LLMClient(
                base_url=f"{llm_url}/v1",
                model="scripted",
                api_key=SecretStr(LLM_KEY),
                now=clock.now,
                rng=random.Random(2),
            )
            configure(runtime, Services(llm=client, gmail_base_url=gmail_url))
            try:
                yield GoogleWorld(runtime, clock, google, gmail, auth_charm)
            finally:
                await services_of(runtime).aclose()
    finally:
        await runtime.close()
