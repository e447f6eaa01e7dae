"""The gate every request passes first: a request id, the body limit, who sent it, a log line.

Plain ASGI rather than a FastAPI dependency, because all of it must happen before
anything parses the body: an oversized body is refused from its length, an
unsigned or badly signed request never reaches the JSON parser or a route, and
the signature covers the raw bytes as they arrived.

The gate also holds the limits that span requests: how many ``/api/ws``
connections are open, counted from the upgrade it authenticated to the
socket's end, per DID (``max_websockets_per_did``), per client address
(``max_websockets_per_address``: identities are free to mint, so per DID alone
one client could open as many as it likes) and in all (``max_websockets``),
so no one client can hold every socket the server can serve.

A request is authenticated by its signature or, when it carries no
``Authorization`` header, by a browser's session cookie (with the CSRF checks
of :mod:`charmspace.server.sessions` for anything but GET and HEAD). Either way
the request's principal is a DID, and nothing after the gate tells them apart.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import secrets
import time
from typing import Any

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from charmspace.errors import CharmspaceError
from charmspace.server.auth import Verifier
from charmspace.server.errors import (
    AuthenticationError,
    BadRequestError,
    BodyTooLargeError,
    CrossSiteRequestError,
    ServerBusyError,
    error_body,
    error_headers,
    status_of,
)
from charmspace.server.sessions import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, SessionStore
from charmspace.server.tally import Tally

log = logging.getLogger("charmspace.server.requests")

PUBLIC = frozenset(
    {
        ("GET", "/api/meta"),
        ("GET", "/api/session/challenge"),
        ("POST", "/api/session"),
        # Google sends the browser here; the single-use state is the authority.
        ("GET", "/api/integrations/google-oauth/callback"),
    }
)
"""Methods and paths under /api/ that answer without a signature or session."""

SAFE_METHODS = frozenset({"GET", "HEAD"})

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """How deeply ``body``'s arrays and objects nest (strings skipped; no parsing)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(b"", body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class RequestGate:
    """ASGI middleware: see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: Verifier,
        sessions: SessionStore,
        max_body_bytes: int,
        max_json_depth: int,
        max_websockets_per_did: int,
        max_websockets_per_address: int,
        max_websockets: int,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.sessions = sessions
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.max_websockets_per_did = max_websockets_per_did
        self.max_websockets_per_address = max_websockets_per_address
        self.max_websockets = max_websockets
        # The open /api/ws connections, by principal (their total: all of them) and by address
        self.websockets: Tally[str] = Tally()
        self.websockets_by_address: Tally[str] = Tally()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(6)
        started = time.perf_counter()
        status = 0
        principal: str | None = None
        refused: str | None = None

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (b"x-request-id", request_id.encode()),
                    ],
                }
            await send(message)

        try:
            try:
                body = await self._read_body(scope, receive)
                principal = self._authenticate(scope, body)
            except CharmspaceError as error:
                refused = (
                    getattr(error, "reason", None)
                    or getattr(error, "limit", None)
                    or type(error).__name__
                )
                principal = getattr(error, "principal", None)  # a verified DID over its limit
                await _send_error(send_logged, error)
                return
            scope = {**scope, "state": {**scope.get("state", {}), "principal": principal}}
            await self.app(scope, _replay(body, receive), send_logged)
        finally:
            log.info(
                "%s %s %s %s %.1fms %s%s",
                request_id,
                scope["method"],
                scope["path"],
                status or 500,
                (time.perf_counter() - started) * 1000,
                principal or "-",
                f" refused: {refused}" if refused else "",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status or 500,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "principal": principal,
                    "refused": refused,
                },
            )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate a WebSocket upgrade before the route accepts it.

        A signed upgrade signs ``GET``, its path and an empty body. A session
        upgrade must come from our own origin: a browser sends a page's
        cookies with an upgrade from any site, and CORS does not cover
        WebSockets, so the ``Origin`` check is all that stops a foreign page.
        """
        address = client_address(scope)
        principal: str | None = None
        try:
            principal = self._authenticate_upgrade(scope)
            self._check_room(principal, address)
        except CharmspaceError as error:
            refused = getattr(error, "reason", None) or getattr(error, "limit", None)
            log.info(
                "websocket %s from %s %s refused: %s",
                scope["path"],
                address or "-",
                principal or "-",
                refused or type(error).__name__,
                extra={
                    "path": scope["path"],
                    "address": address,
                    "refused": refused,
                    "principal": principal,
                },
            )
            await _deny_upgrade(scope, receive, send, error)
            return
        log.info(
            "websocket %s from %s %s",
            scope["path"],
            address or "-",
            principal,
            extra={"path": scope["path"], "address": address, "principal": principal},
        )
        scope = {**scope, "state": {**scope.get("state", {}), "principal": principal}}
        self.websockets.add(principal)
        self.websockets_by_address.add(address)
        try:
            await self.app(scope, receive, send)
        finally:
            self.websockets.remove(principal)
            self.websockets_by_address.remove(address)

    def _check_room(self, principal: str, address: str) -> None:
        """Refuse (429) one more ``/api/ws`` connection past a limit: the identity's,
        then the client address's (identities are free to mint), then the server's."""
        if self.websockets[principal] >= self.max_websockets_per_did:
            raise ServerBusyError(
                f"This identity has {self.max_websockets_per_did} live connections open "
                "already: close a page or a client's watch, then retry.",
                limit="websockets_per_did",
                retry_after=5,
                principal=principal,
            )
        if self.websockets_by_address[address] >= self.max_websockets_per_address:
            raise ServerBusyError(
                f"This client address has {self.max_websockets_per_address} live connections "
                "open already, whatever the identities: close a page or a client's watch, "
                "then retry.",
                limit="websockets_per_address",
                retry_after=5,
            )
        if self.websockets.total >= self.max_websockets:
            raise ServerBusyError(
                f"The server has {self.max_websockets} live connections open, as many as it "
                "serves: retry in a few seconds.",
                limit="websockets",
                retry_after=5,
            )

    def _authenticate_upgrade(self, scope: Scope) -> str:
        return self._principal(scope, "GET", b"", upgrade=True)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise BadRequestError("Content-Length is not a number.") from None
                if declared > self.max_body_bytes:
                    raise BodyTooLargeError(self.max_body_bytes)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLargeError(self.max_body_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and json_depth(body) > self.max_json_depth:
            raise BadRequestError(
                f"The JSON body nests deeper than {self.max_json_depth} levels.", "body"
            )
        return body

    def _authenticate(self, scope: Scope, body: bytes) -> str | None:
        path: str = scope["path"]
        if not path.startswith("/api/") or (scope["method"], path) in PUBLIC:
            return None
        return self._principal(scope, scope["method"], body, upgrade=False)

    def _principal(self, scope: Scope, method: str, body: bytes, *, upgrade: bool) -> str:
        """The signer of the request or, with no signature, its session's DID."""
        header = header_value(scope, b"authorization")
        if header is None:
            session_id = cookies(scope).get(SESSION_COOKIE)
            if session_id:
                return self._session_principal(scope, session_id, upgrade)
        target = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        query: bytes = scope.get("query_string", b"")
        if query:
            target += b"?" + query
        return self.verifier.verify(method, target.decode("latin-1"), body, header)

    def _session_principal(self, scope: Scope, session_id: str, upgrade: bool) -> str:
        session = self.sessions.get(session_id)
        if session is None:
            raise AuthenticationError("session", "The session is unknown or expired: log in again.")
        if upgrade:
            check_origin(scope)  # frames sent later carry no headers: this is the only check
        elif scope["method"] not in SAFE_METHODS:
            check_origin(scope)
            header = header_value(scope, CSRF_HEADER.encode())
            if not session.csrf_matches(header, cookies(scope).get(CSRF_COOKIE)):
                raise CrossSiteRequestError(
                    "csrf",
                    "A request authenticated by the session cookie must echo the "
                    f"{CSRF_COOKIE} cookie in an X-CSRF-Token header.",
                )
        return session.did


def header_value(scope: Scope, name: bytes) -> str | None:
    """The first header called ``name`` (lower case), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def client_address(scope: Scope) -> str:
    """The client's address ("" if unknown), as the per-address limits count it.

    The peer's address or, behind a proxy the server trusts (uvicorn's
    ``FORWARDED_ALLOW_IPS``), the one ``X-Forwarded-For`` names. An IPv6 client
    counts as its ``/64``: one host is usually given a whole ``/64``, so counting
    its single addresses would let it be as many clients as it likes.
    """
    client = scope.get("client")
    if not client:
        return ""
    host = str(client[0])
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an IP (a test client's name, a Unix socket): counted as it is
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return host


def cookies(scope: Scope) -> dict[str, str]:
    header = header_value(scope, b"cookie")
    return cookie_parser(header) if header else {}


def own_origin(scope: Scope) -> str:
    """This server's origin as the request addressed it: scheme and Host."""
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    host = header_value(scope, b"host")
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] in (None, 80, 443) else f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}"


