"""``create_app(settings)``: the ASGI application ``charmspace serve`` runs.

The lifespan opens one :class:`~charmspace.Runtime` over the configured storage
and closes it on shutdown (queued events finish, commits become durable, storage
closes). The runtime's default user is a fresh identity that owns nothing: every
route passes the request's principal explicitly, and a path that forgot to would
be refused by storage's ACL instead of acting with someone's rights. The server's
own identity (created in the data directory on first start) is only the
runtime's service identity.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from charmspace import __version__
from charmspace.facade import Runtime
from charmspace.identity import Identity
from charmspace.identity.local import load_or_create
from charmspace.integrations.google.oauth import GoogleOAuth
from charmspace.integrations.services import Services, configure
from charmspace.patterns.registry import installed_patterns
from charmspace.server import errors
from charmspace.server.auth import Verifier
from charmspace.server.middleware import RequestGate
from charmspace.server.reload import PatternsDirectory
from charmspace.server.routes import (
    charms,
    favorites,
    google_oauth,
    live,
    meta,
    pages,
    session,
    spaces,
)
from charmspace.server.sessions import SessionStore
from charmspace.server.settings import Settings

if TYPE_CHECKING:
    from charmspace.server.demo import DemoWorld

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The server application; its runtime opens when the lifespan starts."""
    settings = settings or Settings()
    demo: DemoWorld | None = None
    if settings.demo:
        # Imported only here: a production server never loads the fakes.
        from charmspace.server.demo import BANNER, DemoWorld

        assert settings.public_url is not None  # the settings refuse demo mode without it
        demo = DemoWorld(settings.public_url)
        settings = settings.model_copy(
            update={
                "google": demo.google_settings(settings.google),
                "demo_banner": settings.demo_banner or BANNER,
            }
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = load_or_create(settings.identity_path)
        runtime = Runtime(
            settings.storage_url,
            identity=Identity.generate(),
            service=service,
            call_timeout=settings.call_timeout,
            clock=demo.clock if demo else None,
        )
        # The LLM key and the Gmail URL stay here, with the host: charms ask for clients.
        services = demo.services() if demo else Services.from_environment()
        configure(runtime, services)
        app.state.runtime = runtime
        # One Google client per server, shared by the routes and the google_auth charms'
        # handlers, so both go through one single flight per refresh token.
        withdraw = runtime.services.provide(GoogleOAuth, app.state.google_oauth)
        app.state.server_did = service.did
        patterns = PatternsDirectory(settings)  # --patterns DIR [--reload]
        patterns.install()
        # Scanning entry points and pattern directories is slow, and what is
        # installed changes only with a restart (or a --reload): once, here.
        app.state.patterns = installed_patterns()
        log.info("storage %s open; server identity %s", runtime.storage, service.did)
        if demo:
            await demo.seed(runtime, load_or_create(settings.local_identity_path))
            log.info("demo mode: fake Google, Gmail and LLM under %s", demo.url)
        patterns.start(app, runtime)
        # Written behind, off the loop (a login only marks it stale); the last state on the way out.
        app.state.sessions.start_writing()
        app.state.google_oauth.start_writing()  # the same for Google sign-ins in progress
        try:
            yield
        finally:
            await app.state.sessions.stop_writing()
            await app.state.google_oauth.stop_writing()
            await patterns.stop()
            await runtime.close()
            withdraw()
            await services.aclose()
            log.info("storage closed")

    app = FastAPI(
        title="charmspace",
        version=__version__,
        description="Charms in spaces: the signed HTTP API (see docs/server.md).",
        lifespan=lifespan,
    )
    errors.install(app)
    # Here, not in the lifespan: `charmspace serve` issues the login link before it starts.
    app.state.sessions = sessions = SessionStore(
        max_sessions_per_did=settings.max_sessions_per_did,
        max_sessions_per_address=settings.max_sessions_per_address,
        max_challenges_per_address=settings.max_challenges_per_address,
        path=settings.data / "sessions.json",
    )
    app.state.settings = settings
    app.state.google_oauth = oauth = GoogleOAuth(
        settings.google,
        clock=demo.clock if demo else None,
        logins_path=settings.data / "google-sign-ins.json",
    )
    if settings.public_url:
        oauth.redirect_uri = settings.public_url + google_oauth.CALLBACK
    app.state.demo = demo
    if demo:  # only here: a production server has no fakes and no clock control
        app.mount(demo.prefix, demo.app, name="demo")
    app.include_router(meta.router)
    app.include_router(spaces.router)
    app.include_router(charms.router)
    app.include_router(favorites.router)
    app.include_router(session.router)
    app.include_router(live.router)
    app.include_router(google_oauth.router)
    app.mount("/static", pages.static_files(), name="static")
    app.include_router(pages.router)  # last: its /{space} must never shadow the routes above
    app.add_middleware(
        RequestGate,
        verifier=Verifier(
            skew=settings.clock_skew,
            max_nonces=settings.max_nonces,
            max_nonces_per_did=settings.max_nonces_per_did,
        ),
        sessions=sessions,
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
        max_websockets_per_did=settings.max_websockets_per_did,
        max_websockets_per_address=settings.max_websockets_per_address,
        max_websockets=settings.max_websockets,
    )
    return app
