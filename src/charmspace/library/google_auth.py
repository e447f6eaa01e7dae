"""Google Auth: the charm that owns a Google sign-in and refreshes its token. #googleAuth

Other charms find it with ``wish("#googleAuth")`` and read
``found["result"]["auth"]``. They cannot write that cell (it lives in this
charm's space); when the token they saw is stale they send
``{"stale_token": <the token they saw>}`` to ``found["result"]["refresh"]``
and await the call. The refresh runs here, in this charm's transaction:

- the token is still valid (not within the skew of its expiry) and is not the
  one the caller saw: someone refreshed it already, nothing to do;
- otherwise the server's Google client refreshes it (one provider call however
  many ask at once) and the new token is written;
- a failure raises :class:`~charmspace.errors.IntegrationError` with its
  ``reason`` (``invalid_grant``: sign in again), the caller's result is
  ``ok=False`` and the cell is unchanged.

The charm also refreshes by itself (an alarm) once less than the skew remains,
so a scan rarely meets an expired token.
"""

from __future__ import annotations

from typing import Any, TypedDict

from charmspace.errors import IntegrationError
from charmspace.integrations.google.oauth import (
    DEFAULT_MARGIN,
    EMPTY_AUTH,
    GMAIL_READONLY,
    Auth,
    GoogleOAuth,
    skew_seconds,
)
from charmspace.patterns import (
    NAME,
    UI,
    Default,
    Ref,
    alarm,
    cell,
    computed,
    derive,
    handler,
    if_else,
    now,
    pattern,
)
from charmspace.patterns.refs import active_builder
from charmspace.patterns.ui import h
from charmspace.runtime import context
from charmspace.runtime.cell import Cell
from charmspace.runtime.services import service

__all__ = ["SCOPES", "google_auth", "google_auth_short", "is_valid"]

SCOPES: dict[str, tuple[str, str]] = {
    "gmail": (GMAIL_READONLY, "Gmail (read only)"),
    "calendar": ("https://www.googleapis.com/auth/calendar.readonly", "Calendar (read only)"),
    "drive": ("https://www.googleapis.com/auth/drive.readonly", "Drive (read only)"),
}
"""The scopes a user may tick: key → (scope URL, label)."""

DEFAULT_SCOPES = {"gmail": True, "calendar": False, "drive": False}
SHORT_LIFETIME = 60
"""Seconds the short variant lets a token live (Google's usual hour is cut to this)."""


class RefreshEvent(TypedDict, total=False):
    stale_token: str
    """The access token the caller saw (and found stale or refused)."""


def lifetime_of(auth: Any, cap: int = 0) -> tuple[float, int]:
    """``(expires_at in epoch seconds, lifetime in seconds)``, the lifetime cut to ``cap``
    seconds when one is given (the short variant); ``(0, 0)`` when unknown."""
    if not isinstance(auth, dict) or not auth.get("expires_at"):
        return 0.0, 0
    expires_at = float(auth["expires_at"]) / 1000
    expires_in = int(auth.get("expires_in") or 0)
    if cap and (not expires_in or expires_in > cap):
        issued = expires_at - expires_in
        expires_in, expires_at = cap, issued + cap
    return expires_at, expires_in


def is_valid(auth: Any, at: float, cap: int = 0, margin: float = DEFAULT_MARGIN) -> bool:
    """Whether ``auth`` holds a token that is not within the skew of its expiry at ``at``."""
    if not isinstance(auth, dict) or not auth.get("token"):
        return False
    expires_at, expires_in = lifetime_of(auth, cap)
    if not expires_at:
        return True  # Google gave no lifetime: valid until a call is refused
    return at < expires_at - skew_seconds(expires_in, margin)


def _oauth() -> GoogleOAuth:
    oauth = service(GoogleOAuth)
    if oauth is None:
        raise IntegrationError(
            "not_configured",
            "Google sign-in is not available here: run the charm in a charmspace server "
            "configured with a Google client (CHARMSPACE_GOOGLE_CLIENT_ID).",
        )
    return oauth


