"""Who sent a request: verifying its signature, its time and its nonce.

The scheme is in :mod:`charmspace.signing`. A request is authenticated when its
signature by the DID's key covers exactly what arrived, its time is within
``skew`` seconds of the server's, and its nonce was not seen before from that
DID. Nonces are remembered per DID in a :class:`NonceCache`, which bounds what
each DID and all of them together may hold (see there for why replay stays
impossible when it has to forget).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from charmspace.errors import IdentityError
from charmspace.identity import parse_did, verify
from charmspace.server.errors import AuthenticationError, ServerBusyError
from charmspace.server.tally import Tally
from charmspace.signing import parse_header, request_message
from charmspace.types import DID


@dataclass(slots=True)
class _Ledger:
    """One DID's remembered nonces (each with its request's time), oldest first."""

    nonces: dict[str, int] = field(default_factory=dict)
    heap: list[tuple[int, str]] = field(default_factory=list)
    floor: int | None = None
    """Requests of this DID signed at or before this time are refused: the nonces
    of some of them were forgotten to make room."""


class NonceCache:
    """The nonces each DID used within the skew window, bounded per DID and in total.

    A nonce signed at ``ts`` must be remembered while a request signed at ``ts``
    is still accepted, that is until ``ts + skew``; after that the clock check
    refuses its replay, so it is forgotten.

    *Per DID.* A DID holds at most ``per_did`` nonces. Past that, its own new
    requests are refused (429, ``limit="nonces_per_did"``) until its oldest nonce
    expires; nobody else notices. Any did:key can be minted for free, so this
    alone does not bound memory.

    *In total.* All DIDs together hold at most ``capacity`` nonces. When the
    cache is full, the DID holding the most nonces forgets its oldest one and
    its ``floor`` rises to that nonce's time: from then on, any request of that
    DID signed at or before the floor is refused (429, ``limit="nonce_floor"``),
    whether or not its nonce was seen. Why replay stays impossible: every
    forgotten nonce of a DID has a time at or before its floor, so its replay is
    refused by the floor; a nonce that was never forgotten is still remembered
    and refused as a replay; and a DID's ledger (with its floor) is dropped only
    once all its nonces expired. One of them was signed no earlier than the
    floor (forgetting takes the oldest and keeps at least one), so the floor is
    outside the skew window by then and the clock check refuses what it would.
    The DID that floods pays: its floor rises, and a client that signs with the
    current time is hardly ever below it. Only when every DID holds a single
    nonce (as many flooding identities as the cache has room) is nothing safe
    to forget: new requests are then refused (429, ``limit="nonces"``) until the
    oldest nonce expires, which at that rate is a server saturated anyway.
    """

    def __init__(self, capacity: int, per_did: int, skew: float) -> None:
        self.capacity = capacity
        self.per_did = per_did
        self.skew = skew
        self._ledgers: dict[str, _Ledger] = {}
        # One entry per DID: (the time of its oldest nonce when queued, did). When it
        # comes up, the DID's expired nonces go and it is queued again, so nothing
        # here changes when a nonce is forgotten early and the heap never goes stale.
        self._expiry: list[tuple[int, str]] = []
        self._held: Tally[str] = Tally()  # how many nonces each DID holds

    def __len__(self) -> int:
        return self._held.total

    def held(self, did: str) -> int:
        """How many nonces ``did`` holds."""
        ledger = self._ledgers.get(did)
        return len(ledger.nonces) if ledger else 0

    def floor(self, did: str) -> int | None:
        """The time at or before which ``did``'s requests are refused, if any."""
        ledger = self._ledgers.get(did)
        return ledger.floor if ledger else None

    def add(self, did: str, nonce: str, ts: int, now: float) -> bool:
        """Remember ``did``'s ``nonce`` signed at ``ts``; False if it was used already.

        Raises :class:`ServerBusyError` (with ``retry_after`` in seconds) when it
        cannot be remembered safely: see the class docstring.
        """
        self._prune(now)
        ledger = self._ledgers.get(did)
        if ledger is not None:
            if nonce in ledger.nonces:
                return False
            if ledger.floor is not None and ts <= ledger.floor:
                raise ServerBusyError(
                    f"The server forgot this identity's nonces up to time {ledger.floor} "
                    "to make room: sign the request again with the current time.",
                    limit="nonce_floor",
                    principal=did,
                    retry_after=max(0, ledger.floor + 1 - math.floor(now)),
                )
            self._expire(did, ledger, now)
            if len(ledger.nonces) >= self.per_did:
                raise ServerBusyError(
                    f"This identity sent more than {self.per_did} signed requests within "
                    f"the {self.skew:g} s replay window; slow down and retry later.",
                    limit="nonces_per_did",
                    principal=did,
                    retry_after=self._until_expired(ledger.heap[0][0], now),
                )
        if self._held.total >= self.capacity:
            self._evict(now)
        if ledger is None:
            ledger = self._ledgers[did] = _Ledger()
            heapq.heappush(self._expiry, (ts, did))
        ledger.nonces[nonce] = ts
        heapq.heappush(ledger.heap, (ts, nonce))
        self._held.add(did)
        return True

    def _until_expired(self, ts: int, now: float) -> int:
        """Seconds until a nonce signed at ``ts`` may be forgotten (at least 1)."""
        return max(1, math.floor(ts + self.skew - now) + 1)

    def _prune(self, now: float) -> None:
        """Forget the nonces whose time is outside the window, DID by DID.

        A DID's entry in ``_expiry`` comes up no later than its oldest nonce
        expires (a nonce signed earlier than those before it is forgotten when
        the entry comes up, a little late, which is safe); the DID's expired
        nonces go, and its entry is queued again for its new oldest.
        """
        expiry = self._expiry
        while expiry and expiry[0][0] + self.skew < now:
            _, did = heapq.heappop(expiry)
            ledger = self._ledgers[did]
            self._expire(did, ledger, now)
            if ledger.heap:
                heapq.heappush(expiry, (ledger.heap[0][0], did))
            else:
                # Its floor is no later than a nonce that expired (see the class
                # docstring): the clock check refuses all it would, so it goes too.
                del self._ledgers[did]

    def _expire(self, did: str, ledger: _Ledger, now: float) -> None:
        while ledger.heap and ledger.heap[0][0] + self.skew < now:
            self._forget(did, ledger)

    def _evict(self, now: float) -> None:
        """Forget the oldest nonce of the DID holding the most (see the class docstring)."""
        if self._held.most < 2:
            raise ServerBusyError(
                f"The server holds {self.capacity} nonces of as many identities within the "
                "replay window and cannot take more yet; retry later.",
                limit="nonces",
                retry_after=self._until_expired(self._expiry[0][0], now),
            )
        did = self._held.biggest()
        assert did is not None  # it holds two or more
        ledger = self._ledgers[did]
        ts = self._forget(did, ledger)
        ledger.floor = ts if ledger.floor is None else max(ledger.floor, ts)

    def _forget(self, did: str, ledger: _Ledger) -> int:
        """Forget ``did``'s oldest nonce; its time."""
        ts, nonce = heapq.heappop(ledger.heap)
        del ledger.nonces[nonce]
        self._held.remove(did)
        return ts


class Verifier:
    """Checks signed requests (see the module docstring); one per server."""

    def __init__(
        self,
        *,
        skew: float,
        max_nonces: int,
        max_nonces_per_did: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.skew = skew
        self.clock = clock
        self.nonces = NonceCache(max_nonces, max_nonces_per_did, skew)

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
        if not self.nonces.add(signed.did, signed.nonce, signed.ts, now):
            raise AuthenticationError(
                "replayed", "This nonce was already used: every request needs a fresh one."
            )
        return signed.did
