"""Links: reads follow them across spaces, redirect links forward writes, bad links fail clearly."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import LinkError
from charmspace.runtime import Address, Cell, is_link, link_to
from charmspace.runtime.transaction import MAX_HOPS
from charmspace.storage import entity_id
from charmspace.types import JSONValue, SpaceDID
from charmspace.values import MAX_DEPTH, freeze


def doc(runtime: Runtime, space: SpaceDID, name: str) -> Cell[Any]:
    return runtime.cell(space, entity_id({"test": name}))


def raw(cell: Cell[Any]) -> JSONValue:
    """The stored document, links not followed."""
    runtime = cell.runtime
    return runtime.storage.read(cell.space, cell.address.id, runtime.principal).value


async def put_raw(cell: Cell[Any], value: Any) -> None:
    """Store ``value`` as the whole document, bypassing link-following on write."""
    async with cell.runtime.edit() as tx:
        tx.write_doc(cell.space, cell.address.id, freeze(value))


async def put(cell: Cell[Any], value: Any) -> None:
    async with cell.runtime.edit():
        cell.set(value)


@pytest.fixture
def token(runtime: Runtime, space: SpaceDID) -> Cell[Any]:
    """A cell in the home space, holding a token."""
    return doc(runtime, space, "token")


# --- reading through links --------------------------------------------------------------


async def test_link_across_spaces_reads_through(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID, token: Cell[Any]
) -> None:
    await put(token, {"access": "t1", "expires": 10})
    alias = doc(runtime, other_space, "alias")
    await put_raw(alias, link_to(token.address))
    assert alias.get() == {"access": "t1", "expires": 10}
    assert alias["access"].get() == "t1"
    await put(token, {"access": "t2", "expires": 20})
    assert alias.get() == {"access": "t2", "expires": 20}


async def test_link_with_a_path_reads_the_value_there(
    runtime: Runtime, other_space: SpaceDID, token: Cell[Any]
) -> None:
    await put(token, {"auth": {"access": "t1"}})
    alias = doc(runtime, other_space, "alias")
    await put_raw(alias, link_to(token.address.key("auth")))
    assert alias.get() == {"access": "t1"}
    assert alias["access"].get() == "t1"


async def test_links_nested_in_values_are_resolved_on_read(
    runtime: Runtime, other_space: SpaceDID, token: Cell[Any]
) -> None:
    await put(token, {"access": "t1"})
    holder = doc(runtime, other_space, "holder")
    await put_raw(holder, {"auth": link_to(token.address), "list": [link_to(token.address)]})
    assert holder.get() == {"auth": {"access": "t1"}, "list": [{"access": "t1"}]}
    assert holder["list"][0]["access"].get() == "t1"


async def test_link_to_a_missing_key_reads_none(
    runtime: Runtime, other_space: SpaceDID, token: Cell[Any]
) -> None:
    await put(token, {"access": "t1"})
    alias = doc(runtime, other_space, "alias")
    await put_raw(alias, link_to(token.address.key("missing")))
    assert alias.get() is None


async def test_deeply_nested_plain_values_are_not_mistaken_for_links(
    runtime: Runtime, space: SpaceDID
) -> None:
    """Regression: nesting depth (not link hops) counted towards the link limit."""
    assert MAX_DEPTH > MAX_HOPS
    deep: Any = "bottom"
    for level in range(MAX_DEPTH):  # as deep as values may nest: more than MAX_HOPS
        deep = {"down": deep} if level % 2 else [deep]
    cell = doc(runtime, space, "deep")
    await put(cell, deep)
    assert cell.get() == deep


# --- writing through links ---------------------------------------------------------------


async def test_redirect_link_forwards_writes(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID, token: Cell[Any]
) -> None:
    await put(token, {"access": "t1"})
    bound = doc(runtime, space, "bound")
    await put_raw(bound, link_to(token.address, redirect=True))
    async with runtime.edit() as tx:
        bound.set({"access": "t2"})
        bound["expires"].set(5)
    assert token.get() == {"access": "t2", "expires": 5}
    assert is_link(raw(bound))
    assert tx.result is not None and tx.result.space == space


async def test_redirect_link_in_another_space_writes_that_space(
    runtime: Runtime, space: SpaceDID, other_space: SpaceDID, token: Cell[Any]
) -> None:
    bound = doc(runtime, other_space, "bound")
    await put_raw(bound, link_to(token.address, redirect=True))
    async with runtime.edit() as tx:
        bound.set({"access": "t9"})
    assert tx.result is not None and tx.result.space == space
    assert token.get() == {"access": "t9"}
    assert is_link(raw(bound))


async def test_plain_link_at_the_end_of_a_path_is_replaced_by_a_write(
    runtime: Runtime, other_space: SpaceDID, token: Cell[Any]
) -> None:
    await put(token, {"access": "t1"})
    alias = doc(runtime, other_space, "alias")
    await put_raw(alias, {"auth": link_to(token.address)})
    async with runtime.edit():
        alias["auth"].set("mine now")
    assert raw(alias) == {"auth": "mine now"}
    assert token.get() == {"access": "t1"}


async def test_plain_link_in_the_middle_of_a_path_is_followed_by_a_write(
    runtime: Runtime, space: SpaceDID, token: Cell[Any]
) -> None:
    await put(token, {"access": "t1"})
    alias = doc(runtime, space, "alias")
    await put_raw(alias, {"auth": link_to(token.address)})
    async with runtime.edit():
        alias["auth"]["access"].set("t2")
    assert token.get() == {"access": "t2"}
    assert is_link(raw(alias)["auth"])  # type: ignore[index]


async def test_setting_a_cell_to_another_cell_stores_a_link(
    runtime: Runtime, space: SpaceDID, token: Cell[Any]
) -> None:
    await put(token, {"access": "t1"})
    ref = doc(runtime, space, "ref")
    async with runtime.edit():
        ref.set(token)
        ref2 = doc(runtime, space, "ref2")
        ref2.set({"auth": token["access"]})
    assert raw(ref) == link_to(token.address)
    assert raw(ref2) == {"auth": link_to(token.address.key("access"))}
    await put(token, {"access": "t2"})
    assert ref.get() == {"access": "t2"}
    assert ref2.get() == {"auth": "t2"}


# --- bad links ---------------------------------------------------------------------------


async def test_link_cycle_is_a_link_error(runtime: Runtime, space: SpaceDID) -> None:
    x, y = doc(runtime, space, "x"), doc(runtime, space, "y")
    await put_raw(x, link_to(y.address))
    await put_raw(y, link_to(x.address))
    with pytest.raises(LinkError, match="cycle"):
        x.get()
    with pytest.raises(LinkError, match="cycle"):
        y["deeper"].get()


async def test_link_to_itself_is_a_cycle(runtime: Runtime, space: SpaceDID) -> None:
    x = doc(runtime, space, "x")
    await put_raw(x, link_to(x.address))
    with pytest.raises(LinkError, match="cycle"):
        x.get()


async def test_redirect_cycle_on_write_is_a_link_error(runtime: Runtime, space: SpaceDID) -> None:
    x, y = doc(runtime, space, "x"), doc(runtime, space, "y")
    await put_raw(x, link_to(y.address, redirect=True))
    await put_raw(y, link_to(x.address, redirect=True))
    head = runtime.storage.head(space, runtime.principal)
    with pytest.raises(LinkError, match="cycle"):
        async with runtime.edit():
            x.set(1)
    assert runtime.storage.head(space, runtime.principal) == head


async def test_value_containing_itself_through_links_is_a_cycle(
    runtime: Runtime, space: SpaceDID
) -> None:
    x, y = doc(runtime, space, "x"), doc(runtime, space, "y")
    await put_raw(x, {"y": link_to(y.address)})
    await put_raw(y, {"x": link_to(x.address)})
    with pytest.raises(LinkError, match="cycle"):
        x.get()
    assert raw(x) == {"y": link_to(y.address)}


async def test_links_within_one_value_to_a_sibling_are_not_a_cycle(
    runtime: Runtime, space: SpaceDID
) -> None:
    x = doc(runtime, space, "x")
    await put_raw(
        x, {"a": {"n": 1}, "b": link_to(x.address.key("a")), "c": link_to(x.address.key("a"))}
    )
    assert x.get() == {"a": {"n": 1}, "b": {"n": 1}, "c": {"n": 1}}


async def test_too_many_hops_is_a_link_error(runtime: Runtime, space: SpaceDID) -> None:
    cells = [doc(runtime, space, f"hop {i}") for i in range(MAX_HOPS + 2)]
    async with runtime.edit() as tx:
        tx.write_doc(space, cells[-1].address.id, freeze("end"))
        for here, there in itertools.pairwise(cells):
            tx.write_doc(space, here.address.id, link_to(there.address))
    assert cells[1].get() == "end"  # MAX_HOPS links: fine
    with pytest.raises(LinkError, match=f"more than {MAX_HOPS} links"):
        cells[0].get()


@pytest.mark.parametrize(
    "bad",
    [
        {"/": {"link@1": "not an object"}},
        {"/": {"link@1": {"id": 5}}},
        {"/": {"link@1": {"id": "of:x", "path": [True]}}},
        {"/": {"link@1": {"id": "of:x", "path": "a/b"}}},
    ],
)
async def test_malformed_link_is_a_link_error(runtime: Runtime, space: SpaceDID, bad: Any) -> None:
    x = doc(runtime, space, "x")
    await put_raw(x, bad)
    with pytest.raises(LinkError):
        x.get()
    with pytest.raises(LinkError):
        async with runtime.edit():
            x["below"].set(1)


async def test_link_into_a_space_that_does_not_exist_is_a_link_error(
    runtime: Runtime, space: SpaceDID
) -> None:
    nowhere = Address("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "of:gone")
    x = doc(runtime, space, "x")
    await put_raw(x, {"auth": link_to(nowhere, redirect=True)})
    with pytest.raises(LinkError, match="does not exist"):
        x.get()
    with pytest.raises(LinkError, match="does not exist"):
        x["auth"].get()
    with pytest.raises(LinkError, match="does not exist"):
        async with runtime.edit():
            x["auth"].set(1)
