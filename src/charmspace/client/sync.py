"""``Client``: the signed HTTP API with httpx's sync client."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from charmspace.client import ops
from charmspace.client.api import Calls
from charmspace.client.auth import SignedAuth
from charmspace.identity import Identity


class Client(Calls[Any]):
    """Talk to a charmspace server as ``identity``; every request is signed.

    ``base_url`` may leave out the scheme (``127.0.0.1:8000`` means ``http://…``).

    ``client.charms.create("counter")``, ``client.cell(space, id, "value").get()``,
    ``client.stream(space, id, "increment").call({})``: the runtime's vocabulary,
    over HTTP. Errors the server returns raise :class:`~charmspace.client.APIError`.
    """

    def __init__(
        self,
        base_url: str = ops.DEFAULT_URL,
        identity: Identity | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(identity)
        self.http = httpx.Client(
            base_url=ops.base_url(base_url),
            auth=SignedAuth(self.identity),
            limits=ops.LIMITS,
            timeout=timeout,
            transport=transport,
        )

    def do(self, op: ops.Op) -> Any:
        """Send ``op`` and return its answer, read."""
        return op.read(ops.answer(self.http.send(op.request(self.http))))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
