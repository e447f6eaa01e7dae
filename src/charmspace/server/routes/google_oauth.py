"""``/api/integrations/google-oauth/``: sign in with Google, refresh, sign out.

``login`` remembers a random state (single use, 10 minutes) with the PKCE
verifier, the auth cell and who asked; ``callback`` is where Google sends the
browser back: it exchanges the code and writes the whole ``Auth`` into the auth
cell *as the principal who asked*, never as the server. The refresh and sign-in
logic is :class:`~charmspace.integrations.google.oauth.GoogleOAuth`, which the
``google_auth`` charm's handlers use too (through ``runtime.services``).
"""

from __future__ import annotations

import html
import json
import logging
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from charmspace.errors import CharmspaceError, IntegrationError
from charmspace.integrations.google.oauth import EMPTY_AUTH, GoogleOAuth
from charmspace.runtime.address import Address, is_link, parse_link
from charmspace.runtime.cell import to_json
from charmspace.runtime.transaction import Transaction
from charmspace.server.deps import PrincipalDep, RuntimeDep, acting, require
from charmspace.server.errors import BadRequestError, error_response
from charmspace.storage import Capability
from charmspace.types import DID, JSONValue
from charmspace.values import freeze

log = logging.getLogger(__name__)

PREFIX = "/api/integrations/google-oauth"
CALLBACK = PREFIX + "/callback"
router = APIRouter(prefix=PREFIX, tags=["google-oauth"])

STATUS_OF_REASON = {"invalid_grant": 401, "upstream_unreachable": 504, "malformed_response": 502}
"""HTTP status of a refresh failure by reason; ``upstream_<status>`` is 502."""


async def get_oauth(request: Request) -> GoogleOAuth:
    oauth: GoogleOAuth = request.app.state.google_oauth
    return oauth


OAuthDep = Annotated[GoogleOAuth, Depends(get_oauth)]


class Login(BaseModel):
    """Start a sign-in for ``auth_cell`` (a link to the auth charm's ``auth`` cell)."""

    model_config = ConfigDict(extra="forbid")

    auth_cell: dict[str, Any] = Field(
        description='A link: {"/": {"link@1": {"space": …, "id": …, "path": […]}}}.'
    )
    scopes: list[Annotated[str, Field(max_length=300)]] = Field(default=[], max_length=20)


class LoginURL(BaseModel):
    url: str


class Logout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth_cell: dict[str, Any]


class LoggedOut(BaseModel):
    ok: bool
    revoked: bool
    """Whether Google confirmed the revocation (the cell is cleared either way)."""


def _auth_address(link: dict[str, Any]) -> Address:
    value = freeze(link)
    body = link.get("/", {}).get("link@1") if isinstance(link.get("/"), dict) else None
    if not is_link(value) or not isinstance(body, dict) or not body.get("space"):
        raise BadRequestError(
            'auth_cell must be a link naming its space: {"/": {"link@1": {"space": "did:key:…", '
            '"id": "…", "path": ["auth"]}}}',
            "body/auth_cell",
        )
    try:
        address, _redirect = parse_link(value, Address(body["space"], str(body.get("id", "")), ()))
    except CharmspaceError as error:
        raise BadRequestError(
            f"auth_cell is not a usable link: {error}", "body/auth_cell"
        ) from None
    if not address.id:
        raise BadRequestError("auth_cell must name a document id.", "body/auth_cell")
    return address


def _redirect_uri(request: Request, oauth: GoogleOAuth) -> str:
    if oauth.redirect_uri:
        return oauth.redirect_uri
    return str(request.base_url).rstrip("/") + CALLBACK


def _integration_error(error: IntegrationError, status: int) -> JSONResponse:
    return error_response("IntegrationError", str(error), status, reason=error.reason)


@router.post("/login")
async def login(
    body: Login, request: Request, runtime: RuntimeDep, principal: PrincipalDep, oauth: OAuthDep
) -> LoginURL:
    """The Google authorize URL for a new sign-in into ``auth_cell`` (needs WRITE on its space)."""
    address = _auth_address(body.auth_cell)
    require(runtime, address.space, principal, Capability.WRITE, "sign in with Google")
    try:
        url = oauth.start_login(address, principal, body.scopes, _redirect_uri(request, oauth))
    except IntegrationError as error:
        return _integration_error(error, 503)  # type: ignore[return-value]
    return LoginURL(url=url)


