"""Back-off between retries: growing, capped, jittered, never sooner than a server asked."""

from __future__ import annotations

import random

from charmspace.backoff import Backoff, parse_retry_after


def test_retry_after_as_seconds_or_a_date() -> None:
    assert parse_retry_after("7", 0) == 7
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40) == 60
    assert parse_retry_after(None, 0) is None and parse_retry_after("soon", 0) is None
    assert parse_retry_after("-3", 0) == 0  # never a wait in the past


def test_waits_grow_are_capped_and_never_come_before_what_the_server_asked() -> None:
    backoff, rng = Backoff(base=0.5, cap=4.0), random.Random(7)
    waits = [backoff.delay(attempt, rng) for attempt in range(8)]
    for attempt, wait in enumerate(waits):
        full = min(4.0, 0.5 * 2**attempt)
        assert full / 2 <= wait <= full  # jittered within the upper half
    assert backoff.delay(0, rng, retry_after=10.0) == 10.0
