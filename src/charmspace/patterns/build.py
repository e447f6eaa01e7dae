"""Building a charm: running its pattern, and the patterns it calls, into units and documents.

Calling a pattern inside another (``child = counter(value=value)``) builds a
**child charm** right there, in the parent's construction: same space, its own
unit (handlers, derived values) and its own argument, internal and result
documents. The parent gets a reference to the child's result, to embed or
export. A child belongs to its parent: it is created in the parent's
transaction, started, rebuilt and removed with it, and is not listed on its own.

The child's id derives from the parent's id and the child's place in the
parent's construction order, so rebuilding the parent after a restart finds the
same child documents, and their data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from charmspace.errors import PatternError
from charmspace.patterns.refs import Builder, Ref
from charmspace.runtime.address import STREAM_MARKER, Address, is_link
from charmspace.runtime.unit import Unit
from charmspace.storage.ids import entity_id
from charmspace.types import DID, EntityId, JSONValue, SpaceDID

if TYPE_CHECKING:
    from charmspace.patterns.pattern import Pattern
    from charmspace.runtime.runtime import Runtime

MAX_DEPTH = 16
"""How deeply patterns may nest. Construction cannot branch on values, so a
pattern that calls itself would never stop; the cap also catches recursion
through freshly made pattern objects, which the cycle check cannot see."""


def charm_docs(space: SpaceDID, charm_id: EntityId) -> tuple[Address, Address, Address]:
    """The argument, internal and result documents of a charm."""
    argument, internal, result = _charm_doc_ids(charm_id)
    return Address(space, argument), Address(space, internal), Address(space, result)


@lru_cache(maxsize=4096)
def _charm_doc_ids(charm_id: EntityId) -> tuple[EntityId, EntityId, EntityId]:
    """Remembered: creating, starting and serving a charm asks for its documents
    several times, and each id is a SHA-256 of canonical JSON."""
    return (
        entity_id({"charm": charm_id, "doc": "argument"}),
        entity_id({"charm": charm_id, "doc": "internal"}),
        entity_id({"charm": charm_id, "doc": "result"}),
    )


def creator_doc(space: SpaceDID, charm_id: EntityId) -> Address:
    """The document naming a charm's creator, written only by that creator (see ``Charms``)."""
    return Address(space, entity_id({"charm": charm_id, "doc": "creator"}))


@dataclass(eq=False, slots=True)
class Built:
    """A charm as its pattern built it, with the children it called."""

    pattern: Pattern
    unit: Unit
    internal: dict[str, JSONValue]
    result: dict[str, JSONValue]
    argument: dict[str, JSONValue] | None = None
    """A child's argument; a top-level charm's comes from ``charms.create(inputs=…)``."""
    children: list[Built] = field(default_factory=list)

    @property
    def docs(self) -> tuple[Address, Address, Address]:
        return charm_docs(self.unit.space, self.unit.id)

    def walk(self) -> Iterator[Built]:
        """This charm and its descendants, children before their parent (start order)."""
        for child in self.children:
            yield from child.walk()
        yield self


def build_charm(
    runtime: Runtime,
    pat: Pattern,
    space: SpaceDID,
    charm_id: EntityId,
    creator: DID,
    record: Mapping[str, JSONValue],
    *,
    parent: Builder | None = None,
) -> Built:
    """Run ``pat`` for ``charm_id`` (and, through it, its children); nothing is written."""
    argument, internal, _result = charm_docs(space, charm_id)
    unit = Unit(runtime, space, charm_id, pat.name)
    builder = Builder(
        runtime, unit, pat.name, creator, argument, internal, pattern=pat, parent=parent
    )
    result_doc = pat.build(builder)
    internal_doc: dict[str, JSONValue] = {
        "$charm": dict(record),
        "streams": {name: STREAM_MARKER for name in builder.streams},
        "values": builder.values,
    }
    for name, default in builder.cells.items():
        unit.initial_value(internal.key("cells", name), default)
    return Built(pat, unit, internal_doc, result_doc, children=builder.children)


def build_child(builder: Builder, pat: Pattern, inputs: Mapping[str, Any]) -> Ref:
    """``pat(**inputs)`` inside the pattern ``builder`` builds: a child charm; its result."""
    chain = [*builder.ancestry(), pat]
    names = " → ".join(p.name for p in chain)
    if any(p is pat for p in chain[:-1]):
        raise PatternError(
            f"pattern {pat.name} calls itself ({names}). A pattern runs once per construction "
            "and cannot branch on values then, so the recursion would never end. "
            "Build a fixed structure, or map() over a list to show data of any depth."
        )
    if len(chain) > MAX_DEPTH:
        raise PatternError(
            f"patterns nest more than {MAX_DEPTH} deep ({names}); "
            "is a pattern calling itself through a factory?"
        )
    argument = pat.argument(inputs)
    node = builder.name("child", pat.name)
    child_id = entity_id({"parent": builder.unit.id, "child": node})
    root = builder.root()
    record: dict[str, JSONValue] = {
        "id": child_id,
        "pattern": pat.name,
        "import": pat.import_path,
        "source_hash": pat.source_hash,
        "tags": list(pat.tags),
        "creator": builder.creator,
        "parent": builder.unit.id,
        "root": root.unit.id,
    }
    child = build_charm(
        builder.runtime, pat, builder.space, child_id, builder.creator, record, parent=builder
    )
    child.argument = argument
    builder.children.append(child)
    _argument, _internal, result = charm_docs(builder.space, child_id)
    return Ref(builder.runtime, result, f"{builder.pattern_name}.{node}")


def rebuilt_argument(existing: JSONValue, built: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """A child's argument after its parent was rebuilt.

    Inputs the parent binds to its references (links) follow the parent's code;
    plain inputs keep their stored value, which the child's handlers may have
    changed; inputs new to the pattern take their built value.
    """
    kept = dict(existing) if isinstance(existing, Mapping) else {}
    links = {k: v for k, v in built.items() if is_link(v)}
    return {**built, **kept, **links}
