"""Google OAuth: sign-in (authorization code with PKCE) and token refresh, one object per server.

:class:`GoogleOAuth` is what the server's ``/api/integrations/google-oauth/``
routes and the ``google_auth`` pattern's ``refresh`` handler share: the server
creates one and lends it to its runtime (``runtime.services``), so a handler
refreshes through the same single flight as the route instead of calling its own
server over HTTP.

Why single flight with a remembered answer: Google may rotate refresh tokens,
and then a refresh token works once. Ten consumers that find the token expired
at the same moment each ask the auth charm to refresh; their events run one
after another, but a handler that conflicts is re-run, and it then asks again
with the refresh token it read before the first run committed. Concurrent asks
for one refresh token share one provider call, and the answer is kept for a
short while (``answer_ttl``), so neither case spends a rotated token twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

import httpx
from pydantic import Field, SecretStr, TypeAdapter, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from charmspace.errors import IntegrationError
from charmspace.integrations.secret_file import read_secret_file
from charmspace.private_json import load_private_json
from charmspace.runtime.address import Address
from charmspace.runtime.clock import Clock, SystemClock
from charmspace.runtime.secrets import SECRET
from charmspace.types import DID
from charmspace.write_behind import WriteBehind

with warnings.catch_warnings():
    # Authlib 1.9 says its httpx client prefers the newer httpx2 package, and installs
    # an "always show" filter for that on import; charmspace runs on httpx throughout.
    # Imported here, the notice (and the global filter) stay out of users' terminals.
    import authlib.deprecate  # noqa: F401  # its "always" filter first, so ours goes before it

    warnings.filterwarnings("ignore", "The httpx module is deprecated", DeprecationWarning)
    from authlib.common.security import generate_token
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import AsyncOAuth2Client

__all__ = [
    "DEFAULT_MARGIN",
    "EMPTY_AUTH",
    "GMAIL_READONLY",
    "Auth",
    "GoogleOAuth",
    "GoogleSettings",
    "LoginRecord",
    "TokenInfo",
    "skew_seconds",
]

log = logging.getLogger(__name__)

GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
IDENTITY_SCOPES = ("openid", "email", "profile")
STATE_LIFETIME = 600.0
"""Seconds a sign-in may take between ``login`` and ``callback``."""
MAX_PENDING_LOGINS = 10_000


class TokenInfo(TypedDict):
    """What a refresh answers (``POST /refresh`` as ``token_info``)."""

    token: str
    token_type: str
    scope: list[str] | None
    """None when Google did not say: the caller keeps the scope it had."""
    expires_in: int
    expires_at: int
    """Epoch milliseconds; 0 when Google gave no lifetime."""
    refresh_token: str


class Auth(TypedDict):
    """The auth charm's ``auth`` cell. ``token`` and ``refresh_token`` are secret."""

    token: Annotated[str, SECRET]
    token_type: str
    scope: list[str]
    expires_in: int
    expires_at: int
    """Epoch milliseconds; 0 when unknown."""
    refresh_token: Annotated[str, SECRET]
    user: dict[str, str]


EMPTY_AUTH: Auth = {
    "token": "",
    "token_type": "",
    "scope": [],
    "expires_in": 0,
    "expires_at": 0,
    "refresh_token": "",
    "user": {},
}


DEFAULT_MARGIN = 300


def skew_seconds(expires_in: int, margin: float = DEFAULT_MARGIN) -> float:
    """How long before expiry a token counts as stale: ``margin`` (five minutes), at most
    half its life."""
    return min(max(0.0, float(margin)), max(0, expires_in) / 2)


