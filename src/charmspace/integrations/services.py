"""Which external services a runtime's charms reach, and how: set once by whoever hosts it.

A charm never holds an API key or a base URL: the server (or a test, or an
application embedding the runtime) configures them here, and a job asks for a
client with :func:`charmspace.patterns.llm` or :func:`gmail_client`. That
keeps secrets out of cells and lets tests point every charm at the fakes.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from charmspace.backoff import Backoff
from charmspace.errors import IntegrationError
from charmspace.integrations.google.gmail import GMAIL_BASE_URL, GmailClient
from charmspace.integrations.llm import LLMClient, LLMSettings
from charmspace.runtime.cell import Cell
from charmspace.runtime.stream import Stream

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime


class GmailSettings(BaseSettings):
    """``CHARMSPACE_GMAIL_BASE_URL``: where Gmail's REST API is (a fake in tests and demos)."""

    model_config = SettingsConfigDict(
        env_prefix="CHARMSPACE_GMAIL_", env_file=".env", extra="ignore", frozen=True
    )

    base_url: str = Field(default=GMAIL_BASE_URL, description="Base URL of Gmail's REST API.")


@dataclass
class Services:
    """The LLM client and Gmail settings a runtime's jobs use."""

    llm: LLMClient | None = None
    gmail_base_url: str = GMAIL_BASE_URL
    backoff: Backoff = field(default_factory=Backoff)
    sleep: Callable[[float], Awaitable[None]] | None = None
    """How clients wait between retries; default the runtime clock's ``sleep``."""
    transport: httpx.AsyncBaseTransport | None = None
    rng: random.Random | None = None
    _http: httpx.AsyncClient | None = field(default=None, repr=False)

    @property
    def http(self) -> httpx.AsyncClient:
        """One connection pool for every Gmail client of the runtime.

        Why shared: building an ``httpx.AsyncClient`` loads the CA bundle
        (tens of milliseconds), which a scan would otherwise pay every time.
        """
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self.transport)
        return self._http

    async def aclose(self) -> None:
        """Close the connection pools (the server calls it on shutdown)."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self.llm is not None:
            await self.llm.aclose()

    @classmethod
    def from_environment(cls) -> Services:
        """From ``CHARMSPACE_LLM_*`` and ``CHARMSPACE_GMAIL_*`` (and ``.env``)."""
        llm_settings = LLMSettings()
        llm = LLMClient.from_settings(llm_settings) if llm_settings.key() is not None else None
        return cls(llm=llm, gmail_base_url=GmailSettings().base_url)


def configure(runtime: Runtime, services: Services) -> None:
    """Give ``runtime``'s charms these services (replacing what they had).

    Kept with the runtime's other lent objects (``runtime.services``), so it
    lives and dies with the runtime and never leaks between runtimes.
    """
    runtime.services.provide(Services, services)


def services_of(runtime: Runtime) -> Services:
    """The services configured for ``runtime`` (none configured: no LLM, Google's Gmail)."""
    found = runtime.services.get(Services)
    if found is None:
        found = Services()
        runtime.services.provide(Services, found)
    return found


def llm_of(runtime: Runtime) -> LLMClient:
    """The runtime's LLM client, or an error saying how to configure one."""
    client = services_of(runtime).llm
    if client is None:
        raise IntegrationError(
            "llm_unconfigured",
            "No LLM is configured: set CHARMSPACE_LLM_BASE_URL, CHARMSPACE_LLM_MODEL and "
            "CHARMSPACE_LLM_API_KEY and restart the server.",
        )
    return client


def gmail_client(runtime: Runtime, auth: Cell[Any], refresh: Stream[Any] | None) -> GmailClient:
    """A Gmail client reading the token from ``auth``; close it (``async with``) when done."""
    services = services_of(runtime)
    return GmailClient(
        auth,
        refresh,
        base_url=services.gmail_base_url,
        clock=runtime.clock,
        sleep=services.sleep,
        rng=services.rng or runtime.random,
        backoff=services.backoff,
        http=services.http,
    )
