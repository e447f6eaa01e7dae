"""Fixtures of the Google suites: a fake Google on a fake clock, and the server's OAuth client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from charmspace import Runtime
from charmspace.identity import Identity
from charmspace.integrations.google.oauth import GoogleOAuth, GoogleSettings
from charmspace.runtime import FakeClock
from charmspace.testing.google import FakeGoogle

FAKE_BASE = "http://google.test"
USER = Identity.from_passphrase("google suite: user")


def _settings_for(fake: FakeGoogle, base: str = FAKE_BASE, **extra: Any) -> GoogleSettings:
    return GoogleSettings(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        **FakeGoogle.urls(base),
        **extra,
    )


@pytest.fixture
def settings_for() -> Callable[..., GoogleSettings]:
    """``settings_for(fake, base=…, **more)``: server settings pointing at a fake Google."""
    return _settings_for


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def google(clock: FakeClock) -> FakeGoogle:
    return FakeGoogle(clock=clock, lifetime=3600)


@pytest.fixture
def oauth(google: FakeGoogle, clock: FakeClock) -> GoogleOAuth:
    """The server's OAuth client, talking to the fake in process."""
    client = GoogleOAuth(
        _settings_for(google), clock=clock, transport=httpx.ASGITransport(app=google)
    )
    client.redirect_uri = "http://charmspace.test/api/integrations/google-oauth/callback"
    return client


@pytest.fixture
async def runtime(storage_url: str, clock: FakeClock, oauth: GoogleOAuth) -> AsyncIterator[Runtime]:
    """A runtime (memory and SQLite) lending ``oauth`` to its handlers, as the server does."""
    rt = Runtime(storage_url, identity=USER, clock=clock, call_timeout=5)
    rt.services.provide(GoogleOAuth, oauth)
    yield rt
    await rt.close()


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + " " + repr(record.__dict__))


@pytest.fixture(autouse=True)
def no_token_in_logs(google: FakeGoogle) -> Iterator[None]:
    """Every test here: no log record, at any level, holds a token the fake issued (R6)."""
    handler = _Everything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    issued = google.issued_tokens()
    leaked = [t for t in issued for line in handler.lines if t in line]
    assert not leaked, f"{len(leaked)} token(s) appeared in the logs"
