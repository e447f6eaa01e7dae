"""Favorites: a user's starred charms, with their tags as of the moment they were starred."""

from __future__ import annotations

from typing import Any

import pytest

from charmspace import Runtime
from charmspace.identity import Identity
from charmspace.library.counter import counter
from charmspace.patterns import Favorites, pattern, wish
from charmspace.runtime.address import link_to


@pattern(tags=["#googleAuth"])
def auth() -> Any:
    """Signs in. #oauth"""
    return {"token": "t"}


async def test_add_list_and_remove(runtime: Runtime) -> None:
    favorites = runtime.favorites()
    assert isinstance(favorites, Favorites)
    assert favorites.user == runtime.principal
    assert favorites.list() == []
    a = await runtime.charms.create(counter)
    b = await runtime.charms.create(auth, space=runtime.create_space(name="auth"))
    await favorites.add(a)
    await favorites.add(b)
    assert favorites.list() == [
        {
            "id": a.id,
            "space": a.space,
            "name": "counter",
            "tags": ["#counter"],
            "charm": link_to(a.result.address),
        },
        {
            "id": b.id,
            "space": b.space,
            "name": "auth",
            "tags": ["#googleAuth", "#oauth"],
            "charm": link_to(b.result.address),
        },
    ]
    await favorites.remove(a)
    assert [e["id"] for e in favorites.list()] == [b.id]
    await favorites.remove(a)  # not a favorite any more: nothing happens
    assert [e["id"] for e in favorites.list()] == [b.id]


async def test_favoriting_twice_does_not_duplicate(runtime: Runtime) -> None:
    charm = await runtime.charms.create(counter)
    head = None
    for _ in range(3):
        await runtime.favorites().add(charm)
        now = runtime.storage.head(runtime.principal, runtime.principal)
        assert head is None or now == head  # the repeats commit nothing
        head = now
    assert [e["id"] for e in runtime.favorites().list()] == [charm.id]


async def test_tags_are_captured_when_favorited(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    charm = await runtime.charms.create(auth)
    await runtime.favorites().add(charm)
    monkeypatch.setattr(auth, "tags", ("#somethingElse",))
    assert charm.tags == ("#somethingElse",)
    assert runtime.favorites().list()[0]["tags"] == ["#googleAuth", "#oauth"]

    @pattern
    def seeker() -> Any:
        return {"found": wish("#googleAuth")}

    found = await runtime.charms.create(seeker, space=runtime.create_space(name="seek"))
    assert found["found"]["result"].get() == {"token": "t"}


async def test_favorites_are_per_user(runtime: Runtime) -> None:
    charm = await runtime.charms.create(counter)
    other = Identity.from_passphrase("favorites: someone else").did
    await runtime.favorites().add(charm)
    assert runtime.favorites(other).list() == []
    await runtime.favorites(other).remove(charm)  # no home space yet: nothing happens
    assert not runtime.storage.has_space(other)
