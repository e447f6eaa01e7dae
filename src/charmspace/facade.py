"""``charmspace.Runtime``: the runtime with the authoring layer's charms and favorites.

Why a subclass up here: the runtime (cells, transactions, hosts, the scheduler)
must not depend on the authoring layer that builds on it; this module sits above
both and joins them. Tests of the runtime alone may use
:class:`charmspace.runtime.Runtime`; everyone else uses this one.
"""

from __future__ import annotations

from typing import Any

from charmspace.identity.keys import Identity
from charmspace.identity.local import load_or_create, local_identity_path
from charmspace.patterns.charms import Charms
from charmspace.patterns.favorites import Favorites
from charmspace.runtime.runtime import Runtime as _Runtime
from charmspace.storage.backends.memory import MemoryBackend
from charmspace.storage.open import open_storage
from charmspace.storage.store import Storage
from charmspace.types import DID


class Runtime(_Runtime):
    """Hosts charms over a storage: ``Runtime("sqlite:///./.charmspace")``.

    Everything :class:`charmspace.runtime.Runtime` does, plus ``charms``
    (create, find, list, link and remove charms, rebuilt from storage after a
    restart) and ``favorites(user)``.

    Who acts: ``identity`` if given. Otherwise, over a storage that outlives
    the process (an ``sqlite:`` URL or a :class:`~charmspace.storage.Storage`
    object), the local user's key file, the one the ``charmspace`` command and
    ``charmspace serve`` use (``$CHARMSPACE_IDENTITY``, default
    ``~/.config/charmspace/identity.pem``, created 0600 on first use). Why not
    a fresh key: a new identity on every run would own a new home space each
    time, and the charms of the last run would belong to somebody else.
    Over ``memory://`` nothing outlives the process, so a fresh key is used.
    """

    def __init__(
        self,
        storage: str | Storage = "memory://",
        *,
        identity: Identity | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(storage, Storage):
            # A wrong URL (or not a URL at all) is refused before a key file is made.
            storage = open_storage(storage)
        if identity is None and _persistent(storage):
            identity = load_or_create(local_identity_path())
        super().__init__(storage, identity=identity, **kwargs)
        self.charms = Charms(self)
        """Create, find, list, link and remove charms (see :mod:`charmspace.patterns.charms`)."""

    def favorites(self, user: DID | None = None) -> Favorites:
        """The favorites of ``user`` (default: this runtime's user)."""
        return Favorites(self, user or self.principal)


def _persistent(storage: object) -> bool:
    """Whether ``storage`` keeps its data after this process ends."""
    return isinstance(storage, Storage) and not isinstance(storage.backend, MemoryBackend)
