"""Reading a secret (an OAuth client secret, an API key) from a private file.

Why refuse a readable file instead of warning: a secret that other users of
the machine can read is already leaked; using it would hide that.
"""

from __future__ import annotations

import stat
from pathlib import Path

from charmspace.errors import IntegrationError


def read_secret_file(path: Path, *, what: str, reason: str) -> str:
    """The stripped contents of ``path``; :class:`IntegrationError` (``reason``) if others
    may read it or it cannot be read. ``what`` names the secret in the message."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise IntegrationError(
                reason,
                f"The {what} file {path} has mode {mode:04o}, so other users can read it; "
                f"it was not used. Run `chmod 600 {path}`.",
            )
        return path.read_text().strip()
    except OSError as error:
        raise IntegrationError(
            reason, f"The {what} file {path} cannot be read ({error.strerror})."
        ) from None
