"""Open a storage by URL: ``memory://`` or ``sqlite:///path/to/dir``."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from charmspace.errors import StorageURLError
from charmspace.storage.model import Limits
from charmspace.storage.store import Storage
from charmspace.types import DID


def open_storage(
    url: str,
    *,
    service: DID | None = None,
    limits: Limits | None = None,
    clock: Callable[[], float] = time.time,
    durability: str | None = None,
) -> Storage:
    """Open the storage named by ``url``.

    ``sqlite:///abs/dir``, or relative: ``sqlite:///./rel/dir`` or ``sqlite://./rel/dir``.
    ``?durability=full`` (or the ``durability`` argument) makes every commit
    survive power loss, at a cost.
    """
    parts = urlsplit(url)
    if parts.scheme == "memory":
        from charmspace.storage.backends.memory import MemoryBackend

        return Storage(MemoryBackend(), url=url, limits=limits, service=service, clock=clock)
    if parts.scheme == "sqlite":
        from charmspace.storage.backends.sqlite import SQLiteBackend

        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if path.startswith(("/./", "/../")):  # sqlite:///./dir is relative, as people mean it
            path = path[1:]
        if not path:
            raise StorageURLError(url, "it names no directory")
        query = parse_qs(parts.query)
        mode = durability or query.get("durability", ["normal"])[0]
        if mode not in ("normal", "full"):
            raise StorageURLError(url, f"durability must be 'normal' or 'full', not {mode!r}")
        backend = SQLiteBackend(path, synchronous=mode.upper())
        return Storage(backend, url=url, limits=limits, service=service, clock=clock)
    raise StorageURLError(url, f"unknown scheme {parts.scheme!r}" if parts.scheme else "no scheme")
