"""Errors as JSON: ``{"error": {"type", "message", …fields}}`` with the matching status.

Only the errors a client can cause are mapped; anything else stays a 500, because
a 500 is a bug to fix, not a status to hide. Fields are the error's own attributes
that are plain text or numbers (ids, spaces, principals, seqs): charmspace errors
never carry document values, and nothing else is copied.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from charmspace import errors
from charmspace.errors import CharmspaceError

log = logging.getLogger(__name__)


class AuthenticationError(CharmspaceError):
    """A request whose signature, time or nonce is not acceptable (401)."""

    def __init__(self, reason: str, message: str, server_time: float | None = None) -> None:
        self.reason = reason
        self.server_time = server_time
        super().__init__(message)


class DataDirectoryInUseError(CharmspaceError):
    """Another running server holds the data directory (``charmspace serve`` exits 3)."""

    def __init__(self, data: Path, holder: str) -> None:
        self.data = data
        self.holder = holder
        who = f"process {holder}" if holder else "another process"
        super().__init__(
            f"Another charmspace server ({who}) is using the data directory {data}. "
            "Stop it first, or give this server a directory of its own with --data."
        )


class DataDirectoryError(CharmspaceError):
    """The data directory cannot be made or written (``charmspace serve`` exits 2)."""

    def __init__(self, data: Path, reason: str) -> None:
        self.data = data
        self.reason = reason
        super().__init__(
            f"Cannot use {data} as the data directory: {reason}. Give --data (or "
            "CHARMSPACE_DATA) a directory this user may create and write; it holds the "
            "server's key and, by default, its storage."
        )


class CrossSiteRequestError(CharmspaceError):
    """A state-changing request by session cookie without our CSRF token or Origin (403)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class ServerBusyError(CharmspaceError):
    """A limit of the server was reached; retrying later may succeed (429).

    ``limit`` names the limit (``nonces_per_did``, ``websockets_per_did``, …; see
    docs/server.md) and ``retry_after``, when known, says in how many seconds
    the same request may succeed; it is also sent as the ``Retry-After`` header.
    ``principal`` is the DID that reached it, when the limit is one DID's (its
    signature was verified, so the request log can name who floods).
    """

    def __init__(
        self,
        message: str,
        *,
        limit: str,
        retry_after: int | None = None,
        principal: str | None = None,
    ) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.principal = principal
        super().__init__(message)


class BadRequestError(CharmspaceError):
    """A request that is not valid: its body, path or query (400)."""

    def __init__(self, message: str, location: str = "") -> None:
        self.location = location
        super().__init__(message)


class BodyTooLargeError(CharmspaceError):
    """A request body over the server's limit (413)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"The request body is over the limit of {limit} bytes.")


STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (AuthenticationError, 401),
    (CrossSiteRequestError, 403),
    (ServerBusyError, 429),
    (BadRequestError, 400),
    (BodyTooLargeError, 413),
    (errors.IdentityError, 400),
    (errors.AuthorizationError, 403),  # SpaceClaimError, MissingPrincipalError too
    (errors.InvalidIdError, 400),
    (errors.SpaceNotFoundError, 404),
    (errors.CharmNotFoundError, 404),
    (errors.NotAStreamError, 404),  # UnknownStreamError too
    (errors.UnknownCellError, 404),
    (errors.SpaceExistsError, 409),
    (errors.ConflictError, 409),
    (errors.ReadOnlyCellError, 409),
    (errors.DeadlockError, 409),
    (errors.CharmCreatorError, 409),
    (errors.PatternNotInstalledError, 409),
    (errors.LimitExceededError, 413),
    (errors.SchemaError, 400),  # NotJSONError too
    (errors.LinkError, 400),
    (errors.WriteIsolationError, 400),
    (errors.PatternError, 400),
    (errors.CallTimeoutError, 504),
    (errors.DiskFullError, 507),  # the server's trouble, but not a bug: say so plainly
    (errors.IntegrationError, 502),  # Google, Gmail or an LLM failed: not our bug
)


def status_of(error: BaseException) -> int | None:
    """The HTTP status for an error a client can cause, or None (a bug: 500)."""
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return None


def error_headers(error: BaseException) -> dict[str, str]:
    """The headers an error's response carries besides its body: ``Retry-After``."""
    retry_after = getattr(error, "retry_after", None)
    return {"retry-after": str(retry_after)} if isinstance(retry_after, int) else {}


def error_body(error: BaseException) -> dict[str, Any]:
    """The JSON error object: type, message, and the error's plain attributes."""
    body: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    for name, value in vars(error).items():
        if name.startswith("_") or name in body:
            continue
        if value is None or isinstance(value, str | int | float | bool):
            body[name] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            body[name] = list(value)
    return body


class ErrorResponse(JSONResponse):
    """JSON with non-ASCII escaped: an error may quote a path or key holding a lone
    surrogate from the request, which UTF-8 cannot encode but ``\\udXXX`` can."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(type_: str, message: str, status: int, **fields: Any) -> JSONResponse:
    return ErrorResponse({"error": {"type": type_, "message": message, **fields}}, status)


async def _charmspace_error(request: Request, error: Exception) -> JSONResponse:
    status = status_of(error)
    if status is None:
        raise error  # not a client's mistake: let it be the 500 it is
    return ErrorResponse({"error": error_body(error)}, status, headers=error_headers(error))


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = []
    for item in error.errors()[:20]:
        where = "/".join(str(part) for part in item.get("loc", ()))
        problems.append({"location": where, "problem": str(item.get("msg", ""))})
    first = problems[0] if problems else {"location": "", "problem": "invalid request"}
    message = f"{first['location']}: {first['problem']}" if first["location"] else first["problem"]
    return error_response("BadRequestError", message, 400, problems=problems)


_HTTP_TYPES = {404: "NotFoundError", 405: "MethodNotAllowedError", 400: "BadRequestError"}


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    kind = _HTTP_TYPES.get(error.status_code, "HTTPError")
    message = error.detail if isinstance(error.detail, str) else "The request was refused."
    response = error_response(kind, message, error.status_code)
    if error.headers:
        response.headers.update(error.headers)
    return response


def install(app: FastAPI) -> None:
    """Register the handlers that turn client errors into JSON error responses."""
    app.add_exception_handler(CharmspaceError, _charmspace_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
