"""``AsyncClient``: the signed HTTP API with httpx's async client, as ``Client`` speaks it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Coroutine
from types import TracebackType
from typing import Any

import httpx

from charmspace.client import ops
from charmspace.client.api import Calls, Cell
from charmspace.client.auth import SignedAuth
from charmspace.client.live import Change, watch
from charmspace.identity import Identity
from charmspace.types import PathSegment

Answer = Coroutine[Any, Any, Any]


class AsyncClient(Calls[Answer]):
    """Talk to a charmspace server as ``identity``; every request is signed.

    ``base_url`` may leave out the scheme (``127.0.0.1:8000`` means ``http://…``).

    ``await client.charms.create("counter")``, ``await client.cell(space, id, "value").get()``,
    ``await client.stream(space, id, "increment").call({})``: the runtime's vocabulary,
    over HTTP. Errors the server returns raise :class:`~charmspace.client.APIError`.
    """

    def __init__(
        self,
        base_url: str = ops.DEFAULT_URL,
        identity: Identity | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(identity)
        self.http = httpx.AsyncClient(
            base_url=ops.base_url(base_url),
            auth=SignedAuth(self.identity),
            limits=ops.LIMITS,
            timeout=timeout,
            transport=transport,
        )

    async def do(self, op: ops.Op) -> Any:
        """Send ``op`` and return its answer, read."""
        return op.read(ops.answer(await self.http.send(op.request(self.http))))

    def cell(self, space: str, id: str, *path: PathSegment) -> WatchableCell:
        return WatchableCell(self, space, id, path)

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class WatchableCell(Cell[Answer]):
    def __init__(
        self, client: AsyncClient, space: str, id: str, path: tuple[PathSegment, ...]
    ) -> None:
        super().__init__(client, space, id, path)
        self._url = str(client.http.base_url)

    def watch(self) -> AsyncGenerator[Change, None]:
        """``async for change in cell.watch():`` the value now, then each change (a WebSocket).

        Needs a real server (not an in-process transport); see :mod:`charmspace.client.live`.
        """
        return watch(self._url, self._c.identity, self.space, self.id, self.path)
