"""The client's methods, each once, for ``Client`` and ``AsyncClient`` alike.

Every method builds an :class:`~charmspace.client.ops.Op` and hands it to the
client's ``do``, returning what ``do`` returns: the answer itself for
``Client``, an awaitable of it for ``AsyncClient``. ``R`` is that return type,
so a new route is one function in :mod:`~charmspace.client.ops` and one method
here, and both clients have it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

from charmspace.client import ops
from charmspace.identity import Identity
from charmspace.types import JSONValue, PathSegment

R = TypeVar("R")


class Calls(Generic[R]):
    """The API as one client sends it: :meth:`do` is the only part a client supplies."""

    def __init__(self, identity: Identity | None) -> None:
        self.identity = identity or Identity.generate()
        self.spaces = Spaces(self)
        self.charms = Charms(self)
        self.favorites = Favorites(self)

    def do(self, op: ops.Op) -> R:
        """Send ``op`` and read its answer (an awaitable of it, in the async client)."""
        raise NotImplementedError

    @property
    def did(self) -> str:
        """The caller's DID, which is also its home space."""
        return self.identity.did

    def meta(self) -> R:
        return self.do(ops.meta())

    def patterns(self) -> R:
        return self.do(ops.patterns())

    def wish(self, query: str) -> R:
        return self.do(ops.wish(query))

    def cell(self, space: str, id: str, *path: PathSegment) -> Cell[R]:
        return Cell(self, space, id, path)

    def stream(self, space: str, id: str, name: str) -> Stream[R]:
        return Stream(self, space, id, name)


class Spaces(Generic[R]):
    def __init__(self, client: Calls[R]) -> None:
        self._c = client

    def list(self) -> R:
        return self._c.do(ops.list_spaces())

    def create(self, name: str | None = None) -> R:
        """The caller's home space, or its space ``name`` (DID derived from the caller's key)."""
        return self._c.do(ops.create_space(self._c.identity, name))

    def acl(self, space: str) -> R:
        return self._c.do(ops.get_acl(space))

    def set_acl(self, space: str, subject: str, capability: str | None) -> R:
        return self._c.do(ops.set_acl(space, subject, capability))

    def log(self, space: str, since: int = 0, limit: int = 100) -> R:
        return self._c.do(ops.log(space, since, limit))

    def head(self, space: str) -> R:
        """The space's last commit seq, an ``int``."""
        return self._c.do(ops.head(space))

    def doc(self, space: str, id: str, at: int | None = None) -> R:
        return self._c.do(ops.doc(space, id, at))


class Charms(Generic[R]):
    def __init__(self, client: Calls[R]) -> None:
        self._c = client

    def create(
        self,
        pattern: str,
        *,
        space: str | None = None,
        inputs: Mapping[str, JSONValue] | None = None,
    ) -> R:
        return self._c.do(ops.create_charm(space or self._c.did, pattern, inputs))

    def list(self, space: str | None = None) -> R:
        return self._c.do(ops.list_charms(space or self._c.did))

    def get(self, space: str, id: str) -> R:
        return self._c.do(ops.get_charm(space, id))

    def remove(self, space: str, id: str) -> R:
        """Stop the charm and delete its documents (answers None)."""
        return self._c.do(ops.remove_charm(space, id))

    def log(self, space: str, id: str, since: int = 0, limit: int = 100) -> R:
        """The commits that touched the charm after ``since``: who ran them, as whom, and why."""
        return self._c.do(ops.charm_log(space, id, since, limit))

    def link(
        self,
        space: str,
        id: str,
        input: str,
        source: tuple[str, str],
        *path: PathSegment,
    ) -> R:
        """Link input ``input`` of charm ``id`` to the cell at ``path`` of charm ``source``.

        ``source`` is ``(space, id)``; no ``path`` links the source's whole result.
        """
        return self._c.do(ops.link_input(space, id, input, source[0], source[1], path))


class Favorites(Generic[R]):
    def __init__(self, client: Calls[R]) -> None:
        self._c = client

    def list(self) -> R:
        return self._c.do(ops.list_favorites())

    def add(self, space: str, id: str) -> R:
        return self._c.do(ops.add_favorite(space, id))

    def remove(self, space: str, id: str) -> R:
        """Take the charm out of the caller's favorites (answers None)."""
        return self._c.do(ops.remove_favorite(space, id))


class Cell(Generic[R]):
    def __init__(
        self, client: Calls[R], space: str, id: str, path: tuple[PathSegment, ...]
    ) -> None:
        self._c, self.space, self.id, self.path = client, space, id, path

    def get(self) -> R:
        """The cell's value (links followed)."""
        return self._c.do(ops.get_cell(self.space, self.id, self.path))

    def set(self, value: JSONValue) -> R:
        return self._c.do(ops.set_cell(self.space, self.id, self.path, value))


class Stream(Generic[R]):
    def __init__(self, client: Calls[R], space: str, id: str, name: str) -> None:
        self._c, self.space, self.id, self.name = client, space, id, name

    def send(self, event: JSONValue, *, wait: bool = False) -> R:
        """Queue ``event``; with ``wait=True`` return the handler's commit result."""
        return self._c.do(
            ops.send(self.space, self.id, self.name, event, "commit" if wait else "none")
        )

    def call(self, event: JSONValue) -> R:
        """Send ``event`` and return ``{ok, value, space, seq, error}`` once it committed."""
        return self._c.do(ops.send(self.space, self.id, self.name, event, "result"))
