"""Signed HTTP requests: what a client signs and how the server reads it back.

One module for both sides, so the client (:class:`charmspace.client.SignedAuth`)
and the server (:mod:`charmspace.server.auth`) can never disagree on the bytes.

A request carries::

    Authorization: Charmspace did="did:key:z6Mk…", ts="1764650000", nonce="…", sig="…"

``sig`` is the unpadded base64url Ed25519 signature, by the key of ``did``, of
the UTF-8 text::

    charmspace-request-v1
    POST
    /api/spaces?x=1
    <hex SHA-256 of the body, of b"" when there is none>
    1764650000
    <nonce>
    did:key:z6Mk…

The path and query are signed exactly as sent (still percent-encoded), so a
proxy that rewrites them breaks the signature rather than changing the request's
meaning. ``ts`` (seconds since the epoch) and ``nonce`` make each signature
usable once, within the server's clock-skew window.

Creating a named space needs a second signature, by the *space's* key: storage's
creation proof (:mod:`charmspace.storage.proof`), sent in the request's body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass

from charmspace.identity import Identity
from charmspace.types import DID

SCHEME = "Charmspace"
REQUEST_CONTEXT = "charmspace-request-v1"
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_PARAM = re.compile(r'\s*([a-z]+)="([^"]*)"\s*(?:,|$)')


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """The parts of a ``Charmspace`` Authorization header."""

    did: DID
    ts: int
    nonce: str
    sig: bytes

    def render(self) -> str:
        return (
            f'{SCHEME} did="{self.did}", ts="{self.ts}", nonce="{self.nonce}", '
            f'sig="{b64encode(self.sig)}"'
        )


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes | None:
    """Unpadded base64url, or None when ``text`` is not that."""
    if not _BASE64URL.fullmatch(text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def request_message(method: str, target: str, body: bytes, ts: int, nonce: str, did: DID) -> bytes:
    """The bytes a request's signature covers (``target`` is the path and query as sent)."""
    digest = hashlib.sha256(body).hexdigest()
    lines = (REQUEST_CONTEXT, method.upper(), target, digest, str(ts), nonce, did)
    return "\n".join(lines).encode("utf-8")


def sign_request(
    identity: Identity, method: str, target: str, body: bytes, ts: int, nonce: str | None = None
) -> SignedHeader:
    """The Authorization header value's parts for a request by ``identity``."""
    nonce = nonce or secrets.token_urlsafe(18)
    message = request_message(method, target, body, ts, nonce, identity.did)
    return SignedHeader(identity.did, ts, nonce, identity.sign(message))


def parse_header(value: str) -> SignedHeader | None:
    """The parts of a ``Charmspace …`` header, or None when it is not one well formed."""
    scheme, _, rest = value.partition(" ")
    if scheme != SCHEME or len(rest) > 600:
        return None
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None or match.group(1) in params:
            return None
        params[match.group(1)] = match.group(2)
        position = match.end()
    if set(params) != {"did", "ts", "nonce", "sig"}:
        return None
    ts, sig = params["ts"], b64decode(params["sig"])
    if not ts.isascii() or not ts.isdigit() or len(ts) > 12 or sig is None or len(sig) != 64:
        return None
    if not NONCE.fullmatch(params["nonce"]):
        return None
    return SignedHeader(params["did"], int(ts), params["nonce"], sig)


SESSION_CONTEXT = "charmspace-session-v1"


def session_message(challenge: str, did: DID) -> bytes:
    """The bytes a browser signs to log in: the server's challenge, bound to its DID."""
    return "\n".join((SESSION_CONTEXT, challenge, did)).encode("utf-8")
