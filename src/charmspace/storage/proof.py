"""Proof that the creator of a space holds the space's key.

A space is named by a ``did:key`` DID, and a DID belongs to whoever holds its
private key. Storage trusts the acting principal it is given (the layer above
authenticates it), but a space's DID is a second key: a user's home space is
their own DID, a named space is a key derived from theirs
(``Identity.derive(name)``), and storage cannot tell which DIDs are whose. So
creating space S for owner O needs either ``S == O`` or a signature by S's key
over (S, O): only the holder of S's key can make one, and it names the owner,
so it cannot be reused to hand the space to someone else.
"""

from __future__ import annotations

from charmspace.identity import Identity, verify
from charmspace.types import DID, SpaceDID

_DOMAIN = b"charmspace create-space v1\n"


def _message(space: SpaceDID, owner: DID) -> bytes:
    return _DOMAIN + space.encode("utf-8") + b"\n" + owner.encode("utf-8")


def creation_proof(space: Identity, owner: DID) -> bytes:
    """The proof, signed with the space's key, that ``owner`` may create the space ``space.did``."""
    return space.sign(_message(space.did, owner))


def is_creation_proof(space: SpaceDID, owner: DID, proof: bytes) -> bool:
    """Whether ``proof`` is the space's signature allowing ``owner`` to create it."""
    if not isinstance(proof, bytes | bytearray) or len(proof) != 64:
        return False
    return verify(space, _message(space, owner), bytes(proof))
