"""The built-ins patterns build with: derive, computed, lift, if_else, map, cell, now, wish."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import PatternError
from charmspace.patterns import (
    Charm,
    Default,
    cell,
    computed,
    derive,
    handler,
    if_else,
    lift,
    map,
    now,
    pattern,
    wish,
)
from charmspace.runtime import Cell, FakeClock

# --- derive, computed, lift ------------------------------------------------------------


@pattern
def shapes(a: Default[Cell[int], 1], b: Default[Cell[int], 2]) -> Any:
    return {
        "a": a,
        "b": b,
        "single": derive(a, lambda v: v * 10),
        "pair": derive((a, b), lambda v: v[0] + v[1]),
        "listed": derive([a, b, 100], lambda v: sum(v)),
        "named": derive({"a": a, "b": b, "k": "const"}, lambda v: f"{v['a']}-{v['b']}-{v['k']}"),
        "computed": computed(lambda: a.get() * b.get()),
        "lifted": lift(lambda x, y=0: x - y)(a, y=b),
    }


async def set_input(runtime: Runtime, charm: Charm, name: str, value: Any) -> None:
    async with runtime.edit():
        charm[name].set(value)
    await runtime.idle()


async def test_derive_shapes_computed_and_lift_follow_their_inputs(runtime: Runtime) -> None:
    charm = await runtime.charms.create(shapes)
    expected = {"single": 10, "pair": 3, "listed": 103, "named": "1-2-const"}
    assert {k: charm[k].get() for k in expected} == expected
    assert (charm["computed"].get(), charm["lifted"].get()) == (2, -1)
    await set_input(runtime, charm, "a", 5)
    expected = {"single": 50, "pair": 7, "listed": 107, "named": "5-2-const"}
    assert {k: charm[k].get() for k in expected} == expected
    assert (charm["computed"].get(), charm["lifted"].get()) == (10, 3)


@pattern
def chained(value: Default[Cell[int], 1]) -> Any:
    double = computed(lambda: value.get() * 2)
    return {"double": double, "label": computed(lambda: f"double is {double.get()}")}


async def test_a_computed_reading_another_is_right_from_the_start(runtime: Runtime) -> None:
    charms = [await runtime.charms.create(chained) for _ in range(20)]
    assert [c["label"].get() for c in charms] == ["double is 2"] * 20


async def test_derive_and_computed_may_be_async(runtime: Runtime) -> None:
    async def slow_double(v: int) -> int:
        await asyncio.sleep(0)
        return v * 2

    @pattern
    def p(a: Default[Cell[int], 4]) -> Any:
        async def label() -> str:
            await asyncio.sleep(0)
            return f"a={a.get()}"

        return {"a": a, "double": derive(a, slow_double), "label": computed(label)}

    charm = await runtime.charms.create(p)
    assert (charm["double"].get(), charm["label"].get()) == (8, "a=4")
    await set_input(runtime, charm, "a", 5)
    assert (charm["double"].get(), charm["label"].get()) == (10, "a=5")


async def test_derived_values_are_read_only(runtime: Runtime) -> None:
    charm = await runtime.charms.create(shapes)
    with pytest.raises(Exception, match="read-only"):
        async with runtime.edit():
            charm["single"].set(0)
    assert charm["single"].get() == 10


@pytest.mark.parametrize(
    "build",
    [
        lambda: derive(1, lambda v: v),
        lambda: computed(lambda: 1),
        lambda: if_else(True, 1, 2),
        lambda: cell(0),
        lambda: wish("#x"),
    ],
    ids=["derive", "computed", "if_else", "cell", "wish"],
)
def test_builtins_outside_a_pattern_are_refused(build: Any) -> None:
    with pytest.raises(PatternError, match="only be used while a pattern is being built"):
        build()


async def test_derive_and_computed_need_functions(runtime: Runtime) -> None:
    @pattern
    def p(a: Default[int, 1]) -> Any:
        return {"x": derive(a, 5)}  # type: ignore[arg-type]

    with pytest.raises(PatternError, match="needs a function"):
        await runtime.charms.create(p)
    with pytest.raises(PatternError, match="needs a function"):
        lift(5)  # type: ignore[arg-type]


# --- if_else ---------------------------------------------------------------------------


async def test_if_else_switches_live(runtime: Runtime) -> None:
    @pattern
    def p(flag: Default[bool, False], yes: Default[str, "Y"]) -> Any:
        return {"choice": if_else(flag, yes, "no"), "flag": flag, "yes": yes}

    charm = await runtime.charms.create(p)
    assert charm["choice"].get() == "no"
    await set_input(runtime, charm, "flag", True)
    assert charm["choice"].get() == "Y"
    await set_input(runtime, charm, "yes", "YES")
    assert charm["choice"].get() == "YES"
    await set_input(runtime, charm, "flag", False)
    assert charm["choice"].get() == "no"


# --- map -------------------------------------------------------------------------------


@handler
def add_item(event: dict[str, Any], *, items: Cell[list[dict[str, Any]]]) -> None:
    items.push({"title": event["title"]})


@pattern
def listing(items: Default[Cell[list[dict[str, Any]]], []]) -> Any:
    calls.append(1)
    labels = map(items, lambda item, i: {"n": i, "title": item["title"]})
    return {"items": items, "labels": labels, "add": add_item.bind(items=items)}


calls: list[int] = []


async def test_map_grows_with_the_list_and_shows_item_changes(runtime: Runtime) -> None:
    charm = await runtime.charms.create(listing, inputs={"items": [{"title": "a"}]})
    assert charm["labels"].get() == [{"n": 0, "title": "a"}]
    assert (await charm.stream("add").call({"title": "b"})).ok
    await runtime.idle()
    assert charm["labels"].get() == [{"n": 0, "title": "a"}, {"n": 1, "title": "b"}]
    async with runtime.edit():
        charm["items"][0]["title"].set("A")
    await runtime.idle()
    assert charm["labels"].get() == [{"n": 0, "title": "A"}, {"n": 1, "title": "b"}]
    await set_input(runtime, charm, "items", [{"title": "z"}])
    assert charm["labels"].get() == [{"n": 0, "title": "z"}]


async def test_map_over_nothing_is_empty_and_needs_a_reference(runtime: Runtime) -> None:
    @pattern
    def p(items: Default[Cell[list[int] | None], None]) -> Any:
        return {"out": map(items, lambda item: item)}

    charm = await runtime.charms.create(p)
    assert charm["out"].get() == []

    @pattern
    def q() -> Any:
        return {"out": map([1, 2], lambda item: item)}  # type: ignore[arg-type]

    with pytest.raises(PatternError, match="maps over a reference"):
        await runtime.charms.create(q)


# --- cell ------------------------------------------------------------------------------


@handler
def bump(event: dict[str, Any], *, count: Cell[int]) -> None:
    count.set(count.get() + 1)


async def test_cell_is_internal_state_with_a_default(runtime: Runtime) -> None:
    @pattern
    def p() -> Any:
        count = cell(5, name="count")
        empty = cell()
        return {"count": count, "empty": empty, "bump": bump.bind(count=count)}

    charm = await runtime.charms.create(p)
    assert charm["count"].get() == 5
    assert charm["empty"].get() is None
    assert "count" not in p.inputs
    assert (await charm.stream("bump").call({})).ok
    assert charm["count"].get() == 6
    assert charm.internal.get()["cells"]["count"] == 6


async def test_a_cell_default_that_is_not_json_names_the_pattern_and_the_cell(
    runtime: Runtime,
) -> None:
    """Regression: ``cell({1, 2})`` said only "Invalid value at (root): set is not JSON",
    with nothing to find the cell by."""

    @pattern
    def tags() -> Any:
        return {"tags": cell({"a", "b"}, name="tags")}

    with pytest.raises(PatternError) as refused:
        await runtime.charms.create(tags)
    assert str(refused.value) == (
        "pattern tags: the default of cell 'tags' cannot be stored: set is not JSON "
        "(use dict, list, str, int, float, bool, None)"
    )
    assert runtime.charms.list() == []


# --- now -------------------------------------------------------------------------------


async def test_now_with_resolution_recomputes_as_time_passes(
    runtime: Runtime, clock: FakeClock
) -> None:
    @pattern
    def p() -> Any:
        return {"t": computed(lambda: now(resolution=1))}

    start = clock.now()
    charm = await runtime.charms.create(p)
    assert charm["t"].get() == start
    await clock.advance(1)
    await runtime.idle()
    assert charm["t"].get() == start + 1
    await clock.advance(2.5)
    await runtime.idle()
    assert charm["t"].get() == start + 3


async def test_now_at_construction_is_refused(runtime: Runtime) -> None:
    @pattern
    def p() -> Any:
        return {"t": now()}

    with pytest.raises(PatternError, match="inside computed"):
        await runtime.charms.create(p)


# --- wish ------------------------------------------------------------------------------


@pattern(tags=["#GOOGLEAUTH"])
def shouting_auth() -> Any:
    return {"who": "shouting"}


@pattern(tags=["#googleAuth"])
def plain_auth() -> Any:
    return {"who": "plain"}


@pattern(tags=["#googleAuthPersonal"])
def personal_auth() -> Any:
    return {"who": "personal"}


@pattern
def seeker() -> Any:
    return {"found": wish("#googleAuth")}


@pattern(tags=["#googleAuth"])
def self_seeker() -> Any:
    """Wishes for its own tag: it must never find itself."""
    return {"who": "self", "found": wish("#googleAuth")}


async def favorite(runtime: Runtime, *charms: Charm) -> None:
    for charm in charms:
        await runtime.favorites().add(charm)
    await runtime.idle()


async def test_wish_matches_tags_exactly_and_case_insensitively(runtime: Runtime) -> None:
    personal = await runtime.charms.create(personal_auth)
    shouting = await runtime.charms.create(shouting_auth)
    await favorite(runtime, personal, shouting)
    found = await runtime.charms.create(seeker)
    assert found["found"].get() == {
        "result": {"who": "shouting"},
        "candidates": [{"who": "shouting"}],
        "error": None,
    }


async def test_wish_with_several_matches_takes_the_first_favorite(runtime: Runtime) -> None:
    plain = await runtime.charms.create(plain_auth)
    shouting = await runtime.charms.create(shouting_auth)
    await favorite(runtime, plain, shouting)
    found = await runtime.charms.create(seeker)
    assert found["found"].get() == {
        "result": {"who": "plain"},
        "candidates": [{"who": "plain"}, {"who": "shouting"}],
        "error": None,
    }


async def test_wish_without_a_match_is_an_error(runtime: Runtime) -> None:
    await favorite(runtime, await runtime.charms.create(personal_auth))
    found = await runtime.charms.create(seeker)
    assert found["found"].get() == {
        "result": None,
        "candidates": [],
        "error": 'No favorite found matching "#googleAuth"',
    }


async def test_wish_with_no_favorites_at_all_is_an_error(runtime: Runtime) -> None:
    found = await runtime.charms.create(seeker, space=runtime.create_space(name="fresh"))
    assert found["found"]["error"].get() == 'No favorite found matching "#googleAuth"'
    assert found["found"]["result"].get() is None


async def test_a_wish_made_before_the_home_space_exists_resolves_once_a_favorite_is_added(
    runtime: Runtime,
) -> None:
    """Regression: on a fresh install the first wish never resolved.

    The user's home space (where favorites live) did not exist yet, so the
    wish read nothing, recorded no dependency, and was never computed again.
    """
    work = runtime.create_space(name="work")
    assert not runtime.storage.has_space(runtime.principal)
    found = await runtime.charms.create(seeker, space=work)
    await runtime.idle()
    assert found["found"]["error"].get() == 'No favorite found matching "#googleAuth"'

    auth = await runtime.charms.create(plain_auth, space=work)
    await favorite(runtime, auth)  # creates the home space, then writes the favorite
    assert found["found"].get() == {
        "result": {"who": "plain"},
        "candidates": [{"who": "plain"}],
        "error": None,
    }


async def test_wish_never_matches_the_charm_that_makes_it(runtime: Runtime) -> None:
    me = await runtime.charms.create(self_seeker)
    await favorite(runtime, me)
    assert me["found"]["result"].get() is None
    other = await runtime.charms.create(plain_auth)
    await favorite(runtime, other)
    assert me["found"]["result"].get() == {"who": "plain"}
    assert me["found"]["candidates"].get() == [{"who": "plain"}]


async def test_wish_follows_favorites_as_they_change(runtime: Runtime) -> None:
    found = await runtime.charms.create(seeker)
    assert found["found"]["result"].get() is None
    plain = await runtime.charms.create(plain_auth)
    shouting = await runtime.charms.create(shouting_auth)
    await favorite(runtime, shouting)
    assert found["found"]["result"].get() == {"who": "shouting"}
    await favorite(runtime, plain)
    assert found["found"]["candidates"].get() == [{"who": "shouting"}, {"who": "plain"}]
    await runtime.favorites().remove(shouting)
    await runtime.idle()
    assert found["found"]["result"].get() == {"who": "plain"}
    await runtime.favorites().remove(plain)
    await runtime.idle()
    assert found["found"]["error"].get() == 'No favorite found matching "#googleAuth"'


async def test_wish_result_follows_the_wished_charm(runtime: Runtime) -> None:
    @pattern(tags=["#googleAuth"])
    def auth(token: Default[str, "t0"]) -> Any:
        return {"token": token}

    source = await runtime.charms.create(auth, space=runtime.create_space(name="auth"))
    await favorite(runtime, source)
    found = await runtime.charms.create(seeker)
    assert found["found"]["result"]["token"].get() == "t0"
    await set_input(runtime, source, "token", "t1")
    assert found["found"]["result"]["token"].get() == "t1"


async def test_wish_slash_lists_the_other_charms_of_the_space(runtime: Runtime) -> None:
    """Regression: "/" listed the wishing charm itself, a link cycle no read could resolve."""

    @pattern
    def root() -> Any:
        return {"all": wish("/")}

    space = runtime.create_space(name="root-test")
    await runtime.charms.create(plain_auth, space=space)
    charm = await runtime.charms.create(root, space=space)
    await runtime.charms.create(personal_auth, space=runtime.create_space(name="elsewhere"))
    assert charm["all"].get() == {"result": [{"who": "plain"}], "candidates": [], "error": None}
    await runtime.charms.create(shouting_auth, space=space)
    await runtime.idle()
    listed = charm["all"]["result"].get()
    assert sorted(c["who"] for c in listed) == ["plain", "shouting"]  # same instant: any order


async def test_wish_favorites_lists_the_favorites(runtime: Runtime) -> None:
    @pattern
    def favs() -> Any:
        return {"favs": wish("#favorites")}

    plain = await runtime.charms.create(plain_auth)
    await favorite(runtime, plain)
    charm = await runtime.charms.create(favs)
    entries = charm["favs"]["result"].get()
    assert [(e["id"], e["name"], e["tags"]) for e in entries] == [
        (plain.id, "plain_auth", ["#googleAuth"])
    ]
    assert entries[0]["charm"] == {"who": "plain"}


@pytest.mark.parametrize("query", ["googleAuth", "#", "# x", "#1", "", 5, None])
async def test_a_malformed_wish_names_the_tag(runtime: Runtime, query: Any) -> None:
    @pattern
    def p() -> Any:
        return {"found": wish(query)}

    with pytest.raises(PatternError) as info:
        await runtime.charms.create(p)
    assert repr(query) in str(info.value)
    assert runtime.charms.list() == []


@pattern
def two_named_cells() -> dict[str, Any]:
    first = cell(1, name="first")
    second = cell(2, name="first")
    return {"first": first, "second": second}


async def test_cell_names_must_differ(runtime: Runtime) -> None:
    with pytest.raises(PatternError, match="two cells named 'first'"):
        await runtime.charms.create(two_named_cells)


async def test_a_named_cell_is_stored_under_its_name(runtime: Runtime) -> None:
    """Regression: named cells were keyed by position, so adding a cell before one
    handed its stored value to another cell after a restart."""

    @pattern
    def named() -> dict[str, Any]:
        unnamed = cell(0)
        count = cell(5, name="count")
        return {"unnamed": unnamed, "count": count}

    charm = await runtime.charms.create(named)
    cells = charm.internal.get()["cells"]
    assert cells == {"cell1": 0, "count": 5}
