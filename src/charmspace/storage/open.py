"""Open a storage by URL: ``memory://`` or ``sqlite:///path/to/dir``.

Why so strict: a URL that is almost right usually opens *something* — the
filesystem root, a directory literally named ``~``, a storage whose misspelled
``?durabilty=full`` silently keeps the weaker durability. Each such URL is
refused with the spelling that was probably meant, before anything is created.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from charmspace.errors import StorageURLError
from charmspace.storage.model import Limits
from charmspace.storage.store import Storage
from charmspace.types import DID

_OPTIONS = {"memory": frozenset(), "sqlite": frozenset({"durability"})}


def open_storage(
    url: str,
    *,
    service: DID | None = None,
    limits: Limits | None = None,
    clock: Callable[[], float] = time.time,
    durability: str | None = None,
) -> Storage:
    """Open the storage named by ``url``.

    ``sqlite:///abs/dir``, or relative to the working directory:
    ``sqlite:///./rel/dir``. ``?durability=full`` (or the ``durability``
    argument) makes every commit survive power loss, at a cost. Anything else
    raises :class:`~charmspace.errors.StorageURLError` saying how to write it.
    """
    if not isinstance(url, str):
        raise StorageURLError(repr(url), f"a storage URL is a string, not {type(url).__name__}")
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in _OPTIONS:
        raise StorageURLError(url, f"unknown scheme {scheme!r}" if scheme else "it has no scheme")
    options = _options(url, parts.query, _OPTIONS[scheme])
    if scheme == "memory":
        from charmspace.storage.backends.memory import MemoryBackend

        return Storage(MemoryBackend(), url=url, limits=limits, service=service, clock=clock)

    from charmspace.storage.backends.sqlite import SQLiteBackend

    path = _sqlite_directory(url, parts.netloc, parts.path)
    mode = durability or options.get("durability", "normal")
    if mode not in ("normal", "full"):
        raise StorageURLError(url, f"durability must be 'normal' or 'full', not {mode!r}")
    backend = SQLiteBackend(path, synchronous=mode.upper())
    return Storage(backend, url=url, limits=limits, service=service, clock=clock)


def _options(url: str, query: str, known: frozenset[str]) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise StorageURLError(url, f"its options {query!r} are not name=value pairs") from None
    options: dict[str, str] = {}
    for name, value in pairs:
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise StorageURLError(url, f"unknown option {name!r} (options: {allowed})")
        if name in options:
            raise StorageURLError(url, f"option {name!r} is given twice; give it once")
        options[name] = value
    return options


def _sqlite_directory(url: str, netloc: str, path: str) -> str:
    """The directory an ``sqlite:`` URL names, or a StorageURLError saying how to write it."""
    if not url.startswith("sqlite://"):
        raise StorageURLError(
            url, f"write it with three slashes: sqlite:///{path.lstrip('/') or 'path/to/dir'}"
        )
    if netloc:
        relative = f"{netloc}{path}" if netloc in (".", "..") else f"./{netloc}{path}"
        raise StorageURLError(
            url,
            f"sqlite URLs have no host, so {netloc!r} is not part of the path; write "
            f"sqlite:///{relative} for a directory relative to the working directory, "
            "or sqlite:///absolute/path",
        )
    if path.startswith(("/./", "/../")):  # sqlite:///./dir is relative, as people mean it
        path = path[1:]
    if not path:
        raise StorageURLError(url, "it names no directory")
    if path.startswith("/~") or path.startswith("~"):
        home = os.path.expanduser("~" + path.split("~", 1)[1])
        raise StorageURLError(
            url, f"'~' is not expanded; give the absolute path, e.g. sqlite://{home}"
        )
    if os.path.abspath(path) == "/":
        raise StorageURLError(
            url, "it names the filesystem root; name a directory for the storage's own files"
        )
    if os.path.exists(path) and not os.path.isdir(path):
        raise StorageURLError(url, f"{path} exists and is not a directory; name a directory")
    return path
