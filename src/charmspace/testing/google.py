"""``FakeGoogle``: Google's OAuth endpoints as a local ASGI app, for tests and the demo.

It behaves like Google where our code could tell the difference: codes are
single-use and bound to the ``redirect_uri`` and the PKCE challenge (S256,
checked for real), access tokens expire on the given clock, refresh tokens can
rotate (the old one then fails with ``invalid_grant``), and errors carry
Google's status codes and bodies (``400 {"error": "invalid_grant",
"error_description": "Bad Request"}``). Switches make it fail the ways Google
does: ``invalid_grant``, a 5xx status, a dropped connection, added latency.

Paths (give them to the server's settings with :meth:`FakeGoogle.urls`):
``GET /o/oauth2/v2/auth``, ``POST /token``, ``GET /v1/userinfo``, ``POST /revoke``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from charmspace.runtime.clock import Clock, SystemClock

__all__ = ["FakeGoogle", "GoogleUser"]

TokenState = Literal["valid", "expired", "invalid"]


@dataclass(frozen=True, slots=True)
class GoogleUser:
    """Whom the fake signs in (what userinfo answers)."""

    email: str = "alice@example.com"
    name: str = "Alice Example"
    picture: str = "https://example.com/alice.png"


@dataclass(slots=True)
class _Code:
    redirect_uri: str
    challenge: str | None
    method: str
    scope: list[str]


@dataclass(slots=True)
class _Grant:
    """One sign-in: its refresh token and the scopes it granted."""

    refresh_token: str
    scope: list[str]
    email: str
    active: bool = True
    """Whether the refresh token still works (rotation and revocation end it)."""
    revoked: bool = False
    """Whether the user revoked access (its access tokens stop working too)."""


@dataclass(slots=True)
class _Access:
    grant: _Grant
    expires_at: float


_DROPPED = frozenset({"/token", "/v1/userinfo", "/revoke"})
"""The paths the ``drop`` switch breaks (authorize is the browser's, never dropped)."""


def _error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (last value of each name)."""
    pairs = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs)


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class FakeGoogle:
    """Google's authorize, token, userinfo and revoke endpoints, in memory.

    Switches (plain attributes, set them any time): ``deny`` (the user refuses
    consent: ``error=access_denied``), ``invalid_grant`` (refresh grants
    fail), ``status`` (the token endpoint answers this 5xx), ``drop`` (the
    token endpoint drops the connection), ``latency`` (seconds every answer
    waits, real time). ``calls`` counts requests by grant type
    (``authorization_code``, ``refresh_token``) and endpoint (``authorize``,
    ``userinfo``, ``revoke``).
    """

    def __init__(
        self,
        clock: Clock | None = None,
        lifetime: int = 3600,
        rotate: bool = False,
        *,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        user: GoogleUser | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.lifetime = lifetime
        self.rotate = rotate
        self.client_id = client_id
        self.client_secret = client_secret
        self.user = user or GoogleUser()
        self.deny = False
        self.invalid_grant = False
        self.status: int | None = None
        self.drop = False
        self.userinfo_status: int | None = None
        self.latency = 0.0
        self.calls: Counter[str] = Counter()
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, _Grant] = {}
        self._access: dict[str, _Access] = {}
        self.app = Starlette(
            routes=[
                Route("/o/oauth2/v2/auth", self._authorize, methods=["GET"]),
                Route("/token", self._token, methods=["POST"]),
                Route("/v1/userinfo", self._userinfo, methods=["GET"]),
                Route("/revoke", self._revoke, methods=["POST"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").removeprefix(scope.get("root_path", ""))
        if self.drop and scope["type"] == "http" and path in _DROPPED:
            await self._drop(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the request, start an answer, and break off: a connection dropped mid-reply.

        Served by uvicorn, the client sees the connection close before the body
        it was promised; in process (``httpx.ASGITransport``) it gets the error
        httpx raises for that.
        """
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if path == "/token":
            grant = dict(parse_qsl(body.decode("utf-8", "replace"))).get("grant_type", "")
            self.calls[grant or "unknown"] += 1
        else:
            self.calls[path.rsplit("/", 1)[-1]] += 1
        await self._delay()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
            }
        )
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body"
        )

    @staticmethod
    def urls(base: str) -> dict[str, str]:
        """The endpoint URLs under ``base``, named as the server's settings name them."""
        base = base.rstrip("/")
        return {
            "authorize_url": f"{base}/o/oauth2/v2/auth",
            "token_url": f"{base}/token",
            "userinfo_url": f"{base}/v1/userinfo",
            "revoke_url": f"{base}/revoke",
        }

    # --- what tests ask ---------------------------------------------------------------

    def check_access_token(self, token: str) -> TokenState:
        """Whether ``token`` is a live access token, one that expired, or unknown/revoked."""
        access = self._access.get(token)
        if access is None or access.grant.revoked:
            return "invalid"
        return "valid" if self.clock.now() < access.expires_at else "expired"

    def email_of(self, token: str) -> str | None:
        """The email of the user ``token`` was issued to, if it is valid now."""
        if self.check_access_token(token) != "valid":
            return None
        return self._access[token].grant.email

    def refresh_token_is_active(self, refresh_token: str) -> bool:
        grant = self._grants.get(refresh_token)
        return grant is not None and grant.active

    def issued_tokens(self) -> list[str]:
        """Every access and refresh token this fake has issued (to look for leaks)."""
        return [*self._access, *self._grants]

    def expire(self, token: str) -> None:
        """End an access token's life now, while its holder still thinks it valid (as when
        Google's clock and ours disagree): Gmail then refuses it with 401."""
        access = self._access.get(token)
        if access is not None:
            access.expires_at = min(access.expires_at, self.clock.now())

    def issue(self, scope: list[str] | None = None) -> dict[str, Any]:
        """A grant made without the browser dance: the token response a sign-in would give."""
        grant = _Grant("1//" + secrets.token_urlsafe(32), list(scope or []), self.user.email)
        self._grants[grant.refresh_token] = grant
        return {**self._new_access(grant), "refresh_token": grant.refresh_token}

    # --- endpoints ----------------------------------------------------------------------

    async def _delay(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)

    async def _authorize(self, request: Request) -> Response:
        self.calls["authorize"] += 1
        q = request.query_params
        if q.get("client_id") != self.client_id:
            return _error(401, "invalid_client", "The OAuth client was not found.")
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri:
            return _error(400, "invalid_request", "Missing required parameter: redirect_uri")
        if q.get("response_type") != "code":
            return _error(400, "unsupported_response_type", "Bad Request")
        method = q.get("code_challenge_method", "plain")
        if method not in ("S256", "plain"):
            return _error(400, "invalid_request", "Invalid code_challenge_method")
        state = q.get("state")
        answer: dict[str, str]
        if self.deny:
            answer = {"error": "access_denied"}
        else:
            code = "4/" + secrets.token_urlsafe(24)
            self._codes[code] = _Code(
                redirect_uri, q.get("code_challenge"), method, q.get("scope", "").split()
            )
            answer = {"code": code, "scope": q.get("scope", "")}
        if state is not None:
            answer["state"] = state
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{separator}{urlencode(answer)}", status_code=302)

    def _client_ok(self, request: Request, form: dict[str, str]) -> bool:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:]).decode()
            except ValueError:
                return False
            client_id, _, client_secret = decoded.partition(":")
        return client_id == self.client_id and client_secret == self.client_secret

    async def _token(self, request: Request) -> Response:
        form = await _form(request)
        await self._delay()
        grant_type = form.get("grant_type", "")
        self.calls[grant_type or "unknown"] += 1
        if self.status is not None:
            return Response("<html><body>Server Error</body></html>", self.status)
        if not self._client_ok(request, form):
            return _error(401, "invalid_client", "Unauthorized")
        if grant_type == "authorization_code":
            return self._exchange(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        return _error(400, "unsupported_grant_type", "Invalid grant_type: " + grant_type[:40])

    def _exchange(self, form: dict[str, str]) -> Response:
        code = self._codes.pop(form.get("code", ""), None)  # single use, even if it fails
        if code is None:
            return _error(400, "invalid_grant", "Malformed auth code.")
        if form.get("redirect_uri") != code.redirect_uri:
            return _error(400, "redirect_uri_mismatch", "Bad Request")
        if code.challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier:
                return _error(400, "invalid_grant", "Missing code verifier.")
            expected = s256(verifier) if code.method == "S256" else verifier
            if not secrets.compare_digest(expected, code.challenge):
                return _error(400, "invalid_grant", "Invalid code verifier.")
        grant = _Grant("1//" + secrets.token_urlsafe(32), code.scope, self.user.email)
        self._grants[grant.refresh_token] = grant
        return JSONResponse({**self._new_access(grant), "refresh_token": grant.refresh_token})

    def _refresh(self, form: dict[str, str]) -> Response:
        grant = self._grants.get(form.get("refresh_token", ""))
        if self.invalid_grant or grant is None or not grant.active:
            return _error(400, "invalid_grant", "Bad Request")
        body = self._new_access(grant)
        if self.rotate:
            grant.active = False
            rotated = _Grant("1//" + secrets.token_urlsafe(32), grant.scope, grant.email)
            self._access[body["access_token"]].grant = rotated
            self._grants[rotated.refresh_token] = rotated
            body["refresh_token"] = rotated.refresh_token
        return JSONResponse(body)

    def _new_access(self, grant: _Grant) -> dict[str, Any]:
        token = "ya29." + secrets.token_urlsafe(32)
        self._access[token] = _Access(grant, self.clock.now() + self.lifetime)
        return {
            "access_token": token,
            "expires_in": self.lifetime,
            "scope": " ".join(grant.scope),
            "token_type": "Bearer",
        }

    async def _userinfo(self, request: Request) -> Response:
        await self._delay()
        self.calls["userinfo"] += 1
        if self.userinfo_status is not None:
            return _error(self.userinfo_status, "backend_error", "Backend Error")
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if self.check_access_token(token) != "valid":
            return _error(
                401,
                "invalid_request",
                "Invalid Credentials",
                **{"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        user = self.user
        return JSONResponse(
            {
                "sub": hashlib.sha256(user.email.encode()).hexdigest()[:21],
                "email": self._access[token].grant.email,
                "email_verified": True,
                "name": user.name,
                "picture": user.picture,
            }
        )

    async def _revoke(self, request: Request) -> Response:
        await self._delay()
        self.calls["revoke"] += 1
        form = await _form(request)
        token = form.get("token") or request.query_params.get("token") or ""
        grant = self._grants.get(token)
        access = self._access.get(token)
        if grant is None and access is not None:
            grant = access.grant
        if grant is None or not grant.active:
            return _error(400, "invalid_token", "Token expired or revoked")
        grant.active = False
        grant.revoked = True
        return JSONResponse({})
