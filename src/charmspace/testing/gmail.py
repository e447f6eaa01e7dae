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
(429 with ``Retry-After``), ``fail(status, times)`` (5xx),
``reject_tokens(times)`` (401 whatever the token), and ``missing`` (ids a batch
answers with 404).
"""

from __future__ import annotations

import base64
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.charset import BASE64, QP, Charset
from email.header import decode_header, make_header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from charmspace.runtime.clock import Clock, SystemClock

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

PEOPLE = (
    ("Ada Lovelace", "ada@analytical.example"),
    ("Grace Hopper", "grace@navy.example"),
    ("José Núñez", "jose@correo.example"),
    ("Zoë Müller", "zoe@beispiel.example"),
    ("Travel Desk", "bookings@travel.example"),
    ("Acme Billing", "billing@acme.example"),
    ("Newsletter", "news@weekly.example"),
)
TOPICS = (
    ("Invoice {n} for October", "Your invoice {n} is attached. Total due: {amount} EUR."),
    ("Flight confirmation {n}", "Your flight to Lisbon is confirmed. Booking reference {n}."),
    ("Lunch on Friday?", "Are you free for lunch on Friday? The café near the station."),
    ("Quarterly report draft", "Here is the draft of the quarterly report, section {n}."),
    ("Résumé for the role", "Please find my résumé; I look forward to hearing from you."),
    ("Weekly digest #{n}", "This week: storage engines, reactive programs and more."),
    ("Hotel reservation {n}", "Your hotel reservation in Porto is confirmed for {n} nights."),
)
SHAPES = ("plain", "plain_qp", "plain_latin1", "plain_base64", "html", "alternative", "mixed")
ME = "me@example.com"


def _error(code: int, message: str | None = None) -> JSONResponse:
    text = message or _MESSAGE.get(code, "Backend Error")
    body: dict[str, Any] = {"code": code, "message": text, "status": _STATUS.get(code, "UNKNOWN")}
    body["errors"] = [{"message": text, "domain": "global", "reason": _REASON.get(code, "backend")}]
    return JSONResponse({"error": body}, status_code=code)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


@dataclass
class Faults:
    """Switches that make the fake misbehave the way Gmail does; each counts itself down."""

    rate_limited: int = 0
    retry_after: float = 1.0
    failing: int = 0
    failure_status: int = 503
    rejecting: int = 0
    missing: set[str] = field(default_factory=set)
    """Message ids answered with 404 (in a batch or alone), as if deleted meanwhile."""

    def rate_limit(self, times: int = 1, retry_after: float = 1.0) -> None:
        """Answer the next ``times`` requests with 429 and ``Retry-After: retry_after``."""
        self.rate_limited, self.retry_after = times, retry_after

    def fail(self, status: int = 503, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` (a 5xx)."""
        self.failing, self.failure_status = times, status

    def reject_tokens(self, times: int = 1) -> None:
        """Answer the next ``times`` requests with 401, as for a token revoked at Google."""
        self.rejecting = times


@dataclass(frozen=True)
class StoredMessage:
    id: str
    thread_id: str
    history_id: int
    internal_date: int  # epoch milliseconds, as Gmail
    labels: tuple[str, ...]
    mime: Message
    sender: str
    to: str
    subject: str
    text: str  # what plain words are searched in
    shape: str

    @property
    def snippet(self) -> str:
        return " ".join(self.text.split())[:100]


def _text_part(text: str, subtype: str, charset: str, encoding: str | None) -> MIMEText:
    cs = Charset(charset)
    # None means 7bit/8bit; typeshed types the attribute as int only.
    cs.body_encoding = {"qp": QP, "base64": BASE64}.get(encoding or "")  # type: ignore[assignment]
    part = MIMEText("", subtype, None)
    del part["Content-Transfer-Encoding"]
    part.set_payload(text, cs)
    return part


def _html(text: str) -> str:
    return (
        "<html><head><style>p{color:red}</style></head><body>"
        f"<p>{text.replace('&', '&amp;')}</p><p>Kind regards,<br>the sender</p></body></html>"
    )


def build_mime(shape: str, text: str, boundary: str = "part") -> Message:
    """A message body of ``shape`` (one of :data:`SHAPES`) saying ``text``."""
    if shape == "plain":
        return _text_part(text, "plain", "utf-8", None)
    if shape == "plain_qp":
        return _text_part(text, "plain", "utf-8", "qp")
    if shape == "plain_latin1":
        return _text_part(text, "plain", "iso-8859-1", "qp")
    if shape == "plain_base64":
        return _text_part(text, "plain", "utf-8", "base64")
    if shape == "html":
        return _text_part(_html(text), "html", "utf-8", "qp")
    alternative = MIMEMultipart("alternative", boundary=f"{boundary}-alt")
    alternative.attach(_text_part(text, "plain", "utf-8", "qp"))
    alternative.attach(_text_part(_html(text), "html", "utf-8", "base64"))
    if shape == "alternative":
        return alternative
    mixed = MIMEMultipart("mixed", boundary=f"{boundary}-mixed")
    mixed.attach(alternative)
    attachment = MIMEApplication(b"%PDF-1.4 fake attachment " + text.encode(), "pdf")
    attachment.add_header("Content-Disposition", "attachment", filename="document.pdf")
    mixed.attach(attachment)
    return mixed


