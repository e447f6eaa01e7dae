"""The Gmail client: reads the token from the auth charm, asks it to refresh, never writes it.

Why it never writes the auth cell: that cell lives in the auth charm's space,
and a transaction writes one space. The client only reads the token (at every
attempt, so a refresh made by anyone is seen) and, when the token is about to
expire or Gmail refuses it, calls the auth charm's ``refresh`` stream with the
token it saw (``{"stale_token": …}``), so that concurrent callers refresh once.

Retries: a 401 refreshes and retries once (a second 401 is
``IntegrationError(reason="auth")``); 429, 5xx and network failures are retried
with bounded exponential back-off and jitter, never sooner than
``Retry-After``; other 4xx fail at once. Waiting goes through the injected
``sleep`` so tests on a fake clock do not wait.
"""

from __future__ import annotations

import base64
import binascii
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from html.parser import HTMLParser
from typing import Any

import httpx

from charmspace.backoff import DEFAULT_BACKOFF, Backoff, parse_retry_after
from charmspace.errors import IntegrationError
from charmspace.runtime.cell import Cell
from charmspace.runtime.clock import Clock, SystemClock
from charmspace.runtime.stream import Stream

log = logging.getLogger(__name__)

GMAIL_BASE_URL = "https://gmail.googleapis.com"
GMAIL_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
BODY_CAP = 20_000
"""Characters of a message body kept; longer bodies are cut (and say so)."""
BATCH_SIZE = 50
"""Requests per batch: Gmail accepts 100 but throttles batches above 50."""

REAUTHENTICATE = "Please re-authenticate with Google."
Sleep = Callable[[float], Awaitable[None]]


def refresh_skew(expires_in: float) -> float:
    """Seconds before expiry a token counts as expired: min(300, expires_in / 2)."""
    return min(300.0, expires_in / 2) if expires_in > 0 else 300.0


def needs_refresh(auth: Mapping[str, Any], now: float) -> bool:
    """Whether ``auth``'s token expires within the skew (``expires_at`` in ms; 0 = unknown)."""
    expires_at = auth.get("expires_at") or 0
    if not isinstance(expires_at, int | float) or expires_at <= 0:
        return False
    expires_in = auth.get("expires_in") or 0
    skew = refresh_skew(float(expires_in) if isinstance(expires_in, int | float) else 0.0)
    return now * 1000 >= expires_at - skew * 1000


# --- decoding ---------------------------------------------------------------------


class _TextOfHTML(HTMLParser):
    """Text of an HTML body: scripts and styles dropped, blocks on their own lines."""

    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "table", "ul"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOfHTML()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.out).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _header(part: Mapping[str, Any], name: str) -> str:
    for header in part.get("headers") or ():
        if str(header.get("name", "")).lower() == name.lower():
            return str(header.get("value", ""))
    return ""


def _charset(part: Mapping[str, Any]) -> str:
    content_type = _header(part, "Content-Type")
    if not content_type:
        return "utf-8"
    parsed = message_from_bytes(f"Content-Type: {content_type}\n\n".encode(), policy=policy.default)
    return parsed.get_content_charset() or "utf-8"