class GoogleSettings(BaseSettings):
    """``CHARMSPACE_GOOGLE_*``: the OAuth client and Google's endpoints (fakes in tests)."""

    model_config = SettingsConfigDict(
        env_prefix="CHARMSPACE_GOOGLE_", env_file=".env", extra="ignore", frozen=True
    )

    client_id: str = Field(default="", description="The OAuth client id from Google Cloud.")
    client_secret: SecretStr = Field(
        default=SecretStr(""), description="The OAuth client secret (never logged or returned)."
    )
    client_secret_file: Path | None = Field(
        default=None,
        description="A file holding the client secret instead (must be readable by its owner "
        "only: mode 0600).",
    )
    authorize_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    token_url: str = "https://oauth2.googleapis.com/token"
    userinfo_url: str = "https://openidconnect.googleapis.com/v1/userinfo"
    revoke_url: str = "https://oauth2.googleapis.com/revoke"
    public_url: str | None = Field(
        default=None,
        description="The server's public base URL for the redirect (default: the URL the "
        "browser used to reach it).",
    )
    timeout: float = Field(
        default=10.0, gt=0, description="Seconds a call to Google may take before it fails."
    )
    answer_ttl: float = Field(
        default=30.0,
        ge=0,
        description="Seconds a refresh's answer is reused for the same refresh token.",
    )

    def secret(self) -> str:
        """The client secret, from the file if one is configured (refused unless 0600)."""
        path = self.client_secret_file
        if path is None:
            return self.client_secret.get_secret_value()
        return read_secret_file(path, what="client secret", reason="config")


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """What ``login`` remembers under a state, for the callback to finish with."""

    verifier: str
    auth_cell: Address
    principal: DID
    redirect_uri: str
    expires: float


_KEPT_LOGINS = TypeAdapter(dict[str, LoginRecord])


