"""Document ids derived from their cause.

Why deterministic: re-running the same construction (a charm rebuilt after a
restart) must find the same documents, so an id is a hash of a JSON description
of why the document exists — the charm, the node, the key — never random.
"""

from __future__ import annotations

import base64
import hashlib

from charmspace.types import EntityId, JSONValue
from charmspace.values import canonical, freeze


def entity_id(cause: JSONValue) -> EntityId:
    """``of:`` + base32 (lowercase, unpadded) of the SHA-256 of the cause's canonical JSON."""
    digest = hashlib.sha256(canonical(freeze(cause)).encode("utf-8")).digest()
    return "of:" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()
