"""A fake Gmail: the REST paths charmspace uses, on generated mail, with faults on demand.

``FakeGmail(tokens)`` is an ASGI app. ``tokens(access_token)`` says whether a
bearer token is ``"valid"``, ``"expired"`` or ``"invalid"`` (the fake Google
answers that for the tokens it issued), so expiry is real: a token the clock
has passed gets Google's 401 body. The mailbox is a few hundred messages made
from a seed, in the MIME shapes real mail has (plain, HTML only, alternative,
nested multipart with an attachment; UTF-8, ISO-8859-1, quoted-printable,
base64), so body decoding is tested against what Gmail actually returns.

Served under ``/gmail/v1/users/me/``: ``profile``, ``messages`` (``q``,
``maxResults``, ``pageToken``), ``messages/{id}`` (``format=full|metadata|
minimal``), ``history`` (``startHistoryId``); and ``POST /batch/gmail/v1``, the
multipart batch endpoint google-api-python-client uses.

Fault switches on :attr:`FakeGmail.faults`: ``rate_limit(times, retry_after)``
(429 with ``Retry-After``), ``fail(status, times)`` (5xx), ``throttle_parts(times)``
(429 for parts of a batch),
``reject_tokens(times)`` (401 whatever the token), and ``missing`` (ids a batch
answers with 404).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from charmspace.runtime.clock import Clock, SystemClock
from charmspace.testing.mailbox import (
    ME,
    SHAPES,
    StoredMessage,
    build_mime,
    generate_messages,
    gmail_payload,
    parse_query,
)

__all__ = [
    "SHAPES",
    "UNAUTHENTICATED",
    "FakeGmail",
    "Faults",
    "StoredMessage",
    "messages_matching",
    "parse_query",
]

TokenState = Literal["valid", "expired", "invalid"]
TokenCheck = Callable[[str], TokenState]

UNAUTHENTICATED = {
    "error": {
        "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access "
        "token, login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "errors": [
            {
                "message": "Invalid Credentials",
                "domain": "global",
                "reason": "authError",
                "location": "Authorization",
                "locationType": "header",
            }
        ],
        "status": "UNAUTHENTICATED",
    }
}
"""Google's answer to an expired, revoked or unknown access token, word for word."""

_STATUS = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_REASON = {400: "invalidArgument", 404: "notFound", 429: "rateLimitExceeded"}
_MESSAGE = {
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}


def _error(code: int, message: str | None = None) -> JSONResponse:
    text = message or _MESSAGE.get(code, "Backend Error")
    body: dict[str, Any] = {"code": code, "message": text, "status": _STATUS.get(code, "UNKNOWN")}
    body["errors"] = [{"message": text, "domain": "global", "reason": _REASON.get(code, "backend")}]
    return JSONResponse({"error": body}, status_code=code)