def decode_part(part: Mapping[str, Any]) -> str:
    """A leaf part's body as text: base64url-decoded, then decoded in its charset."""
    data = (part.get("body") or {}).get("data") or ""
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return ""
    try:
        return raw.decode(_charset(part), errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


def _leaves(part: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    children = part.get("parts")
    if children:
        return [leaf for child in children for leaf in _leaves(child)]
    return [part]


def message_text(payload: Mapping[str, Any], cap: int = BODY_CAP) -> str:
    """The readable text of a message: text/plain preferred, else HTML as text; cut at ``cap``."""
    leaves = [p for p in _leaves(payload) if not p.get("filename")]
    plain = [p for p in leaves if p.get("mimeType") == "text/plain"]
    if plain:
        text = "\n".join(decode_part(p) for p in plain)
    else:
        text = "\n".join(
            html_to_text(decode_part(p)) for p in leaves if p.get("mimeType") == "text/html"
        )
    text = text.replace("\r\n", "\n").strip()
    return text if len(text) <= cap else text[:cap] + "\n[… cut]"


@dataclass(frozen=True, slots=True)
class GmailMessage:
    """A message as a charm shows it: headers, snippet, labels and the decoded body."""

    id: str
    thread_id: str
    subject: str
    sender: str
    to: str
    date: str
    snippet: str
    labels: tuple[str, ...]
    internal_date: int
    text: str
    attachments: tuple[str, ...]

    @classmethod
    def from_api(cls, data: Mapping[str, Any], cap: int = BODY_CAP) -> GmailMessage:
        payload = data.get("payload") or {}
        return cls(
            id=str(data.get("id", "")),
            thread_id=str(data.get("threadId", "")),
            subject=_header(payload, "Subject"),
            sender=_header(payload, "From"),
            to=_header(payload, "To"),
            date=_header(payload, "Date"),
            snippet=str(data.get("snippet", "")),
            labels=tuple(str(x) for x in data.get("labelIds") or ()),
            internal_date=int(data.get("internalDate") or 0),
            text=message_text(payload, cap) if payload.get("body") or payload.get("parts") else "",
            attachments=tuple(p["filename"] for p in _leaves(payload) if p.get("filename")),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "thread_id": self.thread_id,
            "subject": self.subject,
            "from": self.sender,
            "to": self.to,
            "date": self.date,
            "snippet": self.snippet,
            "labels": list(self.labels),
            "text": self.text,
            "attachments": list(self.attachments),
        }


# --- the client ----------------------------------------------------------------------


class GmailClient:
    """Gmail's REST API as the user whose token ``auth`` holds; see the module docstring.

    ``auth`` is the auth charm's ``auth`` cell (read, never written), ``refresh``
    its ``refresh`` stream. ``refreshes`` counts the refreshes this client asked for.
    """

    def __init__(
        self,
        auth: Cell[Any],
        refresh: Stream[Any] | None,
        *,
        base_url: str = GMAIL_BASE_URL,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        timeout: float = 30.0,
        body_cap: int = BODY_CAP,
        transport: httpx.AsyncBaseTransport | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """``http``: a shared connection pool (not closed here); else one of its own."""
        self.auth = auth
        self.refresh = refresh
        self.base_url = base_url.rstrip("/")
        self.clock = clock or SystemClock()
        self._sleep: Sleep = sleep or self.clock.sleep
        self._rng = rng or random.Random()
        self.backoff = backoff
        self.body_cap = body_cap
        self.refreshes = 0
        self._sent_token = ""
        """The token of the last request sent: what a batch part's 401 refused."""
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout, transport=transport)
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"<GmailClient {self.base_url}>"

    async def __aenter__(self) -> GmailClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # --- the token ---------------------------------------------------------------

    def current_auth(self) -> Mapping[str, Any]:
        """The auth cell's value now; no token is an ``auth`` error."""
        value = self.auth.get()
        if not isinstance(value, Mapping) or not value.get("token"):
            raise IntegrationError("auth", f"Not signed in to Google. {REAUTHENTICATE}")
        return value

    async def refresh_token(self, stale: str) -> None:
        """Ask the auth charm for a token newer than ``stale``; its failure is ours."""
        if self.refresh is None:
            raise IntegrationError(
                "auth", f"The Google token expired and cannot be refreshed here. {REAUTHENTICATE}"
            )
        self.refreshes += 1
        result = await self.refresh.call({"stale_token": stale})
        if result.ok:
            return
        error = result.error
        if isinstance(error, IntegrationError):
            raise IntegrationError(
                error.reason, f"Refreshing the Google token failed ({error.reason}): {error}"
            ) from None
        raise IntegrationError(
            "refresh_failed",
            f"Refreshing the Google token failed ({type(error).__name__}). {REAUTHENTICATE}",
        ) from None

    async def _token(self) -> str:
        auth = self.current_auth()
        if needs_refresh(auth, self.clock.now()):
            await self.refresh_token(str(auth["token"]))
            auth = self.current_auth()
        return str(auth["token"])

    # --- requests ----------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        refreshed_for_401 = False
        attempt = 0
        while True:
            token = self._sent_token = await self._token()
            try:
                response = await self._http.request(
                    method,
                    self.base_url + path,
                    timeout=self._timeout,
                    params=params,
                    content=content,
                    headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                )
            except httpx.HTTPError as e:
                if attempt >= self.backoff.retries:
                    raise IntegrationError(
                        "upstream_unreachable",
                        f"Gmail could not be reached ({type(e).__name__}); try again later.",
                    ) from None
                await self._sleep(self.backoff.delay(attempt, self._rng))
                attempt += 1
                continue
            status = response.status_code
            if status == 401:
                if refreshed_for_401:
                    raise IntegrationError(
                        "auth",
                        f"Gmail refused the Google token again after a refresh. {REAUTHENTICATE}",
                    )
                refreshed_for_401 = True
                log.info("Gmail answered 401; refreshing the token once")
                await self.refresh_token(token)
                continue
            if status == 429 or status >= 500:
                hint = parse_retry_after(response.headers.get("retry-after"), self.clock.now())
                if attempt < self.backoff.retries and (
                    hint is None or hint <= self.backoff.max_retry_after
                ):
                    delay = self.backoff.delay(attempt, self._rng, hint)
                    log.info("Gmail answered %s; retrying in %.1f s", status, delay)
                    await self._sleep(delay)
                    attempt += 1
                    continue
                raise IntegrationError(
                    f"upstream_{status}", f"Gmail answered {status} repeatedly; try again later."
                )
            if status == 403:
                raise IntegrationError(
                    "permission",
                    "Gmail refused access (403): sign in again and grant read access to Gmail.",
                )
            if status == 404:
                raise IntegrationError("not_found", f"Gmail has no {path.rsplit('/', 1)[-1]}.")
            if status >= 400:
                raise IntegrationError(
                    f"upstream_{status}", f"Gmail rejected the request ({status}) for {path}."
                )
            return response

    async def _json(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = await self._request("GET", path, params=params)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise IntegrationError("malformed_response", f"Gmail's answer to {path} was not JSON.")
        return body

    # --- endpoints -----------------------------------------------------------------

    async def profile(self) -> dict[str, Any]:
        """``{emailAddress, messagesTotal, threadsTotal, historyId}``."""
        return await self._json("/gmail/v1/users/me/profile")

    async def list_messages(self, query: str = "", *, limit: int = 100) -> list[dict[str, str]]:
        """Ids (``{id, threadId}``) of up to ``limit`` messages matching ``query``, newest first."""
        if not isinstance(query, str):
            raise IntegrationError("bad_query", "A Gmail query is a string such as 'from:ada'.")
        if not isinstance(limit, int) or limit < 1:
            raise IntegrationError("bad_query", f"limit must be a positive integer, not {limit!r}")
        found: list[dict[str, str]] = []
        page: str | None = None
        while len(found) < limit:
            params: dict[str, Any] = {"q": query, "maxResults": min(500, limit - len(found))}
            if page:
                params["pageToken"] = page
            body = await self._json("/gmail/v1/users/me/messages", params)
            found += [
                {"id": str(m["id"]), "threadId": str(m.get("threadId", ""))}
                for m in body.get("messages") or ()
                if isinstance(m, dict) and "id" in m
            ]
            page = body.get("nextPageToken")
            if not page:
                break
        return found[:limit]

    async def get_message(self, message_id: str, *, format: str = "full") -> GmailMessage:
        """One message, decoded."""
        data = await self._json(
            f"/gmail/v1/users/me/messages/{_id(message_id)}", {"format": format}
        )
        return GmailMessage.from_api(data, self.body_cap)

    async def get_messages(
        self, message_ids: Sequence[str], *, format: str = "full"
    ) -> list[GmailMessage]:
        """Messages via Gmail's batch endpoint, in order; ones since deleted are left out."""
        out: dict[str, GmailMessage] = {}
        ids = [_id(i) for i in message_ids]
        for start in range(0, len(ids), BATCH_SIZE):
            out.update(await self._batch(ids[start : start + BATCH_SIZE], format))
        return [out[i] for i in ids if i in out]

    async def history(self, start_history_id: str | int) -> dict[str, Any]:
        """Changes since ``start_history_id`` (``{history: [...], historyId}``)."""
        return await self._json(
            "/gmail/v1/users/me/history", {"startHistoryId": str(start_history_id)}
        )

    async def _batch(self, ids: list[str], format: str) -> dict[str, GmailMessage]:
        """One batch; parts that failed with 401, 429 or 5xx are asked again, like requests."""
        got: dict[str, GmailMessage] = {}
        pending = ids
        refreshed_for_401 = False
        for attempt in range(self.backoff.retries + 1):
            boundary = f"charmspace_batch_{attempt}"
            body = (
                b"".join(
                    f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <{i}>\r\n\r\n"
                    f"GET /gmail/v1/users/me/messages/{i}?format={format}\r\n\r\n".encode()
                    for i in pending
                )
                + f"--{boundary}--\r\n".encode()
            )
            response = await self._request(
                "POST",
                "/batch/gmail/v1",
                content=body,
                headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
            )
            again: list[str] = []
            statuses: set[int] = set()
            answers = _batch_answers(response)
            for ident in pending:
                status, data = answers.get(ident, (0, None))
                if status == 200 and isinstance(data, dict):
                    got[ident] = GmailMessage.from_api(data, self.body_cap)
                elif status in (401, 429) or status >= 500:
                    again.append(ident)
                    statuses.add(status)
            if not again:
                return got
            if 401 in statuses:
                if refreshed_for_401:
                    raise IntegrationError(
                        "auth",
                        f"Gmail refused the Google token again after a refresh. {REAUTHENTICATE}",
                    )
                refreshed_for_401 = True
                await self.refresh_token(self._sent_token)
            elif attempt < self.backoff.retries:
                await self._sleep(self.backoff.delay(attempt, self._rng))
            pending = again
        raise IntegrationError(
            f"upstream_{max(statuses)}", "Gmail kept failing parts of a batch; try again later."
        )


def _id(message_id: str) -> str:
    if not isinstance(message_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", message_id):
        raise IntegrationError("bad_id", f"{message_id!r} is not a Gmail message id.")
    return message_id


def _batch_answers(response: httpx.Response) -> dict[str, tuple[int, Any]]:
    """``{content id: (status, JSON body)}`` of a batch answer (parts come in any order)."""
    import json

    envelope = message_from_bytes(
        f"Content-Type: {response.headers.get('content-type', '')}\r\n\r\n".encode()
        + response.content,
        policy=policy.compat32,
    )
    parts = envelope.get_payload() if envelope.is_multipart() else None
    if not isinstance(parts, list):
        raise IntegrationError("malformed_response", "Gmail's batch answer was not multipart.")
    out: dict[str, tuple[int, Any]] = {}
    for part in parts:
        if not isinstance(part, Message):
            continue
        content_id = str(part.get("Content-ID", "")).strip("<> ").removeprefix("response-")
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
        head, _, body = text.replace("\r\n", "\n").partition("\n\n")
        match = re.match(r"HTTP/[\d.]+ (\d{3})", head)
        status = int(match[1]) if match else 0
        try:
            data = json.loads(body) if body.strip() else None
        except ValueError:
            data = None
        out[content_id] = (status, data)
    return out
