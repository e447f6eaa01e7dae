"""``Retry``: what the clients do when the server answers 429 (busy): wait, sign again, resend.

Every 429 the server answers is decided before the request does anything, so
any request (a stream send or a charm creation as much as a read) is safe to
send again:

- the nonce limits (``nonces_per_did``, ``nonce_floor``, ``nonces``) are
  checked with the signature, before the request reaches a route, and a
  refused nonce is not remembered;
- the WebSocket limits (``websockets_per_did``, ``websockets_per_address``,
  ``websockets``) are checked before a WebSocket is accepted;
- ``challenges_per_address`` refuses a login challenge before making one, and
  ``sessions_per_address`` a login before spending its challenge.

Each try is signed anew, with a fresh nonce and the current time: a
``nonce_floor`` refusal asks for exactly that, and a replayed signature would be
refused anyway. The client waits what ``Retry-After`` says (one second when it
says nothing), and gives up rather than wait past ``max_wait`` seconds in all.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from charmspace.backoff import parse_retry_after

BUSY = 429
UNSAID_WAIT = 1.0
"""Seconds to wait after a 429 without ``Retry-After``."""


class Retry(BaseModel):
    """How many times, and how long in all, a client tries again a request refused with 429.

    ``Client(url, identity, retry=Retry(retries=0))`` never retries. Out-of-range
    values are refused when the ``Retry`` is made (pydantic's ``ValidationError``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    retries: int = Field(default=3, ge=0, le=100, description="Tries after the first.")
    max_wait: float = Field(default=30.0, ge=0, le=3600, description="Seconds of waiting, at most.")

    def delay(
        self, status: int, retry_after: str | None, tries: int, waited: float
    ) -> float | None:
        """Seconds to wait before the next try, or None when the answer stands.

        ``tries`` is how many retries were made already, ``waited`` the seconds
        spent waiting for them. A wait that would pass ``max_wait`` is not begun.
        """
        if status != BUSY or tries >= self.retries:
            return None
        seconds = parse_retry_after(retry_after, time.time())
        seconds = UNSAID_WAIT if seconds is None else seconds
        return seconds if waited + seconds <= self.max_wait else None


DEFAULT_RETRY = Retry()


def gave_up(tries: int, waited: float, retry_after: str | None) -> str:
    """What a 429's error adds once the client stopped trying: what to do now."""
    seconds = parse_retry_after(retry_after, time.time())
    when = "later" if seconds is None else f"in {seconds:.0f} s"
    times = "once" if tries == 0 else f"{tries + 1} times over {waited:.0f} s"
    return f"Sent {times}; send it again {when}, or send fewer requests."
