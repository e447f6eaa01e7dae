"""The charmspace server: the signed HTTP API over one runtime (``charmspace serve``)."""

from __future__ import annotations

from charmspace.server.app import create_app
from charmspace.server.settings import Settings

__all__ = ["Settings", "create_app"]
