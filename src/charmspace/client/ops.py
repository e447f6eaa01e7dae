"""The API's operations, each once: the request to make and how to read the answer.

:mod:`charmspace.client.api` turns each into a method that
:class:`~charmspace.client.Client` sends with httpx's sync client and
:class:`~charmspace.client.AsyncClient` with its async one, so both speak the
same vocabulary and cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from charmspace.errors import CharmspaceError
from charmspace.identity import Identity
from charmspace.signing import b64encode
from charmspace.storage.proof import creation_proof
from charmspace.types import JSONValue, PathSegment
from charmspace.values import freeze

DEFAULT_URL = "http://127.0.0.1:8000"
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=2.0)
"""Idle connections are dropped well before a server closes them (uvicorn: after 5 s by
default), so a request is never sent on a connection the server is closing: a signed
request cannot be retried safely (its nonce is spent), so it must not need to be."""


class APIURLError(CharmspaceError, ValueError):
    """An API URL no request could be sent to: ``url`` as given, and the ``reason``.

    Refused when the client is made, not at its first request: a typo'd port or
    scheme would otherwise surface as an httpx error from deep inside a call, or
    as "no server answers", which sends the user looking for a server problem.
    Also a ``ValueError``, like the other bad arguments Python code is used to.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"Cannot use the API URL {url!r}: {reason}. Give the server's address as "
            "host:port or http(s)://host:port, e.g. 127.0.0.1:8000."
        )


def base_url(url: str) -> str:
    """``url``, with ``http://`` in front when it names no scheme; refused if unusable."""
    if not isinstance(url, str) or not url.strip():
        raise APIURLError(str(url), "it is empty")
    full = url if "://" in url else f"http://{url}"
    try:
        parsed = httpx.URL(full)
    except httpx.InvalidURL as error:
        reason = str(error).rstrip(".")
        raise APIURLError(url, reason[:1].lower() + reason[1:]) from None
    if parsed.scheme not in ("http", "https"):
        raise APIURLError(url, f"the scheme is {parsed.scheme!r}, and the API speaks http or https")
    if not parsed.host:
        raise APIURLError(url, "it names no host")
    if any(c.isspace() for c in url) or "%" in parsed.host:
        raise APIURLError(url, "a host name has no spaces or escapes")
    if parsed.port is not None and not 0 < parsed.port <= 65535:
        raise APIURLError(url, f"port {parsed.port} is outside 1-65535")
    return full


class APIError(CharmspaceError):
    """The server refused a request: ``status``, the error's ``type`` and its ``fields``."""

    def __init__(self, status: int, type: str, message: str, fields: Mapping[str, Any]) -> None:
        self.status = status
        self.type = type
        self.fields = dict(fields)
        super().__init__(f"{message} ({type}, HTTP {status})")


class ServerUnreachableError(CharmspaceError, httpx.ConnectError):
    """No server accepted a connection at ``url``: the request was not sent, so nothing was done.

    Raised in place of httpx's ``ConnectError`` (kept as ``__cause__``), so callers
    catch one tree of errors and learn what to do. Also an ``httpx.ConnectError``:
    code written to catch that still works.
    """

    def __init__(self, url: str, reason: str, *, request: httpx.Request | None = None) -> None:
        self.url = url
        self.reason = reason
        httpx.ConnectError.__init__(
            self,
            f"No charmspace server answers at {url} ({reason}); nothing was sent. Is the "
            "server running? Start it with `charmspace serve`, or give the address it "
            "listens on (Client(base_url=...), or --api-url for the charmspace command).",
            request=request,
        )


def unreachable(url: httpx.URL | str, error: Exception) -> ServerUnreachableError:
    """The :class:`ServerUnreachableError` for ``error``, httpx's or the socket's, at ``url``."""
    request = None
    if isinstance(error, httpx.RequestError):
        try:
            request = error.request
        except RuntimeError:  # httpx raises this when the error has no request
            request = None
    reason = str(error) or type(error).__name__
    shown = httpx.URL(str(url))
    if shown.userinfo:  # a password in the URL is not repeated in a message or a log
        shown = shown.copy_with(userinfo=b"")
    return ServerUnreachableError(str(shown).rstrip("/"), reason, request=request)


def _as_is(answer: Any) -> Any:
    return answer


def _nothing(answer: Any) -> None:
    return None


def _value(answer: Any) -> Any:
    return answer["value"]


@dataclass(frozen=True, slots=True)
class Op:
    """One request: method, path (already quoted), query, JSON body (None: no body).

    ``read`` turns the answer's JSON into what the client's method returns.
    """

    method: str
    path: str
    params: Mapping[str, str | int] = field(default_factory=dict)
    json: Any = None
    read: Callable[[Any], Any] = _as_is

    def __post_init__(self) -> None:
        # Checked here, as the runtime checks a value: a set or an object in an
        # event is a NotJSONError naming where it is, before anything is sent,
        # not json's TypeError from deep inside httpx.
        if self.json is not None:
            freeze(self.json)

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """This request, built by ``http`` (its base URL, headers and auth apply)."""
        return http.build_request(
            self.method, self.path, params=dict(self.params) or None, json=self.json
        )


