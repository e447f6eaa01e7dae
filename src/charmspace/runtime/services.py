"""Services: objects the application hosting a runtime lends to the code it runs.

Why: some handlers need something only the host has, such as the server's
Google OAuth client with its single flight and client secret. A handler must
not call its own server over HTTP for that (it would need credentials, and the
single flight would not be shared), and a module-level global would be shared
by every runtime in the process. So the host provides the object once, by its
type, and a handler asks for it by that type::

    runtime.services.provide(GoogleOAuth, oauth)      # the server, at start-up
    oauth = service(GoogleOAuth)                      # in a handler: or None
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from charmspace.runtime import context

__all__ = ["Services", "service"]

T = TypeVar("T")


class Services:
    """The runtime's services, one per type."""

    def __init__(self) -> None:
        self._by_type: dict[type[Any], Any] = {}

    def provide(self, kind: type[T], value: T) -> Callable[[], None]:
        """Lend ``value`` as the ``kind`` service; returns a function that takes it back."""
        self._by_type[kind] = value

        def withdraw() -> None:
            if self._by_type.get(kind) is value:
                del self._by_type[kind]

        return withdraw

    def get(self, kind: type[T]) -> T | None:
        """The ``kind`` service, or None when the host provides none."""
        value = self._by_type.get(kind)
        return value if isinstance(value, kind) else None


def service(kind: type[T]) -> T | None:
    """The ``kind`` service of the runtime running the current handler, derived value or job."""
    here = context.current()
    runtime = None
    if here.transaction is not None:
        runtime = here.transaction.runtime
    elif here.unit is not None:
        runtime = here.unit.runtime
    return None if runtime is None else runtime.services.get(kind)
