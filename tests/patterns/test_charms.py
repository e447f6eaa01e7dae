"""``runtime.charms``: create, get, list, remove, link — and charms surviving a restart."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import (
    AuthorizationError,
    CharmNotFoundError,
    InputLinkError,
    NotACharmError,
    NotAStreamError,
    PatternError,
    RuntimeClosedError,
    SchemaError,
    UnknownCellError,
    WriteIsolationError,
)
from charmspace.identity import Identity
from charmspace.library.counter import counter
from charmspace.patterns import Charm, CharmInfo, Default, cell, derive, handler, pattern, wish
from charmspace.runtime import Cell, Stream
from charmspace.storage import Capability

OpenRuntime = Callable[[], Awaitable[Runtime]]

# --- create, get, list, remove ---------------------------------------------------------


async def test_create_returns_a_started_charm(runtime: Runtime) -> None:
    charm = await runtime.charms.create(counter, inputs={"value": 4})
    assert charm.space == runtime.principal
    assert charm.name == "counter"
    assert charm.pattern is counter
    assert charm.argument.get() == {"value": 4}
    assert charm["doubled"].get() == 8
    assert charm.result.get()["adjust"] == {"$stream": True}
    assert charm.internal.get()["$charm"]["import"] == "charmspace.library.counter:counter"
    assert (await charm.stream("adjust").call({"amount": 1})).ok
    await runtime.idle()
    assert charm.get()["doubled"] == 10


async def test_get_list_and_remove(runtime: Runtime) -> None:
    space = runtime.create_space(name="mine")
    a = await runtime.charms.create(counter, space=space)
    b = await runtime.charms.create("counter", space=space, inputs={"value": 2})
    assert await runtime.charms.get(space, a.id) is a
    listed = runtime.charms.list(space)
    assert sorted(info.id for info in listed) == sorted([a.id, b.id])
    assert all(isinstance(info, CharmInfo) and info.pattern == "counter" for info in listed)
    assert runtime.charms.list() == []  # the home space has none
    stream = a.stream("adjust")

    await runtime.charms.remove(space, a.id)
    assert [info.id for info in runtime.charms.list(space)] == [b.id]
    with pytest.raises(CharmNotFoundError) as info:
        await runtime.charms.get(space, a.id)
    assert (info.value.space, info.value.charm_id) == (space, a.id)
    with pytest.raises(NotAStreamError):
        stream.send({"amount": 1})
    assert b["value"].get() == 2


async def test_list_reads_as_the_principal_it_names(runtime: Runtime) -> None:
    space = runtime.create_space(name="mine")
    charm = await runtime.charms.create(counter, space=space)
    bob = Identity.from_passphrase("patterns suite: bob")
    with pytest.raises(AuthorizationError):
        runtime.charms.list(space, principal=bob.did)
    runtime.storage.set_acl(space, runtime.principal, bob.did, Capability.READ)
    assert [info.id for info in runtime.charms.list(space, principal=bob.did)] == [charm.id]


async def test_remove_deletes_derived_values_too(runtime: Runtime) -> None:
    """Regression: remove() left the derived documents (copies of the charm's data) behind."""
    charm = await runtime.charms.create(counter, inputs={"value": 21})
    assert (await charm.stream("adjust").call({"amount": "x"})).ok is False  # an error cell
    documents = [a.output for a in charm.unit.actions] + [charm.unit.error_address]
    assert 42 in [runtime.read(d) for d in documents]
    await runtime.charms.remove(charm.space, charm.id)
    assert [runtime.read(d) for d in documents] == [None] * len(documents)
    assert runtime.charms.list() == []


async def test_get_of_an_unknown_charm(runtime: Runtime) -> None:
    with pytest.raises(CharmNotFoundError):
        await runtime.charms.get(runtime.principal, "of:nothing")
    with pytest.raises(CharmNotFoundError):
        await runtime.charms.get(runtime.create_space(name="empty"), "of:nothing")


# --- a failed create leaves nothing behind ---------------------------------------------


@pattern
def strict(count: int, label: Default[str, "x"]) -> Any:
    return {"count": count, "label": label}


@pattern
def explodes(value: Default[int, 0]) -> Any:
    derive(value, lambda v: v)
    raise ValueError("the pattern author's bug")


@pytest.mark.parametrize(
    ("pat", "inputs", "error", "needles"),
    [
        (strict, {"count": "many"}, SchemaError, ["'count'", "pattern strict"]),
        (strict, {}, SchemaError, ["'count'", "pattern strict", "required"]),
        (strict, {"count": 1, "colour": "red"}, SchemaError, ["'colour'", "count, label"]),
        (explodes, {}, ValueError, ["the pattern author's bug"]),
    ],
    ids=["bad-input", "missing-input", "unknown-input", "pattern-raises"],
)
async def test_a_failed_create_leaves_no_charm(
    runtime: Runtime, pat: Any, inputs: dict[str, Any], error: type[Exception], needles: list[str]
) -> None:
    space = runtime.create_space(name="clean")
    before = runtime.storage.head(space, runtime.principal)
    untouched = runtime.identity.derive("never-used").did
    for where in (space, untouched):
        with pytest.raises(error) as info:
            await runtime.charms.create(pat, space=where, inputs=inputs)
        for needle in needles:
            assert needle in str(info.value)
    assert runtime.charms.list(space) == []
    assert runtime.storage.head(space, runtime.principal) == before
    assert not runtime.storage.has_space(untouched)
    await runtime.idle()
    assert runtime.storage.head(space, runtime.principal) == before


async def test_a_schema_error_carries_the_input_path(runtime: Runtime) -> None:
    with pytest.raises(SchemaError) as info:
        await runtime.charms.create(strict, inputs={"count": "many"})
    assert info.value.path == ("count",)


# --- which patterns ---------------------------------------------------------------------


async def test_an_unknown_pattern_name_lists_the_installed_ones(runtime: Runtime) -> None:
    with pytest.raises(PatternError) as info:
        await runtime.charms.create("no_such_pattern")
    assert "'no_such_pattern'" in str(info.value)
    assert "counter" in str(info.value)
    assert "notes" in str(info.value)


async def test_module_function_names(runtime: Runtime) -> None:
    charm = await runtime.charms.create("charmspace.library.counter:counter")
    assert charm.pattern is counter
    with pytest.raises(PatternError, match="cannot be imported"):
        await runtime.charms.create("charmspace.no_such_module:counter")
    with pytest.raises(PatternError, match="is not a pattern"):
        await runtime.charms.create("charmspace.library.counter:adjust")
    with pytest.raises(PatternError, match="is not a pattern"):
        await runtime.charms.create("charmspace.library.counter:nothing")


async def test_create_needs_a_pattern(runtime: Runtime) -> None:
    with pytest.raises(PatternError, match="is not a pattern"):
        await runtime.charms.create(lambda: {})  # type: ignore[arg-type]
    with pytest.raises(PatternError, match="non-empty string"):
        await runtime.charms.create("")


# --- restart ----------------------------------------------------------------------------


async def test_charms_survive_a_restart(open_runtime: OpenRuntime) -> None:
    first = await open_runtime()
    space = first.create_space(name="restart")
    charm = await first.charms.create(counter, space=space, inputs={"value": 1})
    other = await first.charms.create(counter, space=space)
    assert (await charm.stream("adjust").call({"amount": 4})).ok
    await first.idle()
    assert charm["doubled"].get() == 10
    await first.close()

    second = await open_runtime()
    assert sorted(i.id for i in second.charms.list(space)) == sorted([charm.id, other.id])
    again = await second.charms.get(space, charm.id)
    assert again.get() == {**charm_result(5)}
    assert (await again.stream("adjust").call({"amount": 1})).ok
    await second.idle()
    assert again["value"].get() == 6
    assert again["doubled"].get() == 12
    assert again[NAME_KEY].get() == "Counter: 6"


NAME_KEY = "$NAME"


def charm_result(value: int) -> dict[str, Any]:
    return {
        "$NAME": f"Counter: {value}",
        "value": value,
        "doubled": value * 2,
        "adjust": {"$stream": True},
        "increment": {"$stream": True},
        "$UI": {
            "type": "vnode",
            "name": "div",
            "props": {},
            "children": [
                {"type": "vnode", "name": "span", "props": {"id": "value"}, "children": [value]},
                {
                    "type": "vnode",
                    "name": "button",
                    "props": {"id": "inc", "on_click": {"$stream": True}},
                    "children": ["+1"],
                },
            ],
        },
    }


@handler
def tally(event: dict[str, Any], *, count: Cell[int], step: int) -> None:
    count.set(count.get() + step)


@pattern(tags=["#tally"])
def tallying() -> Any:
    count = cell(0, name="count")
    return {
        "count": count,
        "label": derive(count, lambda c: f"{c} so far"),
        "add": tally.bind(count=count, step=2),
    }


@pattern
def looking() -> Any:
    return {"found": wish("#tally")}


async def test_internal_cells_and_wishes_survive_a_restart(open_runtime: OpenRuntime) -> None:
    first = await open_runtime()
    counted = await first.charms.create(tallying, space=first.create_space(name="tally"))
    await first.favorites().add(counted)
    looker = await first.charms.create(looking)
    assert (await counted.stream("add").call({})).ok
    await first.idle()
    assert looker["found"]["result"]["label"].get() == "2 so far"
    await first.close()

    second = await open_runtime()
    again = await second.charms.get(counted.space, counted.id)
    assert (again["count"].get(), again["label"].get()) == (2, "2 so far")
    assert (await again.stream("add").call({})).ok
    await second.idle()
    assert again["label"].get() == "4 so far"
    seen = await second.charms.get(looker.space, looker.id)
    assert seen["found"]["result"]["label"].get() == "4 so far"


async def test_an_event_to_a_charm_not_yet_loaded_starts_it(open_runtime: OpenRuntime) -> None:
    first = await open_runtime()
    charm = await first.charms.create(counter, inputs={"value": 2})
    address = charm.stream("adjust").address
    result_address = charm.result.address
    await first.close()

    second = await open_runtime()
    result = await Stream[Any](second, address).call({"amount": 3}, timeout=1)
    assert result.ok, result.error
    await second.idle()
    assert Cell(second, result_address).get()["doubled"] == 10
    loaded = await second.charms.get(charm.space, charm.id)
    assert loaded["value"].get() == 5


async def test_a_changed_source_keeps_the_data(
    open_runtime: OpenRuntime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    first = await open_runtime()
    charm = await first.charms.create(counter, inputs={"value": 7})
    await first.close()

    monkeypatch.setattr(counter, "source_hash", "0123456789abcdef")
    second = await open_runtime()
    with caplog.at_level(logging.INFO, logger="charmspace.patterns.charms"):
        again = await second.charms.get(charm.space, charm.id)
    assert "pattern counter changed" in caplog.text
    assert again["value"].get() == 7
    assert again["doubled"].get() == 14
    assert again.internal.get()["$charm"]["source_hash"] == "0123456789abcdef"


async def test_start_all_starts_every_charm_of_a_space(open_runtime: OpenRuntime) -> None:
    first = await open_runtime()
    space = first.create_space(name="boot")
    ids = {(await first.charms.create(counter, space=space)).id for _ in range(3)}
    await first.close()
    second = await open_runtime()
    started = await second.charms.start_all(space)
    assert {c.id for c in started} == ids
    assert all(c.unit.started for c in started)


# --- link -------------------------------------------------------------------------------


@handler
def overwrite(event: int, *, value: Cell[int], log: Cell[list[str]]) -> None:
    log.push("tried")
    value.set(event)


@pattern
def follower(value: Default[int, 0], log: Default[list[str], []]) -> Any:
    return {
        "value": value,
        "log": log,
        "tripled": derive(value, lambda v: v * 3),
        "overwrite": overwrite.bind(value=value, log=log),
    }


async def linked_pair(runtime: Runtime) -> tuple[Charm, Charm]:
    source = await runtime.charms.create(
        counter, space=runtime.create_space(name="source"), inputs={"value": 2}
    )
    target = await runtime.charms.create(follower, space=runtime.create_space(name="target"))
    assert source.space != target.space
    await runtime.charms.link(source["value"], target, "value")
    await runtime.idle()
    return source, target


async def test_link_across_spaces_makes_data_flow_live(runtime: Runtime) -> None:
    source, target = await linked_pair(runtime)
    assert target["tripled"].get() == 6
    assert (await source.stream("adjust").call({"amount": 3})).ok
    await runtime.idle()
    assert target["value"].get() == 5
    assert target["tripled"].get() == 15


async def test_writing_a_linked_input_of_another_space_is_refused(runtime: Runtime) -> None:
    source, target = await linked_pair(runtime)
    result = await target.stream("overwrite").call(99)
    assert not result.ok
    assert isinstance(result.error, WriteIsolationError)
    assert result.error.requested == source.space
    assert source["value"].get() == 2
    assert target["log"].get() == []


async def test_a_link_that_leads_back_to_the_input_is_refused(runtime: Runtime) -> None:
    """Regression: linking a charm's input to itself, or to the charm's whole result
    (which holds the input), committed, and then every read of the charm failed."""
    charm = await runtime.charms.create(counter, inputs={"value": 4})
    await runtime.idle()
    for source in (charm["value"], charm):
        with pytest.raises(InputLinkError, match="so nothing was linked") as refused:
            await runtime.charms.link(source, charm, "value")
        assert refused.value.charm_id == charm.id
        assert refused.value.input == "value"
        assert "cycle" in refused.value.reason
    assert charm["value"].get() == 4
    assert (await charm.stream("increment").call({})).ok
    await runtime.idle()
    assert charm["doubled"].get() == 10


async def test_link_a_whole_charm_and_unknown_inputs(runtime: Runtime) -> None:
    @pattern
    def viewer(shown: Default[dict[str, Any], {}]) -> Any:
        return {"shown": shown, "name": derive(shown, lambda s: s.get("$NAME"))}

    source = await runtime.charms.create(counter, inputs={"value": 1})
    target = await runtime.charms.create(viewer)
    await runtime.charms.link(source, target, "shown")
    await runtime.idle()
    assert target["name"].get() == "Counter: 1"
    with pytest.raises(PatternError, match="has no input 'nope'"):
        await runtime.charms.link(source, target, "nope")


async def test_a_closed_runtime_refuses_new_work_alike_on_every_backend(runtime: Runtime) -> None:
    """Regression: in memory, a runtime after ``close()`` still created spaces and
    charms and committed edits (never to run them); on SQLite the same calls failed
    with "the storage is closed", which did not say what to do."""
    charm = await runtime.charms.create(counter, inputs={"value": 1})
    await runtime.close()
    refused = [
        ("create a space", lambda: runtime.create_space(name="later")),
        ("start an edit", lambda: runtime.edit()),
    ]
    for action, call in refused:
        with pytest.raises(RuntimeClosedError, match=f"cannot {action}; nothing was done"):
            call()
    awaited = [
        ("create a charm", runtime.charms.create(counter)),
        ("load a charm", runtime.charms.get(charm.space, charm.id)),
        ("remove a charm", runtime.charms.remove(charm.space, charm.id)),
        ("add a favorite", runtime.favorites().add(charm)),
    ]
    for action, pending in awaited:
        with pytest.raises(RuntimeClosedError, match="Open a new Runtime") as error:
            await pending
        assert error.value.action == action


async def test_a_closed_runtime_refuses_reads_alike_on_every_backend(runtime: Runtime) -> None:
    """Regression: after ``close()``, reads on SQLite raised "The storage in X is
    closed." with nothing to do, and in memory they still answered."""
    charm = await runtime.charms.create(counter, inputs={"value": 1})
    value = charm["value"]
    await runtime.close()
    reads: list[tuple[str, Callable[[], object]]] = [
        ("list charms", lambda: runtime.charms.list()),
        ("list favorites", lambda: runtime.favorites().list()),
        (f"read {value.address}", value.get),
        (f"read {value.address}", value.sample),
        (f"read {value.address}", lambda: charm["value"].get()),
        (f"read {charm.result.address}", charm.get),
    ]
    for action, read in reads:
        with pytest.raises(RuntimeClosedError) as error:
            read()
        assert error.value.action == action
        assert str(error.value).startswith("The runtime is closed")
        assert "Open a new Runtime on the same storage" in str(error.value)


async def test_a_name_the_result_lacks_is_refused_with_the_names_it_has(runtime: Runtime) -> None:
    """Regression: ``charm["vaule"]`` was a cell that read None, and an edit through it
    added the typo to the charm's result."""
    charm = await runtime.charms.create(counter, inputs={"value": 2})
    with pytest.raises(UnknownCellError, match="has no 'vaule' in its result") as refused:
        charm["vaule"]
    assert refused.value.charm_id == charm.id
    assert "value" in refused.value.names and "doubled" in refused.value.names
    assert str(refused.value).endswith("Use one of those names.")
    with pytest.raises(KeyError):  # what code written for dicts catches
        charm["vaule"]
    assert charm["value"].get() == 2
    assert "vaule" not in charm.get()


async def test_a_charm_not_awaited_is_named_as_the_missing_await(runtime: Runtime) -> None:
    """Regression: passing ``charms.create(...)`` without ``await`` on to favorites or
    ``link`` failed with an AttributeError about ``.id`` or ``.address``."""
    charm = await runtime.charms.create(counter)
    for make_call in (
        lambda pending: runtime.favorites().add(pending),
        lambda pending: runtime.favorites().remove(pending),
        lambda pending: runtime.charms.link(pending, charm, "value"),
        lambda pending: runtime.charms.link(charm["value"], pending, "value"),
    ):
        pending = runtime.charms.create(counter)
        with pytest.raises(NotACharmError, match="Did you forget `await`") as refused:
            await make_call(pending)
        assert isinstance(refused.value, TypeError)
        assert refused.value.given == "coroutine"
        await pending  # what the caller meant to do first
    assert runtime.favorites().list() == []
