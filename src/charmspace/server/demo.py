"""``charmspace serve --demo``: Google, Gmail and an LLM, faked inside the server itself.

A demo runs offline: the server mounts the fakes of :mod:`charmspace.testing`
under ``/_demo/`` (``google``, ``gmail``, ``llm``) and points its own Google
sign-in, Gmail client and LLM client at them over HTTP, so every request takes
the production path and only the base URLs differ. Tokens live 60 seconds, so
the refresh cycle shows within a minute.

One :class:`DemoClock` is the runtime's, the Google client's and the fakes'
time. It runs with the wall clock, and ``POST /_demo/clock {"advance": s}``
moves it ahead (to watch a token expire without waiting). ``GET /_demo/status``
counts the fakes' calls; ``POST /_demo/faults`` makes the fake Google fail. Request signatures
and browser sessions keep real time: they never read this clock. None of this
exists unless the server was started with ``--demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from charmspace.facade import Runtime
from charmspace.identity import Identity
from charmspace.integrations.google.oauth import GoogleSettings
from charmspace.integrations.llm import LLMClient
from charmspace.integrations.services import Services
from charmspace.server.deps import acting
from charmspace.storage import creation_proof
from charmspace.testing.gmail import FakeGmail
from charmspace.testing.google import FakeGoogle
from charmspace.testing.llm import ScriptedLLM, gmail_policy

__all__ = ["BANNER", "PREFIX", "TOKEN_LIFETIME", "DemoClock", "DemoWorld"]

PREFIX = "/_demo"
BANNER = "Demo mode: fake Google, fake Gmail, scripted LLM"
TOKEN_LIFETIME = 60
"""Seconds a demo access token lives (Google's hour, cut so the cycle shows)."""
AUTH_SPACE = "google"
GMAIL_SPACE = "gmail"
MAX_ADVANCE = 30 * 24 * 3600.0


class DemoClock:
    """The wall clock plus an offset that only grows: ``await clock.advance(61)``.

    Sleepers wake when their deadline passes, by waiting or by an advance.
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self._moved: asyncio.Event | None = None

    def now(self) -> float:
        return time.time() + self.offset

    async def sleep(self, seconds: float) -> None:
        deadline = self.now() + seconds
        while (left := deadline - self.now()) > 0:
            if self._moved is None:
                self._moved = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._moved.wait(), left)
        await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time ahead by ``seconds``, waking every sleeper whose deadline it passes."""
        self.offset += seconds
        moved, self._moved = self._moved, None
        if moved is not None:
            moved.set()
        for _ in range(3):
            await asyncio.sleep(0)


@dataclass
class DemoWorld:
    """The fakes of one demo server, and the settings that point the server at them.

    ``base`` is the server's own URL (``http://127.0.0.1:8000``): the browser is
    sent to the fake Google there, and the server calls the fakes there too.
    """

    base: str
    clock: DemoClock = field(default_factory=DemoClock)

    def __post_init__(self) -> None:
        self.base = self.base.rstrip("/")
        self.client_secret = secrets.token_urlsafe(24)
        self.llm_key = secrets.token_urlsafe(24)
        self.google = FakeGoogle(
            self.clock,
            lifetime=TOKEN_LIFETIME,
            client_id="charmspace-demo",
            client_secret=self.client_secret,
        )
        self.gmail = FakeGmail(self.google.check_access_token, self.clock, count=300)
        self.llm = ScriptedLLM(gmail_policy(), api_key=self.llm_key)
        self.app = Starlette(
            routes=[
                Route("/clock", self._advance, methods=["POST"]),
                Route("/status", self._status, methods=["GET"]),
                Route("/faults", self._faults, methods=["POST"]),
                Mount("/google", self.google),
                Mount("/gmail", self.gmail),
                Mount("/llm", self.llm),
            ]
        )

    prefix = PREFIX

    @property
    def url(self) -> str:
        return self.base + PREFIX

    def google_settings(self, settings: GoogleSettings) -> GoogleSettings:
        """``settings`` with the fake Google's client and endpoints."""
        return settings.model_copy(
            update={
                "client_id": self.google.client_id,
                "client_secret": SecretStr(self.client_secret),
                "client_secret_file": None,
                **FakeGoogle.urls(f"{self.url}/google"),
            }
        )

    def services(self) -> Services:
        """The Gmail and LLM clients the demo's charms use: the fakes, over HTTP."""
        llm = LLMClient(
            base_url=f"{self.url}/llm/v1",
            model="scripted",
            api_key=SecretStr(self.llm_key),
            now=self.clock.now,
        )
        return Services(llm=llm, gmail_base_url=f"{self.url}/gmail")

    async def seed(self, runtime: Runtime, user: Identity) -> None:
        """Give ``user`` a favorited Google Auth charm in one space and a Gmail search in
        another, unless an earlier start did."""
        from charmspace.library.gmail_agentic_search import gmail_agentic_search
        from charmspace.library.google_auth import google_auth

        keys = {name: user.derive(name) for name in (AUTH_SPACE, GMAIL_SPACE)}
        spaces = {name: key.did for name, key in keys.items()}
        if runtime.storage.has_space(spaces[AUTH_SPACE]):
            return  # seeded by an earlier start; the user may have changed it since
        for key in keys.values():
            runtime.storage.ensure_space(key.did, user.did, proof=creation_proof(key, user.did))
        with acting(user.did):
            auth = await runtime.charms.create(
                google_auth, space=spaces[AUTH_SPACE], principal=user.did
            )
            await runtime.favorites(user.did).add(auth)
            await runtime.charms.create(
                gmail_agentic_search,
                space=spaces[GMAIL_SPACE],
                principal=user.did,
                inputs={"goal": "invoice", "budget": 3},
            )

    async def _advance(self, request: Request) -> JSONResponse:
        body = await _json_body(request)
        seconds = body.get("advance") if isinstance(body, dict) else None
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 < seconds <= MAX_ADVANCE
        ):
            return _bad_request(
                'Send {"advance": SECONDS}: a number of seconds greater than 0 and at most '
                f"{int(MAX_ADVANCE)}."
            )
        await self.clock.advance(float(seconds))
        return JSONResponse(self._state())

    async def _faults(self, request: Request) -> JSONResponse:
        """Make the fake Google fail as Google can: ``{"drop": true}`` breaks its token
        endpoint's connections, ``{"invalid_grant": true}`` refuses refreshes; false heals."""
        body = await _json_body(request)
        if (
            not isinstance(body, dict)
            or not body
            or not set(body) <= {"drop", "invalid_grant"}
            or not all(isinstance(v, bool) for v in body.values())
        ):
            return _bad_request('Send {"drop": true|false} and/or {"invalid_grant": true|false}.')
        self.google.drop = body.get("drop", self.google.drop)
        self.google.invalid_grant = body.get("invalid_grant", self.google.invalid_grant)
        return JSONResponse(self._state())

    async def _status(self, request: Request) -> JSONResponse:
        return JSONResponse(self._state())

    def _state(self) -> dict[str, Any]:
        return {
            "now": self.clock.now(),
            "offset": self.clock.offset,
            "google_calls": dict(self.google.calls),
            "gmail_calls": dict(self.gmail.calls),
            "llm_requests": len(self.llm.requests),
            "faults": {"drop": self.google.drop, "invalid_grant": self.google.invalid_grant},
        }


async def _json_body(request: Request) -> Any:
    """The JSON body, or None. Only ``application/json``: a page on another site cannot
    send that without the browser asking first (and nothing here answers that ask)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return None
    try:
        return await request.json()
    except ValueError:
        return None


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": "BadRequest", "message": message}}, status_code=400)
