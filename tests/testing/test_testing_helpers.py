"""charmspace.testing: the helpers users write their own charm tests with."""

from __future__ import annotations

from charmspace.library.counter import counter
from charmspace.runtime import FakeClock
from charmspace.testing import test_runtime as make_runtime


async def test_a_user_can_test_a_charm_in_a_few_lines(storage_url: str) -> None:
    async with make_runtime(storage_url) as runtime:
        charm = await runtime.charms.create(counter, inputs={"value": 1})
        await charm.stream("adjust").call({"amount": 2})
        await runtime.idle()
        assert charm["value"].get() == 3
        assert charm["doubled"].get() == 6
        assert isinstance(runtime.clock, FakeClock)


async def test_the_same_user_name_gives_the_same_identity() -> None:
    # in memory only: identities do not depend on the store
    async with make_runtime(user="alice") as one, make_runtime(user="alice") as two:
        assert one.principal == two.principal
