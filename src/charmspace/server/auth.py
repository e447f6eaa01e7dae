"""Who sent a request: verifying its signature, its time and its nonce.

The scheme is in :mod:`charmspace.signing`. A request is authenticated when its
signature by the DID's key covers exactly what arrived, its time is within
``skew`` seconds of the server's, and its nonce was not seen before within that
window. A nonce needs remembering only until its request would be too old
anyway, so the memory it takes is bounded by the request rate times the
window, and capped by ``max_nonces``.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from charmspace.errors import IdentityError
from charmspace.identity import parse_did, verify
from charmspace.server.errors import AuthenticationError, ServerBusyError
from charmspace.signing import parse_header, request_message
from charmspace.types import DID


class NonceCache:
    """The (DID, nonce) pairs seen, each until it expires."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, key: tuple[str, str], expires: float, now: float) -> bool:
        """Remember ``key`` until ``expires``; False if it is already remembered."""
        while self._heap and self._heap[0][0] <= now:
            _, old = heapq.heappop(self._heap)
            self._expiry.pop(old, None)
        if key in self._expiry:
            return False
        if len(self._expiry) >= self.capacity:
            raise ServerBusyError(
                "Too many signed requests within the replay window; retry in a moment."
            )
        self._expiry[key] = expires
        heapq.heappush(self._heap, (expires, key))
        return True


class Verifier:
    """Checks signed requests (see the module docstring); one per server."""

    def __init__(
        self, *, skew: float, max_nonces: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.skew = skew
        self.clock = clock
        self.nonces = NonceCache(max_nonces)

    def verify(self, method: str, target: str, body: bytes, header: str | None) -> DID:
        """The DID that signed this request, or :class:`AuthenticationError` saying why not."""
        if not header:
            raise AuthenticationError(
                "missing", "The request is not signed: send an Authorization: Charmspace header."
            )
        signed = parse_header(header)
        if signed is None:
            raise AuthenticationError(
                "malformed",
                'The Authorization header is not Charmspace did="…", ts="…", nonce="…", sig="…".',
            )
        try:
            parse_did(signed.did)
        except IdentityError:
            raise AuthenticationError(
                "bad_did", "The Authorization header's did is not an Ed25519 did:key."
            ) from None
        now = self.clock()
        if abs(now - signed.ts) > self.skew:
            raise AuthenticationError(
                "clock_skew",
                f"The request's time {signed.ts} is more than {self.skew:g} s from the "
                f"server's time {int(now)}; check the client's clock.",
                server_time=now,
            )
        message = request_message(method, target, body, signed.ts, signed.nonce, signed.did)
        if not verify(signed.did, message, signed.sig):
            raise AuthenticationError(
                "bad_signature",
                "The signature does not match the request (method, path, query, body, ts, "
                "nonce) for that did.",
            )
        if not self.nonces.add((signed.did, signed.nonce), signed.ts + self.skew, now):
            raise AuthenticationError(
                "replayed", "This nonce was already used: every request needs a fresh one."
            )
        return signed.did
