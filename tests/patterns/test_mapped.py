"""``map`` builds each position once and keeps it while what its function read holds.

Two kinds of tests: how many times the function runs for an edit (what the
incremental map saves), and a property test that random edits of the list,
of what the items link to and of other inputs give exactly what computing the
whole list again gives, on memory and on SQLite.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charmspace import Runtime
from charmspace.identity import Identity
from charmspace.patterns import Charm, Default, Ref, computed, derive, map, now, pattern
from charmspace.patterns.ui import h
from charmspace.runtime import Cell, FakeClock, Transaction
from charmspace.types import JSONValue

calls: list[int] = []
"""The positions the counting functions were called for, in order."""


def counted(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(item: Ref, i: int) -> Any:
        calls.append(i)
        return fn(item, i)

    return wrapper


@pattern
def checklist(
    items: Default[Cell[list[dict[str, Any]]], []], suffix: Default[Cell[str], "ok"]
) -> Any:
    return {
        "items": items,
        "suffix": suffix,
        "rows": map(
            items,
            counted(lambda item, i: h("li", {"data_index": i}, item["title"], item["done"])),
        ),
        "shouted": map(items, counted(lambda item, i: item["title"].get().upper() + suffix.get())),
    }


def notes(n: int) -> list[dict[str, Any]]:
    return [{"title": f"note {i}", "done": False} for i in range(n)]


async def edit(runtime: Runtime, change: Callable[[], None]) -> None:
    async with runtime.edit():
        change()
    await runtime.idle()


async def test_editing_moving_or_removing_an_item_calls_no_function_that_only_links_it(
    runtime: Runtime,
) -> None:
    calls.clear()
    charm = await runtime.charms.create(checklist, inputs={"items": notes(50)})
    assert sorted(calls) == sorted([*range(50), *range(50)])  # both maps, every position once
    rows = charm["rows"]

    calls.clear()
    await edit(runtime, lambda: charm["items"][7]["done"].set(True))
    assert rows.get()[7]["children"] == ["note 7", True]
    assert calls == []  # "rows" read nothing; "shouted" read no "done"

    calls.clear()
    moved = [notes(50)[-1], *notes(50)[:-1]]
    await edit(runtime, lambda: charm["items"].set(moved))
    assert [r["children"][0] for r in rows.get()[:2]] == ["note 49", "note 0"]
    assert len(calls) == 50  # only "shouted", whose reads moved with the items
    assert charm["shouted"].get()[:2] == ["NOTE 49ok", "NOTE 0ok"]

    calls.clear()
    await edit(runtime, lambda: charm["items"].set(moved[:-1]))
    assert len(rows.get()) == 49
    assert calls == []  # one position fewer; the rest read what they read


async def test_appending_calls_the_function_for_the_new_position_only(runtime: Runtime) -> None:
    calls.clear()
    charm = await runtime.charms.create(checklist, inputs={"items": notes(20)})
    calls.clear()
    await edit(runtime, lambda: charm["items"].push({"title": "last", "done": False}))
    assert calls == [20, 20]
    assert charm["shouted"].get()[-1] == "LASTok"
    assert charm["rows"].get()[-1]["props"] == {"data_index": 20}


async def test_a_changed_read_builds_again_exactly_the_positions_that_read_it(
    runtime: Runtime,
) -> None:
    calls.clear()
    charm = await runtime.charms.create(checklist, inputs={"items": notes(10)})
    calls.clear()
    await edit(runtime, lambda: charm["items"][3]["title"].set("three"))
    assert calls == [3]
    assert charm["shouted"].get()[2:5] == ["NOTE 2ok", "THREEok", "NOTE 4ok"]

    calls.clear()
    await edit(runtime, lambda: charm["suffix"].set("no"))
    assert sorted(calls) == list(range(10))  # every position read the suffix
    assert charm["shouted"].get()[3] == "THREEno"


@pattern
def stamped(items: Default[Cell[list[int]], [1, 2]]) -> Any:
    return {"items": items, "at": map(items, lambda item: [item.get(), now()])}


async def test_an_item_that_reads_the_clock_is_built_again_each_time(
    runtime: Runtime, clock: FakeClock
) -> None:
    charm = await runtime.charms.create(stamped)
    first = clock.now()
    assert charm["at"].get() == [[1, first], [2, first]]
    await clock.advance(60)
    await edit(runtime, lambda: charm["items"].push(3))
    later = first + 60
    assert charm["at"].get() == [[1, later], [2, later], [3, later]]


@pattern
def ratios(items: Default[Cell[list[int]], [1, 2, 4]]) -> Any:
    return {"items": items, "out": map(items, lambda item: 4 // item.get())}


async def test_a_function_that_raises_for_one_item_keeps_the_last_list_until_it_does_not(
    runtime: Runtime,
) -> None:
    charm = await runtime.charms.create(ratios)
    assert charm["out"].get() == [4, 2, 1]
    await edit(runtime, lambda: charm["items"][1].set(0))
    assert charm["out"].get() == [4, 2, 1]
    assert "ZeroDivisionError" in str(charm.error.get())
    await edit(runtime, lambda: charm["items"][1].set(1))
    assert charm["out"].get() == [4, 4, 1]


# --- the property: an incremental map gives what mapping the whole list again gives ----

Fn = Callable[..., Any]


def full(items: Ref, fn: Fn) -> Ref:
    """What ``map`` computed before it was incremental: every position, every time."""
    return computed(lambda: [fn(items.key(i), i) for i in range(len(items.get() or []))])


def by_ref(item: Ref, i: int) -> Any:
    return {"i": i, "title": item["title"], "n": item["n"]}


def by_value(item: Ref, i: int) -> Any:
    return {"t": item["title"].get(), "n": item["n"].sample()}


def through_a_cell(item: Ref, i: int) -> Any:
    return Cell(item.runtime, item.address).key("n").get()  # a cell's read counts too


def inverse(item: Ref, i: int) -> Any:
    return 6 // item["n"].get()  # raises for n == 0


@pattern
def mirrored(
    items: Default[Cell[list[Any] | None], []],
    pool: Default[Cell[list[dict[str, Any]]], []],
    prefix: Default[Cell[str], "p"],
) -> Any:
    def prefixed(item: Ref, i: int) -> Any:
        return f"{prefix.get()}{item['n'].get()}"

    evens = derive(items, lambda v: [x for x in v or () if isinstance(x, dict) and x["n"] % 2 == 0])
    out: dict[str, Any] = {"items": items, "pool": pool, "prefix": prefix}
    fns = {"ref": by_ref, "value": by_value, "prefixed": prefixed, "cell": through_a_cell}
    for name, fn in fns.items():
        out[name] = (map(items, fn), full(items, fn))
    out["inverse"] = (map(items, inverse), full(items, inverse))
    out["evens"] = (map(evens, by_value), full(evens, by_value))
    value, value_full = out["value"]
    out["chained"] = (
        map(value, lambda x, i: [i, x["t"].get()]),
        full(value_full, lambda x, i: [i, x["t"].get()]),
    )
    return out


PAIRS = ("ref", "value", "prefixed", "cell", "inverse", "evens", "chained")

titles = st.sampled_from(["a", "b", "c"])
plain_items = st.fixed_dictionaries({"title": titles, "n": st.integers(0, 3)})
items = plain_items | st.integers(0, 2).map(lambda k: ("link", k))
index = st.integers(0, 50)
edits = st.one_of(
    st.tuples(st.just("insert"), index, items),
    st.tuples(st.just("push"), items),
    st.tuples(st.just("delete"), index),
    st.tuples(st.just("move"), index, index),
    st.tuples(st.just("duplicate"), index),
    st.tuples(st.just("title"), index, titles),
    st.tuples(st.just("n"), index, st.integers(0, 3)),
    st.tuples(st.just("replace"), st.lists(items, max_size=6)),
    st.tuples(st.just("none")),
    st.tuples(st.just("pool"), st.integers(0, 2), st.integers(0, 3)),
    st.tuples(st.just("prefix"), st.sampled_from(["p", "q"])),
)

USER = Identity.from_passphrase("patterns suite: user")
SERVICE = Identity.from_passphrase("patterns suite: service")
_examples = itertools.count()


def raw(runtime: Runtime, cell: Cell[Any]) -> JSONValue:
    """The value stored at ``cell`` (links to it followed, links inside it left as they are)."""
    return Transaction(runtime, USER.did).read(cell.address, deep=False)


def apply(charm: Charm, step: tuple[Any, ...], current: list[Any]) -> None:
    """Make ``step`` (an edit as drawn) on the charm, in the open edit."""
    list_ = charm["items"]

    def item(drawn: Any) -> Any:
        return charm["pool"][drawn[1]] if isinstance(drawn, tuple) else drawn

    kind, *args = step
    at = args[0] % (len(current) + 1) if args and isinstance(args[0], int) else 0
    if kind == "insert":
        list_.set([*current[:at], item(args[1]), *current[at:]])
    elif kind == "push":
        list_.push(item(args[0]))
    elif kind == "replace":
        list_.set([item(x) for x in args[0]])
    elif kind == "none":
        list_.set(None)
    elif kind == "pool":
        charm["pool"][args[0]]["n"].set(args[1])
    elif kind == "prefix":
        charm["prefix"].set(args[0])
    elif current:
        at %= len(current)
        if kind == "delete":
            list_.set(current[:at] + current[at + 1 :])
        elif kind == "move":
            rest = current[:at] + current[at + 1 :]
            to = args[1] % (len(rest) + 1)
            list_.set([*rest[:to], current[at], *rest[to:]])
        elif kind == "duplicate":
            list_.set([*current[: at + 1], *current[at:]])
        elif kind in ("title", "n"):
            list_[at][kind].set(args[1])


async def check_edits(storage_url: str, steps: list[tuple[Any, ...]]) -> None:
    url = storage_url if storage_url == "memory://" else f"{storage_url}-{next(_examples)}"
    runtime = Runtime(url, identity=USER, service=SERVICE, clock=FakeClock(), call_timeout=5)
    try:
        pool = [{"title": f"p{k}", "n": k + 1} for k in range(3)]
        start = [{"title": "a", "n": 1}, {"title": "b", "n": 2}]
        charm = await runtime.charms.create(mirrored, inputs={"items": start, "pool": pool})
        for step in steps:
            current = raw(runtime, charm["items"])
            async with runtime.edit():
                apply(charm, step, list(current) if isinstance(current, list) else [])
            await runtime.idle()
            for name in PAIRS:
                incremental, whole = charm.result.get()[name]
                assert incremental == whole, (name, step)
            refs, refs_full = (charm.result.key("ref", i) for i in (0, 1))
            assert raw(runtime, refs) == raw(runtime, refs_full)
    finally:
        await runtime.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(edits, min_size=1, max_size=12))
def test_random_edits_map_to_what_mapping_everything_again_gives(
    storage_url: str, steps: list[tuple[Any, ...]]
) -> None:
    asyncio.run(check_edits(storage_url, steps))


def test_the_property_covers_links_to_items(storage_url: str) -> None:
    """The drawn edits reach items that are links, so reads through links are compared too."""
    asyncio.run(check_edits(storage_url, [("push", ("link", 1)), ("pool", 1, 0), ("n", 2, 3)]))
