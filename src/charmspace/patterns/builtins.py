"""The built-ins a pattern builds with: derive, lift, computed, if_else, map, cell, now, wish,
alarm, llm."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from charmspace.errors import PatternError, SchemaError, SpaceNotFoundError
from charmspace.patterns.index import charm_links, favorites_address
from charmspace.patterns.mapped import MappedList
from charmspace.patterns.refs import Ref, StreamRef, active_builder, current_builder
from charmspace.runtime import context
from charmspace.runtime.address import Address
from charmspace.runtime.cell import Cell, to_json
from charmspace.runtime.transaction import Transaction
from charmspace.types import JSONValue

if TYPE_CHECKING:
    from charmspace.integrations.llm import LLMClient
    from charmspace.runtime.jobs import JobContext
    from charmspace.runtime.runtime import Runtime

TAG_PATTERN = re.compile(r"^#[A-Za-z][A-Za-z0-9_-]*$")


def _label(fn: Callable[..., Any]) -> str | None:
    name = getattr(fn, "__name__", None)
    return None if name in (None, "<lambda>") else name


def _resolve(shape: Any) -> Any:
    """Replace references inside ``shape`` (a ref, or lists/tuples/dicts of them) by values."""
    if isinstance(shape, Ref):
        return shape.get()
    if isinstance(shape, tuple | list):
        return type(shape)(_resolve(v) for v in shape)
    if isinstance(shape, Mapping):
        return {k: _resolve(v) for k, v in shape.items()}
    return shape


def derive(inputs: Any, fn: Callable[[Any], Any], *, name: str | None = None) -> Ref:
    """A derived value: ``fn(values of inputs)``, recomputed when the inputs change.

    ``inputs`` is a reference, or a tuple/list/dict of references (and constants);
    ``fn`` receives the same shape holding values. The result is read-only.
    """
    builder = active_builder("derive()")
    if not callable(fn):
        raise PatternError(f"derive() needs a function as its second argument, not {fn!r}")
    node = builder.name("derive", name or _label(fn))

    def compute() -> Any:
        return fn(_resolve(inputs))

    cell = builder.unit.derive(node, compute)
    return Ref(builder.runtime, cell.address, f"{builder.pattern_name}.{node}")


def computed(fn: Callable[[], Any], *, name: str | None = None) -> Ref:
    """A derived value whose body reads references with ``.get()``; they become its inputs."""
    builder = active_builder("computed()")
    if not callable(fn):
        raise PatternError(f"computed() needs a function, not {fn!r}")
    node = builder.name("computed", name or _label(fn))
    cell = builder.unit.derive(node, fn)
    return Ref(builder.runtime, cell.address, f"{builder.pattern_name}.{node}")


def lift(fn: Callable[..., Any]) -> Callable[..., Ref]:
    """Turn a plain function of values into one of references: ``lift(f)(ref_a, ref_b)``."""
    if not callable(fn):
        raise PatternError(f"lift() needs a function, not {fn!r}")

    def lifted(*args: Any, **kwargs: Any) -> Ref:
        return derive((args, kwargs), lambda v: fn(*v[0], **v[1]), name=_label(fn))

    return lifted


def if_else(condition: Any, then: Any, otherwise: Any) -> Ref:
    """``then`` while ``condition`` is truthy, else ``otherwise`` (either may be a UI tree)."""
    builder = active_builder("if_else()")
    node = builder.name("if_else")

    def compute() -> Any:
        return then if _resolve(condition) else otherwise

    cell = builder.unit.derive(node, compute)
    return Ref(builder.runtime, cell.address, f"{builder.pattern_name}.{node}")


def map(items: Ref | Cell[Any], fn: Callable[..., Any]) -> Ref:
    """Apply ``fn(item_ref, index)`` to each element of a list reference.

    ``fn`` receives references to the items (so what it builds stays live when
    an item changes) and runs once per position: again only for a new position,
    or when a value it read (a reference's ``get()``/``sample()``) is now
    different. Checking one item of a long list whose ``fn`` only links to
    the item's fields calls ``fn`` for no position at all. See
    :mod:`charmspace.patterns.mapped`.
    """
    builder = active_builder("map()")
    if not isinstance(items, Ref):
        raise PatternError(
            "map() maps over a reference to a list (an input, a cell, a derived value)"
        )
    node = builder.name("map", _label(fn))
    mapped = MappedList(items, fn, with_index=_arity(fn) >= 2)
    cell = builder.unit.derive(node, mapped)
    return Ref(builder.runtime, cell.address, f"{builder.pattern_name}.{node}")


def _arity(fn: Callable[..., Any]) -> int:
    import inspect

    try:
        return len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return 1


def cell(default: Any = None, *, name: str | None = None) -> Ref:
    """Internal state of the charm (not an input), starting at ``default``.

    Give it a ``name`` when the pattern may change: a named cell keeps its stored
    value across edits of the pattern, while an unnamed one is known by its
    position among the pattern's cells.
    """
    builder = active_builder("cell()")
    if name is not None:
        if not isinstance(name, str) or not name or name.startswith("cell"):
            raise PatternError(
                f"cell(name={name!r}) in pattern {builder.pattern_name}: a name is a non-empty "
                "string that does not start with 'cell'"
            )
        if name in builder.cells:
            raise PatternError(
                f"pattern {builder.pattern_name} has two cells named {name!r}; names must differ"
            )
        node = name
    else:
        node = builder.name("cell")
    try:
        builder.cells[node] = to_json(default)
    except SchemaError as error:  # named like a result that cannot be stored
        raise PatternError(
            f"pattern {builder.pattern_name}: the default of cell {node!r} cannot be stored: "
            f"{error.reason}"
        ) from None
    return Ref(
        builder.runtime, builder.internal.key("cells", node), f"{builder.pattern_name}.{node}"
    )


def now(resolution: float | None = None) -> float:
    """The runtime clock's time, in seconds.

    Inside a derived value with ``resolution``, the value is recomputed every
    ``resolution`` seconds (so ``time_remaining`` counts down by itself).
    """
    tx = context.current().transaction
    if tx is not None:
        return tx.runtime.now(resolution)
    if current_builder.get() is not None:
        raise PatternError(
            "now() was called while the pattern is being built; call it inside computed(...) "
            "so the value is recomputed as time passes."
        )
    return time.time()


def check_wish_query(query: object) -> str:
    if not isinstance(query, str):
        raise PatternError(f"wish() takes a string such as '#googleAuth', not {query!r}")
    if query in ("/", "#favorites") or TAG_PATTERN.match(query):
        return query
    raise PatternError(
        f"wish({query!r}): {query!r} is not a tag. A tag starts with '#' followed by a letter, "
        "then letters, digits, '_' or '-' (e.g. '#googleAuth'); '/' and '#favorites' also work."
    )


def _favorites(tx: Transaction, favorites: Address) -> list[JSONValue]:
    """The favorites list, read so that the wish depends on it even before it exists.

    Why read rather than ask whether the home space exists: a derived value is
    recomputed when a document it read changes, and only a read records that.
    On a fresh install the user's home space does not exist yet; a wish that
    skipped the read would never be computed again, even once the space and a
    favorite appear. The read of a missing space raises, but a derived value's
    transaction records a document as read before reading it, so the wish
    still depends on the favorites document (the regression test
    ``test_a_wish_made_before_the_home_space_exists_...`` pins this).
    """
    try:
        entries = tx.read(favorites, deep=False)
    except SpaceNotFoundError:
        return []
    return list(entries) if isinstance(entries, list) else []


def alarm(at: Ref, stream: StreamRef, event: Any = None) -> None:
    """Send ``event`` (default ``{}``) to ``stream`` when the epoch seconds in ``at`` come.

    ``at`` is usually a derived value (``None``: no alarm). The alarm keeps no
    timer in storage: it sleeps until that time while the charm runs, and a
    time that passed while it was stopped fires when it starts again. The event
    runs as the charm's creator. See :mod:`charmspace.runtime.alarms`.
    """
    builder = active_builder("alarm()")
    if not isinstance(at, Ref) or isinstance(at, StreamRef):
        raise PatternError(f"alarm() needs a reference to a time as its first argument, not {at!r}")
    if not isinstance(stream, StreamRef):
        raise PatternError(
            f"alarm() needs a stream (handler.bind(...)) as its second argument, not {stream!r}"
        )
    payload = to_json({} if event is None else event, ("event",))
    builder.unit.alarm(builder.name("alarm"), at.address, stream.address, payload)


def wish(query: str) -> Ref:
    """Find what the user favorited: ``{result, candidates, error}``, kept up to date.

    Tags match exactly and case-insensitively; with several matches ``result`` is
    the first in favorites order and ``candidates`` lists all; a wish never
    matches the charm that makes it. ``"/"`` lists the (other) charms of this space;
    ``"#favorites"`` is the list of favorites.
    """
    builder = active_builder("wish()")
    query = check_wish_query(query)
    node = builder.name("wish")
    runtime = builder.runtime
    me = builder.unit.id
    space = builder.space
    favorites = favorites_address(builder.creator)

    def compute() -> JSONValue:
        tx = context.current().transaction
        assert tx is not None
        if query == "/":
            return to_json(
                {"result": charm_links(tx, space, exclude=me), "candidates": [], "error": None}
            )
        entries = _favorites(tx, favorites)
        if query == "#favorites":
            return to_json({"result": list(entries), "candidates": [], "error": None})
        wanted = query.lower()
        matches = [
            e["charm"]
            for e in entries
            if isinstance(e, dict)
            and e.get("id") != me
            and any(isinstance(t, str) and t.lower() == wanted for t in e.get("tags", ()))
        ]
        if not matches:
            return to_json(
                {
                    "result": None,
                    "candidates": [],
                    "error": f'No favorite found matching "{query}"',
                }
            )
        return to_json({"result": matches[0], "candidates": matches, "error": None})

    cell_ = builder.unit.derive(node, compute)
    return Ref(runtime, cell_.address, f"{builder.pattern_name}.wish({query})")


def llm(where: JobContext | Runtime) -> LLMClient:
    """The LLM client the host configured, for a job: ``await llm(ctx).chat(messages, tools=…)``.

    Takes the job's context because a model call takes seconds: it belongs in
    a job, never in a handler or a derived value, which hold a transaction
    open. The key and base URL stay with the host (``CHARMSPACE_LLM_*``); a
    missing configuration is an ``IntegrationError`` with reason
    ``llm_unconfigured``.
    """
    from charmspace.integrations.services import llm_of
    from charmspace.runtime.jobs import JobContext

    runtime = where.runtime if isinstance(where, JobContext) else where
    return llm_of(runtime)
