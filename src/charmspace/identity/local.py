"""The local user's identity: one key file that the CLI and ``charmspace serve`` share.

``CHARMSPACE_IDENTITY`` names it; otherwise it is
``~/.config/charmspace/identity.pem``. It is created (mode 0600, its directory
0700) the first time it is needed, so a fresh machine needs no setup step.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from charmspace.errors import IdentityError
from charmspace.identity.keys import Identity

log = logging.getLogger(__name__)

ENVIRONMENT = "CHARMSPACE_IDENTITY"


def local_identity_path() -> Path:
    """Where the local user's key lives: ``$CHARMSPACE_IDENTITY`` or the default."""
    configured = os.environ.get(ENVIRONMENT)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".config" / "charmspace" / "identity.pem"


def load_or_create(path: Path) -> Identity:
    """The identity at ``path``, created (mode 0600, directory 0700) if there is none yet."""
    if path.exists():
        return Identity.load(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    identity = Identity.generate()
    try:
        identity.save(path)
    except IdentityError:
        if path.exists():  # another process created it meanwhile: use that one
            return Identity.load(path)
        raise
    log.info("created the identity %s in %s", identity.did, path)
    return identity
