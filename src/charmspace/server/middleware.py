"""The gate every request passes first: a request id, the body limit, the signature, a log line.

Plain ASGI rather than a FastAPI dependency, because all of it must happen before
anything parses the body: an oversized body is refused from its length, an
unsigned or badly signed request never reaches the JSON parser or a route, and
the signature covers the raw bytes as they arrived.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from charmspace.errors import CharmspaceError
from charmspace.server.auth import Verifier
from charmspace.server.errors import (
    BadRequestError,
    BodyTooLargeError,
    error_body,
    status_of,
)

log = logging.getLogger("charmspace.server.requests")

PUBLIC = frozenset({"/api/meta"})
"""Paths under /api/ that answer without a signature."""

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
        self, app: ASGIApp, *, verifier: Verifier, max_body_bytes: int, max_json_depth: int
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
                refused = getattr(error, "reason", None) or type(error).__name__
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
        if not path.startswith("/api/") or path in PUBLIC:
            return None
        target = scope.get("raw_path") or path.encode("utf-8", "surrogateescape")
        query: bytes = scope.get("query_string", b"")
        if query:
            target += b"?" + query
        header = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        return self.verifier.verify(scope["method"], target.decode("latin-1"), body, header)


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


async def _send_error(send: Send, error: CharmspaceError) -> None:
    status = status_of(error)
    if status is None:
        raise error
    payload: dict[str, Any] = {"error": error_body(error)}
    data = json.dumps(payload).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Charmspace"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
