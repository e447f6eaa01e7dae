"""The web shell's pages: home, a space, a charm, and the login page.

Every page is the same small HTML document; the vendored module
``static/shell.js`` reads the path and fills it in from the HTTP API and the
view protocol on ``/api/ws``. The document carries no inline script and is
served with a strict Content-Security-Policy, so even a UI tree that slipped
past the renderer's allowlists could not run code.

These routes are registered last and only match paths that cannot be anything
else: a space is a ``did:key:`` and a charm id has no ``/``, so ``/api/…``,
``/docs``, ``/openapi.json``, ``/_health``, ``/login`` and ``/static/…`` are
never shadowed.
"""

from __future__ import annotations

import html
from importlib.resources import files
from typing import Final

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from charmspace.server.sessions import SESSION_COOKIE, SessionStore

router = APIRouter(include_in_schema=False)

STATIC = files("charmspace.server") / "static"

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: https: http:; connect-src 'self'; font-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
)
"""No inline script or style, no plugins, no framing, connections only to this server."""

SECURITY_HEADERS: Final = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class ShellStatic(StaticFiles):
    """The renderer's files, with the pages' security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def static_files() -> ShellStatic:
    return ShellStatic(directory=str(STATIC))


def _page(request: Request, kind: str, status: int = 200, message: str = "") -> Response:
    banner: str = request.app.state.settings.demo_banner
    text = (
        (STATIC / "shell.html")
        .read_text(encoding="utf-8")
        .replace("{{page}}", kind)
        .replace("{{banner}}", html.escape(banner, quote=True))
        .replace("{{message}}", html.escape(message))
    )
    return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)


def _logged_in(request: Request) -> bool:
    sessions: SessionStore = request.app.state.sessions
    return sessions.get(request.cookies.get(SESSION_COOKIE, "")) is not None


def page_or_login(request: Request, kind: str) -> Response:
    """The page for a logged-in browser; everyone else is sent to the login page."""
    if not _logged_in(request):
        return RedirectResponse("/login", status_code=303, headers={"cache-control": "no-store"})
    return _page(request, kind)


def login_page(request: Request, status: int = 200, message: str = "") -> Response:
    return _page(request, "login", status, message)


@router.get("/")
async def home(request: Request) -> Response:
    """Your charms, favorites and spaces, and a form for a new charm."""
    return page_or_login(request, "home")


@router.get("/{space}")
async def space(request: Request, space: str) -> Response:
    """The charms of one space."""
    if not space.startswith("did:key:"):
        return _not_found(request)
    return page_or_login(request, "space")


@router.get("/{space}/{charm}")
async def charm(request: Request, space: str, charm: str) -> Response:
    """One charm's UI, live."""
    if not space.startswith("did:key:"):
        return _not_found(request)
    return page_or_login(request, "charm")


def _not_found(request: Request) -> Response:
    """Not a page: the API's JSON 404 (``/api/none``), so clients see one error format."""
    raise HTTPException(404, f"Nothing is at {request.url.path[:200]}.")
