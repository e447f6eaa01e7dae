"""Run the server in this process with uvicorn (what ``charmspace serve`` does).

uvicorn handles SIGINT and SIGTERM: it stops accepting connections, lets the
requests in flight finish, then runs the lifespan's shutdown, which closes the
runtime (queued events finish, commits become durable, storage closes).
"""

from __future__ import annotations

import socket
import sys
from types import FrameType
from typing import Any

import uvicorn
from pydantic import ValidationError

from charmspace.errors import CharmspaceError
from charmspace.identity.local import load_or_create
from charmspace.server.app import create_app
from charmspace.server.data_lock import hold_data_directory
from charmspace.server.errors import DataDirectoryInUseError
from charmspace.server.logs import configure
from charmspace.server.settings import Settings
from charmspace.storage.open import open_storage


class _Server(uvicorn.Server):
    """uvicorn, where a stop asked for by SIGINT/SIGTERM is a clean exit (status 0),
    and which prints the one-time login link once it listens.

    uvicorn re-raises the signal once it has shut down, so the process would
    report that it died of it even after a complete, graceful shutdown.
    """

    login_token = ""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.started or not self.login_token or not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        # Printed, not logged: log lines may be shipped elsewhere, and this is a secret.
        print(
            f"Open http://{host}:{port}/login?token={self.login_token} to log in as the "
            "local user (once, within 10 minutes).",
            file=sys.stderr,
            flush=True,
        )

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def serve(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; logs to stderr, one line per request.

    Exits with status 3 if the port is taken or another server holds the
    data directory (:mod:`charmspace.server.data_lock`), and with status 2
    and one line if what the settings name cannot be used: the data
    directory, the storage URL, a key file.
    """
    configure(as_json=settings.log_json)
    try:
        with hold_data_directory(settings.data):
            _serve(settings)
    except DataDirectoryInUseError as error:
        print(f"charmspace serve: {error}", file=sys.stderr)
        raise SystemExit(3) from None
    except CharmspaceError as error:
        print(f"charmspace serve: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _serve(settings: Settings) -> None:
    # Opened once here, before uvicorn: an error in the app's startup reaches
    # the user as uvicorn's traceback, and these are mistakes in the settings.
    open_storage(settings.storage_url).close()
    load_or_create(settings.identity_path)
    local = load_or_create(settings.local_identity_path)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # ours, from configure()
        access_log=False,  # the RequestGate logs each request, with its id
        lifespan="on",
        timeout_graceful_shutdown=10,
        # Longer than clients keep idle connections (charmspace.client: 2 s), so a
        # client never reuses a connection the server is closing at that moment.
        timeout_keep_alive=30,
    )
    server = _Server(config)
    server.login_token = app.state.sessions.login_token(local.did)
    server.run()
    if not server.started:  # e.g. the port is taken: uvicorn has logged why
        raise SystemExit(3)


def settings_from(flags: dict[str, Any]) -> Settings:
    """The settings the given flags (None: not given) make; a bad one exits with status 2."""
    try:
        return Settings(**{name: value for name, value in flags.items() if value is not None})
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")
            print(f"charmspace serve: {where + ': ' if where else ''}{message}", file=sys.stderr)
        raise SystemExit(2) from None
