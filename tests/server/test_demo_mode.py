"""The demo's clock: wall time plus what the control route added; sleepers wake on a jump."""

from __future__ import annotations

import asyncio
import time

import pytest

from charmspace.server.demo import DemoClock, DemoWorld
from charmspace.server.settings import Settings


async def test_advancing_moves_now_and_wakes_a_sleeper_whose_deadline_passed() -> None:
    clock = DemoClock()
    before = clock.now()
    sleeper = asyncio.ensure_future(clock.sleep(60))
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    started = time.monotonic()
    await clock.advance(61)
    await asyncio.wait_for(sleeper, 1)
    assert time.monotonic() - started < 1
    assert clock.now() - before >= 61


async def test_a_short_advance_leaves_a_later_sleeper_asleep() -> None:
    clock = DemoClock()
    sleeper = asyncio.ensure_future(clock.sleep(60))
    await clock.advance(10)
    await asyncio.sleep(0.05)
    assert not sleeper.done()
    sleeper.cancel()


async def test_a_sleep_runs_out_in_real_time_too() -> None:
    clock = DemoClock()
    await asyncio.wait_for(clock.sleep(0.05), 1)


def test_demo_mode_needs_a_known_port() -> None:
    with pytest.raises(ValueError, match="give --port"):
        Settings(demo=True, port=0)


def test_the_demo_points_google_at_the_fakes_under_the_servers_own_url() -> None:
    world = DemoWorld("http://127.0.0.1:8123/")
    google = world.google_settings(Settings().google)
    assert google.authorize_url == "http://127.0.0.1:8123/_demo/google/o/oauth2/v2/auth"
    assert google.secret() == world.client_secret
    assert world.services().gmail_base_url == "http://127.0.0.1:8123/_demo/gmail"