@dataclass
class Faults:
    """Switches that make the fake misbehave the way Gmail does; each counts itself down."""

    rate_limited: int = 0
    retry_after: float = 1.0
    failing: int = 0
    failure_status: int = 503
    rejecting: int = 0
    throttled_parts: int = 0
    missing: set[str] = field(default_factory=set)
    """Message ids answered with 404 (in a batch or alone), as if deleted meanwhile."""

    def rate_limit(self, times: int = 1, retry_after: float = 1.0) -> None:
        """Answer the next ``times`` requests with 429 and ``Retry-After: retry_after``."""
        self.rate_limited, self.retry_after = times, retry_after

    def fail(self, status: int = 503, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` (a 5xx)."""
        self.failing, self.failure_status = times, status

    def throttle_parts(self, times: int = 1) -> None:
        """Answer the next ``times`` parts of batches with 429 (the batch itself is 200)."""
        self.throttled_parts = times

    def reject_tokens(self, times: int = 1) -> None:
        """Answer the next ``times`` requests with 401, as for a token revoked at Google."""
        self.rejecting = times


# --- the app ------------------------------------------------------------------------


class FakeGmail:
    """Gmail's REST API on a generated mailbox; see the module docstring."""

    def __init__(
        self,
        tokens: TokenCheck,
        clock: Clock | None = None,
        *,
        count: int = 300,
        seed: int = 7,
        email: str = ME,
    ) -> None:
        self.tokens = tokens
        self.clock = clock or SystemClock()
        self.email = email
        self.messages = generate_messages(count, seed, self.clock.now())
        self.by_id = {m.id: m for m in self.messages}
        self.faults = Faults()
        self.calls: Counter[str] = Counter()
        """Answers by endpoint: ``list``, ``get``, ``batch``, ``profile``, ``history``."""
        self.statuses: list[int] = []
        """The status of every answer, in order (a batch's inner answers included)."""
        self.app = Starlette(
            routes=[
                Route("/gmail/v1/users/{user}/profile", self._profile),
                Route("/gmail/v1/users/{user}/messages", self._list),
                Route("/gmail/v1/users/{user}/messages/{id}", self._get),
                Route("/gmail/v1/users/{user}/history", self._history),
                Route("/batch/gmail/v1", self._batch, methods=["POST"]),
                Route("/batch", self._batch, methods=["POST"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    # --- the answers, shared by direct requests and batch parts ---------------------

    def _gate(self, authorization: str | None) -> Response | None:
        """The answer a request gets before its endpoint runs: faults, then the token."""
        if self.faults.rate_limited > 0:
            self.faults.rate_limited -= 1
            response = _error(429)
            response.headers["Retry-After"] = f"{self.faults.retry_after:g}"
            return response
        if self.faults.failing > 0:
            self.faults.failing -= 1
            return _error(self.faults.failure_status)
        scheme, _, token = (authorization or "").partition(" ")
        state: TokenState = (
            self.tokens(token.strip()) if scheme.lower() == "bearer" and token else "invalid"
        )
        if self.faults.rejecting > 0:
            self.faults.rejecting -= 1
            state = "invalid"
        if state != "valid":
            return JSONResponse(
                UNAUTHENTICATED,
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        return None

    def answer(
        self, method: str, path: str, query: dict[str, list[str]], authorization: str | None
    ) -> Response:
        """Route one request (a direct one or a batch part) to its endpoint."""
        gate = self._gate(authorization)
        if gate is not None:
            return gate
        match = re.fullmatch(
            r"/gmail/v1/users/([^/]+)/(profile|messages|history)(?:/([^/]+))?", path
        )
        if method != "GET" or match is None or match[1] not in ("me", self.email):
            return _error(404)
        kind, ident = match[2], match[3]
        if kind == "profile" and ident is None:
            self.calls["profile"] += 1
            return JSONResponse(
                {
                    "emailAddress": self.email,
                    "messagesTotal": len(self.messages),
                    "threadsTotal": len(self.messages),
                    "historyId": str(max((m.history_id for m in self.messages), default=1)),
                }
            )
        if kind == "messages" and ident is None:
            return self.list_messages(query)
        if kind == "messages":
            return self.get_message(ident, query)
        if kind == "history" and ident is None:
            return self.history(query)
        return _error(404)

    def list_messages(self, query: dict[str, list[str]]) -> Response:
        self.calls["list"] += 1
        q = _one(query, "q", "")
        try:
            wanted = parse_query(q, self.clock.now())
            size = int(_one(query, "maxResults", "100"))
            start = int(_one(query, "pageToken", "0") or 0)
        except ValueError as e:
            return _error(400, f"Invalid value: {e}")
        if not 1 <= size <= 500 or start < 0:
            return _error(400, "Invalid maxResults or pageToken")
        found = [m for m in self.messages if wanted(m)]
        page = found[start : start + size]
        body: dict[str, Any] = {"resultSizeEstimate": len(found)}
        if page:
            body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if start + size < len(found):
            body["nextPageToken"] = str(start + size)
        return JSONResponse(body)

    def get_message(self, ident: str, query: dict[str, list[str]]) -> Response:
        self.calls["get"] += 1
        message = self.by_id.get(ident)
        if message is None or ident in self.faults.missing:
            return _error(404)
        fmt = _one(query, "format", "full")
        if fmt not in ("full", "metadata", "minimal"):
            return _error(400, f"Invalid value at 'format' ({fmt})")
        body: dict[str, Any] = {
            "id": message.id,
            "threadId": message.thread_id,
            "labelIds": list(message.labels),
            "snippet": message.snippet,
            "historyId": str(message.history_id),
            "internalDate": str(message.internal_date),
            "sizeEstimate": len(message.mime.as_bytes()),
        }
        if fmt == "full":
            body["payload"] = gmail_payload(message.mime, "", message.id)
        elif fmt == "metadata":
            names = {n.lower() for n in query.get("metadataHeaders", [])}
            payload = gmail_payload(message.mime, "", message.id)
            body["payload"] = {
                "partId": "",
                "mimeType": payload["mimeType"],
                "filename": "",
                "headers": [
                    h for h in payload["headers"] if not names or h["name"].lower() in names
                ],
                "body": {"size": 0},
            }
        return JSONResponse(body)

    def history(self, query: dict[str, list[str]]) -> Response:
        self.calls["history"] += 1
        try:
            start = int(_one(query, "startHistoryId", ""))
        except ValueError:
            return _error(400, "Missing or invalid startHistoryId")
        newer = sorted(
            (m for m in self.messages if m.history_id > start), key=lambda m: m.history_id
        )
        latest = max((m.history_id for m in self.messages), default=start)
        return JSONResponse(
            {
                "history": [
                    {
                        "id": str(m.history_id),
                        "messages": [{"id": m.id, "threadId": m.thread_id}],
                        "messagesAdded": [
                            {
                                "message": {
                                    "id": m.id,
                                    "threadId": m.thread_id,
                                    "labelIds": list(m.labels),
                                }
                            }
                        ],
                    }
                    for m in newer
                ],
                "historyId": str(latest),
            }
        )

    def deliver(self, sender: str, subject: str, text: str, shape: str = "plain") -> StoredMessage:
        """A new message arrives now (it shows in ``history`` and at the top of ``list``)."""
        mime = build_mime(shape, text)
        mime["From"], mime["To"], mime["Subject"] = sender, self.email, subject
        history_id = max((m.history_id for m in self.messages), default=10_000) + 1
        message = StoredMessage(
            id=f"{history_id:016x}",
            thread_id=f"{history_id:016x}",
            history_id=history_id,
            internal_date=int(self.clock.now() * 1000),
            labels=("INBOX", "UNREAD"),
            mime=message_from_bytes(mime.as_bytes(), policy=policy.compat32),
            sender=sender,
            to=self.email,
            subject=subject,
            text=text,
            shape=shape,
        )
        self.messages.insert(0, message)
        self.by_id[message.id] = message
        return message

    # --- HTTP ----------------------------------------------------------------------

    def _record(self, response: Response) -> Response:
        self.statuses.append(response.status_code)
        return response

    def _direct(self, request: Request) -> Response:
        query: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            query.setdefault(key, []).append(value)
        # The path inside this app: mounted under a prefix (as the demo server does),
        # the scope's path still starts with it.
        path = request.scope["path"].removeprefix(request.scope.get("root_path", ""))
        return self._record(
            self.answer(request.method, path, query, request.headers.get("authorization"))
        )

    async def _profile(self, request: Request) -> Response:
        return self._direct(request)

    async def _list(self, request: Request) -> Response:
        return self._direct(request)

    async def _get(self, request: Request) -> Response:
        return self._direct(request)

    async def _history(self, request: Request) -> Response:
        return self._direct(request)

    async def _batch(self, request: Request) -> Response:
        """``multipart/mixed`` of ``application/http`` parts in, the same shape out."""
        self.calls["batch"] += 1
        gate = self._gate(request.headers.get("authorization"))
        if gate is not None:
            return self._record(gate)
        content_type = request.headers.get("content-type", "")
        body = await request.body()
        envelope = message_from_bytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=policy.compat32
        )
        parts = envelope.get_payload() if envelope.is_multipart() else None
        if not isinstance(parts, list) or not parts:
            return self._record(_error(400, "A batch request is a multipart/mixed body"))
        if len(parts) > 100:
            return self._record(_error(400, "A batch may hold at most 100 requests"))
        boundary = f"batch_{self.calls['batch']}_boundary"
        reasons = {200: "OK", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}
        chunks: list[bytes] = []
        for part in parts:
            inner = part.get_payload(decode=True) if isinstance(part, Message) else None
            if not isinstance(part, Message) or not isinstance(inner, bytes):
                return self._record(_error(400, "Each batch part is an application/http request"))
            method, path, query, headers = _parse_http_request(inner)
            auth = headers.get("authorization") or request.headers.get("authorization")
            if self.faults.throttled_parts > 0:
                self.faults.throttled_parts -= 1
                response = self._record(_error(429))
            else:
                response = self._record(self.answer(method, path, query, auth))
            content_id = str(part.get("Content-ID", "")).strip("<> ")
            status = response.status_code
            head = [
                f"--{boundary}",
                "Content-Type: application/http",
                *([f"Content-ID: <response-{content_id}>"] if content_id else []),
                "",
                f"HTTP/1.1 {status} {reasons.get(status, 'Error')}",
                "Content-Type: application/json; charset=UTF-8",
                *(f"Retry-After: {v}" for k, v in response.headers.items() if k == "retry-after"),
                "",
                "",
            ]
            chunks.append("\r\n".join(head).encode() + bytes(response.body) + b"\r\n")
        data = b"".join(chunks) + f"--{boundary}--\r\n".encode()
        return Response(data, media_type=f"multipart/mixed; boundary={boundary}")


def _one(query: dict[str, list[str]], key: str, default: str) -> str:
    values = query.get(key)
    return values[0] if values else default


def _parse_http_request(data: bytes) -> tuple[str, str, dict[str, list[str]], dict[str, str]]:
    """``GET /path?q HTTP/1.1`` + headers, as a batch part carries it."""
    from urllib.parse import parse_qs, urlsplit

    head = data.decode("utf-8", "replace").split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
    lines = [line.strip() for line in head.splitlines() if line.strip()]
    if not lines:
        return "GET", "", {}, {}
    method, _, rest = lines[0].partition(" ")
    target = rest.rsplit(" HTTP/", 1)[0]
    url = urlsplit(target)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method.upper(), url.path, parse_qs(url.query), headers


def messages_matching(fake: FakeGmail, q: str) -> Iterator[StoredMessage]:
    """The messages ``q`` finds, newest first: what a test expects a search to return."""
    wanted = parse_query(q, fake.clock.now())
    return (m for m in fake.messages if wanted(m))
