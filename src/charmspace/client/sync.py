"""``Client``: the signed HTTP API with httpx's sync client."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from charmspace.client import ops
from charmspace.client.auth import SignedAuth
from charmspace.identity import Identity
from charmspace.types import JSONValue, PathSegment


class Client:
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
        self.identity = identity or Identity.generate()
        self.http = httpx.Client(
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

    def do(self, op: ops.Op) -> Any:
        response = self.http.request(
            op.method,
            op.path,
            params=dict(op.params) or None,
            json=op.json if op.has_body else None,
        )
        return ops.answer(response)

    def meta(self) -> Any:
        return self.do(ops.meta())

    def patterns(self) -> Any:
        return self.do(ops.patterns())

    def wish(self, query: str) -> Any:
        return self.do(ops.wish(query))

    def cell(self, space: str, id: str, *path: PathSegment) -> Cell:
        return Cell(self, space, id, path)

    def stream(self, space: str, id: str, name: str) -> Stream:
        return Stream(self, space, id, name)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Spaces:
    def __init__(self, client: Client) -> None:
        self._c = client

    def list(self) -> Any:
        return self._c.do(ops.list_spaces())

    def create(self, name: str | None = None) -> Any:
        """The caller's home space, or its space ``name`` (DID derived from the caller's key)."""
        return self._c.do(ops.create_space(self._c.identity, name))

    def acl(self, space: str) -> Any:
        return self._c.do(ops.get_acl(space))

    def set_acl(self, space: str, subject: str, capability: str | None) -> Any:
        return self._c.do(ops.set_acl(space, subject, capability))

    def log(self, space: str, since: int = 0, limit: int = 100) -> Any:
        return self._c.do(ops.log(space, since, limit))

    def head(self, space: str) -> int:
        return int(self._c.do(ops.head(space)))

    def doc(self, space: str, id: str, at: int | None = None) -> Any:
        return self._c.do(ops.doc(space, id, at))


class Charms:
    def __init__(self, client: Client) -> None:
        self._c = client

    def create(
        self,
        pattern: str,
        *,
        space: str | None = None,
        inputs: Mapping[str, JSONValue] | None = None,
    ) -> Any:
        return self._c.do(ops.create_charm(space or self._c.did, pattern, inputs))

    def list(self, space: str | None = None) -> Any:
        return self._c.do(ops.list_charms(space or self._c.did))

    def get(self, space: str, id: str) -> Any:
        return self._c.do(ops.get_charm(space, id))

    def remove(self, space: str, id: str) -> None:
        self._c.do(ops.remove_charm(space, id))

    def log(self, space: str, id: str, since: int = 0, limit: int = 100) -> Any:
        """The commits that touched the charm after ``since``: who ran them, as whom, and why."""
        return self._c.do(ops.charm_log(space, id, since, limit))

    def link(
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
        return self._c.do(ops.link_input(space, id, input, source[0], source[1], path))


class Favorites:
    def __init__(self, client: Client) -> None:
        self._c = client

    def list(self) -> Any:
        return self._c.do(ops.list_favorites())

    def add(self, space: str, id: str) -> Any:
        return self._c.do(ops.add_favorite(space, id))

    def remove(self, space: str, id: str) -> None:
        self._c.do(ops.remove_favorite(space, id))


class Cell:
    def __init__(self, client: Client, space: str, id: str, path: tuple[PathSegment, ...]) -> None:
        self._c, self.space, self.id, self.path = client, space, id, path

    def get(self) -> Any:
        return self._c.do(ops.get_cell(self.space, self.id, self.path))["value"]

    def set(self, value: JSONValue) -> Any:
        return self._c.do(ops.set_cell(self.space, self.id, self.path, value))


class Stream:
    def __init__(self, client: Client, space: str, id: str, name: str) -> None:
        self._c, self.space, self.id, self.name = client, space, id, name

    def send(self, event: JSONValue, *, wait: bool = False) -> Any:
        """Queue ``event``; with ``wait=True`` return the handler's commit result."""
        op = ops.send(self.space, self.id, self.name, event, "commit" if wait else "none")
        return self._c.do(op)

    def call(self, event: JSONValue) -> Any:
        """Send ``event`` and return ``{ok, value, space, seq, error}`` once it committed."""
        return self._c.do(ops.send(self.space, self.id, self.name, event, "result"))
