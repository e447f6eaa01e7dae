"""``Client``: the signed HTTP API with httpx's sync client."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import httpx

from charmspace.client import ops
from charmspace.client.api import Calls
from charmspace.client.auth import SignedAuth
from charmspace.client.retry import BUSY, DEFAULT_RETRY, Retry, gave_up
from charmspace.identity import Identity


class Client(Calls[Any]):
    """Talk to a charmspace server as ``identity``; every request is signed.

    ``base_url`` may leave out the scheme (``127.0.0.1:8000`` means ``http://…``).

    ``client.charms.create("counter")``, ``client.cell(space, id, "value").get()``,
    ``client.stream(space, id, "increment").call({})``: the runtime's vocabulary,
    over HTTP. Errors the server returns raise :class:`~charmspace.client.APIError`;
    with no server at ``base_url``, :class:`~charmspace.client.ServerUnreachableError`.

    A request the server refuses as busy (429) is signed again and resent after
    its ``Retry-After``, as ``retry`` allows (by default 3 more tries, 30 s of
    waiting in all); every 429 is decided before the request does anything, so
    this holds for writes too (see :mod:`charmspace.client.retry`).
    """

    def __init__(
        self,
        base_url: str = ops.DEFAULT_URL,
        identity: Identity | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        retry: Retry = DEFAULT_RETRY,
    ) -> None:
        super().__init__(identity)
        self.retry = retry
        self.http = httpx.Client(
            base_url=ops.base_url(base_url),
            auth=SignedAuth(self.identity),
            limits=ops.LIMITS,
            timeout=timeout,
            transport=transport,
        )

    def do(self, op: ops.Op) -> Any:
        """Send ``op`` and return its answer, read; a 429 is tried again (see ``retry``)."""
        tries, waited = 0, 0.0
        while True:
            try:
                response = self.http.send(op.request(self.http))  # signed anew: a fresh nonce
            except httpx.ConnectError as error:
                raise ops.unreachable(self.http.base_url, error) from error
            after = response.headers.get("retry-after")
            delay = self.retry.delay(response.status_code, after, tries, waited)
            if delay is None:
                break
            time.sleep(delay)
            tries, waited = tries + 1, waited + delay
        note = gave_up(tries, waited, after) if response.status_code == BUSY else ""
        return op.read(ops.answer(response, note))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
