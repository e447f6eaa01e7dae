"""``SignedAuth``: sign each httpx request with an identity (see :mod:`charmspace.signing`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import httpx

from charmspace.identity import Identity
from charmspace.signing import sign_request


class SignedAuth(httpx.Auth):
    """``httpx.Client(auth=SignedAuth(identity))``: each request signed, with a fresh nonce.

    The body is read before signing (its SHA-256 is signed), so streamed
    uploads are buffered. ``clock`` is for tests.
    """

    requires_request_body = True

    def __init__(self, identity: Identity, *, clock: Callable[[], float] = time.time) -> None:
        self.identity = identity
        self.clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("latin-1")  # path and query, as sent
        signed = sign_request(
            self.identity, request.method, target, request.content, int(self.clock())
        )
        request.headers["Authorization"] = signed.render()
        yield request
