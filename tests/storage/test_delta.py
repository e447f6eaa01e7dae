"""History as deltas: a write stores what changed, and every revision reads back exactly."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charmspace.identity import Identity
from charmspace.storage import DELETE, Commit, Storage, open_storage
from charmspace.storage.delta import diff, json_size, replay
from charmspace.types import JSONValue
from charmspace.values import dumps, extend, freeze, same, setpath, thaw

OWNER = Identity.from_passphrase("delta suite: owner").did
DOC = "of:doc"


def test_an_append_is_one_operation_holding_only_the_new_items() -> None:
    old = freeze([{"n": i} for i in range(100)])
    new = extend(old, [freeze({"n": 100})])  # type: ignore[arg-type]
    delta = diff(old, new)
    assert delta is not None
    assert delta.ops == [["a", [], [{"n": 100}]]]
    assert delta.size == json_size(new) - json_size(old)
    assert replay(dumps(old), [dumps(delta.ops)]) == new


def test_setting_one_key_of_a_large_object_is_one_operation() -> None:
    old = freeze({f"k{i}": {"v": i} for i in range(500)})
    new = setpath(old, ("k7", "v"), "seven")
    delta = diff(old, new)
    assert delta is not None
    assert delta.ops == [["s", ["k7", "v"], "seven"]]
    assert delta.size == json_size(new) - json_size(old)
    assert replay(dumps(old), [dumps(delta.ops)]) == new


def test_values_built_afresh_are_compared_by_identity_so_1_never_passes_for_1_0() -> None:
    """Regression guard: ``1 == 1.0 == True`` must not let a delta keep the old number."""
    old = freeze({"a": [1, 2], "b": "x" * 50})
    new = freeze({"a": [1.0, 2], "b": "x" * 50})
    delta = diff(old, new)
    assert delta is not None
    restored = replay(dumps(old), [dumps(delta.ops)])
    assert same(restored, new)
    assert dumps(restored) == dumps(new)


def test_added_and_removed_keys_count_their_commas() -> None:
    old = freeze({"a": 1, "b": 2})
    for new in (
        freeze({"a": 1}),
        freeze({"a": 1, "b": 2, "c": [3]}),
        freeze({"b": 2, "c": 3}),
        freeze({}),
    ):
        delta = diff(old, new)
        assert delta is not None
        assert delta.size == json_size(new) - json_size(old)
        assert same(replay(dumps(old), [dumps(delta.ops)]), new)


def test_pushes_to_a_large_list_grow_the_file_by_about_the_items(tmp_path: Path) -> None:
    with open_storage(f"sqlite:///{tmp_path}") as storage:
        storage.create_space(OWNER, OWNER)
        items = freeze(["x" * 100] * 500)  # 51 KB: 500 whole copies would be 25 MB
        storage.commit(Commit(OWNER, OWNER, {DOC: items}))
        for i in range(500):
            items = extend(items, [f"item {i} " + "y" * 90])  # type: ignore[arg-type]
            storage.commit(Commit(OWNER, OWNER, {DOC: items}))
    size = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert size < 2_000_000
    with open_storage(f"sqlite:///{tmp_path}") as storage:  # read back from the file
        assert storage.read(OWNER, DOC, OWNER).value == items
        assert storage.read(OWNER, DOC, OWNER, at=300).value == items[:799]


# --- every revision reads back as written, on both backends -------------------------------

SCALARS = st.one_of(
    st.sampled_from([0, 1, 1.0, True, False, None, "", "é"]),
    st.integers(-1000, 1000),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("push"), VALUES),
        st.tuples(st.just("key"), st.sampled_from(["a", "b", "c"]), VALUES),
        st.tuples(st.just("item"), st.integers(0, 50), VALUES),
        st.tuples(st.just("replace"), VALUES),
        st.tuples(st.just("delete"), st.none()),
        st.tuples(st.just("prune"), st.integers(0, 100)),
    ),
    min_size=1,
    max_size=40,
)


def initial() -> JSONValue:
    return freeze({"pad": "p" * 1100, "items": [], "meta": {}})  # past the size deltas start at


def step(doc: JSONValue, action: tuple[Any, ...]) -> JSONValue:
    """The next value of the document, made the way the runtime makes it (sharing what stays)."""
    kind = action[0]
    if doc is None:
        doc = initial()
    if kind == "push":
        return setpath(doc, ("items",), extend(doc["items"], [freeze(action[1])]))  # type: ignore[index, call-overload]
    if kind == "key":
        return setpath(doc, ("meta", action[1]), freeze(action[2]))
    if kind == "item":
        items = doc["items"]  # type: ignore[index, call-overload]
        if not items:
            return setpath(doc, ("items", 0), freeze(action[2]))
        return setpath(doc, ("items", action[1] % len(items)), freeze(action[2]))
    plain = thaw(doc)
    plain["meta"] = {"replaced": action[1]}  # type: ignore[index]
    return freeze(plain)  # built afresh: equal parts are not the same objects


def check_history(storage: Storage, written: dict[int, tuple[int, JSONValue, bool]]) -> None:
    horizon = storage.horizon(OWNER, OWNER)
    for seq, (wrote, value, deleted) in written.items():
        if seq < horizon:
            continue
        rev = storage.read(OWNER, DOC, OWNER, at=seq)
        assert (rev.seq, rev.deleted) == (wrote, deleted), seq
        assert same(rev.value, value), seq
        assert dumps(rev.value) == dumps(value), seq
    last = max(written)
    current = storage.read(OWNER, DOC, OWNER)
    assert current.seq == written[last][0]
    assert same(current.value, written[last][1])


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_every_revision_reads_back_exactly_including_after_pruning(
    backend: str, steps: list[tuple[Any, ...]]
) -> None:
    with tempfile.TemporaryDirectory(prefix="delta-") as tmp:
        url = "memory://" if backend == "memory" else f"sqlite:///{tmp}"
        storage = open_storage(url)
        try:
            storage.pruner.close()  # pruning happens where the steps say
            storage.create_space(OWNER, OWNER)
            doc: JSONValue = None
            written: dict[int, tuple[int, JSONValue, bool]] = {}
            for action in steps:
                if action[0] == "prune":
                    head = storage.head(OWNER, OWNER)
                    if head:
                        storage.prune(OWNER, OWNER, before=action[1] % (head + 1))
                    continue
                if action[0] == "delete":
                    if doc is None:
                        continue
                    seq = storage.commit(Commit(OWNER, OWNER, {DOC: DELETE}))
                    written[seq] = (seq, None, True)
                    doc = None
                    continue
                doc = step(doc, action)
                seq = storage.commit(Commit(OWNER, OWNER, {DOC: doc}))
                written[seq] = (seq, doc, False)
            if not written:
                return
            check_history(storage, written)
            if backend == "sqlite":  # again from the file, replaying the stored deltas
                storage.close()
                storage = open_storage(url)
                check_history(storage, written)
        finally:
            storage.close()


# --- through the runtime, and at the limits ------------------------------------------------


async def test_a_charm_pushing_to_a_long_list_stores_deltas_that_read_back_at_every_seq(
    storage_url: str,
) -> None:
    """A handler's ``push`` and ``key(...).set`` are stored as changes; history stays exact."""
    import random

    from charmspace import Runtime
    from charmspace.storage import entity_id

    user = Identity.from_passphrase("delta suite: user")
    runtime = Runtime(storage_url, identity=user, random=random.Random(0))
    try:
        space = runtime.create_space(name="log")
        id = entity_id({"test": "log"})
        cell = runtime.cell(space, id)
        async with runtime.edit():
            cell.set({"title": "log", "items": ["x" * 100] * 20})
        history = {}
        for i in range(60):
            async with runtime.edit():
                if i % 10 == 9:
                    cell.key("title").set(f"log after {i} pushes")
                else:
                    cell.key("items").push(f"entry {i}")
            history[runtime.storage.head(space, user.did)] = cell.get()
        for seq, value in history.items():
            assert runtime.storage.read(space, id, user.did, at=seq).value == value
        final = cell.get()
    finally:
        await runtime.close()
    assert len(final["items"]) == 74
    assert final["title"] == "log after 59 pushes"
    if storage_url.startswith("sqlite"):
        check_the_file(storage_url, space, id, user.did, final, history)