def _header(value: object) -> str:
    """A header as Gmail shows it: unfolded, RFC 2047 encoded words decoded."""
    unfolded = re.sub(r"\r?\n[ \t]+", " ", str(value))
    return str(make_header(decode_header(unfolded)))


def _payload(part: Message, part_id: str, message_id: str) -> dict[str, Any]:
    """Gmail's ``payload`` for one MIME part: headers, a base64url body, and its parts."""
    headers = [{"name": k, "value": _header(v)} for k, v in part.items()]
    node: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": headers,
    }
    if part.is_multipart():
        children = part.get_payload()
        assert isinstance(children, list)
        prefix = "" if part_id == "" else f"{part_id}."
        node["body"] = {"size": 0}
        node["parts"] = [_payload(c, f"{prefix}{i}", message_id) for i, c in enumerate(children)]
        return node
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    if part.get_filename():
        node["body"] = {"attachmentId": f"att-{message_id}-{part_id}", "size": len(data)}
    else:
        node["body"] = {"size": len(data), "data": _b64(data)}
    return node


def generate_messages(count: int, seed: int, now: float) -> list[StoredMessage]:
    """``count`` messages, newest first, spread over the year before ``now``."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        name, address = rng.choice(PEOPLE)
        subject_t, body_t = rng.choice(TOPICS)
        n = rng.randint(100, 9999)
        subject = subject_t.format(n=n)
        text = f"Hello,\n\n{body_t.format(n=n, amount=rng.randint(10, 900))}\n\n-- {name}\n"
        shape = SHAPES[i % len(SHAPES)]
        when = now - i * 86_400 * 365 / max(count, 1) - rng.randint(0, 3600)
        mime = build_mime(shape, text, boundary=f"b{seed}.{i}")
        mime["From"] = f"{name} <{address}>"
        mime["To"] = ME
        mime["Subject"] = subject
        mime["Date"] = format_datetime(datetime.fromtimestamp(when, UTC))
        mime["Message-ID"] = f"<{seed}.{i}@fake.example>"
        ident = f"{rng.getrandbits(64):016x}"
        labels = ("INBOX", "UNREAD") if i % 3 == 0 else ("INBOX",)
        out.append(
            StoredMessage(
                id=ident,
                thread_id=ident,
                history_id=10_000 + count - i,
                internal_date=int(when * 1000),
                labels=labels,
                mime=message_from_bytes(mime.as_bytes(), policy=policy.compat32),
                sender=f"{name} <{address}>",
                to=ME,
                subject=subject,
                text=text,
                shape=shape,
            )
        )
    return out


# --- the q language -------------------------------------------------------------------

_TERM = re.compile(r'(-?)(?:(\w+):)?("[^"]*"|\([^)]*\)|\S+)')
_UNITS = {"d": 86_400, "m": 30 * 86_400, "y": 365 * 86_400}


def _date(value: str) -> float:
    if value.isdigit():
        return float(value)
    for fmt in ("%Y/%m/%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            pass
    raise ValueError(f"Invalid date: {value}")


def _term(op: str | None, value: str, now: float) -> Callable[[StoredMessage], bool]:
    words = value.strip('"()').lower()
    if op in ("from", "to", "subject"):
        field_of = {"from": "sender", "to": "to", "subject": "subject"}[op]
        return lambda m: words in getattr(m, field_of).lower()
    if op in ("after", "before"):
        at = _date(value)
        if op == "after":
            return lambda m: m.internal_date / 1000 >= at
        return lambda m: m.internal_date / 1000 < at
    if op in ("newer_than", "older_than"):
        match = re.fullmatch(r"(\d+)([dmy])", value)
        if not match:
            raise ValueError(f"Invalid {op} value: {value}")
        cut = now - int(match[1]) * _UNITS[match[2]]
        if op == "newer_than":
            return lambda m: m.internal_date / 1000 >= cut
        return lambda m: m.internal_date / 1000 < cut
    if op in ("is", "label", "in"):
        label = value.upper()
        return lambda m: label in m.labels
    if op == "has" and value == "attachment":
        return lambda m: m.shape == "mixed"
    if op is not None:  # an unknown operator is searched as words, as Gmail does
        words = f"{op}:{words}"
    phrase = words

    def contains(m: StoredMessage) -> bool:
        return phrase in f"{m.subject}\n{m.sender}\n{m.text}".lower()

    return contains


def parse_query(q: str, now: float) -> Callable[[StoredMessage], bool]:
    """Gmail's search syntax, the part people type: operators, words, ``OR``, ``-``."""
    groups: list[list[Callable[[StoredMessage], bool]]] = []
    join_next = False
    for match in _TERM.finditer(q):
        negate, op, value = match[1], match[2], match[3]
        if op is None and not negate and value in ("OR", "|"):
            join_next = bool(groups)
            continue
        test = _term(op.lower() if op else None, value, now)
        if negate:
            test = (lambda t: lambda m: not t(m))(test)
        if join_next:
            groups[-1].append(test)
        else:
            groups.append([test])
        join_next = False
    return lambda m: all(any(t(m) for t in group) for group in groups)


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
            body["payload"] = _payload(message.mime, "", message.id)
        elif fmt == "metadata":
            names = {n.lower() for n in query.get("metadataHeaders", [])}
            payload = _payload(message.mime, "", message.id)
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
        return self._record(
            self.answer(
                request.method, request.url.path, query, request.headers.get("authorization")
            )
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
