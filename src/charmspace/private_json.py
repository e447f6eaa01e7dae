"""Small JSON files of the data directory that only their owner can read (mode 0600).

The server keeps a few things across a restart that are not documents of a
space: browser sessions, Google sign-ins in progress. Each is one small file,
replaced whole (written to a temporary file, synced, then renamed), so a crash
or a power cut leaves the old contents or the new, never half of them. While
the server runs, they are written behind the changes, at most once a second,
off the event loop (:mod:`charmspace.write_behind`).

Why a failure only logs: what these files keep is a convenience across a
restart (a browser stays logged in, a sign-in can finish). A server that cannot
write one keeps working from memory; the worst a restart then does is ask the
user to start again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def load_private_json(path: Path, *, what: str) -> Any:
    """The JSON value in ``path``; None (logged, naming ``what``) if it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("ignoring the unreadable %s file %s: starting without it", what, path)
        return None


def write_private_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8), mode 0600; raises OSError if it could not.

    The caller encodes the JSON and reports failures (the sessions file encodes
    in pieces and logs once per outage, not once per write:
    :mod:`charmspace.write_behind`). Never two at once on one ``path``: they
    share the temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)  # a leftover temporary file would keep its own
        out.write(text)
        out.flush()
        os.fsync(out.fileno())  # else a power cut after the rename can leave it empty
    os.replace(temporary, path)
