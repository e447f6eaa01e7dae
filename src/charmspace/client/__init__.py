"""The Python client of a charmspace server: signed requests over httpx.

``Client`` (sync) and ``AsyncClient`` speak the runtime's vocabulary (spaces,
charms, cells, streams, favorites, wish); ``SignedAuth`` signs any httpx request
the way the server expects, for code that uses httpx directly; ``Retry`` says how
often and how long the clients try again a request the server refused as busy (429).
"""

from __future__ import annotations

from charmspace.client.asynchronous import AsyncClient
from charmspace.client.auth import SignedAuth
from charmspace.client.ops import APIError, ServerUnreachableError
from charmspace.client.retry import Retry
from charmspace.client.sync import Client

__all__ = ["APIError", "AsyncClient", "Client", "Retry", "ServerUnreachableError", "SignedAuth"]
