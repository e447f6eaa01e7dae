"""Composing patterns: a pattern called inside another builds a child charm."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import CharmNotFoundError, NotAStreamError, PatternError, SchemaError
from charmspace.library.counter import Adjust, adjust, counter
from charmspace.patterns import NAME, UI, Charm, Default, Pattern, cell, derive, handler, pattern
from charmspace.patterns.html import render_html
from charmspace.patterns.render import render_ui
from charmspace.patterns.ui import h
from charmspace.runtime import Address, Cell, Stream
from charmspace.storage.model import Change

OpenRuntime = Callable[[], Awaitable[Runtime]]


@handler
def set_total(event: int, *, total: Cell[int]) -> None:
    total.set(event)


@handler
def poke(event: Adjust, *, inner: Stream[Adjust]) -> None:
    inner.send(event)


@pattern
def dashboard(total: Default[int, 1]) -> Any:
    """Two counters: one bound to the dashboard's input, one with its own value."""
    bound = counter(value=total)
    own = counter(value=10)
    return {
        NAME: "Dashboard",
        UI: h("div", {}, h("render", {"charm": bound}), h("span", {"id": "own"}, own["value"])),
        "total": total,
        "bound": bound,
        "own_doubled": own["doubled"],
        "quadrupled": derive(bound["doubled"], lambda d: d * 2),
        "adjust": bound["adjust"],
        "set_total": set_total.bind(total=total),
        "poke": poke.bind(inner=own["adjust"]),
    }


async def make_dashboard(runtime: Runtime) -> tuple[Charm, Charm, Charm]:
    charm = await runtime.charms.create(dashboard, space=runtime.create_space(name="dash"))
    bound, own = charm.children
    return charm, bound, own


async def test_a_child_is_a_charm_in_the_parents_space(runtime: Runtime) -> None:
    charm, bound, own = await make_dashboard(runtime)
    for child in (bound, own):
        assert child.space == charm.space
        assert child.parent is charm
        assert child.pattern is counter
        assert child.unit.started
        assert await runtime.charms.get(charm.space, child.id) is child
        record = child.internal.get()["$charm"]
        assert (record["parent"], record["root"]) == (charm.id, charm.id)
    assert len({charm.id, bound.id, own.id}) == 3
    assert (bound["value"].get(), own["value"].get()) == (1, 10)
    assert charm["bound"]["doubled"].get() == 2
    assert charm["own_doubled"].get() == 20
    assert charm["quadrupled"].get() == 4
    assert charm.get()["bound"]["$NAME"] == "Counter: 1"


async def test_data_flows_both_ways_between_a_parent_and_a_bound_child(runtime: Runtime) -> None:
    charm, bound, own = await make_dashboard(runtime)
    assert (await charm.stream("adjust").call({"amount": 2})).ok  # the child's handler
    await runtime.idle()
    assert charm.argument.get() == {"total": 3}  # it wrote the parent's input
    assert (bound["doubled"].get(), charm["quadrupled"].get()) == (6, 12)

    assert (await charm.stream("set_total").call(7)).ok  # the parent's handler
    await runtime.idle()
    assert (bound["value"].get(), bound["doubled"].get()) == (7, 14)
    assert own["value"].get() == 10


async def test_a_childs_stream_field_works_as_handler_state(runtime: Runtime) -> None:
    """``own["adjust"]`` is a reference to a result field holding a stream link."""
    charm, _bound, own = await make_dashboard(runtime)
    assert (await charm.stream("poke").call({"amount": 5})).ok
    await runtime.idle()
    assert own["value"].get() == 15
    assert charm["own_doubled"].get() == 30


@handler
def relay(event: Adjust, *, target: Stream[Adjust]) -> None:
    target.send(event)


@pattern
def relayer(target: Stream[Adjust]) -> Any:
    return {"relay": relay.bind(target=target)}


@pattern
def relayed(value: Default[int, 0]) -> Any:
    child = relayer(target=adjust.bind(value=value))
    return {"value": value, "relay": child["relay"]}


async def test_a_parent_stream_passed_to_a_child_input(runtime: Runtime) -> None:
    charm = await runtime.charms.create(relayed)
    assert (await charm.stream("relay").call({"amount": 4})).ok
    await runtime.idle()
    assert charm["value"].get() == 4


async def test_plain_child_inputs_are_validated(runtime: Runtime) -> None:
    @pattern
    def wrong() -> Any:
        return {"inner": counter(value="many"), "x": counter(colour="red")}

    with pytest.raises(SchemaError) as info:
        await runtime.charms.create(wrong)
    assert info.value.path == ("value",)
    assert "pattern counter" in str(info.value)


