"""The server app in this process, and clients for it (imported by the server suites)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from charmspace.client import AsyncClient
from charmspace.identity import Identity

BASE = "http://charmspace.test"


@dataclass
class InProcess:
    """The app with its lifespan running, and a way to make clients for it."""

    app: FastAPI
    transport: httpx.ASGITransport

    def client(self, identity: Identity | None = None) -> AsyncClient:
        return AsyncClient(BASE, identity or Identity.generate(), transport=self.transport)

    def raw(self) -> httpx.AsyncClient:
        """An httpx client that signs nothing (for hand-made requests)."""
        return httpx.AsyncClient(base_url=BASE, transport=self.transport)
