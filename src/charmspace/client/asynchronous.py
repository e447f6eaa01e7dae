"""``AsyncClient``: the signed HTTP API with httpx's async client, as ``Client`` speaks it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from types import TracebackType
from typing import Any

import httpx

from charmspace.client import ops
from charmspace.client.auth import SignedAuth
from charmspace.client.live import Change, watch
from charmspace.identity import Identity
from charmspace.types import JSONValue, PathSegment


class AsyncClient:
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
        self.identity = identity or Identity.generate()
        self.http = httpx.AsyncClient(
            base_url=ops.base_url(base_url),
            auth=SignedAuth(self.identity),
            limits=ops.LIMITS,
            timeout=timeout,
            transport=transport,
        )
        self.spaces = Spaces(self)
        self.charms = Charms(self)
        self.favorites = Favorites(self)

    @property
    def did(self) -> str:
        """The caller's DID, which is also its home space."""
        return self.identity.did

    async def do(self, op: ops.Op) -> Any:
        response = await self.http.request(
            op.method,
            op.path,
            params=dict(op.params) or None,
            json=op.json if op.has_body else None,
        )
        return ops.answer(response)

    async def meta(self) -> Any:
        return await self.do(ops.meta())

    async def patterns(self) -> Any:
        return await self.do(ops.patterns())

    async def wish(self, query: str) -> Any:
        return await self.do(ops.wish(query))

    def cell(self, space: str, id: str, *path: PathSegment) -> Cell:
        return Cell(self, space, id, path)

    def stream(self, space: str, id: str, name: str) -> Stream:
        return Stream(self, space, id, name)

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Spaces:
    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def list(self) -> Any:
        return await self._c.do(ops.list_spaces())

    async def create(self, name: str | None = None) -> Any:
        """The caller's home space, or its space ``name`` (DID derived from the caller's key)."""
        return await self._c.do(ops.create_space(self._c.identity, name))

    async def acl(self, space: str) -> Any:
        return await self._c.do(ops.get_acl(space))

    async def set_acl(self, space: str, subject: str, capability: str | None) -> Any:
        return await self._c.do(ops.set_acl(space, subject, capability))

    async def log(self, space: str, since: int = 0, limit: int = 100) -> Any:
        return await self._c.do(ops.log(space, since, limit))

    async def head(self, space: str) -> int:
        return int(await self._c.do(ops.head(space)))

    async def doc(self, space: str, id: str, at: int | None = None) -> Any:
        return await self._c.do(ops.doc(space, id, at))


class Charms:
    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(
        self,
        pattern: str,
        *,
        space: str | None = None,
        inputs: Mapping[str, JSONValue] | None = None,
    ) -> Any:
        return await self._c.do(ops.create_charm(space or self._c.did, pattern, inputs))

    async def list(self, space: str | None = None) -> Any:
        return await self._c.do(ops.list_charms(space or self._c.did))

    async def get(self, space: str, id: str) -> Any:
        return await self._c.do(ops.get_charm(space, id))

    async def remove(self, space: str, id: str) -> None:
        await self._c.do(ops.remove_charm(space, id))

    async def log(self, space: str, id: str, since: int = 0, limit: int = 100) -> Any:
        """The commits that touched the charm after ``since``: who ran them, as whom, and why."""
        return await self._c.do(ops.charm_log(space, id, since, limit))

    async def link(
        self,
        space: str,
        id: str,
        input: str,
        source: tuple[str, str],
        *path: PathSegment,
    ) -> Any:
        """Link input ``input`` of charm ``id`` to the cell at ``path`` of charm ``source``.

        ``source`` is ``(space, id)``; no ``path`` links the source's whole result.
        """
        return await self._c.do(ops.link_input(space, id, input, source[0], source[1], path))


class Favorites:
    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def list(self) -> Any:
        return await self._c.do(ops.list_favorites())

    async def add(self, space: str, id: str) -> Any:
        return await self._c.do(ops.add_favorite(space, id))

    async def remove(self, space: str, id: str) -> None:
        await self._c.do(ops.remove_favorite(space, id))


class Cell:
    def __init__(
        self, client: AsyncClient, space: str, id: str, path: tuple[PathSegment, ...]
    ) -> None:
        self._c, self.space, self.id, self.path = client, space, id, path

    async def get(self) -> Any:
        return (await self._c.do(ops.get_cell(self.space, self.id, self.path)))["value"]

    async def set(self, value: JSONValue) -> Any:
        return await self._c.do(ops.set_cell(self.space, self.id, self.path, value))

    def watch(self) -> AsyncGenerator[Change, None]:
        """``async for change in cell.watch():`` the value now, then each change (a WebSocket).

        Needs a real server (not an in-process transport); see :mod:`charmspace.client.live`.
        """
        return watch(str(self._c.http.base_url), self._c.identity, self.space, self.id, self.path)


class Stream:
    def __init__(self, client: AsyncClient, space: str, id: str, name: str) -> None:
        self._c, self.space, self.id, self.name = client, space, id, name

    async def send(self, event: JSONValue, *, wait: bool = False) -> Any:
        """Queue ``event``; with ``wait=True`` return the handler's commit result."""
        op = ops.send(self.space, self.id, self.name, event, "commit" if wait else "none")
        return await self._c.do(op)

    async def call(self, event: JSONValue) -> Any:
        """Send ``event`` and return ``{ok, value, space, seq, error}`` once it committed."""
        return await self._c.do(ops.send(self.space, self.id, self.name, event, "result"))
