"""quick_init: a frozen dataclass built through its slots behaves as the generated one."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field

import pytest

from charmspace.quick_init import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int = 0
    tags: dict[str, int] = field(default_factory=dict)
    size: int = field(default=-1, compare=False)


def test_arguments_defaults_and_factories_are_those_of_the_dataclass() -> None:
    assert Point(1) == Point(1, 0, {})
    assert (Point(1, 2).x, Point(1, 2).y, Point(x=3, y=4).y) == (1, 2, 4)
    assert Point(1, tags={"a": 1}).tags == {"a": 1}
    assert Point(1).tags is not Point(1).tags  # a fresh dict each time, as default_factory says
    assert Point(1, size=5) == Point(1)  # compare=False still holds
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, {}, 3, 4)  # type: ignore[call-arg]


def test_the_object_is_as_frozen_as_before() -> None:
    point = Point(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 2  # type: ignore[misc]
    assert dataclasses.replace(point, y=7) == Point(1, 7)
    assert pickle.loads(pickle.dumps(point)) == point
    assert repr(Point(1)) == "Point(x=1, y=0, tags={}, size=-1)"


def test_only_frozen_dataclasses_with_slots_are_accepted() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclass(slots=True)
    class NotFrozen:
        x: int

    @dataclass(frozen=True, slots=True)
    class PostInit:
        x: int

        def __post_init__(self) -> None:
            pass

    for cls in (NoSlots, NotFrozen, PostInit):
        with pytest.raises(TypeError):
            quick_init(cls)
