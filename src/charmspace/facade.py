"""``charmspace.Runtime``: the runtime with the authoring layer's charms and favorites.

Why a subclass up here: the runtime (cells, transactions, hosts, the scheduler)
must not depend on the authoring layer that builds on it; this module sits above
both and joins them. Tests of the runtime alone may use
:class:`charmspace.runtime.Runtime`; everyone else uses this one.
"""

from __future__ import annotations

from typing import Any

from charmspace.patterns.charms import Charms
from charmspace.patterns.favorites import Favorites
from charmspace.runtime.runtime import Runtime as _Runtime
from charmspace.types import DID


class Runtime(_Runtime):
    """Hosts charms over a storage: ``Runtime("sqlite:///./.charmspace")``.

    Everything :class:`charmspace.runtime.Runtime` does, plus ``charms``
    (create, find, list, link and remove charms, rebuilt from storage after a
    restart) and ``favorites(user)``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.charms = Charms(self)
        """Create, find, list, link and remove charms (see :mod:`charmspace.patterns.charms`)."""

    def favorites(self, user: DID | None = None) -> Favorites:
        """The favorites of ``user`` (default: this runtime's user)."""
        return Favorites(self, user or self.principal)