# --- embedding --------------------------------------------------------------------------


async def test_render_embeds_the_childs_ui(runtime: Runtime) -> None:
    charm, bound, _own = await make_dashboard(runtime)
    tree: Any = render_ui(charm)
    embed, own_span = tree["children"]
    assert embed["name"] == "render"
    where = embed["props"]["charm"]["$charm"]
    assert Address(where["space"], where["id"], tuple(where["path"])) == bound.result.address
    assert embed["children"] == [render_ui(bound)]
    assert own_span["children"] == [10]
    html = render_html(tree)
    assert 'data-component="render"' in html
    assert '<span id="value">1</span>' in html

    button = embed["children"][0]["children"][1]  # the child's +1 button, clicked
    on_click = button["props"]["on_click"]["$stream"]
    address = Address(on_click["space"], on_click["id"], tuple(on_click["path"]))
    assert (await Stream[Any](runtime, address).call({"type": "click"})).ok
    await runtime.idle()
    assert charm["total"].get() == 2


# --- one transaction, one lifetime -------------------------------------------------------


async def test_create_writes_the_children_in_the_parents_commit(runtime: Runtime) -> None:
    space = runtime.create_space(name="one-commit")
    changes: list[Change] = []
    unsubscribe = runtime.storage.subscribe(space, changes.append)
    charm, bound, own = await make_dashboard_in(runtime, space)
    unsubscribe()
    (created,) = [c for c in changes if charm.result.address.id in c.ids]
    for child in (bound, own):
        for doc in (child.argument, child.internal, child.result):
            assert doc.address.id in created.ids


async def make_dashboard_in(runtime: Runtime, space: str) -> tuple[Charm, Charm, Charm]:
    charm = await runtime.charms.create(dashboard, space=space)
    bound, own = charm.children
    return charm, bound, own


@pattern
def explodes() -> Any:
    raise ValueError("the child's bug")


@pattern
def bad_child() -> Any:
    return {"inner": counter(value="many")}


@pattern
def raising_child() -> Any:
    return {"inner": explodes()}


@pattern
def raises_after_child() -> Any:
    counter(value=3)
    raise ValueError("the parent's bug")


@pytest.mark.parametrize(
    ("pat", "error", "needle"),
    [
        (bad_child, SchemaError, "'value'"),
        (raising_child, ValueError, "the child's bug"),
        (raises_after_child, ValueError, "the parent's bug"),
    ],
    ids=["bad-child-input", "child-raises", "parent-raises-after-child"],
)
async def test_a_failed_create_leaves_no_child(
    runtime: Runtime, pat: Pattern, error: type[Exception], needle: str
) -> None:
    space = runtime.create_space(name="clean")
    before = runtime.storage.head(space, runtime.principal)
    with pytest.raises(error, match=needle):
        await runtime.charms.create(pat, space=space)
    await runtime.idle()
    assert runtime.storage.head(space, runtime.principal) == before
    assert runtime.charms.list(space) == []


async def test_only_the_parent_is_listed(runtime: Runtime) -> None:
    charm, _bound, _own = await make_dashboard(runtime)
    assert [info.id for info in runtime.charms.list(charm.space)] == [charm.id]


async def test_remove_takes_the_children_with_it(runtime: Runtime) -> None:
    charm, bound, own = await make_dashboard(runtime)
    assert (await own.stream("adjust").call({"amount": "x"})).ok is False  # an error cell
    children_docs = [
        doc
        for child in (bound, own)
        for doc in (
            child.argument.address,
            child.internal.address,
            child.result.address,
            *(action.output for action in child.unit.actions),
        )
    ] + [own.unit.error_address]
    assert all(runtime.read(doc) is not None for doc in children_docs)

    with pytest.raises(PatternError, match=f"child of charm {charm.id}"):
        await runtime.charms.remove(charm.space, own.id)
    assert own.unit.started

    await runtime.charms.remove(charm.space, charm.id)
    assert [runtime.read(doc) for doc in children_docs] == [None] * len(children_docs)
    assert not bound.unit.started and not own.unit.started
    with pytest.raises(NotAStreamError):
        own.stream("adjust").send({"amount": 1})
    with pytest.raises(CharmNotFoundError):
        await runtime.charms.get(charm.space, own.id)
    assert runtime.charms.list(charm.space) == []


# --- restart ----------------------------------------------------------------------------


