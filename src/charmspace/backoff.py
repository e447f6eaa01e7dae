"""Bounded exponential back-off with jitter, honouring ``Retry-After``.

Shared by the Gmail and LLM clients (both retry 429 and 5xx answers and
network failures a few times, waiting longer each time, never in lockstep with
other clients, thanks to the jitter, and never sooner than the server asked),
the charmspace client's 429 retries, and a lease's wait for a busy space. It
sits below them all, beside :mod:`charmspace.values`, so that storage does
not import the integrations to wait.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class Backoff:
    """``retries`` more attempts after the first, waiting ``base·2ⁿ`` (jittered, capped)."""

    retries: int = 4
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0
    """A server asking to wait longer than this is not waited for: the call fails instead."""

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        computed: float = min(self.cap, self.base * 2**attempt) * (0.5 + rng.random() / 2)
        return computed if retry_after is None else max(retry_after, computed)


DEFAULT_BACKOFF = Backoff()


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; None if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None