def answer(response: httpx.Response, note: str = "") -> Any:
    """The response's JSON, None for 204, or :class:`APIError` for an error status.

    ``note`` follows the server's message (what the client did about it).
    """
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            kind, message = str(error.pop("type")), str(error.pop("message"))
        except (ValueError, KeyError, TypeError, AttributeError):
            kind, message, error = "HTTPError", response.reason_phrase or "error", {}
        raise APIError(response.status_code, kind, f"{message} {note}".strip(), error)
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def _q(text: str) -> str:
    return quote(text, safe="")


def _charm(space: str, id: str) -> str:
    return f"/api/spaces/{_q(space)}/charms/{_q(id)}"


def _cell_path(path: Sequence[PathSegment]) -> str:
    return "/".join(_q(str(segment)) for segment in path)


def meta() -> Op:
    return Op("GET", "/api/meta")


def list_spaces() -> Op:
    return Op("GET", "/api/spaces")


def create_space(identity: Identity, name: str | None) -> Op:
    """The caller's home space (no name) or its space named ``name`` (derived key, with proof)."""
    if name is None:
        return Op("POST", "/api/spaces", json={"space": identity.did})
    space = identity.derive(name)
    body = {"space": space.did, "proof": b64encode(creation_proof(space, identity.did))}
    return Op("POST", "/api/spaces", json=body)


def get_acl(space: str) -> Op:
    return Op("GET", f"/api/spaces/{_q(space)}/acl")


def set_acl(space: str, subject: str, capability: str | None) -> Op:
    body = {"subject": subject, "capability": capability.upper() if capability else None}
    return Op("PUT", f"/api/spaces/{_q(space)}/acl", json=body)


def log(space: str, since: int, limit: int) -> Op:
    return Op("GET", f"/api/spaces/{_q(space)}/log", {"since": since, "limit": limit})


def head(space: str) -> Op:
    return Op("GET", f"/api/spaces/{_q(space)}/head", read=int)


def doc(space: str, id: str, at: int | None) -> Op:
    params: dict[str, str | int] = {} if at is None else {"at": at}
    return Op("GET", f"/api/spaces/{_q(space)}/docs/{_q(id)}", params)


def patterns() -> Op:
    return Op("GET", "/api/patterns")


def create_charm(space: str, pattern: str, inputs: Mapping[str, JSONValue] | None) -> Op:
    body = {"pattern": pattern, "inputs": dict(inputs or {})}
    return Op("POST", f"/api/spaces/{_q(space)}/charms", json=body)


def list_charms(space: str) -> Op:
    return Op("GET", f"/api/spaces/{_q(space)}/charms")


def get_charm(space: str, id: str) -> Op:
    return Op("GET", _charm(space, id))


def remove_charm(space: str, id: str) -> Op:
    return Op("DELETE", _charm(space, id), read=_nothing)


def get_cell(space: str, id: str, path: Sequence[PathSegment]) -> Op:
    return Op("GET", f"{_charm(space, id)}/cells/{_cell_path(path)}", read=_value)


def set_cell(space: str, id: str, path: Sequence[PathSegment], value: JSONValue) -> Op:
    url = f"{_charm(space, id)}/cells/{_cell_path(path)}"
    return Op("PUT", url, json={"value": value})


def send(space: str, id: str, stream: str, event: JSONValue, wait: str) -> Op:
    url = f"{_charm(space, id)}/streams/{_q(stream)}"
    return Op("POST", url, {"wait": wait}, json={"event": event})


def charm_log(space: str, id: str, since: int, limit: int) -> Op:
    return Op("GET", f"{_charm(space, id)}/log", {"since": since, "limit": limit})


def link_input(
    space: str, id: str, input: str, source_space: str, source_id: str, path: Sequence[PathSegment]
) -> Op:
    """Link charm ``id``'s input ``input`` to the cell at ``path`` of charm ``source_id``."""
    body = {"source": {"space": source_space, "id": source_id, "path": "/".join(map(str, path))}}
    return Op("PUT", f"{_charm(space, id)}/inputs/{_q(input)}", json=body)


def list_favorites() -> Op:
    return Op("GET", "/api/favorites")


def add_favorite(space: str, id: str) -> Op:
    return Op("POST", "/api/favorites", json={"space": space, "id": id})


def remove_favorite(space: str, id: str) -> Op:
    return Op("DELETE", "/api/favorites", {"space": space, "id": id}, read=_nothing)


def wish(query: str) -> Op:
    return Op("GET", "/api/wish", {"q": query})