def check_origin(scope: Scope) -> None:
    """Refuse a cookie-authenticated request unless its ``Origin`` is this server.

    Browsers send ``Origin`` on every POST, PUT, DELETE and WebSocket upgrade,
    so its absence means something other than a browser page of ours. Why the
    header and not only the CSRF cookie: cookies are not kept apart by port, so
    a page served from another port of the same host can read that cookie.
    """
    origin = header_value(scope, b"origin")
    if origin is None:
        raise CrossSiteRequestError(
            "origin",
            "A request authenticated by the session cookie must carry this server's "
            "Origin header; scripts and tools should sign their requests instead.",
        )
    if origin != own_origin(scope):
        raise CrossSiteRequestError(
            "origin", f"Requests from {origin[:100]} are not accepted with this server's cookies."
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over the buffered body once, then waits on the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _deny_upgrade(scope: Scope, receive: Receive, send: Send, error: CharmspaceError) -> None:
    """Refuse the upgrade with the error's status and JSON body (a close, if the server
    cannot send an HTTP response to an upgrade)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        await _send_error(send, error, prefix="websocket.")
    else:
        await send({"type": "websocket.close", "code": 1008})


async def _send_error(send: Send, error: CharmspaceError, prefix: str = "") -> None:
    status = status_of(error)
    if status is None:
        raise error
    payload: dict[str, Any] = {"error": error_body(error)}
    data = json.dumps(payload).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Charmspace"))
    headers.extend((name.encode(), value.encode()) for name, value in error_headers(error).items())
    await send({"type": f"{prefix}http.response.start", "status": status, "headers": headers})
    await send({"type": f"{prefix}http.response.body", "body": data})
