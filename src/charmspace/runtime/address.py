"""Where a value lives: a space, a document, a path inside it; and links to it.

A link is JSON that points at a cell::

    {"/": {"link@1": {"id": "of:…", "space": "did:key:…", "path": ["a", 0]}}}

``space`` and ``id`` may be omitted and then mean "same as the document that
holds the link". ``"overwrite": "redirect"`` makes writes go through the link
(a charm's inputs bound to another charm's cell are such links).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from charmspace.errors import LinkError
from charmspace.quick_init import quick_init
from charmspace.types import EntityId, JSONValue, Path, PathSegment, SpaceDID
from charmspace.values import FrozenDict, freeze

LINK_TAG = "link@1"
STREAM_MARKER: JSONValue = freeze({"$stream": True})


@quick_init
@dataclass(frozen=True, slots=True)
class Address:
    """A location: ``(space, id, path)``. Cheap, hashable, comparable."""

    space: SpaceDID
    id: EntityId
    path: Path = ()

    def key(self, *segments: PathSegment) -> Address:
        return Address(self.space, self.id, (*self.path, *segments))

    @property
    def doc(self) -> tuple[SpaceDID, EntityId]:
        return (self.space, self.id)

    def __str__(self) -> str:
        path = "/".join(str(p) for p in self.path)
        return f"{self.space}/{self.id}" + (f"/{path}" if path else "")


def link_to(target: Address, *, redirect: bool = False) -> JSONValue:
    """The link JSON that points at ``target``."""
    body: dict[str, Any] = {"id": target.id, "space": target.space, "path": list(target.path)}
    if redirect:
        body["overwrite"] = "redirect"
    return freeze({"/": {LINK_TAG: body}})


def is_link(value: object) -> bool:
    return type(value) is FrozenDict and "/" in value and len(value) == 1 and _is_link_body(value)


def _is_link_body(value: FrozenDict) -> bool:
    inner = value["/"]
    return isinstance(inner, dict) and LINK_TAG in inner


def parse_link(value: JSONValue, base: Address) -> tuple[Address, bool]:
    """Where a link points (relative to the document holding it), and whether it redirects."""
    assert isinstance(value, dict)
    body = value["/"][LINK_TAG]
    if not isinstance(body, dict):
        raise LinkError("the link's body is not an object", str(base))
    space = body.get("space") or base.space
    id = body.get("id") or base.id
    path = body.get("path") or ()
    if not isinstance(space, str) or not isinstance(id, str) or not isinstance(path, list | tuple):
        raise LinkError("the link names no valid space, id or path", str(base))
    if not all(isinstance(p, str | int) and not isinstance(p, bool) for p in path):
        raise LinkError("a link path may hold only strings and integers", str(base))
    return Address(space, id, tuple(path)), body.get("overwrite") == "redirect"


def is_stream_marker(value: object) -> bool:
    return isinstance(value, dict) and value.get("$stream") is True


class StreamMarker(FrozenDict):
    """``{"$stream": true}`` as read from a stream's location, remembering that location.

    In derived code a stream is a value, not a capability: it reads as the
    plain marker. But a derived value that *returns* one (the seed's
    ``derive(wished_charm, lambda c: c["refresh"])``) stores a link to where the
    stream lives, so a handler that declares that value as ``Stream[...]``
    still reaches the real stream.
    """

    __slots__ = ("address",)

    def __init__(self, address: Address) -> None:
        dict.__init__(self, {"$stream": True})
        self.address = address

    def __charm_json__(self) -> JSONValue:
        return link_to(self.address)

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, ({"$stream": True},))


def mark_stream(value: JSONValue, at: Address) -> JSONValue:
    """``value``, as a :class:`StreamMarker` at ``at`` if it is a plain stream marker."""
    if type(value) is FrozenDict and len(value) == 1 and value.get("$stream") is True:
        return StreamMarker(at)
    return value