class GoogleOAuth:
    """The OAuth client of one server: sign-in states, code exchange, refresh, revoke.

    ``transport`` lets tests route calls to an in-process fake; the default is
    the network. With ``logins_path``, sign-ins in progress are also kept in
    that file (mode 0600), so a restart between ``login`` and ``callback`` does
    not break them: Google sends the browser back to whichever process answers
    then. The file is keyed by a SHA-256 of each state, never the state itself,
    so reading it is not enough to finish someone's sign-in.

    Between :meth:`start_writing` and :meth:`stop_writing` (the server's
    lifespan) the file is written behind the changes, at most once a second in
    a worker thread (:mod:`charmspace.write_behind`), so a flood of sign-in
    starts does not stall the event loop with one rewrite each; a clean stop
    writes the last state. Outside them, each change is written at once.
    """

    def __init__(
        self,
        settings: GoogleSettings,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        logins_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self._transport = transport
        self._logins: dict[str, LoginRecord] = {}  # sha256(state) -> record
        self._file: WriteBehind[dict[str, LoginRecord]] | None = None
        if logins_path is not None:
            self._logins = self._load_logins(logins_path)
            self._file = WriteBehind(
                logins_path, lambda: dict(self._logins), _render_logins, what="Google sign-ins"
            )
        self._inflight: dict[str, asyncio.Task[TokenInfo]] = {}
        self._answers: dict[str, tuple[float, TokenInfo]] = {}
        self.redirect_uri: str | None = None
        """Where Google sends the browser back (the server sets it when it knows its URL)."""
        self.provider_calls = 0
        """Refresh calls that reached the provider (the single flight's effect, for tests)."""

    def _client(self, **kwargs: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.settings.client_id,
            client_secret=self.settings.secret(),
            token_endpoint_auth_method="client_secret_post",
            timeout=self.settings.timeout,
            transport=self._transport,
            **kwargs,
        )

    # --- sign-in --------------------------------------------------------------------

    def start_login(
        self, auth_cell: Address, principal: DID, scopes: list[str], redirect_uri: str
    ) -> str:
        """The authorize URL for a new sign-in; its state keys a record kept 10 minutes."""
        if not self.settings.client_id:
            raise IntegrationError(
                "config", "Google sign-in is not configured: set CHARMSPACE_GOOGLE_CLIENT_ID."
            )
        now = self.clock.now()
        self._forget_expired(now)
        if len(self._logins) >= MAX_PENDING_LOGINS:
            raise IntegrationError(
                "busy", "Too many sign-ins are in progress; try again in a few minutes."
            )
        state = secrets.token_urlsafe(32)
        verifier = generate_token(64)
        scope = " ".join(dict.fromkeys([*IDENTITY_SCOPES, *scopes]))
        client = self._client(scope=scope, redirect_uri=redirect_uri, code_challenge_method="S256")
        url, _ = client.create_authorization_url(
            self.settings.authorize_url,
            state=state,
            code_verifier=verifier,
            access_type="offline",
            prompt="consent",
        )
        self._logins[_digest(state)] = LoginRecord(
            verifier, auth_cell, principal, redirect_uri, now + STATE_LIFETIME
        )
        self._save_logins()
        return str(url)

    def take_login(self, state: str) -> LoginRecord:
        """The record of ``state``, removed (a state is used once); IntegrationError if none."""
        record = self._logins.pop(_digest(state), None)
        if record is None:
            raise IntegrationError(
                "unknown_state",
                "This sign-in link is unknown or was already used; start the sign-in again.",
            )
        self._save_logins()
        if record.expires <= self.clock.now():
            raise IntegrationError(
                "expired_state", "This sign-in took longer than 10 minutes; start it again."
            )
        return record

    def _forget_expired(self, now: float) -> None:
        for state in [s for s, r in self._logins.items() if r.expires <= now]:
            del self._logins[state]

    def _load_logins(self, path: Path) -> dict[str, LoginRecord]:
        kept = load_private_json(path, what="Google sign-ins")
        if kept is None:
            return {}
        try:
            logins = _KEPT_LOGINS.validate_python(kept)
        except ValidationError:
            log.warning("ignoring the unreadable Google sign-ins file %s", path)
            return {}
        now = self.clock.now()
        return {digest: record for digest, record in logins.items() if record.expires > now}

    def _save_logins(self) -> None:
        if self._file is not None:
            self._file.changed()
            if not self._file.running:  # no task writes behind (not in a server): now
                self._file.flush()

    def start_writing(self) -> None:
        """Write the sign-ins file behind the changes, from a task of the running loop."""
        if self._file is not None:
            self._file.start()

    async def stop_writing(self) -> None:
        """Write the sign-ins file's last state; then each change is written at once again."""
        if self._file is not None:
            await self._file.stop()

    async def finish_login(self, record: LoginRecord, code: str) -> Auth:
        """Exchange ``code`` (with the record's verifier) and read who signed in: a whole Auth."""
        client = self._client(redirect_uri=record.redirect_uri)
        async with client:
            token = await self._call(
                "exchange",
                lambda: client.fetch_token(
                    self.settings.token_url,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=record.verifier,
                ),
            )
            info = self._token_info(token, "")
            user = await self._userinfo(client, info["token"])
        return {
            "token": info["token"],
            "token_type": info["token_type"],
            "scope": info["scope"] or [],
            "expires_in": info["expires_in"],
            "expires_at": info["expires_at"],
            "refresh_token": info["refresh_token"],
            "user": user,
        }

    async def _userinfo(self, client: AsyncOAuth2Client, token: str) -> dict[str, str]:
        try:
            response = await client.request(
                "GET",
                self.settings.userinfo_url,
                headers={"Authorization": f"Bearer {token}"},
                withhold_token=True,
            )
        except httpx.HTTPError:
            raise _unreachable("userinfo") from None
        if response.status_code != 200:
            raise IntegrationError(
                f"upstream_{response.status_code}",
                f"Google did not say who signed in (userinfo answered {response.status_code}).",
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("email"), str):
            raise _malformed("userinfo")
        return {k: str(body.get(k) or "") for k in ("email", "name", "picture")}

    # --- refresh --------------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> TokenInfo:
        """A new access token for ``refresh_token``; concurrent calls share one provider call.

        Raises :class:`IntegrationError` with reason ``invalid_grant``,
        ``upstream_<status>``, ``upstream_unreachable`` or ``malformed_response``.
        """
        if not isinstance(refresh_token, str) or not refresh_token:
            raise IntegrationError("invalid_request", "A refresh token is required.")
        key = hashlib.sha256(refresh_token.encode()).hexdigest()
        now = self.clock.now()
        for old in [k for k, (until, _) in self._answers.items() if until <= now]:
            del self._answers[old]
        answer = self._answers.get(key)
        if answer is not None:
            return answer[1]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._refresh_once(refresh_token))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(task)

    def _settle(self, key: str, task: asyncio.Task[TokenInfo]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled() and task.exception() is None and self.settings.answer_ttl > 0:
            self._answers[key] = (self.clock.now() + self.settings.answer_ttl, task.result())

    async def _refresh_once(self, refresh_token: str) -> TokenInfo:
        self.provider_calls += 1
        client = self._client()
        async with client:
            token = await self._call(
                "refresh",
                lambda: client.refresh_token(self.settings.token_url, refresh_token=refresh_token),
            )
        return self._token_info(token, refresh_token)

    async def _call(self, what: str, call: Callable[[], Any]) -> dict[str, Any]:
        """Run a token endpoint call; every failure as an IntegrationError with its reason."""
        try:
            token = await call()
        except OAuthError as error:
            if error.error == "invalid_grant":
                raise IntegrationError(
                    "invalid_grant",
                    f"Google refused the grant ({what}: invalid_grant): sign in again.",
                ) from None
            raise IntegrationError(
                "upstream_400", f"Google refused the {what} ({error.error}); check the settings."
            ) from None
        except httpx.HTTPStatusError as error:
            status = error.response.status_code
            raise IntegrationError(
                f"upstream_{status}", f"Google answered the {what} with HTTP {status}; try later."
            ) from None
        except (httpx.HTTPError, OSError):
            raise _unreachable(what) from None
        except ValueError:
            raise _malformed(what) from None
        if not isinstance(token, dict):
            raise _malformed(what)
        return dict(token)

    def _token_info(self, token: dict[str, Any], refresh_token: str) -> TokenInfo:
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise _malformed("token")
        expires_in = token.get("expires_in")
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in < 0:
            expires_in = 0
        scope = token.get("scope")
        new_refresh = token.get("refresh_token")
        return {
            "token": access,
            "token_type": str(token.get("token_type") or "Bearer"),
            "scope": scope.split() if isinstance(scope, str) else None,
            "expires_in": expires_in,
            "expires_at": int((self.clock.now() + expires_in) * 1000) if expires_in else 0,
            "refresh_token": new_refresh
            if isinstance(new_refresh, str) and new_refresh
            else refresh_token,
        }

    # --- logout ---------------------------------------------------------------------

    async def revoke(self, token: str) -> bool:
        """Revoke ``token`` at Google; False (logged, without the token) if that failed."""
        if not token:
            return False
        try:
            async with self._client() as client:
                response = await client.revoke_token(self.settings.revoke_url, token=token)
        except (httpx.HTTPError, OSError, OAuthError) as error:
            log.warning("revoking at Google failed: %s", type(error).__name__)
            return False
        if response.status_code != 200:
            log.warning("revoking at Google failed: HTTP %s", response.status_code)
            return False
        return True


def _render_logins(logins: dict[str, LoginRecord]) -> str:
    """The sign-ins file's text (in a worker thread: the records never change)."""
    return json.dumps(_KEPT_LOGINS.dump_python(logins, mode="json"))


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8", "surrogateescape")).hexdigest()


def _unreachable(what: str) -> IntegrationError:
    return IntegrationError(
        "upstream_unreachable", f"Google could not be reached for the {what}; try again later."
    )


def _malformed(what: str) -> IntegrationError:
    return IntegrationError(
        "malformed_response", f"Google's answer to the {what} could not be understood."
    )
