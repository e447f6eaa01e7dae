"""Browser sessions: challenges, session cookies, CSRF tokens and the one-time login link.

A browser holds an Ed25519 key, signs a challenge the server issued
(:func:`charmspace.signing.session_message`) and gets a session: an opaque random
id in an ``HttpOnly``, ``SameSite=Strict`` cookie, mapped here to its DID. A
session request is then authenticated like a signed one, as that DID.

A cookie is sent by the browser whatever page caused the request, so a
state-changing request authenticated by one must also prove it came from our
own page: it echoes the session's CSRF token (readable by our page's script
from a second, non-``HttpOnly`` cookie; no other site can read it) in the
``X-CSRF-Token`` header, and its ``Origin``, when sent, is the server's own.
``SameSite=Strict`` alone is not enough: every port of ``127.0.0.1`` is the same
site, so a page served by another local program is not cross-site.

Everything is held in memory and bounded, so a flood can delay a login but
never grow the server. Each client address holds at most
``max_challenges_per_address`` unanswered challenges (more is a 429), so one
flooding client does not push out everyone else's; when the challenge table is
full all the same, its oldest entry goes. Each DID holds at most
``max_sessions_per_did`` sessions, and logging in once more ends its own
oldest, so one identity logging in over and over ends only its own sessions.
Identities are free to mint, though, so sessions are also bounded per client
address (``max_sessions_per_address``, more is a 429), and when the session
table is full the address holding the most sessions loses its own oldest
(see :class:`SessionStore`): a flood of fresh identities from one address
never logs out a user at another.

Sessions are also kept in a file of the data directory (when the server has
one), so a restart does not log browsers out: an open page reconnects and
carries on. The file holds a SHA-256 of each session id, never
the id itself, so reading it does not let anyone act as a logged-in browser.

The file is written behind the changes (:mod:`charmspace.write_behind`),
not on each one: a login or logout marks it stale, and a worker thread writes
it at most once every ``WRITE_INTERVAL`` seconds. Written on each change, on
the event loop, it made a flood of logins stall every other request: the whole
file, 4 MB and 60 ms at 20,000 sessions, once per login. A clean stop writes
the last state (the app's lifespan calls :meth:`SessionStore.stop_writing`).
What a crash may lose is what changed since the last write began, about a
second: the browsers that logged in then log in again after the restart, and a
logout made then is undone, which only a copy of that cookie taken before the
logout could use (the browser itself dropped it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from charmspace.errors import IdentityError
from charmspace.identity import parse_did, verify
from charmspace.private_json import load_private_json
from charmspace.server.errors import AuthenticationError, ServerBusyError
from charmspace.server.tally import Tally
from charmspace.signing import b64decode, session_message
from charmspace.types import DID
from charmspace.write_behind import WriteBehind

CHALLENGE_TTL = 120.0
SESSION_TTL = 12 * 3600.0
LOGIN_TOKEN_TTL = 600.0
SESSION_COOKIE = "charmspace_session"
CSRF_COOKIE = "charmspace_csrf"
CSRF_HEADER = "x-csrf-token"
WRITE_INTERVAL = 1.0  # the sessions file is written at most this often (seconds)

V = TypeVar("V")

log = logging.getLogger(__name__)


class Expiring(Generic[V]):
    """Random tokens, each mapped to a value until it expires; at most ``capacity`` of them.

    All entries live equally long, so insertion order is expiry order: the
    oldest entry is always first, which keeps pruning and eviction O(1) each.
    """

    def __init__(
        self,
        ttl: float,
        capacity: int,
        clock: Callable[[], float],
        on_drop: Callable[[str, V], None] | None = None,
    ) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self.clock = clock
        self.on_drop = on_drop  # told of every entry that leaves, however it leaves
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, value: V) -> tuple[str, float]:
        """A new token for ``value`` and the time it expires."""
        now = self.clock()
        self._prune(now)
        while len(self._entries) >= self.capacity:
            self._dropped(*self._entries.popitem(last=False))
        token = secrets.token_urlsafe(32)
        expires = now + self.ttl
        self._entries[token] = (expires, value)
        return token, expires

    def get(self, token: str) -> tuple[float, V] | None:
        """The token's expiry and value, or None if it is unknown or expired."""
        entry = self._entries.get(token)
        if entry is None or entry[0] <= self.clock():
            return None
        return entry

    def take(self, token: str) -> V | None:
        """Like :meth:`get`, and the token is gone afterwards (single use)."""
        entry = self._entries.pop(token, None)
        if entry is not None:
            self._dropped(token, entry)
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1]

    def discard(self, token: str) -> None:
        entry = self._entries.pop(token, None)
        if entry is not None:
            self._dropped(token, entry)

    def _dropped(self, token: str, entry: tuple[float, V]) -> None:
        if self.on_drop is not None:
            self.on_drop(token, entry[1])

    def prune(self) -> None:
        """Drop the entries that expired."""
        self._prune(self.clock())

    def _prune(self, now: float) -> None:
        while self._entries:
            token, (expires, _) = next(iter(self._entries.items()))
            if expires > now:
                break
            self._dropped(token, self._entries.pop(token))


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in browser: who it is, its CSRF token, and when it must log in again."""

    id: str
    did: DID
    csrf: str
    expires: float

    def csrf_matches(self, header: str | None, cookie: str | None) -> bool:
        """The double submit: header and cookie both carry this session's token."""
        if not header or not cookie:
            return False
        expected = self.csrf.encode()
        # Both compared, always, in constant time: no early exit tells which failed.
        same_header = hmac.compare_digest(header.encode(), expected)
        same_cookie = hmac.compare_digest(cookie.encode(), expected)
        return same_header and same_cookie