def _page(ok: bool, message: str, reason: str = "", back: str = "/") -> HTMLResponse:
    """The page the browser lands on; ``back`` is where in the shell its link returns to."""
    title = "Signed in with Google" if ok else "Google sign-in failed"
    detail = f'<p id="reason">Reason: <code>{html.escape(reason)}</code></p>' if reason else ""
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title></head><body><h1>{title}</h1>"
        f'<p id="message">{html.escape(message)}</p>{detail}'
        f'<p><a id="back" href="{html.escape(back, quote=True)}">Back to charmspace</a></p>'
        "</body></html>",
        status_code=200 if ok else 400,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@router.get("/callback", response_class=HTMLResponse)
async def callback(
    runtime: RuntimeDep, oauth: OAuthDep, state: str = "", code: str = "", error: str = ""
) -> HTMLResponse:
    """Where Google sends the browser back: finish the sign-in and say how it went.

    A browser shows what this answers, so every failure is a page that says
    what went wrong and what to do, never a JSON error: the parameters are
    checked here rather than by the query's schema.
    """
    if len(state) > 200 or len(code) > 2000 or len(error) > 200:
        return _page(False, "This sign-in link is malformed; start the sign-in again.", "bad_link")
    try:
        record = oauth.take_login(state)
    except IntegrationError as e:
        return _page(False, str(e), e.reason)
    back = "/" + quote(record.auth_cell.space, safe=":")  # the auth charm's space in the shell
    if error:
        return _page(False, "Google did not sign you in; nothing was changed.", error, back)
    if not code:
        return _page(
            False,
            "Google sent no authorization code; start the sign-in again.",
            "missing_code",
            back,
        )
    try:
        auth = await oauth.finish_login(record, code)
    except IntegrationError as e:
        log.warning("a Google sign-in failed: %s", e.reason)
        return _page(False, str(e), e.reason, back)
    try:
        _write(runtime, record.principal, record.auth_cell, to_json(auth))
    except CharmspaceError as e:
        log.warning("a Google sign-in could not be stored: %s", type(e).__name__)
        return _page(False, f"The sign-in could not be stored: {e}", "write_refused", back)
    email = auth["user"].get("email", "")
    return _page(True, f"Signed in as {email}." if email else "Signed in.", back=back)


def _write(runtime: Any, principal: DID, address: Address, value: JSONValue) -> None:
    """Write ``value`` at ``address`` as ``principal`` in one commit (storage checks WRITE)."""
    with acting(principal):
        tx = Transaction(runtime, principal, meta={"edit": "google-oauth"})
        try:
            tx.write(address, value)
            tx.commit()
        except BaseException:
            if tx.state == "open":
                tx.abort()
            raise


async def _refresh_token_of(request: Request) -> str:
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    value: Any = None
    if kind == "application/x-www-form-urlencoded":
        value = dict(parse_qsl(raw.decode("utf-8", "replace"))).get("refresh_token")
    else:  # JSON, whatever the content type says (a beacon sends text/plain)
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        value = body.get("refresh_token") if isinstance(body, dict) else None
    if not isinstance(value, str) or not value or len(value) > 2000:
        raise BadRequestError(
            'The body must be {"refresh_token": "<a refresh token>"} (JSON or form-encoded).',
            "body/refresh_token",
        )
    return value


@router.post("/refresh")
async def refresh(request: Request, principal: PrincipalDep, oauth: OAuthDep) -> JSONResponse:
    """A new access token for a refresh token; concurrent asks share one call to Google."""
    refresh_token = await _refresh_token_of(request)
    try:
        info = await oauth.refresh(refresh_token)
    except IntegrationError as error:
        status = STATUS_OF_REASON.get(error.reason, 502)
        return _integration_error(error, status)
    return JSONResponse({"token_info": dict(info)}, headers={"Cache-Control": "no-store"})


@router.post("/logout")
async def logout(
    body: Logout, runtime: RuntimeDep, principal: PrincipalDep, oauth: OAuthDep
) -> LoggedOut:
    """Clear the auth cell (needs WRITE), then ask Google to revoke the grant (best effort)."""
    address = _auth_address(body.auth_cell)
    require(runtime, address.space, principal, Capability.WRITE, "sign out of Google")
    current = Transaction(runtime, principal).read(address)
    token = ""
    if isinstance(current, dict):
        token = str(current.get("refresh_token") or current.get("token") or "")
    _write(runtime, principal, address, to_json(EMPTY_AUTH))
    revoked = await oauth.revoke(token)
    return LoggedOut(ok=True, revoked=revoked)
