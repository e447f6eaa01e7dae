"""The server's Google client on its own: settings, the client secret, malformed answers."""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from charmspace import write_behind
from charmspace.errors import IntegrationError
from charmspace.identity import Identity
from charmspace.integrations.google.oauth import GoogleOAuth, GoogleSettings, skew_seconds
from charmspace.runtime import FakeClock
from charmspace.runtime.address import Address
from charmspace.server import Settings

ALICE = Identity.from_passphrase("oauth client: alice")
AUTH_CELL = Address(ALICE.did, "of:auth", ("auth",))


def test_settings_come_from_charmspace_google_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARMSPACE_GOOGLE_CLIENT_ID", "id-from-env")
    monkeypatch.setenv("CHARMSPACE_GOOGLE_CLIENT_SECRET", "GOCSPX-from-env")
    monkeypatch.setenv("CHARMSPACE_GOOGLE_TIMEOUT", "3.5")
    settings = Settings().google
    assert settings.client_id == "id-from-env"
    assert settings.secret() == "GOCSPX-from-env"
    assert settings.timeout == 3.5
    assert "GOCSPX-from-env" not in repr(settings) and "GOCSPX-from-env" not in repr(Settings())


def test_the_secret_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("GOCSPX-in-a-file\n")
    path.chmod(0o600)
    assert GoogleSettings(client_secret_file=path).secret() == "GOCSPX-in-a-file"
    path.chmod(0o644)
    with pytest.raises(IntegrationError) as refused:
        GoogleSettings(client_secret_file=path).secret()
    assert refused.value.reason == "config"
    assert "chmod 600" in str(refused.value) and "GOCSPX" not in str(refused.value)
    with pytest.raises(IntegrationError, match="cannot be read"):
        GoogleSettings(client_secret_file=tmp_path / "missing").secret()


@pytest.mark.parametrize(
    "status, body",
    [(200, b"<html>not json</html>"), (200, b'{"token_type": "Bearer"}'), (200, b"[]")],
)
async def test_an_answer_that_is_not_a_token_is_malformed(status: int, body: bytes) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    oauth = GoogleOAuth(
        GoogleSettings(client_id="id", client_secret="secret"),
        clock=FakeClock(),
        transport=transport,
    )
    with pytest.raises(IntegrationError) as failed:
        await oauth.refresh("1//a-refresh-token")
    assert failed.value.reason == "malformed_response"


async def test_a_missing_expiry_is_unknown_and_a_missing_scope_is_none() -> None:
    answer = b'{"access_token": "ya29.x", "token_type": "Bearer"}'
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=answer))
    oauth = GoogleOAuth(GoogleSettings(client_id="id"), clock=FakeClock(), transport=transport)
    info = await oauth.refresh("1//a-refresh-token")
    assert (info["expires_in"], info["expires_at"], info["scope"]) == (0, 0, None)
    assert info["refresh_token"] == "1//a-refresh-token"


def _state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


def test_a_sign_in_in_progress_survives_a_new_client_and_the_file_holds_no_state(
    tmp_path: Path,
) -> None:
    path = tmp_path / "google-sign-ins.json"
    settings = GoogleSettings(client_id="id", client_secret="secret")
    clock = FakeClock()
    before = GoogleOAuth(settings, clock=clock, logins_path=path)
    kept = _state_of(before.start_login(AUTH_CELL, ALICE.did, [], "http://x/callback"))
    used = _state_of(before.start_login(AUTH_CELL, ALICE.did, [], "http://x/callback"))
    before.take_login(used)
    assert kept not in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o600
    after = GoogleOAuth(settings, clock=clock, logins_path=path)
    record = after.take_login(kept)
    assert (record.auth_cell, record.principal) == (AUTH_CELL, ALICE.did)
    with pytest.raises(IntegrationError) as reused:
        GoogleOAuth(settings, clock=clock, logins_path=path).take_login(kept)
    assert reused.value.reason == "unknown_state"
    with pytest.raises(IntegrationError) as spent:
        after.take_login(used)
    assert spent.value.reason == "unknown_state"


async def test_a_flood_of_sign_in_starts_is_written_behind_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: each sign-in start rewrote the whole sign-ins file on the event
    loop, so a flood of them stalled every request; now, while a server runs, they
    are written behind (in a worker thread, coalesced) and a clean stop writes the last."""
    path = tmp_path / "google-sign-ins.json"
    writers: list[threading.Thread] = []
    write = write_behind.write_private_text

    def recorded(at: Path, text: str) -> None:
        writers.append(threading.current_thread())
        write(at, text)

    monkeypatch.setattr(write_behind, "write_private_text", recorded)
    settings = GoogleSettings(client_id="id", client_secret="secret")
    clock = FakeClock()
    oauth = GoogleOAuth(settings, clock=clock, logins_path=path)
    oauth.start_writing()
    states = [
        _state_of(oauth.start_login(AUTH_CELL, ALICE.did, [], "http://x/callback"))
        for _ in range(50)
    ]
    assert writers == []  # fifty starts, and not one write on the loop
    await oauth.stop_writing()
    assert writers and threading.current_thread() not in writers
    assert len(writers) <= 2  # coalesced: the first start's write, then the rest at once
    after = GoogleOAuth(settings, clock=clock, logins_path=path)
    assert all(after.take_login(state).principal == ALICE.did for state in states)


def test_an_unreadable_sign_ins_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "google-sign-ins.json"
    path.write_text('{"abc": {"verifier": 1}}')
    oauth = GoogleOAuth(GoogleSettings(client_id="id"), clock=FakeClock(), logins_path=path)
    with pytest.raises(IntegrationError) as unknown:
        oauth.take_login("abc")
    assert unknown.value.reason == "unknown_state"


def test_the_skew_is_the_margin_at_most_half_the_lifetime() -> None:
    assert skew_seconds(3600) == 300
    assert skew_seconds(60) == 30
    assert skew_seconds(3600, margin=1200) == 1200
    assert skew_seconds(3600, margin=-5) == 0