async def test_children_survive_a_restart(open_runtime: OpenRuntime) -> None:
    first = await open_runtime()
    charm, bound, own = await make_dashboard(first)
    assert (await charm.stream("adjust").call({"amount": 2})).ok
    assert (await own.stream("adjust").call({"amount": 5})).ok
    await first.idle()
    own_adjust = own.stream("adjust").address
    await first.close()

    second = await open_runtime()
    assert [info.id for info in second.charms.list(charm.space)] == [charm.id]
    again = await second.charms.get(charm.space, own.id)  # a child first: its parent loads
    assert again.parent is not None and again.parent.id == charm.id
    parent = again.parent
    assert [c.id for c in parent.children] == [bound.id, own.id]
    assert (again["value"].get(), parent["total"].get(), parent["quadrupled"].get()) == (15, 3, 12)
    assert (await parent.stream("adjust").call({"amount": 1})).ok
    assert (await again.stream("adjust").call({"amount": 1})).ok
    await second.idle()
    assert (parent["quadrupled"].get(), parent["own_doubled"].get()) == (16, 32)
    await second.close()

    third = await open_runtime()  # an event to a child's stream starts the whole charm
    assert (await Stream[Any](third, own_adjust).call({"amount": 4}, timeout=1)).ok
    await third.idle()
    loaded = await third.charms.get(charm.space, charm.id)
    assert loaded["own_doubled"].get() == 40
    assert loaded.children[1]["value"].get() == 20


@pattern
def pair(start: Default[int, 0]) -> Any:
    left = counter(value=start)
    return {"left": left, "adjust_left": left["adjust"]}


@pattern
def board() -> Any:
    score = cell(5, name="score")
    inner = pair(start=score)
    return {
        "score": score,
        "inner": inner,
        "adjust": inner["adjust_left"],
        "label": derive(inner["left"]["doubled"], lambda d: f"{d} points"),
    }


async def test_nested_children_work_and_survive_a_restart(open_runtime: OpenRuntime) -> None:
    first = await open_runtime()
    charm = await first.charms.create(board)
    (middle,) = charm.children
    (leaf,) = middle.children
    record = leaf.internal.get()["$charm"]
    assert (record["parent"], record["root"]) == (middle.id, charm.id)
    assert charm["label"].get() == "10 points"
    assert (await charm.stream("adjust").call({"amount": 3})).ok  # the grandchild's handler
    await first.idle()
    assert (charm["score"].get(), leaf["value"].get(), charm["label"].get()) == (
        8,
        8,
        "16 points",
    )
    await first.close()

    second = await open_runtime()
    again = await second.charms.get(charm.space, leaf.id)
    root = again.parent.parent if again.parent else None
    assert root is not None and root.id == charm.id
    assert (await root.stream("adjust").call({"amount": 1})).ok
    await second.idle()
    assert (root["score"].get(), root["label"].get()) == (9, "18 points")

    await second.charms.remove(root.space, root.id)
    assert second.read(again.result.address) is None
    assert second.read(again.unit.actions[0].output) is None


# --- recursion --------------------------------------------------------------------------


@pattern
def ouroboros() -> Any:
    return {"tail": ouroboros()}


@pattern
def ping() -> Any:
    return {"pong": pong()}


@pattern
def pong() -> Any:
    return {"ping": ping()}


@pytest.mark.parametrize(
    ("pat", "cycle"),
    [(ouroboros, "ouroboros → ouroboros"), (ping, "ping → pong → ping")],
    ids=["self", "mutual"],
)
async def test_a_pattern_calling_itself_is_refused(
    runtime: Runtime, pat: Pattern, cycle: str
) -> None:
    space = runtime.create_space(name="loops")
    before = runtime.storage.head(space, runtime.principal)
    with pytest.raises(PatternError, match="calls itself") as info:
        await runtime.charms.create(pat, space=space)
    assert cycle in str(info.value)
    assert runtime.storage.head(space, runtime.principal) == before


def tower(height: int) -> Pattern:
    """A new pattern object per floor: recursion the cycle check cannot see."""

    @pattern(name=f"floor{height}")
    def floor() -> Any:
        return {"up": tower(height - 1)() if height > 1 else "roof", "height": height}

    return floor


async def test_nesting_is_capped_at_16(runtime: Runtime) -> None:
    charm = await runtime.charms.create(tower(16))
    top = charm
    while top.children:
        (top,) = top.children
    assert top.get() == {"up": "roof", "height": 1}
    with pytest.raises(PatternError, match="more than 16 deep") as info:
        await runtime.charms.create(tower(17))
    assert "floor17 → floor16" in str(info.value)