@handler
async def refresh(event: RefreshEvent, *, auth: Cell[Auth], lifetime: int, margin: int) -> str:
    """Refresh the token unless someone already did; ``"fresh"`` or ``"refreshed"``."""
    current: Any = auth.get() or EMPTY_AUTH
    if is_valid(current, now(), lifetime, margin) and current.get("token") != event.get(
        "stale_token"
    ):
        return "fresh"
    refresh_token = current.get("refresh_token") or ""
    if not refresh_token:
        raise IntegrationError(
            "invalid_grant", "There is no Google sign-in to refresh: please sign in with Google."
        )
    info = await _oauth().refresh(refresh_token)
    auth.set(
        {
            **EMPTY_AUTH,
            **current,
            "token": info["token"],
            "token_type": info["token_type"],
            "scope": info["scope"] if info["scope"] is not None else list(current.get("scope", [])),
            "expires_in": info["expires_in"],
            "expires_at": info["expires_at"],
            "refresh_token": info["refresh_token"],
        }
    )
    return "refreshed"


@handler
def sign_in(
    event: dict[str, Any],
    *,
    auth: Cell[Auth],
    selected_scopes: dict[str, bool],
    login_url: Cell[str],
) -> str:
    """Start a sign-in as the user who clicked: ``login_url`` is where their browser goes."""
    oauth = _oauth()
    if not oauth.redirect_uri:
        raise IntegrationError(
            "config", "The server does not know its public URL: set CHARMSPACE_GOOGLE_PUBLIC_URL."
        )
    tx = context.current().transaction
    assert tx is not None  # a handler always runs in one
    scopes = [SCOPES[k][0] for k, on in (selected_scopes or {}).items() if on and k in SCOPES]
    url = oauth.start_login(auth.address, tx.principal, scopes, oauth.redirect_uri)
    login_url.set(url)
    return url


@handler
async def sign_out(event: dict[str, Any], *, auth: Cell[Auth], login_url: Cell[str]) -> None:
    """Forget the sign-in; Google is asked to revoke it too (best effort)."""
    current: Any = auth.get() or {}
    auth.set(EMPTY_AUTH)
    login_url.set("")
    oauth = service(GoogleOAuth)
    token = current.get("refresh_token") or current.get("token") or ""
    if oauth is not None and token:
        await oauth.revoke(token)


def _refresh_at(auth: Any, cap: int, margin: Any) -> float | None:
    """When the alarm refreshes: the skew before expiry, if there is anything to refresh."""
    if not isinstance(auth, dict) or not auth.get("refresh_token"):
        return None
    expires_at, expires_in = lifetime_of(auth, cap)
    margin = margin if isinstance(margin, int | float) else DEFAULT_MARGIN
    return expires_at - skew_seconds(expires_in, margin) if expires_at else None


def _remaining(auth: Any, cap: int) -> int:
    """Seconds left; whole minutes while over a minute remains, so it commits once a minute."""
    expires_at, _ = lifetime_of(auth, cap)
    if not isinstance(auth, dict) or not auth.get("token") or not expires_at:
        return 0
    left = max(0, int(expires_at - now(resolution=1)))
    return left if left < 60 else left - left % 60


def _needs_sign_in(auth: Any, error: Any) -> bool:
    """Whether the last refresh was refused (invalid_grant) after this token was issued."""
    if not isinstance(error, dict) or error.get("reason") != "invalid_grant":
        return False
    if not isinstance(auth, dict) or not auth.get("refresh_token"):
        return True
    expires_at, expires_in = lifetime_of(auth)
    issued = expires_at - expires_in
    return float(error.get("time") or 0) >= issued