Holder = tuple[str, str]
"""Who a session counts against when the table is full: ``("address", host)``, the
client address that logged in, or ``("restored", did)`` for one restored from the
file, whose address is not known (see :class:`SessionStore`)."""

Kept = tuple[float, dict[str, tuple[DID, str, float]]]
"""A snapshot of the sessions the file keeps: when it was taken, and the sessions."""


class SessionStore:
    """The server's challenges, sessions and login tokens (see the module docstring).

    *Which session ends when the table is full.* Not the oldest: identities are
    free to mint, so one client address could log in ``max_sessions`` times and
    push out every other user. The holder with the most live sessions, counting
    the one being opened, loses its own oldest instead (as
    :class:`~charmspace.server.auth.NonceCache` makes the DID holding the most
    nonces forget its oldest), so a flood from one address ends only that
    address's sessions. A holder is the client address a session logged in
    from; each address also holds at most ``max_sessions_per_address`` (more is
    a 429 until one ends), so a flood stops long before the table fills.

    *Sessions restored from the file* have no known address: the file keeps
    none (an address says where a user was, which need not be kept on disk, and
    a laptop's changes with its network anyway). Each counts as its identity's
    own holder. One holder shared by them all would be the biggest after a
    restart, so a flood would end every restored session before its own; per
    identity, each holds at most ``max_sessions_per_did``, and a flooding
    address that holds more pays first.
    """

    def __init__(
        self,
        *,
        max_sessions: int = 100_000,
        max_sessions_per_did: int = 100,
        max_sessions_per_address: int = 1_000,
        max_challenges_per_address: int = 100,
        clock: Callable[[], float] = time.time,
        path: Path | None = None,
        write_interval: float = WRITE_INTERVAL,
    ) -> None:
        self.clock = clock
        self.max_sessions = max_sessions
        self.max_sessions_per_did = max_sessions_per_did
        self.max_sessions_per_address = max_sessions_per_address
        self.max_challenges_per_address = max_challenges_per_address
        # address -> its unanswered challenges, oldest first (token -> expires)
        self.by_address: dict[str, OrderedDict[str, float]] = {}
        self.challenges: Expiring[str] = Expiring(
            CHALLENGE_TTL, 10_000, clock, self._challenge_dropped
        )
        # did -> its sessions, oldest first: sha256(id) -> the id (None: restored from the file)
        self.by_did: dict[DID, OrderedDict[str, str | None]] = {}
        # holder -> its sessions, oldest first: sha256(id) -> (did, expires); and back
        self.by_holder: dict[Holder, OrderedDict[str, tuple[DID, float]]] = {}
        self.holder_of: dict[str, Holder] = {}
        self.holders: Tally[Holder] = Tally()  # every live session, counted by holder
        # The store bounds the sessions itself, just after adding one (see _make_room):
        # this capacity, one more, is a backstop that never evicts.
        self.sessions: Expiring[tuple[DID, str]] = Expiring(
            SESSION_TTL, max_sessions + 1, clock, self._session_dropped
        )
        self.login_tokens: Expiring[DID] = Expiring(LOGIN_TOKEN_TTL, 100, clock)
        self.path = path
        # What the file holds, live sessions only: sha256(id) -> did, csrf, expires
        self.kept: dict[str, tuple[DID, str, float]] = {}
        # The sessions only the file held, soonest to expire first: sha256(id) -> did, expires
        self.restored: OrderedDict[str, tuple[DID, float]] = OrderedDict()
        self.file: WriteBehind[Kept] | None = None
        if path is not None:
            self._load(path)
            self.file = WriteBehind(
                path, self._snapshot, _render, what="sessions", interval=write_interval
            )

    def challenge(self, address: str = "") -> tuple[str, float]:
        """A new single-use challenge for a client at ``address`` and the time it expires."""
        self.challenges.prune()
        pending = self.by_address.get(address)
        if pending and len(pending) >= self.max_challenges_per_address:
            oldest = next(iter(pending.values()))
            raise ServerBusyError(
                f"This address holds {self.max_challenges_per_address} unanswered login "
                "challenges: log in with one of them, or retry once the oldest expires.",
                limit="challenges_per_address",
                retry_after=max(1, math.ceil(oldest - self.clock())),
            )
        token, expires = self.challenges.put(address)
        self.by_address.setdefault(address, OrderedDict())[token] = expires
        return token, expires

    def _challenge_dropped(self, token: str, address: str) -> None:
        pending = self.by_address.get(address)
        if pending is not None:
            pending.pop(token, None)
            if not pending:
                del self.by_address[address]

    def login(self, did: str, challenge: str, signature: str, address: str = "") -> Session:
        """A session for ``did`` at ``address`` if it signed ``challenge``, which is spent
        either way (unless refused as busy: see :meth:`open`)."""
        self._refuse_if_full(address)
        if self.challenges.take(challenge) is None:
            raise AuthenticationError(
                "challenge",
                "The challenge is unknown, expired or already used: get a new one from "
                "GET /api/session/challenge.",
            )
        try:
            parse_did(did)
        except IdentityError:
            raise AuthenticationError("bad_did", "did is not an Ed25519 did:key.") from None
        sig = b64decode(signature)
        if sig is None or not verify(did, session_message(challenge, did), sig):
            raise AuthenticationError(
                "bad_signature", "The signature is not the did's signature of the challenge."
            )
        return self.open(did, address)

    def open(self, did: DID, address: str = "") -> Session:
        """A new session for ``did``, logging in from ``address``.

        Its own oldest ends if it holds ``max_sessions_per_did``; the biggest
        holder's oldest if the table is full (see the class docstring). Refused
        (429, nothing ended) if ``address`` holds ``max_sessions_per_address``.
        """
        self._refuse_if_full(address)
        mine = self.by_did.get(did)
        while mine and len(mine) >= self.max_sessions_per_did:
            digest, old = next(iter(mine.items()))
            log.info(
                "ending the oldest session of %s: it holds %d",
                did,
                len(mine),
                extra={"principal": did, "refused": "sessions_per_did"},
            )
            self._end(did, digest, old)
            mine = self.by_did.get(did)
        csrf = secrets.token_urlsafe(32)
        id, expires = self.sessions.put((did, csrf))
        digest = _digest(id)
        self._index(did, digest, id, ("address", address), expires)
        if self.path is not None:
            self.kept[digest] = (did, csrf, expires)
        self._make_room()
        self._changed()
        return Session(id, did, csrf, expires)

    def _refuse_if_full(self, address: str) -> None:
        """Refuse (429) a session for ``address`` if it holds ``max_sessions_per_address``.

        Checked before a challenge or login token is spent, so the refused
        request may be sent again as it was.
        """
        self._prune()
        held = self.by_holder.get(("address", address))
        if not held or len(held) < self.max_sessions_per_address:
            return
        _, oldest = next(iter(held.values()))
        log.info(
            "refusing a session from %s: the address holds %d",
            address or "-",
            len(held),
            extra={"address": address, "refused": "sessions_per_address"},
        )
        raise ServerBusyError(
            f"This client address holds {self.max_sessions_per_address} live browser "
            "sessions, as many as one address may: log out of one (DELETE /api/session), "
            "or retry once the oldest expires.",
            limit="sessions_per_address",
            retry_after=max(1, math.ceil(oldest - self.clock())),
        )

    def _make_room(self) -> None:
        """End the biggest holder's oldest sessions while there are too many.

        Called once the new session is counted: an address that floods is then
        the biggest as soon as it holds one more than anyone else, while one
        that logs in for the first time is never the biggest when others hold
        as many (on a tie, the first to reach the count goes: see :class:`Tally`).
        """
        while self.holders.total > self.max_sessions:
            holder = self.holders.biggest()
            assert holder is not None  # the table is not empty
            digest, (did, _) = next(iter(self.by_holder[holder].items()))
            kind, name = holder
            log.info(
                "%d sessions: ending the oldest of %s %s, which holds the most (%d)",
                self.holders.total,
                kind,
                name or "-",
                self.holders.most,
                extra={
                    "principal": did,
                    "address": name if kind == "address" else None,
                    "refused": "sessions",
                },
            )
            self._end(did, digest, self.by_did[did][digest])

    def _index(self, did: DID, digest: str, id: str | None, holder: Holder, expires: float) -> None:
        self.by_did.setdefault(did, OrderedDict())[digest] = id
        self.by_holder.setdefault(holder, OrderedDict())[digest] = (did, expires)
        self.holder_of[digest] = holder
        self.holders.add(holder)

    def _end(self, did: DID, digest: str, id: str | None) -> None:
        """End one session in memory and in the indexes, and drop it from the kept ones
        (the file is written with the session that replaces it: see :meth:`open`)."""
        if id is not None:
            self.sessions.discard(id)
        self.kept.pop(digest, None)
        self._unindex(did, digest)

    def _unindex(self, did: DID, digest: str) -> None:
        """Forget a session that ended, in every index (once; again is harmless)."""
        mine = self.by_did.get(did)
        if mine is not None:
            mine.pop(digest, None)
            if not mine:
                del self.by_did[did]
        holder = self.holder_of.pop(digest, None)
        if holder is not None:
            held = self.by_holder[holder]
            del held[digest]
            if not held:
                del self.by_holder[holder]
            self.holders.remove(holder)
        self.restored.pop(digest, None)

    def _session_dropped(self, id: str, value: tuple[DID, str]) -> None:
        # Expired, or ended by _end or close (which unindex it too). Until then the file
        # may keep it, with the same expiry: it is still a session.
        digest = _digest(id)
        kept = self.kept.get(digest)
        if kept is None or kept[2] <= self.clock():
            # Expired: out of the kept ones too, so a snapshot of them is a plain copy.
            self.kept.pop(digest, None)
            self._unindex(value[0], digest)

    def _prune(self) -> None:
        """Forget the sessions that expired: in memory, and those only the file held."""
        self.sessions.prune()
        now = self.clock()
        while self.restored:
            digest, (did, expires) = next(iter(self.restored.items()))
            if expires > now:
                break
            self.kept.pop(digest, None)
            self._unindex(did, digest)

    def get(self, id: str) -> Session | None:
        entry = self.sessions.get(id)
        if entry is None:
            kept = self.kept.get(_digest(id)) if self.kept and id else None
            if kept is None or kept[2] <= self.clock():
                return None
            return Session(id, kept[0], kept[1], kept[2])
        expires, (did, csrf) = entry
        return Session(id, did, csrf, expires)

    def close(self, id: str) -> None:
        session = self.get(id)
        self.sessions.discard(id)
        if self.kept.pop(_digest(id), None) is not None:
            self._changed()
        if session is not None:
            self._unindex(session.did, _digest(id))

    def _load(self, path: Path) -> None:
        entries = load_private_json(path, what="sessions")
        now = self.clock()
        try:
            for digest, (did, csrf, expires) in (entries or {}).items():
                if float(expires) > now:
                    self.kept[str(digest)] = (str(did), str(csrf), float(expires))
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring the unreadable sessions file %s: browsers log in again", path)
        live = sorted(self.kept.items(), key=lambda item: item[1][2])[-self.max_sessions :]
        self.kept = dict(live)
        for digest, (did, _, expires) in live:
            self._index(did, digest, None, ("restored", did), expires)
            self.restored[digest] = (did, expires)

    def _changed(self) -> None:
        if self.file is not None:
            self.file.changed()

    def _snapshot(self) -> Kept:
        """What the file is to hold, taken on the event loop: a copy of the kept sessions
        and the time, whose expired ones (not yet pruned) :func:`_render` leaves out."""
        return self.clock(), dict(self.kept)

    def start_writing(self) -> None:
        """Write the sessions file behind the changes, from a task of the running loop."""
        if self.file is not None:
            self.file.start()

    async def stop_writing(self) -> None:
        """Write the last state of the sessions file; then changes are written only by
        :meth:`flush` (or another :meth:`start_writing`)."""
        if self.file is not None:
            await self.file.stop()

    def flush(self) -> None:
        """Write the sessions file now, if it misses a change (while nothing writes behind)."""
        if self.file is not None:
            self.file.flush()

    def login_token(self, did: DID) -> str:
        """A single-use token that opens a session for ``did`` (the one-time login link)."""
        token, _ = self.login_tokens.put(did)
        return token

    def redeem(self, token: str, address: str = "") -> Session:
        """A session for the token's DID, at ``address``; the token is spent (unless
        refused as busy: see :meth:`open`)."""
        self._refuse_if_full(address)
        did = self.login_tokens.take(token)
        if did is None:
            raise AuthenticationError(
                "login_token",
                "This login link is unknown, expired or already used; restart "
                "`charmspace serve` for a new one.",
            )
        return self.open(did, address)


RENDER_PIECE = 1_000  # sessions encoded between two chances for the event loop


def _render(snapshot: Kept) -> str:
    """The file's JSON, ``{sha256(id): [did, csrf, expires]}``, live sessions only.

    Runs in the writer's thread, in pieces: the event loop's thread needs the
    interpreter's lock too, and would otherwise wait up to the interpreter's
    switch interval (5 ms) at each turn of the loop for as long as the whole
    file takes (about 0.2 s with 100,000 sessions). Each piece is encoded by
    the C encoder (a millisecond), then ``time.sleep(0)`` hands the lock over.
    """
    now, kept = snapshot
    pieces: list[str] = []
    piece: dict[str, tuple[DID, str, float]] = {}
    for digest, session in kept.items():
        if session[2] > now:
            piece[digest] = session
            if len(piece) == RENDER_PIECE:
                pieces.append(json.dumps(piece)[1:-1])
                piece = {}
                time.sleep(0)
    if piece:
        pieces.append(json.dumps(piece)[1:-1])
    return "{" + ", ".join(pieces) + "}"


def _digest(id: str) -> str:
    return hashlib.sha256(id.encode("utf-8", "surrogateescape")).hexdigest()
