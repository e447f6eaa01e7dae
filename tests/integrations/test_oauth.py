"""The server's Google client on its own: settings, the client secret, malformed answers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from charmspace.errors import IntegrationError
from charmspace.integrations.google.oauth import GoogleOAuth, GoogleSettings, skew_seconds
from charmspace.runtime import FakeClock
from charmspace.server import Settings


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


def test_the_skew_is_the_margin_at_most_half_the_lifetime() -> None:
    assert skew_seconds(3600) == 300
    assert skew_seconds(60) == 30
    assert skew_seconds(3600, margin=1200) == 1200
    assert skew_seconds(3600, margin=-5) == 0