def check_the_file(
    url: str, space: str, id: str, reader: str, final: Any, history: dict[int, Any]
) -> None:
    """The space's file holds small deltas, and a fresh storage reads every revision back."""
    import sqlite3

    directory = Path(url.removeprefix("sqlite://"))
    [path] = [p for p in directory.glob("*.sqlite") if space.replace(":", "_") in p.name]
    db = sqlite3.connect(path)
    deltas, largest = db.execute(
        "SELECT sum(delta), max(length(value)) FILTER (WHERE delta = 1) FROM revisions"
    ).fetchone()
    db.close()
    assert deltas >= 50
    assert largest < 200  # one item or one key, never the list
    with open_storage(url) as storage:
        assert storage.read(space, id, reader).value == final
        for seq, value in history.items():
            assert storage.read(space, id, reader, at=seq).value == value


def test_a_push_past_the_document_limit_is_refused_and_writes_nothing(storage_url: str) -> None:
    from charmspace.errors import LimitExceededError
    from charmspace.storage import Limits

    with open_storage(storage_url, limits=Limits(max_document_bytes=3000)) as storage:
        storage.create_space(OWNER, OWNER)
        items = freeze(["x" * 98] * 25)  # 2,526 bytes of JSON: deltas from here on
        seq = storage.commit(Commit(OWNER, OWNER, {DOC: items}))
        items = extend(items, ["y" * 98] * 5)  # type: ignore[arg-type]
        with pytest.raises(LimitExceededError) as error:
            storage.commit(Commit(OWNER, OWNER, {DOC: items}))
        assert (error.value.actual, error.value.allowed) == (len(dumps(list(items))), 3000)
        assert storage.head(OWNER, OWNER) == seq
        assert storage.read(OWNER, DOC, OWNER).value == ["x" * 98] * 25
        fits = extend(storage.read(OWNER, DOC, OWNER).value, ["y" * 98] * 4)  # type: ignore[arg-type]
        storage.commit(Commit(OWNER, OWNER, {DOC: fits}))
        assert storage.read(OWNER, DOC, OWNER).value == fits


def test_keys_in_another_order_are_kept_in_that_order() -> None:
    """Regression: replaying set operations kept the old order of an object's keys."""
    old = freeze({"0": [], "": [], "pad": "x" * 50})
    new = freeze({"": [], "0": [], "pad": "x" * 50})
    delta = diff(old, new)
    restored = new if delta is None else replay(dumps(old), [dumps(delta.ops)])
    assert dumps(restored) == dumps(new)
    grown = setpath(old, ("new",), 1)  # a key added at the end keeps the order without a check
    delta = diff(old, grown)
    assert delta is not None
    assert dumps(replay(dumps(old), [dumps(delta.ops)])) == dumps(grown)
