"""The bundled ``counter`` pattern, instantiated by name."""

from __future__ import annotations

import pytest

from charmspace import Runtime
from charmspace.errors import SchemaError
from charmspace.patterns import NAME, Charm


@pytest.fixture
async def counter(runtime: Runtime) -> Charm:
    return await runtime.charms.create("counter", inputs={"value": 3})


async def test_value_doubled_and_name(counter: Charm) -> None:
    assert counter["value"].get() == 3
    assert counter["doubled"].get() == 6
    assert counter[NAME].get() == "Counter: 3"
    assert counter.tags == ("#counter",)


async def test_default_value_is_zero(runtime: Runtime) -> None:
    charm = await runtime.charms.create("counter")
    assert (charm["value"].get(), charm["doubled"].get()) == (0, 0)


async def test_adjust_adds_the_amount(runtime: Runtime, counter: Charm) -> None:
    assert (await counter.stream("adjust").call({"amount": 4})).ok
    assert (await counter.stream("adjust").call({"amount": -10})).ok
    await runtime.idle()
    assert counter["value"].get() == -3
    assert counter["doubled"].get() == -6
    assert counter[NAME].get() == "Counter: -3"


async def test_adjust_rejects_a_bad_amount(runtime: Runtime, counter: Charm) -> None:
    result = await counter.stream("adjust").call({"amount": "two"})
    assert not result.ok
    assert isinstance(result.error, SchemaError)
    assert result.error.path == ("amount",)
    assert counter["value"].get() == 3


async def test_increment_adds_one_whatever_the_event(runtime: Runtime, counter: Charm) -> None:
    for event in ({}, {"type": "click", "target": {"value": "ignored"}}):
        assert (await counter.stream("increment").call(event)).ok
    await runtime.idle()
    assert counter["value"].get() == 5
    assert counter["doubled"].get() == 10


async def test_a_bad_initial_value_is_refused(runtime: Runtime) -> None:
    with pytest.raises(SchemaError, match="pattern counter"):
        await runtime.charms.create("counter", inputs={"value": "three"})
