"""Who acts: Ed25519 identities, their ``did:key`` DIDs, signatures and key files."""

from __future__ import annotations

from charmspace.identity.did import did_from_public_key, is_did, parse_did
from charmspace.identity.keys import Identity, verify

__all__ = ["Identity", "did_from_public_key", "is_did", "parse_did", "verify"]
