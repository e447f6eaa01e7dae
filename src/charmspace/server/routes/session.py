"""Browser sessions: challenge, login, who am I, logout, and the one-time login link."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from charmspace.server.deps import PrincipalDep
from charmspace.server.errors import (
    AuthenticationError,
    ServerBusyError,
    error_headers,
    status_of,
)
from charmspace.server.middleware import check_origin, client_address
from charmspace.server.models import Challenge, Login, SessionInfo
from charmspace.server.routes.pages import login_page
from charmspace.server.sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_TTL,
    Session,
    SessionStore,
)

router = APIRouter(tags=["session"])


def _store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


def _set_cookies(request: Request, response: Response, session: Session) -> None:
    secure = request.url.scheme == "https"
    for name, value, httponly in (
        (SESSION_COOKIE, session.id, True),
        (CSRF_COOKIE, session.csrf, False),  # our page's script reads it for X-CSRF-Token
    ):
        response.set_cookie(
            name,
            value,
            max_age=int(SESSION_TTL),
            path="/",
            secure=secure,
            httponly=httponly,
            samesite="strict",
        )


@router.get("/api/session/challenge")
async def challenge(request: Request) -> Challenge:
    """A new challenge to sign for ``POST /api/session``: single use, two minutes."""
    value, expires = _store(request).challenge(client_address(request.scope))
    return Challenge(challenge=value, expires=expires)


@router.post("/api/session")
async def login(request: Request, body: Login, response: Response) -> SessionInfo:
    """Log in with a signed challenge: sets the session and CSRF cookies."""
    check_origin(request.scope)  # no logging a victim's browser in from another site
    session = _store(request).login(
        body.did, body.challenge, body.signature, client_address(request.scope)
    )
    _set_cookies(request, response, session)
    return SessionInfo(did=session.did, expires=session.expires, csrf=session.csrf)


@router.get("/api/session")
async def whoami(request: Request, principal: PrincipalDep) -> SessionInfo:
    """Who this request acts as, and its session's expiry and CSRF token if it has one."""
    session = _store(request).get(request.cookies.get(SESSION_COOKIE, ""))
    if session is None or session.did != principal:
        return SessionInfo(did=principal)
    return SessionInfo(did=principal, expires=session.expires, csrf=session.csrf)


@router.delete("/api/session", status_code=204)
async def logout(request: Request, principal: PrincipalDep) -> Response:
    """Log out: the session ends on the server and its cookies are cleared."""
    _store(request).close(request.cookies.get(SESSION_COOKIE, ""))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/login", include_in_schema=False)
async def login_link(request: Request, token: str = "") -> Response:
    """The login page or, with ``?token=``, the one-time link ``charmspace serve`` prints.

    The link logs the browser in as the local user and lands on the home page.
    A spent or unknown token is a 401 (an address holding
    ``max_sessions_per_address`` sessions, a 429 that leaves the token unspent):
    the login page for a browser, the JSON error for anything else.
    """
    if not token:
        return login_page(request)
    try:
        session = _store(request).redeem(token, client_address(request.scope))
    except (AuthenticationError, ServerBusyError) as error:
        if "text/html" not in request.headers.get("accept", ""):
            raise
        page = login_page(request, status_of(error) or 401, str(error))
        page.headers.update(error_headers(error))  # a busy address: when to retry
        return page
    response = RedirectResponse("/", status_code=303)
    _set_cookies(request, response, session)
    return response