def _build(auth: Any, selected_scopes: Any, margin: Any, title: str, cap: int) -> dict[str, Any]:
    builder = active_builder("google_auth")
    address = auth.address
    url = cell("")
    last_error = Ref(builder.runtime, builder.unit.error_address, f"{title}.error")
    refresh_stream = refresh.bind(auth=auth, lifetime=cap, margin=margin)
    sign_in_stream = sign_in.bind(auth=auth, selected_scopes=selected_scopes, login_url=url)
    sign_out_stream = sign_out.bind(auth=auth, login_url=url)
    refresh_at = derive((auth, margin), lambda v: _refresh_at(v[0], cap, v[1]), name="refresh_at")
    alarm(refresh_at, refresh_stream, {})
    is_authenticated = derive(auth, lambda a: bool(isinstance(a, dict) and a.get("token")))
    expires_at = derive(auth, lambda a: round(lifetime_of(a, cap)[0] * 1000))
    scopes = derive(
        selected_scopes,
        lambda s: [SCOPES[k][0] for k, on in (s or {}).items() if on and k in SCOPES],
    )
    is_expired = computed(
        lambda: bool(
            is_authenticated.get()
            and expires_at.get()
            and now(resolution=1) >= (expires_at.get() or 0) / 1000
        ),
        name="is_expired",
    )
    time_remaining = computed(lambda: _remaining(auth.get(), cap), name="time_remaining")
    needs_sign_in = derive((auth, last_error), lambda v: _needs_sign_in(*v), name="needs_sign_in")
    email = derive(auth, lambda a: str((a or {}).get("user", {}).get("email", "")) if a else "")
    status = computed(
        lambda: (
            "Google refused the sign-in: please re-authenticate"
            if needs_sign_in.get()
            else "Not signed in"
            if not is_authenticated.get()
            else "Token expired: it will be refreshed"
            if is_expired.get()
            else f"Signed in as {email.get()}"
        ),
        name="status",
    )
    go_to_google = h("a", {"id": "continue", "href": url}, "Continue to Google")
    checkboxes = [
        h("checkbox", {"id": f"scope-{key}", "bind_checked": selected_scopes[key], "label": label})
        for key, (_url, label) in SCOPES.items()
    ]
    return {
        NAME: computed(
            lambda: f"{title}: {email.get()}" if is_authenticated.get() else f"{title}: signed out"
        ),
        UI: h(
            "stack",
            {},
            h("h2", {}, title),
            h("p", {"id": "status"}, status),
            h("p", {"id": "email"}, email),
            h("p", {"id": "time-remaining"}, "Seconds left: ", time_remaining),
            h("stack", {"id": "scopes"}, *checkboxes),
            if_else(
                is_authenticated,
                h("button", {"id": "sign-out", "on_click": sign_out_stream}, "Sign out"),
                h(
                    "stack",
                    {},
                    # The shell starts the sign-in through the server's login route
                    # and goes to the URL it answers (see docs/google.md).
                    h(
                        "oauth-button",
                        {
                            "id": "sign-in",
                            "data_auth_space": address.space,
                            "data_auth_id": address.id,
                            "data_auth_path": list(address.path),
                            "data_scopes": scopes,
                        },
                        "Sign in with Google",
                    ),
                    if_else(url, go_to_google, None),
                ),
            ),
        ),
        "auth": auth,
        "selected_scopes": selected_scopes,
        "scopes": scopes,
        "is_authenticated": is_authenticated,
        "expires_at": expires_at,
        "time_remaining": time_remaining,
        "is_expired": is_expired,
        "needs_sign_in": needs_sign_in,
        "status": status,
        "email": email,
        "login_url": url,
        "refresh": refresh_stream,
        "sign_in": sign_in_stream,
        "sign_out": sign_out_stream,
    }


@pattern(tags=["#googleAuth"])
def google_auth(
    auth: Default[Cell[Auth], EMPTY_AUTH],
    selected_scopes: Default[Cell[dict[str, bool]], DEFAULT_SCOPES],
    refresh_margin: Default[int, DEFAULT_MARGIN],
) -> dict[str, Any]:
    """Sign in with Google; other charms use the token and ask this one to refresh it.

    ``refresh_margin``: seconds before expiry (at most half the token's life) from
    which the token counts as stale and the charm refreshes it by itself."""
    return _build(auth, selected_scopes, refresh_margin, "Google Auth", 0)


@pattern(tags=["#googleAuth"])
def google_auth_short(
    auth: Default[Cell[Auth], EMPTY_AUTH],
    selected_scopes: Default[Cell[dict[str, bool]], DEFAULT_SCOPES],
    refresh_margin: Default[int, DEFAULT_MARGIN],
) -> dict[str, Any]:
    """Google Auth for trying the refresh cycle by hand: it treats every token as living 60
    seconds, so it refreshes every 30 seconds and the whole cycle shows in a minute."""
    return _build(auth, selected_scopes, refresh_margin, "Google Auth (short)", SHORT_LIFETIME)
